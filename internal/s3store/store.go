package s3store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// store is one home: every key below prefix. Confinement is the key
// mapping (Key, DirPrefix, Path): every client name goes through it, and
// no key it yields can leave prefix.
//
// The namespace is flat; folders are what S3 tools make of it:
//   - a file is an object; its size and time are the object's;
//   - a folder is a marker object "name/" (what Mkdir writes) or any
//     object under "name/" (an implicit folder, as other tools leave);
//   - a name cannot be both: versitygw refuses it, and the store refuses
//     it on every S3 with POSIX's errors (EISDIR, ENOTDIR, EEXIST);
//   - as on a disk, a new name's parent must be a folder (Mkdir, Create):
//     otherwise an upload would make folders no client asked for;
//   - keys other tools wrote that make no sense as paths ("a//b", "../x",
//     a "/"-ended key with content) are never listed and cannot be named.
type store struct {
	b      *Backend
	prefix string // the home's keys: "" or "a/b/"
	looks  *looks // what this session's Stat calls found (looks.go)
}

var (
	_ vfs.Store     = (*store)(nil)
	_ vfs.Renamer   = (*store)(nil)
	_ vfs.Truncater = (*store)(nil)
	_ vfs.Chmoder   = (*store)(nil)
	_ vfs.Chtimeser = (*store)(nil)
	_ vfs.Resumer   = (*store)(nil)
)

// key maps a client name to its object key. The partial records' folder
// is refused as well as every name Key refuses: a home that is the whole
// prefix holds it, and no client name may reach it.
func (s *store) key(name string) (string, error) {
	k, err := Key(s.prefix, name)
	if err != nil {
		return "", err
	}
	if k+"/" == s.b.records || strings.HasPrefix(k, s.b.records) {
		return "", fmt.Errorf("wharf's own folder: %w", ErrName)
	}
	return k, nil
}

func isRoot(name string) bool { return path.Clean("/"+name) == "/" }

func baseName(name string) string { return path.Base(path.Clean("/" + name)) }

// Stat describes a file (its object) or a folder (a marker or anything
// under it); the root is always a folder.
func (s *store) Stat(name string) (fs.FileInfo, error) {
	if isRoot(name) {
		return info{name: "/", dir: true, mtime: epoch()}, nil
	}
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	fi, err := s.headFile(key)
	if err == nil {
		s.looks.saw(key, &fi, false, s.b.o.Now())
	}
	if err == nil || !notFound(err) {
		return fi, err
	}
	d, err := s.dirInfo(key)
	if err != nil {
		return nil, err
	}
	s.looks.saw(key, nil, d != nil, s.b.o.Now())
	if d == nil {
		return nil, failure("stat", key, fs.ErrNotExist, "no object and no folder")
	}
	return d, nil
}

// headFile describes the object key.
func (s *store) headFile(key string) (info, error) {
	ctx, cancel := s.b.reqCtx()
	defer cancel()
	h, err := s.b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.b.bucket, Key: &key})
	if err != nil {
		return info{}, s3Err("head", key, err)
	}
	return info{name: path.Base(key), size: aws.ToInt64(h.ContentLength), mtime: aws.ToTime(h.LastModified),
		etag: aws.ToString(h.ETag)}, nil
}

// dirInfo describes the folder key if it has a marker or anything under
// it, and returns nil otherwise. The marker, if first, gives its time.
func (s *store) dirInfo(key string) (fs.FileInfo, error) {
	ctx, cancel := s.b.reqCtx()
	defer cancel()
	dir := key + "/"
	page, err := s.b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &s.b.bucket, Prefix: &dir, MaxKeys: ptr(int32(1))})
	if err != nil {
		return nil, s3Err("list", dir, err)
	}
	if len(page.Contents) == 0 {
		return nil, nil
	}
	mtime := epoch()
	if aws.ToString(page.Contents[0].Key) == dir {
		mtime = aws.ToTime(page.Contents[0].LastModified)
	}
	return info{name: path.Base(key), dir: true, mtime: mtime}, nil
}

// kindOfName says what key is: a file, a folder, or nothing.
func (s *store) kindOfName(key string) (file *info, dir bool, err error) {
	fi, err := s.headFile(key)
	if err == nil {
		return &fi, false, nil
	}
	if !notFound(err) {
		return nil, false, err
	}
	d, err := s.dirInfo(key)
	return nil, d != nil, err
}

// parentDir checks that name's parent is a folder.
func (s *store) parentDir(op, name string) error {
	parent := path.Dir(path.Clean("/" + name))
	if parent == "/" {
		return nil
	}
	key, err := s.key(parent)
	if err != nil {
		return err
	}
	// A folder first: one request when it is one, the common case.
	d, err := s.dirInfo(key)
	if err != nil || d != nil {
		return err
	}
	if _, err := s.headFile(key); err == nil {
		return failure(op, key, syscall.ENOTDIR, "the parent is a file")
	} else if !notFound(err) {
		return err
	}
	return failure(op, key, fs.ErrNotExist, "no parent folder")
}

