package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/afero"
)

// Memory keeps every home in one process-wide in-memory tree (for demos and
// tests). It has no symlinks, so confinement by clean path joins is exact.
type Memory struct {
	fs afero.Fs
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory { return &Memory{fs: afero.NewMemMapFs()} }

// Home returns the subtree at home, creating it if missing.
func (m *Memory) Home(home string) (FS, error) {
	base := clientPath(home)
	if err := m.fs.MkdirAll(base, dirMode); err != nil {
		return nil, pathErr("mkdir", home, err)
	}
	return &memFS{fs: m.fs, base: base}, nil
}

// Close is a no-op: the tree lives as long as the process.
func (m *Memory) Close() error { return nil }

type memFS struct {
	fs   afero.Fs
	base string
}

var _ FS = (*memFS)(nil)

// abs maps a client path into the shared tree.
func (m *memFS) abs(name string) string { return path.Join(m.base, rel(name)) }

func (m *memFS) Name() string { return "memory" }
func (m *memFS) Close() error { return nil }

func (m *memFS) Create(name string) (afero.File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (m *memFS) Open(name string) (afero.File, error) {
	return m.OpenFile(name, os.O_RDONLY, 0)
}

func (m *memFS) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	f, err := m.fs.OpenFile(m.abs(name), flag, perm&fs.ModePerm)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return wrapFile(&lockedFile{File: f}, name), nil
}

func (m *memFS) Mkdir(name string, perm fs.FileMode) error {
	return pathErr("mkdir", name, m.fs.Mkdir(m.abs(name), perm&fs.ModePerm))
}

func (m *memFS) MkdirAll(name string, perm fs.FileMode) error {
	return pathErr("mkdir", name, m.fs.MkdirAll(m.abs(name), perm&fs.ModePerm))
}

func (m *memFS) Remove(name string) error {
	if rel(name) == "." {
		return denied("remove", name)
	}
	// MemMapFs removes a directory with its contents; remove(2) does not.
	if fi, err := m.fs.Stat(m.abs(name)); err == nil && fi.IsDir() {
		if names, err := afero.ReadDir(m.fs, m.abs(name)); err == nil && len(names) > 0 {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	return pathErr("remove", name, m.fs.Remove(m.abs(name)))
}

func (m *memFS) RemoveAll(name string) error {
	if rel(name) == "." {
		return denied("remove", name)
	}
	return pathErr("remove", name, m.fs.RemoveAll(m.abs(name)))
}

func (m *memFS) Rename(oldname, newname string) error {
	if rel(oldname) == "." || rel(newname) == "." {
		return denied("rename", oldname)
	}
	return pathErr("rename", oldname, m.fs.Rename(m.abs(oldname), m.abs(newname)))
}

func (m *memFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := m.fs.Stat(m.abs(name))
	return fi, pathErr("stat", name, err)
}

func (m *memFS) LstatIfPossible(name string) (fs.FileInfo, bool, error) {
	fi, err := m.Stat(name)
	return fi, false, err
}

func (m *memFS) Chmod(name string, mode fs.FileMode) error {
	return pathErr("chmod", name, m.fs.Chmod(m.abs(name), mode&fs.ModePerm))
}

func (m *memFS) Chown(name string, _, _ int) error { return denied("chown", name) }

func (m *memFS) Chtimes(name string, atime, mtime time.Time) error {
	return pathErr("chtimes", name, m.fs.Chtimes(m.abs(name), atime, mtime))
}

func (m *memFS) Truncate(name string, size int64) error {
	return truncate(m, name, size)
}

func (m *memFS) StatFS() (*FSStats, error) {
	return nil, pathErr("statvfs", "/", errors.ErrUnsupported)
}

// lockedFile serialises access to an afero mem.File, whose ReadAt and
// WriteAt move one shared offset: pkg/sftp calls them from several
// goroutines on the same handle, which would otherwise mix up the data.
type lockedFile struct {
	mu sync.Mutex
	afero.File
}

func (f *lockedFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.Read(p)
}

func (f *lockedFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.ReadAt(p, off)
}

func (f *lockedFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.Write(p)
}

func (f *lockedFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *lockedFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *lockedFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.Seek(offset, whence)
}

func (f *lockedFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.Truncate(size)
}
