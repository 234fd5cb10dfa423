package configedit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wharf-sftp/wharf/internal/config"
)

// A config file is never half-written: the new contents go to a temporary
// file in the same folder (hidden, so users_dir ignores it), are synced, get
// the original's mode and owner, and are renamed over the original; the
// folder is synced last, so the rename survives a crash too.

// replaceFile atomically replaces the file at path (the file a symbolic link
// names, so the link stays) with data, keeping its mode and owner. expect is
// what the file held when it was read: if it changed since, nothing is
// written.
func replaceFile(path string, data, expect []byte) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	uid, gid := owner(fi)
	tmp, err := writeTemp(real, data, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky), uid, gid)
	if err != nil {
		return err
	}
	if err := unchanged(real, expect); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, real); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return syncDir(filepath.Dir(real))
}

// createFile atomically creates path with data, mode and owner; it fails if
// path exists, whoever created it in the meantime.
func createFile(path string, data []byte, mode fs.FileMode, uid, gid int) error {
	tmp, err := writeTemp(path, data, mode, uid, gid)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link, unlike rename, refuses to replace an existing file.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists", path)
		}
		// Some filesystems have no hard links: check, then rename.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("%s already exists", path)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	return syncDir(filepath.Dir(path))
}

// removeFile removes path (a symbolic link itself, not what it names) if it
// still holds expect.
func removeFile(path string, expect []byte) error {
	if err := unchanged(path, expect); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// unchanged guards against an editor or another tool that does not take
// the lock writing the file between the read and the rename.
func unchanged(path string, expect []byte) error {
	cur, err := config.ReadFile(path)
	if err != nil {
		return fmt.Errorf("re-read %s: %w", path, err)
	}
	if !bytes.Equal(cur, expect) {
		return &fileChangedError{path: path}
	}
	return nil
}

// fileChangedError is ErrChanged for a local file.
type fileChangedError struct{ path string }

func (e *fileChangedError) Error() string {
	return e.path + " changed while it was being edited; nothing written, run the command again"
}

func (e *fileChangedError) Unwrap() error { return ErrChanged }

// writeTemp writes data to a new hidden file beside path, synced, with mode
// and, when uid or gid differ from the process's, that owner. It returns the
// temporary file's path; on error nothing is left behind.
func writeTemp(path string, data []byte, mode fs.FileMode, uid, gid int) (tmp string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if fi, err := f.Stat(); err == nil {
		if u, g := owner(fi); uid >= 0 && gid >= 0 && (u != uid || g != gid) {
			// Run as root on a root:wharf file, the new file would
			// otherwise be root's alone and the daemon could not read it.
			// Not root, the group (what gives the daemon its access) is
			// what can and must be kept; the owner becomes the editor.
			if err := f.Chown(uid, gid); err != nil {
				if gerr := f.Chown(-1, gid); gerr != nil {
					return "", fmt.Errorf("keep the group (gid %d) of %s: %w", gid, path, gerr)
				}
			}
		}
	}
	// After chown, which may clear set-id bits; explicit, so umask plays no part.
	if err := f.Chmod(mode); err != nil {
		return "", fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("written, but could not sync the folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("written, but could not sync the folder %s: %w", dir, err)
	}
	return nil
}
