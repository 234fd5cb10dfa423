package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// systemPython is Debian's interpreter, the one python3-paramiko is installed
// for; a python3 that another installation puts first on PATH lacks it.
const systemPython = "/usr/bin/python3"

// SSH_FX status codes the paramiko steps assert on.
const (
	fxNoSuchFile       = 2
	fxPermissionDenied = 3
	fxOpUnsupported    = 8
)

// requireParamiko returns the interpreter that can import paramiko. Like
// requireClient, it skips on a developer's machine without it and fails
// when CI=true.
func requireParamiko(t *testing.T) string {
	t.Helper()
	return requirePythonModules(t, "paramiko", "python3-paramiko")
}

// pyPlan is what testdata/paramiko_client.py reads: how to connect and which
// steps to run. The password travels in the environment, not in this file.
type pyPlan struct {
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	User    string   `json:"user"`
	Auth    string   `json:"auth"` // "key" | "password"
	KeyFile string   `json:"key_file,omitempty"`
	HostKey string   `json:"host_key"` // base64 of the ed25519 host key the client must insist on
	Steps   []pyStep `json:"steps"`
}

// pyStep is one SFTPClient call the script makes, and what the test expects.
type pyStep struct {
	Name string `json:"name"`
	Op   string `json:"op"`
	Args []any  `json:"args"`

	want  string // "" = must succeed; a Python exception class name; "error" = any failure
	code  int    // when non-zero, the SSH_FX status the failure must carry
	check func(t *testing.T, value json.RawMessage)
}

