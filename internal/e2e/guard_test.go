package e2e

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDefender: 20 wrong passwords from 127.0.0.1 get it banned; its next
// connection is closed before authentication even with the right key, while
// 127.0.0.2 still logs in, and `wharf defender list` shows the ban.
func TestDefender(t *testing.T) {
	requireClient(t, "sshpass")
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: "defender:\n  threshold: 10\n  allow: []\n"})
	wrong := *alice
	wrong.Password = "not-" + alice.Password
	for i := range 20 {
		if _, _, err := sftpPasswordBatch(t, d, &wrong, wrong.Password, "pwd\n"); err == nil {
			t.Fatalf("wrong password %d accepted", i)
		}
	}
	d.WaitLog(t, logMatch("msg", "ban", "addr", "127.0.0.1"), 10*time.Second)

	// Refused before any SSH work: the server's first bytes say why.
	nc, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, _ := io.ReadAll(io.LimitReader(nc, 512))
	nc.Close()
	if !strings.HasPrefix(string(first), "wharf: too many failed logins") {
		t.Fatalf("banned address was sent %q", first)
	}
	if _, _, err := sftpBatch(t, d, alice, "pwd\n"); err == nil {
		t.Fatal("banned address logged in with the right key")
	}

	// Another address is unaffected (OpenSSH binding 127.0.0.2).
	args := append(sftpArgs(d, alice), "-o", "BindAddress=127.0.0.2", "-b", writeBatch(t, "pwd\n"), target(alice))
	if out, stderr, err := runCmd(t, clientTimeout, requireClient(t, "sftp"), args...); err != nil {
		t.Fatalf("login from 127.0.0.2: %v\n%s\n%s", err, out, stderr)
	}

	out, stderr, err := runCmd(t, 20*time.Second, wharfBin, "defender", "list", "--config", d.ConfigPath)
	if err != nil || !strings.Contains(out, "127.0.0.1") || strings.Contains(out, "127.0.0.2") {
		t.Fatalf("defender list: %v\n%s\n%s", err, out, stderr)
	}
}

// TestLoginDeadline: 1,000 connections that send nothing are all dropped
// by login_timeout, and a real user logs in while they hang.
func TestLoginDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: "limits:\n  login_timeout: 3s\n" +
		"  max_connections: 1200\n  max_connections_per_ip: 1100\n  max_unauthenticated: 1100\n"})
	const n = 1000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	opened := time.Now()
	for i := range n {
		c, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	sftpOK(t, d, alice, "pwd\n") // served meanwhile

	// Every silent connection must be closed by the server: reading ends in
	// EOF (after the version line), not in our own deadline.
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(opened.Add(20 * time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d silent connections were still open 20s after they were made (login_timeout 3s)", open, n)
	}
}

// TestConnectionLimit: past max_unauthenticated a new connection is told
// why and closed; the others are not disturbed.
func TestConnectionLimit(t *testing.T) {
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: "limits:\n  max_unauthenticated: 5\n"})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 5 {
		c, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// The version line comes only after the guard admitted the
		// connection: once all five have it, the limit is reached.
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line := make([]byte, len("SSH-2.0-wharf\r\n"))
		if _, err := io.ReadFull(c, line); err != nil || string(line) != "SSH-2.0-wharf\r\n" {
			t.Fatalf("connection %d: %q, %v", i, line, err)
		}
	}
	c, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	first, _ := io.ReadAll(io.LimitReader(c, 200))
	c.Close()
	if !strings.Contains(string(first), "too many connections logging in") {
		t.Fatalf("sixth connection got %q", first)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// Once they are gone, logins work again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := sftpBatch(t, d, alice, "pwd\n"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no login after the silent connections closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
