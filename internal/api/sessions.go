package api

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/session"
)

// Session is one live session.
type Session struct {
	ID       string    `json:"id"` // the conn_id of its log lines
	User     string    `json:"user"`
	Protocol string    `json:"protocol"`
	Method   string    `json:"method"`
	Remote   string    `json:"remote"`
	Since    time.Time `json:"since"`
	// BytesUp and BytesDown count finished transfers and those in progress.
	BytesUp   int64      `json:"bytes_up"`
	BytesDown int64      `json:"bytes_down"`
	Transfers []Transfer `json:"transfers"` // in progress
}

// Transfer is a transfer in progress.
type Transfer struct {
	Path      string    `json:"path"`
	Direction string    `json:"direction"` // up | down
	Bytes     int64     `json:"bytes"`
	Since     time.Time `json:"since"`
}

// SessionList is the body of listSessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

func newSession(in session.Info) Session {
	s := Session{ID: in.ID, User: in.User, Protocol: in.Protocol, Method: in.Method, Remote: in.Remote,
		Since: in.Started.UTC(), BytesUp: in.BytesUp, BytesDown: in.BytesDown, Transfers: make([]Transfer, 0, len(in.Transfers))}
	for _, t := range in.Transfers {
		s.Transfers = append(s.Transfers, Transfer{Path: t.Path, Direction: t.Direction, Bytes: t.Bytes, Since: t.Since.UTC()})
	}
	return s
}

func (s *Server) listSessions(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	user := r.URL.Query().Get("user")
	out := SessionList{Sessions: []Session{}}
	for _, in := range s.o.Control.Sessions() {
		if user == "" || in.User == user {
			out.Sessions = append(out.Sessions, newSession(in))
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) closeSession(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	id := r.PathValue("id")
	var user string
	for _, in := range s.o.Control.Sessions() {
		if in.ID == id {
			user = in.User
		}
	}
	if user == "" || !s.o.Control.CloseSession(id) {
		return 0, nil, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no live session " + id}
	}
	s.emit(c, events.Event{Type: events.SessionClosed, User: user, Session: id})
	return http.StatusNoContent, nil, nil
}

// Ban is an address the defender refuses.
type Ban struct {
	Addr     string    `json:"addr"`
	Until    time.Time `json:"until"`
	Offences int       `json:"offences"`
}

// BanList is the body of listBans.
type BanList struct {
	Bans []Ban `json:"bans"`
}

func (s *Server) listBans(_ http.ResponseWriter, _ *http.Request, _ *caller) (int, any, error) {
	out := BanList{Bans: []Ban{}}
	for _, b := range s.o.Control.Bans() {
		out.Bans = append(out.Bans, Ban{Addr: b.Addr.String(), Until: b.Until.UTC(), Offences: b.Offences})
	}
	return http.StatusOK, out, nil
}

// LiftResult is the body of liftBan's answer.
type LiftResult struct {
	Addr string `json:"addr"`
	// Here: this daemon had the ban. Fleet: ban objects deleted from
	// state_url's set, which every daemon of the fleet reads.
	Here  bool `json:"here"`
	Fleet int  `json:"fleet"`
}

// liftTimeout bounds the fleet's part of a lift.
const liftTimeout = 20 * time.Second

func (s *Server) liftBan(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	addr, err := netip.ParseAddr(r.PathValue("addr"))
	if err != nil {
		return 0, nil, badRequest("addr", "not an IP address: %q", r.PathValue("addr"))
	}
	addr = addr.Unmap()
	ctx, cancel := context.WithTimeout(r.Context(), liftTimeout)
	defer cancel()
	l, err := s.o.Control.LiftBan(ctx, addr)
	if err != nil {
		return 0, nil, err
	}
	if !l.Here && l.Fleet == 0 {
		return 0, nil, &Error{Status: http.StatusNotFound, Code: "not_found", Message: addr.String() + " is not banned"}
	}
	s.emit(c, events.Event{Type: events.BanLifted, Addr: addr.String()})
	return http.StatusOK, LiftResult{Addr: addr.String(), Here: l.Here, Fleet: l.Fleet}, nil
}

// Health is the body of getHealth: what /readyz checks, one by one.
type Health struct {
	Ready  bool          `json:"ready"`
	Checks []HealthCheck `json:"checks"`
}

// HealthCheck is one check; Error says why it failed.
type HealthCheck struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func (s *Server) getHealth(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	h := Health{Ready: true, Checks: []HealthCheck{}}
	for _, c := range s.o.Control.Health(r.Context()) {
		hc := HealthCheck{Name: c.Name, OK: c.Err == nil}
		if c.Err != nil {
			h.Ready, hc.Error = false, c.Err.Error()
		}
		h.Checks = append(h.Checks, hc)
	}
	status := http.StatusOK
	if !h.Ready {
		status = http.StatusServiceUnavailable
	}
	return status, h, nil
}

// doctorTimeout bounds a doctor run the API starts.
const doctorTimeout = 2 * time.Minute

// runDoctor runs `wharf doctor`'s checks against this daemon and answers
// the report (200 whatever it says: its "ok" tells). A POST and the admin
// scope: the round trips write a one-time identity and a scratch folder.
func (s *Server) runDoctor(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	if s.o.Doctor == nil {
		return 0, nil, &Error{Status: http.StatusNotImplemented, Code: "unavailable", Message: "the doctor needs the daemon's config file"}
	}
	ctx, cancel := context.WithTimeout(r.Context(), doctorTimeout)
	defer cancel()
	return http.StatusOK, s.o.Doctor(ctx), nil
}
