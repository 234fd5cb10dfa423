package e2e

// Issue 12, item 6: names with control characters are refused at creation
// on both protocols, and a client path of 250,000 bytes reaches the error
// reply, the diagnostic log and the audit log at most 1 KiB long.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startFTPSAudit starts a daemon serving SFTP and FTPS (explicit only) with
// an audit log, and returns it with the audit log's path.
func startFTPSAudit(t *testing.T, u *testUser) (*ftpsDaemon, string) {
	t.Helper()
	lo, hi := freePassiveRange(t, passiveRangeSize)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	extra := fmt.Sprintf("ftps:\n  listen: \"127.0.0.1:0\"\n  implicit_listen: \"127.0.0.1:0\"\n  passive_ports: \"%d-%d\"\n"+
		"audit_log:\n  path: %q\n", lo, hi, audit)
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Extra: extra})
	f := &ftpsDaemon{daemon: d, PassiveLo: lo, PassiveHi: hi}
	f.readFTPS(t, 0)
	return f, audit
}

// seedGood creates the home (made at the first login otherwise) with one
// file, "good", the source of the rename attempts.
func seedGood(t *testing.T, home string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "good"), []byte("keep me"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// badEntries lists the names in dir that hold a control character.
func badEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read home: %v", err)
	}
	var bad []string
	for _, e := range entries {
		if strings.IndexFunc(e.Name(), func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			bad = append(bad, e.Name())
		}
	}
	return bad
}

const badNameMsg = "invalid file name: control characters are not allowed"

func TestBadNamesRefused(t *testing.T) {
	u := newUser(t, "alice")
	f, _ := startFTPSAudit(t, u)
	home := f.HomeDir(u)
	local := filepath.Join(t.TempDir(), "local.bin")
	writeRandomFile(t, local, 1000)
	seedGood(t, home)

	t.Run("openssh", func(t *testing.T) {
		for _, bad := range []string{"x\x01y", "esc\x1b[1m"} {
			for _, batch := range []string{
				fmt.Sprintf("put %s \"%s\"\n", local, bad),
				fmt.Sprintf("mkdir \"%s\"\n", bad),
				fmt.Sprintf("rename good \"%s\"\n", bad),
			} {
				out := sftpFails(t, f.daemon, u, batch)
				// OpenSSH's sftp prints the status name only ("dest
				// open ...: Failure"); paramiko below shows the message.
				if !strings.Contains(out, "Failure") {
					t.Errorf("sftp %q: output lacks the refusal:\n%s", batch, out)
				}
			}
		}
	})

	t.Run("paramiko", func(t *testing.T) {
		var steps []pyStep
		for i, bad := range []string{"a\r\nb", "x\x01", "nul\x7f"} {
			wantMsg := func(t *testing.T, v json.RawMessage) {
				var msg string
				if err := json.Unmarshal(v, &msg); err != nil || !strings.Contains(msg, badNameMsg) {
					t.Errorf("refusal says %s, want %q", v, badNameMsg)
				}
			}
			steps = append(steps,
				pyStep{Name: fmt.Sprintf("put %d", i), Op: "put", Args: []any{local, "/" + bad}, want: "error", check: wantMsg},
				pyStep{Name: fmt.Sprintf("mkdir %d", i), Op: "mkdir", Args: []any{"/" + bad}, want: "error", check: wantMsg},
				pyStep{Name: fmt.Sprintf("rename %d", i), Op: "rename", Args: []any{"/good", "/" + bad}, want: "error", check: wantMsg},
				pyStep{Name: fmt.Sprintf("posix_rename %d", i), Op: "posix_rename", Args: []any{"/good", "/" + bad}, want: "error", check: wantMsg},
			)
		}
		plan := pyPlan{Host: "127.0.0.1", Port: f.Port, User: u.Name, Auth: "key", KeyFile: u.KeyFile, HostKey: ed25519HostKey(t, f.daemon), Steps: steps}
		checkSteps(t, steps, runParamiko(t, f.daemon, plan, ""))
	})

	t.Run("ftplib", func(t *testing.T) {
		var steps []ftpStep
		for i, bad := range []string{"x\x01", "esc\x1b[1m", "del\x7f"} {
			// ftpserverlib's own words quote the argument as sent; the
			// cause, from vfs, names the path escaped.
			wantMsg := func(t *testing.T, o ftpOutcome) {
				if !strings.Contains(o.text(), badNameMsg) {
					t.Errorf("reply %q lacks %q", o.text(), badNameMsg)
				}
			}
			// 553 where ftpserverlib lets a driver choose the code (STOR,
			// RNTO); MKD answers 550 whatever the cause.
			steps = append(steps,
				ftpStep{Name: fmt.Sprintf("stor %d", i), Op: "stor", Args: []any{local, bad}, fail: 553, check: wantMsg},
				ftpStep{Name: fmt.Sprintf("mkd %d", i), Op: "mkd", Args: []any{bad}, fail: 5, check: wantMsg},
				ftpStep{Name: fmt.Sprintf("rename %d", i), Op: "rename", Args: []any{"good", bad}, fail: 553, check: wantMsg},
			)
		}
		runFtplib(t, f, u, "plain", steps)
	})

	if bad := badEntries(t, home); len(bad) > 0 {
		t.Errorf("names with control characters were created: %q", bad)
	}
	if data, err := os.ReadFile(filepath.Join(home, "good")); err != nil || string(data) != "keep me" {
		t.Errorf("the rename source changed: %q, %v", data, err)
	}
}

