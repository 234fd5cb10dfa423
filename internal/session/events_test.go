package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

type sink struct {
	mu sync.Mutex
	ev []events.Event
}

func (s *sink) Emit(e events.Event) {
	s.mu.Lock()
	s.ev = append(s.ev, e)
	s.mu.Unlock()
}

func (s *sink) of(typ string) []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []events.Event
	for _, e := range s.ev {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestEvents(t *testing.T) {
	m := NewManager(vfs.NewMemory())
	got := &sink{}
	m.SetEvents(got)
	m.SetUploadHashes(true)
	p := &auth.Principal{User: "acme", Home: "/partners/acme", Perms: vfs.PermAll, Protocol: "sftp", Method: "password",
		Remote: netip.MustParseAddr("192.0.2.7")}
	s, err := m.Open("c1", p, slog.New(slog.DiscardHandler), func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l := got.of(events.Login); len(l) != 1 || l[0].User != "acme" || l[0].Remote != "192.0.2.7" || l[0].Protocol != "sftp" {
		t.Fatalf("login events: %+v", l)
	}

	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := sha256.Sum256(data)
	upload := func(name string, order []int) {
		f, err := s.FS.Create(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		const chunk = 32768
		for _, i := range order {
			end := min((i+1)*chunk, len(data))
			if _, err := f.WriteAt(data[i*chunk:end], int64(i*chunk)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	upload("/in-order.bin", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	upload("/shuffled.bin", []int{1, 0, 3, 2, 9, 4, 5, 8, 6, 7}) // as concurrent SFTP writes arrive
	upload("/gap.bin", []int{0, 1, 2, 4, 5, 6, 7, 8, 9})         // chunk 3 never written
	ups := got.of(events.Upload)
	if len(ups) != 3 {
		t.Fatalf("upload events: %+v", ups)
	}
	for i, wantSum := range []string{hex.EncodeToString(want[:]), hex.EncodeToString(want[:]), ""} {
		if ups[i].SHA256 != wantSum {
			t.Errorf("%s: sha256 %q, want %q", ups[i].Path, ups[i].SHA256, wantSum)
		}
	}
	if e := ups[0]; e.StoragePath != "/partners/acme/in-order.bin" || e.Size != int64(len(data)) || e.Outcome != "ok" || e.ID != "" && len(e.ID) != 32 {
		t.Errorf("upload event: %+v", e)
	}
	if err := s.FS.Rename("/in-order.bin", "/done.bin"); err != nil {
		t.Fatal(err)
	}
	if r := got.of(events.Rename); len(r) != 1 || r[0].Path != "/in-order.bin" || r[0].Target != "/done.bin" {
		t.Errorf("rename events: %+v", r)
	}
	s.FS.Mkdir("/d")
	s.FS.Rmdir("/d")
	s.FS.Remove("/done.bin")
	if len(got.of(events.Mkdir)) != 1 || len(got.of(events.Rmdir)) != 1 || len(got.of(events.Delete)) != 1 {
		t.Errorf("change events: %+v", got.ev)
	}
	m.loginFailed("ftps", "password", "mallory", netip.MustParseAddr("198.51.100.1"), errors.New("invalid credentials: wrong password"))
	if f := got.of(events.LoginFailed); len(f) != 1 || f[0].Outcome != "failed" || f[0].User != "mallory" {
		t.Errorf("login_failed events: %+v", f)
	}
}

// Without SetUploadHashes (no hook or audit log reads it), uploads carry
// no hash: the daemon does not pay for it.
func TestEventsWithoutHashes(t *testing.T) {
	m := NewManager(vfs.NewMemory())
	got := &sink{}
	m.SetEvents(got)
	p := &auth.Principal{User: "acme", Home: "/acme", Perms: vfs.PermAll, Protocol: "sftp", Method: "password",
		Remote: netip.MustParseAddr("192.0.2.7")}
	s, err := m.Open("c1", p, slog.New(slog.DiscardHandler), func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.FS.Create("/a.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("order 42"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if ups := got.of(events.Upload); len(ups) != 1 || ups[0].SHA256 != "" || ups[0].Size != 8 || ups[0].Outcome != "ok" {
		t.Fatalf("upload events: %+v", ups)
	}
}
