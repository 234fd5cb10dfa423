package vfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// Recover turns the temporary files of uploads that a daemon which died
// left behind into their names' partials, so that the clients can resume
// them (reput, put -a, curl -C -, REST+STOR), and reports how many it
// recovered. It must run before any home opens: every temporary file it
// finds then belongs to a process that is gone. A claimed partial (a
// resume in progress) is a temporary file too, and so comes back. When
// several belong to one name, the one changed last wins and the others
// are removed, as a newer failure replaces an older partial; an empty one
// is removed, and so is one that an exclusive commit had linked to its
// name already. Partials unchanged for longer than LocalOptions.PartialTTL
// are removed: their clients gave up.
//
// The scan covers the whole storage root (every home) once: a home opened
// lazily would not do, since a home may lie inside another one ("/" holds
// all), whose sessions could already be uploading there. It goes at most
// recoverMaxDepth directories deep, reads each directory in chunks, holds
// one descriptor per level and never follows a symlink (os.Root confines
// it in any case).
func (l *Local) Recover(log *slog.Logger) (int, error) {
	r := &recovery{root: l.root, log: log.With("component", "vfs"), ttl: l.opts.PartialTTL, now: time.Now()}
	start := time.Now()
	err := r.dir(".", 0)
	if r.deep {
		r.log.Warn("recovery scan skipped directories nested too deep", "max_depth", recoverMaxDepth)
	}
	if r.found > 0 || err != nil {
		r.log.Info("recovery scan done", "recovered", r.recovered, "expired", r.expired, "hidden_files", r.found,
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
	return r.recovered, err
}

const (
	// recoverMaxDepth bounds the descriptors and the recursion of the scan.
	recoverMaxDepth = 64
	// recoverChunk is the buffer for one getdents(2) per directory level.
	recoverChunk = 8 << 10
)

type recovery struct {
	root      *os.Root
	log       *slog.Logger
	ttl       time.Duration // partials unchanged for longer expire; 0: never
	now       time.Time     // when the scan began
	recovered int           // temporary files made partials
	expired   int           // partials removed for their age
	found     int           // hidden files looked at
	deep      bool          // a directory was deeper than recoverMaxDepth
}

// dir scans the directory name (relative to the storage root) and the
// directories beneath it.
func (r *recovery) dir(name string, depth int) error {
	d, err := r.root.Open(name)
	if err != nil {
		return fmt.Errorf("recovery scan: open %s: %w", name, err)
	}
	defer d.Close()
	changed := false
	// won is when the content of each partial made in this directory by
	// this scan last changed: the rename moved its ctime to now.
	won := map[string]time.Time{}
	err = readDirTypes(d, func(base string, typ fs.FileMode) {
		p := path.Join(name, base)
		if typ == fs.ModeIrregular { // the file system did not say
			fi, err := r.root.Lstat(p)
			if err != nil {
				return
			}
			typ = fi.Mode().Type()
		}
		switch {
		case typ == fs.ModeDir && depth >= recoverMaxDepth:
			r.deep = true
		case typ == fs.ModeDir:
			// One unreadable directory must not stop the rest.
			if err := r.dir(p, depth+1); err != nil {
				r.log.Warn("recovery scan", "err", err)
			}
		case typ == 0: // a regular file
			if partial, ok := partialForHidden(base); ok {
				r.found++
				changed = r.file(p, path.Join(name, partial), won) || changed
			} else if strings.HasPrefix(base, partialPrefix) {
				r.found++
				changed = r.expire(p) || changed
			}
		}
	})
	if err != nil {
		return fmt.Errorf("recovery scan: read %s: %w", name, err)
	}
	if changed {
		// The renames must outlive a second crash.
		if err := d.Sync(); err != nil {
			r.log.Warn("recovery scan: sync directory", "dir", "/"+name, "err", err)
		}
	}
	return nil
}

// file makes src the partial dst unless dst is newer, and reports whether
// it changed the directory.
func (r *recovery) file(src, dst string, won map[string]time.Time) bool {
	fi, err := r.root.Lstat(src)
	if err != nil {
		return false
	}
	if fi.Size() == 0 {
		// Nothing the client sent: an upload that had only begun.
		return r.remove(src, "empty")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && strings.HasPrefix(path.Base(src), uploadPrefix) {
		// A temporary file has one name, but for the moment between an
		// exclusive commit's link(2) to the client's name and its unlink:
		// the upload is complete under that name already.
		return r.remove(src, "committed")
	}
	at := changedAt(fi)
	if pfi, err := r.root.Lstat(dst); err == nil && pfi.Mode().IsRegular() {
		theirs, ok := won[dst]
		if !ok {
			theirs = changedAt(pfi)
		}
		if theirs.After(at) {
			return r.remove(src, "older than the partial")
		}
	}
	if err := r.root.Rename(src, dst); err != nil {
		r.log.Warn("recovery scan: could not keep an upload as a partial", "file", "/"+src, "err", err)
		return false
	}
	if _, again := won[dst]; !again { // a name counts once
		r.recovered++
	}
	won[dst] = at
	r.log.Info("recovered upload", "path", "/"+path.Join(path.Dir(dst), nameOfPartial(path.Base(dst))),
		"partial", "/"+dst, "bytes", fi.Size())
	return true
}

// expire removes the partial p if it has not changed for longer than the
// TTL, and reports whether it did. A partial this scan just made from a
// temporary file changed now, by its rename.
func (r *recovery) expire(p string) bool {
	if r.ttl <= 0 {
		return false
	}
	fi, err := r.root.Lstat(p)
	if err != nil || r.now.Sub(changedAt(fi)) <= r.ttl {
		return false
	}
	if !r.remove(p, "expired") {
		return false
	}
	r.expired++
	return true
}

func (r *recovery) remove(src, why string) bool {
	if err := r.root.Remove(src); err != nil {
		r.log.Warn("recovery scan: could not remove", "file", "/"+src, "err", err)
		return false
	}
	r.log.Info("recovery scan removed an unfinished upload", "file", "/"+src, "reason", why)
	return true
}

// nameOfPartial is the file name a partial stands for, or its key (a
// hash) for a name too long to carry.
func nameOfPartial(base string) string { return base[len(partialPrefix):] }

// changedAt is when a file last changed: its ctime, which a write, a
// rename and a client's setstat of the times all move forward, whereas
// mtime can be set back (OpenSSH put -p).
func changedAt(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}

// readDirTypes calls fn with the name and type (fs.ModeDir, 0 for a
// regular file, fs.ModeIrregular when the file system does not tell) of
// each entry of d, reading recoverChunk bytes of entries at a time. It
// reads the types getdents(2) returns: os.File.ReadDir on a directory
// opened in an os.Root lstats every entry instead, which made a scan of a
// million files three times slower.
func readDirTypes(d *os.File, fn func(name string, typ fs.FileMode)) error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, recoverChunk)
	for {
		var n int
		var errno error
		if err := rc.Read(func(fd uintptr) bool {
			n, errno = syscall.Getdents(int(fd), buf)
			return true
		}); err != nil {
			return err
		}
		if errno != nil {
			return errno
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type,
		// then the NUL-terminated name.
		for off := 0; off+19 <= n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				return syscall.EIO // not what the kernel writes
			}
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			typ := buf[off+18]
			off += reclen
			if string(name) == "." || string(name) == ".." {
				continue
			}
			switch typ {
			case syscall.DT_DIR:
				fn(string(name), fs.ModeDir)
			case syscall.DT_REG:
				fn(string(name), 0)
			case syscall.DT_UNKNOWN:
				fn(string(name), fs.ModeIrregular)
			}
		}
	}
}
