package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
)

// Recent keeps the last events in memory, for the API's event queries,
// and each partner's last login. It is an events.Sink the daemon puts in
// front of the bus: it stamps each event's ID and time, so that the API,
// the audit log and the hooks agree on them.
type Recent struct {
	size int
	now  func() time.Time

	mu    sync.Mutex
	buf   []events.Event // grows to size, then a ring whose oldest is at next
	next  int
	login map[string]Login // user -> last successful login
}

// maxLogins bounds the last-login table. Only successful logins are
// recorded, so it holds at most the partners that logged in.
const maxLogins = 1_000_000

// NewRecent keeps the last size events (at least 1).
func NewRecent(size int) *Recent {
	return &Recent{size: max(size, 1), now: time.Now, login: map[string]Login{}}
}

// Sink returns a sink that records each event, then passes it on to next.
func (r *Recent) Sink(next events.Sink) events.Sink { return recentSink{r, next} }

type recentSink struct {
	r    *Recent
	next events.Sink
}

func (s recentSink) Emit(e events.Event) {
	s.r.add(&e)
	s.next.Emit(e)
}

func (r *Recent) add(e *events.Event) {
	if e.ID == "" {
		e.ID = events.NewID()
	}
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.size {
		r.buf = append(r.buf, *e)
	} else {
		r.buf[r.next] = *e
		r.next = (r.next + 1) % r.size
	}
	if e.Type == events.Login && e.Outcome == "ok" {
		if _, ok := r.login[e.User]; ok || len(r.login) < maxLogins {
			r.login[e.User] = Login{Time: e.Time, Protocol: e.Protocol, Method: e.Method, Remote: e.Remote}
		}
	}
}

// maxTail bounds what Seed reads of the audit log's end.
const maxTail = 16 << 20

// Seed fills the ring from the end of the audit log (JSON lines, oldest
// first), so that the events and last logins of before a restart are
// still there: at most the ring's size and the last maxTail bytes. Lines
// that are not events (a line cut by a crash) are skipped. It returns how
// many events it read.
func (r *Recent) Seed(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit log tail: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("audit log tail: %s is not a regular file", path)
	}
	off := max(fi.Size()-maxTail, 0)
	sc := bufio.NewScanner(io.NewSectionReader(f, off, fi.Size()-off))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	first := off > 0 // the first line of a section may be cut
	var evs []events.Event
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		var e events.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" || e.Type == "" {
			continue
		}
		evs = append(evs, e)
		if len(evs) > 2*r.size {
			evs = append(evs[:0], evs[len(evs)-r.size:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("audit log tail: %w", err)
	}
	evs = evs[max(len(evs)-r.size, 0):]
	for i := range evs {
		r.add(&evs[i])
	}
	return len(evs), nil
}

// LastLogin is user's last successful login the daemon knows: since it
// started, and before that as far as the audit log's tail (Seed) goes.
func (r *Recent) LastLogin(user string) (Login, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.login[user]
	return l, ok
}

// Filter selects events; zero fields select every event.
type Filter struct {
	User         string
	Types        []string
	Path         string // a glob as hooks[].paths takes, on path or target
	Since, Until time.Time
	Limit        int // the newest Limit that match
}

func (f *Filter) match(e *events.Event) bool {
	switch {
	case f.User != "" && e.User != f.User,
		len(f.Types) > 0 && !slices.Contains(f.Types, e.Type),
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Path == "":
		return true
	}
	return e.Path != "" && events.MatchPath(f.Path, e.Path) || e.Target != "" && events.MatchPath(f.Path, e.Target)
}

// Query returns the newest events that f selects, newest first, and
// whether more matched than f.Limit. Sessions wait to record their events
// while it runs: a few milliseconds for all of 10,000 events, microseconds
// for the newest hundred.
func (r *Recent) Query(f Filter) (out []events.Event, more bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Emit waits while this runs: no allocation inside the loop.
	n := len(r.buf)
	out = make([]events.Event, 0, max(min(f.Limit, n), 0))
	for i := range n {
		// Newest first: the one before next, backwards around the ring.
		e := &r.buf[(r.next-1-i+2*n)%n]
		if !f.match(e) {
			continue
		}
		if len(out) == f.Limit {
			return out, true
		}
		out = append(out, *e)
	}
	return out, false
}

// Query limits.
const (
	defaultLimit = 100
	maxLimit     = 10_000
)

// EventList is the body of listEvents.
type EventList struct {
	Events []events.Event `json:"events"`
	// More: older events matched too; narrow the filter or raise limit.
	More bool `json:"more"`
}

func (s *Server) listEvents(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	q := r.URL.Query()
	f := Filter{User: q.Get("user"), Path: q.Get("path"), Limit: defaultLimit}
	if t := q.Get("type"); t != "" {
		for typ := range strings.SplitSeq(t, ",") {
			if !slices.Contains(config.EventTypes, typ) {
				return 0, nil, badRequest("type", "unknown event type %q (want %s)", typ, strings.Join(config.EventTypes, ", "))
			}
			f.Types = append(f.Types, typ)
		}
	}
	if p := f.Path; p != "" {
		if _, err := path.Match(p, "/"); err != nil || p[0] != '/' {
			return 0, nil, badRequest("path", "invalid glob %q: want an absolute pattern such as \"/*/inbox/**\"", p)
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return 0, nil, badRequest(t.name, "%s: want an RFC 3339 time such as 2026-12-03T10:00:00Z", t.name)
			}
			*t.to = tm
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, nil, badRequest("limit", "limit: want a number from 1 to %d", maxLimit)
		}
		f.Limit = n
	}
	if s.o.Recent == nil {
		return http.StatusOK, EventList{Events: []events.Event{}}, nil
	}
	evs, more := s.o.Recent.Query(f)
	return http.StatusOK, EventList{Events: evs, More: more}, nil
}
