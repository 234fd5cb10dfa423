// Package session is the protocol-independent half of a login: it opens
// the user's confined filesystem and keeps the registry of live sessions,
// so that a reload can revoke them and shutdown can close them.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/wharf-sftp/wharf/internal/auth"
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
	FS  vfs.FS
	Log *slog.Logger

	perms   atomic.Uint32
	active  atomic.Int64 // transfers in progress
	home    vfs.FS
	closeFn func() // closes the protocol connection
	mgr     *Manager
	once    sync.Once
}

// Perms is the permission set in force for the session's next operation.
func (s *Session) Perms() vfs.Perms { return vfs.Perms(s.perms.Load()) }

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
		err = s.home.Close()
	})
	return err
}

// Manager opens sessions on one storage backend and tracks the live ones.
type Manager struct {
	backend vfs.Backend

	mu   sync.Mutex
	live map[*Session]struct{}
}

// NewManager returns a manager whose sessions live on backend.
func NewManager(backend vfs.Backend) *Manager {
	return &Manager{backend: backend, live: make(map[*Session]struct{})}
}

// Open starts a session for an authenticated principal. log should already
// carry the connection's attributes (proto, conn_id, remote); closeConn is
// how Revoke ends the connection.
func (m *Manager) Open(id string, p *auth.Principal, log *slog.Logger, closeConn func()) (*Session, error) {
	home, err := m.backend.Home(p.Home)
	if err != nil {
		return nil, fmt.Errorf("open home of %s: %w", p.User, err)
	}
	s := &Session{ID: id, Principal: p, Log: log, home: home, closeFn: closeConn, mgr: m}
	s.SetPerms(p.Perms)
	s.FS = vfs.Restrict(vfs.Audit(home, log, &s.active), s.Perms, log)
	m.mu.Lock()
	m.live[s] = struct{}{}
	m.mu.Unlock()
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

// CloseAll closes every live connection (forced shutdown).
func (m *Manager) CloseAll() int {
	return m.Revoke(func(*Session) bool { return true })
}
