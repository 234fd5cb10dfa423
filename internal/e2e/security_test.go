package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurityChroot tries, through OpenSSH sftp, every way out of a home a
// client has: "..", absolute paths, symlinks planted on disk, renames across
// the boundary, client-made symlinks, and another user's home. Every refusal
// must be a failed command whose output names no host path.
func TestSecurityChroot(t *testing.T) {
	requireClient(t, "sftp")
	alice := newUser(t, "alice")
	bob := newUser(t, "bob")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, bob}})
	ahome, bhome := d.HomeDir(alice), d.HomeDir(bob)
	local := t.TempDir()

	// outside is a directory beyond every home whose content must stay
	// unreachable and unchanged; it stands in for /etc where a bug would write.
	outside := filepath.Join(t.TempDir(), "outside")
	victim := filepath.Join(outside, "victim.txt")
	victimSum := writeRandomFile(t, victim, 64)
	victimInfo, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}

	writeRandomFile(t, filepath.Join(ahome, "alice-marker.txt"), 10)
	writeRandomFile(t, filepath.Join(bhome, "bob-secret.txt"), 10)
	for link, to := range map[string]string{
		"etc-link":     "/etc",
		"passwd-link":  "/etc/passwd",
		"outside-link": outside,
		"bob-link":     bhome,
		"rel-link":     "../bob/bob-secret.txt",
	} {
		if err := os.Symlink(to, filepath.Join(ahome, link)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("ParentStaysAtRoot", func(t *testing.T) {
		stdout, stderr, err := sftpBatch(t, d, alice, "cd ..\npwd\nls ..\ncd ../../..\npwd\nls -1 /\n")
		if err != nil {
			t.Fatalf("cd ../ls ..: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		assertNoHostPath(t, d, "cd ..", stdout, stderr)
		if n := strings.Count(stdout, "Remote working directory: /\n"); n != 2 {
			t.Errorf("pwd after cd .. should print / twice, got:\n%s", stdout)
		}
		if !strings.Contains(stdout, "alice-marker.txt") {
			t.Errorf("ls .. / ls / should show the home's content:\n%s", stdout)
		}
		for _, leak := range []string{"bob-secret", "bob\n", "alice\n"} {
			if strings.Contains(stdout, leak) {
				t.Errorf("listing above home leaks %q:\n%s", leak, stdout)
			}
		}
	})

	// Each command must fail; out (when the command downloads) must not receive
	// anything from outside the home.
	escapes := []struct {
		name  string
		batch string // %[1]s = a local download target
	}{
		{"get-dotdot", "get ../../etc/passwd %[1]s"},
		{"get-deep-dotdot", "get ../../../../../../../../etc/passwd %[1]s"},
		{"get-absolute", "get /etc/passwd %[1]s"},
		{"ls-absolute", "ls /etc"},
		{"ls-dotdot", "ls ../../etc"},
		{"ls-dir-symlink", "ls etc-link/"},
		{"cd-dir-symlink", "cd etc-link"},
		{"get-through-dir-symlink", "get etc-link/passwd %[1]s"},
		{"get-file-symlink", "get passwd-link %[1]s"},
		{"get-relative-symlink", "get rel-link %[1]s"},
		{"get-other-home", "get ../bob/bob-secret.txt %[1]s"},
		{"ls-other-home", "ls ../bob"},
		{"get-via-link-to-other-home", "get bob-link/bob-secret.txt %[1]s"},
		{"ls-outside-link", "ls outside-link/"},
		{"get-outside-link", "get outside-link/victim.txt %[1]s"},
		{"put-outside-link", "put " + victim + " outside-link/pwned"},
		{"mkdir-outside-link", "mkdir outside-link/pwned-dir"},
		{"rm-outside-link", "rm outside-link/victim.txt"},
		{"rename-into-outside-link", "rename alice-marker.txt outside-link/moved"},
		{"chmod-outside-link", "chmod 777 outside-link/victim.txt"},
		{"symlink", "symlink alice-marker.txt made-link"},
		{"ln-s", "ln -s /etc/passwd made-link2"},
		{"ln-s-relative", "ln -s alice-marker.txt made-link3"},
	}
	for _, e := range escapes {
		t.Run(e.name, func(t *testing.T) {
			out := filepath.Join(local, e.name)
			cmd := fmt.Sprintf(e.batch, out)
			stdout, stderr, err := sftpBatch(t, d, alice, cmd+"\n")
			if code := exitCode(err); code <= 0 {
				t.Errorf("%q should fail, got exit %d (%v)\nstdout:\n%s\nstderr:\n%s", cmd, code, err, stdout, stderr)
			}
			assertNoHostPath(t, d, cmd, stdout, stderr)
			if strings.Contains(stdout+stderr, "root:x:0:0") {
				t.Errorf("%q printed /etc/passwd", cmd)
			}
			// A listing that got through would print entries of the target.
			for _, l := range sftpListing(stdout) {
				for _, leak := range []string{"passwd", "hostname", "victim.txt", "bob-secret.txt"} {
					if strings.HasSuffix(strings.TrimSpace(l), leak) {
						t.Errorf("%q lists %q from outside the home:\n%s", cmd, leak, stdout)
					}
				}
			}
			if data, err := os.ReadFile(out); err == nil && len(data) > 0 {
				t.Errorf("%q downloaded %d bytes", cmd, len(data))
			}
		})
	}

	t.Run("OutsideUntouched", func(t *testing.T) {
		entries, err := os.ReadDir(outside)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "victim.txt" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("directory outside the home changed: %v", names)
		}
		checkSum(t, "file outside the home", victim, victimSum)
		if fi, err := os.Stat(victim); err == nil && fi.Mode() != victimInfo.Mode() {
			t.Errorf("file outside the home changed mode to %v after a chmod attempt", fi.Mode())
		}
		for _, name := range []string{"made-link", "made-link2", "made-link3"} {
			if exists(t, filepath.Join(ahome, name)) {
				t.Errorf("client-requested symlink %s exists on disk", name)
			}
		}
		if !exists(t, filepath.Join(ahome, "alice-marker.txt")) {
			t.Errorf("alice-marker.txt moved by a refused rename")
		}
	})

	t.Run("RenameAcrossBoundary", func(t *testing.T) {
		for i, dst := range []string{"../outside-r", "../../outside-r", "/../outside-r"} {
			name := fmt.Sprintf("to-move-%d", i)
			writeRandomFile(t, filepath.Join(ahome, name), 10)
			// Either outcome is acceptable as long as the file stays in the home.
			stdout, stderr, _ := sftpBatch(t, d, alice, fmt.Sprintf("rename %s %s\n", name, dst))
			assertNoHostPath(t, d, "rename "+dst, stdout, stderr)
			for _, p := range []string{
				filepath.Join(d.Root, "outside-r"),
				filepath.Join(filepath.Dir(d.Root), "outside-r"),
				filepath.Join(filepath.Dir(filepath.Dir(d.Root)), "outside-r"),
			} {
				if exists(t, p) {
					t.Fatalf("rename %s %s created %s outside the home", name, dst, p)
				}
			}
			moved := exists(t, filepath.Join(ahome, "outside-r"))
			if !moved && !exists(t, filepath.Join(ahome, name)) {
				t.Errorf("rename %s %s: the file vanished from the home", name, dst)
			}
			if moved {
				if err := os.Remove(filepath.Join(ahome, "outside-r")); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	t.Run("UsersIsolated", func(t *testing.T) {
		for _, c := range []struct {
			u          *testUser
			own, other string
		}{
			{alice, "alice-marker.txt", "bob-secret.txt"},
			{bob, "bob-secret.txt", "alice-marker.txt"},
		} {
			stdout, stderr, err := sftpBatch(t, d, c.u, "ls -1 /\n-ls -1 ..\n-ls -1 ../..\n")
			if err != nil {
				t.Fatalf("%s: ls: %v\n%s", c.u.Name, err, stderr)
			}
			assertNoHostPath(t, d, c.u.Name+" ls", stdout, stderr)
			if !strings.Contains(stdout, c.own) || strings.Contains(stdout, c.other) {
				t.Errorf("%s sees the wrong files:\n%s", c.u.Name, stdout)
			}
		}
		out := sftpFails(t, d, bob, "get ../alice/alice-marker.txt "+filepath.Join(local, "bob-steals")+"\n")
		if exists(t, filepath.Join(local, "bob-steals")) {
			t.Errorf("bob downloaded alice's file:\n%s", out)
		}
	})
}
