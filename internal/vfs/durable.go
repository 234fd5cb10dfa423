package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sync/atomic"

	"github.com/spf13/afero"
)

// Durable flushes every upload to disk before its Close returns, and the
// directory of a file it may have created: the client's reply and the
// upload event come after Close, so neither promises bytes a power loss
// could still take. It is for uploads.atomic off; Atomic does the same
// for its own files.
func Durable(inner FS) FS { return durableFS{inner} }

type durableFS struct{ FS }

func (d durableFS) Create(name string) (afero.File, error) {
	return d.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (d durableFS) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	f, err := d.FS.OpenFile(name, flag, perm)
	if err != nil || flag&writeFlags == 0 {
		return f, err
	}
	return &durableFile{File: f, fs: d.FS, name: name, created: flag&os.O_CREATE != 0}, nil
}

// durableFile is an upload that is flushed when it is closed.
type durableFile struct {
	afero.File
	fs      FS
	name    string
	created bool // opened with O_CREATE: its directory entry may be new
	closed  atomic.Bool
}

// TransferError passes the front end's report on to the file beneath,
// which may need it (see Atomic).
func (f *durableFile) TransferError(err error) {
	if te, ok := f.File.(interface{ TransferError(error) }); ok {
		te.TransferError(err)
	}
}

func (f *durableFile) Close() error {
	if f.closed.Swap(true) {
		return f.File.Close() // the file reports its own double close
	}
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil && f.created {
		err = pathErr("close", f.name, syncDir(f.fs, f.name))
	}
	return err
}

// syncDir flushes the directory that holds name (a client path of fsys).
// A directory removed meanwhile (the client unlinked the file under its
// open handle, then removed the folder) has no entry left to make
// durable: that is no error, as close(2) on a POSIX server is none.
func syncDir(fsys afero.Fs, name string) error {
	d, err := fsys.Open(path.Dir(clientPath(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
