package vfs

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/afero"
)

// Audit logs every change (mkdir, remove, rmdir, rename, setstat) and every
// finished transfer, with its outcome, on log (which carries the session's
// proto, user and conn_id), and hands each to o.Record for the events.
func Audit(inner FS, log *slog.Logger, o AuditOptions) FS {
	if o.Active == nil {
		o.Active = new(atomic.Int64)
	}
	if o.Record == nil {
		o.Record = func(Op) {}
	}
	return &audited{FS: inner, log: log, active: o.Active, record: o.Record, hash: o.HashUploads}
}

// AuditOptions are the observers of an audited filesystem.
type AuditOptions struct {
	// Active counts the transfers in progress, so that a shutdown can wait
	// for them and no longer.
	Active *atomic.Int64
	// Record receives every finished operation that is an event (not
	// setstat); nil: none.
	Record func(Op)
	// HashUploads fills Op.SHA256. It costs about a fifth of the CPU of an
	// upload, so it is for when something reads the hash.
	HashUploads bool
}

// Op is one finished operation, as the events see it.
type Op struct {
	Type     string // upload, download, checksum, delete, rename, mkdir, rmdir
	Path     string // client path
	Target   string // rename: the new client path
	Size     int64  // downloads: bytes moved; uploads: the file's size
	Bytes    int64  // transfers: bytes moved by this transfer
	SHA256   string // uploads written from offset 0 in order: the file's hash
	Duration time.Duration
	Err      error
}

type audited struct {
	FS
	log    *slog.Logger
	active *atomic.Int64
	record func(Op)
	hash   bool
}

// eventType names the event of a change; setstat is none.
var eventType = map[string]string{"mkdir": "mkdir", "rmdir": "rmdir", "remove": "delete", "rename": "rename"}

func (a *audited) change(op, name string, err error, attrs ...any) error {
	err = ShowError(err)
	if t, ok := eventType[op]; ok {
		o := Op{Type: t, Path: clientPath(name), Err: err}
		if op == "rename" && len(attrs) == 2 {
			o.Target, _ = attrs[1].(string)
		}
		a.record(o.shown())
	}
	if op == "rename" && len(attrs) == 2 {
		attrs = []any{"target", ShowPath(attrs[1].(string))}
	}
	attrs = append([]any{"op", op, "path", ShowPath(clientPath(name))}, attrs...)
	if err != nil {
		a.log.Info("change", append(attrs, "outcome", "failed", "err", err)...)
		return err
	}
	a.log.Info("change", append(attrs, "outcome", "ok")...)
	return nil
}

// shown is the Op as the events receive it (its Err already shown, as in
// the log). A failed operation's paths are what the client sent, of any
// length: they are shown (ShowPath) like in the log. A successful one
// names something that exists, whose path the store accepted: hooks act on
// it, so it stays exact.
func (o Op) shown() Op {
	if o.Err != nil {
		o.Path, o.Target = ShowPath(o.Path), ShowPath(o.Target)
	}
	return o
}

func (a *audited) Open(name string) (afero.File, error) {
	return a.OpenFile(name, os.O_RDONLY, 0)
}

func (a *audited) Create(name string) (afero.File, error) {
	return a.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (a *audited) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	f, err := a.FS.OpenFile(name, flag, perm)
	if err != nil {
		err = ShowError(err)
		if flag&writeFlags != 0 {
			// The store refused the upload outright (full, read-only...):
			// still a failed transfer the operator must see.
			a.log.Info("transfer", "op", "upload", "path", ShowPath(clientPath(name)), "bytes", 0, "outcome", "failed", "err", err)
			a.record(Op{Type: "upload", Path: clientPath(name), Err: err}.shown())
		}
		return nil, err
	}
	op := "upload"
	if flag&writeFlags == 0 {
		// Directories are opened to be listed: not a transfer.
		if fi, err := f.Stat(); err != nil || fi.IsDir() {
			return f, nil
		}
		op = "download"
	}
	a.active.Add(1)
	t := &transfer{File: f, log: a.log, op: op, start: time.Now(), active: a.active, record: a.record}
	if op == "upload" && a.hash {
		t.hash = newOrderedHash()
	}
	return t, nil
}

func (a *audited) Mkdir(name string, perm fs.FileMode) error {
	return a.change("mkdir", name, a.FS.Mkdir(name, perm))
}

func (a *audited) MkdirAll(name string, perm fs.FileMode) error {
	return a.change("mkdir", name, a.FS.MkdirAll(name, perm))
}

func (a *audited) Remove(name string) error {
	op := "remove"
	if fi, _, err := a.FS.LstatIfPossible(name); err == nil && fi.IsDir() {
		op = "rmdir"
	}
	return a.change(op, name, a.FS.Remove(name))
}

