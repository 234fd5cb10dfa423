package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/wharf-sftp/wharf/internal/procstat"
)

// TestSameModesOnBothProtocols uploads a file and makes a directory over
// SFTP (OpenSSH) and over FTPS (curl): on disk both get the modes wharf
// chooses, 0640 and 0750 (less the daemon's umask), whatever the protocol
// and whatever the local file's mode.
func TestSameModesOnBothProtocols(t *testing.T) {
	requireClient(t, "sftp")
	requireClient(t, "curl")
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	home := f.HomeDir(alice)
	src := filepath.Join(t.TempDir(), "src")
	writeRandomFile(t, src, 4096)
	if err := os.Chmod(src, 0o755); err != nil { // a client that passes its mode on would show
		t.Fatal(err)
	}

	sftpOK(t, f.daemon, alice, "put "+src+" /via-sftp\nmkdir /dir-sftp\n")
	curlFTPSOK(t, f, alice, "-T", src, ftpsURL(f, "/via-ftps"))
	curlFTPSOK(t, f, alice, "-Q", "MKD dir-ftps", "--list-only", ftpsURL(f, "/"))

	umask, err := procstat.Umask() // the daemon inherits it
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		"via-sftp": 0o640, "via-ftps": 0o640, "dir-sftp": 0o750, "dir-ftps": 0o750,
	} {
		fi, err := os.Stat(filepath.Join(home, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want&^umask {
			t.Errorf("%s has mode %#o, want %#o (%#o less the umask %#o)", name, got, want&^umask, want, umask)
		}
	}
}