// longestRun is the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

func TestLongPathShownShort(t *testing.T) {
	const size = 250_000
	u := newUser(t, "alice")
	f, audit := startFTPSAudit(t, u)
	local := filepath.Join(t.TempDir(), "local.bin")
	writeRandomFile(t, local, 1000)
	seedGood(t, f.HomeDir(u))
	long := "/" + strings.Repeat("p", size-1) // only the path has runs of 'p'
	const maxShown = 1024 + 64                // 1 KiB of path and the marker's slack

	t.Run("paramiko", func(t *testing.T) {
		short := func(t *testing.T, v json.RawMessage) {
			var msg string
			_ = json.Unmarshal(v, &msg)
			if n := longestRun(msg, 'p'); n > maxShown || len(msg) > 2*maxShown {
				t.Errorf("reply of %d bytes holds %d bytes of the path", len(msg), n)
			}
		}
		steps := []pyStep{
			{Name: "stat", Op: "stat", Args: []any{long}, want: "error", check: short},
			{Name: "put", Op: "put", Args: []any{local, long}, want: "error", check: short},
			{Name: "mkdir", Op: "mkdir", Args: []any{long}, want: "error", check: short},
			{Name: "rename", Op: "rename", Args: []any{"/good", long}, want: "error", check: short},
			{Name: "remove", Op: "remove", Args: []any{long}, want: "error", check: short},
		}
		plan := pyPlan{Host: "127.0.0.1", Port: f.Port, User: u.Name, Auth: "key", KeyFile: u.KeyFile, HostKey: ed25519HostKey(t, f.daemon), Steps: steps}
		checkSteps(t, steps, runParamiko(t, f.daemon, plan, ""))
	})

	t.Run("ftplib", func(t *testing.T) {
		// ftpserverlib reads command lines of at most 4 KiB and hangs up
		// on a longer one: the 250,000-byte path ends the connection, and
		// nothing of it comes back.
		gone := func(t *testing.T, o ftpOutcome) {
			if o.OK || o.Code != nil {
				t.Errorf("a 250,000-byte command got a reply: %.300s", o.text())
			}
			if n := longestRun(o.text(), 'p'); n > maxShown {
				t.Errorf("reply holds %d bytes of the path", n)
			}
		}
		runFtplib(t, f, u, "plain", []ftpStep{{Name: "mkd", Op: "mkd", Args: []any{long[1:]}, fail: -1, check: gone}})

		// The longest path a command line carries: the cause in each
		// refusal, from vfs, is shortened. ftpserverlib's own words before
		// it ("Could not create <path> : ...") quote the argument whole:
		// no driver hook reaches that text, and the line limit bounds it.
		rel := long[1:4000]
		short := func(t *testing.T, o ftpOutcome) {
			if o.Code == nil || *o.Code < 500 {
				t.Errorf("no 5xx reply: %s: %.300s", o.Type, o.text())
			}
			// RNTO's cause names the source ("rename /good: ..."), not
			// the target.
			if o.Name != "rename" && !strings.Contains(o.text(), "…[truncated ") {
				t.Errorf("reply shows no shortened path: %.300s", o.text())
			}
			if len(o.text()) > 4096+maxShown+200 {
				t.Errorf("reply of %d bytes: more than the library's quote and a shortened cause", len(o.text()))
			}
			t.Logf("%s: %d bytes of reply, %d bytes of path in one piece", o.Name, len(o.text()), longestRun(o.text(), 'p'))
		}
		steps := []ftpStep{
			{Name: "stor", Op: "stor", Args: []any{local, rel}, fail: -1, check: short},
			{Name: "mkd", Op: "mkd", Args: []any{rel}, fail: -1, check: short},
			{Name: "size", Op: "size", Args: []any{rel}, fail: -1, check: short},
			{Name: "delete", Op: "delete", Args: []any{rel}, fail: -1, check: short},
			{Name: "rename", Op: "rename", Args: []any{"good", rel}, fail: -1, check: short},
		}
		runFtplib(t, f, u, "plain", steps)
	})

	// Every line was written before the client saw its reply, except the
	// audit log's, which the events write as they come: stop the daemon
	// so that all of them are on disk.
	f.stop(t)
	logs := f.RawLog()
	if n := longestRun(logs, 'p'); n > maxShown {
		t.Errorf("the diagnostic log holds %d bytes of the path in one piece", n)
	}
	data, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	if !strings.Contains(string(data), "…[truncated ") {
		t.Errorf("the audit log records no shortened path:\n%.2000s", data)
	}
	if n := longestRun(string(data), 'p'); n > maxShown {
		t.Errorf("the audit log holds %d bytes of the path in one piece", n)
	}
	// Ten requests carried 2.5 MB of path; what they left in the logs is
	// a small multiple of 1 KiB each, not of the path.
	if total := len(logs) + len(data); total > 200_000 {
		t.Errorf("the logs grew by %d bytes for ten requests", total)
	}
	t.Logf("diagnostic log %d bytes, audit log %d bytes", len(logs), len(data))
}
