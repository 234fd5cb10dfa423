package s3store

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

const (
	// windowParts is how many parts an upload fills in memory at once: the
	// one it is completing and the two after it, the reorder window.
	windowParts = 3
	maxParts    = 10000   // S3's limit per multipart upload
	maxObject   = 5 << 40 // S3's largest object
)

// Upload is an upload in progress to an S3 store, as Create returns it
// (a vfs.Upload).
//
// Bytes arrive through WriteAt, concurrently and out of order, and are
// assembled into parts of part_size: the part being completed and the two
// after it are buffers in memory (the reorder window, which absorbs
// pkg/sftp's workers and OpenSSH's 64 requests in flight); bytes beyond
// them go to the spool (see spool.go) until the window reaches them. A
// part is sent as soon as it is complete, with at most upload_concurrency
// parts in flight; a writer that completes a part while they are all busy
// waits for one, which is how a slow bucket slows the client. So the
// memory of one upload is bounded by
//
//	part_size × (upload_concurrency + 1) + 2 × part_size
//
// (parts in flight, the part being completed, the rest of the window):
// 112 MiB with the defaults (16 MiB, 4), 40 MiB with 5 MiB parts and 3.
//
// Nothing is visible under the name before Commit: a file that ends
// within its first part is one PutObject at Commit; a longer one is a
// multipart upload (created with its first part) that Commit completes.
// With CreateOptions.Exclusive both carry If-None-Match: *, so a name
// completed by someone else meanwhile fails Commit with fs.ErrExist.
//
// Abort(vfs.ErrDetached) aborts the multipart upload: nothing is left.
// Abort with any other cause keeps what arrived without a gap as the
// name's partial (see partial.go); bytes received beyond a gap are
// dropped, so a resume never continues over a hole. Continue
// (CreateOptions) resumes the partial with new parts, or appends to the
// file: an object of at least 5 MiB becomes the first part(s) by a
// server-side UploadPartCopy, a smaller one is read into the first part.
// Either way writes before the offset the upload continues from are
// refused (EINVAL): clients resume and append, they do not rewrite.
//
// A write may land behind the part being completed only while that part
// is in memory: bytes already sent cannot change (EINVAL).
type Upload struct {
	b         *Backend
	key       string
	name      string // base name, for Stat
	p         int64  // part size
	conc      int    // parts in flight at most
	exclusive bool

	mu   sync.Mutex
	cond sync.Cond
	wg   sync.WaitGroup // part uploads in flight

	ended bool  // Commit or Abort has begun: no more writes
	err   error // a part upload failed: the upload can no longer complete

	uploadID string
	live     string // the upload id whose live record this upload keeps (see live.go)
	unkept   bool   // the partial could not be recorded: leave the live record
	parts    []part // by number - 1: resumed, copied and sent ones
	inFlight int

	claimed  bool   // continues the name's partial (and holds the claim)
	recordID string // the upload the claimed partial's record names
	appended bool   // continues the name's file
	base     int64
	dirty    bool // a write or truncate happened

	curNum   int32 // number of the part being completed
	curStart int64 // its first byte's offset
	win      [windowParts]partBuf
	free     [][]byte // buffers of sent parts, for reuse
	size     int64    // the upload's size: its largest written offset + 1, at least base
	spool    *spool

	etag string // once committed
}

// partBuf is a part of the window: its bytes and which of them arrived.
type partBuf struct {
	buf  []byte // nil until a byte of the part arrives
	have spans  // offsets within the part
}

func (pb *partBuf) full(size int64) bool {
	return pb.buf != nil && pb.have.prefix() >= size
}

// Object names the committed object for upload events: its storage_url
// (s3://bucket/key) and ETag (unquoted). Both are empty before a
// successful Commit.
func (u *Upload) Object() (url, etag string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.etag == "" {
		return "", ""
	}
	return u.b.storageURL(u.key), u.etag
}

