package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// storageProbeSize is what the storage check writes and reads back.
const storageProbeSize = 4 << 10

// checkStorage: the storage takes a write, gives it back and lets it be
// removed, as the doctor's user (which should be the daemon's). The
// backend stays open for the scratch home's removal.
func (r *runner) checkStorage(ctx context.Context) {
	start := time.Now()
	s := r.cfg.Storage
	res := Result{Check: CheckStorage, Target: s.Backend}
	switch s.Backend {
	case "memory":
		res.Status = Warn
		res.Message = "memory: every file lives in the daemon's memory and is lost when it stops"
		res.Fix = "set storage.backend to local (with storage.root) or s3 before partners send files"
		r.add(start, res)
		return
	case "local", "":
		res.Target = s.Root
		fi, err := os.Stat(s.Root)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Status, res.Message = Fail, "storage.root does not exist"
			res.Fix = "create it (mkdir -p " + s.Root + ") and give it to the user wharf runs as, or fix storage.root"
		case err != nil:
			res.Status, res.Message = Fail, err.Error()
			res.Fix = "give the user wharf runs as access to " + s.Root
		case !fi.IsDir():
			res.Status, res.Message = Fail, "storage.root is not a folder"
			res.Fix = "point storage.root at the folder that holds the homes"
		}
		if res.Status != "" {
			r.add(start, res)
			return
		}
		r.backend, _ = vfs.NewLocal(s.Root, vfs.LocalOptions{Atomic: r.cfg.Uploads.Atomic, Fsync: r.cfg.Uploads.Fsync,
			PartialTTL: r.cfg.Uploads.PartialTTL})
	case "s3":
		res.Target = "s3://" + s.S3.Bucket + "/" + s.S3.Prefix
		spool, err := os.MkdirTemp("", "wharf-doctor-spool-")
		if err == nil {
			defer os.RemoveAll(spool)
			r.backend, err = s3store.NewBackend(ctx, s3store.FromConfig(s.S3), s3store.Options{SpoolDir: spool,
				Log: slog.New(slog.DiscardHandler), RequestTimeout: r.o.Timeout, TransferTimeout: 2 * r.o.Timeout})
		}
		if err != nil {
			res.Status, res.Message = Fail, err.Error()
			res.Fix = "check storage.s3 (endpoint, region, bucket, credentials)"
			r.add(start, res)
			return
		}
	}
	if r.backend == nil {
		res.Status, res.Message = Fail, "cannot open the storage"
		res.Fix = "check the storage section of the config"
		r.add(start, res)
		return
	}
	if err := probe(r.backend); err != nil {
		res.Status, res.Message = Fail, err.Error()
		res.Fix = storageFix(err, s.Backend, s.Root)
	} else {
		res.Status = OK
		res.Message = fmt.Sprintf("took a %d KiB write, read it back and removed it", storageProbeSize>>10)
		if free, ok := freeSpace(s.Backend, s.Root); ok {
			res.Message += fmt.Sprintf("; %s free", config.FormatByteSize(int64(min(free, math.MaxInt64))))
		}
		if os.Geteuid() == 0 && (s.Backend == "local" || s.Backend == "") {
			// Root writes where the daemon's user may not: the round trips
			// write as that user.
			res.Message += " (as root: the round trips below write as the daemon's user)"
		}
	}
	r.add(start, res)
}

// probe writes a file at the storage's root, reads it back and removes
// it, as /readyz does with a write.
func probe(b vfs.Backend) error {
	root, err := b.Home("/")
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer root.Close()
	var id [8]byte
	_, _ = rand.Read(id[:])
	name := "/.wharf-doctor-probe-" + hex.EncodeToString(id[:])
	data := make([]byte, storageProbeSize)
	_, _ = rand.Read(data)
	u, err := root.Create(name, vfs.CreateOptions{Exclusive: true})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := u.WriteAt(data, 0); err != nil {
		_ = u.Abort(vfs.ErrDetached)
		return fmt.Errorf("write: %w", err)
	}
	if err := u.Commit(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	f, err := root.Open(name, 0)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(io.LimitReader(f, storageProbeSize+1))
		f.Close()
	}
	rmErr := root.Remove(name)
	switch {
	case err != nil:
		return fmt.Errorf("read back: %w", err)
	case !bytes.Equal(got, data):
		return errors.New("read back other bytes than were written")
	case rmErr != nil:
		return fmt.Errorf("remove: %w", rmErr)
	}
	return nil
}

// storageFix says what to do about a failed probe, by its cause.
func storageFix(err error, backend, root string) string {
	switch {
	case backend == "s3":
		return "check storage.s3 (endpoint, bucket, prefix, credentials) and that the credentials may put, get and delete objects there"
	case errors.Is(err, syscall.EROFS):
		return "remount the file system under " + root + " read-write (mount -o remount,rw), or move storage.root to a writable one"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "free space on the file system under " + root + " or grow it"
	case errors.Is(err, fs.ErrPermission):
		return "give the user wharf runs as write access to " + root + " (chown -R USER " + root + ")"
	}
	return "look at the error above; the daemon's uploads fail the same way"
}

// freeSpace is what the local storage's file system has left.
func freeSpace(backend, root string) (uint64, bool) {
	if backend != "local" && backend != "" {
		return 0, false
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

// checkClock: the kernel's clock is synchronized. Expiry of keys,
// passwords and certificates, and S3's request signatures, depend on it.
func (r *runner) checkClock() {
	start := time.Now()
	res := Result{Check: CheckClock}
	now := r.o.Now()
	synced, esterr, err := clockSync()
	switch {
	case now.Year() < 2025:
		res.Status, res.Message = Fail, "the clock says "+now.UTC().Format(time.RFC3339)
		res.Fix = "set the clock and enable time synchronization (systemd-timesyncd, chrony or ntpd)"
	case err != nil:
		res.Status, res.Message = Skip, "cannot read the clock's synchronization: "+err.Error()
	case !synced:
		res.Status = Warn
		res.Message = "the system clock is not synchronized (" + now.UTC().Format(time.RFC3339) + "); key, password and certificate expiry depend on it"
		res.Fix = "enable time synchronization (systemd-timesyncd, chrony or ntpd)"
	default:
		res.Status = OK
		res.Message = fmt.Sprintf("synchronized, estimated error %s", (time.Duration(esterr) * time.Microsecond).String())
	}
	r.add(start, res)
}