// putMarker writes the empty object that makes key (ending in "/") a
// folder.
func (s *store) putMarker(key string) error {
	ctx, cancel := s.b.reqCtx()
	defer cancel()
	_, err := s.b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.b.bucket, Key: &key,
		Body: bytes.NewReader(nil), ContentLength: ptr(int64(0)), ContentType: ptr("application/x-directory")})
	return s3Err("mkdir", key, err)
}

func (s *store) deleteKey(op, key string) error {
	ctx, cancel := s.b.reqCtx()
	defer cancel()
	_, err := s.b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.b.bucket, Key: &key})
	return s3Err(op, key, err)
}

// Remove deletes the file name and drops its partial (aborting its
// multipart upload), unless an upload in progress continues that partial.
func (s *store) Remove(name string) error {
	s.looks.forget()
	if isRoot(name) {
		return failure("remove", s.prefix, syscall.EISDIR, "the home folder")
	}
	key, err := s.key(name)
	if err != nil {
		return err
	}
	file, dir, err := s.kindOfName(key)
	if err != nil {
		return err
	}
	if dir {
		return failure("remove", key, syscall.EISDIR, "a folder")
	}
	if file != nil {
		if err := s.deleteKey("remove", key); err != nil {
			return err
		}
	}
	dropped, err := s.b.dropPartial(key)
	if err != nil {
		return err
	}
	if file == nil && !dropped {
		return failure("remove", key, fs.ErrNotExist, "no object and no partial")
	}
	return nil
}

// Mkdir writes the folder's marker. The parent must be a folder, and
// nothing may have the name.
func (s *store) Mkdir(name string) error {
	s.looks.forget()
	if isRoot(name) {
		return failure("mkdir", s.prefix, fs.ErrExist, "the home folder")
	}
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if len(key)+1 > MaxKeyLen {
		return failure("mkdir", key, fs.ErrInvalid, "longer than %d bytes with its marker's /", MaxKeyLen)
	}
	file, dir, err := s.kindOfName(key)
	if err != nil {
		return err
	}
	if file != nil || dir {
		return failure("mkdir", key, fs.ErrExist, "exists")
	}
	if err := s.parentDir("mkdir", name); err != nil {
		return err
	}
	return s.putMarker(key + "/")
}

// Rmdir deletes an empty folder's marker, and the partials of uploads
// into it (which S3 keeps outside the folder). A folder with any object
// under it other than its marker is not empty.
func (s *store) Rmdir(name string) error {
	s.looks.forget()
	if isRoot(name) {
		return failure("rmdir", s.prefix, fs.ErrPermission, "the home folder")
	}
	key, err := s.key(name)
	if err != nil {
		return err
	}
	dir := key + "/"
	ctx, cancel := s.b.reqCtx()
	page, err := s.b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &s.b.bucket, Prefix: &dir, MaxKeys: ptr(int32(2))})
	cancel()
	if err != nil {
		return s3Err("rmdir", dir, err)
	}
	marker := false
	for _, o := range page.Contents {
		if aws.ToString(o.Key) != dir {
			return failure("rmdir", dir, syscall.ENOTEMPTY, "holds %s", aws.ToString(o.Key))
		}
		marker = true
	}
	if !marker {
		if _, err := s.headFile(key); err == nil {
			return failure("rmdir", key, syscall.ENOTDIR, "a file")
		} else if !notFound(err) {
			return err
		}
		return failure("rmdir", key, fs.ErrNotExist, "no folder")
	}
	if err := s.deleteKey("rmdir", dir); err != nil {
		return err
	}
	_, err = s.b.dropPartialsUnder(dir)
	return err
}

// Close releases nothing: each request holds its own resources.
func (s *store) Close() error { return nil }

// Chmod and Chtimes: objects keep neither mode nor settable times. With
// setstat: ignore they are accepted (for a name that exists) and
// ignored; with setstat: error refused.
func (s *store) Chmod(name string, _ fs.FileMode) error { return s.setstat("chmod", name) }

func (s *store) Chtimes(name string, _, _ time.Time) error { return s.setstat("chtimes", name) }

func (s *store) setstat(op, name string) error {
	if s.b.cfg.Setstat == SetstatError {
		return failure(op, name, errors.ErrUnsupported, "objects keep no modes or times (s3.setstat: error)")
	}
	if _, err := s.Stat(name); err == nil || !notFound(err) {
		return err
	}
	_, err := s.Partial(name)
	return err
}

// Truncate cannot change an object's size in place: it accepts only the
// size the name already has (its partial's, if it has one), which clients
// set after an upload as they set times.
func (s *store) Truncate(name string, size int64) error {
	fi, err := s.Partial(name)
	if notFound(err) {
		fi, err = s.Stat(name)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return failure("truncate", name, syscall.EISDIR, "a folder")
	}
	if fi.Size() != size {
		return failure("truncate", name, errors.ErrUnsupported, "objects cannot change size in place (%d to %d)", fi.Size(), size)
	}
	return nil
}
