package e2e

// Issue 13, item 7: the SFTP and FTPS suites over a table of backends,
// local and s3 (a versitygw of the test's own), with the real binary and
// real clients. Each backend gets one daemon that serves both protocols;
// the backends run side by side. What the clients see is checked against
// what the backend holds (backendview_test.go): the disk, or the bucket
// through the test's own S3 client.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/wharf-sftp/wharf/internal/events"
)

// backendFile is a local source file of the suites.
type backendFile struct {
	path, sum string
	size      int64
}

// backendSources are the files every backend's suite uploads, written
// once for all of them.
type backendSources struct {
	integrity  []backendFile // OpenSSH, up and down: 0 B to 256 MiB
	ftps       []backendFile // curl and lftp over FTPS
	small      backendFile   // 4 KiB, for listings and metadata
	kill       backendFile   // 40 MiB, for the uploads killed midway
	appendBase backendFile   // 64 MiB, the object appended to
	appendFull backendFile   // appendBase and then appendTail
	appendTail backendFile
}

const (
	killSize   = 40 << 20
	killAfter  = 10 << 20 // bytes the backend holds when the client is killed
	appendBase = 64 << 20
	appendTail = 3<<20 + 7
	// partialTTL is written into each backend's config, and replaced by
	// PartialExpired.
	partialTTL = "uploads:\n  partial_ttl: 168h\n"
	// rateLimit slows killed clients to 8 MB/s so the kill lands midway
	// (OpenSSH sftp's -l is in Kbit/s).
	rateLimit     = "8M"
	sftpRateLimit = "64000"
)

func newBackendSources(t *testing.T) *backendSources {
	t.Helper()
	dir := t.TempDir()
	file := func(name string, size int64) backendFile {
		p := filepath.Join(dir, name)
		return backendFile{path: p, sum: writeRandomFile(t, p, size), size: size}
	}
	s := &backendSources{}
	sizes := []int64{0, 1, 5<<20 + 1, 256 << 20}
	if testing.Short() {
		sizes = sizes[:3] // 256 MiB skipped in -short mode
	}
	for _, size := range sizes {
		s.integrity = append(s.integrity, file(fmt.Sprintf("sftp-%d", size), size))
	}
	for _, size := range []int64{0, 1, 5<<20 + 1, 16<<20 + 3} {
		s.ftps = append(s.ftps, file(fmt.Sprintf("ftps-%d", size), size))
	}
	s.small = file("small", 4096)
	s.kill = file("kill", killSize)
	s.appendFull = file("append-full", appendBase+appendTail)
	s.appendBase = sliceFile(t, s.appendFull.path, filepath.Join(dir, "append-base"), 0, appendBase)
	s.appendTail = sliceFile(t, s.appendFull.path, filepath.Join(dir, "append-tail"), appendBase, appendTail)
	return s
}

// sliceFile writes n bytes of src from off into dst.
func sliceFile(t *testing.T, src, dst string, off, n int64) backendFile {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, off, n)); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return backendFile{path: dst, sum: sha256File(t, dst), size: n}
}

// backendDaemon is one backend's daemon, serving SFTP and FTPS, with a
// webhook that receives every upload event and, on s3, a counting proxy
// in front of the store.
type backendDaemon struct {
	*ftpsDaemon
	backend string
	u       *testUser
	ops     *testUser // home "/"
	st      *stored
	hooks   *receiver
	proxy   *s3Proxy // s3 only
}

func startBackend(t *testing.T, backend string) *backendDaemon {
	t.Helper()
	u := newUser(t, "alice")
	ops := newUser(t, "ops") // sees every home: the whole storage root, the whole bucket
	ops.Home = "/"
	r := newReceiver(t, "backend-hook")
	hook := strings.Replace(hookConfig(t, r, ""), `paths: ["/inbox/**"]`, `paths: ["/**"]`, 1)
	lo, hi := freePassiveRange(t, passiveRangeSize)
	extra := fmt.Sprintf("ftps:\n  listen: \"127.0.0.1:0\"\n  implicit_listen: \"127.0.0.1:0\"\n  passive_ports: \"%d-%d\"\n%s%s",
		lo, hi, partialTTL, hook)
	o := daemonOpts{Users: []*testUser{u, ops}, Backend: backend, Extra: extra}
	b := &backendDaemon{backend: backend, u: u, ops: ops, hooks: r}
	if backend == "s3" {
		o.S3Endpoint = func(store string) string {
			b.proxy = startS3Proxy(t, store)
			return b.proxy.URL
		}
	}
	d := startDaemon(t, o)
	b.ftpsDaemon = &ftpsDaemon{daemon: d, PassiveLo: lo, PassiveHi: hi}
	b.readFTPS(t, 0)
	b.st = newStored(d, u)
	return b
}

