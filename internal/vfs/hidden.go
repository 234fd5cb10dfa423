package vfs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
)

// Internal names. A store that keeps an upload or a partial beside the
// file (local does, as a temporary file renamed over the name at commit)
// uses these prefixes; FS hides every name that starts with one from
// listings and answers a client naming one as if nothing were there
// (creating one: permission denied), on every store, so that no client
// can reach or forge another's upload.
const (
	uploadPrefix  = ".wharf-upload."
	partialPrefix = ".wharf-partial."

	// atomicNameMax is NAME_MAX: a longer client name is replaced by its
	// hash in the temporary and partial names.
	atomicNameMax = 255
	// tempSuffixLen is the length of a temporary name's ".<16 hex>".
	tempSuffixLen = 17
)

// isHidden reports whether a directory entry is an internal name.
func isHidden(base string) bool {
	return strings.HasPrefix(base, uploadPrefix) || strings.HasPrefix(base, partialPrefix)
}

// reserved reports whether any component of a client path is an internal
// name.
func reserved(name string) bool {
	p := clientPath(name)
	return strings.Contains(p, "/"+uploadPrefix) || strings.Contains(p, "/"+partialPrefix)
}

func notFound(op, name string) error {
	return &fs.PathError{Op: op, Path: clientPath(name), Err: fs.ErrNotExist}
}

// hiddenKey is how base appears in its temporary and partial names: base
// itself, or its hash when the longer of the two, the temporary name,
// would exceed a file name's length. Both names use the same key, so that
// a temporary file left by a crash maps back to its partial.
func hiddenKey(base string) string {
	if len(uploadPrefix)+len(base)+tempSuffixLen > atomicNameMax {
		sum := sha256.Sum256([]byte(base))
		return hex.EncodeToString(sum[:16])
	}
	return base
}

// partialOf is where a failed upload of name waits for its resume.
func partialOf(name string) string {
	dir, base := path.Split(clientPath(name))
	return dir + partialPrefix + hiddenKey(base)
}

// tempOf is a fresh temporary name for one upload of name.
func tempOf(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	dir, base := path.Split(clientPath(name))
	return dir + uploadPrefix + hiddenKey(base) + "." + hex.EncodeToString(b[:])
}

// partialForHidden returns the partial a hidden file left on disk belongs
// to: a temporary file's (".wharf-upload.<key>.<16 hex>"), or, for a
// partial named by an older version that hashed long names at another
// length, the partial's current name. ok is false for any other name and
// for a partial already under its current name.
func partialForHidden(base string) (partial string, ok bool) {
	if rest, found := strings.CutPrefix(base, uploadPrefix); found {
		n := len(rest) - tempSuffixLen
		if n <= 0 || rest[n] != '.' {
			return "", false
		}
		if _, err := hex.DecodeString(rest[n+1:]); err != nil {
			return "", false
		}
		return partialPrefix + rest[:n], true
	}
	if rest, found := strings.CutPrefix(base, partialPrefix); found && rest != "" {
		if key := hiddenKey(rest); key != rest {
			return partialPrefix + key, true
		}
	}
	return "", false
}

// namedInfo is a temporary file's or a partial's FileInfo under the
// client's name.
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }
