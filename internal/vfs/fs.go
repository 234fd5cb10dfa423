package vfs

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FS is one session's view of its home: the policy every front end goes
// through, applied once above whatever Store holds the files. In order,
// each operation
//
//   - cleans the client's path (rel, clientPath: ".." never climbs above
//     the home) and refuses the store's internal names (hidden.go): a
//     client naming one finds nothing there, and may not create one;
//   - checks the user's permissions (perms, read per operation so that a
//     reload applies to the next request) and the name rule (BadName) on
//     every name created, logging each refusal once;
//   - caps the size of uploads (max_upload_size, EFBIG);
//   - keeps the session's own open uploads in view, as a POSIX server's
//     open files are: Stat of a name describes the session's live upload of
//     it first (pkg/sftp answers FSTAT by path), then the partial a broken
//     upload left (Resumer), then the file, which is the size every
//     resuming client computes its offset from. A name that changes under
//     an open upload detaches it, as unlink leaves an open file without a
//     name: a remove of the name, a rename onto it or another upload of it
//     committing, in the same session, abort the upload (ErrDetached), and
//     its handle then takes writes that go nowhere and commits nothing.
//     Another session's uploads are its own: the last to commit wins;
//   - reduces errors to a cause fit for a client, naming only the client's
//     path (pathErr);
//   - logs every change and finished transfer with its outcome, and hands
//     each to Options.Record for the events.
//
// Transfers are objects of their own: Open returns a Reader, Create a
// Writer that ends by Commit or Abort, as the front end decides. Close of
// the FS closes the store once the uploads still open have ended:
// ftpserverlib ends a session before the data connection whose transfer
// then ends its upload.
type FS struct {
	store   Store
	perms   func() Perms
	maxSize func() int64
	log     *slog.Logger
	active  *atomic.Int64
	record  func(Op)
	hash    bool

	// names serialises this session's changes of names (a commit, a
	// remove, a rename), so that an upload detached by one is never
	// committed by another running beside it.
	names sync.Mutex

	mu      sync.Mutex
	open    map[string][]*Writer // by client path: this session's live uploads
	reading map[*Reader]struct{} // this session's live downloads (Transfers)
	held    int                  // uploads not yet ended, detached ones included
	closing bool                 // Close was called; the last upload closes the store

	closeOnce sync.Once
	closeErr  error
}

// Options are the session's rules and observers. Every field is optional.
type Options struct {
	// Perms is the user's permissions, read per operation; nil: all.
	Perms func() Perms
	// MaxSize is the largest file an upload may make, read per write; nil
	// or 0: no cap.
	MaxSize func() int64
	// Log carries the session's attributes (proto, user, conn_id); nil:
	// discard.
	Log *slog.Logger
	// Active counts the transfers in progress, so that a shutdown can wait
	// for them and no longer.
	Active *atomic.Int64
	// Record receives every finished operation that is an event (not
	// setstat).
	Record func(Op)
	// HashUploads fills Op.SHA256. It costs about a fifth of the CPU of an
	// upload, so it is for when something reads the hash.
	HashUploads bool
}

// NewFS returns the session's view of store. The FS owns store from now
// on: its Close closes it.
func NewFS(store Store, o Options) *FS {
	f := &FS{store: store, perms: o.Perms, maxSize: o.MaxSize, log: o.Log, active: o.Active,
		record: o.Record, hash: o.HashUploads, open: map[string][]*Writer{}, reading: map[*Reader]struct{}{}}
	if f.perms == nil {
		f.perms = func() Perms { return PermAll }
	}
	if f.maxSize == nil {
		f.maxSize = func() int64 { return 0 }
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.active == nil {
		f.active = new(atomic.Int64)
	}
	if f.record == nil {
		f.record = func(Op) {}
	}
	return f
}

// Store is the store beneath, for what only a backend can tell (such as
// where a committed upload landed in a bucket).
func (f *FS) Store() Store { return f.store }

// Close closes the store once the uploads still open have ended. It
// returns at once either way; a second Close does nothing.
func (f *FS) Close() error {
	f.mu.Lock()
	f.closing = true
	busy := f.held > 0
	f.mu.Unlock()
	if busy {
		return nil
	}
	return f.closeStore()
}

func (f *FS) closeStore() error {
	f.closeOnce.Do(func() { f.closeErr = f.store.Close() })
	return f.closeErr
}

// deny logs a refusal and returns the error the front ends map to
// "permission denied".
func (f *FS) deny(op, name string) error {
	f.log.Warn("denied", "op", op, "path", ShowPath(name))
	return denied(op, name)
}

// checkNew applies the name rule to a name about to be created and logs a
// refusal.
func (f *FS) checkNew(op, name string) error {
	err := checkNew(op, name, false)
	if err != nil {
		f.log.Warn("refused", "op", op, "path", ShowPath(name), "err", ErrBadName)
	}
	return err
}

// Stat describes name as the session sees it: its own live upload of it,
// else the partial a broken upload left, else the file.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	return f.stat("stat", name, f.store.Stat)
}

