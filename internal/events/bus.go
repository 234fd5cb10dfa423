package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// Defaults for Options.
const (
	// DefaultQueueLimit is how many deliveries may wait per hook.
	DefaultQueueLimit = 100_000
	// DefaultBackoffBase is the delay before the first retry; it doubles
	// with each failure of the same delivery.
	DefaultBackoffBase = time.Second
	// DefaultBackoffMax caps the delay between retries.
	DefaultBackoffMax = 5 * time.Minute
	// QueueFile is the name of the delivery queue in Options.StateDir.
	QueueFile = "events.db"
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("events: bus closed")

// Options configure a Bus.
type Options struct {
	// StateDir holds the delivery queue (QueueFile) unless Queue is set.
	// One of them is required when Hooks is not empty.
	StateDir string
	// Queue, if set, is the delivery queue instead of StateDir's file
	// (a fleet's, in the bucket). The bus closes it.
	Queue Queue
	// Hooks receive matching events, each through its own queue and
	// worker. The config package has validated them.
	Hooks []config.Hook
	// AuditLog receives every event as one JSON line; Path "" turns it off,
	// "-" writes to Stdout.
	AuditLog config.AuditLog
	// Log is the diagnostic log; nil discards.
	Log *slog.Logger
	// QueueLimit is how many deliveries may wait per hook; when a hook's
	// queue is full, new events for it are dropped and logged at error
	// level. 0: DefaultQueueLimit.
	QueueLimit int

	// For tests; zero values select the defaults.
	BackoffBase time.Duration    // DefaultBackoffBase
	BackoffMax  time.Duration    // DefaultBackoffMax
	Now         func() time.Time // time.Now; stamps events and names rotated audit files
	Stdout      io.Writer        // os.Stdout; where audit_log.path "-" writes
}

// Bus is the events.Sink of a running daemon: Emit records and queues, Run
// delivers. Emit, Stats and Close are safe for concurrent use.
type Bus struct {
	log         *slog.Logger
	now         func() time.Time
	limit       int64
	backoffBase time.Duration
	backoffMax  time.Duration

	q     Queue // nil when there are no hooks and no state dir
	hooks []*hook
	audit io.WriteCloser // nil: off

	auditErrors atomic.Uint64

	mu      sync.RWMutex // guards the fields below; Emit holds it shared
	closed  bool
	running bool
	stop    context.CancelFunc
	workers sync.WaitGroup
}

// deliverer sends one event to one hook's endpoint. The attributes
// describe the attempt for the log (status, exit code, stderr).
type deliverer interface {
	kind() string
	deliver(ctx context.Context, ev *Event, body []byte) ([]slog.Attr, error)
}

type hook struct {
	name   string
	filter filter
	target deliverer
	wake   chan struct{} // buffered 1: "the queue may have grown"

	depth     atomic.Int64 // deliveries waiting, including the one in flight
	delivered atomic.Uint64
	failed    atomic.Uint64
	dropped   atomic.Uint64
}

// Open builds the hooks (reading webhook secrets), opens the audit log and
// the delivery queue in StateDir, and counts the deliveries a previous run
// left pending; Run resumes them. Only one Bus (one process) may have a
// StateDir open at a time.
func Open(opts Options) (*Bus, error) {
	b := &Bus{
		log:         opts.Log,
		now:         opts.Now,
		limit:       int64(opts.QueueLimit),
		backoffBase: opts.BackoffBase,
		backoffMax:  opts.BackoffMax,
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("component", "events")
	if b.now == nil {
		b.now = time.Now
	}
	if b.limit <= 0 {
		b.limit = DefaultQueueLimit
	}
	if b.backoffBase <= 0 {
		b.backoffBase = DefaultBackoffBase
	}
	if b.backoffMax <= 0 {
		b.backoffMax = DefaultBackoffMax
	}

	pathEnv := os.Getenv("PATH")
	seen := map[string]bool{}
	for i := range opts.Hooks {
		c := &opts.Hooks[i]
		if c.Name == "" || seen[c.Name] {
			return nil, fmt.Errorf("hook %d: missing or duplicate name %q", i, c.Name)
		}
		seen[c.Name] = true
		h := &hook{
			name:   c.Name,
			filter: filter{types: c.Events, globs: c.Paths},
			wake:   make(chan struct{}, 1),
		}
		var err error
		switch {
		case c.Webhook != nil && c.Command == nil:
			h.target, err = newWebhook(c.Webhook)
		case c.Command != nil && c.Webhook == nil:
			h.target, err = newCommand(c.Command, pathEnv)
		default:
			err = errors.New("want exactly one of webhook or command")
		}
		if err != nil {
			return nil, fmt.Errorf("hook %s: %w", c.Name, err)
		}
		b.hooks = append(b.hooks, h)
	}

	switch {
	case opts.Queue != nil:
		b.q = opts.Queue
	case opts.StateDir != "":
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("events: state dir: %w", err)
		}
		q, err := OpenLocal(filepath.Join(opts.StateDir, QueueFile))
		if err != nil {
			return nil, err
		}
		b.q = q
	case len(b.hooks) > 0:
		return nil, errors.New("events: hooks need a state dir for their queue")
	}
	if b.q != nil {
		if err := b.resume(); err != nil {
			_ = b.q.Close()
			return nil, err
		}
	}

	switch opts.AuditLog.Path {
	case "":
	case "-":
		w := opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		b.audit = &lockedWriter{w: w}
	default:
		r, err := openRotating(opts.AuditLog.Path, int64(opts.AuditLog.MaxSize), opts.AuditLog.MaxBackups, b.now)
		if err != nil {
			if b.q != nil {
				_ = b.q.Close()
			}
			return nil, err
		}
		b.audit = r
	}
	return b, nil
}

// resume counts what a previous run left in each hook's queue, and warns
// about queues of hooks that are no longer configured: their deliveries
// stay on disk and resume if a hook of that name returns.
func (b *Bus) resume() error {
	counts, err := b.q.Pending()
	if err != nil {
		return err
	}
	for _, h := range b.hooks {
		n := counts[h.name]
		delete(counts, h.name)
		h.depth.Store(int64(n))
		if n > 0 {
			b.log.Info("resuming hook deliveries", "hook", h.name, "pending", n)
		}
	}
	for name, n := range counts {
		if n > 0 {
			b.log.Warn("pending deliveries for a hook no longer configured are kept, not delivered", "hook", name, "pending", n)
		}
	}
	return nil
}

// Emit records ev in the audit log and queues one delivery per matching
// hook. It fills in ID and Time when empty. It returns once the deliveries
// are stored (on disk, fsync'd, in a group commit with other sessions'
// events; or in the fleet's bucket), never waiting for an endpoint. Failures are logged, never returned: the operation the event
// reports has already happened.
func (b *Bus) Emit(ev Event) {
	if b.audit == nil && len(b.hooks) == 0 {
		// Nothing reads events (both are fixed at Open): no ID from
		// crypto/rand, no JSON, for every file a partner moves.
		return
	}
	b.emit(ev) // a function of its own, so that ev escapes only there
}

func (b *Bus) emit(ev Event) {
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.Time.IsZero() {
		ev.Time = b.now().UTC()
	}
	body, err := json.Marshal(&ev)
	if err != nil { // only a NaN duration could do this
		b.log.Error("event not recorded", "event_id", ev.ID, "type", ev.Type, "err", err)
		return
	}

	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.log.Error("event after close, not recorded", "event_id", ev.ID, "type", ev.Type)
		for _, h := range b.hooks {
			if h.filter.match(&ev) {
				h.dropped.Add(1)
			}
		}
		return
	}

	if b.audit != nil {
		if _, err := b.audit.Write(append(body, '\n')); err != nil {
			b.auditErrors.Add(1)
			b.log.Error("audit log error", "event_id", ev.ID, "type", ev.Type, "err", err)
		}
	}

	var targets []*hook
	for _, h := range b.hooks {
		if !h.filter.match(&ev) {
			continue
		}
		// Reserve a place before writing, so that concurrent Emits never
		// take a queue past its limit.
		if h.depth.Add(1) > b.limit {
			h.depth.Add(-1)
			h.dropped.Add(1)
			b.log.Error("hook queue full: event dropped for this hook",
				"hook", h.name, "event_id", ev.ID, "type", ev.Type, "path", ev.Path,
				"limit", b.limit, "dropped_total", h.dropped.Load())
			continue
		}
		targets = append(targets, h)
	}
	if len(targets) == 0 {
		return
	}
	names := make([]string, len(targets))
	for i, h := range targets {
		names[i] = h.name
	}
	if err := b.q.Push(names, &ev, body); err != nil {
		for _, h := range targets {
			h.depth.Add(-1)
			h.dropped.Add(1)
		}
		b.log.Error("event not queued for hooks", "hooks", names, "event_id", ev.ID, "type", ev.Type, "path", ev.Path, "err", err)
		return
	}
	for _, h := range targets {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// Run delivers queued events until ctx ends or Close is called: one
// worker per hook, oldest first, each retrying its oldest delivery with
// exponential backoff until it succeeds, so a dead endpoint delays only
// its own hook. A delivery interrupted by the end of ctx stays queued and
// is made again by the next Run (at-least-once). Run returns nil when ctx
// ends, ErrClosed after Close, or an error if it is already running.
func (b *Bus) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.running {
		b.mu.Unlock()
		return errors.New("events: bus already running")
	}
	b.running = true
	ctx, b.stop = context.WithCancel(ctx)
	for _, h := range b.hooks {
		b.workers.Go(func() { b.work(ctx, h) })
	}
	b.mu.Unlock()

	b.workers.Wait()
	b.mu.Lock()
	b.running = false
	b.stop()
	b.mu.Unlock()
	return nil
}

// Close stops Run's workers (an interrupted delivery stays queued), then
// flushes the audit log and closes the queue. Events emitted afterwards
// are dropped and logged.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.stop != nil {
		b.stop()
	}
	b.mu.Unlock()
	// Emit holds mu shared while writing, so no Emit is in flight now;
	// the workers are the last users of the queue.
	b.workers.Wait()
	var errs []error
	if b.audit != nil {
		errs = append(errs, b.audit.Close())
	}
	if b.q != nil {
		errs = append(errs, b.q.Close())
	}
	return errors.Join(errs...)
}

