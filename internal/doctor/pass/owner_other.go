//go:build !unix

package pass

import "io/fs"

// owner is unknown outside Unix: every pass is refused there.
func owner(fs.FileInfo) (uid, gid int, ok bool) { return -1, -1, false }

const (
	noFollow = 0
	nonBlock = 0
)
