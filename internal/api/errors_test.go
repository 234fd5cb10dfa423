package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// A partner's file the daemon may not write (the systemd unit makes /etc
// read-only) is the deployment's doing: 409 not_editable with the remedy,
// not a 500.
func TestNotWritable(t *testing.T) {
	s, err := New(Options{Control: noControl{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cause := range []error{fs.ErrPermission, syscall.EROFS, syscall.EACCES} {
		e := s.apiError(fmt.Errorf("write /etc/wharf/wharf.yaml: %w", &fs.PathError{Op: "open", Path: "/etc/wharf/.wharf.yaml.tmp", Err: cause}))
		if e.Status != http.StatusConflict || e.Code != "not_editable" || !strings.Contains(e.Message, "users_dir") {
			t.Errorf("%v: %d %s %q", cause, e.Status, e.Code, e.Message)
		}
	}
	if e := s.apiError(errors.New("disk on fire")); e.Status != http.StatusInternalServerError {
		t.Errorf("another failure: %d %s", e.Status, e.Code)
	}
}
