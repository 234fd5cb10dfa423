package ftpd

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// toReply picks the sentinel ftpserverlib turns into 552 or 553, and keeps
// the vfs error (its message and its kind) for everything else.
func TestToReply(t *testing.T) {
	for _, c := range []struct {
		cause error
		want  error // nil: no ftpserver sentinel (550)
	}{
		{syscall.EFBIG, ftpserver.ErrStorageExceeded},
		{syscall.ENOSPC, ftpserver.ErrStorageExceeded},
		{syscall.EDQUOT, ftpserver.ErrStorageExceeded},
		{vfs.ErrBadName, ftpserver.ErrFileNameNotAllowed},
		{fs.ErrNotExist, nil},
		{fs.ErrPermission, nil},
	} {
		err := &fs.PathError{Op: "write", Path: "/in/a.csv", Err: c.cause}
		// The library wraps driver errors before it picks the code.
		got := fmt.Errorf("error transferring data: %w", toReply(err))
		for _, s := range []error{ftpserver.ErrStorageExceeded, ftpserver.ErrFileNameNotAllowed} {
			if errors.Is(got, s) != (s == c.want) {
				t.Errorf("%v: errors.Is(%v) = %v", c.cause, s, !(s == c.want))
			}
		}
		if !errors.Is(got, c.cause) || got.Error() != "error transferring data: "+err.Error() {
			t.Errorf("%v: %q lost the vfs error", c.cause, got)
		}
	}
	if toReply(nil) != nil {
		t.Error("toReply(nil) is not nil")
	}
}
