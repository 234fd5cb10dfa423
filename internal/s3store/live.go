package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/config"
)

// Uploads in progress, across a crash and across daemons.
//
// A multipart upload that a daemon is writing has no partial record (see
// partial.go): it becomes a partial only when its upload breaks and the
// daemon keeps it. A daemon killed mid-upload keeps nothing, so its
// uploads would look like orphans, and the client's resume point would
// be lost although its parts are in the bucket. So every multipart upload
// in progress has a live record, an empty object
//
//	prefix/.wharf-partial.s3/live/<sha256 of the key and the upload id>
//
// whose metadata names the upload and its owner, the daemon writing it.
// It is written once the upload exists (CreateMultipartUpload, or a
// resume that continues a partial's upload) and deleted once the upload
// has ended (completed, aborted, or kept as a partial). Its LastModified
// is a heartbeat: while the upload lasts, the Backend rewrites it every
// Options.LeaseRefresh (a fifth of the lease: 1 minute), all its live
// uploads in one pass, so a transfer shorter than that costs two requests
// (a PUT and a DELETE) and a long one one PUT more a minute. The size
// needs no record: at recovery ListParts tells which parts reached the
// bucket, and the run of parts of at least 5 MiB from part 1 without a
// gap is what a resume can continue (a part is whole once its upload
// succeeded; a smaller one can only have been the last).
//
// Recover (the start-up step) reads the live record of each multipart
// upload under the prefix, and so does the takeover while the daemon runs
// (takeover.go). An upload is dead when its owner is this daemon (its
// earlier life: Recover runs before any upload begins; not so in the
// takeover) or when its heartbeat is older than Options.LeaseTimeout
// (storage.s3.upload_lease, 5 minutes: a few missed refreshes); a dead
// upload becomes its name's partial, the size of those parts, unless its
// last heartbeat is older than uploads.partial_ttl (aborted as expired),
// it holds no such part (aborted), or the name's partial is newer. An
// upload whose owner is another daemon with a fresh heartbeat is left
// alone: it is in progress on that daemon. Ages are read on the store's
// clock (its Date header against LastModified), so daemons whose clocks
// disagree still agree on a lease. Between its creation and its live
// record, an upload has neither record: Recover takes such an upload for
// an orphan only once it is older than LeaseTimeout.
//
// Why a record of its own per upload, rather than a "live" mark in the
// name's partial record: a name may have a partial and, at the same time,
// uploads in progress (a new upload replaces the partial only if it
// breaks), even several (two sessions writing one name), and each must be
// found. Why a heartbeat per upload, rather than one lease object per
// daemon that live records point to: a record is then alive or dead by
// itself, one HEAD decides, and nothing else (a lease object to create
// before the first upload, to keep fresh while idle, to delete) can go
// stale. A daemon with hundreds of uploads lasting minutes pays hundreds
// of PUTs a minute for it, which S3 prices at cents an hour.

// liveDir is the folder of live records, inside recordsDir.
const liveDir = "live/"

// metaOwner is the metadata key of a live record's owner.
const metaOwner = "wharf-owner"

// DefaultLeaseTimeout is the lease of a live upload (storage.s3's
// upload_lease), and leaseBeats the heartbeats in one lease: a live record
// is rewritten every fifth of it (1 minute by default), so that a few
// refreshes may fail before the upload is taken for dead.
const (
	DefaultLeaseTimeout = config.S3DefaultUploadLease
	leaseBeats          = 5
)

// liveUpload is a multipart upload in progress in this Backend, whose
// live record it keeps.
type liveUpload struct {
	key, id string

	// mu serialises the record's writes with its deletion, so that a
	// heartbeat never writes it back after the upload ended.
	mu    sync.Mutex
	ended bool
	beat  time.Time // when the record was last written (Options.Now)
}

// liveRecord is what a live record says.
type liveRecord struct {
	owner string
	beat  time.Time // its LastModified: the last heartbeat, on the store's clock
}

// defaultOwner names this daemon on the bucket when Options.Owner does
// not: the host name and the spool folder, which the daemon keeps under
// its state_dir, so that the same daemon restarted is the same owner and
// two daemons on one host are two. Without a spool folder it is random:
// each Backend is another owner.
func defaultOwner(spoolDir string) string {
	host, err := os.Hostname()
	if spoolDir == "" || err != nil {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		return hex.EncodeToString(b[:])
	}
	return hashName("owner", host, spoolDir)[:32]
}

