package vfs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/afero"
)

// Atomic makes uploads appear under their name only once complete. It sits
// directly above a backend, below the size cap and the audit layer, so that
// those see the client's name and bytes and never a temporary name.
//
// The rule, which every other method of this layer follows:
//
//   - An upload (a write-open of a regular file) goes to a temporary file
//     of its own, ".wharf-upload.<name>.<random>", in the same directory
//     (the final rename then never crosses a file system). Close renames it
//     over the name, unless a write failed or the front end reported a
//     TransferError (a dropped connection, an aborted FTP transfer). Two
//     concurrent uploads of one name each write their own file; the last to
//     complete wins, and neither sees the other's bytes.
//   - A name that changes under an open upload detaches it, as a POSIX
//     server's open file loses its name: a remove of the name, a rename
//     onto it and another upload of it completing, all in the same
//     session, take the upload out of the session's view and unlink its
//     temporary file; its handle still takes writes, and its Close commits
//     nothing and keeps no partial. A client that removes a name whose
//     upload failed, uploads it again and closes the old handle last (as
//     one does that cleans up before it closes) thus finds what OpenSSH's
//     sftp-server, or this server with the layer off, would leave: the new
//     file, not the abandoned one. Another session's uploads are its own,
//     as before: the last to complete wins.
//   - A failed upload is kept as the name's partial, ".wharf-partial.<name>",
//     for a later resume; the name itself is untouched: no new file appears,
//     and an overwrite that breaks keeps the old content. The partial's name
//     is deterministic so that the next session finds it; the newest failure
//     replaces an older partial, and a completed upload or a rename onto the
//     name removes it.
//   - Stat (and Lstat) of a name describes, in this order: the session's own
//     upload of it still open (pkg/sftp answers FSTAT and FSETSTAT by path),
//     its partial, the final file. That is the size a non-atomic server would
//     report, and the one every resuming client computes its offset from:
//     OpenSSH reput and put -a, psftp reput and curl -C - stat the name; lftp
//     put -c asks SIZE then sends REST and STOR; curl -C - over FTP asks SIZE
//     then sends APPE. Listings and downloads, on the other hand, only ever
//     show complete files, so whatever processes the directory never sees a
//     partial.
//   - A write-open without O_TRUNC continues the file Stat describes: a
//     partial is claimed (renamed to the new upload's temporary file, which
//     is atomic, so two sessions never share it); otherwise an existing file
//     is copied to the temporary file first, up to 256 MiB. Beyond that the
//     existing file is written in place: a copy would cost seconds of I/O and
//     as much space again on every append (FTP APPE to a log, a resume onto a
//     prefix a non-atomic server left), and such a file was already complete
//     and visible under its name.
//   - O_EXCL (which Restrict adds for users who may upload but not
//     overwrite) refuses when the final file exists, at open and again at
//     close; a partial does not count, so such a user can resume.
//   - Both kinds of names are hidden from listings; an operation naming one
//     is answered as if nothing were there (creating one: permission denied).
//     Removing a name removes its partial too, and a directory that holds
//     nothing but partials can be removed. A temporary file keeps its
//     directory, as the growing file would on a plain server: at run time
//     one exists only while an upload holds it (a detach and a Close
//     remove theirs, and RecoverUploads turns a dead daemon's into
//     partials before the first session), and it may be another
//     session's, which this one cannot see.
//
// Every layer above must pass TransferError down to the file it wraps, or
// a dropped connection looks like a completed upload. Close of this
// filesystem waits for the uploads still open to land before it closes the
// backend's home.
//
// With fsync, a completed upload is flushed to disk before its rename and
// its directory after it, all before Close returns (so before the
// client's reply and the upload event); a kept partial is flushed too, so
// that a resume point survives a power loss. A temporary file left by a
// daemon that died mid-upload (a claimed partial included) is named after
// its partial, so RecoverUploads at the next start turns it back into one.
func Atomic(inner FS, fsync bool) FS {
	a := newAtomic(inner, atomicCopyMax)
	a.fsync = fsync
	return a
}

const (
	uploadPrefix  = ".wharf-upload."
	partialPrefix = ".wharf-partial."

	// atomicCopyMax is the largest existing file copied to continue it; see
	// Atomic.
	atomicCopyMax = 256 << 20
	// atomicNameMax is NAME_MAX: a longer client name is replaced by its
	// hash in the temporary and partial names.
	atomicNameMax = 255
	// tempSuffixLen is the length of a temporary name's ".<16 hex>".
	tempSuffixLen = 17
)

