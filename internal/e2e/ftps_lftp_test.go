package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lftpSettings make lftp (GnuTLS, like FileZilla) insist on TLS for control
// and data, accept the self-signed certificate, fail fast instead of
// retrying, stop at the first failed command, and use passive mode.
const lftpSettings = `set cmd:fail-exit yes
set ftp:ssl-force true
set ftp:ssl-protect-data true
set ssl:verify-certificate false
set net:max-retries 1
set net:timeout 10
set ftp:passive-mode true
set xfer:clobber on
`

// lftpRun runs `lftp -d -f SCRIPT` logged in as u on site (explicit: the
// explicit port; implicit: an ftps:// URL). The password travels in
// LFTP_PASSWORD (open --env-password), never on the command line. stderr
// carries lftp's debug output: every command and reply.
func lftpRun(t *testing.T, f *ftpsDaemon, u *testUser, implicit bool, body string) (stdout, stderr string, err error) {
	t.Helper()
	lftp := requireClient(t, "lftp")
	open := fmt.Sprintf("open --env-password -u %s -p %s 127.0.0.1\n", u.Name, f.ExplicitPort())
	if implicit {
		open = fmt.Sprintf("open --env-password -u %s ftps://%s\n", u.Name, f.Implicit)
	}
	script := filepath.Join(t.TempDir(), "lftp-script")
	if err := os.WriteFile(script, []byte(lftpSettings+open+body), 0o600); err != nil {
		t.Fatalf("write lftp script: %v", err)
	}
	// HOME keeps ~/.lftprc, bookmarks and the transfer log out of the test.
	env := []string{"LFTP_PASSWORD=" + u.Password, "HOME=" + t.TempDir()}
	stdout, stderr, err = runCmdOpts(t, clientTimeout, cmdOpts{Env: env}, lftp, "-d", "-f", script)
	return stdout, redact(stderr, u.Password), err
}

// lftpOK runs lftpRun and fails the test unless lftp exits 0.
func lftpOK(t *testing.T, f *ftpsDaemon, u *testUser, implicit bool, body string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := lftpRun(t, f, u, implicit, body)
	if err != nil {
		t.Fatalf("lftp: %v\nscript:\n%s\nstdout:\n%s\nstderr (debug):\n%s", err, body, stdout, lftpTail(stderr, 80))
	}
	return stdout, stderr
}

