package vfs

import (
	"io/fs"
	"os"
	"syscall"

	"github.com/spf13/afero"
)

// CapSize refuses writes that would make a file larger than max() bytes
// (the user's max_upload_size; 0 means no cap), with EFBIG ("file too
// large"). max is read per write, so a reload applies to running sessions.
func CapSize(inner FS, max func() int64) FS {
	return &capped{FS: inner, max: max}
}

type capped struct {
	FS
	max func() int64
}

func (c *capped) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil || flag&writeFlags == 0 {
		return f, err
	}
	return &cappedFile{File: f, max: c.max}, nil
}

func (c *capped) Open(name string) (afero.File, error) {
	return c.OpenFile(name, os.O_RDONLY, 0)
}

func (c *capped) Create(name string) (afero.File, error) {
	return c.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (c *capped) Truncate(name string, size int64) error {
	if m := c.max(); m > 0 && size > m {
		return &fs.PathError{Op: "truncate", Path: ShowPath(clientPath(name)), Err: syscall.EFBIG}
	}
	return c.FS.Truncate(name, size)
}

type cappedFile struct {
	afero.File
	max func() int64
}

// check refuses data of length n at off past the cap; written so that
// off + n cannot overflow, and a negative offset never slips under it.
func (f *cappedFile) check(off, n int64) error {
	if m := f.max(); m > 0 && (off < 0 || off > m-n) {
		return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.EFBIG}
	}
	return nil
}

func (f *cappedFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *cappedFile) Write(p []byte) (int, error) {
	pos, err := f.File.Seek(0, 1)
	if err != nil {
		return 0, err
	}
	if err := f.check(pos, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *cappedFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *cappedFile) Truncate(size int64) error {
	if err := f.check(size, 0); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// TransferError passes the front end's report of a broken transfer on to
// the layers below (Atomic keeps such an upload from becoming the file).
func (f *cappedFile) TransferError(err error) {
	if te, ok := f.File.(interface{ TransferError(error) }); ok {
		te.TransferError(err)
	}
}
