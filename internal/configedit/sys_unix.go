//go:build unix

package configedit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// owner returns a file's uid and gid; -1, -1 when unknown.
func owner(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// lockTimeout is how long an edit waits for another one to finish.
const lockTimeout = 30 * time.Second

// lock takes an exclusive flock on the file at path, so that two `wharf
// user` commands run at once (say, from a provisioning script) each see the
// other's change instead of overwriting it. Each edit replaces the file by
// rename, so after waiting the lock may be on a file no longer at path: then
// it starts over on the new one.
func lock(path string) (unlock func(), err error) {
	deadline := time.Now().Add(lockTimeout)
	for {
		// Through config's gate: a FIFO in place of the config must not
		// block the open, nor a device be opened at all.
		f, err := config.OpenFile(path)
		if err != nil {
			return nil, fmt.Errorf("lock config: %w", err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				break
			}
			if time.Now().After(deadline) {
				f.Close()
				return nil, fmt.Errorf("lock config: %s is being edited by another process (waited %s)", path, lockTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock config %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil
		}
		f.Close()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock config: %s keeps being replaced", path)
		}
	}
}
