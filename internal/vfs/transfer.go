package vfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// Reader is a download in progress. It counts what it moves, and its
// Close logs and records the transfer.
type Reader struct {
	f     File
	fs    *FS
	name  string // client path
	op    string // download or checksum
	start time.Time

	bytes  atomic.Int64
	closed atomic.Bool
	mu     sync.Mutex
	failed error // guarded by mu
}

// Name is the file's client path.
func (r *Reader) Name() string { return r.name }

// Checksum marks the read as one that computes the file's checksum (FTP's
// HASH, XCRC, XSHA256...): its event is a checksum, not a download, since
// only the digest left the server. Call it before the first read.
func (r *Reader) Checksum() { r.op = "checksum" }

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.bytes.Add(int64(n))
	return n, r.readErr(err)
}

func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	r.bytes.Add(int64(n))
	return n, r.readErr(err)
}

// readErr shows a read's error and fails the download for it: the client
// got less than the file, however it closes the transfer afterwards.
func (r *Reader) readErr(err error) error {
	err = r.err("read", err)
	if err != nil && err != io.EOF {
		r.Fail(err)
	}
	return err
}

// Stat describes the file as opened.
func (r *Reader) Stat() (fs.FileInfo, error) {
	fi, err := r.f.Stat()
	return fi, r.err("stat", err)
}

func (r *Reader) err(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return pathErr(op, r.name, err)
}

// Fail records why the download ended early (the front end's report of a
// dropped connection); Close then logs it as failed.
func (r *Reader) Fail(err error) {
	r.mu.Lock()
	if r.failed == nil {
		r.failed = err
	}
	r.mu.Unlock()
}

// Close ends the download and records it.
func (r *Reader) Close() error {
	err := r.err("close", r.f.Close())
	if r.closed.Swap(true) {
		return pathErr("close", r.name, fs.ErrClosed)
	}
	r.fs.active.Add(-1)
	r.fs.mu.Lock()
	delete(r.fs.reading, r)
	r.fs.mu.Unlock()
	r.mu.Lock()
	failed := r.failed
	r.mu.Unlock()
	if failed == nil {
		failed = err
	}
	n := r.bytes.Load()
	r.fs.transferDone(Op{Type: r.op, Path: r.name, Size: n, Bytes: n, Duration: time.Since(r.start), Err: failed})
	return err
}

// Writer is an upload in progress, as the session sees it. The front end
// ends it with Commit (the transfer completed) or Abort (it broke); a
// failed write makes a later Commit an Abort, since what the store holds
// is not what the client sent.
type Writer struct {
	up    Upload
	fs    *FS
	name  string // client path
	excl  bool
	start time.Time
	hash  *orderedHash // nil unless hashing

	bytes atomic.Int64
	ended atomic.Bool

	// mu is held for reading by writes and for writing by detach, so that
	// the store's upload is never written after it was aborted.
	mu       sync.RWMutex
	detached bool  // guarded by mu
	failed   error // guarded by mu: the first write error
}

// Name is the upload's client path.
func (w *Writer) Name() string { return w.name }

// WriteAt writes p at off. Writes may come concurrently and out of order.
// Once the upload is detached they go nowhere, as writes to an unlinked
// file do.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	if err := w.fs.checkSize("write", w.name, off, int64(len(p))); err != nil {
		w.fail(err)
		return 0, err
	}
	w.mu.RLock()
	if w.detached {
		w.mu.RUnlock()
		return len(p), nil
	}
	n, err := w.up.WriteAt(p, off)
	w.mu.RUnlock()
	w.bytes.Add(int64(n))
	if w.hash != nil {
		w.hash.write(p[:n], off)
	}
	if err != nil {
		err = pathErr("write", w.name, err)
		w.fail(err)
	}
	return n, err
}

// fail remembers a write error: what the store holds is not what the
// client sent, so it must not become the file.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.failed == nil {
		w.failed = err
	}
	w.mu.Unlock()
}

// ReadAt reads back what the upload holds (an SFTP open for reading and
// writing), where the store can.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	r, ok := w.up.(UploadReader)
	if !ok {
		return 0, pathErr("read", w.name, errors.ErrUnsupported)
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.detached {
		return 0, io.EOF
	}
	n, err := r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = pathErr("read", w.name, err)
	}
	return n, err
}

