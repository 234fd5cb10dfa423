package daemon_test

// A fleet in-process: daemons on one versitygw bucket with one state_url,
// started at once, present one identity and share their bans. The e2e
// fleet behind HAProxy is internal/e2e's.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
	"github.com/wharf-sftp/wharf/internal/fleet"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// fleetConfig is a daemon of a fleet on srv's bucket: homes under homes/,
// the state under state/, SFTP and implicit FTPS, and a user "acme" with
// the password "right".
func fleetConfig(t *testing.T, srv *s3test.Server, bucket, secret string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Backend = "s3"
	s := &cfg.Storage.S3
	s.Bucket, s.Prefix, s.Region, s.Endpoint, s.PathStyle = bucket, "homes/", srv.Region, srv.Endpoint, true
	s.AccessKeyID, s.SecretAccessKeyFile = srv.AccessKey, secret
	s.PartSize = config.S3MinPartSize
	cfg.StateURL = "s3://" + bucket + "/state/"
	cfg.FTPS.ImplicitListen = "127.0.0.1:0"
	cfg.FTPS.PassivePorts = ""
	cfg.Users = []config.User{{Name: "acme", Home: "/acme", PasswordHash: cheapHash(t, "right")}}
	return cfg
}

func fleetServer(t *testing.T) (srv *s3test.Server, bucket, secret string) {
	t.Helper()
	srv = s3test.Start(t)
	secret = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, srv.NewBucket(t), secret
}

// hostKey returns the fingerprint of the host key addr presents for the
// host key algorithm alg.
func hostKey(t *testing.T, addr, alg string) string {
	t.Helper()
	var fp string
	cfg := &ssh.ClientConfig{
		User:              "nobody",
		HostKeyAlgorithms: []string{alg},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			fp = ssh.FingerprintSHA256(k)
			return errors.New("seen") // no need to log in
		},
		Timeout: 10 * time.Second,
	}
	if c, err := ssh.Dial("tcp", addr, cfg); err == nil {
		c.Close()
	}
	if fp == "" {
		t.Fatalf("%s presented no %s host key", addr, alg)
	}
	return fp
}

