package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync/atomic"
	"syscall"
	"time"
)

// Create starts an upload of name. With Atomic it writes a temporary file
// of its own, ".wharf-upload.<key>.<random>", in the name's directory (the
// final rename then never crosses a file system); otherwise it writes the
// file in place.
func (s *localStore) Create(name string, o CreateOptions) (Upload, error) {
	if rel(name) == "." {
		return nil, &fs.PathError{Op: "open", Path: "/", Err: syscall.EISDIR}
	}
	if !s.opts.Atomic {
		return s.createInPlace(name, o)
	}
	return s.createAtomic(name, o)
}

// createInPlace opens the file name itself for the upload.
func (s *localStore) createInPlace(name string, o CreateOptions) (Upload, error) {
	flag := os.O_RDWR
	if !o.MustExist {
		flag |= os.O_CREATE
	}
	if !o.Continue {
		flag |= os.O_TRUNC
	}
	if o.Exclusive {
		if o.MustExist {
			// The file must exist and may not: whichever is broken.
			_, err := s.root.Lstat(rel(name))
			if err == nil {
				err = fs.ErrExist
			}
			return nil, localErr("open", name, err)
		}
		flag |= os.O_EXCL
	}
	f, err := s.openRegular(rel(name), name, flag)
	if err != nil {
		return nil, err
	}
	return &inPlaceUpload{s: s, f: f, name: clientPath(name), created: flag&os.O_CREATE != 0}, nil
}

// How an atomic upload's temporary file began.
const (
	startedEmpty  = iota // a new file, or an overwrite from scratch
	startedClaim         // the name's partial, renamed
	startedCopied        // a copy of the existing file
)

// createAtomic starts an upload of name into a temporary file. Continue
// claims the name's partial (a rename, which is atomic, so two sessions
// never share it), else copies an existing file up to copyMax bytes, else
// writes the existing file in place.
func (s *localStore) createAtomic(name string, o CreateOptions) (Upload, error) {
	fi, err := s.root.Lstat(rel(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, localErr("open", name, err)
	}
	exists := err == nil
	if exists && !fi.Mode().IsRegular() {
		// A directory fails as it would anyway; a symlink planted on disk
		// is written through, in place, as far as os.Root allows.
		return s.createInPlace(name, o)
	}
	if exists && o.Exclusive {
		return nil, &fs.PathError{Op: "open", Path: clientPath(name), Err: fs.ErrExist}
	}
	u := &atomicUpload{s: s, name: clientPath(name), tmp: rel(tempOf(name)), excl: o.Exclusive}
	partial := rel(partialOf(name))
	switch {
	case o.Continue:
		err := s.rename(partial, u.tmp)
		switch {
		case err == nil:
			u.start = startedClaim
			u.f, err = s.root.OpenFile(u.tmp, os.O_RDWR, 0)
			if err != nil {
				_ = s.rename(u.tmp, partial) // give the partial back
				return nil, localErr("open", name, err)
			}
			return u, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, localErr("open", name, err)
		case exists && fi.Size() > s.copyMax:
			return s.createInPlace(name, o)
		case exists:
			u.start = startedCopied
			if u.f, err = s.copyOf(name, u.tmp, fi.Mode().Perm()); err != nil {
				return nil, err
			}
			return u, nil
		case o.MustExist:
			return nil, notFound("open", name)
		}
	case !exists && o.MustExist:
		if _, _, ok := s.partial(name); !ok {
			return nil, notFound("open", name)
		}
	}
	u.f, err = s.root.OpenFile(u.tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, localErr("open", name, err)
	}
	if exists {
		// An overwrite keeps the file's mode, as writing in place would.
		_ = u.f.Chmod(fi.Mode().Perm())
	}
	return u, nil
}

// copyOf copies the regular file name to a new temporary file tmp with
// mode perm, and returns it open.
func (s *localStore) copyOf(name, tmp string, perm fs.FileMode) (*os.File, error) {
	src, err := s.openRegular(rel(name), name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := s.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, localErr("open", name, err)
	}
	// *os.File to *os.File: copy_file_range(2), a reflink where the file
	// system has them.
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Chmod(perm) // the mode asked at create is masked by the umask
	}
	if err != nil {
		dst.Close()
		_ = s.root.Remove(tmp)
		return nil, localErr("open", name, err)
	}
	return dst, nil
}

