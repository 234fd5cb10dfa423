package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// The fleet's delivery queue, an events.Queue in the state folder, so
// that no delivery dies with its daemon.
//
// A delivery is one object, holding the event's JSON exactly as delivered:
//
//	events/HOOK/TIME-ID~OWNER
//
// TIME is the event's, in nanoseconds, twenty digits, so that a listing
// is oldest first; OWNER names the daemon that holds the delivery. Every
// daemon keeps a heartbeat object, owners/OWNER, rewritten every Lease/4:
// a daemon holds its deliveries while its heartbeat is younger than Lease
// (dated by the store: LastModified against the listing's Date).
//
// The daemon whose session emitted an event writes its object before the
// client's reply (If-None-Match: *), delivers it, then deletes it on the
// condition that it is still there as written (If-Match). That is two
// requests a delivery. Holding costs one request per daemon every Lease/4,
// however many deliveries it holds: its endpoint may be down for a day
// without the others taking its backlog.
//
// A daemon that dies leaves its objects, and its heartbeat ages. Each
// daemon's worker of a hook, every Poll while it holds few deliveries,
// lists the heartbeats and the hook's folder and takes over the deliveries
// of owners whose heartbeat has lapsed (or is gone: a daemon that stops
// deletes its own, so that the others take its deliveries at once). Of
// daemons racing for a delivery, the one that creates its claim object
// (claims/HOOK/..., create-only) copies it under its own name and deletes
// the old one (takeOver). The deliveries of a dead daemon are made by the
// others within Lease plus Poll.
//
// At least once: an event is delivered again when a daemon dies after
// delivering it and before deleting it, or loses touch with the bucket
// for longer than Lease while it delivers. Every attempt by every daemon
// carries the same event id (X-Wharf-Delivery), by which receivers discard
// duplicates. The order is the order of each daemon's events; deliveries
// taken over come in the order of their times.
const (
	eventsDir = "events/"
	ownersDir = "owners/"
	claimsDir = "claims/"
)

// maxAdopt bounds the deliveries a worker holds before it takes over
// more: what it holds is in memory, and a dead daemon's backlog is shared
// among the living.
const maxAdopt = 100

// ageSlack covers the store's dating to the second: a heartbeat has lapsed
// when the store says it is older than Lease plus this.
const ageSlack = time.Second

// QueueOptions configure a fleet's delivery queue.
type QueueOptions struct {
	// Lease is how long a daemon holds its deliveries after its last
	// heartbeat (event_lease).
	Lease time.Duration
	// Owner names this daemon in object names; empty: host name and
	// process id. Unique among running daemons.
	Owner string
	Log   *slog.Logger // nil discards
}

// Queue is the fleet's delivery queue, an events.Queue. Its heartbeat
// runs from State.Queue until Close.
type Queue struct {
	obj   *s3store.Objects
	lease time.Duration
	owner string
	log   *slog.Logger

	mu    sync.Mutex
	hooks map[string]*hookQueue
	live  map[string]bool // owners with a fresh heartbeat, as last listed
	seen  time.Time       // when live was listed

	stop context.CancelFunc
	done chan struct{}
}

// hookQueue is what this daemon holds of one hook's deliveries.
type hookQueue struct {
	mu       sync.Mutex
	held     []*held // in name order: oldest first
	lastScan time.Time
}

type held struct {
	name, etag string
	body       []byte
	adopted    bool // taken over, not yet returned by Next
}

var _ events.Queue = (*Queue)(nil)

// Queue returns the fleet's delivery queue in the state folder. It writes
// this daemon's first heartbeat before it returns, so that no other
// daemon takes what it queues for a dead daemon's.
func (s *State) Queue(ctx context.Context, o QueueOptions) (*Queue, error) {
	q := &Queue{obj: s.obj, lease: o.Lease, owner: ownerName(o.Owner), log: o.Log, hooks: map[string]*hookQueue{}, done: make(chan struct{})}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	q.log = q.log.With("component", "events", "queue", s.URL()+eventsDir, "owner", q.owner)
	if err := q.beat(ctx); err != nil {
		return nil, err
	}
	beatCtx, stop := context.WithCancel(context.Background())
	q.stop = stop
	go q.heartbeat(beatCtx)
	return q, nil
}

// ownerName makes a name safe as the end of an object name: no "/", no
// "~", nothing a URL would escape.
func ownerName(name string) string {
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

func (q *Queue) beat(ctx context.Context) error {
	if _, err := q.obj.Put(ctx, ownersDir+q.owner, []byte("heartbeat of a wharf daemon's event queue\n")); err != nil {
		return fmt.Errorf("fleet event queue: heartbeat: %w", err)
	}
	return nil
}

// heartbeat rewrites the heartbeat every Lease/4 until ctx ends.
func (q *Queue) heartbeat(ctx context.Context) {
	defer close(q.done)
	t := time.NewTicker(q.lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := q.beat(ctx); err != nil && ctx.Err() == nil {
				// Three more misses and the others take this daemon's
				// deliveries: it may deliver some of them twice.
				q.log.Error("fleet event queue heartbeat failed", "err", err)
			}
		}
	}
}