func newAtomic(inner FS, copyMax int64) *atomicFS {
	return &atomicFS{FS: inner, copyMax: copyMax, open: map[string][]*atomicFile{}}
}

type atomicFS struct {
	FS
	copyMax int64
	fsync   bool // flush uploads and their directory before Close returns

	// names serialises this session's changes of names (a commit, a kept
	// partial, a remove, a rename), so that an upload detached by one is
	// never committed by a Close running beside it.
	names sync.Mutex

	mu      sync.Mutex
	open    map[string][]*atomicFile // by client path: this session's live uploads (neither closed nor detached)
	held    int                      // uploads not yet closed, detached ones included
	closing bool                     // Close was called; the last upload closes the backend

	closeOnce sync.Once
	closeErr  error
}

// Close closes the backend's home, once the uploads still open have
// landed: their Close renames, which needs the home. ftpserverlib ends a
// session (ClientDisconnected) before it closes the data connection whose
// transfer then closes its file.
func (a *atomicFS) Close() error {
	a.mu.Lock()
	a.closing = true
	busy := a.held > 0
	a.mu.Unlock()
	if busy {
		return nil
	}
	return a.closeInner()
}

func (a *atomicFS) closeInner() error {
	a.closeOnce.Do(func() { a.closeErr = a.FS.Close() })
	return a.closeErr
}

// isHidden reports whether a directory entry is one of this layer's names.
func isHidden(base string) bool {
	return strings.HasPrefix(base, uploadPrefix) || strings.HasPrefix(base, partialPrefix)
}

// reserved reports whether any component of a client path is one of this
// layer's names.
func reserved(name string) bool {
	p := clientPath(name)
	return strings.Contains(p, "/"+uploadPrefix) || strings.Contains(p, "/"+partialPrefix)
}

func notFound(op, name string) error {
	return &fs.PathError{Op: op, Path: clientPath(name), Err: fs.ErrNotExist}
}

// hiddenKey is how base appears in its temporary and partial names: base
// itself, or its hash when the longer of the two, the temporary name,
// would exceed a file name's length. Both names use the same key, so that
// a temporary file left by a crash maps back to its partial.
func hiddenKey(base string) string {
	if len(uploadPrefix)+len(base)+tempSuffixLen > atomicNameMax {
		sum := sha256.Sum256([]byte(base))
		return hex.EncodeToString(sum[:16])
	}
	return base
}

// partialOf is where a failed upload of name waits for its resume.
func partialOf(name string) string {
	dir, base := path.Split(clientPath(name))
	return dir + partialPrefix + hiddenKey(base)
}

// tempOf is a fresh temporary name for one upload of name.
func tempOf(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	dir, base := path.Split(clientPath(name))
	return dir + uploadPrefix + hiddenKey(base) + "." + hex.EncodeToString(b[:])
}

// partialForHidden returns the partial a hidden file left on disk belongs
// to: a temporary file's (".wharf-upload.<key>.<16 hex>"), or, for a
// partial named by an older version that hashed long names at another
// length, the partial's current name. ok is false for any other name and
// for a partial already under its current name.
func partialForHidden(base string) (partial string, ok bool) {
	if rest, found := strings.CutPrefix(base, uploadPrefix); found {
		n := len(rest) - tempSuffixLen
		if n <= 0 || rest[n] != '.' {
			return "", false
		}
		if _, err := hex.DecodeString(rest[n+1:]); err != nil {
			return "", false
		}
		return partialPrefix + rest[:n], true
	}
	if rest, found := strings.CutPrefix(base, partialPrefix); found && rest != "" {
		if key := hiddenKey(rest); key != rest {
			return partialPrefix + key, true
		}
	}
	return "", false
}

// namedInfo is a temporary file's or a partial's FileInfo under the
// client's name.
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }

func (a *atomicFS) track(f *atomicFile) {
	a.mu.Lock()
	a.open[f.name] = append(a.open[f.name], f)
	a.held++
	a.mu.Unlock()
}

// release takes f out of the session's live uploads and reports whether it
// was one: false means a remove, a rename or another upload detached it.
// The caller holds a.names.
func (a *atomicFS) release(f *atomicFile) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.open[f.name]
	i := slices.Index(list, f)
	if i < 0 {
		return false
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(a.open, f.name)
	} else {
		a.open[f.name] = list
	}
	return true
}

