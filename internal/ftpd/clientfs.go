package ftpd

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// clientFS is a session's vfs.FS as ftpserverlib's ClientDriver, which
// must be an afero.Fs: this file is the adapter, and the only place afero
// appears. Transfers go through GetHandle, so that a download opens at the
// REST offset and an upload ends by Commit or Abort as the library
// reports it; its other methods (listing.go, rename.go, checksum.go) map
// errors to replies, keep control characters out of replies and hold the
// rename state.
type clientFS struct {
	fs *vfs.FS
	cc ftpserver.ClientContext
	st *fsState
}

// fsState is what one session's clientFS remembers between commands.
type fsState struct {
	srv *Server
	ren renameState
}

// newClientFS is the ClientDriver of a logged-in session on fsys.
func (s *Server) newClientFS(fsys *vfs.FS, cc ftpserver.ClientContext) clientFS {
	return clientFS{fs: fsys, cc: cc, st: &fsState{srv: s}}
}

var (
	_ ftpserver.ClientDriver                      = clientFS{}
	_ ftpserver.ClientDriverExtentionFileTransfer = clientFS{}
	_ ftpserver.ClientDriverExtensionFileList     = clientFS{}
	_ ftpserver.ClientDriverExtensionHasher       = clientFS{}
	_ ftpserver.ClientDriverExtensionRemoveDir    = clientFS{}
)

func (c clientFS) Name() string { return "wharf" }

// GetHandle opens a file for a transfer: flags O_RDONLY is a download from
// offset (REST); otherwise an upload, continued at offset after a REST
// (no O_TRUNC), at the end with O_APPEND (APPE). Shutdown waits for the
// handle to be closed: ftpserverlib closes it on its own transfer
// goroutine, and an upload lands only then.
func (c clientFS) GetHandle(name string, flags int, offset int64) (ftpserver.FileTransfer, error) {
	f, err := c.open(name, flags, offset)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (c clientFS) open(name string, flags int, offset int64) (*file, error) {
	f := &file{done: c.st.srv.files.Done, pos: offset}
	if flags&(os.O_WRONLY|os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC) == 0 {
		r, err := c.fs.Open(name, offset)
		if err != nil {
			return nil, toReply(err)
		}
		f.r, f.next = r, offset
	} else {
		w, err := c.fs.Create(name, flags&^os.O_APPEND)
		if err != nil {
			return nil, toReply(err)
		}
		f.w = w
		if flags&os.O_APPEND != 0 {
			fi, err := w.Stat()
			if err != nil {
				_ = w.Abort(err)
				return nil, toReply(err)
			}
			f.pos = fi.Size()
		}
	}
	c.st.srv.files.Add(1)
	return f, nil
}

// OpenFile, Open and Create are afero's way to the same handles; the
// library uses GetHandle.
func (c clientFS) OpenFile(name string, flag int, _ fs.FileMode) (afero.File, error) {
	return c.open(name, flag, 0)
}

func (c clientFS) Open(name string) (afero.File, error) { return c.open(name, os.O_RDONLY, 0) }

func (c clientFS) Create(name string) (afero.File, error) {
	return c.open(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0)
}

func (c clientFS) Mkdir(name string, _ fs.FileMode) error { return toReply(c.fs.Mkdir(name)) }

// MkdirAll makes name and its missing parents (the recursion is bounded
// by the path's depth).
func (c clientFS) MkdirAll(name string, _ fs.FileMode) error {
	name = path.Clean("/" + name)
	err := c.fs.Mkdir(name)
	if errors.Is(err, fs.ErrNotExist) && name != "/" {
		if err = c.MkdirAll(path.Dir(name), 0); err == nil {
			err = c.fs.Mkdir(name)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := c.fs.Stat(name); serr == nil && fi.IsDir() {
			err = nil
		}
	}
	return toReply(err)
}

func (c clientFS) Remove(name string) error    { return toReply(c.fs.Remove(name)) }
func (c clientFS) RemoveDir(name string) error { return toReply(c.fs.Rmdir(name)) }
func (c clientFS) RemoveAll(name string) error { return toReply(c.fs.Rmdir(name)) }
func (c clientFS) Chmod(name string, mode fs.FileMode) error {
	return toReply(c.fs.Chmod(name, mode))
}

func (c clientFS) Chtimes(name string, atime, mtime time.Time) error {
	return toReply(c.fs.Chtimes(name, atime, mtime))
}

// Chown is refused: files belong to the daemon's account.
func (c clientFS) Chown(name string, _, _ int) error {
	return toReply(&fs.PathError{Op: "chown", Path: vfs.ShowPath(name), Err: fs.ErrPermission})
}

// file is a transfer's handle: a download (r) or an upload (w). An upload
// ends by Abort when the library reported a broken transfer before Close
// (TransferError), else by Commit.
type file struct {
	r    *vfs.Reader
	w    *vfs.Writer
	pos  int64 // where the next Read or Write goes
	next int64 // downloads: where r's own stream stands
	done func()
	once sync.Once

	mu     sync.Mutex
	broken error // guarded by mu
}

var (
	_ afero.File                  = (*file)(nil)
	_ ftpserver.FileTransferError = (*file)(nil)
)

func (f *file) Name() string {
	if f.r != nil {
		return f.r.Name()
	}
	return f.w.Name()
}

func (f *file) Read(p []byte) (int, error) {
	if f.r == nil {
		return 0, errNotOpenFor("read", f.Name())
	}
	var n int
	var err error
	if f.pos == f.next {
		n, err = f.r.Read(p)
		f.next += int64(n)
	} else {
		n, err = f.r.ReadAt(p, f.pos) // after a Seek away from the stream
	}
	f.pos += int64(n)
	if err == io.EOF {
		return n, err
	}
	return n, toReply(err)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.r == nil {
		return 0, errNotOpenFor("read", f.Name())
	}
	n, err := f.r.ReadAt(p, off)
	if err == io.EOF {
		return n, err
	}
	return n, toReply(err)
}

func (f *file) Write(p []byte) (int, error) {
	n, err := f.WriteAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if f.w == nil {
		return 0, errNotOpenFor("write", f.Name())
	}
	n, err := f.w.WriteAt(p, off)
	return n, toReply(err)
}

func (f *file) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

// Seek moves where the next Read or Write goes (the library seeks to the
// REST offset the handle was opened at).
func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.pos
	default:
		return 0, toReply(&fs.PathError{Op: "seek", Path: vfs.ShowPath(f.Name()), Err: errors.ErrUnsupported})
	}
	if offset < 0 {
		return 0, toReply(&fs.PathError{Op: "seek", Path: vfs.ShowPath(f.Name()), Err: fs.ErrInvalid})
	}
	f.pos = offset
	return offset, nil
}

