package vfs

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// A store is where a backend keeps one home: a directory on disk, a
// subtree in memory, a key prefix in a bucket. It does what every backend
// can do, and nothing of policy: permissions, the size cap, hidden names,
// the session's view of its own open uploads and the record of what
// happened are the FS's above it (fs.go), the same for every store.
//
// Names are clean, rooted client paths ("/", "/a/b"): FS cleans them. A
// store must still confine them itself (os.Root, a key mapping that cannot
// leave its prefix) rather than trust its caller. Errors may be whatever
// the store meets; FS reduces them to a cause fit for a client (see
// pathErr) and names only the client's path.
type Store interface {
	// Stat describes name, following a symlink (local only has them, when
	// planted on disk). A directory that exists only because names lie
	// beneath it (an implicit folder in a bucket) is a directory.
	Stat(name string) (fs.FileInfo, error)
	// List streams the entries of the directory name. The store may list
	// its own internal names (see isHidden); FS leaves them out.
	List(name string) (Lister, error)
	// Open opens the regular file name for reading; Read starts at off.
	Open(name string, off int64) (File, error)
	// Create starts an upload of name, as o says. Nothing appears under the
	// name before Commit (unless the store writes in place, as local does
	// with uploads.atomic off).
	Create(name string, o CreateOptions) (Upload, error)
	// Remove removes the file name and its partial; it fails with
	// syscall.EISDIR on a directory.
	Remove(name string) error
	// Mkdir makes the directory name; its parent must exist.
	Mkdir(name string) error
	// Rmdir removes the directory name, which must hold nothing but the
	// store's internal names (which go with it).
	Rmdir(name string) error
	// Close releases the home. FS calls it once, after the last upload
	// has been committed or aborted.
	Close() error
}

// Lister streams a directory.
type Lister interface {
	// Next returns up to n (> 0) more entries, and io.EOF once there are
	// none (possibly with the last ones).
	Next(n int) ([]fs.FileInfo, error)
	Close() error
}

// File is a regular file open for reading.
type File interface {
	io.Reader   // from the offset given to Open
	io.ReaderAt // anywhere; pkg/sftp reads at the offsets clients ask
	io.Closer
	// Stat describes the file as opened (its size is what a download of
	// it can move).
	Stat() (fs.FileInfo, error)
}

// CreateOptions say how an upload begins and what its Commit may replace.
type CreateOptions struct {
	// Continue starts from what Stat would describe through the FS: the
	// name's partial if it has one, else the file (resume, append, an
	// SFTP open without truncate). Otherwise the upload starts empty.
	Continue bool
	// MustExist refuses (fs.ErrNotExist) when the name has neither a file
	// nor a partial: an open without O_CREATE.
	MustExist bool
	// Exclusive refuses (fs.ErrExist) when the file exists, at Create and
	// again at Commit: users who may upload but not overwrite. A partial
	// does not count, so such a user can resume.
	Exclusive bool
}

// Upload is one upload in progress. Exactly one of Commit and Abort ends
// it; the front end says which, so a dropped connection never needs an
// error forwarded through layers to avoid committing half a file.
type Upload interface {
	// WriteAt may be called concurrently and out of order (pkg/sftp hands
	// writes to several workers).
	io.WriterAt
	// Stat describes the upload so far: its size is where a client that
	// stats its own open upload would continue.
	Stat() (fs.FileInfo, error)
	// Commit makes the upload the file under its name.
	Commit() error
	// Abort ends the upload without touching the name. cause says why: an
	// upload broken by the transfer (a dropped connection, a failed write)
	// keeps what it received as the name's partial where the store can,
	// for a resume; ErrDetached keeps nothing.
	Abort(cause error) error
}

// ErrDetached is the cause of an upload aborted because its name changed
// under it in the same session (see FS).
var ErrDetached = errors.New("the name was removed or replaced while the upload was open")

// Optional capabilities, found by type assertion as ftpserverlib finds its
// driver extensions. An FS on a store without one answers
// errors.ErrUnsupported (or, for setstat on stores that ignore it, nothing).
type (
	// Renamer renames a file or a directory, replacing a file at newname
	// (and dropping newname's partial).
	Renamer interface {
		Rename(oldname, newname string) error
	}
	// Truncater sets the size of what Stat through the FS describes when
	// no upload of it is open: the name's partial if it has one, else the
	// file.
	Truncater interface {
		Truncate(name string, size int64) error
	}
	// Chmoder and Chtimeser set attributes of a file or directory, and of
	// the name's partial if it has one.
	Chmoder interface {
		Chmod(name string, mode fs.FileMode) error
	}
	Chtimeser interface {
		Chtimes(name string, atime, mtime time.Time) error
	}
	// StatFSer reports the capacity of the store.
	StatFSer interface {
		StatFS() (*FSStats, error)
	}
	// Resumer describes the partial a broken upload of name left, if any
	// (fs.ErrNotExist if none): its size is where a resume continues.
	Resumer interface {
		Partial(name string) (fs.FileInfo, error)
	}
	// Lstater describes name without following a final symlink.
	Lstater interface {
		Lstat(name string) (fs.FileInfo, error)
	}
)

// Optional capabilities of an Upload.
type (
	// UploadReader reads back what an upload holds so far (an SFTP open
	// for reading and writing).
	UploadReader interface {
		ReadAt(p []byte, off int64) (int, error)
	}
	// UploadTruncater sets the size of an open upload (SFTP FSETSTAT with
	// a size, ftruncate).
	UploadTruncater interface {
		Truncate(size int64) error
	}
	// UploadAttrs sets the mode and times the file will have (OpenSSH's
	// put -p sets them before it closes).
	UploadAttrs interface {
		Chmod(mode fs.FileMode) error
		Chtimes(atime, mtime time.Time) error
	}
	// UploadObject says, after Commit, where the upload landed in an
	// object store (s3://bucket/key) and its ETag, so that an event's
	// reader can fetch exactly that object.
	UploadObject interface {
		Object() (url, etag string)
	}
)

// Backend is a store in which each user's home is a directory.
type Backend interface {
	// Home returns the store whose "/" is home (a clean, rooted path such
	// as "/alice"; "/" is the whole store). A missing home is created.
	Home(home string) (Store, error)
	// Close releases the backend. Homes already returned stay usable until
	// they are closed themselves.
	Close() error
}

// FSStats describes capacity of the store a home lives on, as statvfs(2)
// does.
type FSStats struct {
	BlockSize   uint64
	Blocks      uint64 // total, in BlockSize units
	BlocksFree  uint64
	BlocksAvail uint64 // available to unprivileged users
	Files       uint64
	FilesFree   uint64
	NameMax     uint64
}
