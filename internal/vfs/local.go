package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// LocalOptions are the local backend's upload settings.
type LocalOptions struct {
	// Atomic (uploads.atomic) writes each upload to a temporary file beside
	// its name and renames it over the name at Commit, so that the name
	// only ever shows complete files; a broken upload is kept as the name's
	// partial for a resume. Off, an upload writes the file in place, as a
	// plain server does.
	Atomic bool
	// Fsync (uploads.fsync) flushes an upload and the directory entry that
	// names it before Commit returns (the client's reply and the upload
	// event come after it), and a kept partial before Abort returns.
	Fsync bool
	// PartialTTL (uploads.partial_ttl) is how long a partial waits for its
	// resume: Recover removes older ones. 0: they never expire.
	PartialTTL time.Duration
}

// localCopyMax is the largest existing file an atomic upload copies to
// continue it (an append, a resume onto a file a plain server left, a
// rewrite in place). Beyond it the file is written in place: a copy would
// cost seconds of I/O and as much space again on every append, and such a
// file was already complete and visible under its name.
const localCopyMax = 256 << 20

// Local stores homes as directories beneath one host directory. Every path
// is resolved by os.Root, so neither "..", an absolute path nor a symlink
// already on disk can reach outside the root.
type Local struct {
	root *os.Root
	opts LocalOptions
	// copyMax is localCopyMax; tests lower it.
	copyMax int64
	// trace, nil but in tests, is called before each flush, rename and
	// link an upload makes, with the store-relative path(s) it concerns as
	// a client path; an error it returns is that operation's. Tests use it
	// to see the order in which an upload becomes durable and to make a
	// flush fail.
	trace func(op, name string) error

	mu sync.Mutex
	// homes holds each open home's os.Root, shared by all of its sessions:
	// one descriptor per home rather than per session, which is what
	// decides how many sessions fit under the process's descriptor limit.
	homes map[string]*sharedRoot
}

var _ Backend = (*Local)(nil)

type sharedRoot struct {
	*os.Root
	refs int
}

// NewLocal opens (and creates, if missing) the storage root dir.
func NewLocal(dir string, o LocalOptions) (*Local, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create storage root: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage root: %w", err)
	}
	return &Local{root: r, opts: o, copyMax: localCopyMax, homes: map[string]*sharedRoot{}}, nil
}

// Home opens home as its own os.Root, creating it first if needed.
func (l *Local) Home(home string) (Store, error) {
	name := rel(home)
	if name != "." {
		if err := l.root.MkdirAll(name, dirMode); err != nil {
			return nil, pathErr("mkdir", home, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sr := l.homes[name]
	if sr != nil && !sameDir(sr.Root, l.root, name) {
		// The home was moved or replaced on disk since it was opened:
		// sessions already in it keep the old one, new ones get this.
		delete(l.homes, name)
		sr = nil
	}
	if sr == nil {
		r, err := l.root.OpenRoot(name)
		if err != nil {
			return nil, pathErr("open", home, err)
		}
		sr = &sharedRoot{Root: r}
		l.homes[name] = sr
	}
	sr.refs++
	return &localStore{root: sr.Root, opts: l.opts, copyMax: l.copyMax, trace: l.trace,
		release: func() error { return l.release(name, sr) }}, nil
}

// sameDir reports whether r is still the directory at name beneath parent.
func sameDir(r, parent *os.Root, name string) bool {
	a, err := r.Stat(".")
	if err != nil {
		return false
	}
	b, err := parent.Stat(name)
	return err == nil && os.SameFile(a, b)
}

// release drops one session's hold on a home, closing its os.Root with
// the last.
func (l *Local) release(name string, sr *sharedRoot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sr.refs--; sr.refs > 0 {
		return nil
	}
	if l.homes[name] == sr {
		delete(l.homes, name)
	}
	return sr.Close()
}

// Close closes the storage root; homes already open keep their own.
func (l *Local) Close() error { return l.root.Close() }

// localStore is one home on disk.
type localStore struct {
	root    *os.Root
	opts    LocalOptions
	copyMax int64
	trace   func(op, name string) error
	release func() error

	closeOnce sync.Once
	closeErr  error
}

var (
	_ Store     = (*localStore)(nil)
	_ Renamer   = (*localStore)(nil)
	_ Truncater = (*localStore)(nil)
	_ Chmoder   = (*localStore)(nil)
	_ Chtimeser = (*localStore)(nil)
	_ StatFSer  = (*localStore)(nil)
	_ Resumer   = (*localStore)(nil)
	_ Lstater   = (*localStore)(nil)
)

// localErr rebuilds an error of os.Root or of an *os.File so that it names
// the client's path and keeps its cause: a file opened in a root reports
// the host path, and the root its own relative one, which may be a
// temporary name.
func localErr(op, name string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	var le *os.LinkError
	var se *os.SyscallError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	case errors.As(err, &se):
		err = se.Err
	}
	return &fs.PathError{Op: op, Path: clientPath(name), Err: err}
}

// Close releases the home; a second Close does nothing.
func (s *localStore) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.release() })
	return s.closeErr
}

