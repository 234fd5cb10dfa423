package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// curl exit codes of the FTPS tests (see curl(1), EXIT CODES).
const (
	curlUploadFailed = 25 // the server refused STOR
	curlLoginDenied  = 67 // 530 to USER/PASS
)

// ftpsURL is the explicit-FTPS URL of a path in the user's home: curl speaks
// ftp:// and --ssl-reqd makes it insist on AUTH TLS and PROT P.
func ftpsURL(f *ftpsDaemon, p string) string { return "ftp://" + f.Explicit + p }

// ftpsImplicitURL is the implicit-FTPS URL (TLS from the first byte).
func ftpsImplicitURL(f *ftpsDaemon, p string) string { return "ftps://" + f.Implicit + p }

// curlPinFTPS pins the public key of the certificate in state_dir. -k only
// skips the chain check (the certificate is self-signed); curl still aborts
// when the server's key differs from the pinned one.
func curlPinFTPS(t *testing.T, f *ftpsDaemon) []string {
	t.Helper()
	cert, err := x509.ParseCertificate(readCertFile(t, filepath.Join(f.StateDir, "ftps_cert.pem")))
	if err != nil {
		t.Fatalf("parse ftps_cert.pem: %v", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return []string{"-k", "--pinnedpubkey", "sha256//" + base64.StdEncoding.EncodeToString(sum[:])}
}

// curlFTPS runs curl with FTPS required, logging in as u with password.
func curlFTPS(t *testing.T, f *ftpsDaemon, u *testUser, password string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := append([]string{"--ssl-reqd"}, curlPinFTPS(t, f)...)
	full = append(full, "-u", u.Name+":"+password)
	return curlRun(t, append(full, args...)...)
}

// curlFTPSOK runs curlFTPS with u's password and fails the test unless curl
// exits 0; it returns stdout.
func curlFTPSOK(t *testing.T, f *ftpsDaemon, u *testUser, args ...string) string {
	t.Helper()
	stdout, stderr, err := curlFTPS(t, f, u, u.Password, args...)
	if err != nil {
		t.Fatalf("curl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, redact(stderr, u.Password))
	}
	return stdout
}

// TestFTPSCurl drives explicit and implicit FTPS with curl (OpenSSL), the
// client many scheduled jobs use.
func TestFTPSCurl(t *testing.T) {
	requireClient(t, "curl")
	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may list and download, not upload
	carol.Permissions = []string{"list", "download"}
	f := startFTPS(t, []*testUser{alice, carol}, ftpsOpts{})
	home := f.HomeDir(alice)
	for _, u := range []*testUser{alice, carol} {
		if err := os.MkdirAll(f.HomeDir(u), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	local := t.TempDir()

	t.Run("Transfers", func(t *testing.T) {
		for _, size := range []int64{0, 1, 1<<20 + 1} {
			t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
				src := filepath.Join(local, fmt.Sprintf("src-%d", size))
				back := filepath.Join(local, fmt.Sprintf("back-%d", size))
				sum := writeRandomFile(t, src, size)
				name := fmt.Sprintf("/curl-%d", size)
				curlFTPSOK(t, f, alice, "-T", src, ftpsURL(f, name))
				checkSum(t, "curl upload (on disk)", filepath.Join(home, name), sum)
				// -v shows the EPSV reply: the data port must be in passive_ports.
				_, stderr, err := curlFTPS(t, f, alice, alice.Password, "-v", "-o", back, ftpsURL(f, name))
				if err != nil {
					t.Fatalf("curl download: %v\n%s", err, redact(stderr, alice.Password))
				}
				checkSum(t, "curl download", back, sum)
				checkPassivePorts(t, f, "curl -v", stderr)
				f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
					"path", name, "bytes", size, "outcome", "ok"), 10*time.Second)
				f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "download",
					"path", name, "bytes", size, "outcome", "ok"), 10*time.Second)
			})
		}
		l := f.WaitLog(t, logMatch("msg", "login", "proto", "ftps", "user", "alice", "method", "password", "outcome", "ok"), 10*time.Second)
		if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("ftps login line remote = %q, want 127.0.0.1:PORT", r)
		}
		// One line per login: the gate writes it, the front end does not.
		logins := map[any]int{}
		for _, l := range f.Logs() {
			if logMatch("msg", "login", "proto", "ftps", "outcome", "ok")(l) {
				logins[l["conn_id"]]++
			}
		}
		for id, n := range logins {
			if n != 1 {
				t.Errorf("connection %v logged %d \"login\" lines, want 1", id, n)
			}
		}
	})

	t.Run("Implicit", func(t *testing.T) {
		src := filepath.Join(local, "implicit")
		sum := writeRandomFile(t, src, 1<<20+3)
		curlFTPSOK(t, f, alice, "-T", src, ftpsImplicitURL(f, "/implicit"))
		checkSum(t, "implicit upload (on disk)", filepath.Join(home, "implicit"), sum)
		back := filepath.Join(local, "implicit.back")
		curlFTPSOK(t, f, alice, "-o", back, ftpsImplicitURL(f, "/implicit"))
		checkSum(t, "implicit download", back, sum)
	})

	t.Run("Quote", func(t *testing.T) {
		writeFileT(t, filepath.Join(home, "q-del"), "delete me")
		writeFileT(t, filepath.Join(home, "q-old"), "rename me")
		// Pre-quote commands run before the listing, "-"-prefixed ones after it.
		out := curlFTPSOK(t, f, alice, "--list-only", "-Q", "MKD q-dir", "-Q", "RNFR q-old", "-Q", "RNTO q-new",
			"-Q", "-DELE q-del", ftpsURL(f, "/"))
		names := strings.Fields(out)
		for _, want := range []string{"q-dir", "q-new", "q-del"} {
			if !slices.Contains(names, want) {
				t.Errorf("NLST after MKD/RNTO (before DELE) lacks %q: %q", want, names)
			}
		}
		if slices.Contains(names, "q-old") {
			t.Errorf("NLST still lists q-old after RNFR/RNTO: %q", names)
		}
		if st, err := os.Stat(filepath.Join(home, "q-dir")); err != nil || !st.IsDir() {
			t.Errorf("MKD q-dir: no directory on disk (%v)", err)
		}
		if exists(t, filepath.Join(home, "q-del")) {
			t.Errorf("DELE q-del: the file is still on disk")
		}
		if exists(t, filepath.Join(home, "q-old")) || fileContent(t, filepath.Join(home, "q-new")) != "rename me" {
			t.Errorf("RNFR/RNTO: q-old was not renamed to q-new on disk")
		}
		curlFTPSOK(t, f, alice, "-Q", "RMD q-dir", ftpsURL(f, "/"))
		if exists(t, filepath.Join(home, "q-dir")) {
			t.Errorf("RMD q-dir: the directory is still on disk")
		}
		_, stderr, err := curlFTPS(t, f, alice, alice.Password, "-Q", "DELE no-such-file", ftpsURL(f, "/"))
		if code := exitCode(err); code != curlQuoteError {
			t.Errorf("DELE of a missing file: curl exit %d, want %d\n%s", code, curlQuoteError, stderr)
		}
		assertNoHostPath(t, f.daemon, "curl DELE missing", stderr)
		f.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "user", "alice", "op", "mkdir", "path", "/q-dir"), 10*time.Second)
		f.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "user", "alice", "op", "rename", "path", "/q-old"), 10*time.Second)
	})

	t.Run("ResumeUpload", func(t *testing.T) {
		const size, part = 3<<20 + 5, 1 << 20
		src := filepath.Join(local, "resume-up")
		// What an interrupted upload leaves behind.
		sum, _ := brokenTransfer(t, src, filepath.Join(home, "resume-up"), size, part)
		mark := f.LogMark()
		curlFTPSOK(t, f, alice, "-C", "-", "-T", src, ftpsURL(f, "/resume-up"))
		checkSum(t, "resumed upload (on disk)", filepath.Join(home, "resume-up"), sum)
		f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
			"path", "/resume-up", "bytes", size-part, "outcome", "ok"), 10*time.Second)
	})

	t.Run("ResumeDownload", func(t *testing.T) {
		const size, part = 2<<20 + 9, 700_001
		sum := writeRandomFile(t, filepath.Join(home, "resume-down"), size)
		data, err := os.ReadFile(filepath.Join(home, "resume-down"))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(local, "resume-down")
		if err := os.WriteFile(dst, data[:part], 0o644); err != nil {
			t.Fatal(err)
		}
		mark := f.LogMark()
		curlFTPSOK(t, f, alice, "-C", "-", "-o", dst, ftpsURL(f, "/resume-down"))
		checkSum(t, "resumed download", dst, sum)
		f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "download",
			"path", "/resume-down", "bytes", size-part, "outcome", "ok"), 10*time.Second)
	})

	t.Run("WrongPassword", func(t *testing.T) {
		wrong := alice.Password + "-wrong"
		f.ForbidInLogs(wrong)
		mark := f.LogMark()
		_, stderr, err := curlFTPS(t, f, alice, wrong, ftpsURL(f, "/"))
		if code := exitCode(err); code != curlLoginDenied {
			t.Errorf("wrong password: curl exit %d, want %d (login denied)\n%s", code, curlLoginDenied, redact(stderr, wrong))
		}
		f.WaitLogSince(t, mark, logMatch("msg", "login", "proto", "ftps", "user", "alice", "outcome", "failed"), 10*time.Second)
	})

	t.Run("PlaintextRefused", func(t *testing.T) {
		mark := f.LogMark()
		// No --ssl-reqd: curl sends USER and PASS in the clear. The right
		// password must not log in.
		stdout, stderr, err := curlRun(t, "-u", alice.Name+":"+alice.Password, ftpsURL(f, "/"))
		if err == nil {
			t.Errorf("plaintext FTP login succeeded; listing:\n%s", stdout)
		}
		assertNoHostPath(t, f.daemon, "curl plaintext", stdout, stderr)
		if l, ok := f.pollLog(mark, logMatch("msg", "login", "outcome", "ok"), time.Second); ok {
			t.Errorf("a plaintext FTP session logged in: %v", l)
		}
	})

	t.Run("NoUploadPermission", func(t *testing.T) {
		src := filepath.Join(local, "carol-up")
		writeRandomFile(t, src, 1000)
		mark := f.LogMark()
		_, stderr, err := curlFTPS(t, f, carol, carol.Password, "-T", src, ftpsURL(f, "/carol-up"))
		if code := exitCode(err); code != curlUploadFailed {
			t.Errorf("upload without the upload permission: curl exit %d, want %d\n%s", code, curlUploadFailed, redact(stderr, carol.Password))
		}
		if !strings.Contains(stderr, "550") {
			t.Errorf("upload without the upload permission: want a 550 reply, curl said:\n%s", redact(stderr, carol.Password))
		}
		if exists(t, filepath.Join(f.HomeDir(carol), "carol-up")) {
			t.Errorf("a refused upload left a file on disk")
		}
		assertNoHostPath(t, f.daemon, "curl refused upload", stderr)
		f.WaitLogSince(t, mark, logMatch("msg", "denied", "proto", "ftps", "user", "carol", "op", "upload"), 10*time.Second)
	})
}