// Create starts an upload of name as o says (see Upload). A folder of that
// name, or a parent that is no folder, refuses it, as would a disk.
func (s *store) Create(name string, o vfs.CreateOptions) (vfs.Upload, error) {
	if isRoot(name) {
		return nil, failure("create", s.prefix, syscall.EISDIR, "the home folder")
	}
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	// What the session's Stat just found, for an upload that starts over
	// (looks.go); else a look now.
	file, dir, fresh := s.looks.take(key, s.b.o.Now())
	s.looks.forget()
	if !fresh || o.Continue || o.MustExist {
		if file, dir, err = s.kindOfName(key); err != nil {
			return nil, err
		}
	}
	if dir {
		return nil, failure("create", key, syscall.EISDIR, "a folder")
	}
	u := &Upload{b: s.b, key: key, name: baseName(name), p: s.b.cfg.PartSize,
		conc: s.b.cfg.UploadConcurrency, exclusive: o.Exclusive, curNum: 1}
	u.cond.L = &u.mu
	s.b.begin(key) // before any multipart upload exists: Recover must never see it unclaimed
	ok := false
	defer func() {
		if !ok {
			u.mu.Lock()
			_ = u.discard()
			u.mu.Unlock()
			u.finish()
		}
	}()
	resumed := false
	if o.Continue {
		if resumed, err = u.resume(); err != nil {
			return nil, err
		}
	}
	switch {
	case resumed:
	case file != nil && o.Exclusive:
		return nil, failure("create", key, fs.ErrExist, "exists, and this upload may not replace it")
	case file != nil && o.Continue:
		if err := u.appendTo(*file); err != nil {
			return nil, err
		}
	case file == nil && o.MustExist:
		if o.Continue {
			return nil, failure("create", key, fs.ErrNotExist, "no object and no partial")
		}
		if _, err := s.b.headRecord(key); err != nil {
			return nil, err
		}
	}
	if file == nil && !resumed {
		if err := s.parentDir("create", name); err != nil {
			return nil, err
		}
	}
	ok = true
	return u, nil
}

// resume claims the name's partial and continues it: its parts stay,
// its tail becomes the start of the part being completed. It returns
// false when there is no partial, or another upload continues it (which
// then starts from the file, as on a disk where the first took the
// partial away).
func (u *Upload) resume() (bool, error) {
	if !u.b.claim(u.key) {
		return false, nil
	}
	u.claimed = true
	u.ensure(0)
	r, err := u.b.getRecord(u.key, u.win[0].buf)
	if notFound(err) {
		u.b.release(u.key)
		u.claimed = false
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// recordID is set only once the resume succeeds: the failed Create's
	// cleanup (discard) drops the partial it names, and a transient
	// failure here must not lose it.
	if r.parts == 0 {
		// A tail alone, all in the record: its (empty) multipart upload
		// is not needed, and may be gone. A new one is started if a part
		// is sent; the old one goes when this upload ends.
		u.recordID = r.uploadID
		u.base = r.tail
		u.size = u.base
		return true, u.win[0].have.add(0, r.tail)
	}
	parts, err := u.b.listParts(u.key, r)
	if notFound(err) || errors.Is(err, fs.ErrInvalid) {
		// Its multipart upload is gone (aborted by another tool, or
		// expired) or does not hold what the record says: the client's
		// offset would land in a hole. The partial is dropped, so that
		// the client's next attempt starts afresh.
		_ = u.b.abortUpload(u.key, r.uploadID)
		_ = u.b.deleteRecordIf(u.key, r.uploadID)
		return false, failure("resume", u.key, fs.ErrNotExist, "the partial is lost: %w", err)
	}
	if err != nil {
		return false, err
	}
	// The partial's upload is in progress again: should this daemon die,
	// its next start makes it the partial again, with the parts sent.
	if err := u.b.goLive(u.key, r.uploadID); err != nil {
		return false, err
	}
	u.recordID, u.live = r.uploadID, r.uploadID
	u.uploadID, u.parts = r.uploadID, parts
	u.curNum, u.curStart = r.parts+1, r.partsSize
	_ = u.win[0].have.add(0, r.tail) // read into the part being completed
	u.base = r.size()
	u.size = u.base
	return true, nil
}

// appendTo continues the file fi: server-side copies of it as the first
// parts if it can be a part (5 MiB or more; several copies above 5 GiB),
// else its bytes read into the first part. The copies ask for fi's ETag,
// so an object replaced since is not mixed in.
func (u *Upload) appendTo(fi info) error {
	u.appended = true
	u.base, u.size = fi.size, fi.size
	if fi.size == 0 {
		return nil
	}
	if fi.size < MinPartSize {
		ctx, cancel := u.b.xferCtx()
		defer cancel()
		out, err := u.b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &u.b.bucket, Key: &u.key, IfMatch: &fi.etag})
		if err != nil {
			return s3Err("append to", u.key, err)
		}
		defer out.Body.Close()
		u.ensure(0)
		if _, err := io.ReadFull(out.Body, u.win[0].buf[:fi.size]); err != nil {
			return s3Err("append to", u.key, err)
		}
		return u.win[0].have.add(0, fi.size)
	}
	if err := u.createMultipart(true); err != nil {
		return err
	}
	parts, err := u.b.copyParts(u.key, u.key, u.uploadID, u.curNum, fi.size, &fi.etag)
	if err != nil {
		return err
	}
	u.parts = append(u.parts, parts...)
	u.curNum += int32(len(parts))
	u.curStart = fi.size
	return nil
}