// TestBackends runs the SFTP and FTPS suites on local and on s3: integrity
// of 0 B to 256 MiB, listings with awkward names, renames and deletes,
// atomic visibility of an upload in progress, uploads killed midway and
// resumed by every resuming client, appends, setstat after an upload, and
// a daemon killed midway.
func TestBackends(t *testing.T) {
	for _, c := range []string{"sftp", "curl", "lftp", "psftp", "puttygen"} {
		requireClient(t, c)
	}
	requireParamiko(t)
	src := newBackendSources(t)
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			b := startBackend(t, backend)
			// In order: DaemonKilled restarts the daemon.
			t.Run("Integrity", func(t *testing.T) { backendIntegrity(t, b, src) })
			t.Run("Listings", func(t *testing.T) { backendListings(t, b, src) })
			t.Run("AtomicVisibility", func(t *testing.T) { backendAtomicVisibility(t, b, src) })
			t.Run("KilledAndResumed", func(t *testing.T) { backendKilled(t, b, src) })
			t.Run("Append", func(t *testing.T) { backendAppend(t, b, src) })
			t.Run("Setstat", func(t *testing.T) { backendSetstat(t, b, src) })
			t.Run("DaemonKilled", func(t *testing.T) { backendDaemonKilled(t, b, src) })
			if backend == "s3" {
				// local keeps partials until they are resumed or removed.
				t.Run("PartialExpired", func(t *testing.T) { backendPartialExpired(t, b, src) })
			}
		})
	}
	// The s3 backend with setstat: error refuses what WinSCP sends after
	// every upload.
	t.Run("s3-setstat-error", func(t *testing.T) {
		t.Parallel()
		u := newUser(t, "alice")
		d := startDaemon(t, daemonOpts{Users: []*testUser{u}, Backend: "s3", S3Setstat: "error"})
		steps := []pyStep{
			{Name: "put", Op: "put", Args: []any{src.small.path, "/f"}},
			{Name: "utime", Op: "utime", Args: []any{"/f", 1400000000, 1500000000}, want: "error", code: fxOpUnsupported},
			{Name: "chmod", Op: "chmod", Args: []any{"/f", 0o600}, want: "error", code: fxOpUnsupported},
			{Name: "stat", Op: "stat", Args: []any{"/f"}, check: func(t *testing.T, v json.RawMessage) {
				if a := decodeValue[pyAttrs](t, "stat", v); a.Size != src.small.size || a.Mode&0o777 != 0o644 {
					t.Errorf("stat after the refused setstat: size %d mode %o, want %d and 644", a.Size, a.Mode&0o777, src.small.size)
				}
			}},
		}
		plan := pyPlan{Host: "127.0.0.1", Port: d.Port, User: u.Name, Auth: "key", KeyFile: u.KeyFile, HostKey: ed25519HostKey(t, d), Steps: steps}
		checkSteps(t, steps, runParamiko(t, d, plan, ""))
		newStored(d, u).checkSum(t, "upload before the refused setstat", "/f", src.small.sum)
	})
}

// checkUploadEvent waits for the upload event of p and checks it names
// the file: size and SHA-256, and on s3 the object (storage_url) and its
// ETag as the bucket reports it.
func (b *backendDaemon) checkUploadEvent(t *testing.T, p string, f backendFile, bytes int64) {
	t.Helper()
	var e events.Event
	found := false
	deadline := time.Now().Add(20 * time.Second)
	for !found && time.Now().Before(deadline) {
		for _, ev := range b.hooks.uploads() {
			if ev.Path == p && ev.Size == f.size {
				e, found = ev, true
			}
		}
		if !found {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !found {
		t.Errorf("no upload event for %s (%d bytes): %+v", p, f.size, b.hooks.uploads())
		return
	}
	// An upload written from its first byte carries its SHA-256; a resumed
	// one may not (the daemon saw only the tail), but never a wrong one.
	if e.Outcome != "ok" || e.Bytes != bytes || (e.SHA256 != f.sum && (bytes == f.size || e.SHA256 != "")) {
		t.Errorf("upload event of %s: outcome %s, bytes %d, sha256 %q; want ok, %d, %s", p, e.Outcome, e.Bytes, e.SHA256, bytes, f.sum)
	}
	if b.st.s3 == nil {
		if e.StorageURL != "" || e.ETag != "" {
			t.Errorf("upload event of %s on local names an object: %q, etag %q", p, e.StorageURL, e.ETag)
		}
		return
	}
	if want := "s3://" + b.Bucket + "/" + b.st.key(p); e.StorageURL != want {
		t.Errorf("upload event of %s: storage_url %q, want %q", p, e.StorageURL, want)
	}
	h := b.st.head(t, p)
	if h == nil {
		t.Errorf("upload event of %s: no object %s in the bucket", p, b.st.key(p))
		return
	}
	if etag := strings.Trim(aws.ToString(h.ETag), `"`); e.ETag == "" || e.ETag != etag {
		t.Errorf("upload event of %s: etag %q, the bucket's object has %q", p, e.ETag, etag)
	}
}

func backendIntegrity(t *testing.T, b *backendDaemon, src *backendSources) {
	local := t.TempDir()
	back := func(f backendFile) string { return filepath.Join(local, filepath.Base(f.path)) }
	var batch strings.Builder
	batch.WriteString("mkdir /int\n")
	for _, f := range src.integrity {
		name := "/int/" + filepath.Base(f.path)
		fmt.Fprintf(&batch, "put %s %s\nget %s %s\n", f.path, name, name, back(f))
	}
	start := time.Now()
	stdout, stderr, err := sftpBatchTimeout(t, b.daemon, b.u, batch.String(), 5*time.Minute)
	if err != nil {
		t.Fatalf("sftp: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	t.Logf("%s: OpenSSH put and get of %d files took %v", b.backend, len(src.integrity), time.Since(start).Round(time.Millisecond))
	for _, f := range src.integrity {
		name := "/int/" + filepath.Base(f.path)
		b.st.checkSum(t, "sftp put "+name, name, f.sum)
		checkSum(t, "sftp get "+name, back(f), f.sum)
		for _, op := range []string{"upload", "download"} {
			b.WaitLog(t, logMatch("msg", "transfer", "proto", "sftp", "op", op, "path", name, "bytes", f.size, "outcome", "ok"), 10*time.Second)
		}
		b.checkUploadEvent(t, name, f, f.size)
	}

	for _, f := range src.ftps {
		name := "/int/curl-" + filepath.Base(f.path)
		curlFTPSOK(t, b.ftpsDaemon, b.u, "-T", f.path, ftpsURL(b.ftpsDaemon, name))
		b.st.checkSum(t, "curl FTPS upload "+name, name, f.sum)
		out := filepath.Join(local, "curl-"+filepath.Base(f.path))
		curlFTPSOK(t, b.ftpsDaemon, b.u, "-o", out, ftpsURL(b.ftpsDaemon, name))
		checkSum(t, "curl FTPS download "+name, out, f.sum)
		b.checkUploadEvent(t, name, f, f.size)
	}
	var script strings.Builder
	for _, f := range src.ftps[1:3] {
		name := "int/lftp-" + filepath.Base(f.path)
		fmt.Fprintf(&script, "put %s -o %s\nget %s -o %s\n", f.path, name, name, filepath.Join(local, path.Base(name)))
	}
	lftpOK(t, b.ftpsDaemon, b.u, false, script.String())
	for _, f := range src.ftps[1:3] {
		name := "/int/lftp-" + filepath.Base(f.path)
		b.st.checkSum(t, "lftp put "+name, name, f.sum)
		checkSum(t, "lftp get "+name, filepath.Join(local, path.Base(name)), f.sum)
		b.checkUploadEvent(t, name, f, f.size)
	}

	// Resumed downloads read from an offset (on s3 a ranged GET): OpenSSH
	// reget from a third of a 16 MiB file, curl -C - over FTPS (REST,
	// RETR) from 7 MiB.
	big := src.ftps[len(src.ftps)-1]
	name := "/int/curl-" + filepath.Base(big.path)
	partial := sliceFile(t, big.path, filepath.Join(local, "reget"), 0, big.size/3)
	mark := b.LogMark()
	sftpOK(t, b.daemon, b.u, fmt.Sprintf("reget %s %s\n", name, partial.path))
	checkSum(t, "sftp reget "+name, partial.path, big.sum)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "sftp", "op", "download", "path", name,
		"bytes", big.size-big.size/3, "outcome", "ok"), 10*time.Second)
	f := src.ftps[len(src.ftps)-1]
	name = "/int/curl-" + filepath.Base(f.path)
	partial = sliceFile(t, f.path, filepath.Join(local, "curl-resume"), 0, 7<<20)
	curlFTPSOK(t, b.ftpsDaemon, b.u, "-C", "-", "-o", partial.path, ftpsURL(b.ftpsDaemon, name))
	checkSum(t, "curl FTPS -C - download "+name, partial.path, f.sum)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "op", "download", "path", name,
		"bytes", f.size-7<<20, "outcome", "ok"), 10*time.Second)
}

