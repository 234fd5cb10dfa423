package daemon

import (
	"errors"
	"testing"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/events"
)

type recordSink struct{ got []events.Event }

func (s *recordSink) Emit(e events.Event) { s.got = append(s.got, e) }

// TestDoctorFilter: a doctor session's events stay out of hooks, the
// audit log and the metrics; its refused logins and everybody else's
// events go through.
func TestDoctorFilter(t *testing.T) {
	rec := &recordSink{}
	f := doctorFilter{rec}
	doc := "doctor:0123456789abcdef0123456789abcdef"
	for _, e := range []events.Event{
		{Type: events.Login, User: doc},
		{Type: events.Upload, User: doc},
		{Type: events.Delete, User: doc},
		{Type: events.LoginFailed, User: doc},
		{Type: events.Upload, User: "alice"},
	} {
		f.Emit(e)
	}
	if len(rec.got) != 2 || rec.got[0].Type != events.LoginFailed || rec.got[1].User != "alice" {
		t.Errorf("passed on %+v; want the doctor's refused login and alice's upload", rec.got)
	}
}

// TestKeepDoctor: a reload leaves a doctor session alone and rechecks
// everybody else's.
func TestKeepDoctor(t *testing.T) {
	refuse := errors.New("user removed")
	check := keepDoctor(func(*auth.Principal) (*auth.Principal, error) { return nil, refuse })
	doc := &auth.Principal{User: "doctor:0123456789abcdef0123456789abcdef"}
	if p, err := check(doc); err != nil || p != doc {
		t.Errorf("doctor session after a reload: %v, %v", p, err)
	}
	if _, err := check(&auth.Principal{User: "alice"}); err != refuse {
		t.Errorf("alice after a reload that removed her: %v", err)
	}
	if _, err := check(nil); err != refuse {
		t.Errorf("nil principal: %v", err)
	}
}
