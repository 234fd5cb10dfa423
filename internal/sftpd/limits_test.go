package sftpd_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// dialFrom connects from a chosen loopback source address.
func dialFrom(t *testing.T, d *daemontest.Daemon, src string, u user) (*ssh.Client, error) {
	t.Helper()
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := nd.Dial("tcp", d.Addr)
	if err != nil {
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, d.Addr, &ssh.ClientConfig{
		User: u.name, Auth: []ssh.AuthMethod{ssh.PublicKeys(u.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func TestAllowedIPs(t *testing.T) {
	edi, cu := newUser(t, "edi")
	cu.AllowedIPs = []string{"127.0.0.2/32"}
	d := start(t, "memory", cu)
	if c, err := dialFrom(t, d, "127.0.0.1", edi); err == nil {
		c.Close()
		t.Fatal("login from an address outside allowed_ips succeeded")
	}
	c, err := dialFrom(t, d, "127.0.0.2", edi)
	if err != nil {
		t.Fatalf("login from an allowed address: %v", err)
	}
	c.Close()
	if !strings.Contains(d.Logs(), "not in allowed_ips") {
		t.Error("refusal not logged with its reason")
	}
}

func startLimited(t *testing.T, l func(*config.Limits), users ...config.User) *daemontest.Daemon {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.Users = users
	l(&cfg.Limits)
	return daemontest.Start(t, cfg)
}

func TestMaxSessionsPerUser(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := startLimited(t, func(l *config.Limits) { l.MaxConnectionsPerUser = 1 }, cu)
	first := sftpClient(t, d, alice)
	conn, err := dial(t, d, "alice", ssh.PublicKeys(alice.signer))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = sftp.NewClient(conn)
	if err == nil || !strings.Contains(err.Error(), "too many sessions for this user") {
		t.Fatalf("second session: %v, want a channel refusal saying why", err)
	}
	if _, err := first.Getwd(); err != nil {
		t.Fatalf("the first session suffered: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := startLimited(t, func(l *config.Limits) { l.IdleTimeout = 500 * time.Millisecond }, cu)
	c := sftpClient(t, d, alice)
	if _, err := c.Getwd(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Logs(), `"msg":"idle timeout"`) {
		if time.Now().After(deadline) {
			t.Fatal("idle session not closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Getwd(); err == nil {
		t.Fatal("idle session still answers")
	}
}

func TestMaxHandles(t *testing.T) {
	alice, cu := newUser(t, "alice")
	d := startLimited(t, func(l *config.Limits) { l.MaxHandlesPerSession = 3 }, cu)
	c := sftpClient(t, d, alice)
	var open []*sftp.File
	for i := range 3 {
		f, err := c.Create("/f" + string(rune('a'+i)))
		if err != nil {
			t.Fatalf("handle %d: %v", i, err)
		}
		open = append(open, f)
	}
	if _, err := c.Create("/fourth"); err == nil || !strings.Contains(err.Error(), "too many open files") {
		t.Fatalf("fourth handle: %v", err)
	}
	open[0].Close()
	f, err := c.Create("/fourth")
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	f.Close()
}

func TestMaxUploadSize(t *testing.T) {
	alice, cu := newUser(t, "alice")
	cu.MaxUploadSize = 1000
	d := start(t, "memory", cu)
	c := sftpClient(t, d, alice)
	f, err := c.Create("/big")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 4000))
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("upload past max_upload_size: %v", err)
	}
	put(t, c, "/small", make([]byte, 1000))
	if !strings.Contains(d.Logs(), `"path":"/big"`) || !strings.Contains(d.Logs(), `"outcome":"failed"`) {
		t.Error("the refused upload is not logged as failed")
	}
}

func TestBannedBeforeAuthentication(t *testing.T) {
	alice, cu := newUser(t, "alice")
	hash, err := auth.HashPasswordBcrypt("right")
	if err != nil {
		t.Fatal(err)
	}
	cu.PasswordHash = hash
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.Users = []config.User{cu}
	cfg.Defender.Threshold = 5
	cfg.Defender.Allow = []string{"127.0.0.3/32"}
	d := daemontest.Start(t, cfg)
	for range 5 {
		if c, err := dial(t, d, "alice", ssh.Password("wrong")); err == nil {
			c.Close()
			t.Fatal("wrong password accepted")
		}
	}
	// Banned: even the right key is refused, before any authentication.
	nc, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _ := nc.Read(buf)
	nc.Close()
	if !strings.Contains(string(buf[:n]), "too many failed logins") {
		t.Fatalf("banned address got %q", buf[:n])
	}
	if _, err := dialFrom(t, d, "127.0.0.1", alice); err == nil {
		t.Fatal("banned address logged in with the right key")
	}
	// Another address is not affected; an allow-listed one is never banned.
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		c, err := dialFrom(t, d, src, alice)
		if err != nil {
			t.Fatalf("login from %s: %v", src, err)
		}
		c.Close()
	}
	if !strings.Contains(d.Logs(), `"msg":"ban","component":"guard","addr":"127.0.0.1"`) {
		t.Error("ban not logged")
	}
}
