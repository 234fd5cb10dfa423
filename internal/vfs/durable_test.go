package vfs

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// syncLog records, in order, the renames and the fsyncs (of files and of
// directories) that reach a backend, and can make fsync fail.
type syncLog struct {
	FS
	mu      sync.Mutex
	ops     []string
	failing bool // Sync fails with EIO
}

func (s *syncLog) add(op string) {
	s.mu.Lock()
	s.ops = append(s.ops, op)
	s.mu.Unlock()
}

// seen returns the ops recorded, with temporary names' random part cut.
func (s *syncLog) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.ops))
	for i, op := range s.ops {
		if i := strings.Index(op, uploadPrefix); i >= 0 {
			op = op[:i] + uploadPrefix + "…" + op[strings.IndexAny(op[i+len(uploadPrefix):], " ")+i+len(uploadPrefix):]
		}
		out[i] = op
	}
	return out
}

func (s *syncLog) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &syncedFile{File: f, log: s, name: clientPath(name)}, nil
}

func (s *syncLog) Open(name string) (afero.File, error) { return s.OpenFile(name, 0, 0) }

func (s *syncLog) Rename(oldname, newname string) error {
	s.add("rename " + clientPath(oldname) + " " + clientPath(newname) + " ")
	return s.FS.Rename(oldname, newname)
}

type syncedFile struct {
	afero.File
	log  *syncLog
	name string
}

func (f *syncedFile) Sync() error {
	f.log.add("sync " + f.name + " ")
	f.log.mu.Lock()
	failing := f.log.failing
	f.log.mu.Unlock()
	if failing {
		return &fs.PathError{Op: "sync", Path: f.name, Err: syscall.EIO}
	}
	return f.File.Sync()
}

func newSyncLog(t *testing.T) *syncLog {
	t.Helper()
	h, err := NewMemory().Home("/u")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Mkdir("/d", 0); err != nil {
		t.Fatal(err)
	}
	return &syncLog{FS: h}
}

func upload(fsys afero.Fs, name, data string, broken bool) error {
	f, err := fsys.OpenFile(name, trunc, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, data); err != nil {
		return err
	}
	if broken {
		f.(interface{ TransferError(error) }).TransferError(io.ErrUnexpectedEOF)
	}
	return f.Close()
}

// With fsync, an upload's bytes are on disk before its name is, and its
// name before Close returns (the reply and the upload event follow Close);
// a kept partial likewise. Without, nothing is flushed.
func TestAtomicFsync(t *testing.T) {
	s := newSyncLog(t)
	a := Atomic(s, true)
	if err := upload(a, "/d/f", "data", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"sync /d/" + uploadPrefix + "… ", "rename /d/" + uploadPrefix + "… /d/f ", "sync /d "}
	if got := s.seen(); !slices.Equal(got, want) {
		t.Errorf("completed upload: %q, want %q", got, want)
	}

	s.ops = nil
	if err := upload(a, "/d/g", "half", true); err != nil {
		t.Fatal(err)
	}
	want = []string{"sync /d/" + uploadPrefix + "… ", "rename /d/" + uploadPrefix + "… /d/" + partialPrefix + "g ", "sync /d "}
	if got := s.seen(); !slices.Equal(got, want) {
		t.Errorf("broken upload: %q, want %q", got, want)
	}

	s = newSyncLog(t)
	if err := upload(Atomic(s, false), "/d/f", "data", false); err != nil {
		t.Fatal(err)
	}
	if got := s.seen(); len(got) != 1 || !strings.HasPrefix(got[0], "rename") {
		t.Errorf("with fsync off: %q, want the rename alone", got)
	}
}

// An upload whose bytes cannot be flushed is not complete: Close fails (so
// the client is told), the name is untouched, the bytes stay a partial.
func TestAtomicFsyncFailure(t *testing.T) {
	s := newSyncLog(t)
	s.failing = true
	a := Atomic(s, true)
	err := upload(a, "/d/f", "data", false)
	if !errorsIsErrno(err, syscall.EIO) || !strings.Contains(err.Error(), "/d/f") || strings.Contains(err.Error(), uploadPrefix) {
		t.Fatalf("Close after a failed fsync: %v, want EIO on /d/f", err)
	}
	absent(t, s.FS, "/d/f")
	if got := content(t, s.FS, partialOf("/d/f")); got != "data" {
		t.Errorf("partial after a failed fsync: %q", got)
	}
}

func TestDurableFsync(t *testing.T) {
	s := newSyncLog(t)
	if err := upload(Durable(s), "/d/f", "data", false); err != nil {
		t.Fatal(err)
	}
	if got, want := s.seen(), []string{"sync /d/f ", "sync /d "}; !slices.Equal(got, want) {
		t.Errorf("upload without atomic: %q, want %q", got, want)
	}
	s.failing = true
	if err := upload(Durable(s), "/d/f", "data", false); !errorsIsErrno(err, syscall.EIO) {
		t.Errorf("Close after a failed fsync: %v, want EIO", err)
	}
	// Reads are not flushed.
	s.failing, s.ops = false, nil
	if _, err := afero.ReadFile(Durable(s), "/d/f"); err != nil {
		t.Fatal(err)
	}
	if got := s.seen(); len(got) != 0 {
		t.Errorf("a download flushed: %q", got)
	}
}

func errorsIsErrno(err error, errno syscall.Errno) bool { return errors.Is(err, errno) }
