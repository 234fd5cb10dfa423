package vfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sync"
	"syscall"
	"time"
)

// faults is what a faultStore makes fail. It changes while a session runs,
// as a disk fills up or is remounted read-only under a running daemon.
type faults struct {
	mu sync.Mutex
	// fail returns the errno a call ("stat", "lstat", "list", "next",
	// "open", "read", "create", "write", "commit", "abort", "remove",
	// "mkdir", "rmdir", "rename", "truncate", "chmod", "chtimes",
	// "partial", "statfs", "close") on a client path fails with, or 0.
	fail func(op, name string) syscall.Errno
	// space, when not negative, is how many more bytes writes may add
	// before the store is full: the write that crosses it is cut short
	// with ENOSPC, as write(2) does on a full disk.
	space int64
	// host is the directory the errors pretend the store lives in, as a
	// store's raw errors name it: FS must never pass it on.
	host string
}

func newFaults(host string) *faults { return &faults{space: -1, host: host} }

func (f *faults) set(fail func(op, name string) syscall.Errno, space int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.space = fail, space
}

// check returns the error for op on name, shaped as a store's raw errors
// are: a *fs.PathError naming the host path.
func (f *faults) check(op, name string) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	if errno := fail(op, clientPath(name)); errno != 0 {
		return &fs.PathError{Op: op, Path: path.Join(f.host, name), Err: errno}
	}
	return nil
}

// take reserves up to n bytes of space and returns how many it got.
func (f *faults) take(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.space < 0 {
		return n
	}
	got := int(min(int64(n), f.space))
	f.space -= int64(got)
	return got
}

// errnoOn fails the listed calls with errno.
func errnoOn(errno syscall.Errno, ops ...string) func(op, name string) syscall.Errno {
	return func(op, _ string) syscall.Errno {
		for _, o := range ops {
			if o == op {
				return errno
			}
		}
		return 0
	}
}

// faultStore wraps a real store so that chosen calls fail. It has every
// optional capability; those the store beneath lacks answer
// errors.ErrUnsupported.
type faultStore struct {
	Store
	f *faults
}

var (
	_ Renamer   = faultStore{}
	_ Truncater = faultStore{}
	_ Chmoder   = faultStore{}
	_ Chtimeser = faultStore{}
	_ StatFSer  = faultStore{}
	_ Resumer   = faultStore{}
	_ Lstater   = faultStore{}

	_ UploadReader    = faultUpload{}
	_ UploadTruncater = faultUpload{}
	_ UploadAttrs     = faultUpload{}
)

func (s faultStore) Stat(name string) (fs.FileInfo, error) {
	if err := s.f.check("stat", name); err != nil {
		return nil, err
	}
	return s.Store.Stat(name)
}

func (s faultStore) Lstat(name string) (fs.FileInfo, error) {
	if err := s.f.check("lstat", name); err != nil {
		return nil, err
	}
	if l, ok := s.Store.(Lstater); ok {
		return l.Lstat(name)
	}
	return s.Store.Stat(name)
}

func (s faultStore) List(name string) (Lister, error) {
	if err := s.f.check("list", name); err != nil {
		return nil, err
	}
	l, err := s.Store.List(name)
	if err != nil {
		return nil, err
	}
	return faultLister{Lister: l, f: s.f, name: name}, nil
}

func (s faultStore) Open(name string, off int64) (File, error) {
	if err := s.f.check("open", name); err != nil {
		return nil, err
	}
	file, err := s.Store.Open(name, off)
	if err != nil {
		return nil, err
	}
	return faultFile{File: file, f: s.f, name: name}, nil
}

func (s faultStore) Create(name string, o CreateOptions) (Upload, error) {
	if err := s.f.check("create", name); err != nil {
		return nil, err
	}
	up, err := s.Store.Create(name, o)
	if err != nil {
		return nil, err
	}
	return faultUpload{Upload: up, f: s.f, name: name}, nil
}

func (s faultStore) Remove(name string) error {
	if err := s.f.check("remove", name); err != nil {
		return err
	}
	return s.Store.Remove(name)
}

func (s faultStore) Mkdir(name string) error {
	if err := s.f.check("mkdir", name); err != nil {
		return err
	}
	return s.Store.Mkdir(name)
}

func (s faultStore) Rmdir(name string) error {
	if err := s.f.check("rmdir", name); err != nil {
		return err
	}
	return s.Store.Rmdir(name)
}

func (s faultStore) Close() error {
	if err := s.f.check("close", "/"); err != nil {
		s.Store.Close()
		return err
	}
	return s.Store.Close()
}

