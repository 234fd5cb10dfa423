package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminExtra turns on the metrics endpoint, on a port of its own.
const adminExtra = "admin:\n  listen: \"127.0.0.1:0\"\n"

// startFTPSAdmin is startFTPS with the metrics endpoint on too.
func startFTPSAdmin(t *testing.T, users []*testUser) *ftpsDaemon {
	t.Helper()
	lo, hi := freePassiveRange(t, passiveRangeSize)
	extra := fmt.Sprintf("ftps:\n  listen: \"127.0.0.1:0\"\n  implicit_listen: \"127.0.0.1:0\"\n  passive_ports: \"%d-%d\"\n%s",
		lo, hi, adminExtra)
	f := &ftpsDaemon{daemon: startDaemon(t, daemonOpts{Users: users, Extra: extra}), PassiveLo: lo, PassiveHi: hi}
	f.readFTPS(t, 0)
	return f
}

// killDuring SIGKILLs the daemon (a crash: no drain, no cleanup) while the
// client c uploads base into home, once the upload's temporary file holds
// at least min bytes, and starts it again on the same storage. It returns
// the log mark of the new process. The client, cut off, is killed too.
func killDuring(t *testing.T, d *daemon, c *bgClient, home, base string, min int64) int {
	t.Helper()
	waitForUpload(t, c, home, base, min)
	mark := d.LogMark()
	d.KillAndRestart(t)
	c.kill()
	return mark
}

// checkRecovered checks what the restarted daemon says about the upload of
// storagePath it found unfinished: one log line and the metric, both
// counting it once; and that the upload is now a partial of part bytes at
// most, with no temporary file left. It returns the partial's size.
func checkRecovered(t *testing.T, d *daemon, mark int, home, base, storagePath string, size int64) int64 {
	t.Helper()
	line := d.WaitLogSince(t, mark, logMatch("msg", "recovered upload", "path", storagePath), 10*time.Second)
	n := 0
	for _, l := range d.logsSince(mark) {
		if logMatch("msg", "recovered upload")(l) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d \"recovered upload\" lines, want 1", n)
	}
	admin := d.WaitLogSince(t, mark, logMatch("msg", "listening", "proto", "http"), startTimeout)
	addr, _ := admin["addr"].(string)
	if got := scrapeGauges(t, "http://"+addr+"/metrics", "wharf_uploads_recovered_total")["wharf_uploads_recovered_total"]; got != 1 {
		t.Errorf("wharf_uploads_recovered_total = %v, want 1", got)
	}
	for _, name := range dirNames(t, home) {
		if strings.HasPrefix(name, uploadPrefix) {
			t.Errorf("temporary file %s left after the restart", name)
		}
	}
	fi, err := os.Stat(filepath.Join(home, partialPrefix+base))
	if err != nil {
		t.Fatalf("no partial after the restart: %v (home holds %v)", err, dirNames(t, home))
	}
	if fi.Size() <= 0 || fi.Size() >= size {
		t.Fatalf("partial holds %d bytes, want some of %d", fi.Size(), size)
	}
	if got, _ := line["bytes"].(float64); int64(got) != fi.Size() {
		t.Errorf("recovery line says %v bytes, the partial holds %d", line["bytes"], fi.Size())
	}
	return fi.Size()
}

// checkOnly fails unless home holds exactly names.
func checkOnly(t *testing.T, home string, names ...string) {
	t.Helper()
	if got := dirNames(t, home); strings.Join(got, "/") != strings.Join(names, "/") {
		t.Errorf("home holds %v, want %v", got, names)
	}
}

// startCrashSFTP starts a daemon for alice with the admin endpoint (for the
// recovery metric), creates her home, and writes a random source file of
// size bytes; it returns the file's path and SHA-256.
func startCrashSFTP(t *testing.T, size int64) (d *daemon, alice *testUser, home, src, sum string) {
	t.Helper()
	alice = newUser(t, "alice")
	d = startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: adminExtra})
	home = d.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	src = filepath.Join(t.TempDir(), "big")
	return d, alice, home, src, writeRandomFile(t, src, size)
}