// done forgets a closed upload, and closes the backend if it was the last
// one a Close waited for.
func (a *atomicFS) done() {
	a.mu.Lock()
	a.held--
	last := a.closing && a.held == 0
	a.mu.Unlock()
	if last {
		_ = a.closeInner() // nobody is left to report it to
	}
}

// detach takes this session's live uploads of name, and of any name
// beneath it, out of its view and unlinks their temporary files: the name
// they would have landed on was removed, renamed over or completed by
// another upload. Their handles still take writes, into a file no name
// leads to (as a POSIX file's do once unlinked), and their Close commits
// nothing. It reports how many it detached. The caller holds a.names.
func (a *atomicFS) detach(name string) int {
	p := clientPath(name)
	a.mu.Lock()
	var gone []*atomicFile
	for n, list := range a.open {
		if n == p || strings.HasPrefix(n, p+"/") || p == "/" {
			gone = append(gone, list...)
			delete(a.open, n)
		}
	}
	a.mu.Unlock()
	for _, u := range gone {
		_ = a.FS.Remove(u.tmp) // gone already with a removed directory
	}
	return len(gone)
}

// uploads returns this session's open uploads of name, newest last.
func (a *atomicFS) uploads(name string) []*atomicFile {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*atomicFile(nil), a.open[clientPath(name)]...)
}

// partial returns the partial of name and its FileInfo, if there is one
// and name is not something other than a regular file (a directory made
// since the partial was left keeps its own attributes).
func (a *atomicFS) partial(name string) (string, fs.FileInfo, bool) {
	if clientPath(name) == "/" {
		return "", nil, false
	}
	p := partialOf(name)
	fi, err := a.FS.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", nil, false
	}
	if ffi, _, err := a.FS.LstatIfPossible(name); err == nil && !ffi.Mode().IsRegular() {
		return "", nil, false
	}
	return p, fi, true
}

func (a *atomicFS) Stat(name string) (fs.FileInfo, error) {
	fi, _, err := a.stat("stat", name)
	return fi, err
}

func (a *atomicFS) LstatIfPossible(name string) (fs.FileInfo, bool, error) {
	return a.stat("lstat", name)
}

func (a *atomicFS) stat(op, name string) (fs.FileInfo, bool, error) {
	if reserved(name) {
		return nil, false, notFound(op, name)
	}
	base := path.Base(clientPath(name))
	// The session's own live upload of name is what a plain server would
	// show under it, since there the upload is the file; and pkg/sftp
	// answers FSTAT of an open handle by path, so a client sees its own
	// upload there. A detached upload is out of this list: its name shows
	// the store again.
	if ups := a.uploads(name); len(ups) > 0 {
		if fi, err := ups[len(ups)-1].file.f.Stat(); err == nil {
			return namedInfo{fi, base}, true, nil
		}
	}
	if _, fi, ok := a.partial(name); ok {
		return namedInfo{fi, base}, true, nil
	}
	if op == "lstat" {
		return a.FS.LstatIfPossible(name)
	}
	fi, err := a.FS.Stat(name)
	return fi, false, err
}

func (a *atomicFS) Open(name string) (afero.File, error) {
	return a.OpenFile(name, os.O_RDONLY, 0)
}

func (a *atomicFS) Create(name string) (afero.File, error) {
	return a.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (a *atomicFS) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	if reserved(name) {
		if flag&os.O_CREATE != 0 {
			return nil, denied("open", name)
		}
		return nil, notFound("open", name)
	}
	if flag&writeFlags == 0 {
		f, err := a.FS.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return hidingFile{f}, nil
	}
	return a.openUpload(name, flag, perm)
}

// How an upload's temporary file began.
const (
	startedEmpty  = iota // a new file or O_TRUNC
	startedClaim         // the name's partial, renamed
	startedCopied        // a copy of the existing file
)

