package ftpd_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
	"github.com/wharf-sftp/wharf/internal/ftpd"
	"github.com/wharf-sftp/wharf/internal/session"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// serveFTPD runs an ftpd.Server alone (no daemon around it) on a loopback
// port. The returned channel yields what ServeExplicit returned.
func serveFTPD(t *testing.T) (*ftpd.Server, string, <-chan error) {
	t.Helper()
	cert, err := ftpd.LoadCertificate("", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := auth.HashPassword("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.NewDirectory([]config.User{{Name: "alice", Home: "/alice", PasswordHash: h}})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := vfs.NewLocal(t.TempDir(), vfs.LocalOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	srv, err := ftpd.New(ftpd.Config{
		Certificate: cert, RequireReuse: true,
		Gate: session.NewGate(session.GateConfig{
			Users:    func() *auth.Directory { return dir },
			Sessions: session.NewManager(backend),
		}),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeExplicit(ln) }()
	return srv, ln.Addr().String(), served
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// waitServed waits (bounded) for ServeExplicit to return.
func waitServed(t *testing.T, served <-chan error) {
	t.Helper()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(replyTimeout):
		t.Error("ServeExplicit still running after Shutdown returned")
	}
}

// Shutdown past its grace closes every connection, logged in or not, with
// a transfer in progress or a passive listener waiting, and returns only
// when ftpserverlib's goroutines have ended.
func TestShutdownForcesEveryConnection(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, addr, served := serveFTPD(t)

	greeted := dialCtl(t, addr) // connected, nothing sent
	tlsOnly := dialCtl(t, addr) // AUTH TLS, no login
	tlsOnly.authTLS()
	passive := loggedIn(t, addr, "alice") // a passive listener nobody connects to
	passive.epsv()
	uploading := loggedIn(t, addr, "alice") // an upload in progress
	port := uploading.epsv()
	raw, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	uploading.must("STOR", "STOR big", 150)
	data := tls.Client(raw, uploading.conf)
	if err := data.SetDeadline(time.Now().Add(replyTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := data.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the grace's deadline", err)
	}
	waitServed(t, served)
	// The clients keep their ends open: the server must have closed them.
	daemontest.CheckGoroutines(t, before)
	for _, c := range []*ctl{greeted, tlsOnly, passive, uploading} {
		if code, text, err := c.replyErr(); err == nil && code < 400 {
			t.Errorf("after Shutdown the server said %d %q, want the connection closed", code, text)
		}
	}
}

// Shutdown within its grace waits for a session to end by itself.
func TestShutdownDrains(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, addr, served := serveFTPD(t)
	c := loggedIn(t, addr, "alice")
	if _, code, text := c.transfer("STOR before", []byte("landed")); code != 226 {
		t.Fatalf("STOR: %d %q", code, text)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	c.must("NOOP", "NOOP", 200) // the session goes on during the drain
	c.must("QUIT", "QUIT", 221)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(replyTimeout):
		t.Fatal("Shutdown did not return after the last session quit")
	}
	waitServed(t, served)
	c.conn.Close()
	daemontest.CheckGoroutines(t, before)
}
