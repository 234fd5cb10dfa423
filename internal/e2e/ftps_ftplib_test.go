package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sessionResumptionText is what the reply refusing a data connection that
// does not resume the control connection's TLS session must say.
const sessionResumptionText = "TLS session resumption"

// requireSystemPython returns Debian's interpreter (ftplib and ssl are in its
// standard library). Like requireClient: a skip on a developer's machine
// without it, a failure when CI=true.
func requireSystemPython(t *testing.T) string {
	t.Helper()
	return requirePythonModules(t, "ftplib, ssl", "python3")
}

// ftpPlan is what testdata/ftplib_client.py reads. The password travels in
// the environment, not in this file.
type ftpPlan struct {
	Host   string    `json:"host"`
	Port   int       `json:"port"`
	User   string    `json:"user"`
	Client string    `json:"client"` // "plain" (ftplib.FTP_TLS) | "reuse" (resumes the TLS session)
	Steps  []ftpStep `json:"steps"`
}

// ftpStep is one ftplib call, and what the test expects of it.
type ftpStep struct {
	Name string `json:"name"`
	Op   string `json:"op"`
	Args []any  `json:"args"`

	// fail: 0 = must succeed; 4 or 5 = must fail with a 4xx or 5xx reply;
	// a three-digit code = must fail with exactly that reply; -1 = either
	// way (check decides).
	fail  int
	check func(t *testing.T, o ftpOutcome)
}

