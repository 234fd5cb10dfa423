package vfs

import (
	"io/fs"
	"os"
	"testing"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// The backend chooses the mode of what a client creates, whatever the
// front end asks: ftpserverlib asks 0777 for files and 0755 for
// directories, pkg/sftp passes the client's. The umask still applies on
// disk, as for any process.
func TestCreatedModes(t *testing.T) {
	umask, err := procstat.Umask()
	if err != nil {
		t.Fatal(err)
	}
	masked := func(m fs.FileMode) fs.FileMode { return m &^ umask }
	backends := map[string]struct {
		b    func(t *testing.T) Backend
		mask func(fs.FileMode) fs.FileMode
	}{
		"local": {func(t *testing.T) Backend {
			b, err := NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, masked},
		"memory": {func(*testing.T) Backend { return NewMemory() }, func(m fs.FileMode) fs.FileMode { return m }},
	}
	for name, tc := range backends {
		t.Run(name, func(t *testing.T) {
			h := openHome(t, tc.b(t), "/u")
			for _, asked := range []fs.FileMode{0o777, 0o755, 0o600, 0} {
				f, err := h.OpenFile("/f", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, asked)
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
				if err := h.Mkdir("/d", asked); err != nil {
					t.Fatal(err)
				}
				if err := h.MkdirAll("/p/q", asked); err != nil {
					t.Fatal(err)
				}
				for p, want := range map[string]fs.FileMode{"/f": fileMode, "/d": dirMode, "/p": dirMode, "/p/q": dirMode} {
					fi, err := h.Stat(p)
					if err != nil {
						t.Fatal(err)
					}
					if got := fi.Mode().Perm(); got != tc.mask(want) {
						t.Errorf("%s created with mode %#o has %#o, want %#o", p, asked, got, tc.mask(want))
					}
				}
				for _, p := range []string{"/f", "/d", "/p/q", "/p"} {
					if err := h.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
