package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// puttyKey converts the user's OpenSSH key to PuTTY's .ppk format, as a
// WinSCP user would with PuTTYgen.
func puttyKey(t *testing.T, u *testUser) string {
	t.Helper()
	ppk := filepath.Join(t.TempDir(), u.Name+".ppk")
	stdout, stderr, err := runCmd(t, 30*time.Second, requireClient(t, "puttygen"), u.KeyFile, "-O", "private", "-o", ppk)
	if err != nil {
		t.Fatalf("puttygen: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return ppk
}

// psftpLoggedIn is what psftp prints once the SFTP session is up.
const psftpLoggedIn = "Remote working directory is /"

// psftpRun runs `psftp -b` as u against d, pinning the daemon's ed25519 host
// key. auth holds the authentication flags (-i KEY.ppk, -pw PASSWORD, ...).
// psftp stops at the first failing command and then exits non-zero, unless
// keepGoing (-be). HOME points at an empty directory so that no saved PuTTY
// session or cached host key of the developer's takes part.
func psftpRun(t *testing.T, d *daemon, u *testUser, hostKey string, auth []string, script string, keepGoing bool) (stdout, stderr string, err error) {
	t.Helper()
	psftp := requireClient(t, "psftp")
	args := append([]string{"-P", strconv.Itoa(d.Port), "-batch", "-noagent", "-no-trivial-auth",
		"-hostkey", hostKey, "-b", writeBatch(t, script), "-bc"}, auth...)
	if keepGoing {
		args = append(args, "-be")
	}
	args = append(args, target(u))
	return runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"HOME=" + t.TempDir()}}, psftp, args...)
}

// psftpOK runs psftpRun with the key and fails the test unless psftp exits 0.
func psftpOK(t *testing.T, d *daemon, u *testUser, ppk, script string) string {
	t.Helper()
	stdout, stderr, err := psftpRun(t, d, u, d.HostKeyFP, []string{"-i", ppk}, script, false)
	if err != nil {
		t.Fatalf("psftp: %v\nscript:\n%s\nstdout:\n%s\nstderr:\n%s", err, script, stdout, stderr)
	}
	return stdout
}

