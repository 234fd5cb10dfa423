package sftpd

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pkg/sftp"
	"github.com/spf13/afero"

	"github.com/wharf-sftp/wharf/internal/session"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// handlers adapts pkg/sftp's request server to a session's filesystem. All
// rules (confinement, permissions, audit) live in that filesystem; this file
// only translates requests and errors.
type handlers struct {
	s       *session.Session
	handles *handleCount
}

// handleCount bounds the files and directories a session holds open.
type handleCount struct {
	n   atomic.Int64
	max int64 // 0: no bound
}

// errTooManyHandles is what a client holding too many handles is told.
var errTooManyHandles = errors.New("too many open files in this session")

func (c *handleCount) acquire(op, name string) (release func(), err error) {
	if n := c.n.Add(1); c.max > 0 && n > c.max {
		c.n.Add(-1)
		return nil, errStatus(op, name, errTooManyHandles, sftp.ErrSSHFxFailure)
	}
	var once sync.Once
	return func() { once.Do(func() { c.n.Add(-1) }) }, nil
}

var (
	_ sftp.FileReader           = handlers{}
	_ sftp.OpenFileWriter       = handlers{}
	_ sftp.PosixRenameFileCmder = handlers{}
	_ sftp.StatVFSFileCmder     = handlers{}
	_ sftp.LstatFileLister      = handlers{}
	_ sftp.ReadlinkFileLister   = handlers{}
	_ sftp.NameLookupFileLister = handlers{}
)

func newHandlers(s *session.Session, maxHandles int) sftp.Handlers {
	h := handlers{s: s, handles: &handleCount{max: int64(maxHandles)}}
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

func (h handlers) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	release, err := h.handles.acquire("open", r.Filepath)
	if err != nil {
		return nil, err
	}
	f, err := h.s.FS.OpenFile(r.Filepath, os.O_RDONLY, 0)
	if err != nil {
		release()
		return nil, toStatus(err)
	}
	return readerAt{f, release}, nil
}

func (h handlers) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return h.OpenFile(r)
}

func (h handlers) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	pf := r.Pflags()
	var flag int
	switch {
	case pf.Read && pf.Write:
		flag = os.O_RDWR
	case pf.Write:
		flag = os.O_WRONLY
	default:
		flag = os.O_RDONLY
	}
	// No O_APPEND: pkg/sftp writes at the offsets clients send, and
	// O_APPEND would make the kernel ignore them.
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	if pf.Append && flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		flag |= os.O_WRONLY
	}
	release, err := h.handles.acquire("open", r.Filepath)
	if err != nil {
		return nil, err
	}
	f, err := h.s.FS.OpenFile(r.Filepath, flag, 0o640)
	if err != nil {
		release()
		return nil, toStatus(err)
	}
	return readWriterAt{f, release}, nil
}

func (h handlers) Filecmd(r *sftp.Request) error {
	fsys := h.s.FS
	switch r.Method {
	case "Setstat":
		return toStatus(h.setstat(r))
	case "Rename":
		// SFTPv3 rename must not replace an existing target (OpenSSH's
		// sftp-server behaves the same); posix-rename does.
		if _, _, err := fsys.LstatIfPossible(r.Target); err == nil {
			return errStatus("rename", r.Target, fs.ErrExist, sftp.ErrSSHFxFailure)
		}
		return toStatus(fsys.Rename(r.Filepath, r.Target))
	case "Rmdir":
		fi, _, err := fsys.LstatIfPossible(r.Filepath)
		if err != nil {
			return toStatus(err)
		}
		if !fi.IsDir() {
			return errStatus("rmdir", r.Filepath, syscall.ENOTDIR, sftp.ErrSSHFxFailure)
		}
		return toStatus(fsys.Remove(r.Filepath))
	case "Remove":
		fi, _, err := fsys.LstatIfPossible(r.Filepath)
		if err != nil {
			return toStatus(err)
		}
		if fi.IsDir() {
			return errStatus("remove", r.Filepath, syscall.EISDIR, sftp.ErrSSHFxFailure)
		}
		return toStatus(fsys.Remove(r.Filepath))
	case "Mkdir":
		return toStatus(fsys.Mkdir(r.Filepath, 0o750))
	case "Symlink", "Link":
		// A link could point anywhere; wharf never creates one.
		h.s.Log.Warn("denied", "op", "symlink", "path", vfs.ShowPath(path.Clean("/"+r.Target)))
		return errStatus("symlink", r.Filepath, fs.ErrPermission, sftp.ErrSSHFxPermissionDenied)
	}
	return errStatus(r.Method, r.Filepath, errors.ErrUnsupported, sftp.ErrSSHFxOpUnsupported)
}

