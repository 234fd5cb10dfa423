package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxFileSize bounds each file ReadFile reads: the config file and every
// users_dir file. A config of 100,000 users is a few MiB; anything larger
// is a mistake (a log, a disk image, a device) that must not be read whole.
const MaxFileSize = 16 << 20

// ErrNotRegular is returned, wrapped in an *fs.PathError, for a path that
// is (or points to) a FIFO, a device, a socket or a folder: reading a FIFO
// blocks until someone writes, /dev/zero never ends.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned, wrapped in an *fs.PathError, for a file larger
// than MaxFileSize.
var ErrTooLarge = fmt.Errorf("larger than %d MiB", MaxFileSize>>20)

// OpenFile opens a config file for reading after checking that it is a
// regular file (symbolic links followed) of at most MaxFileSize bytes. It
// is the one gate every reader of config files goes through: Load, the
// daemon's reload, `wharf config check` and `wharf user`.
//
// The path is checked with stat before it is opened, so that a device is
// never opened at all (opening some has effects: a tape rewinds, a watchdog
// arms), then opened with O_NONBLOCK so that a FIFO swapped in meanwhile
// cannot block the open, and checked again on the open file.
func OpenFile(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkInfo(path, fi); err != nil {
		return nil, err
	}
	f, err := openNonblock(path)
	if err != nil {
		return nil, err
	}
	ofi, err := f.Stat()
	if err == nil {
		err = checkInfo(path, ofi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkInfo(path string, fi fs.FileInfo) error {
	if m := fi.Mode(); !m.IsRegular() {
		kind := "a special file"
		switch {
		case m.IsDir():
			kind = "a folder"
		case m&fs.ModeNamedPipe != 0:
			kind = "a FIFO"
		case m&fs.ModeSocket != 0:
			kind = "a socket"
		case m&fs.ModeDevice != 0:
			kind = "a device"
		}
		return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, kind)}
	}
	if fi.Size() > MaxFileSize {
		return &fs.PathError{Op: "open", Path: path, Err: ErrTooLarge}
	}
	return nil
}

// ReadFile returns the contents of the config file at path, through the
// checks of OpenFile. A file that grows past MaxFileSize while it is read
// is refused too.
func ReadFile(path string) ([]byte, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err // already an *fs.PathError naming path
	}
	if len(data) > MaxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: ErrTooLarge}
	}
	return data, nil
}
