// Package session is the protocol-independent half of a login: it opens
// the user's confined filesystem and keeps the registry of live sessions,
// so that a reload can revoke them and shutdown can close them.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// NewID returns a short random identifier for a connection, used as the
// conn_id of every log line about it.
func NewID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// Session is one authenticated login on either protocol.
type Session struct {
	ID        string
	Principal *auth.Principal
	// FS is the user's home, with permissions enforced and changes audited.
	FS  *vfs.FS
	Log *slog.Logger

	// Started is when the session opened (the login).
	Started time.Time

	perms   atomic.Uint32
	maxSize atomic.Int64 // max_upload_size; 0: no cap
	// Bytes of the finished transfers (info.go adds those in progress).
	bytesUp, bytesDown atomic.Int64
	active             atomic.Int64 // transfers in progress
	closeFn            func()       // closes the protocol connection
	mgr                *Manager
	once               sync.Once

	checkMu sync.Mutex
	checked uint64      // generation of the last Recheck applied; guarded by checkMu
	revoked atomic.Bool // the connection was closed by a Recheck
	closing atomic.Bool // CloseSession closed the connection (info.go)
}

// Perms is the permission set in force for the session's next operation.
func (s *Session) Perms() vfs.Perms { return vfs.Perms(s.perms.Load()) }

// record turns a finished operation into an event.
func (s *Session) record(op vfs.Op) {
	e := s.event(op.Type)
	e.Path, e.Target, e.Size, e.Bytes, e.SHA256 = op.Path, op.Target, op.Size, op.Bytes, op.SHA256
	e.StorageURL, e.ETag = op.StorageURL, op.ETag
	e.StoragePath = path.Join(s.Principal.Home, op.Path)
	e.Duration = op.Duration.Seconds()
	switch op.Type {
	case events.Upload:
		s.bytesUp.Add(op.Bytes)
	case events.Download:
		s.bytesDown.Add(op.Bytes)
	}
	if op.Err != nil {
		e.Outcome, e.Error = "failed", op.Err.Error()
	}
	s.mgr.events.Emit(e)
}

func (s *Session) event(typ string) events.Event {
	p := s.Principal
	return events.Event{Type: typ, User: p.User, Protocol: p.Protocol, Remote: p.Remote.String(), Outcome: "ok"}
}

// Busy reports whether a transfer is in progress.
func (s *Session) Busy() bool { return s.active.Load() > 0 }

// SetPerms changes the permissions of a running session (config reload).
func (s *Session) SetPerms(p vfs.Perms) { s.perms.Store(uint32(p)) }

// Close ends the session: it releases the home and forgets the session. It
// does not close the connection; the front end does that.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		s.mgr.forget(s)
		err = s.FS.Close()
	})
	return err
}

// Manager opens sessions on one storage backend and tracks the live ones.
type Manager struct {
	backend     vfs.Backend
	events      events.Sink
	hashUploads bool // uploads are hashed for their events

	mu   sync.Mutex
	live map[*Session]struct{}
	// check is the Recheck of the last Reconcile and gen its generation
	// (0: none yet); Open applies it to sessions that raced a reload.
	check Recheck
	gen   uint64
}

// NewManager returns a manager whose sessions live on backend.
func NewManager(backend vfs.Backend) *Manager {
	return &Manager{backend: backend, events: events.Discard{}, live: make(map[*Session]struct{})}
}

// SetEvents sends the sessions' events (logins, transfers, changes) to
// sink. Call it before the first Open.
func (m *Manager) SetEvents(sink events.Sink) { m.events = sink }

// SetUploadHashes computes the SHA-256 of uploads for their events
// (vfs.AuditOptions.HashUploads). Call it before the first Open.
func (m *Manager) SetUploadHashes(on bool) { m.hashUploads = on }

// loginFailed records a refused login (the Gate calls it).
func (m *Manager) loginFailed(proto, method, user string, remote netip.Addr, reason error) {
	m.events.Emit(events.Event{Type: events.LoginFailed, Protocol: proto, Method: method, User: user, Remote: remote.String(),
		Outcome: "failed", Error: reason.Error()})
}