func (f *file) Stat() (fs.FileInfo, error) {
	if f.r != nil {
		fi, err := f.r.Stat()
		return fi, toReply(err)
	}
	fi, err := f.w.Stat()
	return fi, toReply(err)
}

func (f *file) Truncate(size int64) error {
	if f.w == nil {
		return errNotOpenFor("truncate", f.Name())
	}
	return toReply(f.w.Truncate(size))
}

func (f *file) Sync() error { return nil } // an upload is made durable by its commit

func (f *file) Readdir(int) ([]fs.FileInfo, error) { return nil, errNotOpenFor("readdir", f.Name()) }
func (f *file) Readdirnames(int) ([]string, error) { return nil, errNotOpenFor("readdir", f.Name()) }

// TransferError is ftpserverlib's report of a transfer that broke (a
// dropped data connection, ABOR, a failed write) before it closes the
// handle.
func (f *file) TransferError(err error) {
	f.mu.Lock()
	if f.broken == nil {
		f.broken = err
	}
	f.mu.Unlock()
	if f.r != nil {
		f.r.Fail(err)
	}
}

// Close ends the transfer: an upload commits, unless it broke.
func (f *file) Close() error {
	defer f.once.Do(f.done)
	if f.r != nil {
		return toReply(f.r.Close())
	}
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken != nil {
		return toReply(f.w.Abort(broken))
	}
	return toReply(f.w.Commit())
}

func errNotOpenFor(op, name string) error {
	return toReply(&fs.PathError{Op: op, Path: vfs.ShowPath(name), Err: fs.ErrInvalid})
}
