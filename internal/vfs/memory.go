package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Memory keeps every home in one process-wide tree in memory (for demos and
// tests): "/" holds all homes, so a home may lie inside another and both
// see the same nodes. The tree has no symlinks, so a clean path joined to
// the home confines a name exactly.
//
// Uploads are atomic: an upload fills a buffer of its own and Commit puts
// it under the name in one step. A broken upload keeps what it received as
// the name's partial, which lives beside the name in its directory (moving
// with a renamed directory and going with a removed one) and never appears
// in a listing.
//
// A file's bytes are never written in place: a commit, a truncate or a
// resume makes a new slice, so that a File opened for reading keeps the
// bytes it was opened on without holding the tree's lock, as an open file
// on disk keeps its inode.
type Memory struct {
	mu   sync.Mutex // guards every node of the tree
	root *memNode
}

var (
	_ Backend = (*Memory)(nil)

	_ Store        = (*memStore)(nil)
	_ Renamer      = (*memStore)(nil)
	_ Truncater    = (*memStore)(nil)
	_ Chmoder      = (*memStore)(nil)
	_ Chtimeser    = (*memStore)(nil)
	_ Resumer      = (*memStore)(nil)
	_ Upload       = (*memUpload)(nil)
	_ UploadReader = (*memUpload)(nil)
	_ UploadAttrs  = (*memUpload)(nil)

	_ UploadTruncater = (*memUpload)(nil)
)

// memNode is a file or a directory of the tree. Its fields are guarded by
// Memory.mu.
type memNode struct {
	dir      bool
	children map[string]*memNode // a directory's entries
	partials map[string]*memNode // a directory's partials, by the base name they belong to
	data     []byte              // a file's bytes: replaced, never written in place
	mode     fs.FileMode         // permission bits only
	mtime    time.Time
}

func newMemDir(now time.Time) *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, partials: map[string]*memNode{}, mode: dirMode, mtime: now}
}

func (n *memNode) info(name string) memInfo {
	mode := n.mode
	if n.dir {
		mode |= fs.ModeDir
	}
	return memInfo{name: name, size: int64(len(n.data)), mode: mode, mtime: n.mtime}
}

// NewMemory returns an empty memory backend.
func NewMemory() *Memory { return &Memory{root: newMemDir(time.Now())} }

// Home returns the store whose "/" is home, creating home and any missing
// directory above it.
func (m *Memory) Home(home string) (Store, error) {
	base := clientPath(home)
	if err := checkMemName("mkdir", base); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	n := m.root
	for _, c := range memComponents(base) {
		child := n.children[c]
		if child == nil {
			child = newMemDir(now)
			n.children[c] = child
			n.mtime = now
		} else if !child.dir {
			return nil, &fs.PathError{Op: "mkdir", Path: base, Err: syscall.ENOTDIR}
		}
		n = child
	}
	return &memStore{m: m, base: base}, nil
}

// Close is a no-op: the tree lives as long as the Memory, and homes
// already returned stay usable.
func (m *Memory) Close() error { return nil }

// memComponents splits a clean, rooted tree path into its elements; "/"
// has none.
func memComponents(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// lookup finds the node at the tree path p. A file named as a directory on
// the way is ENOTDIR, as on disk. The caller holds m.mu.
func (m *Memory) lookup(p string) (*memNode, error) {
	n := m.root
	for _, c := range memComponents(p) {
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		child := n.children[c]
		if child == nil {
			return nil, fs.ErrNotExist
		}
		n = child
	}
	return n, nil
}

// parent finds the directory that holds the tree path p (not "/") and p's
// base name: creating p needs it to exist and to be a directory, as on
// disk. The caller holds m.mu.
func (m *Memory) parent(p string) (*memNode, string, error) {
	dir, base := path.Split(p)
	n, err := m.lookup(path.Clean(dir))
	if err != nil {
		return nil, "", err
	}
	if !n.dir {
		return nil, "", syscall.ENOTDIR
	}
	return n, base, nil
}

// Limits of Linux (NAME_MAX, PATH_MAX) that the local backend gets from the
// kernel.
const (
	memNameMax = 255
	memPathMax = 4096
)

// memHoleMax bounds how far past its end one write (or truncate) may
// extend a file or an upload: the hole is zeros allocated at once, so a
// single SFTP WRITE at offset 2^40, or an FTP REST of 10 GB before STOR,
// would otherwise exhaust the daemon's memory. A real client writes at
// most a few outstanding chunks ahead.
const memHoleMax = 64 << 20

// checkMemName refuses, before a file or directory is created, the names a
// disk would refuse: a NUL byte, a component longer than NAME_MAX, a path
// longer than PATH_MAX. The tree takes any string, and a name a client
// could use nowhere else would sit in listings and logs.
func checkMemName(op, name string) error {
	p := clientPath(name)
	if strings.IndexByte(p, 0) >= 0 {
		return &fs.PathError{Op: op, Path: p, Err: syscall.EINVAL}
	}
	if len(p) > memPathMax {
		return &fs.PathError{Op: op, Path: p, Err: syscall.ENAMETOOLONG}
	}
	for _, c := range memComponents(p) {
		if len(c) > memNameMax {
			return &fs.PathError{Op: op, Path: p, Err: syscall.ENAMETOOLONG}
		}
	}
	return nil
}

// memErr is err about the client path name.
func memErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: clientPath(name), Err: err}
}

