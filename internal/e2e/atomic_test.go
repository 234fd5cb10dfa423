package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The names under which atomic uploads (uploads.atomic, on by default) keep
// an upload in progress and a broken one; operators see them on disk,
// clients never do.
const (
	uploadPrefix  = ".wharf-upload."
	partialPrefix = ".wharf-partial."
)

// bgClient is a client running in the background, in a process group of its
// own so that killing it also kills its helpers (sftp's ssh), as when the
// partner's machine dies mid-transfer.
type bgClient struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	mu  sync.Mutex
	out bytes.Buffer // stdout and stderr
}

func (c *bgClient) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *bgClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func startBackground(t *testing.T, env []string, name string, args ...string) *bgClient {
	t.Helper()
	c := &bgClient{done: make(chan struct{})}
	c.cmd = exec.Command(name, args...)
	c.cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	c.cmd.Stdout, c.cmd.Stderr = c, c
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", filepath.Base(name), err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the client's process group with SIGKILL and waits for it.
func (c *bgClient) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// tempSize is the size of the largest temporary file of an upload of base
// in dir (-1: none).
func tempSize(dir, base string) int64 {
	size := int64(-1)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), uploadPrefix+base+".") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			size = fi.Size()
		}
	}
	return size
}

// waitForUpload waits until an upload of base in dir (its temporary file)
// holds at least min bytes, failing if the client exits first.
func waitForUpload(t *testing.T, c *bgClient, dir, base string, min int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if tempSize(dir, base) >= min {
			return
		}
		select {
		case <-c.done:
			t.Fatalf("the client exited before %d bytes of %s arrived:\n%s", min, base, c.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no temporary file of %s with %d bytes within a minute; %s holds %v", base, min, dir, dirNames(t, dir))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkBroken checks what a broken upload of name leaves in home: nothing
// under the name (or old content, with sum oldSum), no temporary file, and
// a partial, whose size it returns.
func checkBroken(t *testing.T, home, name string, size int64, oldSum string) int64 {
	t.Helper()
	final := filepath.Join(home, name)
	if oldSum == "" {
		if exists(t, final) {
			fi, _ := os.Stat(final)
			t.Fatalf("the broken upload is visible under its name (%d of %d bytes)", fi.Size(), size)
		}
	} else {
		checkSum(t, "the file an upload broke overwriting", final, oldSum)
	}
	for _, n := range dirNames(t, home) {
		if strings.HasPrefix(n, uploadPrefix) {
			t.Errorf("temporary file %s left after the client died", n)
		}
	}
	fi, err := os.Stat(filepath.Join(home, partialPrefix+name))
	if err != nil {
		t.Fatalf("no partial kept for resume: %v (home holds %v)", err, dirNames(t, home))
	}
	if fi.Size() <= 0 || fi.Size() >= size {
		t.Fatalf("partial holds %d bytes, want some of %d", fi.Size(), size)
	}
	return fi.Size()
}

// checkNoHiddenNames fails when a listing shows one of the hidden names.
func checkNoHiddenNames(t *testing.T, what, listing string) {
	t.Helper()
	if strings.Contains(listing, ".wharf-") {
		t.Errorf("%s shows a hidden name:\n%s", what, listing)
	}
}

// TestAtomicSFTPUploadKilled overwrites a file with 64 MiB from OpenSSH's
// sftp, throttled, and kills the client halfway: the old file stays intact
// and downloadable, listings show nothing else, and reput completes the new
// one byte for byte.
func TestAtomicSFTPUploadKilled(t *testing.T) {
	sftp := requireClient(t, "sftp")
	alice := newUser(t, "alice")
	// A hook on every upload: the cut upload must not reach it.
	r := newReceiver(t, "s")
	hook := strings.Replace(hookConfig(t, r, ""), `paths: ["/inbox/**"]`, `paths: ["/**"]`, 1)
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: hook})
	home := d.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	const size = 64 << 20
	oldSum := writeRandomFile(t, filepath.Join(home, "big"), 1<<20)
	src := filepath.Join(local, "big")
	sum := writeRandomFile(t, src, size)

	// -l is in Kbit/s: 64,000 is 8 MB/s, about 8 s for the whole file.
	args := append(sftpArgs(d, alice), "-l", "64000", "-b", writeBatch(t, "put "+src+" /big\n"), target(alice))
	c := startBackground(t, nil, sftp, args...)
	waitForUpload(t, c, home, "big", size/4)
	out := sftpOK(t, d, alice, "ls -la /\n")
	checkNoHiddenNames(t, "sftp ls -la during the upload", out)
	if !strings.Contains(out, " big\n") || !strings.Contains(out, " 1048576 ") {
		t.Errorf("during the upload ls should show the old big (1048576 bytes):\n%s", out)
	}
	waitForUpload(t, c, home, "big", size/2)
	mark := d.LogMark()
	c.kill()
	d.WaitLogSince(t, mark, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/big",
		"outcome", "failed"), 10*time.Second)

	part := checkBroken(t, home, "big", size, oldSum)
	time.Sleep(time.Second) // an event, if one were sent, would arrive now
	if got := r.uploads(); len(got) != 0 {
		t.Fatalf("the cut upload produced upload events: %+v", got)
	}
	back := filepath.Join(local, "back")
	out = sftpOK(t, d, alice, "ls -la /\nget /big "+back+"\n")
	checkNoHiddenNames(t, "sftp ls -la after the failure", out)
	checkSum(t, "download after the broken overwrite", back, oldSum)

	mark = d.LogMark()
	sftpOK(t, d, alice, "reput "+src+" /big\n")
	checkSum(t, "reput after the kill", filepath.Join(home, "big"), sum)
	d.WaitLogSince(t, mark, logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/big",
		"bytes", size-part, "outcome", "ok"), 10*time.Second)
	if names := dirNames(t, home); len(names) != 1 {
		t.Errorf("home after the resume holds %v, want only big", names)
	}
	if got := r.waitUploads(1, 20*time.Second); len(got) != 1 || got[0].Path != "/big" || got[0].Size != size || got[0].Bytes != size-part {
		t.Errorf("after the resume: %+v, want one upload event for /big", got)
	}
}

