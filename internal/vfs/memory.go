package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
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

// Limits of Linux (NAME_MAX, PATH_MAX) that the local backend gets from the
// kernel.
const (
	maxNameLen = 255
	maxPathLen = 4096
)

// checkName refuses, before a file or directory is created, the names a
// disk would refuse: a NUL byte, a component longer than NAME_MAX, a path
// longer than PATH_MAX. MemMapFs takes any string, and a name a client
// cannot use anywhere else would sit in listings and logs.
func checkName(op, name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return pathErr(op, name, syscall.EINVAL)
	}
	if len(name) > maxPathLen {
		return pathErr(op, name, syscall.ENAMETOOLONG)
	}
	for c := range strings.SplitSeq(name, "/") {
		if len(c) > maxNameLen {
			return pathErr(op, name, syscall.ENAMETOOLONG)
		}
	}
	return nil
}

// checkParent refuses to create name unless its parent is an existing
// directory, as a disk does: MemMapFs would create missing parents on its
// own (a directory made without the mkdir permission) and turn a file that
// is named as a parent into a directory.
func (m *memFS) checkParent(op, name string) error {
	fi, err := m.fs.Stat(m.abs(path.Dir(clientPath(name))))
	if err != nil {
		return pathErr(op, name, err)
	}
	if !fi.IsDir() {
		return pathErr(op, name, syscall.ENOTDIR)
	}
	return nil
}

func (m *memFS) Name() string { return "memory" }
func (m *memFS) Close() error { return nil }

func (m *memFS) Create(name string) (afero.File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (m *memFS) Open(name string) (afero.File, error) {
	return m.OpenFile(name, os.O_RDONLY, 0)
}

func (m *memFS) OpenFile(name string, flag int, _ fs.FileMode) (afero.File, error) {
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		if err := m.checkParent("open", name); err != nil {
			return nil, err
		}
	}
	f, err := m.fs.OpenFile(m.abs(name), flag, fileMode) // see fileMode
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return wrapFile(&lockedFile{File: f}, name), nil
}

func (m *memFS) Mkdir(name string, _ fs.FileMode) error {
	if err := checkName("mkdir", name); err != nil {
		return err
	}
	if err := m.checkParent("mkdir", name); err != nil {
		return err
	}
	return pathErr("mkdir", name, m.fs.Mkdir(m.abs(name), dirMode))
}

func (m *memFS) MkdirAll(name string, _ fs.FileMode) error {
	if err := checkName("mkdir", name); err != nil {
		return err
	}
	// Missing parents are created, but none may be a file.
	for p := clientPath(name); p != "/"; p = path.Dir(p) {
		if fi, err := m.fs.Stat(m.abs(p)); err == nil && !fi.IsDir() {
			return pathErr("mkdir", name, syscall.ENOTDIR)
		}
	}
	return pathErr("mkdir", name, m.fs.MkdirAll(m.abs(name), dirMode))
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
	if err := checkName("rename", newname); err != nil {
		return err
	}
	if err := m.checkParent("rename", newname); err != nil {
		return err
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

// maxMemHole bounds how far past its end one write (or truncate) may extend
// a memory file. afero's mem.File fills such a hole with zeros it allocates
// at once, so a single SFTP WRITE at offset 2^40, or an FTP REST of 10 GB
// before STOR, would otherwise exhaust the daemon's memory; a real client
// writes at most a few outstanding chunks ahead.
const maxMemHole = 64 << 20

// lockedFile serialises access to an afero mem.File, whose ReadAt and
// WriteAt move one shared offset: pkg/sftp calls them from several
// goroutines on the same handle, which would otherwise mix up the data.
// It also refuses the offsets mem.File does not check: a negative one
// (an SFTP offset of 2^63 or more, converted to int64) makes it index its
// data out of range, and a panic in pkg/sftp's worker ends the process.
type lockedFile struct {
	mu sync.Mutex
	afero.File
}

// size is the file's length; the caller holds f.mu.
func (f *lockedFile) size() (int64, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// checkWrite refuses a write of n bytes at off; the caller holds f.mu.
func (f *lockedFile) checkWrite(off int64, n int) error {
	if off < 0 {
		return syscall.EINVAL
	}
	size, err := f.size()
	if err != nil {
		return err
	}
	if off > size+maxMemHole || off > math.MaxInt64-int64(n) {
		return syscall.EFBIG
	}
	return nil
}

func (f *lockedFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.File.Read(p)
}

func (f *lockedFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 {
		return 0, syscall.EINVAL
	}
	// mem.File answers io.ErrUnexpectedEOF past the end; io.ReaderAt
	// (and SFTP, which turns it into SSH_FX_EOF) wants io.EOF.
	if size, err := f.size(); err != nil {
		return 0, err
	} else if off >= size && len(p) > 0 {
		return 0, io.EOF
	}
	return f.File.ReadAt(p, off)
}

func (f *lockedFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	off, err := f.File.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if err := f.checkWrite(off, len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *lockedFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkWrite(off, len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *lockedFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

// Seek refuses a position before the start, as lseek(2) does; one past the
// end is allowed, and the next write is checked.
func (f *lockedFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		cur, err := f.File.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, err
		}
		base = cur
	case io.SeekEnd:
		size, err := f.size()
		if err != nil {
			return 0, err
		}
		base = size
	default:
		return 0, syscall.EINVAL
	}
	if (offset > 0 && base > math.MaxInt64-offset) || base+offset < 0 {
		return 0, syscall.EINVAL
	}
	return f.File.Seek(base+offset, io.SeekStart)
}

func (f *lockedFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if size < 0 {
		return syscall.EINVAL
	}
	cur, err := f.size()
	if err != nil {
		return err
	}
	if size > cur+maxMemHole {
		return syscall.EFBIG
	}
	return f.File.Truncate(size)
}
