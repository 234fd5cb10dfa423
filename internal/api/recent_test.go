package api

import (
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/events"
)

type collect struct{ got []events.Event }

func (c *collect) Emit(e events.Event) { c.got = append(c.got, e) }

func TestRecent(t *testing.T) {
	r := NewRecent(3)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tick := t0
	r.now = func() time.Time { tick = tick.Add(time.Minute); return tick }
	next := &collect{}
	sink := r.Sink(next)
	sink.Emit(events.Event{Type: events.Login, User: "alice", Protocol: "sftp", Method: "publickey", Remote: "192.0.2.1", Outcome: "ok"})
	sink.Emit(events.Event{Type: events.Upload, User: "alice", Path: "/inbox/a.csv", Outcome: "ok"})
	sink.Emit(events.Event{Type: events.Rename, User: "bob", Path: "/tmp/b", Target: "/inbox/b.csv", Outcome: "ok"})
	sink.Emit(events.Event{Type: events.LoginFailed, User: "bob", Outcome: "failed"})

	if len(next.got) != 4 || next.got[0].ID == "" || !next.got[0].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("passed on %+v; want 4 events stamped with ID and time", next.got)
	}
	all, more := r.Query(Filter{Limit: 10})
	if len(all) != 3 || more || all[0].Type != events.LoginFailed || all[2].Type != events.Upload {
		t.Fatalf("Query = %+v, %v; want the 3 newest, newest first", all, more)
	}
	if all[0].ID != next.got[3].ID {
		t.Error("the ring and the bus disagree on the event's ID")
	}
	for _, tt := range []struct {
		f    Filter
		want []string // types
		more bool
	}{
		{Filter{User: "bob", Limit: 10}, []string{"login_failed", "rename"}, false},
		{Filter{Types: []string{"upload", "rename"}, Limit: 10}, []string{"rename", "upload"}, false},
		{Filter{Path: "/inbox/**", Limit: 10}, []string{"rename", "upload"}, false},
		{Filter{Path: "/*.csv", Limit: 10}, nil, false},
		{Filter{Since: t0.Add(3 * time.Minute), Limit: 10}, []string{"login_failed", "rename"}, false},
		{Filter{Until: t0.Add(3 * time.Minute), Limit: 10}, []string{"upload"}, false},
		{Filter{Limit: 1}, []string{"login_failed"}, true},
	} {
		got, more := r.Query(tt.f)
		var types []string
		for _, e := range got {
			types = append(types, e.Type)
		}
		if len(types) != len(tt.want) || more != tt.more {
			t.Errorf("Query(%+v) = %v, %v; want %v, %v", tt.f, types, more, tt.want, tt.more)
			continue
		}
		for i := range types {
			if types[i] != tt.want[i] {
				t.Errorf("Query(%+v) = %v; want %v", tt.f, types, tt.want)
			}
		}
	}
	// The login fell out of the ring; the last login stays.
	l, ok := r.LastLogin("alice")
	if !ok || l.Protocol != "sftp" || l.Method != "publickey" || l.Remote != "192.0.2.1" || !l.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastLogin(alice) = %+v, %v", l, ok)
	}
	if _, ok := r.LastLogin("bob"); ok {
		t.Error("a failed login counts as bob's last login")
	}
}