// TestAtomicFTPSUploadKilled uploads 64 MiB over explicit FTPS with curl,
// throttled, and kills curl halfway: no file appears under the name, FTP
// listings show nothing, and curl -C - (SIZE, then APPE) completes it.
func TestAtomicFTPSUploadKilled(t *testing.T) {
	curl := requireClient(t, "curl")
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	home := f.HomeDir(alice)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	const size = 64 << 20
	src := filepath.Join(local, "big")
	sum := writeRandomFile(t, src, size)

	args := append([]string{"-q", "-sS", "--fail", "--connect-timeout", "10", "--ssl-reqd"}, curlPinFTPS(t, f)...)
	args = append(args, "-u", alice.Name+":"+alice.Password, "--limit-rate", "8M", "-T", src, ftpsURL(f, "/big"))
	c := startBackground(t, []string{"HOME=" + t.TempDir()}, curl, args...)
	waitForUpload(t, c, home, "big", size/4)
	for _, list := range [][]string{{"--list-only"}, nil} { // NLST and LIST
		out := curlFTPSOK(t, f, alice, append(list, ftpsURL(f, "/"))...)
		checkNoHiddenNames(t, fmt.Sprintf("curl %v during the upload", list), out)
		if strings.Contains(out, "big") {
			t.Errorf("curl %v lists big while it is being uploaded:\n%s", list, out)
		}
	}
	waitForUpload(t, c, home, "big", size/2)
	mark := f.LogMark()
	c.kill()
	f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
		"path", "/big", "outcome", "failed"), 10*time.Second)

	part := checkBroken(t, home, "big", size, "")
	out := curlFTPSOK(t, f, alice, "--list-only", ftpsURL(f, "/"))
	if strings.TrimSpace(out) != "" {
		t.Errorf("NLST after the broken upload lists %q, want nothing", out)
	}
	// The partial is what a download of the name would get on a plain
	// server; here only complete files are served.
	if _, stderr, err := curlFTPS(t, f, alice, alice.Password, "-o", filepath.Join(local, "back"), ftpsURL(f, "/big")); err == nil {
		t.Errorf("downloading the broken upload succeeded\n%s", redact(stderr, alice.Password))
	}

	mark = f.LogMark()
	curlFTPSOK(t, f, alice, "-C", "-", "-T", src, ftpsURL(f, "/big"))
	checkSum(t, "curl -C - after the kill", filepath.Join(home, "big"), sum)
	f.WaitLogSince(t, mark, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
		"path", "/big", "bytes", size-part, "outcome", "ok"), 10*time.Second)
	if names := dirNames(t, home); len(names) != 1 {
		t.Errorf("home after the resume holds %v, want only big", names)
	}
}

