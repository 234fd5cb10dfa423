package ftpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSelfSignedCertificateIsGeneratedOnce(t *testing.T) {
	dir := t.TempDir()
	c1, err := LoadCertificate("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := LoadCertificate("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Fingerprint() != c2.Fingerprint() {
		t.Fatal("a second start generated a new certificate")
	}
	if len(c1.Fingerprint()) != 32*3-1 {
		t.Errorf("fingerprint %q is not 32 colon-separated bytes", c1.Fingerprint())
	}
	fi, err := os.Stat(filepath.Join(dir, generatedKey))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
}

func TestConfiguredCertificateIsReloaded(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	// Two distinct certificates, generated the way the daemon does.
	if err := EnsureSelfSigned(filepath.Join(src, "a.pem"), filepath.Join(src, "a.key")); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSelfSigned(filepath.Join(src, "b.pem"), filepath.Join(src, "b.key")); err != nil {
		t.Fatal(err)
	}
	install := func(name string) {
		for _, ext := range []string{".pem", ".key"} {
			data, err := os.ReadFile(filepath.Join(src, name+ext))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, "cert"+ext), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install("a")
	c, err := LoadCertificate(filepath.Join(dst, "cert.pem"), filepath.Join(dst, "cert.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	c.checkEvery = 0
	before := c.Fingerprint()
	install("b")
	if _, err := c.get(nil); err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint() == before {
		t.Fatal("renewed certificate not picked up")
	}
	// A broken renewal keeps the certificate in force.
	renewed := c.Fingerprint()
	os.WriteFile(filepath.Join(dst, "cert.pem"), []byte("garbage, longer than before to change the size"), 0o600)
	if cert, err := c.get(nil); err != nil || cert == nil || c.Fingerprint() != renewed {
		t.Fatalf("broken renewal replaced the certificate: %v", err)
	}
}

// handshake runs a TLS handshake between a client and a server config over
// loopback TCP (net.Pipe has no buffer: a failing side would deadlock the
// other); data marks the server side as a data connection.
func handshake(t *testing.T, srv, cli *tls.Config, data bool) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if data {
			c = &dataConn{c}
		}
		server := tls.Server(c, srv)
		err = server.Handshake()
		if err == nil {
			// TLS 1.3 tickets arrive after the handshake: let the client read them.
			_, err = server.Write([]byte("x"))
		}
		errc <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	client := tls.Client(c, cli)
	err = client.Handshake()
	if err == nil {
		_, err = client.Read(make([]byte, 1))
	}
	return client.ConnectionState(), errors.Join(err, <-errc)
}

func TestDataConnectionsMustResume(t *testing.T) {
	cert, err := LoadCertificate("", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		srv := tlsConfig(cert, true)
		newClient := func() *tls.Config {
			// A fixed ServerName keys the client session cache across listeners.
			return &tls.Config{InsecureSkipVerify: true, ServerName: "wharf", MaxVersion: version, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		}
		// A fresh data connection is refused, saying why.
		if _, err := handshake(t, srv, newClient(), true); err == nil || !strings.Contains(err.Error(), "TLS session resumption required") {
			t.Errorf("TLS %x: data connection without resumption: %v", version, err)
		}
		// Control connection first, then a data connection resuming it.
		cli := newClient()
		if _, err := handshake(t, srv, cli, false); err != nil {
			t.Fatalf("TLS %x: control: %v", version, err)
		}
		cs, err := handshake(t, srv, cli, true)
		if err != nil || !cs.DidResume {
			t.Errorf("TLS %x: resumed data connection: resumed=%v err=%v", version, cs.DidResume, err)
		}
		// With reuse allowed, a fresh data connection is fine.
		if _, err := handshake(t, tlsConfig(cert, false), newClient(), true); err != nil {
			t.Errorf("TLS %x: reuse allowed: %v", version, err)
		}
	}
}

func TestOldTLSRefused(t *testing.T) {
	cert, err := LoadCertificate("", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cli := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, err := handshake(t, tlsConfig(cert, false), cli, false); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestRebindPassiveListener(t *testing.T) {
	wild, err := net.ListenTCP("tcp", &net.TCPAddr{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	port := wild.Addr().(*net.TCPAddr).Port
	ln, err := rebind(wild, net.IPv4(127, 0, 0, 1), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("moved listener on %s", got)
	}
	// The library still sets deadlines on the original listener.
	if err := wild.SetDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatalf("deadline on the original listener: %v", err)
	}
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	c.Close()
	// Nothing listens on the wildcard address any more: the kernel's table
	// has the port only on 127.0.0.1.
	data, err := os.ReadFile("/proc/net/tcp6")
	if err == nil && strings.Contains(strings.ToUpper(string(data)), fmt.Sprintf(":%04X 00000000000000000000000000000000:0000 0A", port)) {
		t.Fatalf("port %d still listens on the wildcard address", port)
	}
}

// memShared is a Shared store in memory, create-only like the bucket.
type memShared struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (m *memShared) Ensure(_ context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data, ok := m.objects[name]; ok {
		return data, nil
	}
	data, err := gen()
	if err != nil {
		return nil, err
	}
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[name] = data
	return data, nil
}

// TestSharedCertificate: daemons of a fleet present the first one's
// certificate; a daemon that ran alone founds the fleet with its own.
func TestSharedCertificate(t *testing.T) {
	ctx := context.Background()
	shared := &memShared{}
	empty := t.TempDir()
	first, err := LoadSharedCertificate(ctx, shared, empty)
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Errorf("state_dir got %d files; a fleet's certificate lives in the shared store only", len(names))
	}
	other := t.TempDir()
	if _, err := LoadCertificate("", "", other); err != nil { // one of its own, not used
		t.Fatal(err)
	}
	second, err := LoadSharedCertificate(ctx, shared, other)
	if err != nil {
		t.Fatal(err)
	}
	if first.Fingerprint() != second.Fingerprint() {
		t.Errorf("second daemon presents %s, want %s", second.Fingerprint(), first.Fingerprint())
	}
	// The handshake serves it, and never looks for files.
	if c, err := second.get(nil); err != nil || c != second.cert {
		t.Errorf("get = %v, %v", c, err)
	}

	alone := t.TempDir()
	local, err := LoadCertificate("", "", alone)
	if err != nil {
		t.Fatal(err)
	}
	founded, err := LoadSharedCertificate(ctx, &memShared{}, alone)
	if err != nil {
		t.Fatal(err)
	}
	if founded.Fingerprint() != local.Fingerprint() {
		t.Errorf("founded with %s, want the state_dir certificate %s", founded.Fingerprint(), local.Fingerprint())
	}

	bad := &memShared{objects: map[string][]byte{sharedCert: []byte("not PEM")}}
	if _, err := LoadSharedCertificate(ctx, bad, empty); err == nil || !strings.Contains(err.Error(), sharedCert) {
		t.Errorf("a broken shared certificate: %v, want an error naming it", err)
	}
}