// resized returns data cut or extended with zeros to size, in a slice
// that shares no byte a reader could see change.
func resized(data []byte, size int64) ([]byte, error) {
	switch {
	case size < 0:
		return nil, syscall.EINVAL
	case size <= int64(len(data)):
		return data[:size:size], nil
	case size > int64(len(data))+memHoleMax:
		return nil, syscall.EFBIG
	}
	out := make([]byte, size)
	copy(out, data)
	return out, nil
}

// memStore is one home: the subtree at base.
type memStore struct {
	m    *Memory
	base string // tree path of the home
}

// abs maps a client path into the tree. After clientPath, ".." cannot
// climb above the home, and the tree has no symlinks to leave it by.
func (s *memStore) abs(name string) string { return path.Join(s.base, rel(name)) }

func (s *memStore) Stat(name string) (fs.FileInfo, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	n, err := s.m.lookup(s.abs(name))
	if err != nil {
		return nil, memErr("stat", name, err)
	}
	return n.info(path.Base(clientPath(name))), nil
}

// List lists from a snapshot taken now, sorted by name: a directory in
// memory is already wholly in memory.
func (s *memStore) List(name string) (Lister, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	n, err := s.m.lookup(s.abs(name))
	if err != nil {
		return nil, memErr("list", name, err)
	}
	if !n.dir {
		return nil, memErr("list", name, syscall.ENOTDIR)
	}
	names := slices.Sorted(maps.Keys(n.children))
	entries := make([]fs.FileInfo, len(names))
	for i, c := range names {
		entries[i] = n.children[c].info(c)
	}
	return &memLister{name: clientPath(name), entries: entries}, nil
}