// lftpTail keeps the last n lines of a long debug output.
func lftpTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("... %d lines omitted ...\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

// lftpSection returns the lines lftp printed between `echo ==name==` and the next
// `echo ==...==` marker.
func lftpSection(stdout, name string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "==") && strings.HasSuffix(l, "==") {
			in = l == "=="+name+"=="
			continue
		}
		if in && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestFTPSLftp drives explicit and implicit FTPS with lftp, whose GnuTLS
// stack behaves like FileZilla's: it resumes the control connection's TLS
// session on data connections, which tls_session_reuse: required (the
// default, used here) insists on.
func TestFTPSLftp(t *testing.T) {
	requireClient(t, "lftp")
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	home := f.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()

	t.Run("Transfers", func(t *testing.T) {
		sizes := []int64{0, 1, 1<<20 + 1, 64 << 20}
		if testing.Short() {
			sizes = sizes[:3] // 64 MiB skipped in -short mode
		}
		var body strings.Builder
		sums := map[int64]string{}
		for _, size := range sizes {
			src := filepath.Join(local, fmt.Sprintf("src-%d", size))
			sums[size] = writeRandomFile(t, src, size)
			fmt.Fprintf(&body, "put %s -o lftp-%d\nget lftp-%d -o %s\n", src, size, size, filepath.Join(local, fmt.Sprintf("back-%d", size)))
		}
		_, debug := lftpOK(t, f, alice, false, body.String())
		for _, size := range sizes {
			name := fmt.Sprintf("lftp-%d", size)
			checkSum(t, name+" upload (on disk)", filepath.Join(home, name), sums[size])
			checkSum(t, name+" download", filepath.Join(local, fmt.Sprintf("back-%d", size)), sums[size])
			f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
				"path", "/"+name, "bytes", size, "outcome", "ok"), 10*time.Second)
			f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "download",
				"path", "/"+name, "bytes", size, "outcome", "ok"), 10*time.Second)
		}
		checkPassivePorts(t, f, "lftp transfers", debug)
		if !strings.Contains(debug, "PROT P") {
			t.Errorf("lftp did not protect the data connections (no PROT P in its debug output)")
		}
	})

	t.Run("Resume", func(t *testing.T) {
		const size, part = 3<<20 + 17, 1 << 20
		src := filepath.Join(local, "resume-src")
		// What an interrupted upload leaves behind.
		sum, data := brokenTransfer(t, src, filepath.Join(home, "resume-up"), size, part)
		if err := os.WriteFile(filepath.Join(home, "resume-down"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(local, "resume-down")
		if err := os.WriteFile(dst, data[:part], 0o644); err != nil {
			t.Fatal(err)
		}
		mark := f.LogMark()
		_, debug := lftpOK(t, f, alice, false, fmt.Sprintf("put -c %s -o resume-up\nget -c resume-down -o %s\n", src, dst))
		checkSum(t, "put -c (on disk)", filepath.Join(home, "resume-up"), sum)
		checkSum(t, "get -c", dst, sum)
		if n := strings.Count(debug, fmt.Sprintf("REST %d", part)); n < 2 {
			t.Errorf("lftp sent \"REST %d\" %d times, want one for put -c and one for get -c", part, n)
		}
		f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "op", "upload", "path", "/resume-up",
			"bytes", size-part, "outcome", "ok"), 10*time.Second)
		f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "op", "download", "path", "/resume-down",
			"bytes", size-part, "outcome", "ok"), 10*time.Second)
		checkPassivePorts(t, f, "lftp resume", debug)
	})

	t.Run("FileOps", func(t *testing.T) {
		src := filepath.Join(local, "ops-src")
		writeRandomFile(t, src, 4321)
		body := fmt.Sprintf(`mkdir ops-d
put %s -o ops-d/a
mv ops-d/a ops-d/b
cd ops-d
echo ==cls==
cls -1
echo ==ls==
ls
echo ==end==
cd ..
rm ops-d/b
rmdir ops-d
`, src)
		stdout, debug := lftpOK(t, f, alice, false, body)
		if got := lftpSection(stdout, "cls"); len(got) != 1 || strings.TrimSpace(got[0]) != "b" {
			t.Errorf("cls -1 in ops-d printed %q, want [b]", got)
		}
		ls := lftpSection(stdout, "ls")
		if len(ls) != 1 || !strings.HasSuffix(ls[0], " b") || !strings.Contains(ls[0], "4321") {
			t.Errorf("ls in ops-d printed %q, want one long line for b of 4321 bytes", ls)
		}
		if !strings.Contains(debug, "---> MLSD") {
			// lftp 4.9 takes MLSD as supported only from a FEAT line "MLST
			// facts..."; ftpserverlib lists a bare "MLST" (RFC 3659 allows
			// it), so lftp lists with LIST. ftplib covers MLSD.
			t.Logf("lftp listed with LIST, not MLSD")
		}
		if exists(t, filepath.Join(home, "ops-d")) {
			t.Errorf("ops-d is still on disk after rm and rmdir")
		}
		for _, op := range []string{"mkdir", "rename", "remove", "rmdir"} {
			f.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "user", "alice", "op", op), 10*time.Second)
		}
		assertNoHostPath(t, f.daemon, "lftp file operations", stdout, debug)
	})

	t.Run("Implicit", func(t *testing.T) {
		src := filepath.Join(local, "implicit-src")
		sum := writeRandomFile(t, src, 1<<20+1)
		back := filepath.Join(local, "implicit-back")
		_, debug := lftpOK(t, f, alice, true, fmt.Sprintf("put %s -o implicit\nget implicit -o %s\n", src, back))
		checkSum(t, "implicit put (on disk)", filepath.Join(home, "implicit"), sum)
		checkSum(t, "implicit get", back, sum)
		if strings.Contains(debug, "---> AUTH TLS") {
			t.Errorf("lftp sent AUTH TLS on the implicit port: it did not speak TLS from the first byte:\n%s", lftpTail(debug, 60))
		}
		checkPassivePorts(t, f, "lftp implicit", debug)
	})
}
