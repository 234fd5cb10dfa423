package ftpd

import (
	"crypto/md5"  //nolint:gosec // HASH MD5 and XMD5: the client asked for it
	"crypto/sha1" //nolint:gosec // HASH SHA-1 and XSHA1: the client asked for it
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// errHashRange refuses a checksum range that ends before it starts.
var errHashRange = errors.New("invalid range: end before start")

// ComputeHash answers HASH, XCRC, XMD5, XSHA1, XSHA256 and XSHA512. It
// reads the file itself, rather than letting ftpserverlib open it as for a
// download, so that the read is recorded as a checksum: nothing but the
// digest leaves the server, and hooks waiting for downloads must not see
// one.
func (c clientFS) ComputeHash(name string, algo ftpserver.HASHAlgo, start, end int64) (string, error) {
	var h hash.Hash
	switch algo {
	case ftpserver.HASHAlgoCRC32:
		h = crc32.NewIEEE()
	case ftpserver.HASHAlgoMD5:
		h = md5.New() //nolint:gosec
	case ftpserver.HASHAlgoSHA1:
		h = sha1.New() //nolint:gosec
	case ftpserver.HASHAlgoSHA256:
		h = sha256.New()
	case ftpserver.HASHAlgoSHA512:
		h = sha512.New()
	default:
		return "", fmt.Errorf("unknown hash algorithm %d", algo)
	}
	if start < 0 || end < start {
		return "", &fs.PathError{Op: "hash", Path: vfs.ShowPath(name), Err: errHashRange}
	}
	f, err := c.fs.Open(name, start)
	if err != nil {
		return "", toReply(err)
	}
	defer f.Close()
	f.Checksum()
	if _, err := io.CopyN(h, f, end-start); err != nil && !errors.Is(err, io.EOF) {
		return "", toReply(err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
