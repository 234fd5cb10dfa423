package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCLIVersion(t *testing.T) {
	stdout, stderr, err := runCmd(t, 10*time.Second, wharfBin, "version")
	if err != nil {
		t.Fatalf("wharf version: %v\n%s", err, stderr)
	}
	if strings.TrimSpace(stdout) == "" {
		t.Errorf("wharf version printed nothing on stdout")
	}
}

func TestCLIConfigCheck(t *testing.T) {
	alice := newUser(t, "alice")
	dir := t.TempDir()
	// The harness's own config writer makes the valid file: the same kind of
	// file every other e2e test starts the daemon with.
	valid := &daemon{
		dir:        dir,
		Root:       filepath.Join(dir, "data"),
		StateDir:   filepath.Join(dir, "state"),
		ConfigPath: filepath.Join(dir, "wharf.yaml"),
		users:      []*testUser{alice},
	}
	if err := os.MkdirAll(valid.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	valid.writeConfig(t, "local", "")

	const plaintext = "hunter2-Plaintext-7f3a"
	// Line numbers matter: the typo is on line 10, the plaintext password on 11.
	bad := strings.Join([]string{
		"state_dir: " + filepath.Join(dir, "state2"), // 1
		"shutdown_grace: 5s",                         // 2
		"log: {level: info, format: json}",           // 3
		"sftp:",                                      // 4
		`  listen: "127.0.0.1:0"`,                    // 5
		"storage: {backend: memory}",                 // 6
		"users:",                                     // 7
		"  - name: alice",                            // 8
		"    home: /alice",                           // 9
		"    permisions: [list]",                     // 10
		`    password_hash: "` + plaintext + `"`,     // 11
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("Valid", func(t *testing.T) {
		stdout, stderr, err := runCmdOpts(t, 20*time.Second, cmdOpts{Dir: dir}, wharfBin, "config", "check", "--config", "wharf.yaml")
		if err != nil {
			t.Fatalf("config check of a valid file: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		if !strings.Contains(stdout, "wharf.yaml: ok") {
			t.Errorf("config check stdout = %q, want \"wharf.yaml: ok\"", stdout)
		}
	})

	t.Run("Problems", func(t *testing.T) {
		stdout, stderr, err := runCmdOpts(t, 20*time.Second, cmdOpts{Dir: dir}, wharfBin, "config", "check", "--config", "bad.yaml")
		if code := exitCode(err); code != 1 {
			t.Errorf("config check of a bad file: exit %d (%v), want 1", code, err)
		}
		for _, want := range []string{
			"bad.yaml:10: users[0].permisions",
			"bad.yaml:11: users[0].password_hash",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks a line starting %q:\n%s", want, redact(stderr, plaintext))
			}
		}
		if strings.Contains(stdout+stderr, plaintext) {
			t.Errorf("config check echoed the plaintext password")
		}
	})

	t.Run("MissingFile", func(t *testing.T) {
		stdout, stderr, err := runCmdOpts(t, 20*time.Second, cmdOpts{Dir: dir}, wharfBin, "config", "check", "--config", "absent.yaml")
		if exitCode(err) <= 0 {
			t.Errorf("config check of a missing file: exit %d (%v), want failure\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, stdout, stderr)
		}
	})
}

// TestCLIHashPassword logs in with hashes from `wharf hash-password` (argon2id
// by default, and --bcrypt) through sshpass and OpenSSH sftp.
func TestCLIHashPassword(t *testing.T) {
	requireClient(t, "sshpass")
	requireClient(t, "sftp")
	argon := newUser(t, "argon")
	argon.PasswordHash = hashPassword(t, argon.Password)
	crypt := newUser(t, "crypt")
	crypt.PasswordHash = hashPassword(t, crypt.Password, "--bcrypt")

	for _, c := range []struct {
		u      *testUser
		prefix string
	}{{argon, "$argon2id$"}, {crypt, "$2"}} {
		if !strings.HasPrefix(c.u.PasswordHash, c.prefix) {
			t.Errorf("hash for %s = %q, want prefix %q", c.u.Name, c.u.PasswordHash, c.prefix)
		}
	}
	if again := hashPassword(t, argon.Password); again == argon.PasswordHash {
		t.Errorf("two hashes of one password are equal: no random salt")
	}

	d := startDaemon(t, daemonOpts{Users: []*testUser{argon, crypt}})
	if stdout, stderr, err := runCmd(t, 20*time.Second, wharfBin, "config", "check", "--config", d.ConfigPath); err != nil {
		t.Errorf("config check of the daemon's config: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, u := range []*testUser{argon, crypt} {
		t.Run(u.Name, func(t *testing.T) {
			stdout, stderr, err := sftpPasswordBatch(t, d, u, u.Password, "mkdir /made\n")
			if err != nil {
				t.Fatalf("login with the hashed password: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			if fi, err := os.Stat(filepath.Join(d.HomeDir(u), "made")); err != nil || !fi.IsDir() {
				t.Errorf("mkdir after password login: %v", err)
			}
			wrong := strings.ToUpper(u.Password)
			d.ForbidInLogs(wrong)
			_, _, err = sftpPasswordBatch(t, d, u, wrong, "mkdir /made-wrong\n")
			if exitCode(err) <= 0 {
				t.Errorf("a wrong password was accepted (%v)", err)
			}
			if exists(t, filepath.Join(d.HomeDir(u), "made-wrong")) {
				t.Errorf("a wrong password created a directory")
			}
			d.WaitLog(t, logMatch("msg", "login", "user", u.Name, "method", "password", "outcome", "failed"), 10*time.Second)
		})
	}
}
