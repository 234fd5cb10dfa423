// Package daemontest runs a real wharf daemon in-process for tests: on a
// random 127.0.0.1 port, with its state in t.TempDir(), stopped by
// t.Cleanup.
package daemontest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
)

// Daemon is a started daemon and what a test needs to talk to it.
type Daemon struct {
	*daemon.Daemon
	Config *config.Config
	Addr   string // SFTP address, 127.0.0.1:port

	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

// Start validates cfg, fills in what a test should not have to (listen
// address, state dir, storage root, short grace) and starts the daemon.
// Users and storage backend are the caller's.
func Start(t testing.TB, cfg *config.Config) *Daemon {
	t.Helper()
	cfg.SFTP.Listen = "127.0.0.1:0"
	if cfg.StateDir == "" || cfg.StateDir == config.Default().StateDir {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Storage.Backend == "local" && (cfg.Storage.Root == "" || cfg.Storage.Root == config.Default().Storage.Root) {
		cfg.Storage.Root = t.TempDir()
	}
	if cfg.ShutdownGrace == 0 || cfg.ShutdownGrace == config.Default().ShutdownGrace {
		cfg.ShutdownGrace = 2 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("daemontest: invalid config: %v", err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatalf("daemontest: start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &Daemon{Daemon: d, Config: cfg, Addr: d.SFTPAddr().String(), logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		if err := td.Stop(); err != nil && !errors.Is(err, daemon.ErrForced) {
			t.Errorf("daemontest: run: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return td
}

// Stop shuts the daemon down (draining for the configured grace) and
// returns what Run returned. It is safe to call more than once.
func (d *Daemon) Stop() error {
	d.stop()
	err, ok := <-d.done
	if ok {
		close(d.done)
		return err
	}
	return nil
}

// Logs returns the JSON log lines written so far.
func (d *Daemon) Logs() string { return d.logs.String() }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