// usable reports why no write may proceed, if one may not.
func (u *Upload) usable() error {
	switch {
	case u.ended:
		return failure("write", u.key, fs.ErrClosed, "the upload has ended")
	case u.err != nil:
		return u.err
	}
	return nil
}

// limit is the size beyond which the upload would need more than S3's
// 10,000 parts (or exceed its 5 TiB object).
func (u *Upload) limit() int64 {
	return min(maxObject, u.curStart+int64(maxParts-u.curNum+1)*u.p)
}

// WriteAt puts p at off: into the window's buffers, or the spool beyond
// them. A writer that completes the part being filled sends it (see
// Upload). Writes beyond the window wait while the part being completed
// is full and waiting to be sent, rather than spool what the window is
// about to reach.
func (u *Upload) WriteAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.usable(); err != nil {
		return 0, err
	}
	if off < u.base {
		return 0, failure("write", u.key, syscall.EINVAL,
			"at %d, before %d where this upload continues: a resumed or appended upload only grows", off, u.base)
	}
	if end := off + int64(len(p)); end > u.limit() {
		return 0, failure("write", u.key, syscall.EFBIG, "to %d: beyond %d parts of %d bytes", end, maxParts, u.p)
	}
	n := 0
	for n < len(p) {
		if err := u.usable(); err != nil {
			return n, err
		}
		o := off + int64(n)
		if o < u.curStart {
			return n, failure("write", u.key, syscall.EINVAL, "at %d: the bytes before %d are uploaded already", o, u.curStart)
		}
		i := (o - u.curStart) / u.p
		if i >= windowParts {
			if u.win[0].full(u.p) {
				// The window is about to move: send (or wait for a slot to)
				// rather than spool what it will reach.
				if err := u.advance(); err != nil {
					return n, err
				}
				continue
			}
			if err := u.spoolWrite(p[n:], o); err != nil {
				return n, err
			}
			u.grow(off + int64(len(p)))
			n = len(p)
			break
		}
		if err := u.ensure(int(i)); err != nil {
			return n, err
		}
		pb := &u.win[i]
		rel := o - u.curStart - i*u.p
		k := copy(pb.buf[rel:], p[n:])
		if err := pb.have.add(rel, rel+int64(k)); err != nil {
			return n, failure("write", u.key, syscall.EINVAL, "%w", err)
		}
		n += k
		u.grow(o + int64(k))
	}
	if n > 0 {
		u.dirty = true
	}
	return n, u.advance()
}

func (u *Upload) grow(end int64) {
	if end > u.size {
		u.size = end
	}
}

func (u *Upload) spoolWrite(p []byte, off int64) error {
	if u.spool == nil {
		sp, err := u.b.newSpool()
		if err != nil {
			return failure("write", u.key, syscall.ENOSPC,
				"at %d, more than %d bytes beyond the part being completed: %w", off, windowParts*u.p, err)
		}
		u.spool = sp
	}
	if err := u.spool.write(p, off); err != nil {
		return failure("write", u.key, nil, "%w", err)
	}
	return nil
}

