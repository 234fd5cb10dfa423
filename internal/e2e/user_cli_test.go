package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// userInfo is one element of `wharf user list --json`.
type userInfo struct {
	Name         string   `json:"name"`
	Home         string   `json:"home"`
	Keys         int      `json:"keys"`
	Fingerprints []string `json:"fingerprints"`
	Password     bool     `json:"password"`
	Permissions  []string `json:"permissions"`
	Protocols    []string `json:"protocols"`
	Disabled     bool     `json:"disabled"`
	File         string   `json:"file"`
	Line         int      `json:"line"`
}

// wharfUser runs `wharf user ARGS --config path` and fails the test unless
// it exits 0.
func wharfUser(t *testing.T, path, stdin string, args ...string) string {
	t.Helper()
	args = append(append([]string{"user"}, args...), "--config", path)
	stdout, stderr, err := runCmdOpts(t, time.Minute, cmdOpts{Stdin: stdin}, wharfBin, args...)
	if err != nil {
		t.Fatalf("wharf %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args[:2], " "), err, stdout, stderr)
	}
	return stdout
}

func listUsers(t *testing.T, path string) map[string]userInfo {
	t.Helper()
	var infos []userInfo
	out := wharfUser(t, path, "", "list", "--json")
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	m := map[string]userInfo{}
	for _, u := range infos {
		m[u.Name] = u
	}
	return m
}

func configCheck(t *testing.T, path string) {
	t.Helper()
	stdout, stderr, err := runCmd(t, 20*time.Second, wharfBin, "config", "check", "--config", path)
	if err != nil || !strings.Contains(stdout, ": ok") {
		t.Fatalf("config check after the edits: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
}

// TestCLIUser drives the real `wharf user` commands against a commented
// config and checks the result with `wharf config check`.
func TestCLIUser(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	dir := t.TempDir()
	tmpl, err := os.ReadFile(filepath.Join("testdata", "user_cli.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	orig := strings.NewReplacer("STATE_DIR", filepath.Join(dir, "state"), "DATA_DIR", filepath.Join(dir, "data")).Replace(string(tmpl))
	path := filepath.Join(dir, "wharf.yaml")
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}

	out := wharfUser(t, path, alice.Password+"\n", "add", "alice", "--home", "/alice",
		"--key-file", alice.KeyFile+".pub", "--password-stdin", "--permissions", "list,download,upload,mkdir")
	if !strings.Contains(out, `added user "alice"`) {
		t.Errorf("add printed %q", out)
	}
	wharfUser(t, path, "", "add", "bob", "--home", "/bob", "--key", bob.PubKey, "--protocols", "sftp")
	wharfUser(t, path, "", "key", "add", "alice", bob.PubKey)
	configCheck(t, path)

	users := listUsers(t, path)
	a, b := users["alice"], users["bob"]
	if len(users) != 3 || !slices.Equal(a.Fingerprints, []string{alice.Fingerprint(), bob.Fingerprint()}) || !a.Password ||
		!slices.Equal(a.Permissions, []string{"list", "download", "upload", "mkdir"}) || a.File != path {
		t.Errorf("list --json: alice = %+v (of %d users)", a, len(users))
	}
	if b.Keys != 1 || b.Password || !slices.Equal(b.Protocols, []string{"sftp"}) || len(b.Permissions) != 7 {
		t.Errorf("list --json: bob = %+v", b)
	}

	// A refused edit: clear error, exit 1, file untouched.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"add", "alice", "--home", "/elsewhere"},
		{"key", "add", "bob", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 truncated"},
		{"add", "carol", "--home", "/carol", "--permissions", "list,erase"},
	} {
		args = append(append([]string{"user"}, args...), "--config", path)
		_, stderr, err := runCmd(t, time.Minute, wharfBin, args...)
		if code := exitCode(err); code != 1 || !strings.HasPrefix(stderr, "wharf: ") {
			t.Errorf("wharf %s: exit %d (%v), stderr %q; want exit 1 and an error", strings.Join(args[1:3], " "), code, err, stderr)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("a refused edit changed the file:\n%s", after)
	}

	wharfUser(t, path, "", "key", "remove", "alice", bob.Fingerprint())
	wharfUser(t, path, "", "disable", "bob")
	if !listUsers(t, path)["bob"].Disabled {
		t.Error("bob is not disabled")
	}
	wharfUser(t, path, "", "remove", "bob")
	configCheck(t, path)

	users = listUsers(t, path)
	if _, ok := users["bob"]; ok || len(users) != 2 || !slices.Equal(users["alice"].Fingerprints, []string{alice.Fingerprint()}) {
		t.Errorf("after the removals: %+v", users)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	final := string(data)
	if strings.Contains(final, alice.Password) {
		t.Fatal("the config holds alice's plaintext password")
	}
	// Everything that was there is still there, byte for byte; alice's
	// entry is appended after the last one.
	if !strings.HasPrefix(final, orig) {
		t.Errorf("the original text was not kept:\n%s", final)
	}
}

// TestCLIUserLogin checks that a user added with `wharf user add` to the
// config of a running daemon can log in within 2 seconds, without a
// restart (hot reload), and that `wharf user remove` closes that user's
// open session.
func TestCLIUserLogin(t *testing.T) {
	requireClient(t, "sftp")
	d := startDaemon(t, daemonOpts{})
	carol := newUser(t, "carol")
	d.ForbidInLogs(carol.Password)
	mark := d.LogMark()
	wharfUser(t, d.ConfigPath, "", "add", "carol", "--home", "/carol", "--key", carol.PubKey)
	added := time.Now()
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 2*time.Second)
	sftpOK(t, d, carol, "mkdir /made-by-carol\n")
	if took := time.Since(added); took > 5*time.Second {
		t.Errorf("carol logged in %v after `wharf user add`", took)
	}
	if fi, err := os.Stat(filepath.Join(d.HomeDir(carol), "made-by-carol")); err != nil || !fi.IsDir() {
		t.Errorf("carol's mkdir did not land in her home: %v", err)
	}
	configCheck(t, d.ConfigPath)

	mark = d.LogMark()
	wharfUser(t, d.ConfigPath, "", "remove", "carol")
	d.WaitLogSince(t, mark, logMatch("msg", "config reloaded"), 2*time.Second)
	if _, _, err := sftpBatch(t, d, carol, "ls\n"); err == nil {
		t.Error("a removed user still logs in")
	}
}