// sftpUTF8 is sftpBatch in a UTF-8 locale, where OpenSSH's sftp prints
// names as they are rather than escaping every byte above 127.
func sftpUTF8(t *testing.T, d *daemon, u *testUser, batch string) (stdout, stderr string, err error) {
	t.Helper()
	args := append(sftpArgs(d, u), "-b", writeBatch(t, batch), target(u))
	return runCmdOpts(t, clientTimeout, cmdOpts{Env: []string{"LC_ALL=C.UTF-8"}}, requireClient(t, "sftp"), args...)
}

// longnames maps each name in an `ls -l` output to its line.
func longnames(out string, names []string) map[string]string {
	m := map[string]string{}
	for _, l := range sftpListing(out) {
		for _, n := range names {
			if strings.HasSuffix(l, " "+n) || strings.HasSuffix(l, "/"+n) {
				m[n] = l
			}
		}
	}
	return m
}

// nlst runs curl's NLST of an FTPS folder and returns the names, sorted.
func nlst(t *testing.T, b *backendDaemon, dir string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(curlFTPSOK(t, b.ftpsDaemon, b.u, "--list-only", ftpsURL(b.ftpsDaemon, dir)), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			names = append(names, l)
		}
	}
	slices.Sort(names)
	return names
}

// backendListings lists a folder with files and subfolders whose names
// hold spaces, non-ASCII letters and the characters URLs and S3 copy
// sources encode (+ % # ? & =), renames a file and a folder (with a file
// and an empty folder in it) on both protocols, and removes everything,
// a non-empty folder being refused first.
func backendListings(t *testing.T, b *backendDaemon, src *backendSources) {
	const odd = "odd +%41#&=?.txt"
	files := []string{"plain.txt", "with space.txt", "ünï ☕ cødé.bin", odd}
	dirs := []string{"empty", "sub dir"}
	var batch strings.Builder
	batch.WriteString("mkdir /ls\nmkdir \"/ls/sub dir\"\nmkdir /ls/empty\nmkdir \"/ls/sub dir/deeper\"\n")
	for _, n := range files {
		fmt.Fprintf(&batch, "put %s \"/ls/%s\"\n", src.small.path, n)
	}
	fmt.Fprintf(&batch, "put %s \"/ls/sub dir/in+side %%20\"\nls -la /ls\n", src.small.path)
	stdout, stderr, err := sftpUTF8(t, b.daemon, b.u, batch.String())
	if err != nil {
		t.Fatalf("sftp: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	all := append(slices.Clone(files), dirs...)
	slices.Sort(all)
	lines := longnames(stdout, all)
	for _, n := range all {
		l, ok := lines[n]
		switch {
		case !ok:
			t.Errorf("ls -la /ls lacks %q:\n%s", n, stdout)
		case slices.Contains(dirs, n) && !strings.HasPrefix(l, "d"):
			t.Errorf("folder %q is not listed as one: %q", n, l)
		case slices.Contains(files, n) && (!strings.HasPrefix(l, "-") || !strings.Contains(l, " 4096 ")):
			t.Errorf("file %q is not listed with '-' and 4096 bytes: %q", n, l)
		}
	}
	checkNoHiddenNames(t, "sftp ls -la /ls", stdout)
	if got := b.st.names(t, "/ls"); !slices.Equal(got, all) {
		t.Errorf("the backend holds %q in /ls, want %q", got, all)
	}
	if got := nlst(t, b, "/ls/"); !slices.Equal(got, all) {
		t.Errorf("FTPS NLST /ls/ lists %q, want %q", got, all)
	}
	inner := []string{"deeper", "in+side %20"}
	if got := nlst(t, b, "/ls/sub%20dir/"); !slices.Equal(got, inner) {
		t.Errorf("FTPS NLST \"/ls/sub dir/\" lists %q, want %q", got, inner)
	}

	// A file and a folder cannot share a name (S3 allows it, versitygw
	// and POSIX do not): each refusal leaves the backend as it was.
	c, _ := sftpSession(t, b.daemon, b.u)
	if f, err := c.OpenFile("/ls/empty", os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err == nil {
		f.Close()
		t.Errorf("an upload onto the folder /ls/empty was accepted")
	}
	if err := c.Mkdir("/ls/plain.txt"); err == nil {
		t.Errorf("mkdir onto the file /ls/plain.txt succeeded")
	}
	if f, err := c.OpenFile("/ls/plain.txt/child", os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err == nil {
		f.Close()
		t.Errorf("an upload below the file /ls/plain.txt was accepted")
	}
	if _, _, err := curlFTPS(t, b.ftpsDaemon, b.u, b.u.Password, "-T", src.small.path, ftpsURL(b.ftpsDaemon, "/ls/empty")); err == nil {
		t.Errorf("FTPS STOR onto the folder /ls/empty succeeded")
	}
	if got := b.st.names(t, "/ls"); !slices.Equal(got, all) {
		t.Errorf("after the refusals the backend holds %q in /ls, want %q", got, all)
	}
	if got := b.st.names(t, "/ls/empty"); len(got) != 0 {
		t.Errorf("after the refusals the folder /ls/empty holds %q", got)
	}
	b.st.checkSum(t, "a file mkdir was refused on", "/ls/plain.txt", src.small.sum)

	// A rename onto a file replaces it (OpenSSH uses posix-rename).
	one := src.integrity[1]
	sftpOK(t, b.daemon, b.u, "put "+one.path+" /ls/target.txt\nrename /ls/plain.txt /ls/target.txt\nrename /ls/target.txt /ls/plain.txt\n")
	b.st.absent(t, "renamed away", "/ls/target.txt")
	b.st.checkSum(t, "renamed onto a file and back", "/ls/plain.txt", src.small.sum)

	// Files and a folder renamed over SFTP, then over FTPS.
	sftpOK(t, b.daemon, b.u, "rename \"/ls/with space.txt\" \"/ls/renamed ☕.txt\"\n"+
		"rename \"/ls/"+odd+"\" \"/ls/odd renamed +%2B.txt\"\nrename \"/ls/sub dir\" \"/ls/moved dir\"\n")
	for from, to := range map[string]string{"/ls/with space.txt": "/ls/renamed ☕.txt", "/ls/" + odd: "/ls/odd renamed +%2B.txt",
		"/ls/sub dir/in+side %20": "/ls/moved dir/in+side %20"} {
		b.st.absent(t, "renamed over SFTP", from)
		b.st.checkSum(t, "renamed over SFTP", to, src.small.sum)
	}
	b.st.absent(t, "folder renamed over SFTP", "/ls/sub dir")
	if got := b.st.names(t, "/ls/moved dir"); !slices.Equal(got, inner) {
		t.Errorf("the folder renamed over SFTP holds %q, want %q", got, inner)
	}
	// curl sends -Q commands before it changes into the URL's folder.
	curlFTPSOK(t, b.ftpsDaemon, b.u, "-o", os.DevNull, "-Q", "RNFR ls/plain.txt", "-Q", "RNTO ls/plain ftps.txt",
		"-Q", "RNFR ls/moved dir", "-Q", "RNTO ls/ftps dir", ftpsURL(b.ftpsDaemon, "/ls/"))
	b.st.absent(t, "file renamed over FTPS", "/ls/plain.txt")
	b.st.checkSum(t, "file renamed over FTPS", "/ls/plain ftps.txt", src.small.sum)
	b.st.absent(t, "folder renamed over FTPS", "/ls/moved dir")
	b.st.checkSum(t, "folder renamed over FTPS", "/ls/ftps dir/in+side %20", src.small.sum)
	if got := nlst(t, b, "/ls/ftps%20dir/"); !slices.Equal(got, inner) {
		t.Errorf("FTPS NLST of the folder renamed over FTPS lists %q, want %q", got, inner)
	}
	b.WaitLog(t, logMatch("msg", "change", "proto", "sftp", "op", "rename", "path", "/ls/sub dir"), 10*time.Second)
	b.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "op", "rename", "path", "/ls/moved dir"), 10*time.Second)

	// A folder with something in it is not removed, on either protocol.
	sftpFails(t, b.daemon, b.u, "rmdir \"/ls/ftps dir\"\n")
	_, stderr, err = curlFTPS(t, b.ftpsDaemon, b.u, b.u.Password, "-o", os.DevNull, "-Q", "RMD ls/ftps dir", ftpsURL(b.ftpsDaemon, "/ls/"))
	if code := exitCode(err); code != curlQuoteError {
		t.Errorf("FTPS RMD of a non-empty folder: curl exit %d, want %d (refused)\n%s", code, curlQuoteError, redact(stderr, b.u.Password))
	}
	b.st.checkSum(t, "file in a folder that rmdir refused", "/ls/ftps dir/in+side %20", src.small.sum)

	// Deletes and rmdirs over both, until nothing is left.
	sftpOK(t, b.daemon, b.u, "rm \"/ls/ftps dir/in+side %20\"\nrmdir \"/ls/ftps dir/deeper\"\nrmdir \"/ls/ftps dir\"\n"+
		"rm \"/ls/renamed ☕.txt\"\nrm \"/ls/odd renamed +%2B.txt\"\n")
	curlFTPSOK(t, b.ftpsDaemon, b.u, "-o", os.DevNull, "-Q", "DELE ls/plain ftps.txt", "-Q", "DELE ls/ünï ☕ cødé.bin",
		"-Q", "RMD ls/empty", ftpsURL(b.ftpsDaemon, "/ls/"))
	if got := nlst(t, b, "/ls/"); len(got) != 0 {
		t.Errorf("FTPS NLST /ls/ after the deletes lists %q", got)
	}
	sftpOK(t, b.daemon, b.u, "rmdir /ls\n")
	b.st.absent(t, "/ls after every delete", "/ls")
	b.WaitLog(t, logMatch("msg", "change", "proto", "ftps", "op", "remove", "path", "/ls/ünï ☕ cødé.bin"), 10*time.Second)
	b.WaitLog(t, logMatch("msg", "change", "proto", "sftp", "op", "rmdir", "path", "/ls"), 10*time.Second)
}

// backendAtomicVisibility writes two uploads in one session at the test's
// pace, a new name and an overwrite, and looks at the folder between the
// writes from other sessions on both protocols and in the backend: the
// new name is nowhere, the old file is whole, until each upload closes.
func backendAtomicVisibility(t *testing.T, b *backendDaemon, src *backendSources) {
	const chunk, chunks = 1 << 20, 12 // per pause
	b.st.seed(t, "/vis/old", src.small.path)
	data, err := os.ReadFile(src.kill.path)
	if err != nil {
		t.Fatal(err)
	}
	data = data[:2*chunks*chunk]
	w, _ := sftpSession(t, b.daemon, b.u)
	r, _ := sftpSession(t, b.daemon, b.u)
	newF, err := w.OpenFile("/vis/new", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatalf("open /vis/new: %v", err)
	}
	defer newF.Close()
	oldF, err := w.OpenFile("/vis/old", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatalf("open /vis/old: %v", err)
	}
	defer oldF.Close()

	look := func(written int) {
		t.Helper()
		what := fmt.Sprintf("after %d MiB written", written>>20)
		// The data is on its way into the backend, not only in the daemon.
		waitFor(t, 20*time.Second, what+": bytes of /vis/new in the backend", func() bool {
			return b.st.inFlight(t, "/vis/new") > 0 && b.st.inFlight(t, "/vis/old") > 0
		})
		if _, err := r.Stat("/vis/new"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: another session's stat of /vis/new: %v, want no such file", what, err)
		}
		if fi, err := r.Stat("/vis/old"); err != nil || fi.Size() != src.small.size {
			t.Errorf("%s: another session's stat of /vis/old: %v (err %v), want the old %d bytes", what, fi, err, src.small.size)
		}
		out := sftpOK(t, b.daemon, b.u, "ls -la /vis\n")
		checkNoHiddenNames(t, "sftp ls -la /vis "+what, out)
		if l := longnames(out, []string{"old", "new"}); l["new"] != "" || !strings.Contains(l["old"], " 4096 ") {
			t.Errorf("%s: sftp ls -la /vis should show the old file only:\n%s", what, out)
		}
		sftpFails(t, b.daemon, b.u, "ls -l /vis/new\n")
		back := filepath.Join(t.TempDir(), "old")
		sftpOK(t, b.daemon, b.u, "get /vis/old "+back+"\n")
		checkSum(t, what+": download of the file being overwritten", back, src.small.sum)
		if got := nlst(t, b, "/vis/"); !slices.Equal(got, []string{"old"}) {
			t.Errorf("%s: FTPS NLST /vis/ lists %q, want [old]", what, got)
		}
		b.st.absent(t, what, "/vis/new")
		b.st.checkSum(t, what, "/vis/old", src.small.sum)
	}
	for i := range 2 {
		for j := range chunks {
			off := (i*chunks + j) * chunk
			if _, err := newF.Write(data[off : off+chunk]); err != nil {
				t.Fatalf("write /vis/new at %d: %v", off, err)
			}
			if _, err := oldF.Write(data[off : off+chunk]); err != nil {
				t.Fatalf("write /vis/old at %d: %v", off, err)
			}
		}
		look((i + 1) * chunks * chunk)
	}
	if err := newF.Close(); err != nil {
		t.Fatalf("close /vis/new: %v", err)
	}
	if err := oldF.Close(); err != nil {
		t.Fatalf("close /vis/old: %v", err)
	}
	want := backendFile{sum: sha256Hex(string(data)), size: int64(len(data))}
	for _, p := range []string{"/vis/new", "/vis/old"} {
		b.st.checkSum(t, "after the close", p, want.sum)
		b.checkUploadEvent(t, p, want, want.size)
	}
	if got := nlst(t, b, "/vis/"); !slices.Equal(got, []string{"new", "old"}) {
		t.Errorf("FTPS NLST /vis/ after the close lists %q, want [new old]", got)
	}
	if left := b.st.leftovers(t, "/vis"); len(left) > 0 {
		t.Errorf("left behind after the uploads closed: %v", left)
	}
}

// killCase is a client that uploads and is killed midway, and the same
// client (or another) resuming the upload.
type killCase struct {
	name string
	// old puts a file under the name first, which the killed upload
	// overwrites; restart restarts the daemon between the kill and the
	// resume.
	old, restart bool
	// start uploads src to p throttled, in the background; nil: the
	// upload is broken by a pkg/sftp session whose connection is closed
	// midway (for psftp, which cannot be throttled).
	start  func(t *testing.T, p string) *bgClient
	resume func(t *testing.T, p string)
}

func backendKillCases(b *backendDaemon, src *backendSources) []killCase {
	curlBG := func(t *testing.T, args ...string) *bgClient {
		full := append([]string{"-q", "-sS", "--fail", "--connect-timeout", "10", "--limit-rate", rateLimit}, args...)
		return startBackground(t, []string{"HOME=" + t.TempDir()}, requireClient(t, "curl"), full...)
	}
	sshKey := func() []string { return curlArgs(curlKeyAuth(b.u), curlPin(b.HostKeyFP)) }
	return []killCase{
		{"openssh", true, true,
			func(t *testing.T, p string) *bgClient {
				args := append(sftpArgs(b.daemon, b.u), "-l", sftpRateLimit, "-b", writeBatch(t, "put "+src.kill.path+" "+p+"\n"), target(b.u))
				return startBackground(t, nil, requireClient(t, "sftp"), args...)
			},
			func(t *testing.T, p string) { sftpOK(t, b.daemon, b.u, "reput "+src.kill.path+" "+p+"\n") }},
		{"curl-sftp", false, false,
			func(t *testing.T, p string) *bgClient {
				return curlBG(t, curlArgs(sshKey(), []string{"-T", src.kill.path, curlURL(b.daemon, p)})...)
			},
			func(t *testing.T, p string) {
				curlOK(t, curlArgs(sshKey(), []string{"-C", "-", "-T", src.kill.path, curlURL(b.daemon, p)})...)
			}},
		{"curl-ftps", false, false,
			func(t *testing.T, p string) *bgClient {
				args := append([]string{"--ssl-reqd"}, curlPinFTPS(t, b.ftpsDaemon)...)
				return curlBG(t, append(args, "-u", b.u.Name+":"+b.u.Password, "-T", src.kill.path, ftpsURL(b.ftpsDaemon, p))...)
			},
			func(t *testing.T, p string) {
				curlFTPSOK(t, b.ftpsDaemon, b.u, "-C", "-", "-T", src.kill.path, ftpsURL(b.ftpsDaemon, p))
			}},
		{"lftp", false, false,
			func(t *testing.T, p string) *bgClient {
				script := filepath.Join(t.TempDir(), "lftp-script")
				body := fmt.Sprintf("%sset net:limit-rate %s\nopen --env-password -u %s -p %s 127.0.0.1\nput %s -o %s\n",
					lftpSettings, rateLimit, b.u.Name, b.ExplicitPort(), src.kill.path, p)
				if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				return startBackground(t, []string{"LFTP_PASSWORD=" + b.u.Password, "HOME=" + t.TempDir()},
					requireClient(t, "lftp"), "-f", script)
			},
			func(t *testing.T, p string) {
				_, debug := lftpOK(t, b.ftpsDaemon, b.u, false, fmt.Sprintf("put -c %s -o %s\n", src.kill.path, p))
				if !strings.Contains(debug, "REST ") {
					t.Errorf("lftp put -c sent no REST:\n%s", lftpTail(debug, 40))
				}
			}},
		{"psftp", false, false, nil,
			func(t *testing.T, p string) {
				out := psftpOK(t, b.daemon, b.u, puttyKey(t, b.u), fmt.Sprintf("reput %q %s\n", src.kill.path, p))
				if !strings.Contains(out, "restarting at file position") {
					t.Errorf("psftp reput did not resume:\n%s", out)
				}
			}},
	}
}

// brokenBySession uploads the first n bytes of src to p with pkg/sftp and
// closes the SSH connection under the open file: a client that died.
func brokenBySession(t *testing.T, b *backendDaemon, src backendFile, p string, n int64) {
	t.Helper()
	c, conn := sftpSession(t, b.daemon, b.u)
	f, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	in, err := os.Open(src.path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := io.Copy(f, io.LimitReader(in, n)); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	conn.Close()
}

// backendKilled kills each client midway through a 40 MiB upload: nothing
// appears under the name, in listings or in the backend, and the partial
// waits (on s3 as one multipart upload and its record); then the client's
// resume sends only what is missing, the file is whole, and nothing is
// left beside it.
func backendKilled(t *testing.T, b *backendDaemon, src *backendSources) {
	sftpOK(t, b.daemon, b.u, "mkdir /kill\n")
	for _, tc := range backendKillCases(b, src) {
		t.Run(tc.name, func(t *testing.T) {
			p := "/kill/" + tc.name
			if tc.old {
				b.st.seed(t, p, src.small.path)
			}
			mark := b.LogMark()
			if tc.start != nil {
				c := tc.start(t, p)
				b.st.waitInFlight(t, c, p, killAfter)
				c.kill()
			} else {
				brokenBySession(t, b, src.kill, p, killAfter+12345)
			}
			b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "outcome", "failed"), 10*time.Second)
			if tc.restart {
				// The partial outlives the daemon: on s3 the start-up sweep
				// leaves the multipart upload its record names.
				b.Restart(t)
			}

			out := sftpOK(t, b.daemon, b.u, "ls -la /kill\n")
			checkNoHiddenNames(t, "ls -la /kill after the kill", out)
			back := filepath.Join(t.TempDir(), "back")
			if tc.old {
				b.st.checkSum(t, "the file a killed upload overwrote", p, src.small.sum)
				if l := longnames(out, []string{tc.name}); !strings.Contains(l[tc.name], " 4096 ") {
					t.Errorf("ls -la /kill after the kill should list the old %s (4096 bytes):\n%s", tc.name, out)
				}
				sftpOK(t, b.daemon, b.u, "get "+p+" "+back+"\n")
				checkSum(t, "download of the file a killed upload overwrote", back, src.small.sum)
			} else {
				b.st.absent(t, "after the kill", p)
				if l := longnames(out, []string{tc.name}); l[tc.name] != "" {
					t.Errorf("the killed upload is listed: %q", l[tc.name])
				}
				sftpFails(t, b.daemon, b.u, "get "+p+" "+back+"\n")
			}
			if b.st.s3 != nil {
				if ups := b.st.multipart(t); len(ups) != 1 || !strings.HasPrefix(ups[0], b.st.key(p)+" ") {
					t.Errorf("multipart uploads after the kill: %v, want the partial's only", ups)
				}
				if recs := b.st.objects(t, s3RecordsFolder); len(recs) != 1 {
					t.Errorf("partial records after the kill: %v, want one", recs)
				}
			}
			if tc.restart {
				// A user whose home is the whole store sees no partial
				// and no record either, and cannot reach them.
				out := sftpOK(t, b.daemon, b.ops, "ls -la /\nls -la /alice/kill\n")
				checkNoHiddenNames(t, "ls -la of the whole store with a partial in it", out)
				if b.st.s3 != nil {
					rec := b.st.objects(t, s3RecordsFolder)
					if len(rec) == 1 {
						sftpFails(t, b.daemon, b.ops, "get /"+rec[0]+" "+filepath.Join(t.TempDir(), "rec")+"\n")
						sftpFails(t, b.daemon, b.ops, "rm /"+rec[0]+"\n")
						if got := b.st.objects(t, s3RecordsFolder); !slices.Equal(got, rec) {
							t.Errorf("the records after a client tried to remove one: %v, want %v", got, rec)
						}
					}
				}
			}
			// Stat of a name with a partial is the partial: what every
			// resuming client computes its offset from.
			r, _ := sftpSession(t, b.daemon, b.u)
			fi, err := r.Stat(p)
			if err != nil {
				t.Fatalf("stat of the partial: %v", err)
			}
			part := fi.Size()
			if part <= 0 || part >= src.kill.size {
				t.Fatalf("the partial holds %d bytes, want some of %d", part, src.kill.size)
			}

			mark = b.LogMark()
			tc.resume(t, p)
			b.st.checkSum(t, tc.name+" resume", p, src.kill.sum)
			b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "bytes", src.kill.size-part, "outcome", "ok"), 10*time.Second)
			b.checkUploadEvent(t, p, src.kill, src.kill.size-part)
			if left := b.st.leftovers(t, "/kill"); len(left) > 0 {
				t.Errorf("left behind after the resume: %v", left)
			}
			t.Logf("%s/%s: killed with %d of %d bytes kept; the resume sent %d", b.backend, tc.name, part, src.kill.size, src.kill.size-part)
		})
	}

	// A resume killed in its turn keeps what both attempts sent, and the
	// next resume sends only the rest.
	t.Run("KilledTwice", func(t *testing.T) {
		const p = "/kill/twice"
		sftpBG := func(cmd string) *bgClient {
			args := append(sftpArgs(b.daemon, b.u), "-l", sftpRateLimit, "-b", writeBatch(t, cmd+" "+src.kill.path+" "+p+"\n"), target(b.u))
			return startBackground(t, nil, requireClient(t, "sftp"), args...)
		}
		r, _ := sftpSession(t, b.daemon, b.u)
		partial := func() int64 {
			t.Helper()
			fi, err := r.Stat(p)
			if err != nil {
				t.Fatalf("stat of the partial: %v", err)
			}
			return fi.Size()
		}
		var parts []int64
		for i, cmd := range []string{"put", "reput"} {
			mark := b.LogMark()
			c := sftpBG(cmd)
			b.st.waitInFlight(t, c, p, int64(i+1)*killAfter+5<<20)
			c.kill()
			b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "outcome", "failed"), 10*time.Second)
			b.st.absent(t, "after kill "+strconv.Itoa(i+1), p)
			parts = append(parts, partial())
		}
		if parts[1] <= parts[0] || parts[1] >= src.kill.size {
			t.Fatalf("partials after the two kills: %v bytes; want the second larger, and less than %d", parts, src.kill.size)
		}
		mark := b.LogMark()
		sftpOK(t, b.daemon, b.u, "reput "+src.kill.path+" "+p+"\n")
		b.st.checkSum(t, "reput after two kills", p, src.kill.sum)
		b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "bytes", src.kill.size-parts[1], "outcome", "ok"), 10*time.Second)
		if left := b.st.leftovers(t, "/kill"); len(left) > 0 {
			t.Errorf("left behind after the resume: %v", left)
		}
		t.Logf("%s: partials of %v bytes after two kills", b.backend, parts)
	})

	// A remove of a name drops its partial, and so does an rmdir of the
	// folder that holds nothing else: nothing is left in the backend.
	t.Run("RemoveDropsPartials", func(t *testing.T) {
		sftpOK(t, b.daemon, b.u, "mkdir /kill-dir\n")
		mark := b.LogMark()
		brokenBySession(t, b, src.kill, "/kill/rm-me", killAfter+1)
		brokenBySession(t, b, src.kill, "/kill-dir/x", killAfter+1)
		for _, p := range []string{"/kill/rm-me", "/kill-dir/x"} {
			b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "outcome", "failed"), 10*time.Second)
		}
		if b.st.s3 != nil {
			if ups := b.st.multipart(t); len(ups) != 2 {
				t.Errorf("multipart uploads after two broken uploads: %v, want two partials", ups)
			}
		}
		sftpOK(t, b.daemon, b.u, "rm /kill/rm-me\nrmdir /kill-dir\n")
		b.st.absent(t, "after rmdir of a folder with a partial in it", "/kill-dir")
		r, _ := sftpSession(t, b.daemon, b.u)
		if fi, err := r.Stat("/kill/rm-me"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat of a removed partial: %v (err %v), want no such file", fi, err)
		}
		if left := b.st.leftovers(t, "/kill"); len(left) > 0 {
			t.Errorf("left behind after rm and rmdir: %v", left)
		}
	})
}

