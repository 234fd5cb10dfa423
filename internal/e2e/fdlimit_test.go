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
// left and opens more SFTP connections than it can accept: accept fails
// with EMFILE. The daemon must back off and keep serving, not shut down
// (which would let anyone who can open connections stop it), and serve a
// login once the connections are gone.
func TestOutOfDescriptors(t *testing.T) {
	u := newUser(t, "fd")
	d := startDaemon(t, daemonOpts{Users: []*testUser{u}})
	sftpOK(t, d, u, "pwd\n") // the session machinery is warm: state files open
	exhaustDescriptors(t, d, d.Addr, "accept", func() error {
		_, stderr, err := sftpBatch(t, d, u, "pwd\n")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, stderr)
		}
		return nil
	})
}

// TestOutOfDescriptorsFTPS is the same on the FTPS listener, whose accept
// loop is ftpserverlib's.
func TestOutOfDescriptorsFTPS(t *testing.T) {
	u := newUser(t, "fdftp")
	f := startFTPS(t, []*testUser{u}, ftpsOpts{})
	login := func() error {
		c, err := dialFTPErr(f.Explicit, nil)
		if err != nil {
			return err
		}
		defer c.conn.Close()
		if err := c.authTLSErr(clientTLS(nil)); err != nil {
			return err
		}
		for _, step := range []struct {
			line string
			want int
		}{{"USER " + u.Name, 331}, {"PASS " + u.Password, 230}} {
			if code, text, err := c.cmd(step.line); err != nil || code != step.want {
				return fmt.Errorf("%s: reply %d %q (%v)", strings.Fields(step.line)[0], code, text, err)
			}
		}
		return nil
	}
	if err := login(); err != nil {
		t.Fatalf("first login: %v", err)
	}
	exhaustDescriptors(t, f.daemon, f.Explicit, "Serve error", login)
}

// exhaustDescriptors lowers the running daemon's descriptor limit to a few
// above what it holds, opens connections to addr until accept fails (the
// daemon logs msg with "too many open files"), closes them, and then
// expects login to succeed within 30 s, with the daemon still running.
func exhaustDescriptors(t *testing.T, d *daemon, addr, msg string, login func() error) {
	t.Helper()
	prlimit := requireClient(t, "prlimit")
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
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err) // the kernel's backlog takes them all
		}
		conns = append(conns, c)
	}
	d.WaitLog(t, func(m map[string]any) bool {
		err, _ := m["err"].(string)
		return m["msg"] == msg && strings.Contains(err, "too many open files")
	}, 20*time.Second)
	for _, c := range conns {
		c.Close()
	}
	// Every slot frees as the daemon reads EOF; accept retries within a
	// second and the next login gets through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := login()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login after the connections closed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-d.proc.exited:
		t.Fatalf("the daemon exited: %v", d.proc.err)
	default:
	}
}
