package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// heavyHash is an argon2id hash with the parameters `wharf hash-password`
// used before it moved to OWASP's minimum (m=64 MiB, t=3, p=4): operators
// still have such hashes, and each verification holds 64 MiB.
func heavyHash(t *testing.T, password string) string {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, 3, 64*1024, 4, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=65536,t=3,p=4$%s$%s", b64.EncodeToString(salt), b64.EncodeToString(key))
}

// TestPasswordFlood: 200 wrong passwords sent at once from 20 addresses,
// half over FTPS and half over SSH, against a user whose hash holds 64 MiB
// per check. Before the login gate bounded password checks, each one hashed
// at once: ten over FTPS took the daemon from 14 to 658 MB. Now the daemon's
// peak RSS stays under 400 MiB, and another user's key login, made while
// the flood is under way, goes through (its time is logged, not asserted).
func TestPasswordFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("200 concurrent logins")
	}
	sftpBin := requireClient(t, "sftp")
	alice := newUser(t, "alice")
	alice.PubKey = ""
	alice.PasswordHash = heavyHash(t, alice.Password)
	bob := newUser(t, "bob")
	bob.Password = ""
	lo, hi := freePassiveRange(t, 4)
	extra := fmt.Sprintf(`ftps:
  listen: "127.0.0.1:0"
  implicit_listen: "127.0.0.1:0"
  passive_ports: "%d-%d"
limits:
  max_unauthenticated: 400
defender:
  allow: []
`, lo, hi)
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice, bob}, Extra: extra})
	f := &ftpsDaemon{daemon: d}
	f.readFTPS(t, 0)
	pid := d.proc.cmd.Process.Pid
	keyLogin := func() (time.Duration, error) {
		args := append(sftpArgs(d, bob), "-o", "BindAddress=127.0.0.1", "-b", writeBatch(t, "pwd\n"), target(bob))
		t0 := time.Now()
		out, stderr, err := runCmd(t, clientTimeout, sftpBin, args...)
		if err != nil {
			err = fmt.Errorf("%w\n%s\n%s", err, out, stderr)
		}
		return time.Since(t0), err
	}
	quiet, err := keyLogin()
	if err != nil {
		t.Fatalf("bob's key login: %v", err)
	}
	_, before, err := procstat.Mem(pid)
	if err != nil {
		t.Fatalf("read daemon memory: %v", err)
	}

	const attempts, addrs = 200, 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range attempts {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%addrs))}
		user := "alice"
		if i%5 == 4 {
			user = "nobody" // unknown users cost a check too
		}
		wg.Go(func() {
			<-start
			var err error
			if i%2 == 0 {
				err = sshPasswordAttempt(d.Addr, local, user, "wrong-"+alice.Password)
			} else {
				err = ftpsPasswordAttempt(f.Explicit, local, user, "wrong-"+alice.Password)
			}
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	close(start)
	// The victim logs in with its key while the flood is being hashed.
	time.Sleep(200 * time.Millisecond)
	busy, err := keyLogin()
	if err != nil {
		t.Errorf("bob's key login during the flood: %v", err)
	}
	wg.Wait()
	if accepted > 0 {
		t.Fatalf("%d wrong passwords accepted", accepted)
	}
	_, peak, err := procstat.Mem(pid)
	if err != nil {
		t.Fatalf("read daemon memory: %v", err)
	}
	bans := 0
	for _, l := range d.Logs() {
		if l["msg"] == "ban" {
			bans++
		}
	}
	t.Logf("peak RSS %d MiB (%d MiB before the flood); bob's key login (OpenSSH sftp, process start to exit) %v during the flood, %v before; %d addresses banned",
		peak>>20, before>>20, busy.Round(time.Millisecond), quiet.Round(time.Millisecond), bans)
	if peak > 400<<20 {
		t.Errorf("daemon peak RSS %d MiB during the flood, want under 400 MiB", peak>>20)
	}
	if bans == 0 {
		t.Errorf("no address banned after %d wrong passwords from %d addresses", attempts, addrs)
	}
}

// sshPasswordAttempt makes one password login from local; nil means it
// was accepted.
func sshPasswordAttempt(addr string, local *net.TCPAddr, user, password string) error {
	dialer := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	nc, err := dialer.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// ftpsPasswordAttempt makes one FTPS login (AUTH TLS, USER, PASS) from
// local; nil means it was accepted.
func ftpsPasswordAttempt(addr string, local *net.TCPAddr, user, password string) error {
	dialer := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
	nc, err := dialer.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := &ftpCtl{conn: nc, r: bufio.NewReader(nc)}
	if code, text, err := c.reply(); err != nil || code != 220 {
		return fmt.Errorf("greeting %d %q: %v", code, text, err)
	}
	if err := c.authTLSErr(clientTLS(nil)); err != nil {
		return err
	}
	if code, text, err := c.cmd("USER " + user); err != nil || code != 331 {
		return fmt.Errorf("USER: %d %q: %v", code, text, err)
	}
	code, text, err := c.cmd("PASS " + password)
	if err != nil {
		return err
	}
	if code != 230 {
		if !strings.HasPrefix(text, "530") {
			return fmt.Errorf("PASS: %d %q", code, text)
		}
		return fmt.Errorf("refused: %s", text)
	}
	return nil
}
