package events

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultAuditMaxSize is the size at which the audit log rotates when
// audit_log.max_size is 0.
const DefaultAuditMaxSize = 100 << 20

// backupTimeFormat names rotated files. Fixed width and UTC, so that the
// names sort in the order they were made.
const backupTimeFormat = "2006-01-02T15-04-05.000000000"

// rotatingFile is an append-only file that is renamed aside when the next
// line would take it past maxSize, keeping maxBackups old files (0: all).
// A rotated file is named like lumberjack's: "audit.jsonl" becomes
// "audit-2026-11-22T10-11-12.000000000.jsonl", in UTC.
//
// We do not use lumberjack itself: it sizes in whole megabytes (so
// "max_size: 500KiB" would silently become its 100 MB default) and it
// starts a goroutine that Close never stops.
type rotatingFile struct {
	path       string
	maxSize    int64
	maxBackups int
	now        func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openRotating(name string, maxSize int64, maxBackups int, now func() time.Time) (*rotatingFile, error) {
	if maxSize <= 0 {
		maxSize = DefaultAuditMaxSize
	}
	r := &rotatingFile{path: name, maxSize: maxSize, maxBackups: maxBackups, now: now}
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// open opens (or creates) the active file and learns its size, so that a
// restart keeps appending to the same file up to the limit.
func (r *rotatingFile) open() error {
	// 0640: the audit log names partners and their files; a log shipper
	// in the file's group may read it, nobody else.
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, which must be whole lines: a line is never split
// across two files.
func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, fs.ErrClosed
	}
	var rotErr error
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		rotErr = r.rotate()
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		return n, errors.Join(rotErr, fmt.Errorf("audit log: %w", err))
	}
	return n, rotErr
}

func (r *rotatingFile) rotate() error {
	dir, base := filepath.Split(r.path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if dir == "" {
		dir = "."
	}
	old, err := listBackups(dir, stem, ext)
	if err != nil {
		return err
	}
	t := r.now().UTC()
	// Names must sort in the order the files were made, or pruning would
	// delete the newest: two rotations within one clock tick, or a clock
	// set back, step past the newest existing backup instead.
	if len(old) > 0 && !t.After(old[len(old)-1].t) {
		t = old[len(old)-1].t.Add(time.Nanosecond)
	}
	backup := filepath.Join(dir, stem+"-"+t.Format(backupTimeFormat)+ext)
	if err := os.Rename(r.path, backup); err != nil {
		// Keep appending to the current file: a line too many beats a
		// line lost. The next write tries again.
		return fmt.Errorf("audit log: rotate: %w", err)
	}
	// The renamed file is still open: close it only once its successor
	// exists, so that a failure leaves a file to write to.
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("audit log: rotate: %w", err)
	}
	prev := r.f
	if err := r.open(); err != nil {
		return err
	}
	if err := prev.Close(); err != nil {
		return fmt.Errorf("audit log: rotate: %w", err)
	}
	return r.prune(dir, stem, ext)
}

type backupFile struct {
	name string
	t    time.Time
}

// listBackups returns the rotated files of the log stem+ext in dir,
// oldest first.
func listBackups(dir, stem, ext string) ([]backupFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var out []backupFile
	for _, e := range entries {
		mid, ok := strings.CutPrefix(e.Name(), stem+"-")
		if !ok {
			continue
		}
		mid, ok = strings.CutSuffix(mid, ext)
		if !ok {
			continue
		}
		t, err := time.Parse(backupTimeFormat, mid)
		if err != nil {
			continue // not ours
		}
		out = append(out, backupFile{name: e.Name(), t: t})
	}
	slices.SortFunc(out, func(a, b backupFile) int { return a.t.Compare(b.t) })
	return out, nil
}

// prune removes the oldest backups beyond maxBackups.
func (r *rotatingFile) prune(dir, stem, ext string) error {
	if r.maxBackups <= 0 {
		return nil
	}
	backups, err := listBackups(dir, stem, ext)
	if err != nil || len(backups) <= r.maxBackups {
		return err
	}
	var errs []error
	for _, b := range backups[:len(backups)-r.maxBackups] {
		if err := os.Remove(filepath.Join(dir, b.name)); err != nil {
			errs = append(errs, fmt.Errorf("audit log: prune: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close syncs and closes the active file.
func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Sync()
	err = errors.Join(err, r.f.Close())
	r.f = nil
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// lockedWriter serialises lines to a writer it does not own (stdout).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error { return nil }