// backendAppend appends to a 64 MiB file with OpenSSH (put -a) and over
// FTPS (APPE): only the tail crosses the wire, and on s3 the daemon reads
// nothing of the object (its first part is a server-side copy).
func backendAppend(t *testing.T, b *backendDaemon, src *backendSources) {
	b.st.seed(t, "/app/ssh", src.appendBase.path)
	b.st.seed(t, "/app/ftps", src.appendBase.path)
	mark := b.LogMark()
	sftpOK(t, b.daemon, b.u, "put -a "+src.appendFull.path+" /app/ssh\n")
	b.st.checkSum(t, "put -a", "/app/ssh", src.appendFull.sum)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "sftp", "op", "upload", "path", "/app/ssh",
		"bytes", appendTail, "outcome", "ok"), 10*time.Second)
	b.checkUploadEvent(t, "/app/ssh", src.appendFull, appendTail)

	curlFTPSOK(t, b.ftpsDaemon, b.u, "--append", "-T", src.appendTail.path, ftpsURL(b.ftpsDaemon, "/app/ftps"))
	b.st.checkSum(t, "APPE", "/app/ftps", src.appendFull.sum)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "op", "upload", "path", "/app/ftps",
		"bytes", appendTail, "outcome", "ok"), 10*time.Second)
	b.checkUploadEvent(t, "/app/ftps", src.appendFull, appendTail)

	// A file under S3's 5 MiB part minimum cannot be the first part of a
	// multipart upload: the daemon reads it back (at most 5 MiB), once.
	local := t.TempDir()
	smallBase := sliceFile(t, src.kill.path, filepath.Join(local, "small-base"), 0, 1<<20)
	smallFull := sliceFile(t, src.kill.path, filepath.Join(local, "small-full"), 0, 1<<20+100_000)
	b.st.seed(t, "/app/small", smallBase.path)
	sftpOK(t, b.daemon, b.u, "put -a "+smallFull.path+" /app/small\n")
	b.st.checkSum(t, "put -a onto 1 MiB", "/app/small", smallFull.sum)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "sftp", "op", "upload", "path", "/app/small",
		"bytes", 100_000, "outcome", "ok"), 10*time.Second)

	if b.proxy == nil {
		return
	}
	if got := b.proxy.got(b.Bucket, b.st.key("/app/small")); got > smallBase.size {
		t.Errorf("append to a 1 MiB object: the daemon read %d bytes of it, want at most its %d", got, smallBase.size)
	}
	for _, p := range []string{"/app/ssh", "/app/ftps"} {
		key := b.st.key(p)
		got, put := b.proxy.got(b.Bucket, key), b.proxy.put(b.Bucket, key)
		t.Logf("append to %s: the daemon GET %d bytes of it and PUT %d", key, got, put)
		if got != 0 {
			t.Errorf("append to %s: the daemon read %d bytes of the object, want 0", key, got)
		}
		if put != appendTail {
			t.Errorf("append to %s: the daemon sent %d bytes to the store, want the tail's %d", key, put, appendTail)
		}
	}
}

