package session

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/guard"
)

func TestCheckSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCheckSlots(CheckLimits{Concurrent: 2, Memory: 100, Wait: time.Second})
		r1, err := c.acquire(10)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := c.acquire(10)
		if err != nil {
			t.Fatal(err)
		}
		// Both slots taken: the third waits the whole wait, then fails.
		start := time.Now()
		third := make(chan error)
		go func() {
			_, err := c.acquire(10)
			third <- err
		}()
		synctest.Wait()
		if running, waiting := c.running.Load(), c.waiting.Load(); running != 2 || waiting != 1 {
			t.Errorf("%d running, %d waiting; want 2 and 1", running, waiting)
		}
		if err := <-third; !errors.Is(err, errChecksBusy) {
			t.Fatalf("third check with two slots: %v, want errChecksBusy", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("waited %v, want the configured 1s", waited)
		}
		r1()
		r2()
		r2() // a second release is a no-op
		if running, waiting := c.running.Load(), c.waiting.Load(); running != 0 || waiting != 0 {
			t.Errorf("%d running, %d waiting after every release; want none", running, waiting)
		}

		// Memory bounds too: two hashes of 60 do not fit in 100.
		r1, err = c.acquire(60)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.acquire(60); !errors.Is(err, errChecksBusy) {
			t.Fatalf("second 60-byte check in a 100-byte budget: %v, want errChecksBusy", err)
		}
		// A waiter gets in as soon as room is released.
		done := make(chan error)
		go func() {
			r, err := c.acquire(60)
			if err == nil {
				r()
			}
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		r1()
		if err := <-done; err != nil {
			t.Fatalf("waiter after release: %v", err)
		}

		// A hash heavier than the whole budget runs, alone.
		r, err := c.acquire(1 << 30)
		if err != nil {
			t.Fatalf("hash heavier than the budget: %v", err)
		}
		if _, err := c.acquire(1); !errors.Is(err, errChecksBusy) {
			t.Fatalf("check beside a hash heavier than the budget: %v, want errChecksBusy", err)
		}
		r()
	})
}

func TestDefaultCheckLimits(t *testing.T) {
	for _, tt := range []struct {
		cores       int
		mem         int64
		n           int
		budgetMiB   int64
		whatItMeans string
	}{
		{2, 24 << 30, 1, 64, "a core stays free for everybody else"},
		{16, 64 << 30, 15, 15 * 64, "one 64 MiB hash per hashing core"},
		{4, 1 << 30, 3, 128, "an eighth of a small machine's memory"},
		{1, 0, 1, 64, "memory unknown"},
	} {
		c := DefaultCheckLimits(tt.cores, tt.mem)
		if c.Concurrent != tt.n || c.Memory != tt.budgetMiB<<20 || c.Wait != DefaultCheckWait {
			t.Errorf("%d cores, %d MiB: %v; want %d checks, %d MiB (%s)", tt.cores, tt.mem>>20, c, tt.n, tt.budgetMiB, tt.whatItMeans)
		}
	}
}

// gateFixture is a gate over one user with a password and a key, with a
// defender that bans after 3 failures.
type gateFixture struct {
	gate   *Gate
	guard  *guard.Guard
	events *sink
	logs   *lockedBuffer
	key    ssh.PublicKey
	pw     string
}

