package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/wharf-sftp/wharf/internal/admin"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// sweepTimeout bounds the start-up sweep of a bucket's multipart uploads:
// a slow store delays start-up by at most this, and the next start sweeps
// again.
const sweepTimeout = 2 * time.Minute

// openStorage opens the backend storage names. Before any session opens,
// a local backend with atomic uploads turns the temporary files a dead
// daemon left into partials, and an s3 backend does the same with the
// multipart uploads a dead daemon left (s3store.Backend.Recover), and
// aborts those no partial needs any more (expired after
// uploads.partial_ttl, or orphaned); then, while the daemon runs, it takes
// over the uploads of other daemons that die (StartTakeover), counted in
// the same metrics.
func openStorage(cfg *config.Config, log *slog.Logger, m *admin.Metrics) (vfs.Backend, error) {
	switch cfg.Storage.Backend {
	case "local", "":
		l, err := vfs.NewLocal(cfg.Storage.Root, vfs.LocalOptions{Atomic: cfg.Uploads.Atomic, Fsync: cfg.Uploads.Fsync, PartialTTL: cfg.Uploads.PartialTTL})
		if err != nil {
			return nil, err
		}
		if cfg.Uploads.Atomic {
			// No session is open yet: every temporary upload file is a
			// dead daemon's.
			n, err := l.Recover(log)
			if err != nil {
				log.Warn("recovering unfinished uploads", "err", err)
			}
			m.RecoveredUploads(n)
		}
		return l, nil
	case "memory":
		return vfs.NewMemory(), nil
	case "s3":
		return openS3(cfg, log, m)
	default:
		return nil, fmt.Errorf("unknown storage backend %q", cfg.Storage.Backend)
	}
}

func openS3(cfg *config.Config, log *slog.Logger, m *admin.Metrics) (vfs.Backend, error) {
	c := cfg.Storage.S3
	spool := filepath.Join(cfg.StateDir, "s3-spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("s3 spool: %w", err)
	}
	log = log.With("component", "s3")
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	b, err := s3store.NewBackend(ctx, s3store.FromConfig(c), s3store.Options{SpoolDir: spool, PartialTTL: cfg.Uploads.PartialTTL, Log: log,
		CountRequest: m.S3Request,
		Recovered: func(recovered, aborted int) {
			m.RecoveredUploads(recovered)
			m.SweptUploads(aborted)
		}})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	recovered, aborted, err := b.Recover(ctx)
	if err != nil {
		// Serving goes on: what was not recovered or swept now is at the
		// next start.
		log.Warn("recovering and sweeping multipart uploads", "recovered", recovered, "aborted", aborted, "err", err)
	} else {
		log.Info("multipart uploads recovered and swept", "recovered", recovered, "aborted", aborted,
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
	m.RecoveredUploads(recovered)
	m.SweptUploads(aborted)
	// After Recover, which alone takes this daemon's own earlier uploads
	// for dead; Close (at shutdown) stops it.
	b.StartTakeover()
	return b, nil
}