// backendSetstat uploads with paramiko and sets the times and mode
// afterwards, as WinSCP does after every upload: accepted on both (on s3
// with setstat: ignore, the default, and kept nowhere).
func backendSetstat(t *testing.T, b *backendDaemon, src *backendSources) {
	const atime, mtime = 1400000000, 1500000000
	steps := []pyStep{
		{Name: "put", Op: "put", Args: []any{src.small.path, "/utime.txt"}},
		{Name: "utime", Op: "utime", Args: []any{"/utime.txt", atime, mtime}},
		{Name: "chmod", Op: "chmod", Args: []any{"/utime.txt", 0o600}},
		{Name: "stat", Op: "stat", Args: []any{"/utime.txt"}, check: func(t *testing.T, v json.RawMessage) {
			a := decodeValue[pyAttrs](t, "stat", v)
			if a.Size != src.small.size {
				t.Errorf("stat after utime: size %d, want %d", a.Size, src.small.size)
			}
			if b.backend == "local" && (a.Mtime != mtime || a.Mode&0o777 != 0o600) {
				t.Errorf("local: mtime %d mode %o after utime and chmod, want %d and 600", a.Mtime, a.Mode&0o777, mtime)
			}
			// s3 keeps the object's own time and the fixed file mode.
			if b.backend == "s3" && (time.Since(time.Unix(a.Mtime, 0)) > time.Hour || a.Mode&0o777 != 0o644) {
				t.Errorf("s3: mtime %d mode %o after the ignored utime and chmod, want the upload's time and 644", a.Mtime, a.Mode&0o777)
			}
		}},
	}
	plan := pyPlan{Host: "127.0.0.1", Port: b.Port, User: b.u.Name, Auth: "key", KeyFile: b.u.KeyFile,
		HostKey: ed25519HostKey(t, b.daemon), Steps: steps}
	checkSteps(t, steps, runParamiko(t, b.daemon, plan, ""))
	b.st.checkSum(t, "paramiko put", "/utime.txt", src.small.sum)
}