// Close stops the heartbeat and deletes it, so that the other daemons
// take over at once what this one still holds.
func (q *Queue) Close() error {
	q.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.obj.Delete(ctx, ownersDir+q.owner, ""); err != nil {
		return fmt.Errorf("fleet event queue: %w", err)
	}
	return nil
}

// halt stops the heartbeat, as a daemon's death does.
func (q *Queue) halt() {
	q.stop()
	<-q.done
}

// Poll is how often an idle worker looks for deliveries to take over.
func (q *Queue) Poll() time.Duration { return max(q.lease/4, 500*time.Millisecond) }

// due reports whether a look taken at last is a Poll old; a little early,
// so that the worker's ticker of period Poll does not miss it by a hair.
func (q *Queue) due(last time.Time) bool { return time.Since(last) >= q.Poll()*9/10 }

// Pending is empty: what other daemons left is taken over as their
// heartbeats lapse, and counted then.
func (q *Queue) Pending() (map[string]int, error) { return nil, nil }

func (q *Queue) hook(name string) *hookQueue {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.hooks[name]
	if h == nil {
		h = &hookQueue{}
		q.hooks[name] = h
	}
	return h
}

// hookDir is the folder of a hook's deliveries. Hook names are the
// operator's, any string: escaped into one key segment.
func hookDir(hook string) string {
	seg := url.PathEscape(hook)
	if seg == "." || seg == ".." {
		seg = strings.ReplaceAll(seg, ".", "%2E")
	}
	return eventsDir + seg + "/"
}

