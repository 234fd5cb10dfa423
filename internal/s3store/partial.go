package s3store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Partials.
//
// A broken upload keeps its multipart upload and the parts it completed:
// that is the name's partial, and a resume continues it with new parts,
// re-sending nothing that reached the bucket. Two things S3 does not
// offer shape how it is kept:
//
//   - An incomplete multipart upload cannot be read or described beyond
//     its key, id, start time and parts: its metadata shows only once it
//     is complete, and a part of it cannot be the source of a copy.
//   - Every part but the last must hold at least 5 MiB (checked at
//     complete), so the bytes after the last full part, if fewer, cannot
//     stay a part: the resumed upload will have to send them again, in the
//     part that follows.
//
// So each partial has a record: a small object under the prefix's
// recordsDir, named by the SHA-256 of the object key (a fixed length,
// whatever the key), whose metadata names the multipart upload and the
// parts that belong to the partial, and whose content is the tail, the
// bytes after them (under 5 MiB: a longer tail is sent as a part). One
// HEAD of it describes the partial (Resumer.Partial); a resume reads it
// (at most 5 MiB through the daemon) and lists the upload's parts for
// their ETags. The records live outside the homes' folders, so that
// processors listing a folder never see them; vfs hides recordsDir in a
// home that is the whole prefix. Every partial has a multipart upload,
// even one of a tail alone, so that ListMultipartUploads finds every
// partial under a folder (Rmdir, a folder rename) and Recover can tell a
// partial's upload (its record names it) from an orphan's. An upload in
// progress has no record but a live one (live.go), which the start-up of
// a daemon that died mid-upload turns into its partial's record.

// Metadata keys of a record (S3 lowercases them).
const (
	metaUpload    = "wharf-upload-id"
	metaParts     = "wharf-parts"
	metaPartsSize = "wharf-parts-size"
	// metaSince, when set, is when the partial's bytes last arrived (Unix
	// milliseconds), if earlier than the record's LastModified: a partial
	// recovered from a dead daemon's upload (live.go) dates from its last
	// heartbeat, not from the recovery.
	metaSince = "wharf-since"
)

// record describes a partial.
type record struct {
	uploadID  string
	parts     int32 // parts 1..parts of the upload belong to the partial
	partsSize int64 // their bytes
	tail      int64 // bytes of the record's content, after the parts
	// mtime is when the partial was last kept: the record's LastModified,
	// or since if earlier. It dates the partial (Partial) and expires it
	// (Recover).
	mtime time.Time
	since time.Time // to write as metaSince (putRecord); zero: none
}

func (r *record) size() int64 { return r.partsSize + r.tail }

func (b *Backend) recordKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return b.records + hex.EncodeToString(sum[:])
}

func parseRecord(meta map[string]string, length int64, mtime *time.Time) (*record, error) {
	r := &record{uploadID: meta[metaUpload], tail: length, mtime: aws.ToTime(mtime)}
	parts, err1 := strconv.ParseInt(meta[metaParts], 10, 32)
	size, err2 := strconv.ParseInt(meta[metaPartsSize], 10, 64)
	if r.uploadID == "" || err1 != nil || err2 != nil || parts < 0 || size < 0 || length >= MinPartSize {
		return nil, fmt.Errorf("not a partial's record: %w", fs.ErrInvalid)
	}
	r.parts, r.partsSize = int32(parts), size
	if since, ok := parseSince(meta[metaSince]); ok && since.Before(r.mtime) {
		r.mtime = since
	}
	return r, nil
}

// headRecord describes key's partial (fs.ErrNotExist if it has none).
func (b *Backend) headRecord(key string) (*record, error) {
	rk := b.recordKey(key)
	ctx, cancel := b.reqCtx()
	defer cancel()
	h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &rk})
	if err != nil {
		return nil, s3Err("head partial of", key, err)
	}
	r, err := parseRecord(h.Metadata, aws.ToInt64(h.ContentLength), h.LastModified)
	if err != nil {
		// Not one of ours (something else wrote into recordsDir): no
		// partial. Recover deletes it once it is older than the TTL, and
		// a partial kept meanwhile replaces it.
		return nil, &opError{op: "head partial of", key: key, kind: fs.ErrNotExist, err: err}
	}
	return r, nil
}

