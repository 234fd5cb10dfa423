package vfs

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// Test helpers shared by the policy tests: the stores every table runs on,
// a session (FS) over one of them, and what the tests read back.

// storeKind is one store the policy tables run on.
type storeKind struct {
	name string
	// atomic: an upload appears under its name only at Commit, and a broken
	// one leaves a partial (memory, local with uploads.atomic). Otherwise
	// uploads are written in place, as a plain POSIX server writes them.
	atomic bool
	// local: the store keeps its files under a host directory.
	local bool
	open  func(t *testing.T, dir string) Backend
}

func storeKinds() []storeKind {
	return []storeKind{
		{name: "memory", atomic: true, open: func(*testing.T, string) Backend { return NewMemory() }},
		{name: "local-atomic", atomic: true, local: true, open: func(t *testing.T, dir string) Backend { return newLocalBackend(t, dir, true) }},
		{name: "local-plain", local: true, open: func(t *testing.T, dir string) Backend { return newLocalBackend(t, dir, false) }},
	}
}

// atomicKinds are the stores whose uploads land only at Commit.
func atomicKinds() []storeKind {
	return slices.DeleteFunc(storeKinds(), func(k storeKind) bool { return !k.atomic })
}

func newLocalBackend(t testing.TB, dir string, atomic bool) Backend {
	t.Helper()
	b, err := NewLocal(dir, LocalOptions{Atomic: atomic})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return b
}

// home is one user's home on a store, and a session over it.
type home struct {
	kind storeKind
	b    Backend
	root string // the storage root on the host ("" for memory)
	raw  Store  // a handle of the home of its own, beneath any session
	fs   *FS    // the session under test
	logs *syncbuf.Buffer
	ops  *recorder
	size int64 // the session's size cap, read per write (0: none)
	mu   sync.Mutex
	perm Perms // the session's permissions, read per operation
}

// homeOptions adjust what newHome builds.
type homeOptions struct {
	hash bool // Options.HashUploads
}

// newHome opens the home "/u" on a fresh store of kind k and a session
// over it with every permission and no size cap.
func newHome(t *testing.T, k storeKind, o ...homeOptions) *home {
	t.Helper()
	h := &home{kind: k, logs: &syncbuf.Buffer{}, ops: &recorder{}, perm: PermAll}
	if k.local {
		h.root = t.TempDir()
	}
	h.b = k.open(t, h.root)
	t.Cleanup(func() { h.b.Close() })
	raw, err := h.b.Home("/u")
	if err != nil {
		t.Fatalf("home: %v", err)
	}
	t.Cleanup(func() { raw.Close() })
	h.raw = raw
	var opt homeOptions
	if len(o) > 0 {
		opt = o[0]
	}
	h.fs = h.session(t, opt)
	return h
}

// session opens another session of the same home, sharing the home's
// permissions, size cap, log and record.
func (h *home) session(t *testing.T, o homeOptions) *FS {
	t.Helper()
	s, err := h.b.Home("/u")
	if err != nil {
		t.Fatalf("home: %v", err)
	}
	f := NewFS(s, Options{
		Perms: func() Perms {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.perm
		},
		MaxSize: func() int64 {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.size
		},
		Log:         slog.New(slog.NewJSONHandler(h.logs, nil)),
		Record:      h.ops.add,
		HashUploads: o.hash,
	})
	t.Cleanup(func() { f.Close() })
	return f
}

func (h *home) setPerms(p Perms) {
	h.mu.Lock()
	h.perm = p
	h.mu.Unlock()
}

func (h *home) setMaxSize(n int64) {
	h.mu.Lock()
	h.size = n
	h.mu.Unlock()
}

// hostPath is where the client path name of the home lies on the host.
func (h *home) hostPath(name string) string {
	return filepath.Join(h.root, "u", filepath.FromSlash(name))
}

// forEachStore runs f on a fresh home of each kind.
func forEachStore(t *testing.T, kinds []storeKind, f func(t *testing.T, h *home)) {
	t.Helper()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			h := newHome(t, k)
			f(t, h)
			if t.Failed() {
				t.Logf("log:\n%s", h.logs.String())
			}
		})
	}
}