// Truncate sets the upload's size (SFTP FSETSTAT, ftruncate).
func (w *Writer) Truncate(size int64) error {
	if err := w.fs.checkSize("truncate", w.name, size, 0); err != nil {
		return err
	}
	t, ok := w.up.(UploadTruncater)
	if !ok {
		return pathErr("truncate", w.name, errors.ErrUnsupported)
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.detached {
		return nil
	}
	err := t.Truncate(size)
	if err != nil {
		err = pathErr("truncate", w.name, err)
	}
	return err
}

// Stat describes the upload so far, under the client's name.
func (w *Writer) Stat() (fs.FileInfo, error) {
	fi, err := w.up.Stat()
	if err != nil {
		return nil, pathErr("stat", w.name, err)
	}
	return namedInfo{fi, path.Base(w.name)}, nil
}

// detach aborts the store's upload for good: its name changed under it.
func (w *Writer) detach() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.detached {
		w.detached = true
		_ = w.up.Abort(ErrDetached) // nothing is kept; a failure leaves at most a hidden name
	}
}

// Commit makes the upload the file under its name, unless a write failed
// (then it is an Abort for that reason) or the upload was
// detached (then it lands nowhere, and returns nil as close(2) of an
// unlinked file does; an exclusive upload is told fs.ErrExist when another
// upload took the name). The session's other open uploads of the name are
// older than the file now under it: they are detached.
func (w *Writer) Commit() error {
	if w.ended.Swap(true) {
		return pathErr("close", w.name, fs.ErrClosed)
	}
	defer w.fs.ended()
	w.mu.RLock()
	failed := w.failed
	w.mu.RUnlock()
	if failed != nil {
		// The client was told when the write failed; close(2) after a
		// failed write succeeds too. The upload is recorded as failed.
		return w.abort(failed)
	}
	var size int64 = -1
	if w.hash != nil {
		if fi, err := w.up.Stat(); err == nil {
			size = fi.Size()
		}
	}
	f := w.fs
	f.names.Lock()
	if !f.release(w) {
		f.names.Unlock()
		var err error
		if w.excl && f.exists(w.name) {
			err = pathErr("close", w.name, fs.ErrExist)
		}
		w.done(size, ErrDetached)
		return err
	}
	err := pathErr("close", w.name, w.up.Commit())
	if err == nil {
		f.detach(w.name)
	}
	f.names.Unlock()
	w.done(size, err)
	return err
}

// object is where a committed upload landed, on stores that keep objects.
func (w *Writer) object() (url, etag string) {
	if o, ok := w.up.(UploadObject); ok {
		return o.Object()
	}
	return "", ""
}

// Abort ends the upload without a file: the name keeps what it had, and
// the store keeps what arrived as the name's partial, for a resume. cause
// is why (the front end's report of a dropped connection or an aborted
// transfer); it is what the log and the event say.
func (w *Writer) Abort(cause error) error {
	if w.ended.Swap(true) {
		return pathErr("close", w.name, fs.ErrClosed)
	}
	defer w.fs.ended()
	return w.abort(cause)
}

func (w *Writer) abort(cause error) error {
	if cause == nil {
		cause = errAborted
	}
	f := w.fs
	f.names.Lock()
	var err error
	if f.release(w) {
		err = pathErr("close", w.name, w.up.Abort(cause))
	}
	f.names.Unlock()
	w.done(-1, cause)
	return err
}

// errAborted is the cause of an Abort that gave none.
var errAborted = errors.New("transfer aborted")

// done logs and records the finished upload. size is the file's (a
// resumed upload moved fewer bytes than it holds), or -1 if unknown.
func (w *Writer) done(size int64, err error) {
	n := w.bytes.Load()
	op := Op{Type: "upload", Path: w.name, Size: n, Bytes: n, Duration: time.Since(w.start), Err: err}
	if w.hash != nil && err == nil {
		op.SHA256 = w.hash.sum(size)
	}
	if size >= 0 {
		op.Size = size
	}
	if err == nil {
		op.StorageURL, op.ETag = w.object()
	}
	w.fs.transferDone(op)
}