// backendDaemonKilled kills the daemon (SIGKILL) midway through an
// OpenSSH upload: after the restart nothing is under the name, the
// start-up recovery made what had reached the store the name's partial
// (on s3, from the multipart upload's full parts), and reput completes
// it, moving less than the whole file.
func backendDaemonKilled(t *testing.T, b *backendDaemon, src *backendSources) {
	const p = "/crash"
	args := append(sftpArgs(b.daemon, b.u), "-l", sftpRateLimit, "-b", writeBatch(t, "put "+src.kill.path+" "+p+"\n"), target(b.u))
	c := startBackground(t, nil, requireClient(t, "sftp"), args...)
	b.st.waitInFlight(t, c, p, killAfter)
	mark := b.LogMark()
	b.KillAndRestart(t)
	b.readFTPS(t, mark)
	c.kill()

	b.st.absent(t, "after the daemon was killed", p)
	b.WaitLogSince(t, mark, logMatch("msg", "recovered upload", "path", path.Join(b.u.Home, p)), 10*time.Second)
	resumeMark := b.LogMark()
	out := sftpOK(t, b.daemon, b.u, "ls -la /\nreput "+src.kill.path+" "+p+"\n")
	line := b.WaitLogSince(t, resumeMark, logMatch("msg", "transfer", "op", "upload", "path", p, "outcome", "ok"), 10*time.Second)
	if moved, _ := line["bytes"].(float64); moved <= 0 || int64(moved) >= src.kill.size {
		t.Errorf("reput after the restart moved %v bytes of %d: want the part the store did not hold", moved, src.kill.size)
	}
	checkNoHiddenNames(t, "ls -la / after the restart", out)
	if l := longnames(out, []string{path.Base(p)}); l[path.Base(p)] != "" {
		t.Errorf("the upload the daemon died in is listed: %q", l[path.Base(p)])
	}
	b.st.checkSum(t, "upload after the restart", p, src.kill.sum)
	if left := b.st.leftovers(t, "/"); len(left) > 0 {
		t.Errorf("left behind after the new upload: %v", left)
	}
}