func newGateFixture(t *testing.T, checks CheckLimits) *gateFixture {
	t.Helper()
	f := newFixture(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse"
	hash, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.NewDirectory([]config.User{{Name: "alice", Home: "/alice", PasswordHash: hash,
		PublicKeys: config.Keys(string(ssh.MarshalAuthorizedKey(key)))}})
	if err != nil {
		t.Fatal(err)
	}
	g := guard.New(guard.Limits{}, guard.Defender{Enabled: true, Threshold: 3, Window: time.Hour, BanTime: time.Hour, MaxBanTime: time.Hour},
		slog.New(slog.DiscardHandler), nil)
	ev := &sink{}
	f.mgr.SetEvents(ev)
	gate := NewGate(GateConfig{Users: func() *auth.Directory { return dir }, Guard: g, Sessions: f.mgr, Checks: checks})
	return &gateFixture{gate: gate, guard: g, events: ev, logs: f.logs, key: key, pw: pw}
}

func (f *gateFixture) admit(t *testing.T, proto, addr string) *Login {
	t.Helper()
	l, err := f.gate.Admit(proto, NewID(), netip.MustParseAddr(addr), slog.New(slog.NewJSONHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestGatePassword(t *testing.T) {
	f := newGateFixture(t, CheckLimits{Concurrent: 2, Memory: 64 << 20, Wait: time.Second})
	for proto, addr := range map[string]string{"sftp": "192.0.2.1", "ftps": "192.0.2.3"} {
		l := f.admit(t, proto, addr)
		if _, err := l.Password("alice", "wrong"); err != ErrLogin {
			t.Errorf("%s wrong password: %v, want ErrLogin (the same words on both protocols)", proto, err)
		}
		if _, err := l.Password("mallory", f.pw); err != ErrLogin {
			t.Errorf("%s unknown user: %v, want ErrLogin", proto, err)
		}
	}
	if n := len(f.events.of(events.LoginFailed)); n != 4 {
		t.Errorf("%d login_failed events, want 4", n)
	}
	// A third failure reaches the threshold of 3: banned, and a ban is
	// said as such, even with the right password.
	l := f.admit(t, "sftp", "192.0.2.1")
	if _, err := l.Password("alice", "wrong again"); err != ErrLogin {
		t.Fatalf("third wrong password: %v", err)
	}
	if _, err := l.Password("alice", f.pw); err != guard.ErrBanned {
		t.Errorf("right password once banned: %v, want guard.ErrBanned", err)
	}
	l = f.admit(t, "sftp", "192.0.2.2")
	if _, err := l.Password("alice", f.pw); err != nil {
		t.Fatalf("right password from another address: %v", err)
	}
	if _, err := f.gate.Admit("ftps", NewID(), netip.MustParseAddr("192.0.2.1"), slog.New(slog.DiscardHandler)); !errors.Is(err, guard.ErrBanned) {
		t.Errorf("banned address admitted: %v", err)
	}
	if strings.Contains(f.logs.String(), f.pw) {
		t.Error("a password reached the log")
	}
}

// TestGateFloodScoredBeforeHashing: with every hashing slot taken, attempts
// from one address beyond its share are scored as they arrive, so the
// address is banned before any of them hashes, and the waiting ones give up
// at the wait without hashing.
func TestGateFloodScoredBeforeHashing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGateFixture(t, CheckLimits{Concurrent: 2, Memory: 64 << 20, Wait: time.Second})
		hold, err := f.gate.checks.acquire(1) // both slots taken
		if err != nil {
			t.Fatal(err)
		}
		hold2, err := f.gate.checks.acquire(1)
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.MustParseAddr("198.51.100.7")
		// Five connections admitted first: once the attempts start, the
		// address is banned and would be refused admission.
		var logins []*Login
		for range 5 {
			logins = append(logins, f.admit(t, "ftps", addr.String()))
		}
		errs := make(chan error, 5)
		for _, l := range logins {
			go func() {
				_, err := l.Password("alice", "wrong")
				errs <- err
			}()
		}
		synctest.Wait() // all five are waiting for a slot
		if !f.guard.Banned(addr) {
			t.Fatal("five attempts in flight from one address (share 1) did not reach the ban threshold of 3 before hashing")
		}
		for range 5 {
			if err := <-errs; err != ErrLogin && err != guard.ErrBanned {
				t.Errorf("attempt: %v", err)
			}
		}
		hold()
		hold2()
		for _, e := range f.events.of(events.LoginFailed) {
			if !strings.Contains(e.Error, "too many checks in progress") {
				t.Errorf("login_failed %q: want the wait's reason (no hash ran)", e.Error)
			}
		}
	})
}

func TestGateKeyScoredOncePerConnection(t *testing.T) {
	f := newGateFixture(t, CheckLimits{})
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(other)
	addr := "203.0.113.9"

	// A client offering three wrong keys, then giving up: one failure.
	l := f.admit(t, "sftp", addr)
	for range 3 {
		if _, err := l.Key("alice", otherKey); err != ErrLogin {
			t.Fatalf("wrong key: %v", err)
		}
	}
	l.Close()
	l.Close() // idempotent: still one
	if n := len(f.events.of(events.LoginFailed)); n != 1 {
		t.Fatalf("%d login_failed events for one connection's refused keys, want 1", n)
	}

	// A wrong key, then the right one: a login, nothing scored.
	l = f.admit(t, "sftp", addr)
	if _, err := l.Key("alice", otherKey); err != ErrLogin {
		t.Fatal(err)
	}
	p, err := l.Key("alice", f.key)
	if err != nil {
		t.Fatalf("right key: %v", err)
	}
	s, err := l.Open(p, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l.Close()
	if n := len(f.events.of(events.LoginFailed)); n != 1 {
		t.Errorf("%d login_failed events after a successful key login, want still 1", n)
	}
	if n := len(f.events.of(events.Login)); n != 1 {
		t.Errorf("%d login events, want 1", n)
	}

	// A listener restricted to other users refuses alice's right key.
	l = f.admit(t, "sftp", "203.0.113.10")
	l.Only([]string{"bob"})
	if _, err := l.Key("alice", f.key); err != ErrLogin {
		t.Errorf("alice on a listener for bob only: %v, want ErrLogin", err)
	}
}