// hashName is the hex SHA-256 of parts, each prefixed by its length so
// that no two lists of parts hash alike.
func hashName(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (b *Backend) liveKey(key, uploadID string) string {
	return b.records + liveDir + hashName(key, uploadID)
}

// goLive writes the live record of the upload uploadID of key and keeps
// it fresh until endLive. It starts the heartbeat with the first live
// upload; a Backend already closed has none (its daemon is stopping).
func (b *Backend) goLive(key, uploadID string) error {
	lu := &liveUpload{key: key, id: uploadID}
	ctx, cancel := b.reqCtx()
	defer cancel()
	if err := b.putLive(ctx, lu); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live[uploadID] = lu
	if b.stopBeat == nil && !b.closed {
		ctx, cancel := context.WithCancel(context.Background())
		b.stopBeat = cancel
		b.background.Go(func() { b.heartbeat(ctx) })
	}
	return nil
}

// endLive stops refreshing the live record of uploadID, once its upload
// has ended, and deletes it if del. Kept (its upload ended without its
// outcome reaching the bucket), the record ages: any daemon's takeover
// (this one's included) or start-up takes the upload for dead once the
// lease has expired, this daemon's next start at once. A failed delete leaves a stale record,
// which no upload lists any more: sweepRecords deletes it once expired.
func (b *Backend) endLive(uploadID string, del bool) {
	b.mu.Lock()
	lu := b.live[uploadID]
	delete(b.live, uploadID)
	b.mu.Unlock()
	if lu == nil {
		return
	}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.ended = true
	if del {
		_ = b.deleteLive(lu.key, lu.id)
	}
}

func (b *Backend) isLive(uploadID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live[uploadID] != nil
}

// putLive writes lu's record. The caller holds lu.mu or is its only user.
func (b *Backend) putLive(ctx context.Context, lu *liveUpload) error {
	lk := b.liveKey(lu.key, lu.id)
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &lk,
		Body: bytes.NewReader(nil), ContentLength: ptr(int64(0)),
		Metadata: map[string]string{metaUpload: lu.id, metaOwner: b.owner}})
	if err != nil {
		return s3Err("mark upload in progress of", lu.key, err)
	}
	lu.beat = b.o.Now()
	return nil
}

func (b *Backend) deleteLive(key, uploadID string) error {
	lk := b.liveKey(key, uploadID)
	ctx, cancel := b.reqCtx()
	defer cancel()
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &lk})
	return s3Err("unmark upload in progress of", key, err)
}

// headLive reads the live record of the upload uploadID of key
// (fs.ErrNotExist if there is none).
func (b *Backend) headLive(key, uploadID string) (*liveRecord, error) {
	lk := b.liveKey(key, uploadID)
	ctx, cancel := b.reqCtx()
	defer cancel()
	h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &lk})
	if err != nil {
		return nil, s3Err("head upload in progress of", key, err)
	}
	if h.Metadata[metaUpload] != uploadID || h.Metadata[metaOwner] == "" {
		// Not one of ours: as if there were none (sweepRecords deletes it
		// once expired).
		return nil, failure("head upload in progress of", key, fs.ErrNotExist, "not a live record")
	}
	return &liveRecord{owner: h.Metadata[metaOwner], beat: aws.ToTime(h.LastModified)}, nil
}

// heartbeat refreshes the live records of this Backend's uploads every
// LeaseRefresh until ctx ends (Close).
func (b *Backend) heartbeat(ctx context.Context) {
	t := time.NewTicker(b.o.LeaseRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.beat(ctx)
	}
}

// beat rewrites the live record of every upload in progress whose record
// is half a refresh old or more, one at a time, and returns how many.
func (b *Backend) beat(ctx context.Context) int {
	b.mu.Lock()
	lus := make([]*liveUpload, 0, len(b.live))
	for _, lu := range b.live {
		lus = append(lus, lu)
	}
	b.mu.Unlock()
	n := 0
	for _, lu := range lus {
		if ctx.Err() != nil {
			return n
		}
		lu.mu.Lock()
		if !lu.ended && b.o.Now().Sub(lu.beat) >= b.o.LeaseRefresh/2 {
			rctx, cancel := context.WithTimeout(ctx, b.o.RequestTimeout)
			if err := b.putLive(rctx, lu); err != nil {
				// The next beat tries again; after LeaseTimeout without one,
				// another daemon may take the upload for dead.
				b.o.Log.Warn("s3: refreshing an upload in progress", "key", lu.key, "upload_id", lu.id, "err", err)
			} else {
				n++
			}
			cancel()
		}
		lu.mu.Unlock()
	}
	return n
}

