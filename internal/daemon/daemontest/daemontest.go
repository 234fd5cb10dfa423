// Package daemontest runs a real wharf daemon in-process for tests: on a
// random 127.0.0.1 port, with its state in t.TempDir(), stopped by
// t.Cleanup.
package daemontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// Daemon is a started daemon and what a test needs to talk to it.
type Daemon struct {
	*daemon.Daemon
	Config *config.Config
	Addr   string // SFTP address, 127.0.0.1:port

	logs *syncbuf.Buffer
	stop context.CancelFunc
	done chan error
}

// Start validates cfg, fills in what a test should not have to (listen
// address, state dir, storage root, short grace) and starts the daemon.
// Users and storage backend are the caller's.
func Start(t testing.TB, cfg *config.Config) *Daemon {
	t.Helper()
	fillIn(t, cfg)
	return run(t, cfg)
}

// StartMany is Start for several daemons built at once, each in its own
// goroutine, as a fleet's daemons start when deployed together: what they
// do at start-up races (a fleet's identity is created by whichever is
// first).
func StartMany(t testing.TB, cfgs ...*config.Config) []*Daemon {
	t.Helper()
	for _, cfg := range cfgs {
		fillIn(t, cfg)
	}
	built := make([]*daemon.Daemon, len(cfgs))
	logs := make([]*syncbuf.Buffer, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { built[i], logs[i], errs[i] = build(cfg) })
	}
	wg.Wait()
	out := make([]*Daemon, len(cfgs))
	for i, cfg := range cfgs {
		if errs[i] == nil {
			out[i] = serve(t, built[i], cfg, logs[i])
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("daemontest: start daemon %d: %v\n%s", i, err, logs[i].String())
		}
	}
	return out
}

// fillIn is Start's part before the daemon is built.
func fillIn(t testing.TB, cfg *config.Config) {
	t.Helper()
	// Tests listen on loopback only, on ports the kernel picks.
	cfg.SFTP.Listen = "127.0.0.1:0"
	for _, addr := range []*string{&cfg.SFTP.Legacy.Listen, &cfg.FTPS.Listen, &cfg.FTPS.ImplicitListen, &cfg.Admin.Listen} {
		if *addr != "" {
			*addr = "127.0.0.1:0"
		}
	}
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
}

// StartFile loads the config file at path, as `wharf serve` does, and
// starts the daemon on it, so that a test can edit the file and watch the
// daemon reload it. Nothing is filled in: the file itself must listen on
// 127.0.0.1 (port 0) and keep state_dir and storage.root under
// t.TempDir(). Anything else would be rewritten back on every reload, and
// reported as a setting that needs a restart.
func StartFile(t testing.TB, path string) *Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("daemontest: load config: %v", err)
	}
	if host, _, err := net.SplitHostPort(cfg.SFTP.Listen); err != nil || host != "127.0.0.1" {
		t.Fatalf("daemontest: %s: sftp.listen is %q, want 127.0.0.1:PORT", path, cfg.SFTP.Listen)
	}
	return run(t, cfg)
}

func run(t testing.TB, cfg *config.Config) *Daemon {
	t.Helper()
	d, logs, err := build(cfg)
	if err != nil {
		t.Fatalf("daemontest: start: %v", err)
	}
	return serve(t, d, cfg, logs)
}

// build makes the daemon of cfg, logging JSON at debug level to logs.
func build(cfg *config.Config) (*daemon.Daemon, *syncbuf.Buffer, error) {
	// Every test client comes from loopback: unless a test configures the
	// defender itself, its failed logins must not ban the next test step.
	if reflect.DeepEqual(cfg.Defender, config.DefaultDefender()) {
		cfg.Defender.Allow = []string{"127.0.0.0/8", "::1/128"}
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.New(cfg, log)
	return d, logs, err
}

// serve runs d until the test ends.
func serve(t testing.TB, d *daemon.Daemon, cfg *config.Config, logs *syncbuf.Buffer) *Daemon {
	t.Helper()
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

// LogLines returns the log lines written so far, decoded; lines that are
// not JSON objects are skipped.
func (d *Daemon) LogLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(d.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// WaitLog waits up to timeout for a log line, after the first skip lines,
// for which match returns true, and returns it and its index; it fails the
// test when none comes. Pass len(d.LogLines()) taken before an action as
// skip to wait for a line that action caused.
func (d *Daemon) WaitLog(t testing.TB, skip int, timeout time.Duration, match func(map[string]any) bool) (map[string]any, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := d.LogLines()
		for i := skip; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemontest: no matching log line within %v", timeout)
			return nil, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Msg matches log lines with this msg and these attributes (key, value
// pairs, compared as fmt.Sprint does).
func Msg(msg string, kv ...any) func(map[string]any) bool {
	return func(l map[string]any) bool {
		if l["msg"] != msg {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			if v, ok := l[k]; !ok || fmt.Sprint(v) != fmt.Sprint(kv[i+1]) {
				return false
			}
		}
		return true
	}
}

// CheckConfined fails when anything in the storage root lies outside the
// given homes (top-level names), when a name carries a NUL byte, or when
// a file named "climbed*" appeared beside the root: what escape attempts
// in tests try to write.
func CheckConfined(t testing.TB, root string, homes ...string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if rel != "." && !slices.Contains(homes, top) {
			t.Errorf("%s lies outside every home", rel)
		}
		if strings.ContainsRune(rel, 0) {
			t.Errorf("%q has a NUL byte", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk storage: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "climbed") {
			t.Errorf("%s was written beside the storage root", e.Name())
		}
	}
}

// CheckGoroutines waits up to 5s for the goroutine count to come back to
// before (counted before the daemon started), and dumps every stack if it
// does not. One goroutine of slack covers a runtime or testing helper
// started on first use.
func CheckGoroutines(t testing.TB, before int) {
	t.Helper()
	const tolerance = 1
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := runtime.NumGoroutine()
		if now <= before+tolerance {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines before the daemon started, %d after it stopped:\n%s", before, now, buf)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