// ftpOutcome is the script's report of one step (or of the connection).
type ftpOutcome struct {
	Name  string          `json:"name"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Type  string          `json:"type"`
	Msg   string          `json:"msg"`
	Code  *int            `json:"code"`
	Late  *string         `json:"late"`
}

// text is everything the server said about a failed step: the exception's
// reply and a reply read after a broken data connection.
func (o ftpOutcome) text() string {
	s := o.Msg
	if o.Late != nil {
		s += "\n" + *o.Late
	}
	return s
}

type ftpResult struct {
	Connect ftpOutcome   `json:"connect"`
	Steps   []ftpOutcome `json:"steps"`
}

// ftpConnectInfo is the value of a successful connect.
type ftpConnectInfo struct {
	Welcome    string `json:"welcome"`
	Login      string `json:"login"`
	Prot       string `json:"prot"`
	TLSVersion string `json:"tls_version"`
	CertSHA256 string `json:"cert_sha256"`
}

// ftpRetr is the value of a retr step.
type ftpRetr struct {
	Reply  string `json:"reply"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// runFtplib runs the script as u with client "plain" or "reuse", checks that
// it connected over TLS to the daemon's certificate, compares each step with
// what it expects, and returns the report.
func runFtplib(t *testing.T, f *ftpsDaemon, u *testUser, client string, steps []ftpStep) ftpResult {
	t.Helper()
	python := requireSystemPython(t)
	script, err := filepath.Abs(filepath.Join("testdata", "ftplib_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(f.ExplicitPort())
	data, err := json.Marshal(ftpPlan{Host: "127.0.0.1", Port: port, User: u.Name, Client: client, Steps: steps})
	if err != nil {
		t.Fatalf("marshal plan: %v", err)
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, data, 0o600); err != nil {
		t.Fatalf("write plan: %v", err)
	}
	env := cmdOpts{Env: []string{"WHARF_E2E_PASSWORD=" + u.Password}}
	stdout, stderr, err := runCmdOpts(t, clientTimeout, env, python, script, planFile)
	if err != nil {
		t.Fatalf("ftplib script: %v\nstdout:\n%s\nstderr:\n%s", err, redact(stdout, u.Password), redact(stderr, u.Password))
	}
	assertNoHostPath(t, f.daemon, "ftplib", stdout, stderr)
	if strings.Contains(stdout, "root:x:0:0") {
		t.Errorf("ftplib output shows the host's /etc/passwd:\n%s", stdout)
	}
	var res ftpResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("ftplib script printed no JSON report: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !res.Connect.OK {
		t.Fatalf("ftplib could not log in: %s: %s", res.Connect.Type, res.Connect.Msg)
	}
	info := decodeValue[ftpConnectInfo](t, "connect", res.Connect.Value)
	if want := strings.ReplaceAll(f.CertFP, ":", ""); info.CertSHA256 != want {
		t.Errorf("ftplib was presented certificate sha256 %s, the daemon logged %s", info.CertSHA256, want)
	}
	if info.TLSVersion != "TLSv1.2" && info.TLSVersion != "TLSv1.3" {
		t.Errorf("control connection negotiated %q, want TLSv1.2 or TLSv1.3", info.TLSVersion)
	}
	checkFtpSteps(t, steps, res)
	return res
}

// checkFtpSteps compares the script's outcomes with what each step expects.
func checkFtpSteps(t *testing.T, steps []ftpStep, res ftpResult) {
	t.Helper()
	if len(res.Steps) != len(steps) {
		t.Fatalf("ftplib reported %d steps, the plan has %d", len(res.Steps), len(steps))
	}
	for i, s := range steps {
		got := res.Steps[i]
		if got.Name != s.Name {
			t.Fatalf("step %d: report is for %q, want %q", i, got.Name, s.Name)
		}
		desc := fmt.Sprintf("%s %s(%v)", s.Name, s.Op, s.Args)
		code := 0
		if got.Code != nil {
			code = *got.Code
		}
		switch {
		case s.fail == -1:
		case s.fail == 0 && !got.OK:
			t.Errorf("%s failed: %s: %s", desc, got.Type, got.text())
			continue
		case s.fail != 0 && got.OK:
			t.Errorf("%s succeeded (%s), want a %s reply", desc, got.Value, fmtFail(s.fail))
			continue
		case s.fail >= 100 && code != s.fail, s.fail > 0 && s.fail < 10 && code/100 != s.fail:
			t.Errorf("%s failed with reply %d (%s: %s), want %s", desc, code, got.Type, got.text(), fmtFail(s.fail))
		}
		if s.check != nil {
			s.check(t, got)
		}
	}
}

func fmtFail(f int) string {
	if f < 10 {
		return fmt.Sprintf("%dxx", f)
	}
	return strconv.Itoa(f)
}

// ftpValue decodes a successful step's value; it fails the test for a step that failed.
func ftpValue[T any](t *testing.T, o ftpOutcome) (T, bool) {
	t.Helper()
	var v T
	if !o.OK {
		return v, false
	}
	return decodeValue[T](t, o.Name, o.Value), true
}

// wantRetr returns a check that a retr step's local file has sha256 sum.
func wantRetr(sum string, size int64) func(t *testing.T, o ftpOutcome) {
	return func(t *testing.T, o ftpOutcome) {
		t.Helper()
		if r, ok := ftpValue[ftpRetr](t, o); ok && (r.SHA256 != sum || r.Size != size) {
			t.Errorf("%s: local file has %d bytes, sha256 %s; want %d bytes, %s", o.Name, r.Size, r.SHA256, size, sum)
		}
	}
}

// wantString returns a check that a step's value is the string want.
func wantString(want string) func(t *testing.T, o ftpOutcome) {
	return func(t *testing.T, o ftpOutcome) {
		t.Helper()
		if v, ok := ftpValue[string](t, o); ok && v != want {
			t.Errorf("%s: got %q, want %q", o.Name, v, want)
		}
	}
}

// wantControlAlive checks a PWD sent after refused data connections: it
// answers "/". Now and then Python's ssl raises the data connection's TLS
// alert ("bad certificate", sent by the server on the data connection only)
// from the next call on another socket, here the control connection's PWD;
// the client script then reads the reply that follows, and a 257 there
// proves the control connection alive just the same.
func wantControlAlive(t *testing.T, o ftpOutcome) {
	t.Helper()
	if o.OK {
		wantString("/")(t, o)
		return
	}
	if o.Type != "SSLError" || !strings.Contains(o.text(), `257 "/"`) {
		t.Errorf("%s after the refusals: %s: %s; want \"/\"", o.Name, o.Type, o.text())
	}
}

// wantResumptionRefusal checks that a failed data connection was refused
// with a 4xx reply that says why.
func wantResumptionRefusal(t *testing.T, o ftpOutcome) {
	t.Helper()
	if o.OK {
		return // reported by checkFtpSteps
	}
	if !strings.Contains(o.text(), sessionResumptionText) {
		t.Errorf("%s: the refusal does not say %q: %s: %s", o.Name, sessionResumptionText, o.Type, o.text())
	}
}

// TestFTPSFtplib drives the daemon with Python's ftplib: the shipped FTP_TLS
// (no TLS session resumption on data connections) refused under
// tls_session_reuse: required with a reply that says why, the resuming
// subclass served, every command a script is likely to send, escapes,
// permissions and active mode.
func TestFTPSFtplib(t *testing.T) {
	requireSystemPython(t)
	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may list and download, not upload
	carol.Permissions = []string{"list", "download"}
	f := startFTPS(t, []*testUser{alice, carol}, ftpsOpts{}) // tls_session_reuse: required (the default)
	home, chome := f.HomeDir(alice), f.HomeDir(carol)
	for _, h := range []string{home, chome} {
		if err := os.MkdirAll(h, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	local := t.TempDir()
	const hello = "hello over ftps\n"
	writeFileT(t, filepath.Join(home, "hello.txt"), hello)

	t.Run("PlainClientRefused", func(t *testing.T) {
		src := filepath.Join(local, "plain-up")
		writeRandomFile(t, src, 10_000)
		mark := f.LogMark()
		runFtplib(t, f, alice, "plain", []ftpStep{
			{Name: "list", Op: "list", Args: []any{""}, fail: 5, check: wantResumptionRefusal},
			{Name: "retr", Op: "retr", Args: []any{"hello.txt", filepath.Join(local, "plain-back")}, fail: 5, check: func(t *testing.T, o ftpOutcome) {
				wantResumptionRefusal(t, o)
				if b, err := os.ReadFile(filepath.Join(local, "plain-back")); err == nil && len(b) > 0 {
					t.Errorf("retr: %d bytes arrived over a data connection that did not resume the session", len(b))
				}
			}},
			{Name: "stor", Op: "stor", Args: []any{src, "plain-up"}, fail: 5, check: wantResumptionRefusal},
			// The control connection survives the refusals.
			{Name: "pwd", Op: "pwd", fail: -1, check: wantControlAlive},
		})
		if st, err := os.Stat(filepath.Join(home, "plain-up")); err == nil && st.Size() > 0 {
			t.Errorf("an upload over a data connection that did not resume the session stored %d bytes", st.Size())
		}
		if l, ok := f.pollLog(mark, logMatch("msg", "transfer", "user", "alice", "outcome", "ok"), 500*time.Millisecond); ok {
			t.Errorf("a transfer without TLS session resumption was logged as done: %v", l)
		}
	})

	t.Run("ReusingClient", func(t *testing.T) {
		var steps []ftpStep
		sums := map[string]string{}
		for _, size := range []int64{0, 1, 1<<20 + 1} {
			src := filepath.Join(local, fmt.Sprintf("reuse-%d", size))
			sum := writeRandomFile(t, src, size)
			name := fmt.Sprintf("py-%d", size)
			sums[name] = sum
			steps = append(steps,
				ftpStep{Name: "stor-" + name, Op: "stor", Args: []any{src, name}},
				ftpStep{Name: "retr-" + name, Op: "retr", Args: []any{name, src + ".back"}, check: wantRetr(sum, size)},
			)
		}
		runFtplib(t, f, alice, "reuse", steps)
		for name, sum := range sums {
			checkSum(t, name+" on disk", filepath.Join(home, name), sum)
		}
		f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
			"path", "/py-1048577", "bytes", 1<<20+1, "outcome", "ok"), 10*time.Second)
	})

	t.Run("Commands", func(t *testing.T) {
		a := filepath.Join(local, "cmd-a")
		tailFile := filepath.Join(local, "cmd-tail")
		small := filepath.Join(local, "cmd-small")
		writeRandomFile(t, a, 100_003)
		writeRandomFile(t, tailFile, 777)
		writeRandomFile(t, small, 10)
		whole := readAll(t, a) + readAll(t, tailFile)
		wholeSum := sha256Hex(whole)
		const rest = 5000
		resumed := filepath.Join(local, "cmd-resumed")
		writeFileT(t, resumed, whole[:rest])
		full := filepath.Join(local, "cmd-full")
		hashAdvertised := false
		mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

		runFtplib(t, f, alice, "reuse", []ftpStep{
			{Name: "feat", Op: "cmd", Args: []any{"FEAT"}, check: func(t *testing.T, o ftpOutcome) {
				v, ok := ftpValue[string](t, o)
				if !ok {
					return
				}
				for _, feat := range []string{"MLST", "MLSD", "UTF8", "REST STREAM", "SIZE", "MDTM", "MFMT", "EPSV", "AUTH TLS", "PBSZ", "PROT"} {
					if !featHas(v, feat) {
						t.Errorf("FEAT does not list %q:\n%s", feat, v)
					}
				}
				hashAdvertised = strings.Contains(v, "SHA-256")
			}},
			{Name: "opts-utf8", Op: "cmd", Args: []any{"OPTS UTF8 ON"}, check: func(t *testing.T, o ftpOutcome) {
				if v, ok := ftpValue[string](t, o); ok && !strings.HasPrefix(v, "2") {
					t.Errorf("OPTS UTF8 ON: reply %q, want 2xx", v)
				}
			}},
			{Name: "pwd-root", Op: "pwd", check: wantString("/")},
			{Name: "mkd", Op: "cmd", Args: []any{"MKD cmds"}, check: func(t *testing.T, o ftpOutcome) {
				// ftplib.mkd would parse the path only from `257 "/cmds" ...`;
				// the reply must carry the client's path, quoted, in any place.
				if v, ok := ftpValue[string](t, o); ok && (!strings.HasPrefix(v, "257") || !strings.Contains(v, `"/cmds"`)) {
					t.Errorf("MKD cmds: reply %q, want 257 with \"/cmds\"", v)
				}
			}},
			{Name: "cwd", Op: "cwd", Args: []any{"cmds"}},
			{Name: "pwd-cmds", Op: "pwd", check: wantString("/cmds")},
			{Name: "mkd-sub", Op: "mkd", Args: []any{"sub"}},
			{Name: "stor", Op: "stor", Args: []any{a, "a.bin"}},
			{Name: "appe", Op: "appe", Args: []any{tailFile, "a.bin"}},
			{Name: "size", Op: "size", Args: []any{"a.bin"}, check: func(t *testing.T, o ftpOutcome) {
				if v, ok := ftpValue[int64](t, o); ok && v != int64(len(whole)) {
					t.Errorf("SIZE after STOR+APPE = %d, want %d", v, len(whole))
				}
			}},
			{Name: "hash-abs", Op: "cmd", Args: []any{"HASH /cmds/a.bin"}, fail: -1, check: wantHash(&hashAdvertised, wholeSum)},
			{Name: "hash-relative", Op: "cmd", Args: []any{"HASH a.bin"}, fail: -1, check: wantHash(&hashAdvertised, wholeSum)},
			{Name: "mfmt", Op: "cmd", Args: []any{"MFMT 20200102030405 a.bin"}, check: func(t *testing.T, o ftpOutcome) {
				if v, ok := ftpValue[string](t, o); ok && !strings.HasPrefix(v, "213") {
					t.Errorf("MFMT: reply %q, want 213", v)
				}
			}},
			{Name: "mdtm", Op: "cmd", Args: []any{"MDTM a.bin"}, check: wantString("213 20200102030405")},
			{Name: "retr-rest", Op: "retr", Args: []any{"a.bin", resumed, rest}, check: wantRetr(wholeSum, int64(len(whole)))},
			{Name: "rename", Op: "rename", Args: []any{"a.bin", "b.bin"}},
			{Name: "mlsd", Op: "mlsd", Args: []any{"/cmds"}, check: func(t *testing.T, o ftpOutcome) {
				entries, ok := ftpValue[[][2]any](t, o)
				if !ok {
					return
				}
				found := map[string]map[string]any{}
				for _, e := range entries {
					name, _ := e[0].(string)
					facts, _ := e[1].(map[string]any)
					found[name] = facts
				}
				if facts, ok := found["b.bin"]; !ok || !strings.EqualFold(fmt.Sprint(facts["type"]), "file") ||
					fmt.Sprint(facts["size"]) != strconv.Itoa(len(whole)) {
					t.Errorf("MLSD /cmds: b.bin entry %v, want type=file size=%d (all: %v)", facts, len(whole), entries)
				}
				if facts, ok := found["sub"]; !ok || !strings.EqualFold(fmt.Sprint(facts["type"]), "dir") {
					t.Errorf("MLSD /cmds: sub entry %v, want type=dir (all: %v)", facts, entries)
				}
				if _, ok := found["a.bin"]; ok {
					t.Errorf("MLSD /cmds still lists a.bin after RNFR/RNTO: %v", entries)
				}
			}},
			{Name: "nlst", Op: "nlst", Args: []any{}, check: func(t *testing.T, o ftpOutcome) {
				names, ok := ftpValue[[]string](t, o)
				if ok && !slices.ContainsFunc(names, func(n string) bool { return n == "b.bin" || strings.HasSuffix(n, "/b.bin") }) {
					t.Errorf("NLST in /cmds = %q, want b.bin among them", names)
				}
			}},
			{Name: "list", Op: "list", Args: []any{""}, check: func(t *testing.T, o ftpOutcome) {
				lines, ok := ftpValue[[]string](t, o)
				if ok && !slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, " b.bin") }) {
					t.Errorf("LIST in /cmds = %q, want a line for b.bin", lines)
				}
			}},
			{Name: "stor-small", Op: "stor", Args: []any{small, "small"}},
			{Name: "dele", Op: "delete", Args: []any{"small"}},
			{Name: "size-deleted", Op: "size", Args: []any{"small"}, fail: 550},
			{Name: "rmd", Op: "rmd", Args: []any{"sub"}},
			{Name: "cdup", Op: "cmd", Args: []any{"CDUP"}},
			{Name: "pwd-back", Op: "pwd", check: wantString("/")},
			{Name: "retr-full", Op: "retr", Args: []any{"/cmds/b.bin", full}, check: wantRetr(wholeSum, int64(len(whole)))},
		})

		b := filepath.Join(home, "cmds", "b.bin")
		checkSum(t, "b.bin on disk (STOR + APPE)", b, wholeSum)
		if st, err := os.Stat(b); err != nil {
			t.Errorf("stat b.bin: %v", err)
		} else if !st.ModTime().Equal(mtime) {
			t.Errorf("MFMT: b.bin mtime on disk %v, want %v", st.ModTime().UTC(), mtime)
		}
		for _, gone := range []string{"cmds/sub", "cmds/small", "cmds/a.bin"} {
			if exists(t, filepath.Join(home, filepath.FromSlash(gone))) {
				t.Errorf("%s is still on disk", gone)
			}
		}
		for _, kv := range [][2]string{{"mkdir", "/cmds"}, {"rename", "/cmds/a.bin"}, {"remove", "/cmds/small"}, {"rmdir", "/cmds/sub"}} {
			f.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "user", "alice", "op", kv[0], "path", kv[1]), 10*time.Second)
		}
	})

	t.Run("Escapes", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "outside")
		const victim = "victim-content-4f2a"
		writeFileT(t, filepath.Join(outside, "victim.txt"), victim)
		for link, to := range map[string]string{"out-link": outside, "passwd-link": "/etc/passwd", "etc-link": "/etc"} {
			if err := os.Symlink(to, filepath.Join(home, link)); err != nil {
				t.Fatal(err)
			}
		}
		up := filepath.Join(local, "escape-up")
		writeFileT(t, up, "planted")
		sink := filepath.Join(local, "escape-sink")
		res := runFtplib(t, f, alice, "reuse", []ftpStep{
			{Name: "retr-dotdot", Op: "retr", Args: []any{"../../etc/passwd", sink}, fail: 5},
			{Name: "retr-abs-dotdot", Op: "retr", Args: []any{"/../../../etc/passwd", sink}, fail: 5},
			{Name: "cwd-etc", Op: "cwd", Args: []any{"/etc"}, fail: 5},
			{Name: "cwd-dotdot", Op: "cwd", Args: []any{".."}, fail: -1},
			{Name: "pwd-after-dotdot", Op: "pwd", check: wantString("/")},
			{Name: "nlst-after-dotdot", Op: "nlst", Args: []any{}, check: func(t *testing.T, o ftpOutcome) {
				names, ok := ftpValue[[]string](t, o)
				if ok && !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, "hello.txt") }) {
					t.Errorf("after CWD .. at /, NLST shows %q: not the home (no hello.txt)", names)
				}
			}},
			{Name: "cwd-link", Op: "cwd", Args: []any{"out-link"}, fail: 5},
			{Name: "mlsd-link", Op: "mlsd", Args: []any{"out-link"}, fail: 5},
			{Name: "retr-link", Op: "retr", Args: []any{"out-link/victim.txt", sink}, fail: 5},
			{Name: "size-link", Op: "size", Args: []any{"out-link/victim.txt"}, fail: 5},
			{Name: "stor-link", Op: "stor", Args: []any{up, "out-link/planted"}, fail: 5},
			{Name: "rename-link", Op: "rename", Args: []any{"out-link/victim.txt", "stolen"}, fail: 5},
			{Name: "retr-passwd-link", Op: "retr", Args: []any{"passwd-link", sink}, fail: 5},
			{Name: "size-passwd-link", Op: "size", Args: []any{"passwd-link"}, fail: 5},
			{Name: "retr-etc-link", Op: "retr", Args: []any{"etc-link/passwd", sink}, fail: 5},
			{Name: "cwd-etc-link", Op: "cwd", Args: []any{"etc-link"}, fail: 5},
		})
		raw, _ := json.Marshal(res)
		if strings.Contains(string(raw), victim) {
			t.Errorf("a reply carries the content of a file outside the home")
		}
		if exists(t, filepath.Join(outside, "planted")) || exists(t, filepath.Join(home, "stolen")) {
			t.Errorf("a write through a symlink reached outside the home")
		}
		if fileContent(t, filepath.Join(outside, "victim.txt")) != victim {
			t.Errorf("the file outside the home was changed")
		}
	})

	t.Run("NoUploadPermission", func(t *testing.T) {
		writeFileT(t, filepath.Join(chome, "existing.txt"), "carol's\n")
		up := filepath.Join(local, "carol-up")
		writeRandomFile(t, up, 2048)
		mark := f.LogMark()
		runFtplib(t, f, carol, "reuse", []ftpStep{
			{Name: "stor", Op: "stor", Args: []any{up, "carol-up"}, fail: 550},
			{Name: "appe", Op: "appe", Args: []any{up, "existing.txt"}, fail: 550},
			{Name: "stor-overwrite", Op: "stor", Args: []any{up, "existing.txt"}, fail: 550},
			{Name: "mkd", Op: "mkd", Args: []any{"d"}, fail: 550},
			{Name: "dele", Op: "delete", Args: []any{"existing.txt"}, fail: 550},
			{Name: "rename", Op: "rename", Args: []any{"existing.txt", "moved.txt"}, fail: 550},
			// What carol may do still works.
			{Name: "retr", Op: "retr", Args: []any{"existing.txt", filepath.Join(local, "carol-back")}, check: wantRetr(sha256Hex("carol's\n"), 8)},
		})
		if exists(t, filepath.Join(chome, "carol-up")) || exists(t, filepath.Join(chome, "d")) || exists(t, filepath.Join(chome, "moved.txt")) {
			t.Errorf("a refused command changed carol's home")
		}
		if got := fileContent(t, filepath.Join(chome, "existing.txt")); got != "carol's\n" {
			t.Errorf("existing.txt changed to %q by refused commands", got)
		}
		f.WaitLogSince(t, mark, logMatch("msg", "denied", "proto", "ftps", "user", "carol", "op", "upload"), 10*time.Second)
	})

	t.Run("ActiveModeRefused", func(t *testing.T) {
		runFtplib(t, f, alice, "reuse", []ftpStep{
			// ftpserverlib's DisableActiveMode answers 421 "PORT command is
			// disabled" and keeps the session usable (pwd below).
			{Name: "port", Op: "cmd", Args: []any{"PORT 127,0,0,1,156,64"}, fail: 421},
			{Name: "eprt", Op: "cmd", Args: []any{"EPRT |1|127.0.0.1|40000|"}, fail: 421},
			{Name: "pwd", Op: "pwd", check: wantString("/")},
		})
	})

	t.Run("SessionReuseAllowed", func(t *testing.T) {
		bob := newUser(t, "bob")
		g := startFTPS(t, []*testUser{bob}, ftpsOpts{SessionReuse: "allowed"})
		src := filepath.Join(local, "allowed-up")
		sum := writeRandomFile(t, src, 1<<20+1)
		runFtplib(t, g, bob, "plain", []ftpStep{
			{Name: "stor", Op: "stor", Args: []any{src, "up"}},
			{Name: "list", Op: "list", Args: []any{""}, check: func(t *testing.T, o ftpOutcome) {
				lines, ok := ftpValue[[]string](t, o)
				if ok && !slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, " up") }) {
					t.Errorf("LIST = %q, want a line for up", lines)
				}
			}},
			{Name: "retr", Op: "retr", Args: []any{"up", src + ".back"}, check: wantRetr(sum, 1<<20+1)},
		})
		checkSum(t, "plain ftplib upload under allowed (on disk)", filepath.Join(g.HomeDir(bob), "up"), sum)
	})
}

// wantHash returns a check that a HASH reply carries the SHA-256 sum, when
// FEAT (checked before, into *advertised) offered SHA-256.
func wantHash(advertised *bool, sum string) func(t *testing.T, o ftpOutcome) {
	return func(t *testing.T, o ftpOutcome) {
		t.Helper()
		if !*advertised {
			t.Logf("%s: FEAT does not advertise SHA-256, HASH not checked (%s)", o.Name, o.text())
			return
		}
		if !o.OK {
			t.Errorf("%s failed although FEAT advertises SHA-256: %s", o.Name, o.text())
			return
		}
		if v, _ := ftpValue[string](t, o); !strings.Contains(strings.ToLower(v), sum) {
			t.Errorf("%s = %q, want it to carry sha256 %s", o.Name, v, sum)
		}
	}
}

// featHas reports whether a FEAT reply lists feature (one per line, indented).
func featHas(reply, feature string) bool {
	for _, l := range strings.Split(reply, "\n") {
		l = strings.TrimSpace(l)
		if strings.EqualFold(l, feature) || strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(feature)+" ") {
			return true
		}
	}
	return false
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
