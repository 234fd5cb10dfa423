package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pkg/sftp"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// TestReloadUnderLoad edits the config of a running `wharf serve` while
// alice uploads 64 MiB with OpenSSH sftp: bob is added, carol's key is
// rotated and dave is removed. Alice's upload must finish byte-identical;
// dave's open session must be closed within 5 s of the edit (carol's, on
// the rotated-out key, too); bob must log in within 3 s (an edit applies once
// two reads 1 s apart agree); carol's old key
// must be refused and her new one accepted.
func TestReloadUnderLoad(t *testing.T) {
	sftpBin := requireClient(t, "sftp")
	alice, carol, dave := newUser(t, "alice"), newUser(t, "carol"), newUser(t, "dave")
	bob, carolNew := newUser(t, "bob"), newUser(t, "carol")
	for _, u := range []*testUser{alice, bob, carol, carolNew, dave} {
		u.Password = "" // keys only: nothing to hash
	}
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, carol, dave}})

	// Alice's upload, capped at 100 Mbit/s so that it lasts about 5 s and
	// the whole edit happens while it runs.
	const size = 64 << 20
	local := filepath.Join(t.TempDir(), "big.bin")
	sum := writeRandomFile(t, local, size)
	batch := writeBatch(t, "put "+local+" /big.bin\n")
	args := append(sftpArgs(d, alice), "-l", "100000", "-b", batch, target(alice))
	type result struct {
		stdout, stderr string
		err            error
		at             time.Time
	}
	upload := make(chan result, 1)
	go func() {
		stdout, stderr, err := runCmd(t, time.Minute, sftpBin, args...)
		upload <- result{stdout, stderr, err, time.Now()}
	}()

	daveSess := reloadSession(t, d, dave)
	carolSess := reloadSession(t, d, carol)

	// Edit once the upload is well under way.
	remote := filepath.Join(d.HomeDir(alice), "big.bin")
	waitFor(t, 20*time.Second, "alice's upload to pass 8 MiB", func() bool {
		// With uploads.atomic (the default) the bytes gather under a hidden
		// temporary name until the upload completes.
		return tempSize(filepath.Dir(remote), "big.bin") >= 8<<20
	})
	mark := d.LogMark()
	edited := time.Now()
	reloadWriteUsers(t, d, alice, bob, carolNew)

	// bob, polled with the Go client for a precise time, then OpenSSH.
	waitFor(t, 3*time.Second-time.Since(edited), "bob to log in within 3s of the edit", func() bool {
		c, err := reloadDial(t, d, bob)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	t.Logf("bob logged in %v after the edit", time.Since(edited).Round(time.Millisecond))
	reloaded := d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 5*time.Second)
	select {
	case r := <-upload:
		t.Fatalf("alice's upload ended before the reload was logged (%v), so it did not overlap the edit: %v\n%s", reloaded["time"], r.err, r.stderr)
	default:
	}

	for _, s := range []struct {
		who  string
		c    *ssh.Client
		want string
	}{{"dave", daveSess, "user removed"}, {"carol", carolSess, "key " + carol.Fingerprint() + " removed"}} {
		closed := make(chan struct{})
		go func() { _ = s.c.Wait(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5*time.Second - time.Since(edited)):
			t.Fatalf("%s's session still open 5s after the edit", s.who)
		}
		d.WaitLogSince(t, mark, logMatch("msg", "session revoked", "user", s.who, "reason", s.want), time.Second)
	}
	t.Logf("sessions closed %v after the edit", time.Since(edited).Round(time.Millisecond))

	sftpOK(t, d, bob, "ls\n")
	sftpOK(t, d, carolNew, "ls\n")
	sftpFails(t, d, carol, "ls\n")
	sftpFails(t, d, dave, "ls\n")
	d.WaitLogSince(t, mark, logMatch("msg", "login", "outcome", "failed", "user", "carol", "fingerprint", carol.Fingerprint()), 5*time.Second)

	r := <-upload
	if r.err != nil {
		t.Fatalf("alice's upload failed: %v\n%s", r.err, r.stderr)
	}
	if got := sha256File(t, remote); got != sum {
		t.Fatalf("alice's upload: sha256 %s, want %s", got, sum)
	}
	t.Logf("alice's upload finished %v after the edit", r.at.Sub(edited).Round(time.Millisecond))
	for _, l := range d.logsSince(mark) {
		if logMatch("msg", "session revoked", "user", "alice")(l) {
			t.Errorf("alice's session was revoked: %v", l)
		}
	}
	d.WaitLogSince(t, mark, logMatch("msg", "user added", "user", "bob"), time.Second)
	d.WaitLogSince(t, mark, logMatch("msg", "user removed", "user", "dave"), time.Second)
	d.WaitLogSince(t, mark, logMatch("msg", "user changed", "user", "carol"), time.Second)
}