// ensure gives the window's part i a buffer, with what the spool holds of
// it: from then on its bytes are written there, so the spool never holds a
// newer byte than the buffer.
func (u *Upload) ensure(i int) error {
	pb := &u.win[i]
	if pb.buf != nil {
		return nil
	}
	if k := len(u.free); k > 0 {
		pb.buf, u.free = u.free[k-1], u.free[:k-1]
	} else {
		pb.buf = make([]byte, u.p)
	}
	if u.spool != nil {
		start := u.curStart + int64(i)*u.p
		if u.spool.holds(start, start+u.p) {
			if err := u.spool.load(pb.buf, start, &pb.have); err != nil {
				return failure("write", u.key, nil, "%w", err)
			}
		}
	}
	return nil
}

// primed loads part i from the spool if the spool holds any of it.
func (u *Upload) primed(i int) error {
	if u.win[i].buf != nil || u.spool == nil {
		return nil
	}
	start := u.curStart + int64(i)*u.p
	if !u.spool.holds(start, start+u.p) {
		return nil
	}
	return u.ensure(i)
}

// advance sends the part being completed while it is full, waiting for a
// free slot among the parts in flight.
func (u *Upload) advance() error {
	for {
		if err := u.usable(); err != nil {
			return err // a failed part, or Commit or Abort took over
		}
		if err := u.primed(0); err != nil {
			return err
		}
		if !u.win[0].full(u.p) {
			return nil
		}
		if u.inFlight >= u.conc {
			u.cond.Wait()
			continue
		}
		if err := u.send(u.p); err != nil {
			return err
		}
	}
}

// send starts the upload of the window's first length bytes as the next
// part (bytes that never arrived are zeros: a hole, as in a sparse file)
// and moves the window on. The caller holds mu and a free slot.
func (u *Upload) send(length int64) error {
	if u.curNum > maxParts {
		return failure("upload", u.key, syscall.EFBIG, "more than %d parts", maxParts)
	}
	if err := u.ensure(0); err != nil {
		return err
	}
	if u.uploadID == "" {
		if err := u.createMultipart(true); err != nil {
			return err
		}
	}
	pb := u.win[0]
	zeroHoles(pb.buf[:length], pb.have)
	num, id := u.curNum, u.uploadID
	copy(u.win[:], u.win[1:])
	u.win[windowParts-1] = partBuf{}
	u.curNum++
	u.curStart += length
	u.parts = append(u.parts, part{size: length})
	u.inFlight++
	u.wg.Add(1)
	go u.sendPart(id, num, pb.buf[:length], pb.buf)
	return nil
}

func zeroHoles(buf []byte, have spans) {
	at := int64(0)
	for _, r := range have {
		if r.lo >= int64(len(buf)) {
			break
		}
		clear(buf[at:r.lo])
		at = r.hi
	}
	if at < int64(len(buf)) {
		clear(buf[at:])
	}
}

// sendPart uploads one part and records its ETag, or the failure that
// ends the upload's hope of completing.
func (u *Upload) sendPart(id string, num int32, data, buf []byte) {
	defer u.wg.Done()
	etag, err := u.putPart(id, num, data)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if u.err == nil {
			u.err = err
		}
	} else {
		u.parts[num-1].etag = etag
	}
	u.inFlight--
	if len(u.free) < u.conc+windowParts {
		u.free = append(u.free, buf)
	}
	u.cond.Broadcast()
}

func (u *Upload) putPart(id string, num int32, data []byte) (string, error) {
	ctx, cancel := u.b.xferCtx()
	defer cancel()
	// A bytes.Reader: over plain HTTP the SDK signs each body's SHA-256
	// and refuses one it cannot seek (docs/s3.md).
	out, err := u.b.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.b.bucket, Key: &u.key,
		UploadId: &id, PartNumber: &num, Body: bytes.NewReader(data), ContentLength: ptr(int64(len(data)))})
	if err != nil {
		return "", s3Err("upload part "+strconv.Itoa(int(num))+" of", u.key, err)
	}
	return aws.ToString(out.ETag), nil
}