func (s *memStore) Open(name string, off int64) (File, error) {
	if off < 0 {
		return nil, memErr("open", name, syscall.EINVAL)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	n, err := s.m.lookup(s.abs(name))
	if err != nil {
		return nil, memErr("open", name, err)
	}
	if n.dir {
		return nil, memErr("open", name, syscall.EISDIR)
	}
	return &memFile{name: clientPath(name), info: n.info(path.Base(clientPath(name))), data: n.data, pos: off}, nil
}

func (s *memStore) Create(name string, o CreateOptions) (Upload, error) {
	if err := checkMemName("create", name); err != nil {
		return nil, err
	}
	if clientPath(name) == "/" {
		return nil, memErr("create", name, syscall.EISDIR)
	}
	p := s.abs(name)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	dir, base, err := s.m.parent(p)
	if err != nil {
		return nil, memErr("create", name, err)
	}
	file, partial := dir.children[base], dir.partials[base]
	switch {
	case file != nil && file.dir:
		return nil, memErr("create", name, syscall.EISDIR)
	case o.Exclusive && file != nil:
		return nil, memErr("create", name, fs.ErrExist)
	case o.MustExist && file == nil && partial == nil:
		return nil, memErr("create", name, fs.ErrNotExist)
	}
	now := time.Now()
	u := &memUpload{s: s, name: clientPath(name), path: p, excl: o.Exclusive, mode: fileMode, changed: now}
	switch {
	case o.Continue && partial != nil:
		// Claimed: it leaves the directory, so that two uploads never
		// continue the same partial, and an abort puts it back.
		delete(dir.partials, base)
		u.data, u.mode, u.changed, u.claimed = partial.data, partial.mode, partial.mtime, true
	case o.Continue && file != nil:
		u.data, u.mode, u.changed, u.src = bytes.Clone(file.data), file.mode, file.mtime, file
	case file != nil:
		u.mode = file.mode // an overwrite keeps the file's mode, as writing in place would
	}
	return u, nil
}

// Remove removes the file name and its partial; either is enough.
func (s *memStore) Remove(name string) error {
	if clientPath(name) == "/" {
		return memErr("remove", name, syscall.EISDIR)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	dir, base, err := s.m.parent(s.abs(name))
	if err != nil {
		return memErr("remove", name, err)
	}
	file, partial := dir.children[base], dir.partials[base]
	switch {
	case file != nil && file.dir:
		return memErr("remove", name, syscall.EISDIR)
	case file == nil && partial == nil:
		return memErr("remove", name, fs.ErrNotExist)
	}
	if file != nil {
		delete(dir.children, base)
		dir.mtime = time.Now()
	}
	delete(dir.partials, base)
	return nil
}

func (s *memStore) Mkdir(name string) error {
	if err := checkMemName("mkdir", name); err != nil {
		return err
	}
	if clientPath(name) == "/" {
		return memErr("mkdir", name, fs.ErrExist)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	dir, base, err := s.m.parent(s.abs(name))
	if err != nil {
		return memErr("mkdir", name, err)
	}
	if dir.children[base] != nil {
		return memErr("mkdir", name, fs.ErrExist)
	}
	now := time.Now()
	dir.children[base] = newMemDir(now)
	dir.mtime = now
	return nil
}

// Rmdir removes an empty directory; the partials in it go with it, and so
// does a partial of its own name left from before it was made.
func (s *memStore) Rmdir(name string) error {
	if clientPath(name) == "/" {
		return memErr("rmdir", name, fs.ErrPermission) // the home itself
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	dir, base, err := s.m.parent(s.abs(name))
	if err != nil {
		return memErr("rmdir", name, err)
	}
	n := dir.children[base]
	switch {
	case n == nil:
		return memErr("rmdir", name, fs.ErrNotExist)
	case !n.dir:
		return memErr("rmdir", name, syscall.ENOTDIR)
	case len(n.children) > 0:
		return memErr("rmdir", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	delete(dir.partials, base)
	dir.mtime = time.Now()
	return nil
}

// Close is a no-op: the home is a view of the Memory's tree.
func (s *memStore) Close() error { return nil }

// Rename moves a file or a directory, as rename(2) does: it replaces a
// file, or an empty directory by a directory, and drops newname's
// partial. oldname's partial stays with oldname.
func (s *memStore) Rename(oldname, newname string) error {
	if clientPath(oldname) == "/" || clientPath(newname) == "/" {
		return memErr("rename", oldname, fs.ErrPermission) // the home itself
	}
	if err := checkMemName("rename", newname); err != nil {
		return err
	}
	op, np := s.abs(oldname), s.abs(newname)
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	odir, obase, err := s.m.parent(op)
	if err != nil {
		return memErr("rename", oldname, err)
	}
	src := odir.children[obase]
	if src == nil {
		return memErr("rename", oldname, fs.ErrNotExist)
	}
	ndir, nbase, err := s.m.parent(np)
	if err != nil {
		return memErr("rename", newname, err)
	}
	if op == np {
		return nil
	}
	if src.dir && strings.HasPrefix(np, op+"/") {
		return memErr("rename", newname, syscall.EINVAL) // into itself
	}
	if dst := ndir.children[nbase]; dst != nil {
		switch {
		case src.dir && !dst.dir:
			return memErr("rename", newname, syscall.ENOTDIR)
		case !src.dir && dst.dir:
			return memErr("rename", newname, syscall.EISDIR)
		case dst.dir && len(dst.children) > 0:
			return memErr("rename", newname, syscall.ENOTEMPTY)
		}
	}
	delete(odir.children, obase)
	ndir.children[nbase] = src
	delete(ndir.partials, nbase)
	now := time.Now()
	odir.mtime, ndir.mtime = now, now
	return nil
}

// Truncate resizes the name's partial if it has one, else the file.
func (s *memStore) Truncate(name string, size int64) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	n, err := s.target(name)
	if err != nil {
		return memErr("truncate", name, err)
	}
	if n.dir {
		return memErr("truncate", name, syscall.EISDIR)
	}
	data, err := resized(n.data, size)
	if err != nil {
		return memErr("truncate", name, err)
	}
	n.data, n.mtime = data, time.Now()
	return nil
}

// target is what Stat through the FS describes: the name's partial if it
// has one (and the name is not a directory made since), else the name's
// node. The caller holds m.mu.
func (s *memStore) target(name string) (*memNode, error) {
	if pn := s.partial(name); pn != nil {
		return pn, nil
	}
	return s.m.lookup(s.abs(name))
}

// partial returns the partial of name, or nil if it has none or name is a
// directory. The caller holds m.mu.
func (s *memStore) partial(name string) *memNode {
	if clientPath(name) == "/" {
		return nil
	}
	dir, base, err := s.m.parent(s.abs(name))
	if err != nil {
		return nil
	}
	if n := dir.children[base]; n != nil && n.dir {
		return nil
	}
	return dir.partials[base]
}

func (s *memStore) Partial(name string) (fs.FileInfo, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	pn := s.partial(name)
	if pn == nil {
		return nil, memErr("stat", name, fs.ErrNotExist)
	}
	return pn.info(path.Base(clientPath(name))), nil
}

// attrs applies set to the name's node and to its partial; either is
// enough.
func (s *memStore) attrs(op, name string, set func(*memNode)) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	pn := s.partial(name)
	n, err := s.m.lookup(s.abs(name))
	if err != nil && pn == nil {
		return memErr(op, name, err)
	}
	if n != nil {
		set(n)
	}
	if pn != nil {
		set(pn)
	}
	return nil
}

func (s *memStore) Chmod(name string, mode fs.FileMode) error {
	return s.attrs("chmod", name, func(n *memNode) { n.mode = mode.Perm() })
}

// Chtimes sets the modification time; the tree keeps no access time. A
// zero time leaves it as it is, as os.Chtimes does.
func (s *memStore) Chtimes(name string, _, mtime time.Time) error {
	return s.attrs("chtimes", name, func(n *memNode) {
		if !mtime.IsZero() {
			n.mtime = mtime
		}
	})
}

// memInfo describes a node, an upload or a partial as of one moment.
type memInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

// memLister hands out a directory's snapshot in chunks.
type memLister struct {
	name    string
	mu      sync.Mutex
	entries []fs.FileInfo // those not handed out yet
	closed  bool
}

func (l *memLister) Next(n int) ([]fs.FileInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, memErr("list", l.name, fs.ErrClosed)
	case n <= 0:
		return nil, memErr("list", l.name, fs.ErrInvalid)
	}
	k := min(n, len(l.entries))
	out := l.entries[:k:k]
	l.entries = l.entries[k:]
	if len(l.entries) == 0 {
		l.entries = nil
		return out, io.EOF
	}
	return out, nil
}

func (l *memLister) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed, l.entries = true, nil
	return nil
}

// memFile reads the bytes a file had when it was opened.
type memFile struct {
	name   string
	info   memInfo
	data   []byte // never written: see Memory
	closed atomic.Bool

	mu  sync.Mutex
	pos int64 // Read's offset, guarded by mu
}

func (f *memFile) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, memErr("read", f.name, fs.ErrClosed)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	return readAt(f.name, f.data, p, off, f.closed.Load())
}

// readAt is io.ReaderAt over data.
func readAt(name string, data, p []byte, off int64, closed bool) (int, error) {
	switch {
	case closed:
		return 0, memErr("read", name, fs.ErrClosed)
	case off < 0:
		return 0, memErr("read", name, syscall.EINVAL)
	case off >= int64(len(data)):
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return memErr("close", f.name, fs.ErrClosed)
	}
	return nil
}

// memUpload is one upload, filling a buffer of its own until Commit puts
// it under the name. Lock order: mu, then the tree's.
type memUpload struct {
	s    *memStore
	name string // client path
	path string // tree path
	excl bool

	mu      sync.Mutex
	data    []byte      // written in place: nobody else sees it until Commit
	mode    fs.FileMode // the file's mode at Commit
	mtime   time.Time   // set by Chtimes; zero: the time of Commit
	changed time.Time   // the last change, for Stat
	claimed bool        // began from the name's partial
	src     *memNode    // the file it began as a copy of, if any
	dirty   bool        // a write or truncate reached it
	done    bool        // committed or aborted
}

func (u *memUpload) closedErr(op string) error { return memErr(op, u.name, fs.ErrClosed) }

// WriteAt writes p at off, extending the upload with zeros up to off if
// it lies beyond the end. Writes may come concurrently and in any order.
func (u *memUpload) WriteAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, u.closedErr("write")
	}
	size := int64(len(u.data))
	switch {
	case off < 0:
		return 0, memErr("write", u.name, syscall.EINVAL)
	case off > size+memHoleMax:
		return 0, memErr("write", u.name, syscall.EFBIG)
	}
	if end := off + int64(len(p)); end > size {
		// Within the capacity a truncate left, stale bytes may lie past
		// the end: the hole up to off must read as zeros.
		u.data = slices.Grow(u.data, int(end-size))[:end]
		clear(u.data[size:max(size, off)])
	}
	copy(u.data[off:], p)
	u.dirty, u.changed = true, time.Now()
	return len(p), nil
}

