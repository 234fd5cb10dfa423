package fleet

// The fleet's delivery queue against versitygw, driven by real event
// buses as daemons run them: deliveries made by the daemon that queued
// them in two requests each, taken over from a daemon that stopped once
// its holds lapse, never while its holder is alive and retrying.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// endpoint is a webhook receiver that records the ids it accepted and
// answers 503 while down is set.
type endpoint struct {
	down atomic.Bool
	mu   sync.Mutex
	ids  []string
	srv  *httptest.Server
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if e.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var ev events.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get(events.HeaderDelivery) {
			t.Errorf("delivery %q: body %s (%v)", r.Header.Get(events.HeaderDelivery), body, err)
		}
		e.mu.Lock()
		e.ids = append(e.ids, ev.ID)
		e.mu.Unlock()
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.ids...)
}

// daemonBus is the event bus of one daemon of the fleet: a hook "h" to
// ep through the fleet's queue.
type daemonBus struct {
	bus  *events.Bus
	q    *Queue
	stop context.CancelFunc
	done chan struct{}
}

func startBus(t *testing.T, s *State, owner string, lease time.Duration, ep *endpoint) *daemonBus {
	t.Helper()
	q, err := s.Queue(context.Background(), QueueOptions{Lease: lease, Owner: owner, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.Open(events.Options{
		Queue:       q,
		Hooks:       []config.Hook{{Name: "h", Webhook: &config.Webhook{URL: ep.srv.URL, Timeout: time.Second}}},
		BackoffBase: 100 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
		Log:         testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonBus{bus: b, q: q, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		_ = b.Run(ctx)
	}()
	t.Cleanup(d.close)
	return d
}

// close stops the daemon's bus as a daemon shuts down.
func (d *daemonBus) close() {
	d.stop()
	<-d.done
	_ = d.bus.Close()
}

// kill stops it as a daemon dies: no more deliveries, no more heartbeats,
// its objects stay in the bucket under its name.
func (d *daemonBus) kill() {
	d.stop()
	<-d.done
	d.q.halt()
}

func (d *daemonBus) emit(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = events.NewID()
		d.bus.Emit(events.Event{ID: ids[i], Type: events.Upload, User: "acme", Path: "/inbox/f.edi", Outcome: "ok"})
	}
	return ids
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// sameIDs reports whether got holds each of want exactly once.
func sameIDs(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	n := map[string]int{}
	for _, id := range got {
		n[id]++
	}
	for _, id := range want {
		if n[id] != 1 {
			return false
		}
	}
	return true
}

func fleetQueue(t *testing.T) (*s3test.Server, string, func(req *requests) *State) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	url := "s3://" + cfg.Bucket + "/fleet/state/"
	return srv, url, func(req *requests) *State { return openState(t, cfg, url, req) }
}

// A daemon delivers what its sessions queued: one PUT before the reply,
// one DELETE after the delivery, nothing read back.
func TestQueueDeliversOwnEvents(t *testing.T) {
	_, _, open := fleetQueue(t)
	var req requests
	ep := newEndpoint(t)
	d := startBus(t, open(&req), "a", 10*time.Second, ep)
	ids := d.emit(20)
	waitUntil(t, 20*time.Second, "20 deliveries", func() bool { return len(ep.received()) >= 20 })
	waitUntil(t, 10*time.Second, "the queue emptied", func() bool { return d.bus.Stats().Hooks[0].Queued == 0 })
	if got := ep.received(); !sameIDs(got, ids) {
		t.Errorf("delivered %v, want each of %v once", got, ids)
	}
	n := req.Take()
	// The heartbeat's first PUT, then two requests a delivery; a LIST of
	// the heartbeats and of the hook's folder when the worker starts.
	if n["PutObject"] != 1+20 || n["DeleteObject"] != 20 || n["GetObject"] != 0 {
		t.Errorf("requests %v: want 1+20 PUTs and 20 DELETEs, no GET", n)
	}
	t.Logf("requests for 20 deliveries: %v", n)
}

// A daemon that stops with deliveries pending: another delivers them once
// their holds lapse, and not before.
func TestQueueTakeOverFromDeadDaemon(t *testing.T) {
	_, _, open := fleetQueue(t)
	const lease = 2 * time.Second
	epA, epB, epC := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	epA.down.Store(true)
	a := startBus(t, open(nil), "a", lease, epA)
	ids := a.emit(12)
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	a.kill()
	died := time.Now()
	// Its last heartbeat was up to lease/4 before; the takeover comes
	// between lease-lease/4 and lease+poll+slack after the death.
	// Two survivors race for the dead daemon's deliveries.
	startBus(t, open(nil), "b", lease, epB)
	startBus(t, open(nil), "c", lease, epC)
	var first time.Duration
	took := waitUntil(t, 20*time.Second, "the dead daemon's deliveries", func() bool {
		n := len(epB.received()) + len(epC.received())
		if n > 0 && first == 0 {
			first = time.Since(died)
		}
		return n >= len(ids)
	})
	time.Sleep(lease) // room for a duplicate to show
	got := append(epB.received(), epC.received()...)
	if !sameIDs(got, ids) {
		t.Errorf("delivered %v, want each of %v exactly once", got, ids)
	}
	if first < lease-lease/4 {
		t.Errorf("first delivery %s after the holder died: before its heartbeat of %s lapsed", first, lease)
	}
	t.Logf("lease %s: first taken-over delivery %s after the stop, all %d within %s (b %d, c %d)",
		lease, first.Round(time.Millisecond), len(ids), took.Round(time.Millisecond), len(epB.received()), len(epC.received()))
}

// A daemon that shuts down hands over at once what it holds: it deletes
// its heartbeat.
func TestQueueStoppedDaemonHandsOver(t *testing.T) {
	_, _, open := fleetQueue(t)
	const lease = 20 * time.Second
	epA, epB := newEndpoint(t), newEndpoint(t)
	epA.down.Store(true)
	a := startBus(t, open(nil), "a", lease, epA)
	ids := a.emit(5)
	startBus(t, open(nil), "b", lease, epB)
	a.close()
	took := waitUntil(t, lease/2, "the stopped daemon's deliveries", func() bool { return len(epB.received()) >= len(ids) })
	if got := epB.received(); !sameIDs(got, ids) {
		t.Errorf("b delivered %v, want %v", got, ids)
	}
	t.Logf("handed over in %s (lease %s, poll %s)", took.Round(time.Millisecond), lease, lease/4)
}

// A holder that keeps failing keeps its holds: it renews them before its
// attempts, so a live daemon's deliveries are not taken over however long
// its endpoint is down.
func TestQueueHolderRenews(t *testing.T) {
	_, _, open := fleetQueue(t)
	const lease = 2 * time.Second
	epA, epB := newEndpoint(t), newEndpoint(t)
	epA.down.Store(true)
	a := startBus(t, open(nil), "a", lease, epA)
	ids := a.emit(3)
	startBus(t, open(nil), "b", lease, epB)
	time.Sleep(3 * lease)
	if got := epB.received(); len(got) > 0 {
		t.Fatalf("b delivered %v while their holder was alive and retrying", got)
	}
	epA.down.Store(false)
	waitUntil(t, 10*time.Second, "a's deliveries once its endpoint is back", func() bool { return len(epA.received()) >= len(ids) })
	if got := epA.received(); !sameIDs(got, ids) {
		t.Errorf("a delivered %v, want %v", got, ids)
	}
}
