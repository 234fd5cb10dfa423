package vfs

import (
	"io"
	"io/fs"
	"os"

	"github.com/spf13/afero"
)

// file wraps a backend's open file so that its Name and errors carry the
// client's path: *os.File opened through os.Root reports the host path.
type file struct {
	f    afero.File
	name string // client path
}

var _ afero.File = (*file)(nil)

func wrapFile(f afero.File, name string) *file { return &file{f: f, name: clientPath(name)} }

func (f *file) err(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &fs.PathError{Op: op, Path: ShowPath(f.name), Err: cause(err)}
}

func (f *file) Name() string { return f.name }
func (f *file) Close() error { return f.err("close", f.f.Close()) }

func (f *file) Read(p []byte) (int, error) {
	n, err := f.f.Read(p)
	return n, f.err("read", err)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	return n, f.err("read", err)
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	n, err := f.f.Seek(offset, whence)
	return n, f.err("seek", err)
}

func (f *file) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	return n, f.err("write", err)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.f.WriteAt(p, off)
	return n, f.err("write", err)
}

func (f *file) WriteString(s string) (int, error) {
	n, err := f.f.WriteString(s)
	return n, f.err("write", err)
}

func (f *file) Readdir(count int) ([]fs.FileInfo, error) {
	fi, err := f.f.Readdir(count)
	return fi, f.err("readdir", err)
}

func (f *file) Readdirnames(n int) ([]string, error) {
	names, err := f.f.Readdirnames(n)
	return names, f.err("readdir", err)
}

func (f *file) Stat() (fs.FileInfo, error) {
	fi, err := f.f.Stat()
	return fi, f.err("stat", err)
}

func (f *file) Sync() error               { return f.err("sync", f.f.Sync()) }
func (f *file) Truncate(size int64) error { return f.err("truncate", f.f.Truncate(size)) }

// truncate sets the size of an existing file through a backend's own
// OpenFile, so errors are already scrubbed.
func truncate(fsys afero.Fs, name string, size int64) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
