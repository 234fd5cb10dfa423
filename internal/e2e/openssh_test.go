package e2e

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestOpenSSH drives one daemon with OpenSSH sftp, scp and ssh. The subtests
// share the daemon (starting one costs host key generation) and run in
// order; each uses its own remote names.
func TestOpenSSH(t *testing.T) {
	requireClient(t, "sftp")
	requireClient(t, "scp")
	requireClient(t, "ssh")

	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may list and download, not upload
	carol.Permissions = []string{"list", "download"}
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, carol}})
	home := d.HomeDir(alice)
	local := t.TempDir()
	// Some subtests plant files before the user's first login creates the home.
	for _, u := range []*testUser{alice, carol} {
		if err := os.MkdirAll(d.HomeDir(u), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Transfers", func(t *testing.T) {
		sizes := []int64{0, 1, 1<<20 + 1, 64 << 20}
		for _, size := range sizes {
			t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
				if size > 8<<20 && testing.Short() {
					t.Skip("large transfer skipped in -short mode")
				}
				src := filepath.Join(local, fmt.Sprintf("src-%d", size))
				sum := writeRandomFile(t, src, size)
				sftpName := fmt.Sprintf("sftp-%d", size)
				scpName := fmt.Sprintf("scp-%d", size)

				// sftp put, then get back.
				back := filepath.Join(local, "sftp-back-"+strconv.FormatInt(size, 10))
				sftpOK(t, d, alice, fmt.Sprintf("put %s /%s\nget /%s %s\n", src, sftpName, sftpName, back))
				checkSum(t, "sftp put (on disk)", filepath.Join(home, sftpName), sum)
				checkSum(t, "sftp get", back, sum)
				d.WaitLog(t, logMatch("msg", "transfer", "proto", "sftp", "user", "alice", "op", "upload",
					"path", "/"+sftpName, "bytes", size, "outcome", "ok"), 10*time.Second)
				d.WaitLog(t, logMatch("msg", "transfer", "proto", "sftp", "user", "alice", "op", "download",
					"path", "/"+sftpName, "bytes", size, "outcome", "ok"), 10*time.Second)

				// scp -s (explicit SFTP protocol) up, scp default (SFTP since OpenSSH 9.0) down.
				scpBack := filepath.Join(local, "scp-back-"+strconv.FormatInt(size, 10))
				runOK(t, "scp -s upload", "scp", append(append([]string{"-s"}, sftpArgs(d, alice)...),
					src, target(alice)+":/"+scpName)...)
				checkSum(t, "scp -s upload (on disk)", filepath.Join(home, scpName), sum)
				runOK(t, "scp download", "scp", append(sftpArgs(d, alice), target(alice)+":/"+scpName, scpBack)...)
				checkSum(t, "scp download", scpBack, sum)
			})
		}
	})

	t.Run("LoginLog", func(t *testing.T) {
		sftpOK(t, d, alice, "pwd\n")
		l := d.WaitLog(t, logMatch("msg", "login", "proto", "sftp", "user", "alice", "method", "publickey",
			"outcome", "ok", "fingerprint", alice.Fingerprint()), 10*time.Second)
		if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("login line remote = %q, want 127.0.0.1:PORT", r)
		}
		if id, _ := l["conn_id"].(string); id == "" {
			t.Errorf("login line has no conn_id: %v", l)
		}
	})

	t.Run("LegacySCPRefused", func(t *testing.T) {
		// scp -O runs "scp -t" through an exec request; wharf serves no exec.
		src := filepath.Join(local, "legacy-src")
		writeRandomFile(t, src, 1000)
		stdout, stderr, err := runCmd(t, 30*time.Second, requireClient(t, "scp"),
			append(append([]string{"-O"}, sftpArgs(d, alice)...), src, target(alice)+":/legacy")...)
		if code := exitCode(err); code <= 0 {
			t.Errorf("scp -O: exit %d (%v), want a non-zero exit\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
		}
		if exists(t, filepath.Join(home, "legacy")) {
			t.Errorf("scp -O created the file although it failed")
		}
		assertNoHostPath(t, d, "scp -O", stdout, stderr)
	})

	t.Run("Resume", func(t *testing.T) {
		const size = 3<<20 + 7
		src := filepath.Join(local, "resume-src")
		sum := writeRandomFile(t, src, size)
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		// An interrupted upload leaves a prefix of the file behind; plant
		// one on disk for reput and one for put -a, and a local prefix for reget.
		for name, n := range map[string]int{"resume-reput": 1<<20 + 3, "resume-puta": 12345} {
			if err := os.WriteFile(filepath.Join(home, name), data[:n], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		partial := filepath.Join(local, "resume-reget")
		if err := os.WriteFile(partial, data[:777], 0o644); err != nil {
			t.Fatal(err)
		}
		sftpOK(t, d, alice, fmt.Sprintf("reput %s /resume-reput\nput -a %s /resume-puta\nreget /resume-reput %s\n",
			src, src, partial))
		checkSum(t, "reput", filepath.Join(home, "resume-reput"), sum)
		// Only the missing tail crossed the wire: the server honoured the offset.
		d.WaitLog(t, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/resume-reput",
			"bytes", size-(1<<20+3), "outcome", "ok"), 10*time.Second)
		checkSum(t, "put -a", filepath.Join(home, "resume-puta"), sum)
		checkSum(t, "reget", partial, sum)
	})

	t.Run("RenameDeleteMkdir", func(t *testing.T) {
		src := filepath.Join(local, "ops-src")
		sum := writeRandomFile(t, src, 4096)
		sftpOK(t, d, alice, fmt.Sprintf("mkdir /ops\nput %s /ops/a\nrename /ops/a /ops/b\nmkdir /ops/sub\n", src))
		if exists(t, filepath.Join(home, "ops", "a")) {
			t.Errorf("/ops/a still exists after rename")
		}
		checkSum(t, "renamed file", filepath.Join(home, "ops", "b"), sum)
		if fi, err := os.Stat(filepath.Join(home, "ops", "sub")); err != nil || !fi.IsDir() {
			t.Errorf("mkdir /ops/sub: not a directory on disk (%v)", err)
		}
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "mkdir", "path", "/ops"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "rename", "path", "/ops/a"), 10*time.Second)

		// A non-empty directory cannot be removed.
		out := sftpFails(t, d, alice, "rmdir /ops\n")
		if !exists(t, filepath.Join(home, "ops", "b")) {
			t.Fatalf("rmdir of a non-empty directory removed its content; sftp said:\n%s", out)
		}

		sftpOK(t, d, alice, "rm /ops/b\nrmdir /ops/sub\nrmdir /ops\n")
		if exists(t, filepath.Join(home, "ops")) {
			t.Errorf("/ops still exists after rm and rmdir")
		}
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "remove", "path", "/ops/b"), 10*time.Second)
		d.WaitLog(t, logMatch("msg", "change", "user", "alice", "op", "rmdir", "path", "/ops"), 10*time.Second)

		// Deleting what is not there fails without side effects.
		sftpFails(t, d, alice, "rm /no-such-file\n")
	})

	t.Run("LongnameListing", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(home, "ls-dir", "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandomFile(t, filepath.Join(home, "ls-dir", "file.bin"), 1234)
		lines := sftpListing(sftpOK(t, d, alice, "ls -l /ls-dir\n"))
		var sawDir, sawFile bool
		for _, l := range lines {
			switch {
			case strings.HasSuffix(l, " child") || strings.HasSuffix(l, "/child"):
				sawDir = true
				if !strings.HasPrefix(l, "d") {
					t.Errorf("directory longname does not start with 'd': %q", l)
				}
			case strings.HasSuffix(l, "file.bin"):
				sawFile = true
				if !strings.HasPrefix(l, "-") || !strings.Contains(l, " 1234 ") {
					t.Errorf("file longname is not ls-style ('-' mode, size 1234): %q", l)
				}
			}
			if f := strings.Fields(l); len(f) < 9 {
				t.Errorf("longname has %d fields, want ls -l's 9: %q", len(f), l)
			}
		}
		if !sawDir || !sawFile {
			t.Errorf("ls -l /ls-dir lacks child or file.bin:\n%s", strings.Join(lines, "\n"))
		}
		assertNoHostPath(t, d, "ls -l", strings.Join(lines, "\n"))
	})

	t.Run("Password", func(t *testing.T) {
		src := filepath.Join(local, "pw-src")
		sum := writeRandomFile(t, src, 5000)
		stdout, stderr, err := sftpPasswordBatch(t, d, alice, alice.Password, fmt.Sprintf("put %s /pw-file\n", src))
		if err != nil {
			t.Fatalf("password login: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		checkSum(t, "upload after password login", filepath.Join(home, "pw-file"), sum)
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "ok"), 10*time.Second)

		wrong := alice.Password + "x"
		d.ForbidInLogs(wrong)
		stdout, stderr, err = sftpPasswordBatch(t, d, alice, wrong, fmt.Sprintf("put %s /pw-wrong\n", src))
		if exitCode(err) <= 0 {
			t.Errorf("wrong password: exit %d (%v), want refusal\nstdout:\n%s\nstderr:\n%s", exitCode(err), err, stdout, stderr)
		}
		if exists(t, filepath.Join(home, "pw-wrong")) {
			t.Errorf("a file was uploaded with a wrong password")
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "alice", "method", "password", "outcome", "failed"), 10*time.Second)
	})

	t.Run("WrongKey", func(t *testing.T) {
		for _, u := range []*testUser{
			newUser(t, "alice"),  // a known name with an unknown key
			newUser(t, "nobody"), // an unknown name
		} {
			out := sftpFails(t, d, u, "ls /\n")
			if !strings.Contains(out, "Permission denied") {
				t.Errorf("%s with a wrong key: want OpenSSH's \"Permission denied (publickey...)\", got:\n%s", u.Name, out)
			}
		}
		d.WaitLog(t, logMatch("msg", "login", "user", "nobody", "outcome", "failed"), 10*time.Second)
	})

	t.Run("NoUploadPermission", func(t *testing.T) {
		chome := d.HomeDir(carol)
		sum := writeRandomFile(t, filepath.Join(chome, "readme.txt"), 300)
		back := filepath.Join(local, "carol-readme")
		sftpOK(t, d, carol, fmt.Sprintf("ls /\nget /readme.txt %s\n", back))
		checkSum(t, "carol's download", back, sum)

		src := filepath.Join(local, "carol-src")
		writeRandomFile(t, src, 100)
		out := sftpFails(t, d, carol, fmt.Sprintf("put %s /upload.txt\n", src))
		if !strings.Contains(out, "Permission denied") {
			t.Errorf("put without upload permission: want \"Permission denied\", got:\n%s", out)
		}
		if exists(t, filepath.Join(chome, "upload.txt")) {
			t.Errorf("put without upload permission created the file")
		}
		d.WaitLog(t, logMatch("msg", "denied", "proto", "sftp", "user", "carol", "op", "upload", "path", "/upload.txt"), 10*time.Second)
		// No overwrite permission either: the existing file must survive a put.
		sftpFails(t, d, carol, fmt.Sprintf("put %s /readme.txt\n", src))
		checkSum(t, "carol's file after a refused overwrite", filepath.Join(chome, "readme.txt"), sum)
	})

	t.Run("ShellExecForwardRefused", func(t *testing.T) {
		sshBin := requireClient(t, "ssh")
		cases := []struct {
			name     string
			args     []string
			wantSFTP bool // the "SFTP only" notice is expected on stderr
		}{
			{"shell", []string{"-T", target(alice)}, true},
			// With -tt a refused pty-req is fatal in the client, which may
			// then close before the notice arrives: only the refusal is certain.
			{"shell-pty", []string{"-tt", target(alice)}, false},
			{"exec", []string{target(alice), "cat /etc/passwd"}, true},
			{"stdio-forward", []string{"-W", d.Addr, target(alice)}, false},
			{"remote-forward", []string{"-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9", target(alice)}, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				stdout, stderr, err := runCmd(t, 20*time.Second, sshBin, append(sshArgs(d, alice), c.args...)...)
				if code := exitCode(err); code <= 0 {
					t.Errorf("ssh %s: exit %d (%v), want refusal\nstdout:\n%s\nstderr:\n%s", c.name, code, err, stdout, stderr)
				}
				if c.wantSFTP && !strings.Contains(stderr, "SFTP only") {
					t.Errorf("ssh %s: stderr lacks \"SFTP only\":\n%s", c.name, stderr)
				}
				if strings.Contains(stdout, "root:") {
					t.Errorf("ssh %s: stdout shows /etc/passwd:\n%s", c.name, stdout)
				}
				assertNoHostPath(t, d, "ssh "+c.name, stdout, stderr)
			})
		}
	})
}

