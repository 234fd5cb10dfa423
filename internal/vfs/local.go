package vfs

import (
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/afero"
)

// Modes for what the server creates on a client's behalf: partner data is
// not for other accounts on the host. Both backends use them whatever mode
// a front end asks for (ftpserverlib asks 0777 for files and 0755 for
// directories, OpenSSH's sftp the local file's mode), so that a file's
// mode does not depend on the protocol it came by; a client may still
// chmod afterwards.
const (
	dirMode  fs.FileMode = 0o750
	fileMode fs.FileMode = 0o640
)

// Local stores homes as directories beneath one host directory. Every
// path is resolved by os.Root, so neither "..", an absolute path nor a
// symlink already on disk can reach outside the root.
type Local struct {
	root *os.Root
	dir  string // host path, used only for statfs and never shown to clients

	mu sync.Mutex
	// homes holds each open home's os.Root, shared by all of its sessions:
	// one descriptor per home rather than per session, which is what
	// decides how many sessions fit under the process's descriptor limit.
	homes map[string]*sharedRoot
}

type sharedRoot struct {
	*os.Root
	refs int
}

// NewLocal opens (and creates, if missing) the storage root dir.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create storage root: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage root: %w", err)
	}
	return &Local{root: r, dir: dir, homes: map[string]*sharedRoot{}}, nil
}

// Home opens home as its own os.Root, creating it first if needed.
func (l *Local) Home(home string) (FS, error) {
	name := rel(home)
	if name != "." {
		if err := l.root.MkdirAll(name, dirMode); err != nil {
			return nil, pathErr("mkdir", home, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sr := l.homes[name]
	if sr != nil && !sameDir(sr.Root, l.root, name) {
		// The home was moved or replaced on disk since it was opened:
		// sessions already in it keep the old one, new ones get this.
		delete(l.homes, name)
		sr = nil
	}
	if sr == nil {
		r, err := l.root.OpenRoot(name)
		if err != nil {
			return nil, pathErr("open", home, err)
		}
		sr = &sharedRoot{Root: r}
		l.homes[name] = sr
	}
	sr.refs++
	return &localFS{root: sr.Root, dir: l.dir, release: func() error { return l.release(name, sr) }}, nil
}

// sameDir reports whether r is still the directory at name beneath parent.
func sameDir(r, parent *os.Root, name string) bool {
	a, err := r.Stat(".")
	if err != nil {
		return false
	}
	b, err := parent.Stat(name)
	return err == nil && os.SameFile(a, b)
}

// release drops one session's hold on a home, closing its os.Root with
// the last.
func (l *Local) release(name string, sr *sharedRoot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sr.refs--; sr.refs > 0 {
		return nil
	}
	if l.homes[name] == sr {
		delete(l.homes, name)
	}
	return sr.Close()
}

// Close closes the storage root.
func (l *Local) Close() error { return l.root.Close() }

type localFS struct {
	root    *os.Root
	dir     string
	release func() error
	closed  sync.Once
}

var _ FS = (*localFS)(nil)

func (l *localFS) Name() string { return "local" }

// Close releases the home; a second Close does nothing.
func (l *localFS) Close() error {
	var err error
	l.closed.Do(func() { err = l.release() })
	return err
}

func (l *localFS) Create(name string) (afero.File, error) {
	return l.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (l *localFS) Open(name string) (afero.File, error) {
	return l.OpenFile(name, os.O_RDONLY, 0)
}

func (l *localFS) OpenFile(name string, flag int, _ fs.FileMode) (afero.File, error) {
	f, err := l.root.OpenFile(rel(name), flag, fileMode)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return wrapFile(f, name), nil
}

func (l *localFS) Mkdir(name string, _ fs.FileMode) error {
	return pathErr("mkdir", name, l.root.Mkdir(rel(name), dirMode))
}

func (l *localFS) MkdirAll(name string, _ fs.FileMode) error {
	return pathErr("mkdir", name, l.root.MkdirAll(rel(name), dirMode))
}

func (l *localFS) Remove(name string) error {
	if rel(name) == "." {
		return denied("remove", name)
	}
	return pathErr("remove", name, l.root.Remove(rel(name)))
}

func (l *localFS) RemoveAll(name string) error {
	if rel(name) == "." {
		return denied("remove", name)
	}
	return pathErr("remove", name, l.root.RemoveAll(rel(name)))
}

func (l *localFS) Rename(oldname, newname string) error {
	if rel(oldname) == "." || rel(newname) == "." {
		return denied("rename", oldname)
	}
	return pathErr("rename", oldname, l.root.Rename(rel(oldname), rel(newname)))
}

func (l *localFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := l.root.Stat(rel(name))
	return fi, pathErr("stat", name, err)
}

func (l *localFS) LstatIfPossible(name string) (fs.FileInfo, bool, error) {
	fi, err := l.root.Lstat(rel(name))
	return fi, true, pathErr("lstat", name, err)
}

func (l *localFS) Chmod(name string, mode fs.FileMode) error {
	// Only permission bits: a client never sets setuid, setgid or sticky.
	return pathErr("chmod", name, l.root.Chmod(rel(name), mode&fs.ModePerm))
}

func (l *localFS) Chown(name string, _, _ int) error {
	// Ownership belongs to the daemon's account, never to a client.
	return denied("chown", name)
}

func (l *localFS) Chtimes(name string, atime, mtime time.Time) error {
	return pathErr("chtimes", name, l.root.Chtimes(rel(name), atime, mtime))
}

func (l *localFS) StatFS() (*FSStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(l.dir, &st); err != nil {
		return nil, pathErr("statvfs", "/", err)
	}
	return &FSStats{
		BlockSize:   uint64(st.Bsize),
		Blocks:      st.Blocks,
		BlocksFree:  st.Bfree,
		BlocksAvail: st.Bavail,
		Files:       st.Files,
		FilesFree:   st.Ffree,
		NameMax:     uint64(st.Namelen),
	}, nil
}

func (l *localFS) Truncate(name string, size int64) error {
	return truncate(l, name, size)
}
