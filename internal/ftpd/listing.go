package ftpd

import (
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// A name with a control character cannot be shown over FTP: replies and
// listings are lines, so a CR or LF in a name would end one and start a
// forged one (an entry that is not there, a reply the server never sent).
// vfs refuses to create such names; one that exists anyway (written on
// the disk directly, or before that rule) is left out of LIST, NLST, MLSD
// and STAT listings, and shown escaped where it is named alone (MLST, STAT
// or LIST of that one file), so that it can still be renamed or deleted.
// The rule (vfs.BadName) and the escaped form (vfs.ShowPath) are vfs's.

// shownInfo is a FileInfo whose name is safe to put in a reply.
type shownInfo struct {
	fs.FileInfo
	name string
}

func (i shownInfo) Name() string { return i.name }

func shown(fi fs.FileInfo) fs.FileInfo {
	if n := fi.Name(); vfs.BadName(n) {
		return shownInfo{FileInfo: fi, name: vfs.ShowPath(n)}
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
	fi, err := c.fs.Stat(name)
	if c.cc.GetLastCommand() == "RNFR" {
		c.st.ren.from(name, err == nil)
	}
	if err != nil {
		return nil, toReply(err)
	}
	return shown(fi), nil
}

// listChunk is how many entries a listing asks the store for at once.
const listChunk = 1000

// ReadDir is every listing ftpserverlib sends (LIST, NLST, MLSD, STAT of
// a directory), without the names that have a control character.
func (c clientFS) ReadDir(name string) ([]os.FileInfo, error) {
	d, err := c.fs.List(name)
	if err != nil {
		return nil, toReply(err)
	}
	defer d.Close()
	// ftpserverlib takes the whole listing as one slice; it is read from
	// the store in chunks all the same.
	var out []os.FileInfo
	hidden := 0
	for {
		fis, err := d.Next(listChunk)
		for _, fi := range fis {
			if vfs.BadName(fi.Name()) {
				hidden++
				continue
			}
			out = append(out, fi)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, toReply(err)
		}
	}
	if hidden > 0 {
		if cn := connOf(c.cc); cn != nil {
			cn.log.Warn("names with control characters left out of a listing", "path", vfs.ShowPath(name), "count", hidden)
		}
	}
	return out, nil
}