// TestOpenSSHHostKeys checks that host keys are generated once into state_dir
// (0600), match the logged fingerprint, survive a restart byte for byte, and
// that both the ed25519 and the RSA key are served.
func TestOpenSSHHostKeys(t *testing.T) {
	requireClient(t, "sftp")
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})

	keys := map[string][]byte{}
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"} {
		p := filepath.Join(d.StateDir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("host key %s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = data
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		switch name {
		case "ssh_host_ed25519_key":
			if fp := ssh.FingerprintSHA256(signer.PublicKey()); fp != d.HostKeyFP {
				t.Errorf("logged ed25519 fingerprint %s, key file has %s", d.HostKeyFP, fp)
			}
		case "ssh_host_rsa_key":
			ck, ok := signer.PublicKey().(ssh.CryptoPublicKey)
			if !ok {
				t.Fatalf("%s: no crypto key", name)
			}
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() != 3072 {
				t.Errorf("%s is not a 3072-bit RSA key", name)
			}
		}
	}

	// Each host key algorithm the contract promises is served and matches the files.
	for _, alg := range []string{"ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"} {
		stdout, stderr, err := runCmd(t, clientTimeout, requireClient(t, "sftp"),
			append(append(sftpArgs(d, alice), "-o", "HostKeyAlgorithms="+alg, "-b", writeBatch(t, "pwd\n")), target(alice))...)
		if err != nil {
			t.Errorf("host key algorithm %s: %v\nstdout:\n%s\nstderr:\n%s", alg, err, stdout, stderr)
		}
	}

	// The logins above created the home, which did not exist on disk.
	if fi, err := os.Stat(d.HomeDir(alice)); err != nil || !fi.IsDir() {
		t.Errorf("home not created on disk at login: %v", err)
	}
	fp := d.HostKeyFP
	writeRandomFile(t, filepath.Join(d.HomeDir(alice), "kept"), 10)
	d.Restart(t)
	if d.HostKeyFP != fp {
		t.Errorf("ed25519 host key changed across restart: %s, then %s", fp, d.HostKeyFP)
	}
	for name, before := range keys {
		after, err := os.ReadFile(filepath.Join(d.StateDir, name))
		if err != nil || !bytes.Equal(before, after) {
			t.Errorf("%s was rewritten by the restart (err %v)", name, err)
		}
	}
	if out := sftpOK(t, d, alice, "ls /\n"); !strings.Contains(out, "kept") {
		t.Errorf("after restart, ls / lacks the file kept on disk:\n%s", out)
	}
}

