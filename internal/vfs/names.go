package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"unicode/utf8"
)

// ErrBadName is the cause of a refusal to create a name that contains a
// control character (see BadName). The front ends map it to their
// "invalid file name" reply.
var ErrBadName = errors.New("invalid file name: control characters are not allowed")

// BadName reports whether a name may not be created: one with a control
// character (\x00-\x1f, \x7f). A CR or LF in a name forges lines in FTP
// listings and replies, an ESC drives the terminal of whoever lists the
// directory, and no partner's tool needs either. ftpd also leaves such a
// name, if one exists, out of its listings.
func BadName(name string) bool {
	return strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// checkNew refuses to create name (a client path) when its last element
// is a bad name; with all set (MkdirAll), when any element is. Only what
// is created is judged: a directory whose name predates this rule can
// still be entered, renamed to a good name or removed.
func checkNew(op, name string, all bool) error {
	p := clientPath(name)
	check := path.Base(p)
	if all {
		check = p
	}
	if !BadName(check) {
		return nil
	}
	return &fs.PathError{Op: op, Path: ShowPath(p), Err: ErrBadName}
}

// maxShownPath bounds how much of a client path a log line, an event or an
// error reply shows: a client may send a path of hundreds of KiB, and each
// of them would otherwise copy it whole.
const maxShownPath = 1024

// ShowPath is a client path as logs, events and error replies show it: at
// most maxShownPath bytes followed by a marker counting the bytes left out
// ("…[truncated 248976 bytes]"), with control characters escaped as Go
// does (\r, \n, \x01) so that a name cannot forge a line of an FTP reply
// or a log, or reach an operator's terminal. It never cuts a UTF-8
// sequence. The marker and escapes make it a display form only: never
// open what it returns.
func ShowPath(p string) string {
	if len(p) <= maxShownPath && !BadName(p) {
		return p // the common case allocates nothing
	}
	var b strings.Builder
	i := 0
	for i < len(p) {
		r, size := utf8.DecodeRuneInString(p[i:])
		var piece string
		switch {
		case r < 0x20 || r == 0x7f:
			piece = escapeControl(r)
		case r == utf8.RuneError && size == 1:
			piece = p[i : i+1] // not UTF-8: kept as sent, one byte
		default:
			piece = p[i : i+size]
		}
		if b.Len()+len(piece) > maxShownPath {
			break
		}
		b.WriteString(piece)
		i += size
	}
	if i < len(p) {
		fmt.Fprintf(&b, "…[truncated %d bytes]", len(p)-i)
	}
	return b.String()
}

func escapeControl(r rune) string {
	switch r {
	case '\t':
		return `\t`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	}
	return fmt.Sprintf(`\x%02x`, r)
}

// ShowError returns err with the path of a top-level *fs.PathError or
// *os.LinkError in its shown form (ShowPath): what a front end sends a
// client and what a log line quotes. vfs builds its own errors that way
// already; this also covers an error from any other layer, and is a no-op
// for a short, plain path.
func ShowError(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		if s := ShowPath(e.Path); s != e.Path {
			return &fs.PathError{Op: e.Op, Path: s, Err: e.Err}
		}
	case *os.LinkError:
		if o, n := ShowPath(e.Old), ShowPath(e.New); o != e.Old || n != e.New {
			return &os.LinkError{Op: e.Op, Old: o, New: n, Err: e.Err}
		}
	}
	return err
}
