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

// curl exit codes the tests tell apart (see curl(1), EXIT CODES).
const (
	curlQuoteError = 21 // a -Q command failed
	curlPeerFailed = 60 // the host key did not match --hostpubsha256
)

// curlRun runs curl. -q comes first so that no ~/.curlrc takes part, and HOME
// points at an empty directory so that curl does not check the host key
// against the developer's ~/.ssh/known_hosts: each test pins it explicitly
// (--hostpubsha256) or opts out (-k).
func curlRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	curl := requireClient(t, "curl")
	full := append([]string{"-q", "-sS", "--fail", "--connect-timeout", "10"}, args...)
	return runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"HOME=" + t.TempDir()}}, curl, full...)
}

// curlOK runs curlRun and fails the test unless curl exits 0; it returns stdout.
func curlOK(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := curlRun(t, args...)
	if err != nil {
		t.Fatalf("curl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// curlURL is the sftp:// URL of a path in the user's home ("/" is the home).
func curlURL(d *daemon, p string) string {
	return fmt.Sprintf("sftp://127.0.0.1:%d%s", d.Port, p)
}

// curlKeyAuth authenticates with the user's key; the empty password after
// the colon keeps curl from prompting for one.
func curlKeyAuth(u *testUser) []string {
	return []string{"--key", u.KeyFile, "--pubkey", u.KeyFile + ".pub", "-u", u.Name + ":"}
}

// curlPin pins a host key by the base64 SHA-256 of its wire form: the
// daemon's fingerprint without "SHA256:", padded as base64 output would be.
func curlPin(fingerprint string) []string {
	b := strings.TrimPrefix(fingerprint, "SHA256:")
	for len(b)%4 != 0 {
		b += "="
	}
	return []string{"--hostpubsha256", b}
}

// curlArgs concatenates argument lists.
func curlArgs(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// TestCurl drives one daemon with curl's sftp:// support (libssh2 1.10),
// which is what many ETL tools embed. It offers no AES-GCM, ChaCha20 or ETM
// MACs, so every passing subtest shows that the default algorithm set still
// serves aes-ctr with hmac-sha2.
func TestCurl(t *testing.T) {
	requireClient(t, "curl")
	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may list and download, not upload
	carol.Permissions = []string{"list", "download"}
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, carol}})
	home, chome := d.HomeDir(alice), d.HomeDir(carol)
	for _, h := range []string{home, chome} {
		if err := os.MkdirAll(h, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	local := t.TempDir()
	key := curlArgs(curlKeyAuth(alice), curlPin(d.HostKeyFP))

	t.Run("Transfers", func(t *testing.T) {
		for _, size := range []int64{0, 1, 1<<20 + 1, 64 << 20} {
			t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
				if size > 8<<20 && testing.Short() {
					t.Skip("large transfer skipped in -short mode")
				}
				src := filepath.Join(local, fmt.Sprintf("src-%d", size))
				back := filepath.Join(local, fmt.Sprintf("back-%d", size))
				sum := writeRandomFile(t, src, size)
				name := fmt.Sprintf("/curl-%d", size)
				curlOK(t, curlArgs(key, []string{"-T", src, curlURL(d, name)})...)
				checkSum(t, "curl upload (on disk)", filepath.Join(home, name), sum)
				curlOK(t, curlArgs(key, []string{"-o", back, curlURL(d, name)})...)
				checkSum(t, "curl download", back, sum)
				d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", name,
					"bytes", size, "outcome", "ok"), 10*time.Second)
				d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "download", "path", name,
					"bytes", size, "outcome", "ok"), 10*time.Second)
			})
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "publickey", "outcome", "ok",
			"fingerprint", alice.Fingerprint()), 10*time.Second)
	})

	t.Run("PasswordInsecure", func(t *testing.T) {
		mark := d.LogMark()
		pw := []string{"-k", "-u", alice.Name + ":" + alice.Password}
		src := filepath.Join(local, "pw-src")
		back := filepath.Join(local, "pw-back")
		sum := writeRandomFile(t, src, 1<<20+1)
		curlOK(t, curlArgs(pw, []string{"-T", src, curlURL(d, "/pw-file")})...)
		checkSum(t, "upload after password login", filepath.Join(home, "pw-file"), sum)
		curlOK(t, curlArgs(pw, []string{"-o", back, curlURL(d, "/pw-file")})...)
		checkSum(t, "download after password login", back, sum)
		d.WaitLogSince(t, mark, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "ok"), 10*time.Second)
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
		wrong := alice.Password + "x"
		d.ForbidInLogs(wrong)
		cases := []struct {
			name string
			auth []string
			code int // 0: any non-zero exit
		}{
			{"other-host-key", curlArgs(curlKeyAuth(alice), curlPin(ssh.FingerprintSHA256(other))), curlPeerFailed},
			{"wrong-key", curlArgs(curlKeyAuth(stranger), curlPin(d.HostKeyFP)), 0},
			{"wrong-password", curlArgs([]string{"-u", alice.Name + ":" + wrong}, curlPin(d.HostKeyFP)), 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				remote := "/refused-" + c.name
				stdout, stderr, err := curlRun(t, curlArgs(c.auth, []string{"-T", src, curlURL(d, remote)})...)
				code := exitCode(err)
				if code <= 0 || (c.code != 0 && code != c.code) {
					t.Errorf("exit %d (%v), want a refusal (exit %d)\nstdout:\n%s\nstderr:\n%s", code, err, c.code, stdout, stderr)
				}
				if exists(t, filepath.Join(home, remote)) {
					t.Errorf("the file was uploaded anyway")
				}
			})
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "failed"), 10*time.Second)
	})

	t.Run("Listing", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(home, "lsdir", "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandomFile(t, filepath.Join(home, "lsdir", "file.bin"), 1234)

		long := curlOK(t, curlArgs(key, []string{curlURL(d, "/lsdir/")})...)
		var sawDir, sawFile bool
		for _, l := range strings.Split(strings.TrimSpace(long), "\n") {
			switch {
			case strings.HasSuffix(l, " child"):
				sawDir = true
				if !strings.HasPrefix(l, "d") {
					t.Errorf("directory longname does not start with 'd': %q", l)
				}
			case strings.HasSuffix(l, " file.bin"):
				sawFile = true
				if !strings.HasPrefix(l, "-") || !strings.Contains(l, " 1234 ") {
					t.Errorf("file longname is not ls-style ('-' mode, size 1234): %q", l)
				}
			}
		}
		if !sawDir || !sawFile {
			t.Errorf("listing of /lsdir/ lacks child or file.bin:\n%s", long)
		}

		names := map[string]bool{}
		for _, n := range strings.Fields(curlOK(t, curlArgs(key, []string{"-l", curlURL(d, "/lsdir/")})...)) {
			names[n] = true
		}
		delete(names, ".")
		delete(names, "..")
		if len(names) != 2 || !names["child"] || !names["file.bin"] {
			t.Errorf("curl -l /lsdir/ lists %v, want child and file.bin", names)
		}
		assertNoHostPath(t, d, "curl listing", long)
	})

	t.Run("Quote", func(t *testing.T) {
		sum := writeRandomFile(t, filepath.Join(home, "qa"), 500)
		root := curlURL(d, "/")
		quote := func(cmd string) (string, string, error) {
			// The URL names a directory: curl lists it after the quote
			// commands ran; the listing is not what this test is about.
			return curlRun(t, curlArgs(key, []string{"-Q", cmd, "-o", os.DevNull, root})...)
		}
		steps := []struct {
			cmd   string
			check func(t *testing.T)
		}{
			{"rename qa qb", func(t *testing.T) {
				if exists(t, filepath.Join(home, "qa")) {
					t.Errorf("qa still exists after rename")
				}
				checkSum(t, "renamed file", filepath.Join(home, "qb"), sum)
			}},
			{"chmod 600 qb", func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(home, "qb")); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("chmod 600 qb: %v (err %v)", fi, err)
				}
			}},
			{"mkdir qd", func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(home, "qd")); err != nil || !fi.IsDir() {
					t.Errorf("mkdir qd: no directory on disk (%v)", err)
				}
			}},
			{"rmdir qd", func(t *testing.T) {
				if exists(t, filepath.Join(home, "qd")) {
					t.Errorf("qd still exists after rmdir")
				}
			}},
			{"rm qb", func(t *testing.T) {
				if exists(t, filepath.Join(home, "qb")) {
					t.Errorf("qb still exists after rm")
				}
			}},
		}
		for _, s := range steps {
			if stdout, stderr, err := quote(s.cmd); err != nil {
				t.Errorf("-Q %q: %v\nstdout:\n%s\nstderr:\n%s", s.cmd, err, stdout, stderr)
				continue
			}
			s.check(t)
		}
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "rename", "path", "/qa"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "remove", "path", "/qb"), 10*time.Second)

		// Quote commands the server must refuse: curl reports a failed quote.
		writeRandomFile(t, filepath.Join(home, "qkeep"), 10)
		for _, cmd := range []string{"rm no-such-file", "rmdir no-such-dir", "symlink qkeep qlink"} {
			stdout, stderr, err := quote(cmd)
			if code := exitCode(err); code != curlQuoteError {
				t.Errorf("-Q %q: exit %d (%v), want %d (quote error)\nstdout:\n%s\nstderr:\n%s", cmd, code, err, curlQuoteError, stdout, stderr)
			}
			assertNoHostPath(t, d, "-Q "+cmd, stdout, stderr)
		}
		if exists(t, filepath.Join(home, "qlink")) {
			t.Errorf("a client symlink request created a link on disk")
		}
	})

	t.Run("CreateDirs", func(t *testing.T) {
		src := filepath.Join(local, "cd-src")
		sum := writeRandomFile(t, src, 777)
		stdout, stderr, err := curlRun(t, curlArgs(key, []string{"-T", src, curlURL(d, "/nodir/f")})...)
		if exitCode(err) <= 0 || exists(t, filepath.Join(home, "nodir")) {
			t.Errorf("upload into a missing directory without --ftp-create-dirs: exit %d (%v), want a failure and no directory\nstdout:\n%s\nstderr:\n%s",
				exitCode(err), err, stdout, stderr)
		}
		curlOK(t, curlArgs(key, []string{"--ftp-create-dirs", "-T", src, curlURL(d, "/cd1/cd2/f")})...)
		checkSum(t, "upload with --ftp-create-dirs", filepath.Join(home, "cd1", "cd2", "f"), sum)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "mkdir", "path", "/cd1/cd2"), 10*time.Second)
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
		curlOK(t, curlArgs(key, []string{"-C", "-", "-T", src, curlURL(d, "/resume")})...)
		checkSum(t, "resumed upload", filepath.Join(home, "resume"), sum)
		// Only the missing tail crossed the wire: the server honoured the offset.
		d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/resume",
			"bytes", size-prefix, "outcome", "ok"), 10*time.Second)
		curlOK(t, curlArgs(key, []string{"-C", "-", "-o", partial, curlURL(d, "/resume")})...)
		checkSum(t, "resumed download", partial, sum)
	})

	t.Run("NoUploadPermission", func(t *testing.T) {
		sum := writeRandomFile(t, filepath.Join(chome, "readme.txt"), 300)
		ckey := curlArgs(curlKeyAuth(carol), curlPin(d.HostKeyFP))
		back := filepath.Join(local, "carol-readme")
		curlOK(t, curlArgs(ckey, []string{"-o", back, curlURL(d, "/readme.txt")})...)
		checkSum(t, "carol's download", back, sum)

		src := filepath.Join(local, "carol-src")
		writeRandomFile(t, src, 100)
		for _, name := range []string{"/upload.txt", "/readme.txt"} {
			stdout, stderr, err := curlRun(t, curlArgs(ckey, []string{"-T", src, curlURL(d, name)})...)
			if exitCode(err) <= 0 {
				t.Errorf("upload to %s without upload/overwrite permission: exit %d (%v), want refusal\nstdout:\n%s\nstderr:\n%s",
					name, exitCode(err), err, stdout, stderr)
			}
			assertNoHostPath(t, d, "curl refused upload", stdout, stderr)
		}
		if exists(t, filepath.Join(chome, "upload.txt")) {
			t.Errorf("an upload without permission created the file")
		}
		checkSum(t, "carol's file after a refused overwrite", filepath.Join(chome, "readme.txt"), sum)
		d.WaitLog(t, logMatch("msg", "denied", "proto", "sftp", "user", "carol", "op", "upload", "path", "/upload.txt"), 10*time.Second)
	})
}
