package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/syncbuf"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// lockedBuffer collects JSON log lines from several goroutines.
type lockedBuffer struct{ syncbuf.Buffer }

func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	mgr  *Manager
	logs *lockedBuffer
	log  *slog.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := vfs.NewMemory()
	t.Cleanup(func() { b.Close() })
	logs := &lockedBuffer{}
	return &fixture{mgr: NewManager(b), logs: logs, log: slog.New(slog.NewJSONHandler(logs, nil))}
}

// conn stands in for a protocol connection: it counts its closes.
type conn struct{ closed atomic.Int32 }

func (c *conn) close() { c.closed.Add(1) }

func (f *fixture) open(t *testing.T, user string, perms vfs.Perms) (*Session, *conn) {
	t.Helper()
	s, c, err := f.tryOpen(user, perms)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

// tryOpen is open for goroutines: no t.Fatal, and the caller closes.
func (f *fixture) tryOpen(user string, perms vfs.Perms) (*Session, *conn, error) {
	p := &auth.Principal{User: user, Home: "/" + user, Perms: perms, Method: auth.MethodPublicKey, Fingerprint: "SHA256:" + user, Protocol: "sftp"}
	c := &conn{}
	id := NewID()
	s, err := f.mgr.Open(id, p, f.log.With("conn_id", id, "user", user), c.close)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", user, err)
	}
	return s, c, nil
}

// policy is a Recheck from a table: users absent are refused, the others get
// the listed permissions.
func policy(allowed map[string]vfs.Perms) Recheck {
	return func(p *auth.Principal) (*auth.Principal, error) {
		perms, ok := allowed[p.User]
		if !ok {
			return nil, fmt.Errorf("user %s removed", p.User)
		}
		np := *p
		np.Perms = perms
		return &np, nil
	}
}

func TestReconcile(t *testing.T) {
	f := newFixture(t)
	keep, keepConn := f.open(t, "keep", vfs.PermAll)
	narrow, narrowConn := f.open(t, "narrow", vfs.PermAll)
	gone, goneConn := f.open(t, "gone", vfs.PermAll)

	closed, updated := f.mgr.Reconcile(policy(map[string]vfs.Perms{"keep": vfs.PermAll, "narrow": vfs.PermList}))
	if closed != 1 || updated != 1 {
		t.Errorf("Reconcile = %d closed, %d updated; want 1, 1", closed, updated)
	}
	if goneConn.closed.Load() != 1 || !gone.Revoked() {
		t.Errorf("removed user's connection closed %d times, revoked %v; want 1, true", goneConn.closed.Load(), gone.Revoked())
	}
	if keepConn.closed.Load() != 0 || narrowConn.closed.Load() != 0 || keep.Revoked() || narrow.Revoked() {
		t.Error("a session that is still allowed was closed")
	}
	if keep.Perms() != vfs.PermAll || narrow.Perms() != vfs.PermList {
		t.Errorf("perms = %v, %v; want all, list", keep.Perms(), narrow.Perms())
	}
	if err := narrow.FS.Mkdir("/d"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("mkdir after losing the permission: %v, want fs.ErrPermission", err)
	}
	if err := keep.FS.Mkdir("/d"); err != nil {
		t.Errorf("mkdir of an unchanged session: %v", err)
	}

	rev := f.logs.lines(t, "session revoked")
	if len(rev) != 1 || rev[0]["user"] != "gone" || rev[0]["conn_id"] != gone.ID || rev[0]["reason"] != "user gone removed" {
		t.Errorf("session revoked lines = %v; want one for gone with its conn_id and reason", rev)
	}
	if pc := f.logs.lines(t, "permissions changed"); len(pc) != 1 || pc[0]["user"] != "narrow" || pc[0]["permissions"] != "list" || pc[0]["previous"] != vfs.PermAll.String() {
		t.Errorf("permissions changed lines = %v; want one for narrow", pc)
	}

	// The same decision again changes nothing and logs nothing.
	gone.Close()
	if closed, updated := f.mgr.Reconcile(policy(map[string]vfs.Perms{"keep": vfs.PermAll, "narrow": vfs.PermList})); closed != 0 || updated != 0 {
		t.Errorf("second Reconcile = %d closed, %d updated; want 0, 0", closed, updated)
	}
	if len(f.logs.lines(t, "session revoked")) != 1 || len(f.logs.lines(t, "permissions changed")) != 1 {
		t.Error("an unchanged decision logged again")
	}
}

// TestOpenAfterReconcile is a login that authenticated against the old
// directory and opens its session after the reload: the reload's check
// applies to it.
func TestOpenAfterReconcile(t *testing.T) {
	f := newFixture(t)
	f.mgr.Reconcile(policy(map[string]vfs.Perms{"ok": vfs.PermDownload}))

	s, c := f.open(t, "stale", vfs.PermAll)
	if !s.Revoked() || c.closed.Load() != 1 {
		t.Errorf("session of a user the reload removed: revoked %v, closed %d; want true, 1", s.Revoked(), c.closed.Load())
	}
	s2, c2 := f.open(t, "ok", vfs.PermAll)
	if s2.Revoked() || c2.closed.Load() != 0 || s2.Perms() != vfs.PermDownload {
		t.Errorf("allowed session: revoked %v, closed %d, perms %v; want false, 0, download", s2.Revoked(), c2.closed.Load(), s2.Perms())
	}
}

// TestRecheckOlderGeneration: a check that lost the race to a newer one
// must not undo it.
func TestRecheckOlderGeneration(t *testing.T) {
	f := newFixture(t)
	s, c := f.open(t, "u", vfs.PermAll)
	f.mgr.Reconcile(policy(map[string]vfs.Perms{"u": vfs.PermList}))
	f.mgr.Reconcile(policy(map[string]vfs.Perms{"u": vfs.PermUpload}))
	if got := s.recheck(policy(map[string]vfs.Perms{}), 1); got != outcomeSame || c.closed.Load() != 0 {
		t.Errorf("stale check: outcome %v, closed %d; want untouched", got, c.closed.Load())
	}
	if s.Perms() != vfs.PermUpload {
		t.Errorf("perms = %v, want upload", s.Perms())
	}
}

func TestReconcileConcurrentWithOpen(t *testing.T) {
	f := newFixture(t)
	allowed := map[string]vfs.Perms{"a": vfs.PermList}
	var wg sync.WaitGroup
	var sessions sync.Map
	for range 4 {
		wg.Go(func() {
			for j := range 20 {
				user := "a"
				if j%2 == 1 {
					user = "b"
				}
				s, c, err := f.tryOpen(user, vfs.PermAll)
				if err != nil {
					t.Error(err)
					return
				}
				sessions.Store(s, c)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			f.mgr.Reconcile(policy(allowed))
		}
	})
	wg.Wait()
	// Whatever the interleaving, once Reconcile has run every session of b
	// is closed and every session of a has a's permissions.
	f.mgr.Reconcile(policy(allowed))
	sessions.Range(func(k, v any) bool {
		s, c := k.(*Session), v.(*conn)
		switch s.Principal.User {
		case "a":
			if s.Revoked() || s.Perms() != vfs.PermList {
				t.Errorf("a: revoked %v perms %v", s.Revoked(), s.Perms())
			}
		case "b":
			if !s.Revoked() || c.closed.Load() != 1 {
				t.Errorf("b: revoked %v, closed %d times", s.Revoked(), c.closed.Load())
			}
		}
		s.Close()
		return true
	})
}
