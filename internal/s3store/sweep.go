package s3store

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Recover is the start-up step: the daemon runs it before the first
// session. It goes through the multipart uploads under the prefix once,
// and for each:
//
//   - an upload this Backend has in progress is left alone;
//   - an upload with a live record (see live.go) is in progress on
//     another daemon, and left alone, while its owner is another daemon
//     whose heartbeat is younger than Options.LeaseTimeout; otherwise its
//     daemon died mid-upload, and it becomes its name's partial (its
//     parts from part 1 without a gap, each of 5 MiB or more), unless it
//     holds no such part, the name's partial is newer, or its last
//     heartbeat is older than Options.PartialTTL: then it is aborted;
//   - an upload that a partial's record names is that partial, aborted
//     once the partial is older than Options.PartialTTL (counted from
//     when it was last kept);
//   - any other upload is an orphan (a partial replaced by a later
//     failure and not aborted then, a daemon that died between creating
//     an upload and marking it live, another program's upload under
//     wharf's prefix), aborted once it is older than LeaseTimeout: a
//     younger one may be another daemon's, about to be marked.
//
// Each recovery and abort is logged, and counted in what it returns. It
// then deletes records (partial and live) older than the TTL whose
// uploads were gone already.
//
// Several daemons may share the prefix: none takes over or aborts an
// upload another one is writing. Recover must run before this daemon's
// own uploads begin, since it takes a live record of its own owner for
// one of a previous life. While the daemon runs, the takeover
// (StartTakeover) repeats its first case: see takeover.go.
func (b *Backend) Recover(ctx context.Context) (recovered, aborted int, err error) {
	return b.recoverUploads(ctx, false)
}

// recoverUploads is Recover (running false) or one pass of the running
// takeover (running true), which only takes over the uploads of dead
// daemons: every live record counts by its heartbeat alone, whoever its
// owner (one of this daemon's own that is not live here is between its
// write and its upload's registration, or kept by a failed keep), and
// what has no live record (a partial, an orphan) is left to the next
// start, so that a pass costs the listing and one HEAD per upload.
func (b *Backend) recoverUploads(ctx context.Context, running bool) (recovered, aborted int, err error) {
	var lastKey string
	var rec *record
	var recErr error
	var skew time.Duration
	err = b.eachUpload(b.prefix, func(up mpUpload) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.isActive(up.key) || b.isLive(up.id) {
			return nil
		}
		skew = up.skew
		now := b.o.Now().Add(up.skew)
		lr, err := b.headLive(up.key, up.id)
		if err == nil {
			lastKey = "" // the key's record may change
			r, a, err := b.recoverUpload(up, lr, now, !running)
			if r {
				recovered++
			}
			if a {
				aborted++
			}
			return err
		}
		if !notFound(err) {
			return err
		}
		if running {
			return nil
		}
		if up.key != lastKey {
			rec, recErr = b.headRecord(up.key)
			lastKey = up.key
		}
		if recErr != nil && !notFound(recErr) {
			return recErr
		}
		var reason string
		switch {
		case (recErr != nil || rec.uploadID != up.id) && now.Sub(up.initiated) < b.o.LeaseTimeout:
			return nil
		case recErr != nil || rec.uploadID != up.id:
			reason = "orphaned"
		case now.Sub(rec.mtime) >= b.o.PartialTTL:
			reason = "expired"
		default:
			return nil
		}
		if err := b.abortUpload(up.key, up.id); err != nil {
			return err
		}
		aborted++
		b.o.Log.Info("s3: aborted a multipart upload", "key", up.key, "upload_id", up.id, "reason", reason,
			"initiated", up.initiated.UTC().Format(time.RFC3339))
		if reason == "expired" {
			return b.deleteRecordIf(up.key, up.id)
		}
		return nil
	})
	if err != nil || running {
		return recovered, aborted, err
	}
	return recovered, aborted, b.sweepRecords(ctx, b.o.Now().Add(skew))
}

// Sweep is Recover without the count of recovered uploads, for callers
// that only count aborts.
func (b *Backend) Sweep(ctx context.Context) (aborted int, err error) {
	_, aborted, err = b.Recover(ctx)
	return aborted, err
}

// sweepRecords deletes records older than the TTL: partial records whose
// uploads were gone already, and live records (refreshed every minute
// while their upload lasts) left by a failed delete or whose upload was
// removed by another tool. The live records of this Backend's uploads in
// progress stay, whatever their age.
func (b *Backend) sweepRecords(ctx context.Context, now time.Time) error {
	ttl := max(b.o.PartialTTL, b.o.LeaseTimeout)
	mine := map[string]bool{}
	b.mu.Lock()
	for _, lu := range b.live {
		mine[b.liveKey(lu.key, lu.id)] = true
	}
	b.mu.Unlock()
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
			if now.Sub(aws.ToTime(o.LastModified)) < ttl || mine[aws.ToString(o.Key)] {
				continue
			}
			rctx, cancel := b.reqCtx()
			_, err := b.client.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: o.Key})
			cancel()
			if err != nil {
				return s3Err("delete", aws.ToString(o.Key), err)
			}
			b.o.Log.Info("s3: deleted an expired record", "key", aws.ToString(o.Key))
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return nil
		}
		token = page.NextContinuationToken
	}
}
