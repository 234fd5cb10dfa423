package vfs

import (
	"io/fs"
	"testing"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// The store chooses the mode of what a client creates, whatever the front
// end asked (ftpserverlib asks 0777 for files and 0755 for directories,
// pkg/sftp passes the client's): FS takes no mode at all. The umask still
// applies on disk, as for any process. An overwrite keeps the file's mode,
// as writing in place would.
func TestCreatedModes(t *testing.T) {
	umask, err := procstat.Umask()
	if err != nil {
		t.Fatal(err)
	}
	forEachStore(t, storeKinds(), func(t *testing.T, h *home) {
		mask := func(m fs.FileMode) fs.FileMode { return m }
		if h.kind.local {
			mask = func(m fs.FileMode) fs.FileMode { return m &^ umask }
		}
		s := h.fs
		put(t, s, "/f", trunc, "x")
		if err := s.Mkdir("/d"); err != nil {
			t.Fatal(err)
		}
		if err := s.Mkdir("/d/e"); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]fs.FileMode{"/f": fileMode, "/d": dirMode, "/d/e": dirMode} {
			fi, err := s.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != mask(want) {
				t.Errorf("%s created with mode %#o, want %#o", p, got, mask(want))
			}
		}
		if err := s.Chmod("/f", 0o604); err != nil {
			t.Fatal(err)
		}
		for _, flag := range []int{trunc, appnd} {
			put(t, s, "/f", flag, "y")
			if fi, err := s.Stat("/f"); err != nil || fi.Mode().Perm() != 0o604 {
				t.Errorf("after an overwrite (flags %#x): %v, %v; want the file's 0604 kept", flag, fi, err)
			}
		}
	})
}