// TestCrashSFTPUploadRecovered kills the daemon while OpenSSH's sftp uploads
// 64 MiB: after the restart the upload is a partial again, logged and
// counted, and reput completes it byte for byte.
func TestCrashSFTPUploadRecovered(t *testing.T) {
	sftp := requireClient(t, "sftp")
	const size = 64 << 20
	d, alice, home, src, sum := startCrashSFTP(t, size)

	// -l is in Kbit/s: 64,000 is 8 MB/s, about 8 s for the whole file.
	c := startBackground(t, nil, sftp, append(sftpArgs(d, alice), "-l", "64000", "-b",
		writeBatch(t, "put "+src+" /big\n"), target(alice))...)
	mark := killDuring(t, d, c, home, "big", size/4)
	part := checkRecovered(t, d, mark, home, "big", "/alice/big", size)
	if out := sftpOK(t, d, alice, "ls -la /\n"); strings.Contains(out, "big") || strings.Contains(out, ".wharf-") {
		t.Errorf("after the restart ls shows the unfinished upload:\n%s", out)
	}

	mark = d.LogMark()
	sftpOK(t, d, alice, "reput "+src+" /big\n")
	checkSum(t, "reput after the crash", filepath.Join(home, "big"), sum)
	d.WaitLogSince(t, mark, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/big",
		"bytes", size-part, "outcome", "ok"), 10*time.Second)
	checkOnly(t, home, "big")
}

// TestCrashSFTPResumeRecovered kills the daemon while OpenSSH's reput
// continues a partial (which the resume has claimed): after the restart
// the partial holds what it held and what the resume added, and a second
// reput completes the file byte for byte.
func TestCrashSFTPResumeRecovered(t *testing.T) {
	sftp := requireClient(t, "sftp")
	const size, prefix = 64 << 20, 8 << 20
	d, alice, home, src, sum := startCrashSFTP(t, size)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, partialPrefix+"big"), data[:prefix], 0o640); err != nil {
		t.Fatal(err)
	}

	c := startBackground(t, nil, sftp, append(sftpArgs(d, alice), "-l", "64000", "-b",
		writeBatch(t, "reput "+src+" /big\n"), target(alice))...)
	// The claimed partial is the upload's temporary file now; let the
	// resume add a good part to it.
	mark := killDuring(t, d, c, home, "big", prefix+size/4)
	part := checkRecovered(t, d, mark, home, "big", "/alice/big", size)
	if part < prefix+size/4 {
		t.Errorf("the partial holds %d bytes: the resume's bytes are lost", part)
	}

	sftpOK(t, d, alice, "reput "+src+" /big\n")
	checkSum(t, "reput after the crash during a resume", filepath.Join(home, "big"), sum)
	checkOnly(t, home, "big")
}

// TestCrashFTPSUploadRecovered kills the daemon while curl uploads 64 MiB
// over explicit FTPS: after the restart curl -C - (SIZE, then APPE)
// completes it byte for byte.
func TestCrashFTPSUploadRecovered(t *testing.T) {
	curl := requireClient(t, "curl")
	alice := newUser(t, "alice")
	f := startFTPSAdmin(t, []*testUser{alice})
	home := f.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	src := filepath.Join(t.TempDir(), "big")
	sum := writeRandomFile(t, src, size)

	args := append([]string{"-q", "-sS", "--fail", "--connect-timeout", "10", "--ssl-reqd"}, curlPinFTPS(t, f)...)
	args = append(args, "-u", alice.Name+":"+alice.Password, "--limit-rate", "8M", "-T", src, ftpsURL(f, "/big"))
	c := startBackground(t, []string{"HOME=" + t.TempDir()}, curl, args...)
	mark := killDuring(t, f.daemon, c, home, "big", size/4)
	f.readFTPS(t, mark)
	part := checkRecovered(t, f.daemon, mark, home, "big", "/alice/big", size)

	mark = f.LogMark()
	curlFTPSOK(t, f, alice, "-C", "-", "-T", src, ftpsURL(f, "/big"))
	checkSum(t, "curl -C - after the crash", filepath.Join(home, "big"), sum)
	f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
		"path", "/big", "bytes", size-part, "outcome", "ok"), 10*time.Second)
	checkOnly(t, home, "big")
}