// Lstat is Stat without following a final symlink, where the store has
// symlinks at all.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	st := f.store.Stat
	if l, ok := f.store.(Lstater); ok {
		st = l.Lstat
	}
	return f.stat("lstat", name, st)
}

func (f *FS) stat(op, name string, st func(string) (fs.FileInfo, error)) (fs.FileInfo, error) {
	p := clientPath(name)
	if reserved(p) {
		return nil, notFound(op, p)
	}
	if p != "/" {
		base := path.Base(p)
		if ups := f.uploads(p); len(ups) > 0 {
			if fi, err := ups[len(ups)-1].up.Stat(); err == nil {
				return namedInfo{fi, base}, nil
			}
		}
		if r, ok := f.store.(Resumer); ok {
			if fi, err := r.Partial(p); err == nil {
				return namedInfo{fi, base}, nil
			}
		}
	}
	fi, err := st(p)
	if err != nil {
		return nil, pathErr(op, p, err)
	}
	return fi, nil
}

// exists reports whether Stat finds name.
func (f *FS) exists(name string) bool {
	_, err := f.Stat(name)
	return err == nil
}

// List opens the directory name for listing. The store's internal names
// are left out.
func (f *FS) List(name string) (*Dir, error) {
	p := clientPath(name)
	if reserved(p) {
		return nil, notFound("opendir", p)
	}
	if !f.perms().Has(PermList) {
		return nil, f.deny("list", p)
	}
	fi, err := f.store.Stat(p)
	if err != nil {
		return nil, pathErr("opendir", p, err)
	}
	if !fi.IsDir() {
		return nil, pathErr("opendir", p, syscall.ENOTDIR)
	}
	l, err := f.store.List(p)
	if err != nil {
		return nil, pathErr("opendir", p, err)
	}
	return &Dir{l: l, name: p}, nil
}

// Dir is a directory being listed.
type Dir struct {
	l    Lister
	name string // client path
}

// Name is the directory's client path.
func (d *Dir) Name() string { return d.name }

// Next returns up to n (> 0) more entries, and io.EOF once there are none.
func (d *Dir) Next(n int) ([]fs.FileInfo, error) {
	// Each pass consumes at least one entry, or ends: the loop is bounded
	// by the directory's size.
	for {
		fis, err := d.l.Next(n)
		kept := slices.DeleteFunc(fis, func(fi fs.FileInfo) bool { return isHidden(fi.Name()) })
		if err != nil && err != io.EOF {
			err = pathErr("readdir", d.name, err)
		}
		// A chunk of nothing but hidden names must not look like the end.
		if len(kept) > 0 || err != nil || len(fis) == 0 {
			return kept, err
		}
	}
}

// Close ends the listing.
func (d *Dir) Close() error { return pathErr("closedir", d.name, d.l.Close()) }

// Mkdir makes the directory name.
func (f *FS) Mkdir(name string) error {
	p := clientPath(name)
	if reserved(p) {
		return denied("mkdir", p)
	}
	if !f.perms().Has(PermMkdir) {
		return f.deny("mkdir", p)
	}
	if err := f.checkNew("mkdir", p); err != nil {
		return err
	}
	return f.change("mkdir", p, pathErr("mkdir", p, f.store.Mkdir(p)))
}

