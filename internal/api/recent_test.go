package api

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// Seed reads the audit log's end: the last events up to the ring's size,
// and the last logins; a line that is not an event is skipped.
func TestRecentSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var lines []string
	for i := range 5 {
		e := events.Event{ID: fmt.Sprintf("id%d", i), Time: base.Add(time.Duration(i) * time.Minute), Type: events.Upload, User: "acme", Path: fmt.Sprintf("/f%d", i), Outcome: "ok"}
		if i == 3 {
			e.Type, e.Method, e.Protocol = events.Login, "publickey", "sftp"
		}
		b, _ := json.Marshal(e)
		lines = append(lines, string(b))
		if i == 1 {
			lines = append(lines, `{"truncated by a cra`)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := NewRecent(3)
	n, err := r.Seed(path)
	if err != nil || n != 3 {
		t.Fatalf("Seed = %d, %v; want the last 3", n, err)
	}
	got, _ := r.Query(Filter{Limit: 10})
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if strings.Join(ids, ",") != "id4,id3,id2" {
		t.Errorf("events %v, want the newest three, newest first", ids)
	}
	if l, ok := r.LastLogin("acme"); !ok || !l.Time.Equal(base.Add(3*time.Minute)) || l.Method != "publickey" {
		t.Errorf("last login %+v %v", l, ok)
	}
	if n, err := NewRecent(3).Seed(filepath.Join(t.TempDir(), "none")); n != 0 || err != nil {
		t.Errorf("no audit log yet: %d, %v", n, err)
	}
}
