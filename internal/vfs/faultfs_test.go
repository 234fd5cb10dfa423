package vfs_test

import (
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/afero"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// faults is what a faultBackend makes fail. It changes while sessions run,
// as a disk fills up or is remounted read-only under a running daemon.
type faults struct {
	mu sync.Mutex
	// fail returns the errno an operation ("home", "open", "create",
	// "write", "read", "close", "readdir", "mkdir", "remove", "rename",
	// "chmod", "chtimes", "truncate", "stat") on a client path fails with,
	// or 0.
	fail func(op, name string) syscall.Errno
	// space, when not negative, is how many more bytes writes may add
	// before the store is full: the write that crosses it is cut short
	// with ENOSPC, as write(2) does on a full disk.
	space int64
}

func newFaults() *faults { return &faults{space: -1} }

func (f *faults) set(fail func(op, name string) syscall.Errno, space int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.space = fail, space
}

// check returns the error for op on name, shaped as vfs backends shape
// theirs: a *fs.PathError naming the client path.
func (f *faults) check(op, name string) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	if errno := fail(op, path.Clean("/"+name)); errno != 0 {
		return &fs.PathError{Op: op, Path: path.Clean("/" + name), Err: errno}
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

// faultBackend wraps a real backend, so that every fault surfaces through
// the same Audit and Restrict layers, session and front ends as in
// production.
type faultBackend struct {
	vfs.Backend
	f *faults
}

func (b faultBackend) Home(home string) (vfs.FS, error) {
	if err := b.f.check("home", home); err != nil {
		return nil, err
	}
	h, err := b.Backend.Home(home)
	if err != nil {
		return nil, err
	}
	return &faultFS{FS: h, f: b.f}, nil
}

type faultFS struct {
	vfs.FS
	f *faults
}

func (x *faultFS) Open(name string) (afero.File, error) {
	return x.OpenFile(name, os.O_RDONLY, 0)
}

func (x *faultFS) Create(name string) (afero.File, error) {
	return x.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
}

func (x *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	op := "open"
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		op = "create"
	}
	if err := x.f.check(op, name); err != nil {
		return nil, err
	}
	file, err := x.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, f: x.f}, nil
}

func (x *faultFS) Mkdir(name string, perm fs.FileMode) error {
	if err := x.f.check("mkdir", name); err != nil {
		return err
	}
	return x.FS.Mkdir(name, perm)
}

func (x *faultFS) MkdirAll(name string, perm fs.FileMode) error {
	if err := x.f.check("mkdir", name); err != nil {
		return err
	}
	return x.FS.MkdirAll(name, perm)
}

func (x *faultFS) Remove(name string) error {
	if err := x.f.check("remove", name); err != nil {
		return err
	}
	return x.FS.Remove(name)
}

func (x *faultFS) RemoveAll(name string) error {
	if err := x.f.check("remove", name); err != nil {
		return err
	}
	return x.FS.RemoveAll(name)
}

func (x *faultFS) Rename(oldname, newname string) error {
	if err := x.f.check("rename", oldname); err != nil {
		return err
	}
	return x.FS.Rename(oldname, newname)
}

func (x *faultFS) Stat(name string) (fs.FileInfo, error) {
	if err := x.f.check("stat", name); err != nil {
		return nil, err
	}
	return x.FS.Stat(name)
}

func (x *faultFS) LstatIfPossible(name string) (fs.FileInfo, bool, error) {
	if err := x.f.check("stat", name); err != nil {
		return nil, false, err
	}
	return x.FS.LstatIfPossible(name)
}

func (x *faultFS) Chmod(name string, mode fs.FileMode) error {
	if err := x.f.check("chmod", name); err != nil {
		return err
	}
	return x.FS.Chmod(name, mode)
}

func (x *faultFS) Chtimes(name string, atime, mtime time.Time) error {
	if err := x.f.check("chtimes", name); err != nil {
		return err
	}
	return x.FS.Chtimes(name, atime, mtime)
}

func (x *faultFS) Truncate(name string, size int64) error {
	if err := x.f.check("truncate", name); err != nil {
		return err
	}
	return x.FS.Truncate(name, size)
}

// faultFile fails reads, writes, listings and close of an open file.
type faultFile struct {
	afero.File
	f *faults
}

func (x *faultFile) write(p []byte, write func([]byte) (int, error)) (int, error) {
	if err := x.f.check("write", x.Name()); err != nil {
		return 0, err
	}
	n := x.f.take(len(p))
	m, err := write(p[:n])
	if err == nil && m < len(p) {
		err = &fs.PathError{Op: "write", Path: x.Name(), Err: syscall.ENOSPC}
	}
	return m, err
}

func (x *faultFile) Write(p []byte) (int, error) { return x.write(p, x.File.Write) }

func (x *faultFile) WriteAt(p []byte, off int64) (int, error) {
	return x.write(p, func(b []byte) (int, error) { return x.File.WriteAt(b, off) })
}

func (x *faultFile) WriteString(s string) (int, error) { return x.Write([]byte(s)) }

func (x *faultFile) Read(p []byte) (int, error) {
	if err := x.f.check("read", x.Name()); err != nil {
		return 0, err
	}
	return x.File.Read(p)
}

func (x *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := x.f.check("read", x.Name()); err != nil {
		return 0, err
	}
	return x.File.ReadAt(p, off)
}

func (x *faultFile) Readdir(n int) ([]fs.FileInfo, error) {
	if err := x.f.check("readdir", x.Name()); err != nil {
		return nil, err
	}
	return x.File.Readdir(n)
}

func (x *faultFile) Close() error {
	err := x.File.Close()
	if ferr := x.f.check("close", x.Name()); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

var _ io.WriterAt = (*faultFile)(nil)