// TestOpenSSHLargeDirectory lists a directory of 100,000 entries, which the
// server must stream rather than refuse or truncate.
func TestOpenSSHLargeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000-entry listing skipped in -short mode")
	}
	requireClient(t, "sftp")
	u := newUser(t, "lister")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}})
	const n = 100000
	dir := filepath.Join(d.HomeDir(u), "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Raw syscalls: os.OpenFile under -race makes this loop take half a minute.
	for i := range n {
		fd, err := syscall.Open(filepath.Join(dir, fmt.Sprintf("f%06d", i)), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatalf("create entry %d: %v", i, err)
		}
		syscall.Close(fd)
	}
	stdout, stderr, err := sftpBatchTimeout(t, d, u, "cd /big\nls -1\n", 3*time.Minute)
	if err != nil {
		t.Fatalf("ls -1 of %d entries: %v\nstderr:\n%s", n, err, stderr)
	}
	lines := sftpListing(stdout)
	if len(lines) != n {
		t.Fatalf("ls -1 printed %d entries, want %d", len(lines), n)
	}
	seen := make(map[string]bool, n)
	for _, l := range lines {
		seen[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{"f000000", "f050000", "f099999"} {
		if !seen[want] {
			t.Errorf("listing lacks %s", want)
		}
	}
	if len(seen) != n {
		t.Errorf("listing has %d distinct names, want %d", len(seen), n)
	}
}

// TestOpenSSHMemoryBackend is a smoke test of the in-memory backend.
func TestOpenSSHMemoryBackend(t *testing.T) {
	requireClient(t, "sftp")
	u := newUser(t, "mem")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Backend: "memory"})
	local := t.TempDir()
	src := filepath.Join(local, "src")
	sum := writeRandomFile(t, src, 1<<20+1)
	// Several downloads: pkg/sftp reads one handle with concurrent ReadAt
	// calls, and a backend that is not safe for that corrupts only some runs.
	var gets strings.Builder
	for i := range 3 {
		fmt.Fprintf(&gets, "get /d/f %s\n", filepath.Join(local, fmt.Sprintf("back%d", i)))
	}
	out := sftpOK(t, d, u, fmt.Sprintf("mkdir /d\nput %s /d/f\nls -l /d\n%srename /d/f /d/g\nrm /d/g\nrmdir /d\n", src, gets.String()))
	for i := range 3 {
		checkSum(t, fmt.Sprintf("memory backend download %d", i), filepath.Join(local, fmt.Sprintf("back%d", i)), sum)
	}
	if !strings.Contains(out, "1048577") {
		t.Errorf("ls -l on the memory backend lacks the file size:\n%s", out)
	}
	d.WaitLog(t, logMatch("msg", "transfer", "user", "mem", "op", "upload", "path", "/d/f", "bytes", 1<<20+1, "outcome", "ok"), 10*time.Second)
	sftpFails(t, d, u, "get /d/f "+filepath.Join(local, "gone")+"\n")
}

