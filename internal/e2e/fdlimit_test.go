package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOutOfDescriptors runs the daemon with almost no file descriptors
// left and opens more connections than it can accept: accept fails with
// EMFILE. The daemon must back off and keep serving, not shut down (which
// would let anyone who can open connections stop it), and serve a login
// once the connections are gone.
func TestOutOfDescriptors(t *testing.T) {
	prlimit := requireClient(t, "prlimit")
	u := newUser(t, "fd")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}})
	sftpOK(t, d, u, "pwd\n") // the session machinery is warm: state files open

	pid := d.proc.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := strconv.Itoa(len(fds) + 6)
	if _, stderr, err := runCmd(t, clientTimeout, prlimit, "--pid", strconv.Itoa(pid), "--nofile="+limit+":"+limit); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, stderr)
	}

	var conns []net.Conn
	for range 20 {
		c, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err) // the kernel's backlog takes them all
		}
		conns = append(conns, c)
	}
	d.WaitLog(t, func(m map[string]any) bool {
		err, _ := m["err"].(string)
		return m["msg"] == "accept" && strings.Contains(err, "too many open files")
	}, 20*time.Second)
	for _, c := range conns {
		c.Close()
	}
	// Every slot frees as the daemon reads EOF; accept retries within a
	// second and the next login gets through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, stderr, err := sftpBatch(t, d, u, "pwd\n")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login after the connections closed: %v\n%s", err, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-d.proc.exited:
		t.Fatalf("the daemon exited: %v", d.proc.err)
	default:
	}
}
