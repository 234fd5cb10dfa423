package s3store

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Rename has no S3 operation behind it: a file is copied server-side
// (CopyObject; a multipart upload of UploadPartCopy ranges above 5 GiB,
// CopyObject's limit) and then deleted; a folder is each object under it
// so copied, then each deleted, up to max_rename_objects objects: a larger
// folder is refused before anything is copied. The cost is the bucket's
// copy of every byte (no byte passes through the daemon), and a rename
// that fails midway leaves the copies made so far beside the originals,
// all of which are still there. A file replaces a file at newname (and
// drops newname's partial); a folder replaces only an empty folder. The
// partials of uploads into a renamed folder are dropped with it: a
// multipart upload cannot change its key.
func (s *store) Rename(oldname, newname string) error {
	s.looks.forget()
	if isRoot(oldname) || isRoot(newname) {
		return failure("rename", s.prefix, fs.ErrPermission, "the home folder")
	}
	src, err := s.key(oldname)
	if err != nil {
		return err
	}
	dst, err := s.key(newname)
	if err != nil {
		return err
	}
	file, dir, err := s.kindOfName(src)
	if err != nil {
		return err
	}
	if file == nil && !dir {
		return failure("rename", src, fs.ErrNotExist, "no object and no folder")
	}
	if src == dst {
		return nil
	}
	if strings.HasPrefix(dst, src+"/") {
		return failure("rename", src, syscall.EINVAL, "into itself")
	}
	dfile, ddir, err := s.kindOfName(dst)
	if err != nil {
		return err
	}
	if err := s.parentDir("rename", newname); err != nil {
		return err
	}
	if file != nil {
		if ddir {
			return failure("rename", dst, syscall.EISDIR, "a folder")
		}
		if err := s.b.copyObject(src, dst, file.size, file.etag); err != nil {
			return err
		}
		if err := s.deleteKey("rename", src); err != nil {
			return err
		}
		_, err := s.b.dropPartial(dst)
		return err
	}
	if dfile != nil {
		return failure("rename", dst, syscall.ENOTDIR, "a file")
	}
	if ddir {
		if err := s.emptyDir(dst + "/"); err != nil {
			return err
		}
	}
	return s.renameDir(src+"/", dst+"/")
}

// emptyDir fails with ENOTEMPTY if anything but the marker is under dir.
func (s *store) emptyDir(dir string) error {
	ctx, cancel := s.b.reqCtx()
	defer cancel()
	page, err := s.b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &s.b.bucket, Prefix: &dir, MaxKeys: ptr(int32(2))})
	if err != nil {
		return s3Err("rename", dir, err)
	}
	for _, o := range page.Contents {
		if aws.ToString(o.Key) != dir {
			return failure("rename", dir, syscall.ENOTEMPTY, "holds %s", aws.ToString(o.Key))
		}
	}
	return nil
}

// renameDir copies every object under src (a folder's prefix, marker
// included) to the same place under dst, then deletes them. The keys
// are listed once and held (at most max_rename_objects of them).
func (s *store) renameDir(src, dst string) error {
	limit := s.b.cfg.MaxRenameObjects
	var objs []types.Object
	var token *string
	for {
		ctx, cancel := s.b.reqCtx()
		page, err := s.b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: &s.b.bucket, Prefix: &src, ContinuationToken: token,
			MaxKeys: ptr(int32(min(maxListPage, limit+1-len(objs))))})
		cancel()
		if err != nil {
			return s3Err("rename", src, err)
		}
		objs = append(objs, page.Contents...)
		if len(objs) > limit {
			return failure("rename", src, errors.ErrUnsupported,
				"the folder holds more than %d objects (s3.max_rename_objects), and S3 renames a folder by copying each", limit)
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		token = page.NextContinuationToken
	}
	for _, o := range objs {
		key := aws.ToString(o.Key)
		to := dst + key[len(src):]
		var err error
		if strings.HasSuffix(key, "/") && aws.ToInt64(o.Size) == 0 {
			// A folder's marker is written anew: versitygw stores it as
			// a directory and refuses it as a copy source.
			err = s.putMarker(to)
		} else {
			err = s.b.copyObject(key, to, aws.ToInt64(o.Size), aws.ToString(o.ETag))
		}
		if err != nil {
			return err
		}
	}
	for _, o := range objs {
		if err := s.deleteKey("rename", aws.ToString(o.Key)); err != nil {
			return err
		}
	}
	_, err := s.b.dropPartialsUnder(src)
	return err
}

// copyObject copies src to dst in the bucket, asking for src's ETag (so
// an object replaced meanwhile fails the copy rather than mix versions).
func (b *Backend) copyObject(src, dst string, size int64, etag string) error {
	var ifMatch *string
	if etag != "" {
		ifMatch = &etag
	}
	if size <= b.copyMax {
		ctx, cancel := b.xferCtx()
		defer cancel()
		_, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b.bucket, Key: &dst,
			CopySource: ptr(b.copySource(src)), CopySourceIfMatch: ifMatch})
		return s3Err("copy "+src+" to", dst, err)
	}
	ctx, cancel := b.reqCtx()
	mu, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &dst})
	cancel()
	if err != nil {
		return s3Err("copy "+src+" to", dst, err)
	}
	id := aws.ToString(mu.UploadId)
	parts, err := b.copyParts(src, dst, id, 1, size, ifMatch)
	if err == nil {
		done := make([]types.CompletedPart, len(parts))
		for i, p := range parts {
			done[i] = types.CompletedPart{ETag: ptr(p.etag), PartNumber: ptr(int32(i + 1))}
		}
		ctx, cancel := b.xferCtx()
		_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.bucket, Key: &dst,
			UploadId: &id, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
		cancel()
		if err == nil {
			return nil
		}
		err = s3Err("copy "+src+" to", dst, err)
	}
	return errors.Join(err, b.abortUpload(dst, id))
}

// copyParts copies the size bytes of src into the upload id of dst as
// parts first, first+1, …: as few as S3's 5 GiB part limit allows, each
// of at least 2.5 GiB when there are several (far above the 5 MiB
// minimum).
func (b *Backend) copyParts(src, dst, id string, first int32, size int64, ifMatch *string) ([]part, error) {
	n := (size + b.copyMax - 1) / b.copyMax
	chunk := (size + n - 1) / n
	var parts []part
	for lo := int64(0); lo < size; lo += chunk {
		hi := min(lo+chunk, size)
		ctx, cancel := b.xferCtx()
		out, err := b.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &b.bucket, Key: &dst, UploadId: &id, PartNumber: ptr(first + int32(len(parts))),
			CopySource:        ptr(b.copySource(src)),
			CopySourceRange:   ptr("bytes=" + strconv.FormatInt(lo, 10) + "-" + strconv.FormatInt(hi-1, 10)),
			CopySourceIfMatch: ifMatch})
		cancel()
		if err != nil {
			return parts, s3Err("copy "+src+" into", dst, err)
		}
		etag := ""
		if out.CopyPartResult != nil {
			etag = aws.ToString(out.CopyPartResult.ETag)
		}
		parts = append(parts, part{etag: etag, size: hi - lo})
	}
	return parts, nil
}