// Remove removes everything the client may see under the file name: the
// file, the session's live uploads of it (detached, as unlink leaves an
// open file without a name) and its partial. It succeeds if any of them
// existed; a directory is refused (EISDIR).
func (f *FS) Remove(name string) error {
	p := clientPath(name)
	if reserved(p) {
		return notFound("remove", p)
	}
	if !f.perms().Has(PermDelete) {
		return f.deny("remove", p)
	}
	if p == "/" {
		return f.change("remove", p, denied("remove", p))
	}
	f.names.Lock()
	err := f.store.Remove(p)
	// Only a name that went, or that the store never had (the session's
	// upload is all there is of it), detaches the uploads: a remove the
	// store refused (a directory, a read-only store) leaves the name, and
	// the uploads of it or beneath it, as they were.
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		if f.detach(p) > 0 {
			err = nil
		}
	}
	f.names.Unlock()
	return f.change("remove", p, pathErr("remove", p, err))
}

// Rmdir removes the directory name, which must look empty (the store's
// internal names do not count; an upload in progress there does, as its
// growing file would on a POSIX server).
func (f *FS) Rmdir(name string) error {
	p := clientPath(name)
	if reserved(p) {
		return notFound("rmdir", p)
	}
	if !f.perms().Has(PermDelete) {
		return f.deny("rmdir", p)
	}
	if p == "/" {
		return f.change("rmdir", p, denied("rmdir", p))
	}
	f.names.Lock()
	// The session's own upload in progress there counts: a store that
	// keeps it out of the directory (memory, a bucket), or as an internal
	// name that Rmdir takes along, would not see it.
	err := error(syscall.ENOTEMPTY)
	if !f.busy(p) {
		err = f.store.Rmdir(p)
	}
	if err == nil {
		f.detach(p)
	}
	f.names.Unlock()
	return f.change("rmdir", p, pathErr("rmdir", p, err))
}

// busy reports whether the session has a live upload beneath the
// directory dir.
func (f *FS) busy(dir string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n := range f.open {
		if strings.HasPrefix(n, dir+"/") {
			return true
		}
	}
	return false
}

// Rename moves oldname to newname, replacing a file there: it needs the
// rename permission, and overwrite as well when it would replace a file.
// The session's live uploads of newname are detached: the name is the
// renamed file's now. A folder with the session's upload in progress
// beneath is not renamed (EBUSY).
func (f *FS) Rename(oldname, newname string) error {
	from, to := clientPath(oldname), clientPath(newname)
	if reserved(from) {
		return notFound("rename", from)
	}
	if reserved(to) {
		return denied("rename", to)
	}
	p := f.perms()
	if !p.Has(PermRename) {
		return f.deny("rename", from)
	}
	if err := f.checkNew("rename", to); err != nil {
		return err
	}
	if !p.Has(PermOverwrite) && f.exists(to) {
		return f.deny("overwrite", to)
	}
	rn, ok := f.store.(Renamer)
	if !ok {
		return f.change("rename", from, pathErr("rename", from, errors.ErrUnsupported), "target", to)
	}
	var err error
	if from == "/" || to == "/" {
		err = denied("rename", from)
	} else {
		f.names.Lock()
		if f.busy(from) {
			// A folder with the session's upload in progress beneath: the
			// upload would land under the old path, which no longer
			// exists (its growing file would move along on a POSIX
			// server). Refused, as Windows refuses; the client may retry
			// once the upload ended.
			err = syscall.EBUSY
		} else {
			err = rn.Rename(from, to)
		}
		if err == nil && from != to {
			f.detach(to)
		}
		f.names.Unlock()
	}
	return f.change("rename", from, pathErr("rename", from, err), "target", to)
}

// mayAttr reports whether the user may set attributes: setting a mode or
// times changes no content, so upload or overwrite suffices (`put -p` works
// for a user who may only add files).
func (f *FS) mayAttr() bool {
	p := f.perms()
	return p.Has(PermUpload) || p.Has(PermOverwrite)
}