// backendPartialExpired breaks an upload, then restarts the daemon with a
// partial_ttl the partial has outlived: the start-up sweep aborts its
// multipart upload and deletes its record, and the name is gone.
func backendPartialExpired(t *testing.T, b *backendDaemon, src *backendSources) {
	const p = "/expire"
	mark := b.LogMark()
	brokenBySession(t, b, src.kill, p, killAfter+1)
	b.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", p, "outcome", "failed"), 10*time.Second)
	if ups := b.st.multipart(t); len(ups) != 1 {
		t.Fatalf("multipart uploads after the broken upload: %v, want the partial's", ups)
	}
	data, err := os.ReadFile(b.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(data), partialTTL, "uploads:\n  partial_ttl: 1s\n", 1)
	if short == string(data) {
		t.Fatalf("the config has no %q to replace", partialTTL)
	}
	// The partial outlives the TTL, as the store's clock tells it: its
	// Date and Last-Modified have whole seconds, so an age of 2.1 s may
	// read as 2 s, and no less.
	time.Sleep(2100 * time.Millisecond)
	b.stop(t)
	if err := os.WriteFile(b.ConfigPath, []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	mark = b.LogMark()
	b.start(t)
	b.readFTPS(t, mark)
	b.WaitLogSince(t, mark, logMatch("msg", "s3: aborted a multipart upload", "key", b.st.key(p), "reason", "expired"), 10*time.Second)
	if left := b.st.leftovers(t, "/"); len(left) > 0 {
		t.Errorf("left in the bucket after the partial expired: %v", left)
	}
	r, _ := sftpSession(t, b.daemon, b.u)
	if fi, err := r.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of an expired partial: %v (err %v), want no such file", fi, err)
	}
}