// checkSum fails the test when the file at path does not have the SHA-256 want.
func checkSum(t *testing.T, what, path string, want string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if got := sha256File(t, path); got != want {
		t.Errorf("%s: sha256 %s, want %s", what, got, want)
	}
}

// runOK runs a client and marks the test failed unless it exits 0. It does
// not stop the test: the caller's checks on disk say what went wrong.
func runOK(t *testing.T, what, client string, args ...string) {
	t.Helper()
	stdout, stderr, err := runCmd(t, clientTimeout, requireClient(t, client), args...)
	if err != nil {
		t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, err, stdout, stderr)
	}
}

// TestOpenSSHLargeRequests checks the limits@openssh.com extension end to
// end: OpenSSH's client learns from it that it may send and ask for
// 261,120 bytes per request (instead of 32 KiB), and a file moved that way
// arrives intact both ways.
func TestOpenSSHLargeRequests(t *testing.T) {
	sftp := requireClient(t, "sftp")
	u := newUser(t, "big")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}})
	local := t.TempDir()
	src, back := filepath.Join(local, "src"), filepath.Join(local, "back")
	sum := writeRandomFile(t, src, 8<<20+12345)
	args := append(sftpArgs(d, u), "-vvv", "-b", writeBatch(t, fmt.Sprintf("put %s f\nget f %s\n", src, back)), target(u))
	_, stderr, err := runCmd(t, clientTimeout, sftp, args...)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, `Server supports extension "limits@openssh.com" revision 1`) ||
		!strings.Contains(stderr, "using 261120 / 261120") {
		t.Errorf("the client did not take the server's limits; its debug output:\n%s", grepLines(stderr, "limit", "buffer sizes"))
	}
	checkSum(t, "upload", filepath.Join(d.HomeDir(u), "f"), sum)
	checkSum(t, "download", back, sum)
}

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestOpenSSHCipherChoice checks what a default OpenSSH client negotiates
// with the default offer (AES, never the slow pure-Go ChaCha20), and that
// an operator who lists ChaCha20 in sftp.ciphers gets it back.
func TestOpenSSHCipherChoice(t *testing.T) {
	sftp := requireClient(t, "sftp")
	u := newUser(t, "ciph")
	negotiated := func(d *daemon, extra ...string) (string, error) {
		t.Helper()
		args := append(sftpArgs(d, u), extra...)
		args = append(args, "-v", "-b", writeBatch(t, "pwd\n"), target(u))
		_, stderr, err := runCmd(t, clientTimeout, sftp, args...)
		// "debug1: kex: client->server cipher: aes128-ctr MAC: hmac-sha2-256-etm@openssh.com compression: none"
		for _, line := range strings.Split(stderr, "\n") {
			if _, after, ok := strings.Cut(line, "kex: client->server cipher: "); ok {
				return strings.TrimSpace(strings.Split(after, " compression")[0]), err
			}
		}
		return "", fmt.Errorf("no cipher line (%v):\n%s", err, stderr)
	}

	d := startDaemon(t, daemonOpts{Users: []*testUser{u}})
	if got, err := negotiated(d); err != nil || got != "aes128-ctr MAC: hmac-sha2-256-etm@openssh.com" {
		t.Errorf("default client, default offer: %q (%v)", got, err)
	}
	if got, err := negotiated(d, "-c", "aes128-gcm@openssh.com"); err != nil || !strings.HasPrefix(got, "aes128-gcm@openssh.com") {
		t.Errorf("AES-GCM asked for: %q (%v)", got, err)
	}
	if _, err := negotiated(d, "-c", "chacha20-poly1305@openssh.com"); err == nil {
		t.Errorf("ChaCha20 was negotiated although the default offer leaves it out")
	}

	d = startDaemon(t, daemonOpts{Users: []*testUser{u},
		Ciphers: []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr"}})
	if got, err := negotiated(d); err != nil || !strings.HasPrefix(got, "chacha20-poly1305@openssh.com") {
		t.Errorf("default client, ChaCha20 configured: %q (%v)", got, err)
	}
}