func (s *localStore) Stat(name string) (fs.FileInfo, error) {
	fi, err := s.root.Stat(rel(name))
	if err != nil {
		return nil, localErr("stat", name, err)
	}
	return fi, nil
}

func (s *localStore) Lstat(name string) (fs.FileInfo, error) {
	fi, err := s.root.Lstat(rel(name))
	if err != nil {
		return nil, localErr("lstat", name, err)
	}
	return fi, nil
}

// openFlags are added to every open of a file: O_NONBLOCK keeps a FIFO
// planted on disk from blocking the open (a read-only one waits for a
// writer otherwise), and O_NOCTTY a terminal device from becoming the
// daemon's. Neither changes anything for a regular file.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY

// openRegular opens the store-relative path p with flag, refusing anything
// but a regular file once open; errors name the client's name.
func (s *localStore) openRegular(p, name string, flag int) (*os.File, error) {
	f, err := s.root.OpenFile(p, flag|openFlags, fileMode)
	if err != nil {
		return nil, localErr("open", name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = syscall.EINVAL // a FIFO, a socket or a device: not a file to transfer
		if fi.IsDir() {
			err = syscall.EISDIR
		}
	}
	if err != nil {
		f.Close()
		return nil, localErr("open", name, err)
	}
	return f, nil
}

// Open opens the regular file name for reading from off.
func (s *localStore) Open(name string, off int64) (File, error) {
	f, err := s.openRegular(rel(name), name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	if off != 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, localErr("seek", name, err)
		}
	}
	return &localFile{f: f, name: clientPath(name)}, nil
}

// localFile is a file open for reading; its errors name the client's path.
type localFile struct {
	f    *os.File
	name string
}

func (f *localFile) Read(p []byte) (int, error) {
	n, err := f.f.Read(p)
	return n, localErr("read", f.name, err)
}

func (f *localFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	return n, localErr("read", f.name, err)
}

func (f *localFile) Close() error { return localErr("close", f.name, f.f.Close()) }

func (f *localFile) Stat() (fs.FileInfo, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return nil, localErr("stat", f.name, err)
	}
	return namedInfo{fi, path.Base(f.name)}, nil
}

// List streams the directory name.
func (s *localStore) List(name string) (Lister, error) {
	d, err := s.openDir(rel(name))
	if err != nil {
		return nil, localErr("open", name, err)
	}
	return &localLister{d: d, name: clientPath(name)}, nil
}

