package session

import (
	"cmp"
	"slices"
	"time"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Info is what the admin API shows of a live session.
type Info struct {
	ID        string
	User      string
	Protocol  string
	Method    string
	Remote    string
	Started   time.Time
	BytesUp   int64 // finished transfers and those in progress
	BytesDown int64
	Transfers []vfs.Transfer // in progress
}

// Info describes the session now. Checksum reads count as neither
// direction when they end (they move no file), only while they run.
func (s *Session) Info() Info {
	p := s.Principal
	in := Info{ID: s.ID, User: p.User, Protocol: p.Protocol, Method: p.Method, Remote: p.Remote.String(),
		Started: s.Started, BytesUp: s.bytesUp.Load(), BytesDown: s.bytesDown.Load(), Transfers: s.FS.Transfers()}
	for _, t := range in.Transfers {
		if t.Direction == "up" {
			in.BytesUp += t.Bytes
		} else {
			in.BytesDown += t.Bytes
		}
	}
	return in
}

// Infos describes the live sessions, oldest first. A session CloseSession
// closed is left out: it is gone as soon as its front end notices.
func (m *Manager) Infos() []Info {
	live := m.Live()
	out := make([]Info, 0, len(live))
	for _, s := range live {
		if !s.closing.Load() {
			out = append(out, s.Info())
		}
	}
	slices.SortFunc(out, func(a, b Info) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// CloseSession closes the connection of the live session with that ID
// (its conn_id) and reports whether there was one not closed yet. The
// front end then sees the connection end, as with a revocation.
func (m *Manager) CloseSession(id string) bool {
	return m.Revoke(func(s *Session) bool { return s.ID == id && !s.closing.Swap(true) }) > 0
}
