//go:build unix

package pass

import (
	"io/fs"
	"syscall"
)

// owner returns the user and group owning a file.
func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, false
	}
	return int(st.Uid), int(st.Gid), true
}

// Flags of the pass files' opens: never through a link, never blocking on
// a FIFO put in a file's place.
const (
	noFollow = syscall.O_NOFOLLOW
	nonBlock = syscall.O_NONBLOCK
)