func (h handlers) setstat(r *sftp.Request) error {
	fsys := h.s.FS
	flags := r.AttrFlags()
	attrs := r.Attributes()
	if flags.Size {
		if err := fsys.Truncate(r.Filepath, int64(attrs.Size)); err != nil {
			return err
		}
	}
	if flags.Permissions {
		if err := fsys.Chmod(r.Filepath, attrs.FileMode()); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := fsys.Chtimes(r.Filepath, attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	// uid/gid are ignored: files belong to the daemon's account.
	return nil
}

func (h handlers) PosixRename(r *sftp.Request) error {
	return toStatus(h.s.FS.Rename(r.Filepath, r.Target))
}

func (h handlers) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	st, err := h.s.FS.StatFS()
	if err != nil {
		return nil, toStatus(err)
	}
	return &sftp.StatVFS{
		Bsize: st.BlockSize, Frsize: st.BlockSize,
		Blocks: st.Blocks, Bfree: st.BlocksFree, Bavail: st.BlocksAvail,
		Files: st.Files, Ffree: st.FilesFree, Favail: st.FilesFree,
		Namemax: st.NameMax,
	}, nil
}

func (h handlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		release, err := h.handles.acquire("opendir", r.Filepath)
		if err != nil {
			return nil, err
		}
		f, err := h.s.FS.Open(r.Filepath)
		if err != nil {
			release()
			return nil, toStatus(err)
		}
		fi, err := f.Stat()
		if err != nil || !fi.IsDir() {
			f.Close()
			release()
			if err == nil {
				err = errStatus("opendir", r.Filepath, syscall.ENOTDIR, sftp.ErrSSHFxFailure)
			}
			return nil, toStatus(err)
		}
		return &dirLister{f: f, release: release}, nil
	case "Stat":
		fi, err := h.s.FS.Stat(r.Filepath)
		if err != nil {
			return nil, toStatus(err)
		}
		return listerOf{fi}, nil
	case "Readlink":
		return nil, errStatus("readlink", r.Filepath, fs.ErrPermission, sftp.ErrSSHFxPermissionDenied)
	}
	return nil, errStatus(r.Method, r.Filepath, errors.ErrUnsupported, sftp.ErrSSHFxOpUnsupported)
}

func (h handlers) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, _, err := h.s.FS.LstatIfPossible(r.Filepath)
	if err != nil {
		return nil, toStatus(err)
	}
	return listerOf{fi}, nil
}

// Readlink is refused: a link planted on disk may name a host path.
func (h handlers) Readlink(name string) (string, error) {
	return "", errStatus("readlink", name, fs.ErrPermission, sftp.ErrSSHFxPermissionDenied)
}

// Listings show the session's user as owner and group: host account names
// mean nothing to a partner and say too much about the server.
func (h handlers) LookupUserName(string) string  { return h.s.Principal.User }
func (h handlers) LookupGroupName(string) string { return h.s.Principal.User }

// dirLister streams a directory: each READDIR reads the next chunk, so a
// 100,000-entry directory never sits in memory whole.
type dirLister struct {
	f       afero.File
	next    int64
	release func()
}

func (l *dirLister) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off != l.next {
		return 0, errStatus("readdir", l.f.Name(), fs.ErrInvalid, sftp.ErrSSHFxFailure)
	}
	fis, err := l.f.Readdir(len(buf))
	n := copy(buf, fis)
	l.next += int64(n)
	if err != nil {
		if err == io.EOF {
			return n, io.EOF
		}
		return n, toStatus(err)
	}
	return n, nil
}

func (l *dirLister) Close() error {
	l.release()
	return l.f.Close()
}

// listerOf answers a stat with one entry.
type listerOf []os.FileInfo

func (l listerOf) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	return copy(buf, l[off:]), nil
}

// readerAt and readWriterAt map the file's errors to statuses and pass on
// Close and TransferError, which pkg/sftp looks for by type assertion.
type readerAt struct {
	f       afero.File
	release func()
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	return n, toStatus(err)
}
func (r readerAt) Close() error {
	r.release()
	return toStatus(r.f.Close())
}
func (r readerAt) TransferError(err error) { transferError(r.f, err) }

type readWriterAt struct {
	f       afero.File
	release func()
}

func (w readWriterAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.f.ReadAt(p, off)
	return n, toStatus(err)
}

func (w readWriterAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	return n, toStatus(err)
}
func (w readWriterAt) Close() error {
	w.release()
	return toStatus(w.f.Close())
}
func (w readWriterAt) TransferError(err error) { transferError(w.f, err) }

func transferError(f afero.File, err error) {
	if t, ok := f.(sftp.TransferError); ok {
		t.TransferError(err)
	}
}