func (a *atomicFS) openUpload(name string, flag int, perm fs.FileMode) (afero.File, error) {
	if clientPath(name) == "/" {
		return a.FS.OpenFile(name, flag, perm) // the home itself: the backend refuses
	}
	fi, _, err := a.FS.LstatIfPossible(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	exists := err == nil
	if exists && !fi.Mode().IsRegular() {
		// A directory fails as it would anyway; a symlink planted on disk
		// is written through, in place, as the backend allows.
		return a.FS.OpenFile(name, flag, perm)
	}
	if exists && flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
		return nil, &fs.PathError{Op: "open", Path: clientPath(name), Err: fs.ErrExist}
	}
	tmp := tempOf(name)
	start := startedEmpty
	if flag&os.O_TRUNC == 0 {
		switch err := a.FS.Rename(partialOf(name), tmp); {
		case err == nil:
			start = startedClaim
		case !errors.Is(err, fs.ErrNotExist):
			return nil, pathErr("open", name, err)
		case exists && fi.Size() > a.copyMax:
			return a.FS.OpenFile(name, flag, perm)
		case exists:
			if err := a.copyFile(name, tmp, fi.Mode().Perm()); err != nil {
				return nil, pathErr("open", name, err)
			}
			start = startedCopied
		case flag&os.O_CREATE == 0:
			return nil, notFound("open", name)
		}
	} else if !exists && flag&os.O_CREATE == 0 {
		if _, _, ok := a.partial(name); !ok {
			return nil, notFound("open", name)
		}
	}

	var f afero.File
	if start == startedEmpty {
		f, err = a.FS.OpenFile(tmp, flag|os.O_CREATE|os.O_EXCL, perm)
		if err == nil && exists {
			// An overwrite keeps the file's mode, as writing in place would.
			_ = a.FS.Chmod(tmp, fi.Mode().Perm())
		}
	} else {
		f, err = a.FS.OpenFile(tmp, flag&^(os.O_CREATE|os.O_EXCL|os.O_TRUNC), perm)
		if err != nil && start == startedClaim {
			_ = a.FS.Rename(tmp, partialOf(name)) // give the partial back
		} else if err != nil {
			_ = a.FS.Remove(tmp)
		}
	}
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	u := &atomicFile{file: wrapFile(f, name), fs: a, name: clientPath(name), tmp: tmp,
		start: start, excl: flag&os.O_EXCL != 0}
	a.track(u)
	return u, nil
}

// copyFile copies the regular file name to a new file tmp with mode perm.
func (a *atomicFS) copyFile(name, tmp string, perm fs.FileMode) error {
	src, err := a.FS.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := a.FS.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(dst, src, make([]byte, 1<<20))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = a.FS.Chmod(tmp, perm) // the mode asked at create is masked by the umask
	}
	if err != nil {
		_ = a.FS.Remove(tmp)
	}
	return err
}

func (a *atomicFS) Mkdir(name string, perm fs.FileMode) error {
	if reserved(name) {
		return denied("mkdir", name)
	}
	return a.FS.Mkdir(name, perm)
}

func (a *atomicFS) MkdirAll(name string, perm fs.FileMode) error {
	if reserved(name) {
		return denied("mkdir", name)
	}
	return a.FS.MkdirAll(name, perm)
}

// Remove removes everything the client may see under name: the file, the
// session's live uploads of it (detached, as unlink leaves an open file
// without a name) and its partial. It succeeds if any of them existed. A
// directory that seems empty but holds partials loses them first.
func (a *atomicFS) Remove(name string) error {
	if reserved(name) {
		return notFound("remove", name)
	}
	a.names.Lock()
	defer a.names.Unlock()
	err := a.FS.Remove(name)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		if a.dropPartials(name) {
			err = a.FS.Remove(name)
		}
	}
	if clientPath(name) == "/" || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
		return err
	}
	found := err == nil
	if a.detach(name) > 0 {
		found = true
	}
	if a.FS.Remove(partialOf(name)) == nil {
		found = true
	}
	if found {
		return nil
	}
	return err
}

// dropPartials removes the partials of a directory that holds nothing else
// and reports whether it did. An upload in progress there (a temporary
// file) keeps the directory, as its growing file would on a plain server.
func (a *atomicFS) dropPartials(dir string) bool {
	d, err := a.FS.Open(dir)
	if err != nil {
		return false
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false
	}
	for _, n := range names {
		if !strings.HasPrefix(n, partialPrefix) {
			return false
		}
	}
	for _, n := range names {
		if err := a.FS.Remove(path.Join(clientPath(dir), n)); err != nil {
			return false
		}
	}
	return true
}

func (a *atomicFS) RemoveAll(name string) error {
	if reserved(name) {
		return notFound("remove", name)
	}
	a.names.Lock()
	defer a.names.Unlock()
	if err := a.FS.RemoveAll(name); err != nil {
		return err
	}
	a.detach(name)
	if clientPath(name) != "/" {
		_ = a.FS.Remove(partialOf(name))
	}
	return nil
}