// createMultipart starts the multipart upload, marked live (see live.go)
// unless it is created only to hold a partial about to be recorded. An
// upload that cannot be marked is aborted: unmarked, it would be taken
// for an orphan by another daemon's start-up, and a crash would lose it.
func (u *Upload) createMultipart(live bool) error {
	ctx, cancel := u.b.reqCtx()
	defer cancel()
	out, err := u.b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &u.b.bucket, Key: &u.key})
	if err != nil {
		return s3Err("start upload of", u.key, err)
	}
	id := aws.ToString(out.UploadId)
	if live {
		if err := u.b.goLive(u.key, id); err != nil {
			_ = u.b.abortUpload(u.key, id)
			return err
		}
		u.live = id
	}
	u.uploadID = id
	return nil
}

// waitParts waits, without mu, for the parts in flight.
func (u *Upload) waitParts() {
	u.mu.Unlock()
	u.wg.Wait()
	u.mu.Lock()
}

// flush sends every full part below end and returns the bytes from there
// to end (fewer than a part), left in the window's first buffer. Holes
// are zeros.
func (u *Upload) flush(end int64) ([]byte, error) {
	for u.curStart+u.p <= end {
		if u.err != nil {
			return nil, u.err
		}
		if u.inFlight >= u.conc {
			u.cond.Wait()
			continue
		}
		if err := u.send(u.p); err != nil {
			return nil, err
		}
	}
	n := end - u.curStart
	if n <= 0 {
		return nil, nil
	}
	if err := u.ensure(0); err != nil {
		return nil, err
	}
	zeroHoles(u.win[0].buf[:n], u.win[0].have)
	return u.win[0].buf[:n], nil
}

// contiguous is where the bytes received without a gap end.
func (u *Upload) contiguous() int64 {
	end := u.curStart
	for i := range windowParts {
		if end != u.curStart+int64(i)*u.p {
			break
		}
		if u.primed(i) != nil || u.win[i].buf == nil {
			break
		}
		end += min(u.win[i].have.prefix(), u.p)
	}
	return min(end, u.size)
}

// Stat describes the upload so far.
func (u *Upload) Stat() (fs.FileInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return info{name: u.name, size: u.size, mtime: u.b.o.Now()}, nil
}

// Commit makes the upload the object (see Upload). A commit that fails
// for any reason but Exclusive keeps the upload as the name's partial, as
// a broken upload.
func (u *Upload) Commit() error {
	u.mu.Lock()
	if u.ended {
		u.mu.Unlock()
		return failure("commit", u.key, fs.ErrClosed, "the upload has ended")
	}
	u.ended = true
	u.cond.Broadcast()
	err := u.commit()
	u.mu.Unlock()
	u.finish()
	return err
}

func (u *Upload) commit() error {
	if u.err != nil {
		return u.failed(u.err)
	}
	if u.appended && !u.dirty {
		// Opened for appending, nothing appended: the file is as it was.
		return u.discard()
	}
	tail, err := u.flush(u.size)
	if err != nil {
		return u.failed(err)
	}
	u.waitParts()
	if u.err != nil {
		return u.failed(u.err)
	}
	var etag string
	if len(u.parts) == 0 {
		if etag, err = u.putObject(tail); err != nil {
			return u.failedWith(err, tail)
		}
		if u.uploadID != "" { // a resumed partial of a tail alone
			_ = u.b.abortUpload(u.key, u.uploadID)
		}
	} else {
		if len(tail) > 0 {
			e, err := u.putPart(u.uploadID, u.curNum, tail)
			if err != nil {
				return u.failedWith(err, tail)
			}
			u.parts = append(u.parts, part{etag: e, size: int64(len(tail))})
			u.curNum++
		}
		if etag, err = u.complete(); err != nil {
			if last := u.parts[len(u.parts)-1]; last.size < MinPartSize && len(tail) > 0 {
				u.parts = u.parts[:len(u.parts)-1]
				u.curNum--
			} else {
				tail = nil
			}
			return u.failedWith(err, tail)
		}
	}
	u.etag = trimETag(etag)
	// The partial, if any, is older than the object now.
	if u.claimed {
		if u.recordID != u.uploadID {
			_ = u.b.abortUpload(u.key, u.recordID)
		}
		_ = u.b.deleteRecordIf(u.key, u.recordID)
	} else {
		_, _ = u.b.dropPartial(u.key)
	}
	return nil
}

