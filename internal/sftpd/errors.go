package sftpd

import (
	"errors"
	"io"
	"io/fs"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// statusError carries an SFTP status code for pkg/sftp (which finds it with
// errors.As) and a message that names only the client's path.
type statusError struct {
	msg  string
	code error // one of sftp.ErrSSHFx*
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.code }

// toStatus maps a vfs error to the SFTP status a client should see. vfs
// errors already carry only client paths, in their shown form; ShowError
// keeps an error from any other layer to that form too, since pkg/sftp
// sends the message as it is.
func toStatus(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	code := sftp.ErrSSHFxFailure
	switch {
	case errors.Is(err, fs.ErrNotExist):
		code = sftp.ErrSSHFxNoSuchFile
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		code = sftp.ErrSSHFxPermissionDenied
	case errors.Is(err, errors.ErrUnsupported):
		code = sftp.ErrSSHFxOpUnsupported
	case errors.Is(err, vfs.ErrBadName):
		// SSH_FX_INVALID_FILENAME exists from protocol version 4 on; pkg/sftp
		// and OpenSSH speak version 3, where a failure with the message
		// ("invalid file name: control characters are not allowed") is what
		// the client can show.
		code = sftp.ErrSSHFxFailure
	}
	return &statusError{msg: vfs.ShowError(err).Error(), code: code}
}

// errStatus builds a status error for a condition found by the front end.
func errStatus(op, name string, cause, code error) error {
	return &statusError{msg: (&fs.PathError{Op: op, Path: vfs.ShowPath(name), Err: cause}).Error(), code: code}
}
