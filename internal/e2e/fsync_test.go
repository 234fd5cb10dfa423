package e2e

import (
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

	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// TestUploadsFsync watches the real daemon's system calls (strace) while
// OpenSSH's sftp uploads a file: by default the upload is flushed before
// its rename and its directory after it; with uploads.fsync: false nothing
// of the home is flushed; with atomic uploads off the file and its
// directory are still flushed.
func TestUploadsFsync(t *testing.T) {
	requireClient(t, "sftp")
	strace := requireClient(t, "strace")
	for _, tc := range []struct {
		name, extra string
		want        []string // the calls on the home, in order, with "HOME" and "TMP" for the paths
	}{
		{"default", "", []string{"fsync(TMP)", "renameat(TMP f)", "fsync(HOME)"}},
		{"off", "uploads:\n  fsync: false\n", []string{"renameat(TMP f)"}},
		{"not-atomic", "uploads:\n  atomic: false\n", []string{"fsync(HOME/f)", "fsync(HOME)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice := newUser(t, "alice")
			d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: tc.extra})
			home := d.HomeDir(alice)
			src := filepath.Join(t.TempDir(), "f")
			writeRandomFile(t, src, 1<<20)
			sftpOK(t, d, alice, "ls /\n") // the home exists, as it does for a partner
			trace := traceDaemon(t, strace, d.proc.cmd.Process.Pid)
			mark := d.LogMark()
			sftpOK(t, d, alice, "put "+src+" /f\n")
			d.WaitLogSince(t, mark, logMatch("msg", "transfer", "op", "upload", "path", "/f", "outcome", "ok"), 10*time.Second)
			got := trace(home)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("system calls on the home during the upload:\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// traceDaemon attaches strace to every thread of pid, recording fsync and
// rename calls with the paths of their descriptors. The returned function
// detaches and returns the calls on paths beneath home, simplified.
func traceDaemon(t *testing.T, strace string, pid int) func(home string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
		"-e", "signal=none", "-o", out, "-p", strconv.Itoa(pid))
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start strace: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "attached") {
		select {
		case err := <-done:
			once.Do(func() {}) // it has ended: nothing left to stop
			missingClient(t, fmt.Sprintf("strace cannot attach here: %v\n%s", err, stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("strace did not attach within 10 s:\n%s", stderr.String())
		}
	}
	return func(home string) []string {
		t.Helper()
		stop()
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var calls []string
		for line := range strings.Lines(string(data)) {
			if !strings.Contains(line, home) || strings.Contains(line, "resumed>") {
				continue
			}
			calls = append(calls, simplifyCall(line, home))
		}
		return calls
	}
}

// simplifyCall turns `123  fsync(14</root/alice/.wharf-upload.f.0a1b...>) = 0`
// into "fsync(TMP)", and a renameat of it to f into "renameat(TMP f)".
func simplifyCall(line, home string) string {
	_, call, _ := strings.Cut(strings.TrimSpace(line), " ")
	call = strings.TrimSpace(call)
	name, args, _ := strings.Cut(call, "(")
	args, _, _ = strings.Cut(args, ") = ")
	var parts []string
	for _, a := range strings.Split(args, ", ") {
		a = strings.Trim(a, `"`)
		if i := strings.Index(a, "<"); i >= 0 { // a descriptor: keep its path
			a = strings.TrimSuffix(a[i+1:], ">")
		}
		if a == home {
			if name == "fsync" || name == "fdatasync" {
				parts = append(parts, "HOME")
			}
			continue // renameat's directory descriptors
		}
		a = strings.TrimPrefix(a, home)
		a = strings.TrimPrefix(a, "/")
		if strings.HasPrefix(a, uploadPrefix) {
			a = "TMP"
		} else if name == "fsync" || name == "fdatasync" {
			a = "HOME/" + a
		}
		parts = append(parts, a)
	}
	return name + "(" + strings.Join(parts, " ") + ")"
}
