package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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

	umask := daemonUmask(t)
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

// daemonUmask is the umask the daemon inherits from this process, read
// from /proc rather than set to find out (which would race with other
// tests creating files).
func daemonUmask(t *testing.T) fs.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return fs.FileMode(m)
		}
	}
	t.Skip("no Umask in /proc/self/status")
	return 0
}