func trimETag(e string) string {
	if len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' {
		return e[1 : len(e)-1]
	}
	return e
}

func (u *Upload) ifNoneMatch() *string {
	if u.exclusive {
		return ptr("*")
	}
	return nil
}

func (u *Upload) putObject(data []byte) (string, error) {
	ctx, cancel := u.b.xferCtx()
	defer cancel()
	out, err := u.b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.b.bucket, Key: &u.key,
		Body: bytes.NewReader(data), ContentLength: ptr(int64(len(data))), IfNoneMatch: u.ifNoneMatch()})
	if err != nil {
		return "", s3Err("put", u.key, err)
	}
	return aws.ToString(out.ETag), nil
}

func (u *Upload) complete() (string, error) {
	done := make([]types.CompletedPart, len(u.parts))
	for i, p := range u.parts {
		done[i] = types.CompletedPart{ETag: ptr(p.etag), PartNumber: ptr(int32(i + 1))}
	}
	ctx, cancel := u.b.xferCtx()
	defer cancel()
	out, err := u.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.b.bucket, Key: &u.key, UploadId: &u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}, IfNoneMatch: u.ifNoneMatch()})
	if err != nil {
		return "", s3Err("complete", u.key, err)
	}
	return aws.ToString(out.ETag), nil
}

// failed ends a commit that could not complete, keeping what it can as
// the partial; failedWith does so once the bytes after the last part have
// been taken out of the window. An exclusive upload refused because the
// name exists keeps nothing: its bytes could never land.
func (u *Upload) failed(err error) error {
	if u.exclusive && errors.Is(err, fs.ErrExist) {
		return errors.Join(err, u.discard())
	}
	return errors.Join(err, u.keep())
}

func (u *Upload) failedWith(err error, tail []byte) error {
	if u.exclusive && errors.Is(err, fs.ErrExist) {
		return errors.Join(err, u.discard())
	}
	return errors.Join(err, u.record(tail))
}

// Abort ends the upload without touching the name: ErrDetached keeps
// nothing, any other cause keeps the partial (see Upload).
func (u *Upload) Abort(cause error) error {
	u.mu.Lock()
	if u.ended {
		u.mu.Unlock()
		return failure("abort", u.key, fs.ErrClosed, "the upload has ended")
	}
	u.ended = true
	u.cond.Broadcast()
	var err error
	if errors.Is(cause, vfs.ErrDetached) {
		err = u.discard()
	} else {
		err = u.keep()
	}
	u.mu.Unlock()
	u.finish()
	return err
}

// discard aborts the multipart upload, and drops the partial it continued.
// The caller holds mu.
func (u *Upload) discard() error {
	u.waitParts()
	var err error
	if u.uploadID != "" {
		err = u.b.abortUpload(u.key, u.uploadID)
	}
	if u.claimed {
		if u.recordID != u.uploadID {
			err = errors.Join(err, u.b.abortUpload(u.key, u.recordID))
		}
		err = errors.Join(err, u.b.deleteRecordIf(u.key, u.recordID))
	}
	return err
}

// keep makes what arrived without a gap the name's partial. An upload
// that received nothing keeps nothing new: a continued partial stays as
// it was, an append leaves the file alone. The caller holds mu.
func (u *Upload) keep() error {
	end := u.contiguous()
	if !u.dirty || end <= u.base {
		if u.claimed {
			u.waitParts() // nothing was sent: the partial stands
			return nil
		}
		return u.discard()
	}
	var tail []byte
	var err error
	for {
		// The spool may continue where the window ends: each flush moves
		// the window on.
		if tail, err = u.flush(end); err != nil {
			break
		}
		next := u.contiguous()
		if next <= end {
			break
		}
		end = next
	}
	u.waitParts()
	if err != nil || u.err != nil {
		// A part failed: the parts before it are what is left whole.
		for i, p := range u.parts {
			if p.etag == "" {
				u.parts = u.parts[:i]
				break
			}
		}
		u.curNum = int32(len(u.parts)) + 1
		tail = nil
	}
	return u.record(tail)
}