func (u *memUpload) Stat() (fs.FileInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	mtime := u.changed
	if !u.mtime.IsZero() {
		mtime = u.mtime
	}
	return memInfo{name: path.Base(u.name), size: int64(len(u.data)), mode: u.mode, mtime: mtime}, nil
}

func (u *memUpload) ReadAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return readAt(u.name, u.data, p, off, u.done)
}

func (u *memUpload) Truncate(size int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return u.closedErr("truncate")
	}
	cur := int64(len(u.data))
	switch {
	case size < 0:
		return memErr("truncate", u.name, syscall.EINVAL)
	case size > cur+memHoleMax:
		return memErr("truncate", u.name, syscall.EFBIG)
	case size <= cur:
		u.data = u.data[:size]
	default:
		u.data = slices.Grow(u.data, int(size-cur))[:size]
		clear(u.data[cur:])
	}
	u.dirty, u.changed = true, time.Now()
	return nil
}

func (u *memUpload) Chmod(mode fs.FileMode) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return u.closedErr("chmod")
	}
	u.mode = mode.Perm()
	return nil
}

func (u *memUpload) Chtimes(_, mtime time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return u.closedErr("chtimes")
	}
	if !mtime.IsZero() {
		u.mtime = mtime
	}
	return nil
}

// Commit puts the upload under its name, replacing the file there, and
// drops the name's partial. An exclusive upload fails if a file appeared
// under the name since it began; an upload whose name has become a
// directory is kept as the partial, as a broken one is.
func (u *memUpload) Commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return u.closedErr("commit")
	}
	u.done = true
	data := u.data
	u.data = nil
	m := u.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(u.path)
	if err != nil {
		return memErr("commit", u.name, err) // its directory went, and the upload with it
	}
	now := time.Now()
	cur := dir.children[base]
	switch {
	case cur != nil && cur.dir:
		u.keep(dir, base, data, now)
		return memErr("commit", u.name, syscall.EISDIR)
	case u.excl && cur != nil:
		return memErr("commit", u.name, fs.ErrExist)
	case u.src != nil && cur == u.src && !u.dirty:
		// Opened to continue, nothing written: the file is already what
		// the client sees and keeps its time, unless set.
		cur.mode = u.mode
		if !u.mtime.IsZero() {
			cur.mtime = u.mtime
		}
		return nil
	}
	mtime := now
	if !u.mtime.IsZero() {
		mtime = u.mtime
	}
	dir.children[base] = &memNode{data: data[:len(data):len(data)], mode: u.mode, mtime: mtime}
	delete(dir.partials, base)
	dir.mtime = now
	return nil
}

// Abort ends the upload without touching the name. Unless detached, what
// it holds becomes the name's partial, replacing an older one, if it
// holds anything the client sent.
func (u *memUpload) Abort(cause error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return u.closedErr("abort")
	}
	u.done = true
	data := u.data
	u.data = nil
	if errors.Is(cause, ErrDetached) {
		return nil
	}
	m := u.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if dir, base, err := m.parent(u.path); err == nil {
		u.keep(dir, base, data, time.Now())
	} // else its directory went, and the partial with it
	return nil
}

// keep makes data the partial of base in dir, unless it holds nothing the
// client sent (an older partial then stays). The caller holds u.mu and the
// tree's lock.
func (u *memUpload) keep(dir *memNode, base string, data []byte, now time.Time) {
	if len(data) == 0 || (!u.claimed && !u.dirty) {
		return
	}
	mtime := now
	if !u.mtime.IsZero() {
		mtime = u.mtime
	}
	dir.partials[base] = &memNode{data: data, mode: u.mode, mtime: mtime}
}
