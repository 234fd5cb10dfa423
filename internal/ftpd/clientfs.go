package ftpd

import (
	"io/fs"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// fsState is what one session's clientFS remembers between commands.
type fsState struct {
	srv *Server
	ren renameState
}

// newClientFS is the ClientDriver of a logged-in session on fsys.
func (s *Server) newClientFS(fsys vfs.FS, cc ftpserver.ClientContext) clientFS {
	return clientFS{FS: fsys, cc: cc, st: &fsState{srv: s}}
}

var (
	_ ftpserver.ClientDriverExtensionFileList = clientFS{}
	_ ftpserver.ClientDriverExtensionHasher   = clientFS{}
)

// OpenFile opens a file for a transfer. The file maps its write errors to
// replies (a write past the size cap is a 552), and Shutdown waits for it
// to be closed: ftpserverlib closes it on its own transfer goroutine, and
// an upload lands only then.
func (c clientFS) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	return c.track(c.FS.OpenFile(name, flag, perm))
}

func (c clientFS) Open(name string) (afero.File, error) { return c.track(c.FS.Open(name)) }

func (c clientFS) Create(name string) (afero.File, error) { return c.track(c.FS.Create(name)) }

func (c clientFS) track(f afero.File, err error) (afero.File, error) {
	if err != nil {
		return nil, toReply(err)
	}
	c.st.srv.files.Add(1)
	return &replyFile{File: f, done: c.st.srv.files.Done}, nil
}

func (c clientFS) Mkdir(name string, perm fs.FileMode) error {
	return toReply(c.FS.Mkdir(name, perm))
}

func (c clientFS) MkdirAll(name string, perm fs.FileMode) error {
	return toReply(c.FS.MkdirAll(name, perm))
}

func (c clientFS) Chtimes(name string, atime, mtime time.Time) error {
	return toReply(c.FS.Chtimes(name, atime, mtime))
}

// replyFile is an open file as ftpserverlib sees it.
type replyFile struct {
	afero.File
	done func()
	once sync.Once
}

func (f *replyFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, toReply(err)
}

func (f *replyFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, toReply(err)
}

func (f *replyFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *replyFile) Truncate(size int64) error { return toReply(f.File.Truncate(size)) }

// TransferError passes ftpserverlib's report of a broken transfer on to
// the vfs layers, which keep such an upload as a partial.
func (f *replyFile) TransferError(err error) {
	if te, ok := f.File.(ftpserver.FileTransferError); ok {
		te.TransferError(err)
	}
}

func (f *replyFile) Close() error {
	err := f.File.Close()
	f.once.Do(f.done)
	return toReply(err)
}
