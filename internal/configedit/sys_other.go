//go:build !unix

package configedit

import "io/fs"

func owner(fs.FileInfo) (uid, gid int) { return -1, -1 }

// lock is a no-op where flock is unavailable: concurrent edits may then
// lose one of the changes (never corrupt the file).
func lock(string) (func(), error) { return func() {}, nil }
