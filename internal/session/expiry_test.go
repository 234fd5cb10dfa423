package session

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
)

// TestGateExpiredKey: a key past its expires_at is refused like any wrong
// key (the client learns nothing), with a log line and a login_failed
// event naming the key and "key expired", even when the client offers
// other, unknown keys after it.
func TestGateExpiredKey(t *testing.T) {
	f := newFixture(t)
	newKey := func() ssh.PublicKey {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	old, cur, stranger := newKey(), newKey(), newKey()
	dir, err := auth.NewDirectory([]config.User{{Name: "acme", Home: "/acme", PublicKeys: []config.PublicKey{
		{Key: string(ssh.MarshalAuthorizedKey(old)), ExpiresAt: time.Now().Add(-time.Minute)},
		{Key: string(ssh.MarshalAuthorizedKey(cur)), ExpiresAt: time.Now().Add(time.Hour)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &sink{}
	f.mgr.SetEvents(ev)
	gate := NewGate(GateConfig{Users: func() *auth.Directory { return dir }, Sessions: f.mgr})
	admit := func() *Login {
		l, err := gate.Admit("sftp", NewID(), netip.MustParseAddr("192.0.2.9"), slog.New(slog.NewJSONHandler(f.logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	l := admit()
	if _, err := l.Key("acme", old); err != ErrLogin {
		t.Fatalf("expired key: %v, want ErrLogin", err)
	}
	if _, err := l.Key("acme", stranger); err != ErrLogin {
		t.Fatalf("unknown key: %v, want ErrLogin", err)
	}
	l.Close()
	failed := ev.of(events.LoginFailed)
	if len(failed) != 1 || failed[0].User != "acme" || failed[0].Method != auth.MethodPublicKey ||
		!strings.Contains(failed[0].Error, "key expired: "+auth.Fingerprint(old)+" expired at ") {
		t.Fatalf("login_failed events: %+v", failed)
	}
	var line map[string]any
	for _, m := range f.logs.lines(t, "login") {
		if e, _ := m["err"].(string); strings.Contains(e, "key expired") {
			line = m
		}
	}
	if line["outcome"] != "failed" || line["fingerprint"] != auth.Fingerprint(old) || line["user"] != "acme" ||
		!strings.Contains(line["err"].(string), auth.Fingerprint(old)) {
		t.Errorf("log line of the expired key: %v", line)
	}

	// The key that has not expired logs in.
	l = admit()
	defer l.Close()
	p, err := l.Key("acme", cur)
	if err != nil {
		t.Fatalf("current key: %v", err)
	}
	s, err := l.Open(p, func() {})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