// record writes the partial's record: the parts sent so far and tail, the
// bytes after them (sent as a part too if it can be one). A failure of
// another upload kept earlier is replaced, and its multipart upload
// aborted unless an upload in progress continues it. The caller holds mu
// and no part is in flight.
//
// Should the record fail to be written, the upload's live record is left
// (see finish), so that the start-up after this daemon's next restart, or
// another daemon's once the lease has expired, keeps the parts sent.
func (u *Upload) record(tail []byte) (err error) {
	defer func() {
		if err != nil && len(u.parts) > 0 {
			u.unkept = true
		}
	}()
	if len(tail) >= MinPartSize {
		if u.uploadID == "" {
			if err := u.createMultipart(false); err != nil {
				return err
			}
		}
		e, err := u.putPart(u.uploadID, u.curNum, tail)
		if err == nil {
			u.parts = append(u.parts, part{etag: e, size: int64(len(tail))})
			u.curNum++
			tail = nil
		}
	}
	if len(tail) >= MinPartSize {
		tail = tail[:0] // its part failed: keep the parts alone
	}
	if len(u.parts) == 0 && len(tail) == 0 {
		return u.discard()
	}
	if u.uploadID == "" {
		if err := u.createMultipart(false); err != nil {
			return err
		}
	}
	var old *record
	if !u.claimed {
		old, _ = u.b.headRecord(u.key)
	}
	var size int64
	for _, p := range u.parts {
		size += p.size
	}
	r := record{uploadID: u.uploadID, parts: int32(len(u.parts)), partsSize: size}
	if err := u.b.putRecord(u.key, r, tail); err != nil {
		return err
	}
	if u.claimed && u.recordID != u.uploadID {
		_ = u.b.abortUpload(u.key, u.recordID) // the resumed tail's empty upload
	}
	if old != nil && old.uploadID != u.uploadID && !u.b.isClaimed(u.key) {
		_ = u.b.abortUpload(u.key, old.uploadID)
	}
	return nil
}

// finish releases what the upload held: its live record (its outcome is
// in the bucket by now), its registration, its claim, its spool and its
// buffers.
func (u *Upload) finish() {
	u.mu.Lock()
	live, unkept := u.live, u.unkept
	u.mu.Unlock()
	if live != "" {
		u.b.endLive(live, !unkept)
	}
	u.b.end(u.key)
	if u.claimed {
		u.b.release(u.key)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.spool != nil {
		u.spool.close()
		u.spool = nil
	}
	u.win, u.free = [windowParts]partBuf{}, nil
}

// Truncate sets the size of the upload (SFTP FSETSTAT with a size): it may
// grow it (with zeros) or shrink it within the bytes not yet sent.
func (u *Upload) Truncate(size int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.usable(); err != nil {
		return err
	}
	switch {
	case size < u.curStart:
		return failure("truncate", u.key, errors.ErrUnsupported, "to %d: the bytes before %d are uploaded already", size, u.curStart)
	case size > u.limit():
		return failure("truncate", u.key, syscall.EFBIG, "to %d: beyond %d parts of %d bytes", size, maxParts, u.p)
	}
	for i := range u.win {
		u.win[i].have.cut(size - u.curStart - int64(i)*u.p)
	}
	if u.spool != nil {
		u.spool.have.cut(size)
	}
	u.size = size
	u.base = min(u.base, size)
	u.dirty = true
	return nil
}

// Chmod and Chtimes of an open upload follow setstat, as the store's.
func (u *Upload) Chmod(fs.FileMode) error { return u.setstat("chmod") }

func (u *Upload) Chtimes(_, _ time.Time) error { return u.setstat("chtimes") }

func (u *Upload) setstat(op string) error {
	if u.b.cfg.Setstat == SetstatError {
		return failure(op, u.key, errors.ErrUnsupported, "objects keep no modes or times (s3.setstat: error)")
	}
	return nil
}

var (
	_ vfs.Upload          = (*Upload)(nil)
	_ vfs.UploadTruncater = (*Upload)(nil)
	_ vfs.UploadAttrs     = (*Upload)(nil)
)