// certFingerprint is the SHA-256 of the certificate addr's TLS presents.
func certFingerprint(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the fingerprint is what is checked
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// TestFleetIdentity: three daemons started at once on an empty state
// prefix present one host key per algorithm and one FTPS certificate; a
// daemon with configured files keeps presenting those.
func TestFleetIdentity(t *testing.T) {
	srv, bucket, secret := fleetServer(t)
	ds := daemontest.StartMany(t, fleetConfig(t, srv, bucket, secret), fleetConfig(t, srv, bucket, secret), fleetConfig(t, srv, bucket, secret))
	seen := map[string][]string{}
	for _, d := range ds {
		seen["ssh-ed25519"] = append(seen["ssh-ed25519"], hostKey(t, d.Addr, ssh.KeyAlgoED25519))
		seen["rsa-sha2-512"] = append(seen["rsa-sha2-512"], hostKey(t, d.Addr, ssh.KeyAlgoRSASHA512))
		seen["ftps"] = append(seen["ftps"], certFingerprint(t, d.FTPSImplicitAddr().String()))
	}
	for what, fps := range seen {
		if len(slices.Compact(slices.Clone(fps))) != 1 {
			t.Errorf("%s: the daemons present %v, want one", what, fps)
		}
		t.Logf("%s: one fingerprint on all three daemons: %s", what, fps[0])
	}
	// Nothing of the fleet's identity lands in a daemon's state_dir.
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_rsa_key", "ftps_cert.pem", "ftps_key.pem"} {
		if _, err := os.Stat(filepath.Join(ds[0].Config.StateDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state_dir has %s (%v)", name, err)
		}
	}

	// A fourth daemon later, with a host key file of its own configured:
	// that one wins, as on a single daemon; the certificate is the fleet's.
	own := filepath.Join(t.TempDir(), "own_key")
	if err := os.WriteFile(own, pemKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fleetConfig(t, srv, bucket, secret)
	cfg.SFTP.HostKeys = []string{own}
	d := daemontest.Start(t, cfg)
	if fp := hostKey(t, d.Addr, ssh.KeyAlgoED25519); fp == seen["ssh-ed25519"][0] {
		t.Error("a configured host key lost to the fleet's")
	}
	if fp := certFingerprint(t, d.FTPSImplicitAddr().String()); fp != seen["ftps"][0] {
		t.Errorf("a later daemon presents certificate %s, want the fleet's %s", fp, seen["ftps"][0])
	}
}

// pemKey is a fresh ed25519 host key in OpenSSH's format.
func pemKey(t *testing.T) []byte {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// dialFrom opens an SSH session to addr from the loopback address src
// with a password; the error says why not (refused before the handshake
// for a banned address).
func dialFrom(addr string, src netip.Addr, password string) error {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User: "acme", Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the identity is TestFleetIdentity's
	})
	if err != nil {
		conn.Close()
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// TestFleetBans: failed logins on one daemon ban the address on the
// other within a refresh, while another address still logs in; `wharf
// defender list` shows the fleet's ban and `lift` ends it on both.
func TestFleetBans(t *testing.T) {
	srv, bucket, secret := fleetServer(t)
	cfgs := []*config.Config{fleetConfig(t, srv, bucket, secret), fleetConfig(t, srv, bucket, secret)}
	for _, c := range cfgs {
		c.Defender.Threshold = 3
	}
	ds := daemontest.StartMany(t, cfgs...)
	a, b := ds[0], ds[1]
	attacker, partner := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")

	for range 3 {
		if err := dialFrom(a.Addr, attacker, "wrong"); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	if err := dialFrom(a.Addr, attacker, "right"); err == nil {
		t.Fatal("the banning daemon let the banned address in")
	}
	took := waitUntil(t, 10*time.Second, "ban in force on the other daemon", func() bool { return dialFrom(b.Addr, attacker, "right") != nil })
	t.Logf("ban on one daemon refused by the other %s after the ban (refresh %s)", took.Round(time.Millisecond), fleet.DefaultRefresh)
	if err := dialFrom(b.Addr, partner, "right"); err != nil {
		t.Errorf("another address refused: %v", err)
	}

	ctx := context.Background()
	bans, err := daemon.ListBans(ctx, a.Config)
	if err != nil || len(bans) != 1 || bans[0].Addr != attacker {
		t.Fatalf("defender list = %v, %v", bans, err)
	}
	// The other daemon's ban file lists the fleet's ban too.
	waitUntil(t, 10*time.Second, "ban file of the other daemon", func() bool {
		local, err := daemon.ReadBans(b.Config.StateDir)
		return err == nil && len(local) == 1 && local[0].Addr == attacker
	})

	where, err := daemon.Lift(ctx, b.Config, netip.MustParseAddr("::ffff:127.0.0.2"))
	if err != nil {
		t.Fatalf("lift: %v", err)
	}
	t.Logf("lifted in %s", where)
	took = waitUntil(t, 10*time.Second, "lift in force on both", func() bool {
		return dialFrom(a.Addr, attacker, "right") == nil && dialFrom(b.Addr, attacker, "right") == nil
	})
	t.Logf("lift in force on both daemons after %s", took.Round(time.Millisecond))
	if _, err := daemon.Lift(ctx, b.Config, attacker); !errors.Is(err, daemon.ErrNotBanned) {
		t.Errorf("second lift: %v, want ErrNotBanned", err)
	}
}

// TestLocalLift: without state_url, `wharf defender lift` reaches the
// daemon running on state_dir.
func TestLocalLift(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.Defender.Threshold = 2
	cfg.Users = []config.User{{Name: "acme", Home: "/acme", PasswordHash: cheapHash(t, "right")}}
	d := daemontest.Start(t, cfg)
	attacker := netip.MustParseAddr("127.0.0.3")
	for range 2 {
		_ = dialFrom(d.Addr, attacker, "wrong")
	}
	if err := dialFrom(d.Addr, attacker, "right"); err == nil {
		t.Fatal("not banned")
	}
	if _, err := daemon.Lift(context.Background(), cfg, netip.MustParseAddr("127.0.0.4")); !errors.Is(err, daemon.ErrNotBanned) {
		t.Errorf("lift of an address not banned: %v", err)
	}
	start := time.Now()
	if _, err := daemon.Lift(context.Background(), cfg, attacker); err != nil {
		t.Fatal(err)
	}
	t.Logf("local lift took %s", time.Since(start).Round(time.Millisecond))
	if err := dialFrom(d.Addr, attacker, "right"); err != nil {
		t.Errorf("after lift: %v", err)
	}
	if bans, err := daemon.ReadBans(cfg.StateDir); err != nil || len(bans) != 0 {
		t.Errorf("ban file after lift: %v, %v", bans, err)
	}

	// A daemon that is not running takes no request: the CLI says so and
	// leaves none behind.
	gone := t.TempDir()
	err := daemon.RequestLift(context.Background(), gone, attacker, 200*time.Millisecond)
	if err == nil {
		t.Fatal("a request nobody took succeeded")
	}
	if names, _ := os.ReadDir(filepath.Join(gone, daemon.LiftDir)); len(names) != 0 {
		t.Errorf("left %d requests behind", len(names))
	}
}

// waitUntil polls cond every 50ms for up to limit and returns how long it
// took to hold.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}