// getRecord reads key's partial's record, and its tail into buf (which
// has room for any: a part's size is at least 5 MiB).
func (b *Backend) getRecord(key string, buf []byte) (*record, error) {
	rk := b.recordKey(key)
	ctx, cancel := b.xferCtx()
	defer cancel()
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &rk})
	if err != nil {
		return nil, s3Err("read partial of", key, err)
	}
	defer out.Body.Close()
	r, err := parseRecord(out.Metadata, aws.ToInt64(out.ContentLength), out.LastModified)
	if err == nil && r.tail > int64(len(buf)) {
		err = fmt.Errorf("a tail of %d bytes: %w", r.tail, fs.ErrInvalid)
	}
	if err != nil {
		return nil, &opError{op: "read partial of", key: key, kind: fs.ErrNotExist, err: err} // as headRecord
	}
	if _, err := io.ReadFull(out.Body, buf[:r.tail]); err != nil {
		return nil, s3Err("read partial of", key, err)
	}
	return r, nil
}

// putRecord makes r, with tail, key's partial, replacing any record.
func (b *Backend) putRecord(key string, r record, tail []byte) error {
	rk := b.recordKey(key)
	ctx, cancel := b.xferCtx()
	defer cancel()
	meta := map[string]string{
		metaUpload:    r.uploadID,
		metaParts:     strconv.FormatInt(int64(r.parts), 10),
		metaPartsSize: strconv.FormatInt(r.partsSize, 10),
	}
	if !r.since.IsZero() {
		meta[metaSince] = formatSince(r.since)
	}
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &rk,
		Body: bytes.NewReader(tail), ContentLength: ptr(int64(len(tail))), Metadata: meta})
	return s3Err("keep partial of", key, err)
}

// deleteRecordIf deletes key's record if it still names uploadID (a later
// failure of another upload may have replaced it).
func (b *Backend) deleteRecordIf(key, uploadID string) error {
	r, err := b.headRecord(key)
	if notFound(err) || err == nil && r.uploadID != uploadID {
		return nil
	}
	if err != nil {
		return err
	}
	rk := b.recordKey(key)
	ctx, cancel := b.reqCtx()
	defer cancel()
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &rk})
	return s3Err("drop partial of", key, err)
}

// abortUpload aborts a multipart upload; one already gone is fine.
func (b *Backend) abortUpload(key, uploadID string) error {
	ctx, cancel := b.reqCtx()
	defer cancel()
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, UploadId: &uploadID})
	if err != nil && !notFound(s3Err("", "", err)) {
		return s3Err("abort upload of", key, err)
	}
	return nil
}

// dropPartial aborts key's partial and deletes its record, unless an
// upload in progress continues it, and reports whether there was one.
func (b *Backend) dropPartial(key string) (bool, error) {
	if b.isClaimed(key) {
		return false, nil
	}
	r, err := b.headRecord(key)
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := b.abortUpload(key, r.uploadID); err != nil {
		return false, err
	}
	return true, b.deleteRecordIf(key, r.uploadID)
}

// dropPartialsUnder drops the partial of every key under dir (a folder's
// prefix) that is not continued by an upload in progress, and returns how
// many it dropped.
func (b *Backend) dropPartialsUnder(dir string) (int, error) {
	n := 0
	err := b.eachUpload(dir, func(up mpUpload) error {
		if b.isClaimed(up.key) {
			return nil
		}
		r, err := b.headRecord(up.key)
		if notFound(err) || err == nil && r.uploadID != up.id {
			return nil // an upload in progress, or an orphan: Recover's
		}
		if err != nil {
			return err
		}
		if err := b.abortUpload(up.key, up.id); err != nil {
			return err
		}
		n++
		return b.deleteRecordIf(up.key, up.id)
	})
	return n, err
}

// mpUpload is a multipart upload as ListMultipartUploads describes it.
type mpUpload struct {
	key, id   string
	initiated time.Time
	// skew is how far the store's clock is ahead of this daemon's, as the
	// Date of the listing's response showed (0 if it had none): ages of
	// what the store dates are measured on Options.Now plus skew.
	skew time.Duration
}