// atomicUpload is one upload written to its temporary file. Its errors
// name the client's path, never the temporary one.
type atomicUpload struct {
	s     *localStore
	f     *os.File
	name  string // client path
	tmp   string // store-relative path of the temporary file
	start int
	excl  bool

	dirty   atomic.Bool // a write or a truncate reached the temporary file
	touched atomic.Bool // its mode or times were set
	ended   atomic.Bool // Commit or Abort was called
}

var (
	_ Upload          = (*atomicUpload)(nil)
	_ UploadReader    = (*atomicUpload)(nil)
	_ UploadTruncater = (*atomicUpload)(nil)
	_ UploadAttrs     = (*atomicUpload)(nil)
)

// WriteAt is pwrite(2), which concurrent writers may call at once.
func (u *atomicUpload) WriteAt(p []byte, off int64) (int, error) {
	u.dirty.Store(true)
	n, err := u.f.WriteAt(p, off)
	return n, localErr("write", u.name, err)
}

func (u *atomicUpload) ReadAt(p []byte, off int64) (int, error) {
	n, err := u.f.ReadAt(p, off)
	return n, localErr("read", u.name, err)
}

func (u *atomicUpload) Stat() (fs.FileInfo, error) {
	fi, err := u.f.Stat()
	if err != nil {
		return nil, localErr("stat", u.name, err)
	}
	return namedInfo{fi, path.Base(u.name)}, nil
}

func (u *atomicUpload) Truncate(size int64) error {
	u.dirty.Store(true)
	return localErr("truncate", u.name, u.f.Truncate(size))
}

// Chmod and Chtimes set the attributes the file will have: a Commit then
// renames the temporary file over the name even if nothing was written.
func (u *atomicUpload) Chmod(mode fs.FileMode) error {
	u.touched.Store(true)
	return localErr("chmod", u.name, u.f.Chmod(mode&fs.ModePerm))
}

func (u *atomicUpload) Chtimes(atime, mtime time.Time) error {
	u.touched.Store(true)
	return localErr("chtimes", u.name, futimens(u.f, atime, mtime))
}

func closedErr(name string) error {
	return &fs.PathError{Op: "close", Path: name, Err: fs.ErrClosed}
}

// flushClose closes the temporary file, flushing it first with Fsync on
// when it is to become the file or the partial: its bytes must be on disk
// before its new name is.
func (u *atomicUpload) flushClose() error {
	var err error
	if u.s.opts.Fsync && (u.dirty.Load() || u.touched.Load() || u.start == startedClaim) {
		err = u.s.syncFile(u.f, u.tmp)
	}
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	return localErr("close", u.name, err)
}

// Commit renames the temporary file over the name and drops the name's
// partial. An upload that cannot be made durable, or renamed, is kept as
// the partial instead and Commit fails.
func (u *atomicUpload) Commit() error {
	if u.ended.Swap(true) {
		return closedErr(u.name)
	}
	if err := u.flushClose(); err != nil {
		u.keepSynced()
		return err
	}
	if u.start == startedCopied && !u.dirty.Load() && !u.touched.Load() {
		// Opened for writing, nothing written: the file is already what
		// the client sees, and keeps its times.
		_ = u.s.root.Remove(u.tmp)
		return nil
	}
	name := rel(u.name)
	if u.excl {
		if err := u.commitExclusive(name); err != nil {
			return err
		}
	} else if err := u.s.rename(u.tmp, name); err != nil {
		u.keepSynced()
		return localErr("close", u.name, err)
	}
	// The file now under the name is newer than any partial of it.
	_ = u.s.root.Remove(rel(partialOf(u.name)))
	return localErr("close", u.name, u.s.syncDir(u.name))
}

