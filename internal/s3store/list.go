package s3store

import (
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// List streams the folder name one listing page at a time (delimiter "/",
// Options.ListPage keys a page): a folder of any size lists in the memory
// of one page. The first page is fetched here, so that a missing folder
// (nothing under it) or a file fails List itself.
func (s *store) List(name string) (vfs.Lister, error) {
	dir := s.prefix
	if !isRoot(name) {
		key, err := s.key(name)
		if err != nil {
			return nil, err
		}
		dir = key + "/"
	}
	l := &lister{s: s, dir: dir}
	seen, err := l.fetch()
	if err != nil {
		return nil, err
	}
	if !seen && !isRoot(name) {
		key := strings.TrimSuffix(dir, "/")
		if _, err := s.headFile(key); err == nil {
			return nil, failure("list", key, syscall.ENOTDIR, "a file")
		} else if !notFound(err) {
			return nil, err
		}
		return nil, failure("list", dir, fs.ErrNotExist, "no folder")
	}
	return l, nil
}

type lister struct {
	s      *store
	dir    string // the folder's key prefix
	token  *string
	done   bool          // no page left to fetch
	buf    []fs.FileInfo // the current page's entries not yet returned
	last   string        // the last name returned: a file and a folder of one name list once
	closed bool
}

// Next returns up to n entries, fetching pages as it needs them.
func (l *lister) Next(n int) ([]fs.FileInfo, error) {
	if l.closed {
		return nil, fs.ErrClosed
	}
	for len(l.buf) == 0 && !l.done {
		if _, err := l.fetch(); err != nil {
			return nil, err
		}
	}
	k := min(n, len(l.buf))
	out := l.buf[:k:k]
	l.buf = l.buf[k:]
	if len(l.buf) == 0 && l.done {
		return out, io.EOF
	}
	return out, nil
}

func (l *lister) Close() error {
	l.closed, l.buf = true, nil
	return nil
}

// fetch reads the next page into buf and reports whether it held any key
// or folder at all (the folder's own marker included), which tells an
// empty folder from a missing one.
func (l *lister) fetch() (bool, error) {
	ctx, cancel := l.s.b.reqCtx()
	defer cancel()
	page, err := l.s.b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &l.s.b.bucket, Prefix: &l.dir, Delimiter: ptr("/"),
		MaxKeys: ptr(int32(l.s.b.o.ListPage)), ContinuationToken: l.token})
	if err != nil {
		return false, s3Err("list", l.dir, err)
	}
	l.token = page.NextContinuationToken
	l.done = !aws.ToBool(page.IsTruncated) || l.token == nil
	l.buf = l.entries(page)
	return len(page.Contents)+len(page.CommonPrefixes) > 0, nil
}

// entries merges a page's files and folders, each sorted by key, into one
// list in key order, leaving out the folder's own marker and every key
// that is no path (Path refuses it).
func (l *lister) entries(page *s3.ListObjectsV2Output) []fs.FileInfo {
	out := make([]fs.FileInfo, 0, len(page.Contents)+len(page.CommonPrefixes))
	files, dirs := page.Contents, page.CommonPrefixes
	for len(files) > 0 || len(dirs) > 0 {
		var fi info
		var key string
		if len(dirs) == 0 || len(files) > 0 && aws.ToString(files[0].Key) < aws.ToString(dirs[0].Prefix) {
			o := files[0]
			files = files[1:]
			key = aws.ToString(o.Key)
			if key == l.dir {
				continue // the folder's marker
			}
			fi = info{size: aws.ToInt64(o.Size), mtime: aws.ToTime(o.LastModified)}
		} else {
			key = strings.TrimSuffix(aws.ToString(dirs[0].Prefix), "/")
			dirs = dirs[1:]
			fi = info{dir: true, mtime: epoch()}
		}
		p, ok := Path(l.s.prefix, key)
		if !ok {
			continue
		}
		fi.name = path.Base(p)
		if fi.name == l.last {
			continue // a file and a folder of one name (AWS allows both): Stat shows the file
		}
		l.last = fi.name
		out = append(out, fi)
	}
	return out
}