func (a *audited) RemoveAll(name string) error {
	return a.change("remove", name, a.FS.RemoveAll(name))
}

func (a *audited) Rename(oldname, newname string) error {
	return a.change("rename", oldname, a.FS.Rename(oldname, newname), "target", clientPath(newname))
}

func (a *audited) Chmod(name string, mode fs.FileMode) error {
	return a.change("setstat", name, a.FS.Chmod(name, mode), "mode", mode.String())
}

func (a *audited) Chtimes(name string, atime, mtime time.Time) error {
	return a.change("setstat", name, a.FS.Chtimes(name, atime, mtime), "mtime", mtime.UTC().Format(time.RFC3339))
}

func (a *audited) Truncate(name string, size int64) error {
	return a.change("setstat", name, a.FS.Truncate(name, size), "size", size)
}

// transfer counts the bytes moved through one open file and logs one line
// when it is closed.
type transfer struct {
	afero.File
	log    *slog.Logger
	op     string
	start  time.Time
	active *atomic.Int64
	record func(Op)
	hash   *orderedHash // uploads only
	closed atomic.Bool

	mu     sync.Mutex
	bytes  int64
	failed error // set by the front end when the connection broke mid-transfer
}

// Checksum marks a download as a read to compute the file's checksum
// (FTP's HASH, XCRC, XSHA256...): its event is a checksum, not a download,
// since only the digest left the server. Call it before the first read.
func (t *transfer) Checksum() {
	if t.op == "download" {
		t.op = "checksum"
	}
}

func (t *transfer) count(n int) {
	t.mu.Lock()
	t.bytes += int64(n)
	t.mu.Unlock()
}

func (t *transfer) Read(p []byte) (int, error) {
	n, err := t.File.Read(p)
	t.count(n)
	return n, err
}

func (t *transfer) ReadAt(p []byte, off int64) (int, error) {
	n, err := t.File.ReadAt(p, off)
	t.count(n)
	return n, err
}

func (t *transfer) Write(p []byte) (int, error) {
	var off int64 = -1
	if t.hash != nil {
		if pos, err := t.File.Seek(0, io.SeekCurrent); err == nil {
			off = pos
		}
	}
	n, err := t.File.Write(p)
	t.count(n)
	if t.hash != nil {
		t.hash.write(p[:n], off)
	}
	return n, t.fail(err)
}

func (t *transfer) WriteAt(p []byte, off int64) (int, error) {
	n, err := t.File.WriteAt(p, off)
	t.count(n)
	if t.hash != nil {
		t.hash.write(p[:n], off)
	}
	return n, t.fail(err)
}

func (t *transfer) WriteString(s string) (int, error) { return t.Write([]byte(s)) }

// fail remembers a write error: the upload is incomplete whatever happens next.
func (t *transfer) fail(err error) error {
	if err != nil {
		t.TransferError(err)
	}
	return err
}

// TransferError records why a transfer ended early (pkg/sftp calls it when
// the connection drops with the file still open).
func (t *transfer) TransferError(err error) {
	t.mu.Lock()
	if t.failed == nil {
		t.failed = err
	}
	t.mu.Unlock()
	// A layer below (Atomic) decides at Close whether the upload becomes
	// the file: it must know too.
	if te, ok := t.File.(interface{ TransferError(error) }); ok {
		te.TransferError(err)
	}
}

func (t *transfer) Close() error {
	var size int64 = -1
	if t.hash != nil {
		if fi, err := t.File.Stat(); err == nil {
			size = fi.Size()
		}
	}
	err := t.File.Close()
	if t.closed.Swap(true) {
		return err // logged and counted already
	}
	t.active.Add(-1)
	t.mu.Lock()
	bytes, failed := t.bytes, t.failed
	t.mu.Unlock()
	if failed == nil {
		failed = err
	}
	failed = ShowError(failed)
	d := time.Since(t.start)
	op := Op{Type: t.op, Path: t.Name(), Size: bytes, Bytes: bytes, Duration: d, Err: failed}
	if t.hash != nil {
		op.SHA256 = t.hash.sum(size)
		if size >= 0 {
			op.Size = size // the file's size: a resumed upload moved fewer bytes
		}
	}
	t.record(op.shown())
	attrs := []any{"op", t.op, "path", ShowPath(t.Name()), "bytes", bytes, "duration", d.String()}
	if failed != nil {
		t.log.Info("transfer", append(attrs, "outcome", "failed", "err", failed)...)
	} else {
		t.log.Info("transfer", append(attrs, "outcome", "ok")...)
	}
	return err
}