func (s *localStore) openDir(p string) (*os.File, error) {
	return s.root.OpenFile(p, os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

// localLister reads a directory n entries at a time (each File.Readdir
// call one or more getdents(2)), so that a huge directory is never held
// whole.
type localLister struct {
	d    *os.File
	name string
}

func (l *localLister) Next(n int) ([]fs.FileInfo, error) {
	// Readdir reads the whole directory for n <= 0, which Next must not.
	fis, err := l.d.Readdir(max(n, 1))
	return fis, localErr("readdir", l.name, err)
}

func (l *localLister) Close() error { return localErr("close", l.name, l.d.Close()) }

// Mkdir makes the directory name with dirMode.
func (s *localStore) Mkdir(name string) error {
	return localErr("mkdir", name, s.root.Mkdir(rel(name), dirMode))
}

// Remove removes the file (or symlink) name and its partial, and succeeds
// if either existed.
func (s *localStore) Remove(name string) error {
	p := rel(name)
	if p == "." {
		return denied("remove", name)
	}
	fi, err := s.root.Lstat(p)
	if err == nil && fi.IsDir() {
		return &fs.PathError{Op: "remove", Path: clientPath(name), Err: syscall.EISDIR}
	}
	if err == nil {
		err = s.root.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return localErr("remove", name, err)
	}
	found := err == nil
	if s.root.Remove(rel(partialOf(name))) == nil {
		found = true
	}
	if found {
		return nil
	}
	return localErr("remove", name, err)
}

// Rmdir removes the directory name. One that holds nothing but partials
// loses them first; an upload in progress there (a temporary file) keeps
// it, as its growing file would on a plain server.
func (s *localStore) Rmdir(name string) error {
	p := rel(name)
	if p == "." {
		return denied("rmdir", name)
	}
	fi, err := s.root.Lstat(p)
	if err != nil {
		return localErr("rmdir", name, err)
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "rmdir", Path: clientPath(name), Err: syscall.ENOTDIR}
	}
	err = s.root.Remove(p)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		if s.dropPartials(p) {
			err = s.root.Remove(p)
		}
	}
	return localErr("rmdir", name, err)
}

// listChunk is how many names a scan of a directory reads at a time.
const listChunk = 256

// dropPartials removes the partials of the directory dir (store-relative)
// if it holds nothing else, and reports whether it did. It reads the
// directory twice, a chunk at a time, rather than hold every name: once
// to see that only partials are there, once to remove them.
func (s *localStore) dropPartials(dir string) bool {
	only := true
	err := s.eachName(dir, func(base string) bool {
		only = strings.HasPrefix(base, partialPrefix)
		return only
	})
	if err != nil || !only {
		return false
	}
	err = s.eachName(dir, func(base string) bool {
		return s.root.Remove(path.Join(dir, base)) == nil
	})
	return err == nil
}

