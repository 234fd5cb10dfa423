// Package regfile reads files named by an operator (the config, users_dir
// files, host keys, token and secret files) whole, and only when they are
// what they claim to be: a regular file, symbolic links followed, of
// bounded size. A path pointed at a FIFO would block its reader for ever,
// one at /dev/zero would never end, and a large file would be held whole
// in memory.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotRegular is returned, wrapped in an *fs.PathError, for a path that
// is (or points to) a FIFO, a device, a socket or a folder: reading a FIFO
// blocks until someone writes, /dev/zero never ends.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned, wrapped in an *fs.PathError, for a file larger
// than the limit its reader set.
var ErrTooLarge = errors.New("file too large")

// Open opens path for reading after checking that it is a regular file
// (symbolic links followed) of at most max bytes.
//
// The path is checked with stat before it is opened, so that a device is
// never opened at all (opening some has effects: a tape rewinds, a watchdog
// arms), then opened with O_NONBLOCK so that a FIFO swapped in meanwhile
// cannot block the open, and checked again on the open file.
func Open(path string, max int64) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, fi, max); err != nil {
		return nil, err
	}
	f, err := openNonblock(path)
	if err != nil {
		return nil, err
	}
	ofi, err := f.Stat()
	if err == nil {
		err = check(path, ofi, max)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func check(path string, fi fs.FileInfo, max int64) error {
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
	if fi.Size() > max {
		return tooLarge("open", path, max)
	}
	return nil
}

func tooLarge(op, path string, max int64) error {
	return &fs.PathError{Op: op, Path: path, Err: &tooLargeError{max}}
}

// tooLargeError says what the limit was, and is ErrTooLarge.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string        { return "larger than " + size(e.max) }
func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Read returns the contents of path, through the checks of Open. A file
// that grows past max while it is read is refused too.
func Read(path string, max int64) ([]byte, error) {
	f, err := Open(path, max)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err // already an *fs.PathError naming path
	}
	if int64(len(data)) > max {
		return nil, tooLarge("read", path, max)
	}
	return data, nil
}
