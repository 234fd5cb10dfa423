package daemon

import (
	"fmt"
	"log/slog"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// openStorage opens the backend storage names. Before any session opens,
// a local backend with atomic uploads turns the temporary files a dead
// daemon left into partials; recovered says how many.
func openStorage(cfg *config.Config, log *slog.Logger) (b vfs.Backend, recovered int, err error) {
	switch cfg.Storage.Backend {
	case "local", "":
		l, err := vfs.NewLocal(cfg.Storage.Root, vfs.LocalOptions{Atomic: cfg.Uploads.Atomic, Fsync: cfg.Uploads.Fsync})
		if err != nil {
			return nil, 0, err
		}
		if cfg.Uploads.Atomic {
			// No session is open yet: every temporary upload file is a
			// dead daemon's.
			if recovered, err = l.Recover(log); err != nil {
				log.Warn("recovering unfinished uploads", "err", err)
			}
		}
		return l, recovered, nil
	case "memory":
		return vfs.NewMemory(), 0, nil
	default:
		return nil, 0, fmt.Errorf("unknown storage backend %q", cfg.Storage.Backend)
	}
}