// eachName calls fn with each name in dir until it returns false.
func (s *localStore) eachName(dir string, fn func(base string) bool) error {
	d, err := s.openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(listChunk)
		for _, n := range names {
			if !fn(n) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Rename renames oldname to newname, replacing a file there and dropping
// newname's partial, which described another upload.
func (s *localStore) Rename(oldname, newname string) error {
	o, n := rel(oldname), rel(newname)
	if o == "." || n == "." {
		return denied("rename", oldname)
	}
	if err := s.root.Rename(o, n); err != nil {
		return localErr("rename", oldname, err)
	}
	if o != n {
		_ = s.root.Remove(rel(partialOf(newname)))
	}
	return nil
}

// partial returns the store-relative path and FileInfo of name's partial,
// if it has one and name is not something other than a regular file (a
// directory made since the partial was left keeps its own attributes).
func (s *localStore) partial(name string) (string, fs.FileInfo, bool) {
	p := rel(name)
	if p == "." {
		return "", nil, false
	}
	pp := rel(partialOf(name))
	fi, err := s.root.Lstat(pp)
	if err != nil || !fi.Mode().IsRegular() {
		return "", nil, false
	}
	if nfi, err := s.root.Lstat(p); err == nil && !nfi.Mode().IsRegular() {
		return "", nil, false
	}
	return pp, fi, true
}

// Partial describes name's partial under the name.
func (s *localStore) Partial(name string) (fs.FileInfo, error) {
	if _, fi, ok := s.partial(name); ok {
		return namedInfo{fi, path.Base(clientPath(name))}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: clientPath(name), Err: fs.ErrNotExist}
}

// Truncate sets the size of name's partial if it has one, else of the
// file.
func (s *localStore) Truncate(name string, size int64) error {
	p := rel(name)
	if pp, _, ok := s.partial(name); ok {
		p = pp
	}
	f, err := s.openRegular(p, name, os.O_WRONLY)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return localErr("truncate", name, err)
}

// Chmod sets the permission bits of name and of its partial: a client
// never sets setuid, setgid or sticky.
func (s *localStore) Chmod(name string, mode fs.FileMode) error {
	return s.attrs("chmod", name, func(p string) error { return s.root.Chmod(p, mode&fs.ModePerm) })
}

// Chtimes sets the times of name and of its partial.
func (s *localStore) Chtimes(name string, atime, mtime time.Time) error {
	return s.attrs("chtimes", name, func(p string) error { return s.root.Chtimes(p, atime, mtime) })
}

// attrs applies set to name's partial, if it has one, and to name, and
// succeeds if either existed.
func (s *localStore) attrs(op, name string, set func(p string) error) error {
	done := false
	if pp, _, ok := s.partial(name); ok && set(pp) == nil {
		done = true
	}
	err := set(rel(name))
	if done && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return localErr(op, name, err)
}

// StatFS reports the file system that holds the home.
func (s *localStore) StatFS() (*FSStats, error) {
	d, err := s.openDir(".")
	if err != nil {
		return nil, localErr("statvfs", "/", err)
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return nil, localErr("statvfs", "/", err)
	}
	var st syscall.Statfs_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return nil, localErr("statvfs", "/", err)
	}
	if serr != nil {
		return nil, localErr("statvfs", "/", serr)
	}
	return &FSStats{
		BlockSize:   uint64(st.Bsize),
		Blocks:      st.Blocks,
		BlocksFree:  st.Bfree,
		BlocksAvail: st.Bavail,
		Files:       st.Files,
		FilesFree:   st.Ffree,
		NameMax:     uint64(st.Namelen),
	}, nil
}

// The durable steps of an upload, through trace when a test set it.

func (s *localStore) traced(op, name string) error {
	if s.trace == nil {
		return nil
	}
	return s.trace(op, name)
}

// syncFile flushes f, the file at the store-relative path p.
func (s *localStore) syncFile(f *os.File, p string) error {
	if err := s.traced("sync", "/"+p); err != nil {
		return err
	}
	return f.Sync()
}

// rename renames the store-relative path o to n.
func (s *localStore) rename(o, n string) error {
	if err := s.traced("rename", "/"+o+" /"+n); err != nil {
		return err
	}
	return s.root.Rename(o, n)
}

// link makes the store-relative path n a new name of o; it fails with
// EEXIST when n exists.
func (s *localStore) link(o, n string) error {
	if err := s.traced("link", "/"+o+" /"+n); err != nil {
		return err
	}
	return s.root.Link(o, n)
}

// syncDir flushes, with Fsync on, the directory that holds name (a client
// path), so that a rename into it survives a power loss. A directory
// removed meanwhile has no entry left to make durable: that is no error,
// as close(2) on a POSIX server is none.
func (s *localStore) syncDir(name string) error {
	if !s.opts.Fsync {
		return nil
	}
	dir := path.Dir(clientPath(name))
	d, err := s.openDir(rel(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if err := s.traced("sync", dir); err != nil {
		return err
	}
	return d.Sync()
}

// utimeOmit is UTIME_OMIT: utimensat(2) leaves that time as it is.
const utimeOmit = 1<<30 - 2

// futimens sets the times of the open file f, as os.Chtimes does for a
// name (a zero time is left unchanged). It goes by descriptor: an open
// upload's attributes reach the file it writes, whatever its name has
// become since.
func futimens(f *os.File, atime, mtime time.Time) error {
	ts := [2]syscall.Timespec{{Nsec: utimeOmit}, {Nsec: utimeOmit}}
	for i, t := range []time.Time{atime, mtime} {
		if !t.IsZero() {
			ts[i] = syscall.NsecToTimespec(t.UnixNano())
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		// A NULL path makes utimensat act on fd itself (futimens(3)).
		_, _, errno = syscall.Syscall6(syscall.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
