package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// readAudit returns the events of every audit file in dir, oldest file
// first, checking that each line is one valid JSON event.
func readAudit(t *testing.T, dir, active string) (files []string, evs []Event) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != active && strings.HasPrefix(e.Name(), "audit-") {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	files = append(files, active)
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev Event
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Errorf("%s: line %q is not an event: %v", name, sc.Text(), err)
			}
			evs = append(evs, ev)
		}
		_ = f.Close()
	}
	return files, evs
}

func TestAuditLogRotates(t *testing.T) {
	// A frozen clock makes every rotation happen in the same instant, the
	// case where backup names would collide.
	frozen := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		maxBackups  int
		wantBackups int // -1: more than one, however many
	}{
		{"keeps max_backups", 2, 2},
		{"zero keeps all", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			const maxSize = 600
			b, err := Open(Options{
				AuditLog: config.AuditLog{Path: filepath.Join(dir, "audit.jsonl"), MaxSize: maxSize, MaxBackups: tt.maxBackups},
				Now:      func() time.Time { return frozen },
			})
			if err != nil {
				t.Fatal(err)
			}
			const n = 40
			for i := range n {
				b.Emit(Event{Type: Upload, User: "acme", Path: fmt.Sprintf("/inbox/f%02d.csv", i), Size: int64(i), Outcome: "ok"})
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			files, evs := readAudit(t, dir, "audit.jsonl")
			backups := len(files) - 1
			if tt.wantBackups >= 0 && backups != tt.wantBackups {
				t.Errorf("backups = %d (%v), want %d", backups, files, tt.wantBackups)
			}
			if tt.wantBackups < 0 && backups < 2 {
				t.Errorf("backups = %d, want several", backups)
			}
			for _, name := range files {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() > maxSize {
					t.Errorf("%s is %d bytes, over max_size %d", name, st.Size(), maxSize)
				}
				if st.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s mode %v readable by others", name, st.Mode())
				}
			}
			// What is kept is the most recent events, in order, with no gap.
			if len(evs) == 0 {
				t.Fatal("no events in the audit log")
			}
			first := n - len(evs)
			if tt.maxBackups == 0 && first != 0 {
				t.Errorf("keeping all backups, yet %d events are missing", first)
			}
			for i, ev := range evs {
				want := fmt.Sprintf("/inbox/f%02d.csv", first+i)
				if ev.Path != want || ev.Type != Upload || ev.User != "acme" || ev.ID == "" || !ev.Time.Equal(frozen) {
					t.Errorf("line %d: %+v, want path %s with id and time", i, ev, want)
				}
			}
		})
	}
}

func TestAuditLogAppendsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	opts := Options{AuditLog: config.AuditLog{Path: filepath.Join(dir, "sub", "audit.jsonl"), MaxSize: 1 << 20}}
	for i := range 3 {
		b, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		b.Emit(Event{Type: Login, User: fmt.Sprint("u", i), Outcome: "ok"})
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, evs := readAudit(t, filepath.Join(dir, "sub"), "audit.jsonl")
	var users []string
	for _, ev := range evs {
		users = append(users, ev.User)
	}
	if want := []string{"u0", "u1", "u2"}; !slices.Equal(users, want) {
		t.Errorf("users = %v, want %v", users, want)
	}
}

func TestAuditLogStdoutAndOff(t *testing.T) {
	var out bytes.Buffer
	b, err := Open(Options{AuditLog: config.AuditLog{Path: "-"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	b.Emit(Event{ID: "given", Type: Mkdir, User: "acme", Path: "/new", Outcome: "ok"})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(out.Bytes(), &ev); err != nil || !strings.HasSuffix(out.String(), "}\n") {
		t.Fatalf("stdout %q: want one JSON line (%v)", out.String(), err)
	}
	if ev.ID != "given" || ev.Path != "/new" || ev.Time.IsZero() {
		t.Errorf("event %+v: want the given id kept and a time filled in", ev)
	}

	dir := t.TempDir()
	b, err = Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Emit(Event{Type: Mkdir, Path: "/x"})
	// With neither an audit log nor hooks, an event costs nothing: no ID
	// drawn, no JSON built, once per file a partner moves.
	if n := testing.AllocsPerRun(100, func() { b.Emit(Event{Type: Upload, Path: "/y", Size: 1}) }); n != 0 {
		t.Errorf("Emit with no consumer allocated %v times per event", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("audit log off, yet files appeared: %v", entries)
	}
}
