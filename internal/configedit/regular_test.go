//go:build unix

package configedit

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigNotARegularFile: `wharf user` on a config that is a FIFO or a
// device fails at once with the reason, instead of blocking in the open
// of the lock or reading /dev/zero without end.
func TestConfigNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, zero} {
		done := make(chan error, 1)
		go func() {
			_, err := (&Editor{Path: path}).AddUser(NewUser{Name: "b", Home: "/b"})
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("AddUser on %s = %v; want a not-a-regular-file error", filepath.Base(path), err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("AddUser on %s still blocked after 5s", filepath.Base(path))
		}
	}
}
