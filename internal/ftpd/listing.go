package ftpd

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// A name with a control character cannot be shown over FTP: replies and
// listings are lines, so a CR or LF in a name would end one and start a
// forged one (an entry that is not there, a reply the server never sent).
// vfs refuses to create such names; one that exists anyway (written on
// the disk directly, or before that rule) is left out of LIST, NLST, MLSD
// and STAT listings, and shown escaped where it is named alone (MLST, STAT
// or LIST of that one file), so that it can still be renamed or deleted.

// hasControl reports whether name contains \x00-\x1f or \x7f.
func hasControl(name string) bool {
	return strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// showName escapes the control characters of name as Go does (\r, \n,
// \x01): a display form, never a name to open.
func showName(name string) string {
	if !hasControl(name) {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// shownInfo is a FileInfo whose name is safe to put in a reply.
type shownInfo struct {
	fs.FileInfo
	name string
}

func (i shownInfo) Name() string { return i.name }

func shown(fi fs.FileInfo) fs.FileInfo {
	if n := fi.Name(); hasControl(n) {
		return shownInfo{FileInfo: fi, name: showName(n)}
	}
	return fi
}

// Stat resolves a relative name against the working directory: the
// library passes absolute paths everywhere except HASH, which stats its
// raw argument before hashing the resolved file (ftpserverlib v0.32.3).
// An RNFR's Stat decides whether a rename may follow (rename.go).
func (c clientFS) Stat(name string) (fs.FileInfo, error) {
	if !path.IsAbs(name) {
		name = path.Join(c.cc.Path(), name)
	}
	fi, err := c.FS.Stat(name)
	if c.cc.GetLastCommand() == "RNFR" {
		c.st.ren.from(name, err == nil)
	}
	if err != nil {
		return nil, toReply(err)
	}
	return shown(fi), nil
}

// ReadDir is every listing ftpserverlib sends (LIST, NLST, MLSD, STAT of
// a directory), without the names that have a control character.
func (c clientFS) ReadDir(name string) ([]os.FileInfo, error) {
	d, err := c.FS.Open(name)
	if err != nil {
		return nil, toReply(err)
	}
	defer d.Close()
	all, err := d.Readdir(-1)
	if err != nil {
		return nil, toReply(err)
	}
	out := all[:0]
	hidden := 0
	for _, fi := range all {
		if hasControl(fi.Name()) {
			hidden++
			continue
		}
		out = append(out, fi)
	}
	if hidden > 0 {
		if cn := connOf(c.cc); cn != nil {
			cn.log.Warn("names with control characters left out of a listing", "path", showName(name), "count", hidden)
		}
	}
	return out, nil
}
