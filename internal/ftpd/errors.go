package ftpd

import (
	"errors"
	"syscall"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// replyError carries the reply code ftpserverlib should send for an error.
// The library (v0.32.3) chooses the code itself: it looks with errors.Is
// for ErrStorageExceeded (552) and ErrFileNameNotAllowed (553) on STOR,
// APPE and RNTO and on a failed transfer, and answers everything else with
// the command's own code (550 for file commands). The message stays the
// vfs error's, which names only the client's path.
type replyError struct {
	err  error
	code error // one of the ftpserver sentinels
}

func (e *replyError) Error() string   { return e.err.Error() }
func (e *replyError) Unwrap() []error { return []error{e.err, e.code} }

// toReply maps a vfs error to the FTP reply a client should see, as
// sftpd's toStatus does for SFTP: 552 for a write past the size cap or a
// full or over-quota store, 553 for a name wharf refuses to create, and
// the library's default (550) for the rest.
func toReply(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EFBIG), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &replyError{err: err, code: ftpserver.ErrStorageExceeded}
	case errors.Is(err, vfs.ErrBadName):
		return &replyError{err: err, code: ftpserver.ErrFileNameNotAllowed}
	}
	return err
}
