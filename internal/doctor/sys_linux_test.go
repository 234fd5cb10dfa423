package doctor

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDaemonLock: a process holding state_dir's lock, as the daemon does,
// is seen without the doctor taking the lock itself.
func TestDaemonLock(t *testing.T) {
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, stateLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	pid, held, err := lockHolder(filepath.Join(dir, stateLockFile))
	if err != nil || !held || pid != os.Getpid() {
		t.Fatalf("lockHolder = %d, %v, %v; want this process (%d)", pid, held, err, os.Getpid())
	}
}