// commitExclusive lands the upload only if the name is still free:
// another session may have completed it since Create. link(2) fails if
// the name exists, so the check and the landing are one step; a file
// system without hard links gets a check, then a rename. The loser's
// bytes go, as an exclusive upload refused at Create keeps none.
func (u *atomicUpload) commitExclusive(name string) error {
	exists := &fs.PathError{Op: "close", Path: u.name, Err: fs.ErrExist}
	err := u.s.link(u.tmp, name)
	switch {
	case err == nil:
		// A crash before this remove leaves a temporary file with a second
		// link, which recovery drops rather than make it a partial.
		_ = u.s.root.Remove(u.tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		_ = u.s.root.Remove(u.tmp)
		return exists
	}
	if _, err := u.s.root.Lstat(name); err == nil {
		_ = u.s.root.Remove(u.tmp)
		return exists
	}
	if err := u.s.rename(u.tmp, name); err != nil {
		u.keepSynced()
		return localErr("close", u.name, err)
	}
	return nil
}

// Abort ends the upload without touching the name. ErrDetached drops the
// temporary file; any other cause keeps it as the name's partial, unless
// it holds nothing the client sent.
func (u *atomicUpload) Abort(cause error) error {
	if u.ended.Swap(true) {
		return closedErr(u.name)
	}
	if errors.Is(cause, ErrDetached) {
		err := u.f.Close()
		_ = u.s.root.Remove(u.tmp)
		return localErr("close", u.name, err)
	}
	err := u.flushClose()
	u.keepSynced()
	return err
}

// keepSynced keeps the temporary file as the partial and, if it did,
// flushes the directory: the upload failed already, so this is best
// effort.
func (u *atomicUpload) keepSynced() {
	if u.keep() {
		_ = u.s.syncDir(u.name)
	}
}

// keep makes the temporary file the name's partial, replacing an older
// one, unless it holds nothing the client sent, and reports whether it
// did.
func (u *atomicUpload) keep() bool {
	fi, err := u.s.root.Lstat(u.tmp)
	if err != nil {
		return false // gone with its directory
	}
	if fi.Size() == 0 || (u.start != startedClaim && !u.dirty.Load()) {
		_ = u.s.root.Remove(u.tmp)
		return false
	}
	if err := u.s.rename(u.tmp, rel(partialOf(u.name))); err != nil {
		_ = u.s.root.Remove(u.tmp)
		return false
	}
	return true
}

// inPlaceUpload writes the file under its name, as a plain server does:
// with uploads.atomic off, and for an append to a file too large to copy.
type inPlaceUpload struct {
	s       *localStore
	f       *os.File
	name    string // client path
	created bool   // opened with O_CREATE: its directory entry may be new
	ended   atomic.Bool
}

var (
	_ Upload          = (*inPlaceUpload)(nil)
	_ UploadReader    = (*inPlaceUpload)(nil)
	_ UploadTruncater = (*inPlaceUpload)(nil)
	_ UploadAttrs     = (*inPlaceUpload)(nil)
)

func (u *inPlaceUpload) WriteAt(p []byte, off int64) (int, error) {
	n, err := u.f.WriteAt(p, off)
	return n, localErr("write", u.name, err)
}

func (u *inPlaceUpload) ReadAt(p []byte, off int64) (int, error) {
	n, err := u.f.ReadAt(p, off)
	return n, localErr("read", u.name, err)
}

func (u *inPlaceUpload) Stat() (fs.FileInfo, error) {
	fi, err := u.f.Stat()
	if err != nil {
		return nil, localErr("stat", u.name, err)
	}
	return namedInfo{fi, path.Base(u.name)}, nil
}

func (u *inPlaceUpload) Truncate(size int64) error {
	return localErr("truncate", u.name, u.f.Truncate(size))
}

func (u *inPlaceUpload) Chmod(mode fs.FileMode) error {
	return localErr("chmod", u.name, u.f.Chmod(mode&fs.ModePerm))
}

func (u *inPlaceUpload) Chtimes(atime, mtime time.Time) error {
	return localErr("chtimes", u.name, futimens(u.f, atime, mtime))
}

// Commit closes the file, with Fsync on flushing it and, if the upload
// may have created it, its directory.
func (u *inPlaceUpload) Commit() error {
	if u.ended.Swap(true) {
		return closedErr(u.name)
	}
	var err error
	if u.s.opts.Fsync {
		err = u.s.syncFile(u.f, rel(u.name))
	}
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && u.created {
		err = u.s.syncDir(u.name)
	}
	return localErr("close", u.name, err)
}

// Abort closes the file: what was written stays, as on a plain server.
func (u *inPlaceUpload) Abort(error) error {
	if u.ended.Swap(true) {
		return closedErr(u.name)
	}
	return localErr("close", u.name, u.f.Close())
}