// splitOwner returns the name without its owner, and the owner.
func splitOwner(name string) (base, owner string) {
	i := strings.LastIndexByte(name, '~')
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// Push writes one delivery object per hook, at once, and holds them.
func (q *Queue) Push(hooks []string, ev *events.Event, body []byte) error {
	stamp := fmt.Sprintf("%020d-%s~%s", ev.Time.UnixNano(), ev.ID, q.owner)
	written := make([]*held, len(hooks))
	errs := make([]error, len(hooks))
	var wg sync.WaitGroup
	for i, hook := range hooks {
		wg.Go(func() {
			h := &held{name: hookDir(hook) + stamp, body: body}
			h.etag, errs[i] = q.obj.Create(context.Background(), h.name, body)
			if errs[i] == nil {
				written[i] = h
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// All or nothing, as the bus counts it: take back what was
		// written. What cannot be is delivered all the same, later.
		for _, h := range written {
			if h != nil {
				_ = q.obj.Delete(context.Background(), h.name, h.etag)
			}
		}
		return fmt.Errorf("fleet event queue: %w", err)
	}
	for i, hook := range hooks {
		q.hook(hook).insert(written[i])
	}
	return nil
}

func compareHeld(e *held, name string) int { return strings.Compare(e.name, name) }

// insert adds h in name order (a push is almost always the newest).
func (hq *hookQueue) insert(h *held) {
	hq.mu.Lock()
	defer hq.mu.Unlock()
	i, _ := slices.BinarySearchFunc(hq.held, h.name, compareHeld)
	hq.held = slices.Insert(hq.held, i, h)
}

func (hq *hookQueue) drop(h *held) {
	hq.mu.Lock()
	defer hq.mu.Unlock()
	if i := slices.Index(hq.held, h); i >= 0 {
		hq.held = slices.Delete(hq.held, i, i+1)
	}
}

func (hq *hookQueue) first() (h *held, n int) {
	hq.mu.Lock()
	defer hq.mu.Unlock()
	if len(hq.held) == 0 {
		return nil, 0
	}
	return hq.held[0], len(hq.held)
}

// Next returns the oldest delivery this daemon holds for the hook; when
// it holds few, it first takes over lapsed ones, at most every Poll.
func (q *Queue) Next(ctx context.Context, hook string) (events.Delivery, bool, error) {
	hq := q.hook(hook)
	if _, n := hq.first(); n < maxAdopt && q.due(hq.lastScan) {
		hq.lastScan = time.Now()
		if err := q.adopt(ctx, hook, hq, maxAdopt-n); err != nil {
			q.log.Warn("looking for deliveries to take over failed", "hook", hook, "err", err)
		}
	}
	h, _ := hq.first()
	if h == nil {
		return events.Delivery{}, false, nil
	}
	adopted := h.adopted
	h.adopted = false
	return events.Delivery{Body: h.body, Adopted: adopted, Ref: h}, true, nil
}

// Done deletes a delivery this daemon holds.
func (q *Queue) Done(ctx context.Context, hook string, d events.Delivery) error {
	h, ok := d.Ref.(*held)
	if !ok {
		return errors.New("fleet event queue: not one of its deliveries")
	}
	err := q.obj.Delete(ctx, h.name, h.etag)
	switch {
	case errors.Is(err, s3store.ErrChanged) || errors.Is(err, fs.ErrNotExist):
		// This daemon's heartbeat lapsed (it lost touch with the bucket)
		// and another took the delivery over: it delivers it again, with
		// the same id.
		q.log.Warn("delivered, but another daemon had taken the delivery over: it may be delivered twice", "hook", hook, "object", h.name)
	case err != nil:
		return fmt.Errorf("fleet event queue: %w", err)
	}
	q.hook(hook).drop(h)
	return nil
}

// liveOwners lists the heartbeats, at most once per Poll for all hooks.
func (q *Queue) liveOwners(ctx context.Context) (map[string]bool, error) {
	q.mu.Lock()
	if q.live != nil && !q.due(q.seen) {
		defer q.mu.Unlock()
		return q.live, nil
	}
	q.mu.Unlock()
	live := map[string]bool{q.owner: true}
	err := q.obj.List(ctx, ownersDir, func(e s3store.Entry) error {
		if e.Age <= q.lease+ageSlack {
			live[strings.TrimPrefix(e.Name, ownersDir)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.live, q.seen = live, time.Now()
	return live, nil
}

// adopt takes over up to room deliveries of the hook whose owners'
// heartbeats have lapsed.
func (q *Queue) adopt(ctx context.Context, hook string, hq *hookQueue, room int) error {
	live, err := q.liveOwners(ctx)
	if err != nil {
		return err
	}
	var orphans []s3store.Entry
	errEnough := errors.New("enough")
	err = q.obj.List(ctx, hookDir(hook), func(e s3store.Entry) error {
		if _, owner := splitOwner(e.Name); !live[owner] {
			orphans = append(orphans, e)
			if len(orphans) == room {
				return errEnough
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	contested := false
	for _, e := range orphans {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		won, err := q.takeOver(ctx, hook, hq, e)
		if err != nil {
			return err
		}
		contested = contested || !won
	}
	if contested {
		return q.dropStaleClaims(ctx, hook)
	}
	return nil
}

// claimName is the claim of a delivery object: whoever creates it takes
// the delivery over.
func claimName(name string) string { return claimsDir + strings.TrimPrefix(name, eventsDir) }

// takeOver takes one orphan delivery: it claims it by creating its claim
// object (If-None-Match: *, the one write stores make exclusive, so of
// daemons racing for it exactly one wins), copies it under this daemon's
// name, deletes the orphan, then the claim. A daemon that dies in between
// leaves a claim, which goes stale (dropStaleClaims), and maybe a copy
// under its own name, an orphan in turn: delivered once more at worst.
// won is false when another daemon holds the claim.
func (q *Queue) takeOver(ctx context.Context, hook string, hq *hookQueue, e s3store.Entry) (won bool, err error) {
	claim := claimName(e.Name)
	claimTag, err := q.obj.Create(ctx, claim, []byte(q.owner+"\n"))
	if errors.Is(err, s3store.ErrChanged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if derr := q.obj.Delete(ctx, claim, claimTag); derr != nil && err == nil {
			q.log.Warn("a claim could not be deleted: it goes stale", "hook", hook, "object", claim, "err", derr)
		}
	}()
	body, _, err := q.obj.Get(ctx, e.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil // delivered, or taken over and done, since the listing
	}
	if err != nil {
		return true, err
	}
	base, from := splitOwner(e.Name)
	h := &held{name: base + "~" + q.owner, body: body, adopted: true}
	if h.etag, err = q.obj.Create(ctx, h.name, body); err != nil && !errors.Is(err, s3store.ErrChanged) {
		return true, err
	}
	if err != nil {
		// This daemon's own copy from an earlier claim is there already.
		if _, h.etag, err = q.obj.Get(ctx, h.name); err != nil {
			return true, err
		}
	}
	if err := q.obj.Delete(ctx, e.Name, ""); err != nil {
		return true, err
	}
	q.log.Info("took over the delivery of a daemon that stopped", "hook", hook, "object", base, "from", from)
	hq.insert(h)
	return true, nil
}

// dropStaleClaims deletes the hook's claims older than a lease: those of
// daemons that died while taking a delivery over (a takeover takes a few
// requests). Their deliveries are taken at the next look.
func (q *Queue) dropStaleClaims(ctx context.Context, hook string) error {
	dir := claimName(hookDir(hook))
	return q.obj.List(ctx, dir, func(e s3store.Entry) error {
		if e.Age > q.lease+ageSlack {
			if err := q.obj.Delete(ctx, e.Name, e.ETag); err != nil && !errors.Is(err, s3store.ErrChanged) && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			q.log.Warn("dropped the stale claim of a daemon that died taking a delivery over", "hook", hook, "object", e.Name)
		}
		return nil
	})
}
