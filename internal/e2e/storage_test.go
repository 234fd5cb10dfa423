package e2e

// Storage that fails under a running daemon: a full disk and a read-only
// store (a real 2 MiB tmpfs mounted over the storage root, which needs
// root), and a home deleted while its session is open. OpenSSH sftp must
// get an error that names no host path, the daemon must keep serving, and
// its log must say what happened.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const tmpfsSize = 2 << 20

// tmpfsStore mounts a 2 MiB tmpfs over the daemon's storage root and
// restarts the daemon on it (the storage root is opened at start). It skips
// the test when the process may not mount, saying so. The returned function
// remounts the store read-only (true) or read-write (false).
func tmpfsStore(t *testing.T, d *daemon) (remount func(readOnly bool)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs for the storage root needs root")
	}
	const flags = syscall.MS_NOSUID | syscall.MS_NODEV
	data := fmt.Sprintf("size=%d,mode=0755", tmpfsSize)
	if err := syscall.Mount("tmpfs", d.Root, "tmpfs", flags, data); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("mount is not permitted here (no CAP_SYS_ADMIN?): %v", err)
		}
		t.Fatalf("mount tmpfs on the storage root: %v", err)
	}
	// Registered after startDaemon's cleanup, so this runs first: the
	// daemon must be gone before its store can be unmounted.
	t.Cleanup(func() {
		d.stop(t)
		if err := syscall.Unmount(d.Root, 0); err != nil {
			t.Errorf("unmount the test tmpfs: %v", err)
			_ = syscall.Unmount(d.Root, syscall.MNT_DETACH)
		}
	})
	d.Restart(t)
	return func(readOnly bool) {
		t.Helper()
		f := uintptr(flags | syscall.MS_REMOUNT)
		if readOnly {
			f |= syscall.MS_RDONLY
		}
		// EBUSY: a file on it is still open for writing (a transfer
		// that just ended closes its file a moment after its reply).
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := syscall.Mount("tmpfs", d.Root, "tmpfs", f, data)
			if err == nil {
				return
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				t.Fatalf("remount the store (read-only %v): %v", readOnly, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestStorageDiskFull uploads more than the store holds: the upload fails
// with a message naming no host path, the log records a failed transfer
// with the reason, and once space is freed every user carries on.
func TestStorageDiskFull(t *testing.T) {
	requireClient(t, "sftp")
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, bob}})
	tmpfsStore(t, d)
	local := t.TempDir()
	big := filepath.Join(local, "big.bin")
	writeRandomFile(t, big, 2*tmpfsSize)
	small := filepath.Join(local, "small.txt")
	sum := writeRandomFile(t, small, 1000)

	mark := d.LogMark()
	out := sftpFails(t, d, alice, "put "+big+" /big.bin\n")
	t.Logf("OpenSSH sftp on a full disk says: %s", strings.TrimSpace(out))
	l := d.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", "/big.bin", "outcome", "failed"), 10*time.Second)
	if e, _ := l["err"].(string); !strings.Contains(e, "no space left on device") {
		t.Errorf("the failed transfer's err = %q, want it to say the disk is full", e)
	}
	// What is left under the final name depends on uploads.atomic (the
	// vfs tests check both); record it.
	if fi, err := os.Stat(filepath.Join(d.HomeDir(alice), "big.bin")); err == nil {
		t.Logf("after ENOSPC /big.bin holds %d of %d bytes under its final name", fi.Size(), 2*tmpfsSize)
	} else {
		t.Logf("after ENOSPC nothing is under the final name: %v", err)
	}

	sftpOK(t, d, alice, "rm /big.bin\n")
	for _, u := range []*testUser{alice, bob} {
		sftpOK(t, d, u, "put "+small+" /small.txt\n")
		if got := sha256File(t, filepath.Join(d.HomeDir(u), "small.txt")); got != sum {
			t.Errorf("%s: upload after the disk was freed is corrupt", u.Name)
		}
	}
}