// pyOutcome is the script's report of one step (or of the connection).
type pyOutcome struct {
	Name  string          `json:"name"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Type  string          `json:"type"`
	Errno *int            `json:"errno"`
	Code  *int            `json:"code"`
	Msg   string          `json:"msg"`
}

type pyResult struct {
	Connect   pyOutcome `json:"connect"`
	Transport *struct {
		Cipher      string `json:"cipher"`
		MAC         string `json:"mac"`
		HostKeyType string `json:"host_key_type"`
		HostKey     string `json:"host_key"`
	} `json:"transport"`
	Steps []pyOutcome `json:"steps"`
}

// pyAttrs is what the script returns for stat, lstat and listdir_attr entries.
type pyAttrs struct {
	Size     int64  `json:"size"`
	Mode     uint32 `json:"mode"`
	Mtime    int64  `json:"mtime"`
	Longname string `json:"longname"`
	Filename string `json:"filename"`
}

// ed25519HostKey returns the base64 wire form of the daemon's ed25519 host
// key, read from state_dir, after checking it is the key the daemon logged.
func ed25519HostKey(t *testing.T, d *daemon) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.StateDir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatalf("read ed25519 host key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("parse ed25519 host key: %v", err)
	}
	if fp := ssh.FingerprintSHA256(signer.PublicKey()); fp != d.HostKeyFP {
		t.Fatalf("ed25519 host key file has %s, the daemon logged %s", fp, d.HostKeyFP)
	}
	return base64.StdEncoding.EncodeToString(signer.PublicKey().Marshal())
}

// runParamiko runs the script with plan and returns its report. password, if
// not empty, is handed over in WHARF_E2E_PASSWORD.
func runParamiko(t *testing.T, d *daemon, plan pyPlan, password string) pyResult {
	t.Helper()
	python := requireParamiko(t)
	script, err := filepath.Abs(filepath.Join("testdata", "paramiko_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		t.Fatalf("marshal plan: %v", err)
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, data, 0o600); err != nil {
		t.Fatalf("write plan: %v", err)
	}
	var o cmdOpts
	if password != "" {
		o.Env = []string{"WHARF_E2E_PASSWORD=" + password}
	}
	stdout, stderr, err := runCmdOpts(t, clientTimeout, o, python, script, planFile)
	if err != nil {
		t.Fatalf("paramiko script: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, redact(stderr, password))
	}
	assertNoHostPath(t, d, "paramiko", stdout, stderr)
	if strings.Contains(stdout, "root:x:0:0") {
		t.Errorf("paramiko output shows the host's /etc/passwd:\n%s", stdout)
	}
	var res pyResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("paramiko script printed no JSON report: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return res
}

// checkSteps compares the script's outcomes with what each step expects.
func checkSteps(t *testing.T, steps []pyStep, res pyResult) {
	t.Helper()
	if !res.Connect.OK {
		t.Fatalf("paramiko could not connect: %s: %s", res.Connect.Type, res.Connect.Msg)
	}
	if len(res.Steps) != len(steps) {
		t.Fatalf("paramiko reported %d steps, the plan has %d", len(res.Steps), len(steps))
	}
	for i, s := range steps {
		got := res.Steps[i]
		if got.Name != s.Name {
			t.Fatalf("step %d: report is for %q, want %q", i, got.Name, s.Name)
		}
		desc := fmt.Sprintf("%s(%v)", s.Op, s.Args)
		switch {
		case s.want == "" && !got.OK:
			t.Errorf("%s: %s failed: %s: %s (code %s)", s.Name, desc, got.Type, got.Msg, fmtCode(got.Code))
			continue
		case s.want != "" && got.OK:
			t.Errorf("%s: %s succeeded (%s), want %s", s.Name, desc, got.Value, s.want)
			continue
		case s.want != "" && s.want != "error" && got.Type != s.want:
			t.Errorf("%s: %s raised %s (%s, code %s), want %s", s.Name, desc, got.Type, got.Msg, fmtCode(got.Code), s.want)
		}
		if s.code != 0 && (got.Code == nil || *got.Code != s.code) {
			t.Errorf("%s: %s failed with SSH_FX code %s (%s), want %d", s.Name, desc, fmtCode(got.Code), got.Msg, s.code)
		}
		if s.check != nil {
			if got.OK {
				s.check(t, got.Value)
			} else {
				s.check(t, json.RawMessage(strconv.Quote(got.Msg)))
			}
		}
	}
}

func fmtCode(c *int) string {
	if c == nil {
		return "none"
	}
	return strconv.Itoa(*c)
}

func decodeValue[T any](t *testing.T, name string, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: decode %s: %v", name, raw, err)
	}
	return v
}

// writeFileT writes content to a file, creating its directory.
func writeFileT(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileContent returns a file's content, or fails the test.
func fileContent(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", filepath.Base(path), err)
		return ""
	}
	return string(data)
}

const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
)

// TestParamiko drives one daemon with paramiko, the SFTP library of many
// Python ETL jobs: key and password logins, host key pinning, every
// SFTPClient call a partner's script is likely to make, and the error
// classes those scripts catch.
func TestParamiko(t *testing.T) {
	requireParamiko(t)
	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may list and download only; logs in with a password
	carol.PubKey = ""
	carol.Permissions = []string{"list", "download"}
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, carol}})
	hostKey := ed25519HostKey(t, d)
	home, chome := d.HomeDir(alice), d.HomeDir(carol)
	local := t.TempDir()
	plan := func(u *testUser, auth string, steps []pyStep) pyPlan {
		return pyPlan{Host: "127.0.0.1", Port: d.Port, User: u.Name, Auth: auth, KeyFile: u.KeyFile, HostKey: hostKey, Steps: steps}
	}

	t.Run("Key", func(t *testing.T) {
		// What the steps below find on disk. outside stands in for a host
		// directory a planted symlink points to; nothing may reach it.
		outside := filepath.Join(t.TempDir(), "outside")
		const victim = "victim-content-9d1e"
		writeFileT(t, filepath.Join(outside, "victim.txt"), victim)
		for name, content := range map[string]string{
			"rw.txt": "0123456789", "app.txt": "hello", "ren-a": "A-content", "ren-b": "B-content",
			"px-a": "PX-A", "px-b": "PX-B", "gone.txt": "gone", "dirs/file.bin": strings.Repeat("x", 1234),
		} {
			writeFileT(t, filepath.Join(home, name), content)
		}
		metaSum := writeRandomFile(t, filepath.Join(home, "meta.txt"), 100)
		truncData := []byte(strings.Repeat("0123456789", 100))
		if err := os.WriteFile(filepath.Join(home, "trunc.bin"), truncData, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{"dirs/sub", "emptydir"} {
			if err := os.MkdirAll(filepath.Join(home, dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for link, to := range map[string]string{"etc-link": "/etc", "passwd-link": "/etc/passwd", "outside-link": outside} {
			if err := os.Symlink(to, filepath.Join(home, link)); err != nil {
				t.Fatal(err)
			}
		}
		small := filepath.Join(local, "small")
		writeFileT(t, small, "small file")

		var steps []pyStep
		type xfer struct {
			size      int64
			sum, back string
		}
		var xfers []xfer
		for _, size := range []int64{0, 1, 1<<20 + 1, 64 << 20} {
			if size > 8<<20 && testing.Short() {
				continue // large transfer skipped in -short mode
			}
			src := filepath.Join(local, fmt.Sprintf("src-%d", size))
			x := xfer{size: size, sum: writeRandomFile(t, src, size), back: filepath.Join(local, fmt.Sprintf("back-%d", size))}
			xfers = append(xfers, x)
			remote := fmt.Sprintf("/xfer-%d", size)
			steps = append(steps,
				pyStep{Name: "put-" + remote, Op: "put", Args: []any{src, remote}, check: func(t *testing.T, v json.RawMessage) {
					if a := decodeValue[pyAttrs](t, "put", v); a.Size != size {
						t.Errorf("put %s: the server reports size %d, want %d", remote, a.Size, size)
					}
				}},
				pyStep{Name: "get-" + remote, Op: "get", Args: []any{remote, x.back}},
			)
		}

		wantAttrs := func(size int64, ftype, perm uint32) func(*testing.T, json.RawMessage) {
			return func(t *testing.T, v json.RawMessage) {
				a := decodeValue[pyAttrs](t, "stat", v)
				if size >= 0 && a.Size != size {
					t.Errorf("size %d, want %d", a.Size, size)
				}
				if a.Mode&sIFMT != ftype {
					t.Errorf("mode %o, want file type %o", a.Mode, ftype)
				}
				if perm != 0 && a.Mode&0o777 != perm {
					t.Errorf("mode %o, want permissions %o", a.Mode, perm)
				}
			}
		}
		const atime, mtime = 1400000000, 1500000000
		// escape reports a failed step whose message shows nothing of the host.
		escape := func(name, op string, args ...any) pyStep {
			return pyStep{Name: name, Op: op, Args: args, want: "error", check: func(t *testing.T, v json.RawMessage) {
				if msg := decodeValue[string](t, name, v); strings.Contains(msg, "root:") || strings.Contains(msg, victim) {
					t.Errorf("%s: error text shows content from outside the home: %s", name, msg)
				}
			}}
		}
		steps = append(steps,
			pyStep{Name: "stat", Op: "stat", Args: []any{"/meta.txt"}, check: wantAttrs(100, sIFREG, 0)},
			pyStep{Name: "lstat", Op: "lstat", Args: []any{"/meta.txt"}, check: wantAttrs(100, sIFREG, 0)},
			pyStep{Name: "stat-dir", Op: "stat", Args: []any{"/dirs"}, check: wantAttrs(-1, sIFDIR, 0)},
			pyStep{Name: "listdir_attr", Op: "listdir_attr", Args: []any{"/dirs"}, check: func(t *testing.T, v json.RawMessage) {
				entries := decodeValue[[]pyAttrs](t, "listdir_attr", v)
				seen := map[string]bool{}
				for _, e := range entries {
					seen[e.Filename] = true
					switch e.Filename {
					case "sub":
						if !strings.HasPrefix(e.Longname, "d") || e.Mode&sIFMT != sIFDIR {
							t.Errorf("directory entry: longname %q, mode %o; want a 'd' longname and a directory mode", e.Longname, e.Mode)
						}
					case "file.bin":
						if !strings.HasPrefix(e.Longname, "-") || !strings.Contains(e.Longname, " 1234 ") || e.Size != 1234 {
							t.Errorf("file entry: longname %q, size %d; want an ls-style line with size 1234", e.Longname, e.Size)
						}
					default:
						t.Errorf("unexpected entry %q in /dirs", e.Filename)
					}
					if !strings.HasSuffix(e.Longname, e.Filename) {
						t.Errorf("longname %q does not end with the name %q", e.Longname, e.Filename)
					}
				}
				if !seen["sub"] || !seen["file.bin"] {
					t.Errorf("listdir_attr /dirs = %v, want sub and file.bin", entries)
				}
			}},
			pyStep{Name: "chmod", Op: "chmod", Args: []any{"/meta.txt", 0o640}},
			pyStep{Name: "stat-after-chmod", Op: "stat", Args: []any{"/meta.txt"}, check: wantAttrs(100, sIFREG, 0o640)},
			pyStep{Name: "utime", Op: "utime", Args: []any{"/meta.txt", atime, mtime}},
			pyStep{Name: "stat-after-utime", Op: "stat", Args: []any{"/meta.txt"}, check: func(t *testing.T, v json.RawMessage) {
				if a := decodeValue[pyAttrs](t, "stat", v); a.Mtime != mtime {
					t.Errorf("mtime after utime: %d, want %d", a.Mtime, mtime)
				}
			}},
			pyStep{Name: "truncate", Op: "truncate", Args: []any{"/trunc.bin", 10}},
			pyStep{Name: "rename-onto-existing", Op: "rename", Args: []any{"/ren-a", "/ren-b"}, want: "error"},
			pyStep{Name: "rename", Op: "rename", Args: []any{"/ren-a", "/ren-c"}},
			pyStep{Name: "posix_rename", Op: "posix_rename", Args: []any{"/px-a", "/px-b"}},
			pyStep{Name: "mkdir", Op: "mkdir", Args: []any{"/newdir"}},
			pyStep{Name: "mkdir-existing", Op: "mkdir", Args: []any{"/newdir"}, want: "error"},
			pyStep{Name: "rmdir", Op: "rmdir", Args: []any{"/emptydir"}},
			pyStep{Name: "rmdir-non-empty", Op: "rmdir", Args: []any{"/dirs"}, want: "error"},
			pyStep{Name: "remove", Op: "remove", Args: []any{"/gone.txt"}},
			pyStep{Name: "remove-missing", Op: "remove", Args: []any{"/gone.txt"}, want: "FileNotFoundError", code: fxNoSuchFile},
			pyStep{Name: "append", Op: "append", Args: []any{"/app.txt", " world"}},
			pyStep{Name: "write-at-offset", Op: "write_at", Args: []any{"/rw.txt", 3, "XYZ"}},
			pyStep{Name: "statvfs", Op: "statvfs", Args: []any{"/"}, check: func(t *testing.T, v json.RawMessage) {
				s := decodeValue[map[string]uint64](t, "statvfs", v)
				if s["bsize"] == 0 || s["blocks"] == 0 || s["bavail"] > s["blocks"] {
					t.Errorf("statvfs on the local backend: %v, want a block size and a block count", s)
				}
			}},
			pyStep{Name: "read-missing", Op: "read", Args: []any{"/missing.txt"}, want: "FileNotFoundError", code: fxNoSuchFile},
			pyStep{Name: "stat-missing", Op: "stat", Args: []any{"/missing.txt"}, want: "FileNotFoundError", code: fxNoSuchFile},
			pyStep{Name: "symlink", Op: "symlink", Args: []any{"/meta.txt", "/made-link"}, want: "PermissionError", code: fxPermissionDenied},
			pyStep{Name: "readlink", Op: "readlink", Args: []any{"/etc-link"}, want: "PermissionError", code: fxPermissionDenied},
			pyStep{Name: "normalize-dotdot", Op: "normalize", Args: []any{"../../.."}, check: func(t *testing.T, v json.RawMessage) {
				if p := decodeValue[string](t, "normalize", v); p != "/" {
					t.Errorf("normalize ../../.. = %q, want / (the home)", p)
				}
			}},
			escape("get-dotdot", "get", "../../etc/passwd", filepath.Join(local, "esc-dotdot")),
			escape("get-absolute", "get", "/etc/passwd", filepath.Join(local, "esc-absolute")),
			escape("read-absolute", "read", "/etc/passwd"),
			escape("listdir-dir-symlink", "listdir", "/etc-link"),
			escape("read-through-dir-symlink", "read", "/etc-link/passwd"),
			escape("stat-through-dir-symlink", "stat", "/etc-link/passwd"),
			escape("read-file-symlink", "read", "/passwd-link"),
			escape("get-outside", "get", "/outside-link/victim.txt", filepath.Join(local, "esc-outside")),
			escape("put-outside", "put", small, "/outside-link/pwned"),
			escape("mkdir-outside", "mkdir", "/outside-link/pwned-dir"),
			escape("remove-outside", "remove", "/outside-link/victim.txt"),
			escape("rename-outside", "rename", "/rw.txt", "/outside-link/moved"),
			pyStep{Name: "exec", Op: "exec", Args: []any{"ls"}, check: func(t *testing.T, v json.RawMessage) {
				r := decodeValue[struct {
					Exit           int
					Stdout, Stderr string
				}](t, "exec", v)
				if r.Exit == 0 || !strings.Contains(r.Stderr, "SFTP only") || r.Stdout != "" {
					t.Errorf("exec_command(\"ls\"): exit %d, stdout %q, stderr %q; want a non-zero exit and \"SFTP only\" on stderr", r.Exit, r.Stdout, r.Stderr)
				}
			}},
		)

		res := runParamiko(t, d, plan(alice, "key", steps), "")
		if res.Transport == nil || res.Transport.HostKeyType != "ssh-ed25519" || res.Transport.HostKey != hostKey {
			t.Errorf("paramiko negotiated host key %+v, want the daemon's ssh-ed25519 key", res.Transport)
		}
		checkSteps(t, steps, res)

		for _, x := range xfers {
			remote := fmt.Sprintf("xfer-%d", x.size)
			checkSum(t, "paramiko put (on disk)", filepath.Join(home, remote), x.sum)
			checkSum(t, "paramiko get", x.back, x.sum)
			d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/"+remote,
				"bytes", x.size, "outcome", "ok"), 10*time.Second)
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "publickey", "outcome", "ok",
			"fingerprint", alice.Fingerprint()), 10*time.Second)

		// The disk shows what each call claimed to do.
		if fi, err := os.Stat(filepath.Join(home, "meta.txt")); err != nil {
			t.Errorf("meta.txt: %v", err)
		} else {
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("chmod 0640: the file on disk has mode %v", fi.Mode().Perm())
			}
			if fi.ModTime().Unix() != mtime {
				t.Errorf("utime: the file on disk has mtime %d, want %d", fi.ModTime().Unix(), mtime)
			}
		}
		checkSum(t, "meta.txt after chmod and utime", filepath.Join(home, "meta.txt"), metaSum)
		if got := fileContent(t, filepath.Join(home, "trunc.bin")); got != string(truncData[:10]) {
			t.Errorf("truncate to 10: the file on disk holds %q", got)
		}
		for name, want := range map[string]string{
			"ren-b": "B-content", "ren-c": "A-content", "px-b": "PX-A",
			"app.txt": "hello world", "rw.txt": "012XYZ6789",
		} {
			if got := fileContent(t, filepath.Join(home, name)); got != want {
				t.Errorf("%s on disk holds %q, want %q", name, got, want)
			}
		}
		for _, gone := range []string{"ren-a", "px-a", "gone.txt", "emptydir", "made-link", "moved"} {
			if exists(t, filepath.Join(home, gone)) {
				t.Errorf("%s still exists on disk", gone)
			}
		}
		if fi, err := os.Stat(filepath.Join(home, "newdir")); err != nil || !fi.IsDir() {
			t.Errorf("mkdir /newdir: no directory on disk (%v)", err)
		}
		if !exists(t, filepath.Join(home, "dirs", "file.bin")) {
			t.Errorf("a refused rmdir removed the directory's content")
		}
		for _, f := range []string{"esc-dotdot", "esc-absolute", "esc-outside"} {
			if data, err := os.ReadFile(filepath.Join(local, f)); err == nil && len(data) > 0 {
				t.Errorf("escape %s downloaded %d bytes", f, len(data))
			}
		}
		if entries, err := os.ReadDir(outside); err != nil || len(entries) != 1 {
			t.Errorf("the directory outside the home changed: %d entries (%v)", len(entries), err)
		}
		if got := fileContent(t, filepath.Join(outside, "victim.txt")); got != victim {
			t.Errorf("the file outside the home changed: %q", got)
		}
	})

	t.Run("PasswordAndPermissions", func(t *testing.T) {
		sum := writeRandomFile(t, filepath.Join(chome, "readme.bin"), 4096)
		writeFileT(t, filepath.Join(chome, "keep.txt"), "keep")
		src := filepath.Join(local, "carol-src")
		writeFileT(t, src, "carol's upload")
		back := filepath.Join(local, "carol-back")
		denied := func(name, op string, args ...any) pyStep {
			return pyStep{Name: name, Op: op, Args: args, want: "PermissionError", code: fxPermissionDenied}
		}
		steps := []pyStep{
			{Name: "listdir", Op: "listdir", Args: []any{"/"}, check: func(t *testing.T, v json.RawMessage) {
				if names := decodeValue[[]string](t, "listdir", v); strings.Join(names, ",") != "keep.txt,readme.bin" {
					t.Errorf("listdir / = %v, want keep.txt and readme.bin", names)
				}
			}},
			{Name: "get", Op: "get", Args: []any{"/readme.bin", back}},
			denied("put", "put", src, "/upload.txt"),
			denied("overwrite", "put", src, "/keep.txt"),
			denied("append", "append", "/keep.txt", "more"),
			denied("mkdir", "mkdir", "/d"),
			denied("remove", "remove", "/keep.txt"),
			denied("rename", "rename", "/keep.txt", "/renamed.txt"),
		}
		checkSteps(t, steps, runParamiko(t, d, plan(carol, "password", steps), carol.Password))
		checkSum(t, "carol's download", back, sum)
		if exists(t, filepath.Join(chome, "upload.txt")) || exists(t, filepath.Join(chome, "d")) || exists(t, filepath.Join(chome, "renamed.txt")) {
			t.Errorf("a refused call changed carol's home")
		}
		if got := fileContent(t, filepath.Join(chome, "keep.txt")); got != "keep" {
			t.Errorf("keep.txt after refused writes holds %q", got)
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "carol", "method", "password", "outcome", "ok"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "denied", "proto", "sftp", "user", "carol", "op", "upload", "path", "/upload.txt"), 10*time.Second)
	})

	t.Run("WrongPassword", func(t *testing.T) {
		wrong := carol.Password + "-wrong"
		d.ForbidInLogs(wrong)
		mark := d.LogMark()
		res := runParamiko(t, d, plan(carol, "password", nil), wrong)
		if res.Connect.OK || res.Connect.Type != "AuthenticationException" {
			t.Errorf("wrong password: connect outcome %+v, want AuthenticationException", res.Connect)
		}
		d.WaitLogSince(t, mark, logMatch("msg", "login", "user", "carol", "method", "password", "outcome", "failed"), 10*time.Second)
	})

	t.Run("WrongHostKey", func(t *testing.T) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		p := plan(alice, "key", []pyStep{{Name: "put", Op: "put", Args: []any{filepath.Join(local, "src-1"), "/mitm"}}})
		p.HostKey = base64.StdEncoding.EncodeToString(other.Marshal())
		writeRandomFile(t, filepath.Join(local, "src-1"), 1)
		res := runParamiko(t, d, p, "")
		if res.Connect.OK || !strings.Contains(res.Connect.Msg, "host key") {
			t.Errorf("a pinned host key that the server lacks: connect outcome %+v, want \"Bad host key\"", res.Connect)
		}
		if exists(t, filepath.Join(home, "mitm")) {
			t.Errorf("the client uploaded despite the host key mismatch")
		}
	})
}

// TestParamikoMemoryBackend runs paramiko against the in-memory backend,
// which has no file system to report sizes for: statvfs must fail as
// unsupported, not with a made-up answer.
func TestParamikoMemoryBackend(t *testing.T) {
	requireParamiko(t)
	u := newUser(t, "mem")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Backend: "memory"})
	local := t.TempDir()
	src := filepath.Join(local, "src")
	sum := writeRandomFile(t, src, 1<<20+1)
	back := filepath.Join(local, "back")
	steps := []pyStep{
		{Name: "mkdir", Op: "mkdir", Args: []any{"/d"}},
		{Name: "put", Op: "put", Args: []any{src, "/d/f"}},
		{Name: "stat", Op: "stat", Args: []any{"/d/f"}, check: func(t *testing.T, v json.RawMessage) {
			if a := decodeValue[pyAttrs](t, "stat", v); a.Size != 1<<20+1 || a.Mode&sIFMT != sIFREG {
				t.Errorf("stat /d/f: %+v, want a regular file of %d bytes", a, 1<<20+1)
			}
		}},
		{Name: "write-at-offset", Op: "write_at", Args: []any{"/d/small", 0, "0123456789"}, want: "FileNotFoundError"},
		{Name: "append-creates", Op: "append", Args: []any{"/d/small", "0123456789"}},
		{Name: "write-at-offset-existing", Op: "write_at", Args: []any{"/d/small", 3, "XYZ"}},
		{Name: "read-back", Op: "read", Args: []any{"/d/small"}, check: func(t *testing.T, v json.RawMessage) {
			if r := decodeValue[struct{ Head string }](t, "read", v); r.Head != "012XYZ6789" {
				t.Errorf("after r+ write at offset 3: %q, want 012XYZ6789", r.Head)
			}
		}},
		{Name: "get", Op: "get", Args: []any{"/d/f", back}},
		{Name: "statvfs", Op: "statvfs", Args: []any{"/"}, want: "error", code: fxOpUnsupported, check: func(t *testing.T, v json.RawMessage) {
			if msg := decodeValue[string](t, "statvfs", v); !strings.Contains(strings.ToLower(msg), "unsupported") {
				t.Errorf("statvfs on the memory backend failed with %q, want an \"unsupported\" error", msg)
			}
		}},
		{Name: "remove", Op: "remove", Args: []any{"/d/f"}},
		{Name: "read-removed", Op: "read", Args: []any{"/d/f"}, want: "FileNotFoundError", code: fxNoSuchFile},
	}
	checkSteps(t, steps, runParamiko(t, d, pyPlan{
		Host: "127.0.0.1", Port: d.Port, User: u.Name, Auth: "key", KeyFile: u.KeyFile,
		HostKey: ed25519HostKey(t, d), Steps: steps,
	}, ""))
	checkSum(t, "memory backend download", back, sum)
}