// work is one hook's delivery loop.
func (b *Bus) work(ctx context.Context, h *hook) {
	log := b.log.With("hook", h.name, "kind", h.target.kind())
	var poll <-chan time.Time // an idle worker's second wake-up, for a shared queue
	if p := b.q.Poll(); p > 0 {
		t := time.NewTicker(p)
		defer t.Stop()
		poll = t.C
	}
	failures := 0 // consecutive, for the oldest delivery
	for ctx.Err() == nil {
		d, ok, err := b.q.Next(ctx, h.name)
		if err != nil {
			failures++
			log.Error("reading hook queue failed", "err", err)
			b.sleep(ctx, failures)
			continue
		}
		if !ok {
			select {
			case <-h.wake:
			case <-poll:
			case <-ctx.Done():
			}
			continue
		}
		if d.Adopted {
			h.depth.Add(1)
		}
		var ev Event
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			// Retrying cannot fix a record we cannot read: set it aside
			// rather than block the hook forever.
			log.Error("unreadable queued event dropped", "err", err)
			h.dropped.Add(1)
			b.remove(ctx, log, h, d)
			continue
		}
		attrs, err := h.target.deliver(ctx, &ev, d.Body)
		if ctx.Err() != nil {
			return // shutting down: the delivery stays queued
		}
		args := []any{"event_id", ev.ID, "type", ev.Type, "path", ev.Path, "attempt", failures + 1}
		for _, a := range attrs {
			args = append(args, a)
		}
		if err != nil {
			failures++
			h.failed.Add(1)
			delay := b.backoff(failures)
			args = append(args, "retry_in", delay.Round(time.Millisecond), "err", err)
			// A few failures are routine (a deploy, a restart); many in a
			// row mean the endpoint needs someone's attention.
			level := slog.LevelWarn
			if failures >= 5 {
				level = slog.LevelError
			}
			log.Log(ctx, level, "hook delivery failed", args...)
			sleepCtx(ctx, delay)
			continue
		}
		log.Info("hook delivered", args...)
		failures = 0
		b.remove(ctx, log, h, d)
		h.delivered.Add(1) // after remove, so Delivered never runs ahead of Queued
	}
}