func (s faultStore) Rename(oldname, newname string) error {
	if err := s.f.check("rename", oldname); err != nil {
		return err
	}
	if r, ok := s.Store.(Renamer); ok {
		return r.Rename(oldname, newname)
	}
	return errors.ErrUnsupported
}

func (s faultStore) Truncate(name string, size int64) error {
	if err := s.f.check("truncate", name); err != nil {
		return err
	}
	if t, ok := s.Store.(Truncater); ok {
		return t.Truncate(name, size)
	}
	return errors.ErrUnsupported
}

func (s faultStore) Chmod(name string, mode fs.FileMode) error {
	if err := s.f.check("chmod", name); err != nil {
		return err
	}
	if c, ok := s.Store.(Chmoder); ok {
		return c.Chmod(name, mode)
	}
	return errors.ErrUnsupported
}

func (s faultStore) Chtimes(name string, atime, mtime time.Time) error {
	if err := s.f.check("chtimes", name); err != nil {
		return err
	}
	if c, ok := s.Store.(Chtimeser); ok {
		return c.Chtimes(name, atime, mtime)
	}
	return errors.ErrUnsupported
}

func (s faultStore) StatFS() (*FSStats, error) {
	if err := s.f.check("statfs", "/"); err != nil {
		return nil, err
	}
	if st, ok := s.Store.(StatFSer); ok {
		return st.StatFS()
	}
	return nil, errors.ErrUnsupported
}

func (s faultStore) Partial(name string) (fs.FileInfo, error) {
	if err := s.f.check("partial", name); err != nil {
		return nil, err
	}
	if r, ok := s.Store.(Resumer); ok {
		return r.Partial(name)
	}
	return nil, fs.ErrNotExist
}

type faultLister struct {
	Lister
	f    *faults
	name string
}

func (l faultLister) Next(n int) ([]fs.FileInfo, error) {
	if err := l.f.check("next", l.name); err != nil {
		return nil, err
	}
	return l.Lister.Next(n)
}

type faultFile struct {
	File
	f    *faults
	name string
}

func (x faultFile) Read(p []byte) (int, error) {
	if err := x.f.check("read", x.name); err != nil {
		return 0, err
	}
	return x.File.Read(p)
}

func (x faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := x.f.check("read", x.name); err != nil {
		return 0, err
	}
	return x.File.ReadAt(p, off)
}

type faultUpload struct {
	Upload
	f    *faults
	name string
}

func (u faultUpload) WriteAt(p []byte, off int64) (int, error) {
	if err := u.f.check("write", u.name); err != nil {
		return 0, err
	}
	n := u.f.take(len(p))
	m, err := u.Upload.WriteAt(p[:n], off)
	if err == nil && m < len(p) {
		err = &fs.PathError{Op: "write", Path: path.Join(u.f.host, u.name), Err: syscall.ENOSPC}
	}
	return m, err
}

func (u faultUpload) Commit() error {
	if err := u.f.check("commit", u.name); err != nil {
		// A commit that fails leaves what arrived, as a broken upload.
		u.Upload.Abort(err)
		return err
	}
	return u.Upload.Commit()
}

func (u faultUpload) Abort(cause error) error {
	if err := u.f.check("abort", u.name); err != nil {
		u.Upload.Abort(cause)
		return err
	}
	return u.Upload.Abort(cause)
}

func (u faultUpload) ReadAt(p []byte, off int64) (int, error) {
	if err := u.f.check("read", u.name); err != nil {
		return 0, err
	}
	if r, ok := u.Upload.(UploadReader); ok {
		return r.ReadAt(p, off)
	}
	return 0, errors.ErrUnsupported
}

func (u faultUpload) Truncate(size int64) error {
	if err := u.f.check("truncate", u.name); err != nil {
		return err
	}
	if t, ok := u.Upload.(UploadTruncater); ok {
		return t.Truncate(size)
	}
	return errors.ErrUnsupported
}

func (u faultUpload) Chmod(mode fs.FileMode) error {
	if err := u.f.check("chmod", u.name); err != nil {
		return err
	}
	if a, ok := u.Upload.(UploadAttrs); ok {
		return a.Chmod(mode)
	}
	return errors.ErrUnsupported
}

func (u faultUpload) Chtimes(atime, mtime time.Time) error {
	if err := u.f.check("chtimes", u.name); err != nil {
		return err
	}
	if a, ok := u.Upload.(UploadAttrs); ok {
		return a.Chtimes(atime, mtime)
	}
	return errors.ErrUnsupported
}

var _ io.WriterAt = faultUpload{}
