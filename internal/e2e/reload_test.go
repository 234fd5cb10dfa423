package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pkg/sftp"
)

// TestReloadUnderLoad edits the config of a running `wharf serve` while
// alice uploads 64 MiB with OpenSSH sftp: bob is added, carol's key is
// rotated and dave is removed. Alice's upload must finish byte-identical;
// dave's open session must be closed within 5 s of the edit (carol's, on
// the rotated-out key, too); bob must log in within 2 s; carol's old key
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
	waitFor(t, 2*time.Second-time.Since(edited), "bob to log in within 2s of the edit", func() bool {
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
