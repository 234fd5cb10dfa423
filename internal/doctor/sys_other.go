//go:build !linux

package doctor

import (
	"errors"
	"io/fs"
)

var errUnsupported = errors.New("not supported on this system")

func lockHolder(string) (int, bool, error) { return 0, false, errUnsupported }

func ownerOf(fs.FileInfo) (int, bool) { return 0, false }

func clockSync() (bool, int64, error) { return false, 0, errUnsupported }