// remove deletes a delivered (or unreadable) entry, retrying on a storage
// error so that the queue never loses an entry it still counts.
func (b *Bus) remove(ctx context.Context, log *slog.Logger, h *hook, d Delivery) {
	for attempt := 1; ; attempt++ {
		// Not cancelled by a shutdown: the event was delivered, and an
		// entry left behind is delivered again.
		err := b.q.Done(context.WithoutCancel(ctx), h.name, d)
		if err == nil {
			h.depth.Add(-1)
			return
		}
		log.Error("removing delivered event from queue failed", "attempt", attempt, "err", err)
		if !b.sleep(ctx, attempt) {
			return // the entry stays; the next run delivers it again
		}
	}
}

// backoff is the delay after the n-th consecutive failure: base doubling
// up to max, then randomly shortened by up to half so that hooks failing
// together (one endpoint down behind several hooks) do not retry in step.
func (b *Bus) backoff(n int) time.Duration {
	d := b.backoffBase
	for i := 1; i < n && d < b.backoffMax; i++ {
		d *= 2
	}
	d = min(d, b.backoffMax)
	return d/2 + rand.N(d/2+1)
}

func (b *Bus) sleep(ctx context.Context, n int) bool {
	return sleepCtx(ctx, b.backoff(n))
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Stats is a snapshot of the bus for metrics.
type Stats struct {
	Hooks []HookStats // in configuration order
	// AuditErrors counts audit log writes that failed since Open (the
	// line lost, or written but the file could not be rotated).
	AuditErrors uint64
}

// HookStats describes one hook's queue. Counters start at zero at Open;
// Queued includes deliveries left pending by a previous run.
type HookStats struct {
	Name   string
	Kind   string // "webhook" or "command"
	Queued int64  // deliveries waiting, including the one being attempted
	// Delivered counts successful deliveries, Failed failed attempts (a
	// delivery retried three times before it succeeds adds 3 to Failed
	// and 1 to Delivered), Dropped events not queued for this hook: queue
	// full, storage error, emitted after Close, or unreadable on disk.
	Delivered uint64
	Failed    uint64
	Dropped   uint64
}

// Stats returns the current counters.
func (b *Bus) Stats() Stats {
	s := Stats{Hooks: make([]HookStats, 0, len(b.hooks)), AuditErrors: b.auditErrors.Load()}
	for _, h := range b.hooks {
		s.Hooks = append(s.Hooks, HookStats{
			Name:      h.name,
			Kind:      h.target.kind(),
			Queued:    h.depth.Load(),
			Delivered: h.delivered.Load(),
			Failed:    h.failed.Load(),
			Dropped:   h.dropped.Load(),
		})
	}
	return s
}