// reloadWriteUsers replaces the users of the daemon's config file, keeping
// every other setting, the way careful tools write: a new file renamed
// over the old one.
func reloadWriteUsers(t *testing.T, d *daemon, users ...*testUser) {
	t.Helper()
	data, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatalf("read config: %v", err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	var list []yamlUser
	for _, u := range users {
		list = append(list, yamlUser{Name: u.Name, Home: u.Home, PublicKeys: []string{u.PubKey}})
	}
	c["users"] = list
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	tmp := filepath.Join(filepath.Dir(d.ConfigPath), ".wharf.yaml.tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	if err := os.Rename(tmp, d.ConfigPath); err != nil {
		t.Fatalf("replace config: %v", err)
	}
}

// reloadDial logs u in with the Go client, checking the host key against
// the known_hosts the harness wrote from state_dir.
func reloadDial(t *testing.T, d *daemon, u *testUser) (*ssh.Client, error) {
	t.Helper()
	pem, err := os.ReadFile(u.KeyFile)
	if err != nil {
		t.Fatalf("read key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatalf("parse key: %v", err)
	}
	hostKeys, err := knownhosts.New(d.KnownHosts)
	if err != nil {
		t.Fatalf("known_hosts: %v", err)
	}
	return ssh.Dial("tcp", d.Addr, &ssh.ClientConfig{
		User:            u.Name,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
}

// reloadSession opens an SFTP session for u and checks it works.
func reloadSession(t *testing.T, d *daemon, u *testUser) *ssh.Client {
	t.Helper()
	c, err := reloadDial(t, d, u)
	if err != nil {
		t.Fatalf("login %s: %v", u.Name, err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		c.Close()
		t.Fatalf("sftp %s: %v", u.Name, err)
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	if _, err := sc.ReadDir("/"); err != nil {
		t.Fatalf("%s lists its home: %v", u.Name, err)
	}
	return c
}

// waitFor polls cond every 20 ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%d tries)", what, i+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRun is one `wharf config check`: its output, exit code, wall time
// and peak resident memory.
type checkRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
	maxRSS         int64 // bytes
}

// measureCheck runs `wharf config check` on path. The child's peak memory
// is its VmHWM, sampled every millisecond from the exec on: the kernel's
// rusage of the child is no use, since Linux carries the forking process's
// own peak (this test binary's, hundreds of MiB after other tests) into the
// child's maxrss at exec.
func measureCheck(t *testing.T, timeout time.Duration, path string) checkRun {
	t.Helper()
	for range 3 { // a run too short to be sampled once is run again
		r, samples := runCheck(t, timeout, path)
		if samples > 0 {
			return r
		}
	}
	t.Fatalf("wharf config check %s: three runs ended before their memory could be read", filepath.Base(path))
	return checkRun{}
}

func runCheck(t *testing.T, timeout time.Duration, path string) (checkRun, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wharfBin, "config", "check", "--config", path)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start wharf config check: %v", err)
	}
	exited := make(chan struct{})
	var peak int64
	samples := 0
	var sampler sync.WaitGroup
	sampler.Go(func() {
		pid := cmd.Process.Pid
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			// Before the exec the child still shows the test's memory.
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "wharf" {
				if _, hwm, err := procstat.Mem(pid); err == nil {
					peak, samples = max(peak, hwm), samples+1
				}
			}
			select {
			case <-exited:
				return
			case <-tick.C:
			}
		}
	})
	err := cmd.Wait()
	close(exited)
	sampler.Wait()
	r := checkRun{stdout: out.String(), stderr: errb.String(), code: exitCode(err), took: time.Since(start), maxRSS: peak}
	if ctx.Err() != nil {
		t.Fatalf("wharf config check %s still running after %v", filepath.Base(path), timeout)
	}
	return r, samples
}

// TestConfigCheckRefusesSpecialFiles: `wharf config check` on a config that
// is a FIFO, a link to /dev/zero or a file over 16 MiB answers at once with
// the file and the reason, in little memory (it used to hang on the FIFO
// and eat memory on /dev/zero without end).
func TestConfigCheckRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 17<<20); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{fifo, "not a regular file: a FIFO"},
		{zero, "not a regular file: a device"},
		{big, "larger than 16 MiB"},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			r := measureCheck(t, 10*time.Second, tt.path)
			t.Logf("exit %d in %v, peak RSS %d MiB: %s", r.code, r.took.Round(time.Millisecond), r.maxRSS>>20, strings.TrimSpace(r.stderr))
			if r.code != 1 || !strings.Contains(r.stderr, tt.path+": "+tt.want) {
				t.Errorf("config check: exit %d, stderr %q; want exit 1 naming %s: %s", r.code, r.stderr, tt.path, tt.want)
			}
			if r.maxRSS > 100<<20 {
				t.Errorf("peak RSS %d MiB; want under 100 MiB", r.maxRSS>>20)
			}
		})
	}
}