// Flags of the opens the front ends make.
const (
	wo     = os.O_WRONLY
	create = os.O_WRONLY | os.O_CREATE
	trunc  = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	excl   = os.O_WRONLY | os.O_CREATE | os.O_EXCL | os.O_TRUNC
	appnd  = os.O_WRONLY | os.O_APPEND
)

// put uploads data under name through f, from offset 0, and commits.
func put(t *testing.T, f *FS, name string, flag int, data string) {
	t.Helper()
	w, err := f.Create(name, flag)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := w.WriteAt([]byte(data), 0); err != nil {
		w.Abort(err)
		t.Fatalf("write %s: %v", name, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// broken starts an upload of name, writes data and aborts it as a dropped
// connection does: an atomic store keeps the bytes as the name's partial.
func broken(t *testing.T, f *FS, name, data string) {
	t.Helper()
	w, err := f.Create(name, trunc)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := w.WriteAt([]byte(data), 0); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := w.Abort(io.ErrUnexpectedEOF); err != nil {
		t.Fatalf("abort %s: %v", name, err)
	}
}

// content downloads name through f.
func content(t *testing.T, f *FS, name string) string {
	t.Helper()
	r, err := f.Open(name, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// rawContent reads name straight from the store, beneath any policy.
func rawContent(t *testing.T, s Store, name string) string {
	t.Helper()
	r, err := s.Open(name, 0)
	if err != nil {
		t.Fatalf("open %s on the store: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s on the store: %v", name, err)
	}
	return string(b)
}

// size returns the size Stat reports for name through f, or -1 with the
// error.
func size(f *FS, name string) (int64, error) {
	fi, err := f.Stat(name)
	if err != nil {
		return -1, err
	}
	return fi.Size(), nil
}

// absent fails unless Stat through f finds nothing under name.
func absent(t *testing.T, f *FS, name string) {
	t.Helper()
	if fi, err := f.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s: %v, %v; want no such file", name, fi, err)
	}
}

// listNames lists dir through f, n entries a call.
func listNames(t *testing.T, f *FS, dir string, n int) []string {
	t.Helper()
	d, err := f.List(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	defer d.Close()
	var names []string
	for range 1000 {
		fis, err := d.Next(n)
		for _, fi := range fis {
			names = append(names, fi.Name())
		}
		if err == io.EOF {
			slices.Sort(names)
			return names
		}
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		if len(fis) == 0 {
			t.Fatalf("list %s: Next(%d) returned nothing and no EOF", dir, n)
		}
	}
	t.Fatalf("list %s: no end", dir)
	return nil
}

// rawNames lists dir on the store itself, internal names included where
// the store lists them, and on the host for a local store.
func rawNames(t *testing.T, h *home, dir string) []string {
	t.Helper()
	l, err := h.raw.List(dir)
	if err != nil {
		t.Fatalf("list %s on the store: %v", dir, err)
	}
	defer l.Close()
	var names []string
	for {
		fis, err := l.Next(100)
		for _, fi := range fis {
			names = append(names, fi.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("list %s on the store: %v", dir, err)
		}
	}
	if h.root != "" {
		ents, err := os.ReadDir(h.hostPath(dir))
		if err != nil {
			t.Fatalf("read %s on the host: %v", dir, err)
		}
		for _, e := range ents {
			if !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names
}

// hiddenNames returns the internal names rawNames finds in dir.
func hiddenNames(t *testing.T, h *home, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(rawNames(t, h, dir), func(n string) bool { return !isHidden(n) })
}

// noPartial fails if the store keeps a partial of name.
func noPartial(t *testing.T, h *home, name string) {
	t.Helper()
	if r, ok := h.raw.(Resumer); ok {
		if fi, err := r.Partial(name); err == nil {
			t.Errorf("%s has a partial of %d bytes", name, fi.Size())
		}
	}
}

// recorder keeps the Ops a session records.
type recorder struct {
	mu  sync.Mutex
	ops []Op
}

func (r *recorder) add(o Op) {
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
}

// all returns the Ops recorded so far.
func (r *recorder) all() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// of returns the Ops of type typ on path.
func (r *recorder) of(typ, path string) []Op {
	return slices.DeleteFunc(r.all(), func(o Op) bool { return o.Type != typ || o.Path != path })
}

// reset forgets what was recorded.
func (r *recorder) reset() {
	r.mu.Lock()
	r.ops = nil
	r.mu.Unlock()
}
