package sftpd

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"

	"github.com/pkg/sftp"

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
	f, err := h.s.FS.Open(r.Filepath, 0)
	if err != nil {
		release()
		return nil, toStatus(err)
	}
	return &readerAt{f: f, release: release}, nil
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
	w, err := h.s.FS.Create(r.Filepath, flag)
	if err != nil {
		release()
		return nil, toStatus(err)
	}
	return &writerAt{w: w, release: release}, nil
}

func (h handlers) Filecmd(r *sftp.Request) error {
	fsys := h.s.FS
	switch r.Method {
	case "Setstat":
		return toStatus(h.setstat(r))
	case "Rename":
		// SFTPv3 rename must not replace an existing target (OpenSSH's
		// sftp-server behaves the same); posix-rename does.
		if _, err := fsys.Lstat(r.Target); err == nil {
			return errStatus("rename", r.Target, fs.ErrExist, sftp.ErrSSHFxFailure)
		}
		return toStatus(fsys.Rename(r.Filepath, r.Target))
	case "Rmdir":
		return toStatus(fsys.Rmdir(r.Filepath))
	case "Remove":
		return toStatus(fsys.Remove(r.Filepath))
	case "Mkdir":
		return toStatus(fsys.Mkdir(r.Filepath))
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
		d, err := h.s.FS.List(r.Filepath)
		if err != nil {
			release()
			return nil, toStatus(err)
		}
		return &dirLister{d: d, release: release}, nil
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
	fi, err := h.s.FS.Lstat(r.Filepath)
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
	d       *vfs.Dir
	next    int64
	release func()
}

func (l *dirLister) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off != l.next {
		return 0, errStatus("readdir", l.d.Name(), fs.ErrInvalid, sftp.ErrSSHFxFailure)
	}
	fis, err := l.d.Next(len(buf))
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
	return toStatus(l.d.Close())
}

// listerOf answers a stat with one entry.
type listerOf []os.FileInfo

func (l listerOf) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	return copy(buf, l[off:]), nil
}

// readerAt is a download and writerAt an upload as pkg/sftp sees them:
// they map errors to statuses, and take pkg/sftp's TransferError (a
// connection that dropped with the handle open) before its Close. An
// upload's Close is then its Abort, else its Commit: the front end says
// which happened.
type readerAt struct {
	f       *vfs.Reader
	release func()
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	return n, toStatus(err)
}

func (r *readerAt) Close() error {
	r.release()
	return toStatus(r.f.Close())
}

func (r *readerAt) TransferError(err error) { r.f.Fail(err) }

type writerAt struct {
	w       *vfs.Writer
	release func()

	mu     sync.Mutex
	broken error // guarded by mu: pkg/sftp's TransferError
}

func (w *writerAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.w.ReadAt(p, off)
	return n, toStatus(err)
}

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.w.WriteAt(p, off)
	return n, toStatus(err)
}

func (w *writerAt) TransferError(err error) {
	w.mu.Lock()
	if w.broken == nil {
		w.broken = err
	}
	w.mu.Unlock()
}

func (w *writerAt) Close() error {
	w.release()
	w.mu.Lock()
	broken := w.broken
	w.mu.Unlock()
	if broken != nil {
		return toStatus(w.w.Abort(broken))
	}
	return toStatus(w.w.Commit())
}