func (a *atomicFS) Rename(oldname, newname string) error {
	if reserved(oldname) {
		return notFound("rename", oldname)
	}
	if reserved(newname) {
		return denied("rename", newname)
	}
	a.names.Lock()
	defer a.names.Unlock()
	if err := a.FS.Rename(oldname, newname); err != nil {
		return err
	}
	if clientPath(oldname) == clientPath(newname) {
		return nil
	}
	// newname is complete now: an upload of it still open would replace
	// the file just renamed there, and a partial would describe another.
	a.detach(newname)
	if clientPath(newname) != "/" {
		_ = a.FS.Remove(partialOf(newname))
	}
	return nil
}

// attrs applies set to every form of name the client may be looking at:
// its open uploads in this session (so that OpenSSH's put -p, which sets
// mode and times before it closes, reaches the file that will be renamed),
// its partial and the final file.
func (a *atomicFS) attrs(op, name string, set func(string) error) error {
	if reserved(name) {
		return notFound(op, name)
	}
	done := false
	for _, u := range a.uploads(name) {
		if set(u.tmp) == nil {
			done = true
		}
	}
	if p, _, ok := a.partial(name); ok && set(p) == nil {
		done = true
	}
	err := set(name)
	if done && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (a *atomicFS) Chmod(name string, mode fs.FileMode) error {
	return a.attrs("chmod", name, func(p string) error { return pathErr("chmod", name, a.FS.Chmod(p, mode)) })
}

func (a *atomicFS) Chtimes(name string, atime, mtime time.Time) error {
	return a.attrs("chtimes", name, func(p string) error {
		return pathErr("chtimes", name, a.FS.Chtimes(p, atime, mtime))
	})
}

func (a *atomicFS) Chown(name string, uid, gid int) error {
	if reserved(name) {
		return notFound("chown", name)
	}
	return a.FS.Chown(name, uid, gid)
}

// Truncate resizes what Stat describes.
func (a *atomicFS) Truncate(name string, size int64) error {
	if reserved(name) {
		return notFound("truncate", name)
	}
	if ups := a.uploads(name); len(ups) > 0 {
		return ups[len(ups)-1].Truncate(size)
	}
	if p, _, ok := a.partial(name); ok {
		return pathErr("truncate", name, a.FS.Truncate(p, size))
	}
	return a.FS.Truncate(name, size)
}

// hidingFile is a file or directory opened for reading: its listings leave
// out this layer's names.
type hidingFile struct{ afero.File }

func (h hidingFile) Readdir(n int) ([]fs.FileInfo, error) {
	// Each pass consumes at least one entry, or ends: the loop is bounded
	// by the directory's size.
	for {
		fis, err := h.File.Readdir(n)
		kept := fis[:0]
		for _, fi := range fis {
			if !isHidden(fi.Name()) {
				kept = append(kept, fi)
			}
		}
		// A chunk of nothing but hidden names must not look like the end.
		if len(kept) > 0 || err != nil || n <= 0 || len(fis) == 0 {
			return kept, err
		}
	}
}

func (h hidingFile) Readdirnames(n int) ([]string, error) {
	for {
		names, err := h.File.Readdirnames(n)
		kept := names[:0]
		for _, name := range names {
			if !isHidden(name) {
				kept = append(kept, name)
			}
		}
		if len(kept) > 0 || err != nil || n <= 0 || len(names) == 0 {
			return kept, err
		}
	}
}

// atomicFile is one upload, written to its temporary file. Its name and
// errors are the client's (the embedded file rewrites them), never the
// temporary name.
type atomicFile struct {
	*file
	fs    *atomicFS
	name  string // client path
	tmp   string // client path of the temporary file
	start int
	excl  bool

	dirty  atomic.Bool // a write or truncate reached the temporary file
	closed atomic.Bool

	mu     sync.Mutex
	failed error // guarded by mu
}

var _ afero.File = (*atomicFile)(nil)

func (f *atomicFile) Stat() (fs.FileInfo, error) {
	fi, err := f.file.Stat()
	if err != nil {
		return nil, err
	}
	return namedInfo{fi, path.Base(f.name)}, nil
}

func (f *atomicFile) Write(p []byte) (int, error) {
	f.dirty.Store(true)
	n, err := f.file.Write(p)
	return n, f.fail(err)
}

func (f *atomicFile) WriteAt(p []byte, off int64) (int, error) {
	f.dirty.Store(true)
	n, err := f.file.WriteAt(p, off)
	return n, f.fail(err)
}

func (f *atomicFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *atomicFile) Truncate(size int64) error {
	f.dirty.Store(true)
	return f.fail(f.file.Truncate(size))
}

// fail remembers a write error: what the temporary file holds is not what
// the client sent, so it must not become the file.
func (f *atomicFile) fail(err error) error {
	if err != nil {
		f.TransferError(err)
	}
	return err
}

// TransferError marks the upload as incomplete: pkg/sftp and ftpserverlib
// call it before Close when the connection or the transfer broke.
func (f *atomicFile) TransferError(err error) {
	f.mu.Lock()
	if f.failed == nil {
		f.failed = err
	}
	f.mu.Unlock()
}

// Close renames the upload over its name if it is complete, and keeps it
// as the name's partial otherwise; a detached upload leaves nothing.
func (f *atomicFile) Close() error {
	if f.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	a := f.fs
	defer a.done()
	var err error
	if f.fs.fsync && (f.dirty.Load() || f.start == startedClaim) {
		// Whether it becomes the file or the partial, its bytes must be
		// on disk before its new name is.
		err = f.file.Sync()
	}
	if cerr := f.file.Close(); err == nil {
		err = cerr
	}
	f.mu.Lock()
	failed := f.failed
	f.mu.Unlock()
	a.names.Lock()
	if !a.release(f) {
		a.names.Unlock()
		// Its name went while it was open, and its bytes with it, as an
		// unlinked file's do; the detach unlinked the temporary file
		// already, unless that failed.
		_ = a.FS.Remove(f.tmp)
		if f.excl && err == nil {
			// An exclusive upload must not be told it landed when another
			// completed the name first: O_EXCL refuses at close too.
			if _, _, serr := a.FS.LstatIfPossible(f.name); serr == nil {
				err = &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrExist}
			}
		}
		return err
	}
	if failed != nil || err != nil {
		kept := f.keep()
		a.names.Unlock()
		if kept {
			_ = a.syncDir(f.name) // the upload failed already; this is best effort
		}
		return err
	}
	moved, err := f.commit()
	a.names.Unlock()
	if moved {
		serr := a.syncDir(f.name)
		if err == nil {
			err = pathErr("close", f.name, serr)
		}
	}
	return err
}

