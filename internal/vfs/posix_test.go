package vfs

import (
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// A name that changes under an open upload, as a client that cleans up
// before it closes makes it change (issue 13): one session opens a file
// for writing, a write fails, the client removes the name without closing
// the handle, uploads the name again, and closes the old handle last. The
// session's stack must answer every step as a POSIX file server does
// (OpenSSH's sftp-server, or local without the atomic layer): the
// expectations below are those of "local, atomic off", and every other
// store must meet them.
func TestNameChangesUnderAnOpenUpload(t *testing.T) {
	stores := []struct {
		name   string
		atomic bool
		open   func(t *testing.T) Backend
	}{
		{"local/atomic", true, func(t *testing.T) Backend { return mustLocal(t) }},
		{"local/plain", false, func(t *testing.T) Backend { return mustLocal(t) }},
		{"memory/atomic", true, func(*testing.T) Backend { return NewMemory() }},
		{"memory/plain", false, func(*testing.T) Backend { return NewMemory() }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			b := st.open(t)
			t.Cleanup(func() { b.Close() })
			raw, err := b.Home("/u")
			if err != nil {
				t.Fatal(err)
			}
			home := raw
			if st.atomic {
				home = newAtomic(raw, atomicCopyMax)
			}
			t.Cleanup(func() { home.Close() })
			// The session's stack (session.Manager.Open), with a size cap
			// that makes the client's write fail.
			s := Restrict(Audit(CapSize(home, func() int64 { return 16 }), slog.New(slog.DiscardHandler), AuditOptions{}),
				func() Perms { return PermAll }, slog.New(slog.DiscardHandler))
			nameChangesUnderAnOpenUpload(t, s, raw)
		})
	}
}

func mustLocal(t *testing.T) Backend {
	t.Helper()
	b, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nameChangesUnderAnOpenUpload(t *testing.T, s, raw FS) {
	// Each check goes on after a failure, so that a run shows every
	// symptom at once.
	ok := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want success", step, err)
		}
	}
	size := func(name string, want int64) {
		t.Helper()
		fi, err := s.Stat(name)
		if err != nil {
			t.Errorf("stat %s: %v; want %d bytes", name, err, want)
		} else if fi.Size() != want {
			t.Errorf("stat %s: %d bytes, want %d", name, fi.Size(), want)
		}
	}
	gone := func(name string) {
		t.Helper()
		if fi, err := s.Stat(name); err == nil {
			t.Errorf("stat %s: %s of %d bytes, want no such file", name, fi.Mode().Type(), fi.Size())
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s: %v, want no such file", name, err)
		}
	}
	// brokenUpload opens name for writing and writes 3 bytes, then a
	// write that the size cap refuses, and leaves the handle open.
	brokenUpload := func(name string) afero.File {
		t.Helper()
		f, err := s.OpenFile(name, trunc, 0o640)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		_, err = f.Write([]byte("old"))
		ok("write "+name, err)
		if _, err := f.Write([]byte(strings.Repeat("x", 20))); !errors.Is(err, syscall.EFBIG) {
			t.Fatalf("write past the cap: %v, want EFBIG", err)
		}
		return f
	}

	ok("mkdir", s.Mkdir("/d", 0o750))

	// Remove while the failed upload is open: the name goes.
	old := brokenUpload("/d/f")
	size("/d/f", 3) // the session's live upload is the file, as on a plain server
	ok("remove under an open upload", s.Remove("/d/f"))
	gone("/d/f")
	if err := s.Remove("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second remove: %v, want no such file", err)
	}

	// Upload it again: the new file is what the name shows.
	writeAll(t, s, "/d/f", trunc, "new!")
	size("/d/f", 4)

	// Another failed upload of the name, then a completed one.
	older := brokenUpload("/d/f")
	writeAll(t, s, "/d/f", trunc, "newer")
	size("/d/f", 5)

	// Closing the abandoned handles brings nothing back.
	ok("close the removed upload", old.Close())
	ok("close the overtaken upload", older.Close())
	size("/d/f", 5)
	if got := content(t, s, "/d/f"); got != "newer" {
		t.Errorf("after closing the old handles: %q, want the last upload", got)
	}

	// A rename onto a name with an open upload replaces it for good.
	renamed := brokenUpload("/d/g")
	writeAll(t, s, "/d/h", trunc, "renamed")
	ok("rename onto an open upload", s.Rename("/d/h", "/d/g"))
	ok("close the renamed-over upload", renamed.Close())
	if got := content(t, s, "/d/g"); got != "renamed" {
		t.Errorf("after the rename and the close: %q, want the renamed file", got)
	}

	// RMDIR of a folder whose file was removed under an open upload.
	ok("remove f", s.Remove("/d/f"))
	ok("remove g", s.Remove("/d/g"))
	last := brokenUpload("/d/x")
	ok("remove x", s.Remove("/d/x"))
	ok("rmdir under a removed open upload", s.Remove("/d"))
	gone("/d")
	ok("close the upload of the removed folder", last.Close())
	gone("/d")
	gone("/d/x")
	if names := rawNames(t, raw, "/"); len(names) != 0 {
		t.Errorf("left in the home: %v", names)
	}
}

// pkg/sftp serves a session's requests on several goroutines: a REMOVE of
// a name and the CLOSE of its upload may run at once. Whichever goes
// first, the name is gone afterwards and the remove succeeds: a close
// that commits first has its file removed, a remove that goes first
// detaches the upload.
func TestRemoveRacesCloseOfItsUpload(t *testing.T) {
	forEachHome(t, atomicCopyMax, func(t *testing.T, raw, a FS) {
		for i := range 50 {
			f, err := a.OpenFile("/race", trunc, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("data"))
			start := make(chan struct{})
			var removeErr, closeErr error
			var wg sync.WaitGroup
			wg.Go(func() { <-start; removeErr = a.Remove("/race") })
			wg.Go(func() { <-start; closeErr = f.Close() })
			close(start)
			wg.Wait()
			if removeErr != nil || closeErr != nil {
				t.Fatalf("round %d: remove %v, close %v", i, removeErr, closeErr)
			}
			absent(t, a, "/race")
			if names := rawNames(t, raw, "/"); len(names) != 0 {
				t.Fatalf("round %d: left %v", i, names)
			}
		}
	})
}