// TestStorageReadOnly remounts the store read-only under a running daemon:
// every change fails with a message naming no host path, downloads and
// listings still work, a user whose home does not exist yet cannot log in
// (and the daemon says why), and all is well again once the store is
// writable.
func TestStorageReadOnly(t *testing.T) {
	requireClient(t, "sftp")
	alice, carol := newUser(t, "alice"), newUser(t, "carol")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, carol}})
	remount := tmpfsStore(t, d)
	local := t.TempDir()
	file := filepath.Join(local, "f.txt")
	sum := writeRandomFile(t, file, 5000)
	sftpOK(t, d, alice, "put "+file+" /kept.txt\nmkdir /dir\n")

	remount(true)
	for _, cmd := range []string{
		"put " + file + " /new.txt",
		"put " + file + " /kept.txt",
		"mkdir /other",
		"rm /kept.txt",
		"rmdir /dir",
		"rename /kept.txt /moved.txt",
		"chmod 600 /kept.txt",
	} {
		out := sftpFails(t, d, alice, cmd+"\n")
		t.Logf("read-only store, %q: %s", cmd, strings.TrimSpace(out))
	}
	got := filepath.Join(local, "back.txt")
	stdout := sftpOK(t, d, alice, "get /kept.txt "+got+"\nls -1 /\n")
	if sha256File(t, got) != sum {
		t.Error("download from the read-only store is corrupt")
	}
	if !strings.Contains(stdout, "kept.txt") {
		t.Errorf("listing of the read-only store:\n%s", stdout)
	}

	// carol has never logged in: her home cannot be created.
	mark := d.LogMark()
	stdout, stderr, err := sftpBatch(t, d, carol, "ls /\n")
	if err == nil {
		t.Fatalf("carol logged in although her home cannot be created:\n%s", stdout)
	}
	assertNoHostPath(t, d, "login with an uncreatable home", stdout, stderr)
	t.Logf("OpenSSH sftp when the home cannot be created says: %s", strings.TrimSpace(stderr))
	l := d.WaitLogSince(t, mark, logMatch("msg", "open session", "user", "carol"), 10*time.Second)
	if e := fmt.Sprint(l["err"]); !strings.Contains(e, "read-only file system") {
		t.Errorf("open session err = %q, want it to say why", e)
	}

	remount(false)
	sftpOK(t, d, alice, "put "+file+" /new.txt\nrm /kept.txt\n")
	sftpOK(t, d, carol, "put "+file+" /carol.txt\n")
	if sha256File(t, filepath.Join(d.HomeDir(carol), "carol.txt")) != sum {
		t.Error("carol's upload after the remount is corrupt")
	}
	for _, l := range d.Logs() {
		if e, ok := l["err"].(string); ok && strings.Contains(e, d.Root) {
			t.Errorf("a log line names the storage root: %q", e)
		}
	}
}

// hasLog reports whether a line logged so far matches, waiting up to
// timeout for it.
func (d *daemon) hasLog(match func(map[string]any) bool, timeout time.Duration) bool {
	_, ok := d.pollLog(0, match, timeout)
	return ok
}

// TestStorageVanishedHome deletes a user's home on disk while an OpenSSH
// sftp session is open in it: each later command fails with an error
// naming no host path, the session and the daemon stay up, and the next
// login creates the home again.
func TestStorageVanishedHome(t *testing.T) {
	sftpPath := requireClient(t, "sftp")
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})
	local := t.TempDir()
	file := filepath.Join(local, "f.txt")
	sum := writeRandomFile(t, file, 3000)
	home := d.HomeDir(alice)

	// A batch read from a pipe keeps one session open across the removal.
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sftpPath, append(sftpArgs(d, alice), "-b", "-", target(alice))...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "put "+file+" /first.txt\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !exists(t, filepath.Join(home, "first.txt")) || !d.hasLog(logMatch("msg", "transfer", "path", "/first.txt", "outcome", "ok"), 0) {
		if time.Now().After(deadline) {
			t.Fatalf("first upload did not arrive\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.RemoveAll(home); err != nil {
		t.Fatal(err)
	}
	// "-" lets the batch go on past a failed command.
	if _, err := io.WriteString(stdin, "-ls /\n-put "+file+" /second.txt\n-get /first.txt "+filepath.Join(local, "back.txt")+"\n-mkdir /d\npwd\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sftp session in a vanished home ended with %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	assertNoHostPath(t, d, "vanished home", stdout.String(), stderr.String())
	t.Logf("OpenSSH sftp in a vanished home says:\n%s", strings.TrimSpace(stderr.String()))
	for _, want := range []string{"/second.txt", "/first.txt", "/d"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no error names %s:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "Remote working directory: /") {
		t.Errorf("the session did not survive to the last command:\n%s", stdout.String())
	}
	if exists(t, home) {
		t.Error("the open session recreated the deleted home")
	}

	sftpOK(t, d, alice, "put "+file+" /third.txt\n")
	if sha256File(t, filepath.Join(home, "third.txt")) != sum {
		t.Error("upload after a new login is corrupt")
	}
}