// TestPSFTP drives one daemon with PuTTY's psftp, whose SSH core is the one
// inside WinSCP: keys converted to .ppk, a pinned host key, the batch
// commands of a scripted transfer, resume, passwords and escape attempts.
func TestPSFTP(t *testing.T) {
	requireClient(t, "psftp")
	requireClient(t, "puttygen")
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})
	ppk := puttyKey(t, alice)
	home := d.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()

	t.Run("Transfers", func(t *testing.T) {
		for _, size := range []int64{0, 1, 1<<20 + 1, 64 << 20} {
			t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
				if size > 8<<20 && testing.Short() {
					t.Skip("large transfer skipped in -short mode")
				}
				src := filepath.Join(local, fmt.Sprintf("src-%d", size))
				back := filepath.Join(local, fmt.Sprintf("back-%d", size))
				sum := writeRandomFile(t, src, size)
				name := fmt.Sprintf("psftp-%d", size)
				psftpOK(t, d, alice, ppk, fmt.Sprintf("put %q /%s\nget /%s %q\n", src, name, name, back))
				checkSum(t, "psftp put (on disk)", filepath.Join(home, name), sum)
				checkSum(t, "psftp get", back, sum)
				d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/"+name,
					"bytes", size, "outcome", "ok"), 10*time.Second)
				d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "download", "path", "/"+name,
					"bytes", size, "outcome", "ok"), 10*time.Second)
			})
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "publickey", "outcome", "ok",
			"fingerprint", alice.Fingerprint()), 10*time.Second)
	})

	t.Run("DirectoryOps", func(t *testing.T) {
		src := filepath.Join(local, "ops-src")
		sum := writeRandomFile(t, src, 2345)
		out := psftpOK(t, d, alice, ppk, fmt.Sprintf(
			"mkdir /pd\nmkdir /pd/sub\nput %q /pd/a\nren /pd/a /pd/b\nchmod 600 /pd/b\nls /pd\n", src))
		if exists(t, filepath.Join(home, "pd", "a")) {
			t.Errorf("/pd/a still exists after ren")
		}
		checkSum(t, "renamed file", filepath.Join(home, "pd", "b"), sum)
		if fi, err := os.Stat(filepath.Join(home, "pd", "b")); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("chmod 600: the file on disk has mode %v", fi.Mode().Perm())
		}
		var sawDir, sawFile bool
		for _, l := range strings.Split(out, "\n") {
			switch {
			case strings.HasSuffix(l, " sub"):
				sawDir = true
				if !strings.HasPrefix(l, "d") {
					t.Errorf("directory longname does not start with 'd': %q", l)
				}
			case strings.HasSuffix(l, " b"):
				sawFile = true
				if !strings.HasPrefix(l, "-rw-------") || !strings.Contains(l, " 2345 ") {
					t.Errorf("file longname is not ls-style (-rw-------, size 2345): %q", l)
				}
			}
		}
		if !sawDir || !sawFile {
			t.Errorf("ls /pd lacks sub or b:\n%s", out)
		}
		assertNoHostPath(t, d, "psftp ls", out)

		// A non-empty directory cannot be removed, and psftp says so with a non-zero exit.
		stdout, stderr, err := psftpRun(t, d, alice, d.HostKeyFP, []string{"-i", ppk}, "rmdir /pd\n", false)
		if exitCode(err) <= 0 || !strings.Contains(stdout, psftpLoggedIn) || !exists(t, filepath.Join(home, "pd", "b")) {
			t.Errorf("rmdir of a non-empty directory: exit %d (%v), want a refusal that keeps the content\nstdout:\n%s\nstderr:\n%s",
				exitCode(err), err, stdout, stderr)
		}

		psftpOK(t, d, alice, ppk, "del /pd/b\nrmdir /pd/sub\nrmdir /pd\n")
		if exists(t, filepath.Join(home, "pd")) {
			t.Errorf("/pd still exists after del and rmdir")
		}
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "rename", "path", "/pd/a"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "remove", "path", "/pd/b"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "rmdir", "path", "/pd"), 10*time.Second)
	})

	t.Run("Resume", func(t *testing.T) {
		const size, prefix = 3<<20 + 7, 1<<20 + 3
		src := filepath.Join(local, "resume-src")
		// What an interrupted upload leaves behind.
		sum, data := brokenTransfer(t, src, filepath.Join(home, "resume"), size, prefix)
		partial := filepath.Join(local, "resume-partial")
		if err := os.WriteFile(partial, data[:777], 0o644); err != nil {
			t.Fatal(err)
		}
		out := psftpOK(t, d, alice, ppk, fmt.Sprintf("reput %q /resume\nreget /resume %q\n", src, partial))
		if !strings.Contains(out, "restarting at file position "+strconv.Itoa(prefix)) {
			t.Errorf("reput did not resume at %d:\n%s", prefix, out)
		}
		checkSum(t, "reput", filepath.Join(home, "resume"), sum)
		checkSum(t, "reget", partial, sum)
		// Only the missing tail crossed the wire: the server honoured the offset.
		d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/resume",
			"bytes", size-prefix, "outcome", "ok"), 10*time.Second)
	})

	t.Run("Password", func(t *testing.T) {
		src := filepath.Join(local, "pw-src")
		sum := writeRandomFile(t, src, 5000)
		pwfile := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pwfile, []byte(alice.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			auth []string
		}{
			{"pw", []string{"-pw", alice.Password}},
			{"pwfile", []string{"-pwfile", pwfile}},
		} {
			mark := d.LogMark()
			remote := "/pw-" + c.name
			stdout, stderr, err := psftpRun(t, d, alice, d.HostKeyFP, c.auth, fmt.Sprintf("put %q %s\n", src, remote), false)
			if err != nil {
				t.Fatalf("psftp %s: %v\nstdout:\n%s\nstderr:\n%s", c.name, err, stdout, redact(stderr, alice.Password))
			}
			checkSum(t, "upload after password login ("+c.name+")", filepath.Join(home, remote), sum)
			d.WaitLogSince(t, mark, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "ok"), 10*time.Second)
		}

		wrong := alice.Password + "x"
		d.ForbidInLogs(wrong)
		mark := d.LogMark()
		stdout, stderr, err := psftpRun(t, d, alice, d.HostKeyFP, []string{"-pw", wrong}, fmt.Sprintf("put %q /pw-wrong\n", src), false)
		if exitCode(err) <= 0 || strings.Contains(stdout, psftpLoggedIn) {
			t.Errorf("wrong password: exit %d (%v), want refusal\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, stdout, stderr)
		}
		if exists(t, filepath.Join(home, "pw-wrong")) {
			t.Errorf("a file was uploaded with a wrong password")
		}
		d.WaitLogSince(t, mark, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "failed"), 10*time.Second)
	})

	t.Run("Refusals", func(t *testing.T) {
		src := filepath.Join(local, "refused-src")
		writeRandomFile(t, src, 100)
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		stranger := newUser(t, "alice") // alice's name, another key
		cases := []struct {
			name    string
			u       *testUser
			hostKey string
			auth    []string
			why     string // in psftp's stderr: the refusal has the intended cause
		}{
			{"unknown-host-key", alice, ssh.FingerprintSHA256(other), []string{"-i", ppk}, "host key"},
			{"wrong-key", stranger, d.HostKeyFP, []string{"-i", puttyKey(t, stranger)}, "refused our key"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				remote := "/refused-" + c.name
				stdout, stderr, err := psftpRun(t, d, c.u, c.hostKey, c.auth, fmt.Sprintf("put %q %s\n", src, remote), false)
				if exitCode(err) <= 0 || strings.Contains(stdout, psftpLoggedIn) || !strings.Contains(strings.ToLower(stderr), c.why) {
					t.Errorf("exit %d (%v), want a refused login (%q)\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, c.why, stdout, stderr)
				}
				if exists(t, filepath.Join(home, remote)) {
					t.Errorf("the file was uploaded anyway")
				}
			})
		}
	})

	t.Run("Escapes", func(t *testing.T) {
		if err := os.Symlink("/etc", filepath.Join(home, "etc-link")); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range []string{
			"get ../../etc/passwd OUT",
			"get /etc/passwd OUT",
			"cd /etc",
			"cd ../../etc",
			"cd etc-link",
			"ls etc-link",
			"get etc-link/passwd OUT",
			"get etc-link/hostname OUT",
		} {
			out := filepath.Join(local, fmt.Sprintf("escape-%d", i))
			cmd = strings.ReplaceAll(cmd, "OUT", strconv.Quote(out))
			t.Run(strings.Fields(cmd)[0]+"-"+strconv.Itoa(i), func(t *testing.T) {
				stdout, stderr, err := psftpRun(t, d, alice, d.HostKeyFP, []string{"-i", ppk}, cmd+"\n", false)
				if exitCode(err) <= 0 || !strings.Contains(stdout, psftpLoggedIn) {
					t.Errorf("%q: exit %d (%v), want a session in which the command fails\nstdout:\n%s\nstderr:\n%s", cmd, exitCode(err), err, stdout, stderr)
				}
				assertNoHostPath(t, d, cmd, stdout, stderr)
				if strings.Contains(stdout, "root:x:0:0") || strings.Contains(stdout, "Listing directory") && strings.Contains(stdout, " passwd") {
					t.Errorf("%q shows the host's /etc:\n%s", cmd, stdout)
				}
				if data, err := os.ReadFile(out); err == nil && len(data) > 0 {
					t.Errorf("%q downloaded %d bytes", cmd, len(data))
				}
			})
		}

		// Climbing above the home is not an error: it stays at the home.
		out := psftpOK(t, d, alice, ppk, "cd ../../..\npwd\n")
		if !strings.Contains(out, "Remote directory is /\n") {
			t.Errorf("pwd after cd ../../.. should print /:\n%s", out)
		}
	})
}