// TestConfigCheckAliasBomb: a config of 800 KB whose 200,000 aliases name
// one bad user (the attack's shape), and a "billion laughs" of nested
// aliases, are refused with one line, in under 200 MB (it took 6 s, 520 MB
// and printed 600,000 lines). A file of 300 problems prints 50 of them and
// a count of the rest.
func TestConfigCheckAliasBomb(t *testing.T) {
	dir := t.TempDir()
	fanOut := "users: [&u {name: bob, home: bob, pasword_hash: x}" + strings.Repeat(", *u", 200_000) + "]\n"
	var nested strings.Builder
	nested.WriteString("x0: &l0 [" + strings.Repeat("{name: a, home: /a},", 9) + "{name: a, home: /a}]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&nested, "x%d: &l%d [%s*l%d]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), i-1)
	}
	nested.WriteString("users: *l9\n")
	var many strings.Builder
	for i := range 300 {
		fmt.Fprintf(&many, "unknown%d: x\n", i)
	}
	for _, tt := range []struct {
		name, doc string
		lines     int
		want      string
	}{
		{"fan-out.yaml", fanOut, 1, "repeats aliases too often"},
		{"nested.yaml", nested.String(), 1, "repeats aliases too often"},
		{"many.yaml", many.String(), 51, "and 250 more problems"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			r := measureCheck(t, 60*time.Second, path)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			t.Logf("%d KB: exit %d in %v, peak RSS %d MiB, %d lines", len(tt.doc)>>10, r.code, r.took.Round(time.Millisecond), r.maxRSS>>20, len(lines))
			if r.code != 1 || len(lines) != tt.lines || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("config check: exit %d, %d lines, first %q; want exit 1, %d lines, %q", r.code, len(lines), lines[0], tt.lines, tt.want)
			}
			if r.maxRSS > 200<<20 {
				t.Errorf("peak RSS %d MiB; want under 200 MiB", r.maxRSS>>20)
			}
		})
	}
}

// TestReloadRefusesSpecialFiles: the running daemon's config replaced by a
// link to a FIFO, then to /dev/zero: each reload fails with a log line
// naming the file, the daemon's memory stays flat, a live session and
// logins go on with the old config, SIGHUP is still answered, and the next
// regular file is applied.
func TestReloadRefusesSpecialFiles(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.Password, bob.Password = "", ""
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})
	sess := reloadSession(t, d, alice)
	good, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	rssBefore := processRSS(t, d.proc.cmd.Process.Pid)
	for _, tt := range []struct{ target, want string }{
		{fifo, "not a regular file: a FIFO"},
		{"/dev/zero", "not a regular file: a device"},
	} {
		mark := d.LogMark()
		tmp := d.ConfigPath + ".link"
		if err := os.Symlink(tt.target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, d.ConfigPath); err != nil {
			t.Fatal(err)
		}
		l := d.WaitLogSince(t, mark, logMatch("msg", "invalid config"), 10*time.Second)
		if got := fmt.Sprint(l["err"]); !strings.Contains(got, d.ConfigPath+": "+tt.want) {
			t.Errorf("invalid config = %q; want it to name %s: %s", got, d.ConfigPath, tt.want)
		}
		d.WaitLogSince(t, mark, logMatch("msg", "reload failed, keeping the previous config"), 5*time.Second)
		mark = d.LogMark()
		if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.WaitLogSince(t, mark, logMatch("msg", "reload failed, keeping the previous config", "trigger", "signal"), 5*time.Second)
		if c, err := reloadDial(t, d, alice); err != nil {
			t.Errorf("alice cannot log in while the config is %s: %v", tt.target, err)
		} else {
			c.Close()
		}
	}
	if rss := processRSS(t, d.proc.cmd.Process.Pid); rss > rssBefore+64<<20 {
		t.Errorf("daemon RSS grew from %d to %d MiB", rssBefore>>20, rss>>20)
	}

	// A regular file again, with bob: applied.
	if err := os.Remove(d.ConfigPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ConfigPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	mark := d.LogMark()
	reloadWriteUsers(t, d, alice, bob)
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 10*time.Second)
	if c, err := reloadDial(t, d, bob); err != nil {
		t.Errorf("bob cannot log in once the config is a regular file again: %v", err)
	} else {
		c.Close()
	}
	if _, _, err := sess.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Errorf("alice's session did not survive: %v", err)
	}
}

// processRSS is the resident memory of process pid, from /proc.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc status: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
