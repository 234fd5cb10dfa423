package s3store

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is S3's limit on an object key, in bytes of UTF-8.
const MaxKeyLen = 1024

// ErrName is wrapped by every error of Key and DirPrefix. It wraps
// fs.ErrInvalid, so a front end that maps fs errors answers "bad name"; its
// text names no prefix and no bucket.
var ErrName = fmt.Errorf("name cannot be an object key: %w", fs.ErrInvalid)

// errPrefix is the operator's mistake, not the client's: Config.Validate
// reports it at start-up, so Key and Path never meet it in a running
// daemon.
var errPrefix = errors.New("prefix must be empty or folder names joined by \"/\" (no empty, \".\" or \"..\" part, no leading \"/\")")

// Key maps a client path ("/a/b", "a/../b") to the object key under prefix
// that stores it. The path is cleaned as a rooted path first, so ".." can
// never climb above the prefix: confinement on a flat namespace is this
// mapping, one way in and one way out (Path). The root has no key of its
// own (it is the prefix: see DirPrefix). Names S3 cannot store (not UTF-8,
// a NUL, a key over 1,024 bytes) are refused with ErrName.
func Key(prefix, clientPath string) (string, error) {
	p, err := normPrefix(prefix)
	if err != nil {
		return "", err
	}
	rel := path.Clean("/" + clientPath)[1:]
	if rel == "" {
		return "", fmt.Errorf("the root folder: %w", ErrName)
	}
	if !utf8.ValidString(rel) || strings.IndexByte(rel, 0) >= 0 {
		return "", fmt.Errorf("not UTF-8 or contains NUL: %w", ErrName)
	}
	key := p + rel
	if len(key) > MaxKeyLen {
		return "", fmt.Errorf("longer than %d bytes with the prefix: %w", MaxKeyLen, ErrName)
	}
	return key, nil
}

// DirPrefix is the key prefix that lists the folder at clientPath: the
// prefix itself for the root, else Key + "/". A folder's marker object
// (what mkdir writes) has this key.
func DirPrefix(prefix, clientPath string) (string, error) {
	if path.Clean("/"+clientPath) == "/" {
		return normPrefix(prefix)
	}
	k, err := Key(prefix, clientPath)
	if err != nil {
		return "", err
	}
	if len(k)+1 > MaxKeyLen {
		return "", fmt.Errorf("longer than %d bytes with the prefix: %w", MaxKeyLen, ErrName)
	}
	return k + "/", nil
}

// Path is Key's inverse: the client path ("/a/b") of a key found in the
// bucket, or false for a key that makes no sense as a path and must be
// skipped: outside the prefix, the prefix itself, an empty part ("a//b",
// "/a", a trailing "/"), a "." or ".." part, not UTF-8, a NUL. Other tools
// write such keys into shared buckets; they never reach a client and never
// confuse confinement. A caller holding a folder's marker or a listing's
// common prefix strips its one trailing "/" first.
//
// Every path it returns maps back to the same key: Key(prefix, p) == key.
func Path(prefix, key string) (string, bool) {
	p, err := normPrefix(prefix)
	if err != nil {
		return "", false
	}
	rel, ok := strings.CutPrefix(key, p)
	if !ok || rel == "" || len(key) > MaxKeyLen {
		return "", false
	}
	if !utf8.ValidString(rel) || strings.IndexByte(rel, 0) >= 0 {
		return "", false
	}
	for part := range strings.SplitSeq(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return "", false
		}
	}
	return "/" + rel, true
}

// normPrefix returns "" or the prefix's folders each followed by "/": an
// operator may write "wharf" or "wharf/", both mean the folder wharf/.
func normPrefix(prefix string) (string, error) {
	if prefix == "" {
		return "", nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if p == "" || !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		return "", errPrefix
	}
	for part := range strings.SplitSeq(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "", errPrefix
		}
	}
	if len(p)+1 >= MaxKeyLen {
		return "", errPrefix
	}
	return p + "/", nil
}
