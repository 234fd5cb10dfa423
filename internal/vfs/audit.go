package vfs

import (
	"time"
)

// Op is one finished operation, as the events see it.
type Op struct {
	Type   string // upload, download, checksum, delete, rename, mkdir, rmdir
	Path   string // client path
	Target string // rename: the new client path
	Size   int64  // downloads: bytes moved; uploads: the file's size
	Bytes  int64  // transfers: bytes moved by this transfer
	SHA256 string // uploads written from offset 0 in order: the file's hash
	// StorageURL and ETag name the object a committed upload became, on
	// stores that keep objects (UploadObject).
	StorageURL string
	ETag       string
	Duration   time.Duration
	Err        error
}

// eventType names the event of a change; setstat is none.
var eventType = map[string]string{"mkdir": "mkdir", "rmdir": "rmdir", "remove": "delete", "rename": "rename"}

// change logs a change (mkdir, remove, rmdir, rename, setstat) with its
// outcome, records it if it is an event, and returns err as shown to the
// client.
func (f *FS) change(op, name string, err error, attrs ...any) error {
	err = ShowError(err)
	if t, ok := eventType[op]; ok {
		o := Op{Type: t, Path: name, Err: err}
		if op == "rename" && len(attrs) == 2 {
			o.Target, _ = attrs[1].(string)
		}
		f.record(o.shown())
	}
	if op == "rename" && len(attrs) == 2 {
		attrs = []any{"target", ShowPath(attrs[1].(string))}
	}
	attrs = append([]any{"op", op, "path", ShowPath(name)}, attrs...)
	if err != nil {
		f.log.Info("change", append(attrs, "outcome", "failed", "err", err)...)
		return err
	}
	f.log.Info("change", append(attrs, "outcome", "ok")...)
	return nil
}

// transferDone logs a finished transfer with its outcome and records it.
func (f *FS) transferDone(op Op) {
	op.Err = ShowError(op.Err)
	f.record(op.shown())
	attrs := []any{"op", op.Type, "path", ShowPath(op.Path), "bytes", op.Bytes, "duration", op.Duration.String()}
	if op.Err != nil {
		f.log.Info("transfer", append(attrs, "outcome", "failed", "err", op.Err)...)
		return
	}
	f.log.Info("transfer", append(attrs, "outcome", "ok")...)
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