// eachUpload calls fn for each multipart upload under prefix, a page of
// ListMultipartUploads at a time. Pages follow the key marker alone:
// versitygw 1.8.0 refuses the upload-id marker it returns itself
// ("Invalid uploadId marker"; docs/s3.md), so uploads of the key that ends
// a page, beyond it, wait for the next pass.
func (b *Backend) eachUpload(prefix string, fn func(mpUpload) error) error {
	var marker *string
	for {
		ctx, cancel := b.reqCtx()
		page, err := b.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
			Bucket: &b.bucket, Prefix: &prefix, KeyMarker: marker})
		cancel()
		if err != nil {
			return s3Err("list uploads", prefix, err)
		}
		var skew time.Duration
		server, ok1 := awsmiddleware.GetServerTime(page.ResultMetadata)
		at, ok2 := awsmiddleware.GetResponseAt(page.ResultMetadata)
		if ok1 && ok2 {
			skew = server.Sub(at)
		}
		for _, u := range page.Uploads {
			up := mpUpload{key: aws.ToString(u.Key), id: aws.ToString(u.UploadId), initiated: aws.ToTime(u.Initiated), skew: skew}
			if err := fn(up); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) || aws.ToString(page.NextKeyMarker) == "" {
			return nil
		}
		marker = page.NextKeyMarker
	}
}

// part is one part of a multipart upload: its size and, once uploaded,
// its ETag.
type part struct {
	etag string
	size int64
}

// eachPart calls fn with the parts of the upload uploadID of key in
// number order, a page of ListParts at a time, until fn returns false.
func (b *Backend) eachPart(key, uploadID string, fn func(num int32, p part) bool) error {
	var marker *string
	for range maxParts/1000 + 1 { // a page holds up to 1,000 parts
		ctx, cancel := b.reqCtx()
		page, err := b.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &b.bucket, Key: &key,
			UploadId: &uploadID, PartNumberMarker: marker})
		cancel()
		if err != nil {
			return s3Err("list parts of", key, err)
		}
		for _, p := range page.Parts {
			if !fn(aws.ToInt32(p.PartNumber), part{etag: aws.ToString(p.ETag), size: aws.ToInt64(p.Size)}) {
				return nil
			}
		}
		if !aws.ToBool(page.IsTruncated) || page.NextPartNumberMarker == nil {
			return nil
		}
		marker = page.NextPartNumberMarker
	}
	return nil
}

// listParts returns parts 1..r.parts of r's upload, checking that they are
// all there and add up to r.partsSize.
func (b *Backend) listParts(key string, r *record) ([]part, error) {
	parts := make([]part, 0, r.parts)
	var size int64
	err := b.eachPart(key, r.uploadID, func(n int32, p part) bool {
		if n > r.parts || n != int32(len(parts))+1 {
			return false // beyond: sent by a resume that broke before its record
		}
		parts = append(parts, p)
		size += p.size
		return int32(len(parts)) < r.parts
	})
	if err != nil {
		return nil, err
	}
	if int32(len(parts)) != r.parts || size != r.partsSize {
		return nil, failure("resume", key, fs.ErrInvalid, "the partial's upload holds parts 1-%d, %d bytes; its record says %d, %d",
			len(parts), size, r.parts, r.partsSize)
	}
	return parts, nil
}

// Partial describes name's partial: its size is where a resume continues.
// A partial that an upload in progress continues is that upload's, not
// the name's: as a claimed partial on disk, it is not there.
func (s *store) Partial(name string) (fs.FileInfo, error) {
	if isRoot(name) {
		return nil, failure("partial", s.prefix, fs.ErrNotExist, "the home folder")
	}
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if s.b.isClaimed(key) {
		return nil, failure("partial", key, fs.ErrNotExist, "continued by an upload in progress")
	}
	r, err := s.b.headRecord(key)
	if err != nil {
		return nil, err
	}
	return info{name: path.Base(key), size: r.size(), mtime: r.mtime}, nil
}
