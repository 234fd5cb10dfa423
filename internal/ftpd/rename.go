package ftpd

import (
	"errors"
	"io/fs"
	"sync"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// errRNFRFirst refuses an RNTO that does not follow a successful RNFR.
// ftpserverlib (v0.32.3) keeps the source of an RNFR until a rename
// succeeds: after a failed RNFR or a failed RNTO, the next RNTO would
// rename an earlier source the client may have long given up on. wharf
// keeps its own record of the pending source and refuses such a rename.
// The library picks the reply code: 550, with this text.
var errRNFRFirst = errors.New("RNFR required: the previous RNFR or RNTO failed")

// renameState is the source the last RNFR accepted, if any.
type renameState struct {
	mu      sync.Mutex
	pending string // "" when no rename may follow
}

// from records the outcome of an RNFR of name: a failed one clears the
// source of an earlier one.
func (r *renameState) from(name string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = ""
	if ok {
		r.pending = name
	}
}

// take consumes the pending source: it reports whether it is name. Any
// RNTO, successful or not, ends the RNFR it follows (RFC 959, 4.1.3).
func (r *renameState) take(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := r.pending != "" && r.pending == name
	r.pending = ""
	return ok
}

// Rename is RNTO: it renames only the source of the RNFR just accepted.
func (c clientFS) Rename(oldname, newname string) error {
	if !c.st.ren.take(oldname) {
		return &fs.PathError{Op: "rename", Path: vfs.ShowPath(oldname), Err: errRNFRFirst}
	}
	return toReply(c.fs.Rename(oldname, newname))
}
