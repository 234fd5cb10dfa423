package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/session"
)

// oneSession is a daemon with one live session and a failing check.
type oneSession struct{ noControl }

func (oneSession) Sessions() []session.Info { return []session.Info{{ID: "s1", User: "acme"}} }
func (oneSession) CloseSession(id string) bool {
	return id == "s1"
}
func (oneSession) Health(context.Context) []Check {
	return []Check{{Name: "storage", Err: errors.New("disk gone")}}
}

type sink struct {
	mu  sync.Mutex
	evs []events.Event
}

func (s *sink) Emit(e events.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
}

// Do runs an operation as the given admin: their scope is checked as a
// key's, their name is the event's, and no bearer token is needed.
func TestDo(t *testing.T) {
	var got sink
	s, err := New(Options{Control: oneSession{}, Events: &got})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reader := Admin{Name: "viewer", Scope: config.ScopeRead, Addr: netip.MustParseAddr("192.0.2.7")}
	ops := Admin{Name: "ops", Scope: config.ScopeAdmin, Addr: netip.MustParseAddr("192.0.2.8")}

	var list SessionList
	if err := s.Do(ctx, reader, "GET", "/api/v1/sessions", nil, &list); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("list as a reader: %v %+v", err, list)
	}
	var e *Error
	if err := s.Do(ctx, reader, "DELETE", "/api/v1/sessions/s1", nil, nil); !errors.As(err, &e) || e.Status != http.StatusForbidden {
		t.Errorf("close as a reader: %v", err)
	}
	if err := s.Do(ctx, ops, "DELETE", "/api/v1/sessions/nope", nil, nil); !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != "not_found" {
		t.Errorf("close an unknown session: %v", err)
	}
	if err := s.Do(ctx, ops, "DELETE", "/api/v1/sessions/s1", nil, nil); err != nil {
		t.Fatalf("close as ops: %v", err)
	}
	if len(got.evs) != 1 || got.evs[0].Type != events.SessionClosed || got.evs[0].Admin != "ops" ||
		got.evs[0].Remote != "192.0.2.8" || got.evs[0].Protocol != events.ProtocolAPI {
		t.Errorf("events %+v", got.evs)
	}

	// getHealth's 503 carries the checks: out gets them.
	var h Health
	if err := s.Do(ctx, reader, "GET", "/api/v1/health", nil, &h); !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Errorf("health: %v", err)
	}
	if h.Ready || len(h.Checks) != 1 || h.Checks[0].Error != "disk gone" {
		t.Errorf("health %+v", h)
	}

	// Over HTTP, the same route still wants a bearer token: nothing a
	// client sends makes it an in-process caller.
	r, _ := http.NewRequest("DELETE", "/api/v1/sessions/s1", nil)
	r.RemoteAddr = "192.0.2.9:1234"
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	s.ServeHTTP(w, r)
	if w.status != http.StatusUnauthorized {
		t.Errorf("over HTTP without a token: %d", w.status)
	}
}