// Chmod sets the mode of name, and of the session's open uploads of it
// (OpenSSH's put -p sets it before it closes).
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	p := clientPath(name)
	if reserved(p) {
		return notFound("chmod", p)
	}
	if !f.mayAttr() {
		return f.deny("setstat", p)
	}
	var set func() error
	if c, ok := f.store.(Chmoder); ok {
		set = func() error { return c.Chmod(p, mode) }
	}
	err := f.attrs(p, func(u UploadAttrs) error { return u.Chmod(mode) }, set)
	return f.change("setstat", p, pathErr("chmod", p, err), "mode", mode.String())
}

// Chtimes sets the times of name, and of the session's open uploads of it.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	p := clientPath(name)
	if reserved(p) {
		return notFound("chtimes", p)
	}
	if !f.mayAttr() {
		return f.deny("setstat", p)
	}
	var set func() error
	if c, ok := f.store.(Chtimeser); ok {
		set = func() error { return c.Chtimes(p, atime, mtime) }
	}
	err := f.attrs(p, func(u UploadAttrs) error { return u.Chtimes(atime, mtime) }, set)
	return f.change("setstat", p, pathErr("chtimes", p, err), "mtime", mtime.UTC().Format(time.RFC3339))
}

// attrs applies setUp to the session's open uploads of name and set (nil:
// the store cannot) to the name itself; a name that exists only as an open
// upload is no error.
func (f *FS) attrs(name string, setUp func(UploadAttrs) error, set func() error) error {
	done := false
	for _, u := range f.uploads(name) {
		if ua, ok := u.up.(UploadAttrs); ok && setUp(ua) == nil {
			done = true
		}
	}
	if set == nil {
		if done {
			return nil
		}
		return errors.ErrUnsupported
	}
	err := set()
	if done && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Truncate sets the size of what Stat describes; it changes content, so it
// needs overwrite.
func (f *FS) Truncate(name string, size int64) error {
	p := clientPath(name)
	if reserved(p) {
		return notFound("truncate", p)
	}
	if !f.perms().Has(PermOverwrite) {
		return f.deny("overwrite", p)
	}
	err := f.checkSize("truncate", p, size, 0)
	if err == nil {
		if ups := f.uploads(p); len(ups) > 0 {
			err = ups[len(ups)-1].Truncate(size)
		} else if t, ok := f.store.(Truncater); ok {
			err = pathErr("truncate", p, t.Truncate(p, size))
		} else {
			err = pathErr("truncate", p, errors.ErrUnsupported)
		}
	}
	return f.change("setstat", p, err, "size", size)
}

// checkSize refuses data of length n at off past the size cap; written so
// that off + n cannot overflow, and a negative offset never slips under it.
func (f *FS) checkSize(op, name string, off, n int64) error {
	if m := f.maxSize(); m > 0 && (off < 0 || off > m-n) {
		return &fs.PathError{Op: op, Path: ShowPath(name), Err: syscall.EFBIG}
	}
	return nil
}

// StatFS reports the capacity of the store, or an error wrapping
// errors.ErrUnsupported where the store cannot tell.
func (f *FS) StatFS() (*FSStats, error) {
	s, ok := f.store.(StatFSer)
	if !ok {
		return nil, pathErr("statvfs", "/", errors.ErrUnsupported)
	}
	st, err := s.StatFS()
	if err != nil {
		return nil, pathErr("statvfs", "/", err)
	}
	return st, nil
}

// Open opens the file name for a download, reading from off.
func (f *FS) Open(name string, off int64) (*Reader, error) {
	p := clientPath(name)
	if reserved(p) {
		return nil, notFound("open", p)
	}
	if !f.perms().Has(PermDownload) {
		return nil, f.deny("download", p)
	}
	file, err := f.store.Open(p, off)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	fi, err := file.Stat()
	if err == nil && fi.IsDir() {
		err = syscall.EISDIR
	}
	if err != nil {
		file.Close()
		return nil, pathErr("open", p, err)
	}
	f.active.Add(1)
	r := &Reader{f: file, fs: f, name: p, op: "download", start: time.Now()}
	f.mu.Lock()
	f.reading[r] = struct{}{}
	f.mu.Unlock()
	return r, nil
}

// Create starts an upload of name. flag holds the open(2) flags the client
// asked for: without O_TRUNC the upload continues what Stat describes
// (a resume, an append); without O_CREATE the name must exist; O_EXCL
// refuses an existing file; O_RDWR needs the download permission too. A
// user who may upload but not overwrite gets O_EXCL (checked by the
// store, at create and at commit, never by a racy Stat here); one who may
// overwrite but not upload only reaches existing names.
func (f *FS) Create(name string, flag int) (*Writer, error) {
	p := clientPath(name)
	if reserved(p) {
		if flag&os.O_CREATE != 0 {
			return nil, denied("open", p)
		}
		return nil, notFound("open", p)
	}
	perms := f.perms()
	if flag&os.O_RDWR != 0 && !perms.Has(PermDownload) {
		return nil, f.deny("download", p)
	}
	if flag&os.O_CREATE != 0 {
		// Judged by the name alone: overwriting an existing bad name
		// through O_CREATE is refused too (rename it).
		if err := f.checkNew("open", p); err != nil {
			return nil, err
		}
	}
	o := CreateOptions{Continue: flag&os.O_TRUNC == 0, MustExist: flag&os.O_CREATE == 0, Exclusive: flag&os.O_EXCL != 0}
	canCreate, canOverwrite := perms.Has(PermUpload), perms.Has(PermOverwrite)
	onlyCreate := canCreate && !canOverwrite
	switch {
	case canCreate && canOverwrite:
	case canCreate:
		if o.MustExist {
			return nil, f.deny("overwrite", p)
		}
		o.Exclusive = true
	case canOverwrite:
		if !f.exists(p) {
			return nil, f.deny("upload", p)
		}
		o.MustExist = true
	default:
		return nil, f.deny("upload", p)
	}
	var up Upload
	err := error(syscall.EISDIR) // the home itself
	if p != "/" {
		up, err = f.store.Create(p, o)
	}
	if err != nil {
		if onlyCreate && errors.Is(err, fs.ErrExist) {
			return nil, f.deny("overwrite", p)
		}
		err = ShowError(pathErr("open", p, err))
		// The store refused the upload outright (full, read-only...): still
		// a failed transfer the operator must see.
		f.log.Info("transfer", "op", "upload", "path", ShowPath(p), "bytes", 0, "outcome", "failed", "err", err)
		f.record(Op{Type: "upload", Path: p, Err: err}.shown())
		return nil, err
	}
	u := &Writer{up: up, fs: f, name: p, excl: o.Exclusive, start: time.Now()}
	if f.hash {
		u.hash = newOrderedHash()
	}
	f.active.Add(1)
	f.mu.Lock()
	f.open[p] = append(f.open[p], u)
	f.held++
	f.mu.Unlock()
	return u, nil
}

// uploads returns this session's live uploads of name, newest last.
func (f *FS) uploads(name string) []*Writer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.open[name])
}

// release takes u out of the session's live uploads and reports whether it
// was one: false means a remove, a rename or another upload detached it.
// The caller holds f.names.
func (f *FS) release(u *Writer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.open[u.name]
	i := slices.Index(list, u)
	if i < 0 {
		return false
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(f.open, u.name)
	} else {
		f.open[u.name] = list
	}
	return true
}

// detach aborts this session's live uploads of name, and of any name
// beneath it, and takes them out of its view: the name they would have
// landed on was removed, renamed over or committed by another upload. It
// reports how many it detached. The caller holds f.names.
func (f *FS) detach(name string) int {
	f.mu.Lock()
	var gone []*Writer
	for n, list := range f.open {
		if n == name || strings.HasPrefix(n, name+"/") || name == "/" {
			gone = append(gone, list...)
			delete(f.open, n)
		}
	}
	f.mu.Unlock()
	for _, u := range gone {
		u.detach()
	}
	return len(gone)
}

// ended forgets an upload that ended, and closes the store if it was the
// last one a Close waited for.
func (f *FS) ended() {
	f.active.Add(-1)
	f.mu.Lock()
	f.held--
	last := f.closing && f.held == 0
	f.mu.Unlock()
	if last {
		_ = f.closeStore() // nobody is left to report it to
	}
}
