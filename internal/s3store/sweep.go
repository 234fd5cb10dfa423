package s3store

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Sweep aborts the multipart uploads under the prefix that no partial
// needs any more, and returns how many: those of partials older than
// Options.PartialTTL (counted from when the partial was last kept), and
// orphans, uploads that no partial's record names (a daemon that died
// mid-upload; a partial replaced by a later failure). Uploads this
// Backend has in progress are left alone. Each abort is logged. It then
// deletes the records of expired partials whose uploads were gone
// already.
//
// The daemon runs it at start-up, before the first session. Every
// multipart upload under the prefix is taken for wharf's: the prefix is
// wharf's alone. Another daemon's uploads in progress on the same prefix
// would be taken for orphans.
func (b *Backend) Sweep(ctx context.Context) (aborted int, err error) {
	now := b.o.Now()
	var lastKey string
	var rec *record
	var recErr error
	err = b.eachUpload(b.prefix, func(key, id string, initiated time.Time) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.isActive(key) {
			return nil
		}
		if key != lastKey {
			rec, recErr = b.headRecord(key)
			lastKey = key
		}
		if recErr != nil && !notFound(recErr) {
			return recErr
		}
		var reason string
		switch {
		case recErr != nil || rec.uploadID != id:
			reason = "orphaned"
		case now.Sub(rec.mtime) >= b.o.PartialTTL:
			reason = "expired"
		default:
			return nil
		}
		if err := b.abortUpload(key, id); err != nil {
			return err
		}
		aborted++
		b.o.Log.Info("s3: aborted a multipart upload", "key", key, "upload_id", id, "reason", reason,
			"initiated", initiated.UTC().Format(time.RFC3339))
		if reason == "expired" {
			return b.deleteRecordIf(key, id)
		}
		return nil
	})
	if err != nil {
		return aborted, err
	}
	return aborted, b.sweepRecords(ctx, now)
}

// sweepRecords deletes records older than the TTL.
func (b *Backend) sweepRecords(ctx context.Context, now time.Time) error {
	var token *string
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rctx, cancel := b.reqCtx()
		page, err := b.client.ListObjectsV2(rctx, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &b.records,
			ContinuationToken: token})
		cancel()
		if err != nil {
			return s3Err("list", b.records, err)
		}
		for _, o := range page.Contents {
			if now.Sub(aws.ToTime(o.LastModified)) < b.o.PartialTTL {
				continue
			}
			rctx, cancel := b.reqCtx()
			_, err := b.client.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: o.Key})
			cancel()
			if err != nil {
				return s3Err("delete", aws.ToString(o.Key), err)
			}
			b.o.Log.Info("s3: deleted an expired partial's record", "key", aws.ToString(o.Key))
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return nil
		}
		token = page.NextContinuationToken
	}
}