// Open starts a session for an authenticated principal. log should already
// carry the connection's attributes (proto, conn_id, remote, user);
// closeConn is how Revoke and Reconcile end the connection. When a reload
// has run, p is checked against it first, since the front end may have
// authenticated it against the directory before: the session may then come
// back with other permissions, or already revoked, its connection closed
// (the front end sees the connection end, as with any revocation).
func (m *Manager) Open(id string, p *auth.Principal, log *slog.Logger, closeConn func()) (*Session, error) {
	home, err := m.backend.Home(p.Home)
	if err != nil {
		return nil, fmt.Errorf("open home of %s: %w", p.User, err)
	}
	s := &Session{ID: id, Principal: p, Log: log, closeFn: closeConn, mgr: m, Started: time.Now()}
	s.SetPerms(p.Perms)
	s.maxSize.Store(p.MaxUploadSize)
	s.FS = vfs.NewFS(home, vfs.Options{Perms: s.Perms, MaxSize: s.maxSize.Load, Log: log,
		Active: &s.active, Record: s.record, HashUploads: m.hashUploads})
	m.mu.Lock()
	m.live[s] = struct{}{}
	check, gen := m.check, m.gen
	m.mu.Unlock()
	// p was authenticated against whatever directory the front end loaded
	// when the connection began; a reload may have swapped it since. Either
	// the Reconcile of that reload sees s in the live set, or it ran before
	// s was added and its check is the one read above.
	if check != nil {
		s.recheck(check, gen)
	}
	e := s.event(events.Login)
	e.Method = p.Method
	e.Path = "/"
	e.StoragePath = p.Home
	m.events.Emit(e)
	return s, nil
}

func (m *Manager) forget(s *Session) {
	m.mu.Lock()
	delete(m.live, s)
	m.mu.Unlock()
}

// Live returns the sessions open now.
func (m *Manager) Live() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.live))
	for s := range m.live {
		out = append(out, s)
	}
	return out
}

// Revoke closes the connections of every session for which drop returns
// true, and reports how many it closed.
func (m *Manager) Revoke(drop func(*Session) bool) int {
	n := 0
	for _, s := range m.Live() {
		if drop(s) {
			s.closeFn()
			n++
		}
	}
	return n
}

// Recheck re-validates the principal of a live session against the config
// now in force: it returns the principal with the permissions to use from
// now on, or an error whose text says why the session must end.
// auth.Directory.Recheck is one.
type Recheck func(*auth.Principal) (*auth.Principal, error)

// Reconcile applies check to every live session, after a reload swapped the
// user directory: it closes the connection of each session check refuses,
// with a "session revoked" line giving the reason, and gives every other
// session the permissions check returns (its next operation uses them).
// Sessions whose principal check leaves as it was are not touched. check
// also applies to sessions Open adds from now on, so that a login
// authenticated against the previous directory cannot slip past the
// reload. It returns how many sessions it closed and how many changed
// permissions.
func (m *Manager) Reconcile(check Recheck) (closed, updated int) {
	m.mu.Lock()
	m.gen++
	m.check = check
	gen := m.gen
	live := make([]*Session, 0, len(m.live))
	for s := range m.live {
		live = append(live, s)
	}
	m.mu.Unlock()
	for _, s := range live {
		switch s.recheck(check, gen) {
		case outcomeClosed:
			closed++
		case outcomeUpdated:
			updated++
		}
	}
	return closed, updated
}

type outcome int

const (
	outcomeSame outcome = iota
	outcomeUpdated
	outcomeClosed
)

// recheck applies the check of generation gen, unless a newer one got there
// first (Open and Reconcile may race on a new session).
func (s *Session) recheck(check Recheck, gen uint64) outcome {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	if gen <= s.checked || s.revoked.Load() {
		return outcomeSame
	}
	s.checked = gen
	p, err := check(s.Principal)
	if err != nil {
		s.revoked.Store(true)
		attrs := []any{"reason", err.Error(), "method", s.Principal.Method}
		if s.Principal.Fingerprint != "" {
			attrs = append(attrs, "fingerprint", s.Principal.Fingerprint)
		}
		s.Log.Info("session revoked", attrs...)
		s.closeFn()
		return outcomeClosed
	}
	s.maxSize.Store(p.MaxUploadSize)
	if old := s.Perms(); p.Perms != old {
		s.SetPerms(p.Perms)
		s.Log.Info("permissions changed", "permissions", p.Perms.String(), "previous", old.String())
		return outcomeUpdated
	}
	return outcomeSame
}

// Revoked reports whether a reload closed the session's connection because
// its principal is no longer allowed in.
func (s *Session) Revoked() bool { return s.revoked.Load() }

// CloseAll closes every live connection (forced shutdown).
func (m *Manager) CloseAll() int {
	return m.Revoke(func(*Session) bool { return true })
}