// fullParts returns how many parts of the upload uploadID of key, from
// part 1 without a gap, hold at least 5 MiB, and their bytes: what a
// resume can continue. A part is in the list only once its upload
// succeeded; one below 5 MiB was the file's last (sent by a commit that
// did not complete) and cannot be followed by another.
func (b *Backend) fullParts(key, uploadID string) (n int32, size int64, err error) {
	err = b.eachPart(key, uploadID, func(num int32, p part) bool {
		if num != n+1 || p.size < MinPartSize {
			return false
		}
		n++
		size += p.size
		return true
	})
	return n, size, err
}

// recoverUpload decides the fate of the multipart upload up, whose live
// record lr says it was in progress (see the top of this file), and
// reports whether it became the name's partial or was aborted. now is on
// the store's clock. ownDead (at start-up) takes a record of this
// daemon's owner for a previous life's, whatever its heartbeat; else (the
// running takeover) every record is dead only once its lease expired.
func (b *Backend) recoverUpload(up mpUpload, lr *liveRecord, now time.Time, ownDead bool) (recovered, aborted bool, err error) {
	age := now.Sub(lr.beat)
	if (lr.owner != b.owner || !ownDead) && age < b.o.LeaseTimeout {
		return false, false, nil // in progress, on another daemon or being marked here
	}
	log := b.o.Log.With("key", up.key, "upload_id", up.id, "owner", lr.owner,
		"heartbeat", lr.beat.UTC().Format(time.RFC3339))
	abort := func(reason string) (bool, bool, error) {
		if err := b.abortUpload(up.key, up.id); err != nil {
			return false, false, err
		}
		log.Info("s3: aborted a multipart upload", "reason", reason,
			"initiated", up.initiated.UTC().Format(time.RFC3339))
		return false, true, b.deleteLive(up.key, up.id)
	}
	if age >= b.o.PartialTTL {
		return abort("expired")
	}
	parts, size, err := b.fullParts(up.key, up.id)
	if notFound(err) {
		// Gone meanwhile (completed or aborted by its daemon before it
		// died, or by another tool): nothing to keep.
		return false, false, b.deleteLive(up.key, up.id)
	}
	if err != nil {
		return false, false, err
	}
	rec, err := b.headRecord(up.key) // nil if none
	if err != nil && !notFound(err) {
		return false, false, err
	}
	switch {
	case rec != nil && rec.uploadID == up.id:
		// The dead daemon was continuing this partial: its record stands,
		// grown by the parts sent since (the first of them begins with the
		// record's tail).
		if parts > rec.parts {
			if err := b.putRecord(up.key, record{uploadID: up.id, parts: parts, partsSize: size, since: lr.beat}, nil); err != nil {
				return false, false, err
			}
		} else {
			parts, size = rec.parts, rec.size()
		}
	case parts == 0:
		return abort("no full part")
	case rec != nil && rec.mtime.After(lr.beat):
		return abort("older than the partial")
	default:
		// The newest failure replaces an older partial, as an upload kept
		// by a running daemon would.
		if err := b.putRecord(up.key, record{uploadID: up.id, parts: parts, partsSize: size, since: lr.beat}, nil); err != nil {
			return false, false, err
		}
		if rec != nil {
			_ = b.abortUpload(up.key, rec.uploadID)
		}
	}
	// The message and path are local's (vfs.Local.Recover), so that one
	// check reads either backend's log.
	log.Info("recovered upload", "path", "/"+strings.TrimPrefix(up.key, b.prefix), "parts", parts, "bytes", size)
	if b.isLive(up.id) {
		// A session of this daemon already resumes the partial, with the
		// same upload and so the same live record, now its own.
		return true, false, nil
	}
	return true, false, b.deleteLive(up.key, up.id)
}

// formatSince and parseSince write and read a record's since time.
func formatSince(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func parseSince(s string) (time.Time, bool) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