// syncDir flushes the directory holding name, so that a rename into it
// survives a power loss.
func (a *atomicFS) syncDir(name string) error {
	if !a.fsync {
		return nil
	}
	return syncDir(a.FS, name)
}

// commit renames the upload over its name, or keeps it as the partial if
// that fails, and reports whether it renamed anything (the directory then
// needs a sync). The caller holds a.names.
func (f *atomicFile) commit() (moved bool, err error) {
	a := f.fs
	if f.start == startedCopied && !f.dirty.Load() {
		// Opened for writing, nothing written: the file is already what
		// the client sees, and keeps its times.
		_ = a.FS.Remove(f.tmp)
		return false, nil
	}
	if f.excl {
		// Another session may have completed the name since the open.
		if _, _, err := a.FS.LstatIfPossible(f.name); err == nil {
			_ = a.FS.Remove(f.tmp)
			return false, &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrExist}
		}
	}
	if err := a.FS.Rename(f.tmp, f.name); err != nil {
		return f.keep(), pathErr("close", f.name, err)
	}
	// The session's other uploads of the name are older than the file now
	// under it, and so is any partial.
	a.detach(f.name)
	_ = a.FS.Remove(partialOf(f.name))
	return true, nil
}

// keep makes the temporary file the name's partial, unless it holds
// nothing the client sent, and reports whether it did. The caller holds
// a.names.
func (f *atomicFile) keep() bool {
	a := f.fs
	fi, err := a.FS.Stat(f.tmp)
	if err != nil {
		return false // gone with its directory
	}
	if fi.Size() == 0 || (f.start != startedClaim && !f.dirty.Load()) {
		_ = a.FS.Remove(f.tmp)
		return false
	}
	if err := a.FS.Rename(f.tmp, partialOf(f.name)); err != nil {
		_ = a.FS.Remove(f.tmp)
		return false
	}
	return true
}
