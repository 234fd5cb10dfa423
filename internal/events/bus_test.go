package events

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

func TestQueueLimitDropsNewEvents(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	log, logs := testLogger()
	b, err := Open(Options{
		StateDir:   t.TempDir(),
		Log:        log,
		QueueLimit: 3,
		Hooks: []config.Hook{
			{Name: "small", Webhook: &config.Webhook{URL: srv.URL}},
			{Name: "other", Events: []string{Delete}, Webhook: &config.Webhook{URL: srv.URL}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := emitN(b, 5) // not running: everything waits
	if s := hookStats(b, "small"); s.Queued != 3 || s.Dropped != 2 {
		t.Errorf("small %+v, want 3 queued and 2 dropped", s)
	}
	if s := hookStats(b, "other"); s.Queued != 0 || s.Dropped != 0 {
		t.Errorf("other %+v: its filter takes none of these", s)
	}
	full := logs.Lines(`"level":"ERROR"`, `"msg":"hook queue full: event dropped for this hook"`, `"hook":"small"`)
	if len(full) != 2 || !strings.Contains(full[0], ids[3]) || !strings.Contains(full[1], ids[4]) {
		t.Errorf("want one error line per dropped event (%s, %s):\n%s", ids[3], ids[4], logs)
	}
	runBus(t, b)
	waitFor(t, 10*time.Second, "deliveries", func() bool { return hookStats(b, "small").Delivered == 3 })
	if got := rc.ids(); !slices.Equal(got, ids[:3]) {
		t.Errorf("delivered %v, want the oldest three %v", got, ids[:3])
	}
	// Room again once delivered.
	more := emitN(b, 1)
	waitFor(t, 10*time.Second, "a delivery after draining", func() bool { return hookStats(b, "small").Delivered == 4 })
	if got := rc.ids(); got[3] != more[0] {
		t.Errorf("delivered %v, want %s last", got, more[0])
	}
}

func TestQueueLimitConcurrentEmit(t *testing.T) {
	b, err := Open(Options{
		StateDir:   t.TempDir(),
		QueueLimit: 20,
		Hooks:      []config.Hook{{Name: "h", Webhook: &config.Webhook{URL: "http://127.0.0.1:1/"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { emitN(b, 10) })
	}
	wg.Wait()
	if s := hookStats(b, "h"); s.Queued != 20 || s.Dropped != 60 {
		t.Errorf("%+v, want exactly the limit queued (20) and the rest (60) dropped", s)
	}
	counts, err := b.q.(*local).counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts["h"] != 20 {
		t.Errorf("%d entries on disk, want 20", counts["h"])
	}
}

// TestPendingSurviveClose: what was queued when a bus closed, during an
// outage or before it ever ran, is delivered by the next bus on the same
// state dir, in order.
func TestPendingSurviveClose(t *testing.T) {
	tests := []struct {
		name string
		run  bool // run (against a dead endpoint) before closing
	}{
		{"never ran", false},
		{"closed during an outage", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{t: t}
			rc.down.Store(true)
			srv := httptest.NewServer(rc)
			defer srv.Close()
			dir := t.TempDir()
			opts := Options{
				StateDir:    dir,
				Hooks:       []config.Hook{{Name: "erp", Webhook: &config.Webhook{URL: srv.URL}}},
				BackoffBase: 5 * time.Millisecond,
				BackoffMax:  20 * time.Millisecond,
			}
			b, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			if tt.run {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- b.Run(ctx) }()
				ids = emitN(b, 7)
				waitFor(t, 10*time.Second, "failures", func() bool { return hookStats(b, "erp").Failed >= 2 })
				if err := b.Close(); err != nil { // stops Run's workers itself
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatalf("Run after Close: %v", err)
				}
				cancel()
			} else {
				ids = emitN(b, 7)
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
				t.Errorf("Run after Close = %v, want ErrClosed", err)
			}
			b.Emit(Event{Type: Upload, Path: "/late"})
			if s := hookStats(b, "erp"); s.Dropped != 1 {
				t.Errorf("emit after close: %+v, want it counted as dropped", s)
			}

			rc.down.Store(false)
			log, logs := testLogger()
			opts.Log = log
			b2, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			if s := hookStats(b2, "erp"); s.Queued != 7 {
				t.Errorf("reopened: %+v, want 7 pending", s)
			}
			if len(logs.Lines(`"msg":"resuming hook deliveries"`, `"pending":7`)) != 1 {
				t.Errorf("want the resumption logged:\n%s", logs)
			}
			runBus(t, b2)
			waitFor(t, 10*time.Second, "deliveries", func() bool { return hookStats(b2, "erp").Delivered == 7 })
			rc.check()
			if got := rc.ids(); !slices.Equal(got, ids) {
				t.Errorf("delivered %v, want %v", got, ids)
			}
		})
	}
}

func TestRemovedHookKeepsItsQueue(t *testing.T) {
	dir := t.TempDir()
	hooks := []config.Hook{{Name: "gone", Webhook: &config.Webhook{URL: "http://127.0.0.1:1/"}}}
	b, err := Open(Options{StateDir: dir, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	emitN(b, 2)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger()
	b, err = Open(Options{StateDir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines(`"level":"WARN"`, `"hook":"gone"`, `"pending":2`)) != 1 {
		t.Errorf("want a warning about the orphaned queue:\n%s", logs)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(Options{StateDir: dir, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if s := hookStats(b, "gone"); s.Queued != 2 {
		t.Errorf("hook back: %+v, want its 2 deliveries still pending", s)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	held, err := Open(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	wh := &config.Webhook{URL: "http://127.0.0.1:1/"}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"hooks without a state dir", Options{Hooks: []config.Hook{{Name: "h", Webhook: wh}}}, "state dir"},
		{"duplicate hook", Options{StateDir: t.TempDir(), Hooks: []config.Hook{{Name: "h", Webhook: wh}, {Name: "h", Webhook: wh}}}, "duplicate"},
		{"neither webhook nor command", Options{StateDir: t.TempDir(), Hooks: []config.Hook{{Name: "h"}}}, "exactly one"},
		{"relative command", Options{StateDir: t.TempDir(), Hooks: []config.Hook{{Name: "h", Command: &config.HookCommand{Argv: []string{"process"}}}}}, "absolute"},
		{"state dir in use", Options{StateDir: dir}, "in use by another process"},
		{"audit log dir is a file", Options{AuditLog: config.AuditLog{Path: "/dev/null/audit.jsonl"}}, "audit log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(tt.opts)
			if err == nil {
				_ = b.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	b, err := Open(Options{StateDir: t.TempDir(), Hooks: []config.Hook{{Name: "h", Webhook: &config.Webhook{URL: "http://127.0.0.1:1/"}}}})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	waitFor(t, 5*time.Second, "Run to start", func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return b.running
	})
	if err := b.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

func TestBackoff(t *testing.T) {
	b := &Bus{backoffBase: time.Second, backoffMax: 5 * time.Minute}
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{9, 128 * time.Second, 256 * time.Second},
		{10, 150 * time.Second, 5 * time.Minute}, // capped
		{1000, 150 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		for range 50 {
			if d := b.backoff(tt.n); d < tt.min || d > tt.max {
				t.Errorf("backoff(%d) = %s, want within [%s, %s]", tt.n, d, tt.min, tt.max)
			}
		}
	}
}

// The kill test runs the bus in a child process (this test binary again)
// and SIGKILLs it once it has queued events, as a crash or the OOM killer
// would: no Close, no flush.
const killHelperEnv = "WHARF_EVENTS_KILL_HELPER"

func TestKillHelper(t *testing.T) {
	spec := os.Getenv(killHelperEnv)
	if spec == "" {
		t.Skip("helper process for TestPendingSurviveKill")
	}
	dir, url, _ := strings.Cut(spec, "|")
	b, err := Open(Options{
		StateDir:    dir,
		Hooks:       []config.Hook{{Name: "erp", Webhook: &config.Webhook{URL: url}}},
		BackoffBase: 5 * time.Millisecond,
		BackoffMax:  20 * time.Millisecond,
	})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	go func() { _ = b.Run(context.Background()) }()
	for _, id := range emitN(b, 6) {
		fmt.Println("queued", id)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // until killed; the parent gives up long before
	os.Exit(1)
}

func TestPendingSurviveKill(t *testing.T) {
	rc := &receiver{t: t}
	rc.down.Store(true) // the child's deliveries fail until it dies
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+dir+"|"+srv.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		if id, ok := strings.CutPrefix(sc.Text(), "queued "); ok {
			ids = append(ids, id)
		} else {
			t.Logf("child: %s", sc.Text())
		}
	}
	if len(ids) != 6 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child queued %d events, want 6", len(ids))
	}
	waitFor(t, 10*time.Second, "the child to try delivering", func() bool { return rc.hits.Load() >= 2 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	rc.down.Store(false)
	b, err := Open(Options{StateDir: dir, Hooks: []config.Hook{{Name: "erp", Webhook: &config.Webhook{URL: srv.URL}}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := hookStats(b, "erp"); s.Queued != 6 {
		t.Errorf("after the kill: %+v, want 6 pending", s)
	}
	runBus(t, b)
	waitFor(t, 10*time.Second, "deliveries", func() bool { return hookStats(b, "erp").Delivered == 6 })
	rc.check()
	if got := rc.ids(); !slices.Equal(got, ids) {
		t.Errorf("delivered %v, want %v", got, ids)
	}
}
