package vfs

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/afero"
)

// Restrict enforces a user's permissions on every operation, and the name
// rule (BadName) on every name created. perms is called per operation, so
// a permission change applies to the next request of a running session.
// Each refusal is logged once, here.
func Restrict(inner FS, perms func() Perms, log *slog.Logger) FS {
	return &restricted{FS: inner, perms: perms, log: log}
}

type restricted struct {
	FS
	perms func() Perms
	log   *slog.Logger
}

// deny logs a refusal and returns the error the front ends map to
// "permission denied".
func (r *restricted) deny(op, name string) error {
	r.log.Warn("denied", "op", op, "path", ShowPath(clientPath(name)))
	return denied(op, name)
}

// checkNew applies the name rule to a name about to be created (all: every
// element of the path, for MkdirAll) and logs a refusal.
func (r *restricted) checkNew(op, name string, all bool) error {
	err := checkNew(op, name, all)
	if err != nil {
		r.log.Warn("refused", "op", op, "path", ShowPath(clientPath(name)), "err", ErrBadName)
	}
	return err
}

const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREATE | os.O_TRUNC

func (r *restricted) Open(name string) (afero.File, error) {
	return r.OpenFile(name, os.O_RDONLY, 0)
}

func (r *restricted) Create(name string) (afero.File, error) {
	return r.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
}

func (r *restricted) OpenFile(name string, flag int, perm fs.FileMode) (afero.File, error) {
	p := r.perms()
	if flag&writeFlags == 0 {
		if fi, err := r.FS.Stat(name); err == nil && fi.IsDir() {
			if !p.Has(PermList) {
				return nil, r.deny("list", name)
			}
		} else if !p.Has(PermDownload) {
			return nil, r.deny("download", name)
		}
		return r.FS.OpenFile(name, flag, perm)
	}
	if flag&os.O_RDWR != 0 && !p.Has(PermDownload) {
		return nil, r.deny("download", name)
	}
	if flag&os.O_CREATE != 0 {
		// Judged by the name alone, without a racy Stat: overwriting an
		// existing bad name through O_CREATE is refused too (rename it).
		if err := r.checkNew("open", name, false); err != nil {
			return nil, err
		}
	}
	canCreate, canOverwrite := p.Has(PermUpload), p.Has(PermOverwrite)
	switch {
	case canCreate && canOverwrite:
	case canCreate:
		if flag&os.O_CREATE == 0 {
			return nil, r.deny("overwrite", name)
		}
		// The kernel, not a racy Stat, guarantees no existing file is hit.
		f, err := r.FS.OpenFile(name, flag|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			return nil, r.deny("overwrite", name)
		}
		return f, err
	case canOverwrite:
		if _, err := r.FS.Stat(name); errors.Is(err, fs.ErrNotExist) {
			return nil, r.deny("upload", name)
		}
		flag &^= os.O_CREATE
	default:
		return nil, r.deny("upload", name)
	}
	return r.FS.OpenFile(name, flag, perm)
}

func (r *restricted) Mkdir(name string, perm fs.FileMode) error {
	if !r.perms().Has(PermMkdir) {
		return r.deny("mkdir", name)
	}
	if err := r.checkNew("mkdir", name, false); err != nil {
		return err
	}
	return r.FS.Mkdir(name, perm)
}

func (r *restricted) MkdirAll(name string, perm fs.FileMode) error {
	if !r.perms().Has(PermMkdir) {
		return r.deny("mkdir", name)
	}
	if err := r.checkNew("mkdir", name, true); err != nil {
		return err
	}
	return r.FS.MkdirAll(name, perm)
}

func (r *restricted) Remove(name string) error {
	if !r.perms().Has(PermDelete) {
		return r.deny("remove", name)
	}
	return r.FS.Remove(name)
}

func (r *restricted) RemoveAll(name string) error {
	if !r.perms().Has(PermDelete) {
		return r.deny("remove", name)
	}
	return r.FS.RemoveAll(name)
}

// Rename needs rename, and overwrite as well when it would replace a file.
func (r *restricted) Rename(oldname, newname string) error {
	p := r.perms()
	if !p.Has(PermRename) {
		return r.deny("rename", oldname)
	}
	if err := r.checkNew("rename", newname, false); err != nil {
		return err
	}
	if _, err := r.FS.Stat(newname); err == nil && !p.Has(PermOverwrite) {
		return r.deny("overwrite", newname)
	}
	return r.FS.Rename(oldname, newname)
}

// Setting a mode or times changes no content: upload or overwrite suffices,
// so that `put -p` works for a user who may only add files.
func (r *restricted) Chmod(name string, mode fs.FileMode) error {
	if p := r.perms(); !p.Has(PermUpload) && !p.Has(PermOverwrite) {
		return r.deny("setstat", name)
	}
	return r.FS.Chmod(name, mode)
}

func (r *restricted) Chtimes(name string, atime, mtime time.Time) error {
	if p := r.perms(); !p.Has(PermUpload) && !p.Has(PermOverwrite) {
		return r.deny("setstat", name)
	}
	return r.FS.Chtimes(name, atime, mtime)
}

// Truncate changes content: it needs overwrite.
func (r *restricted) Truncate(name string, size int64) error {
	if !r.perms().Has(PermOverwrite) {
		return r.deny("overwrite", name)
	}
	return r.FS.Truncate(name, size)
}
