// Package vfs is wharf's chroot: every byte a client reads or writes goes
// through a per-session FS built here, over one user's Store (store.go).
// Stores confine a home (local disk through os.Root, so the kernel resolves
// every path beneath it; a bucket by its key mapping); FS applies the
// policy once, above any store: permissions, the size cap, hidden internal
// names, the session's view of its own open uploads, and the record of
// what happened. Errors that leave this package name only the client's
// path, never a host path.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// rel maps a client path ("/a/b", "a/../../b") to a store-relative one.
// After path.Clean on a rooted path, ".." can no longer climb above "/", so
// the result never starts with "..". It returns "." for the home itself.
func rel(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// clientPath is the canonical form of a client path; errors and logs show
// it through ShowPath.
func clientPath(name string) string { return path.Clean("/" + name) }

// pathErr rebuilds err so that it carries only the client's path. The
// underlying cause is reduced to an errno or one of the io/fs sentinels,
// which are generic; anything else (such as os.Root's unexported "path
// escapes from parent") becomes fs.ErrPermission: an attempt to leave the
// home is refused, not reported as a failure.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: ShowPath(clientPath(name)), Err: cause(err)}
}

func cause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	for _, sentinel := range []error{fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrClosed, fs.ErrInvalid, errors.ErrUnsupported, io.EOF} {
		if errors.Is(err, sentinel) {
			return sentinel
		}
	}
	// The remaining causes come from path resolution (os.Root's escape
	// check, afero's own messages) and may quote a host path: never pass
	// their text on.
	if strings.Contains(err.Error(), "escapes") {
		return fs.ErrPermission
	}
	return errFailed
}

// errFailed replaces a cause whose text is not fit for a client.
var errFailed = errors.New("operation failed")

// denied is the error for an operation the user may not perform.
func denied(op, name string) error {
	return &fs.PathError{Op: op, Path: ShowPath(clientPath(name)), Err: fs.ErrPermission}
}