// checkPassivePorts fails the test unless a client's debug output shows at
// least one passive data port, and every one lies in passive_ports. It reads
// EPSV (229) and PASV (227) replies as the client printed them.
func checkPassivePorts(t *testing.T, f *ftpsDaemon, what, debug string) {
	t.Helper()
	ports := passivePorts(debug)
	if len(ports) == 0 {
		t.Errorf("%s: no PASV/EPSV reply in the debug output:\n%s", what, debug)
	}
	for _, p := range ports {
		if !f.inPassiveRange(p) {
			t.Errorf("%s: data port %d outside passive_ports %d-%d", what, p, f.PassiveLo, f.PassiveHi)
		}
	}
}

// passivePorts extracts the ports of "229 ... (|||PORT|)" and
// "227 ... (h1,h2,h3,h4,p1,p2)" replies.
func passivePorts(debug string) []int {
	var ports []int
	for _, m := range epsvPort.FindAllStringSubmatch(debug, -1) {
		if p, err := strconv.Atoi(m[1]); err == nil {
			ports = append(ports, p)
		}
	}
	for _, m := range pasvReply.FindAllStringSubmatch(debug, -1) {
		p1, err1 := strconv.Atoi(m[5])
		p2, err2 := strconv.Atoi(m[6])
		if err1 == nil && err2 == nil {
			ports = append(ports, p1*256+p2)
		}
	}
	return ports
}

// TestFTPSMemoryBackend: FTPS over the memory backend, where no file exists
// on disk to compare with, so the bytes make the round trip through curl.
func TestFTPSMemoryBackend(t *testing.T) {
	requireClient(t, "curl")
	u := newUser(t, "mem")
	f := startFTPS(t, []*testUser{u}, ftpsOpts{Backend: "memory"})
	local := t.TempDir()
	src := filepath.Join(local, "src")
	sum := writeRandomFile(t, src, 1<<20+1)
	curlFTPSOK(t, f, u, "--ftp-create-dirs", "-T", src, ftpsURL(f, "/d/f"))
	back := filepath.Join(local, "back")
	curlFTPSOK(t, f, u, "-o", back, ftpsURL(f, "/d/f"))
	checkSum(t, "memory backend round trip", back, sum)
	if out := curlFTPSOK(t, f, u, "--list-only", ftpsURL(f, "/d/")); strings.TrimSpace(out) != "f" {
		t.Errorf("NLST /d/ on the memory backend = %q, want f", out)
	}
	f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "mem", "op", "upload", "path", "/d/f",
		"bytes", 1<<20+1, "outcome", "ok"), 10*time.Second)
}