// TestAtomicResumeClients leaves a partial as a broken upload would and lets
// each client resume it the way it does: each must send only the tail, and
// the file must appear whole.
func TestAtomicResumeClients(t *testing.T) {
	alice := newUser(t, "alice")
	carol := newUser(t, "carol") // may add files, not overwrite them
	carol.Permissions = []string{"list", "upload"}
	f := startFTPS(t, []*testUser{alice, carol}, ftpsOpts{})
	local := t.TempDir()
	const size, prefix = 3<<20 + 7, 1<<20 + 3
	src := filepath.Join(local, "src")
	sum := writeRandomFile(t, src, size)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		user   *testUser
		old    bool // an older complete file is under the name too
		resume func(t *testing.T, u *testUser, name string)
	}{
		{"openssh-reput", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "sftp")
			sftpOK(t, f.daemon, u, fmt.Sprintf("reput %s /%s\n", src, name))
		}},
		{"openssh-reput-over-old", alice, true, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "sftp")
			sftpOK(t, f.daemon, u, fmt.Sprintf("reput %s /%s\n", src, name))
		}},
		{"openssh-put-a", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "sftp")
			sftpOK(t, f.daemon, u, fmt.Sprintf("put -a %s /%s\n", src, name))
		}},
		{"openssh-reput-upload-only", carol, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "sftp")
			sftpOK(t, f.daemon, u, fmt.Sprintf("reput %s /%s\n", src, name))
		}},
		{"psftp-reput", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "psftp")
			out := psftpOK(t, f.daemon, u, puttyKey(t, u), fmt.Sprintf("reput %q /%s\n", src, name))
			if !strings.Contains(out, "restarting at file position "+strconv.Itoa(prefix)) {
				t.Errorf("psftp reput did not resume at %d:\n%s", prefix, out)
			}
		}},
		{"curl-sftp", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "curl")
			curlOK(t, curlArgs(curlKeyAuth(u), curlPin(f.HostKeyFP), []string{"-C", "-", "-T", src, curlURL(f.daemon, "/"+name)})...)
		}},
		{"curl-ftps", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "curl")
			curlFTPSOK(t, f, u, "-C", "-", "-T", src, ftpsURL(f, "/"+name))
		}},
		{"lftp-put-c", alice, false, func(t *testing.T, u *testUser, name string) {
			requireClient(t, "lftp")
			_, debug := lftpOK(t, f, u, false, fmt.Sprintf("put -c %s -o %s\n", src, name))
			if !strings.Contains(debug, fmt.Sprintf("REST %d", prefix)) {
				t.Errorf("lftp put -c did not send REST %d:\n%s", prefix, lftpTail(debug, 40))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := f.HomeDir(tc.user)
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			name := tc.name
			if err := os.WriteFile(filepath.Join(home, partialPrefix+name), data[:prefix], 0o640); err != nil {
				t.Fatal(err)
			}
			if tc.old {
				writeRandomFile(t, filepath.Join(home, name), 4096)
			}
			mark := f.LogMark()
			tc.resume(t, tc.user, name)
			checkSum(t, tc.name, filepath.Join(home, name), sum)
			if exists(t, filepath.Join(home, partialPrefix+name)) {
				t.Errorf("the partial is still there after the resume")
			}
			f.WaitLogSince(t, mark, logMatch("msg", "transfer", "user", tc.user.Name, "op", "upload", "path", "/"+name,
				"bytes", size-prefix, "outcome", "ok"), 10*time.Second)
		})
	}
}
