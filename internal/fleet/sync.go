package fleet

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
)

// Defaults of SyncOptions.
const (
	// DefaultRefresh is how often a daemon reads the shared ban set: a ban
	// by one daemon is in force on all within this (plus a request's time),
	// well inside the 10 s the fleet promises. One LIST each.
	DefaultRefresh = 3 * time.Second
	// DefaultRoundTimeout bounds one round (writing new bans, reading the
	// set): a bucket that hangs delays the next round, never a login.
	DefaultRoundTimeout = 10 * time.Second
	// warnEvery spaces the warnings while the bucket stays unreachable (or
	// the set too large).
	warnEvery = 5 * time.Minute
	// sweepEvery spaces the deletions of ended bans: a delete the store
	// refuses is not retried every refresh.
	sweepEvery = time.Minute
	// finalFlush bounds the last write of new bans at shutdown.
	finalFlush = 5 * time.Second
)

// SyncOptions configure a Syncer.
type SyncOptions struct {
	// Refresh is how often the set is read; 0: DefaultRefresh.
	Refresh time.Duration
	// RoundTimeout bounds one round; 0: DefaultRoundTimeout.
	RoundTimeout time.Duration
	// Retain is how long a ban's object stays after the ban ended, so that
	// its offences still double the next ban of that address on any
	// daemon (defender.max_ban_time). Then a daemon deletes it.
	Retain time.Duration
	// Changed is called (from Run's goroutine) when the bans this daemon
	// enforces changed through the fleet: a ban read, or lifted. nil: none.
	Changed func()
	// Window is defender.window: failed logins are counted across the
	// fleet within it (failures.go). 0: each daemon counts its own only.
	Window time.Duration
	// Owner names this daemon in the failure counts; empty: host name and
	// process id.
	Owner string
	Log   *slog.Logger
	Now   func() time.Time // nil: time.Now
}

// Syncer keeps a guard's bans and a fleet's shared set in step: it writes
// the bans the guard makes (Publish) and puts the set every daemon wrote
// in force in the guard, every Refresh. The guard never waits for it: a
// login reads the set in memory, as last read, and an unreachable bucket
// only leaves that set as it was. Run is its one goroutine.
type Syncer struct {
	state *State
	guard *guard.Guard
	opt   SyncOptions

	kick chan struct{} // a ban to write: wake Run before the tick
	mu   sync.Mutex
	// pending are the bans made here and not written yet: no more than
	// the addresses the guard tracks.
	pending map[netip.Addr]guard.Ban

	// Run's own.
	// inStep: the set in force is the last listing's, and nothing was
	// written since; an identical listing then needs no work.
	inStep  bool
	sum     [sha256.Size]byte // of the last listing's names and ETags
	objects []BanObject       // the last listing
	// known is each address's latest ban in the last listing, and those
	// written since: an address in force there that a listing lacks was
	// lifted.
	known map[netip.Addr]guard.Ban
	swept time.Time
	// pendingFail are this daemon's counts not written yet, ownFail the
	// names of those written, failObjects the last listing of everyone's.
	pendingFail map[netip.Addr]guard.Failures
	ownFail     map[netip.Addr]string
	failObjects []FailureObject
	failing     bool
	warned      time.Time
	truncWarn   time.Time
}

// NewSyncer returns the syncer of g with the set in state.
func NewSyncer(state *State, g *guard.Guard, opt SyncOptions) *Syncer {
	if opt.Refresh <= 0 {
		opt.Refresh = DefaultRefresh
	}
	if opt.RoundTimeout <= 0 {
		opt.RoundTimeout = DefaultRoundTimeout
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Changed == nil {
		opt.Changed = func() {}
	}
	opt.Owner = ownerName(opt.Owner)
	opt.Log = opt.Log.With("component", "guard", "state", state.URL())
	if opt.Window > 0 {
		g.TakeFailures() // starts the guard's tracking of changed counts
	}
	return &Syncer{state: state, guard: g, opt: opt, kick: make(chan struct{}, 1), pending: map[netip.Addr]guard.Ban{},
		pendingFail: map[netip.Addr]guard.Failures{}, ownFail: map[netip.Addr]string{}}
}

// Publish queues a ban the guard made for the shared set and wakes Run.
// It never blocks: it is called on a login's path.
func (s *Syncer) Publish(b guard.Ban) {
	s.mu.Lock()
	if p, ok := s.pending[b.Addr]; !ok || b.Until.After(p.Until) {
		s.pending[b.Addr] = b
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a wake-up is already due
	}
}

// Run reads the set every Refresh, and writes new bans as they come,
// until ctx is done; then it makes a last attempt to write the bans not
// yet written, for at most a few seconds. Call Refresh before it to have
// the set in force from the start.
func (s *Syncer) Run(ctx context.Context) {
	tick := time.NewTicker(s.opt.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlush)
			defer cancel()
			s.report(s.flush(last))
			return
		case <-s.kick:
			s.round(ctx, false)
		case <-tick.C:
			s.round(ctx, true)
		}
	}
}

// Refresh runs one round now: writes what is pending, reads the set. Call
// it before Run, never while Run runs: they share the syncer's state.
func (s *Syncer) Refresh(ctx context.Context) error { return s.round(ctx, true) }

func (s *Syncer) round(ctx context.Context, read bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.opt.RoundTimeout)
	defer cancel()
	err := s.flush(ctx)
	if read && s.opt.Window > 0 {
		// Counts go with the reading rounds only: at most one write per
		// address and refresh, however fast the failures come.
		err = errors.Join(err, s.flushFailures(ctx))
	}
	if read {
		// After the writes: a listing then holds every ban made here
		// before it but those still pending, so a ban missing from it was
		// lifted (see apply). Read even when a write failed: one ban the
		// store refuses must not stop the others from arriving.
		err = errors.Join(err, s.read(ctx))
	}
	s.report(err)
	return err
}

// flush writes the pending bans; those that fail stay pending.
func (s *Syncer) flush(ctx context.Context) error {
	s.mu.Lock()
	todo := make([]guard.Ban, 0, len(s.pending))
	for _, b := range s.pending {
		todo = append(todo, b)
	}
	s.mu.Unlock()
	now := s.opt.Now()
	var firstErr error
	for _, b := range todo {
		var err error
		if now.Before(b.Until) {
			err = s.state.PutBan(ctx, b)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		s.mu.Lock()
		if s.pending[b.Addr] == b { // not replaced by a newer ban meanwhile
			delete(s.pending, b.Addr)
		}
		s.mu.Unlock()
		// Known from now on: lifted before the next listing, it is lifted
		// here too, even if that listing is the same as the last.
		s.inStep = false
		if k, ok := s.known[b.Addr]; !ok || b.Until.After(k.Until) {
			if s.known == nil {
				s.known = map[netip.Addr]guard.Ban{}
			}
			s.known[b.Addr] = b
		}
	}
	return firstErr
}

// read lists the set and, when the listing changed, puts it in force.
func (s *Syncer) read(ctx context.Context) error {
	objects, truncated, err := s.state.ListBans(ctx)
	if err != nil {
		return err
	}
	if now := s.opt.Now(); truncated && now.Sub(s.truncWarn) >= warnEvery {
		s.opt.Log.Warn("shared ban set holds more bans than a daemon reads; the rest are ignored", "read", len(objects))
		s.truncWarn = now
	}
	h := sha256.New()
	for _, o := range objects {
		h.Write([]byte(o.Name + "\x00" + o.ETag + "\x00"))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum != s.sum || !s.inStep {
		s.apply(objects, truncated)
		s.inStep, s.sum, s.objects = true, sum, objects
	}
	if s.opt.Window > 0 {
		objects, err := s.state.ListFailures(ctx)
		if err != nil {
			return err
		}
		s.failObjects = objects
		s.guard.SetSharedFailures(othersFailed(objects, s.opt.Owner, s.opt.Window, s.opt.Now()))
	}
	if now := s.opt.Now(); now.Sub(s.swept) >= sweepEvery {
		s.sweep(ctx)
		s.swept = now
	}
	return nil
}

// apply puts a new listing in force in the guard. An address whose ban
// was in force at the last listing and is gone from this one was lifted
// by an operator (bans are deleted only long after they end): it is lifted
// here too, this daemon's own ban of it included, unless this daemon has
// banned it again since and not written that yet.
func (s *Syncer) apply(objects []BanObject, truncated bool) {
	now := s.opt.Now()
	next := make(map[netip.Addr]guard.Ban, len(objects))
	bans := make([]guard.Ban, 0, len(objects))
	for _, o := range objects {
		if l, ok := next[o.Addr]; !ok || o.Until.After(l.Until) {
			next[o.Addr] = o.Ban
		}
		bans = append(bans, o.Ban)
	}
	changed := s.guard.SetShared(bans)
	if !truncated { // a truncated listing does not show what is gone
		s.mu.Lock()
		pending := make(map[netip.Addr]bool, len(s.pending))
		for a := range s.pending {
			pending[a] = true
		}
		s.mu.Unlock()
		for a, b := range s.known {
			if _, still := next[a]; !still && now.Before(b.Until) && !pending[a] {
				changed = s.guard.Lift(a) || changed
			}
		}
	}
	s.known = next
	if changed {
		s.opt.Changed()
	}
}

// sweep deletes the objects of bans that ended more than Retain ago. Every
// daemon does it, at most every sweepEvery; a delete of an object another
// daemon deleted first is no error.
func (s *Syncer) sweep(ctx context.Context) {
	cut := s.opt.Now().Add(-s.opt.Retain)
	for _, o := range s.objects {
		if o.Until.Before(cut) {
			if err := s.state.obj.Delete(ctx, o.Name, ""); err != nil {
				s.opt.Log.Debug("delete an ended ban", "addr", o.Addr.String(), "err", err)
			}
		}
	}
	// Counts whose latest failure left the window count for nobody.
	for _, o := range s.failObjects {
		if o.Age > s.opt.Window+time.Minute {
			if err := s.state.obj.Delete(ctx, o.Name, ""); err != nil {
				s.opt.Log.Debug("delete an old failure count", "addr", o.Addr.String(), "err", err)
			}
		}
	}
}

// flushFailures writes this daemon's changed counts, up to
// maxFailureWrites a round, and deletes the objects they replace.
func (s *Syncer) flushFailures(ctx context.Context) error {
	for _, f := range s.guard.TakeFailures() {
		s.pendingFail[f.Addr] = f
	}
	var firstErr error
	writes := 0
	for addr, f := range s.pendingFail {
		if writes == maxFailureWrites {
			break
		}
		name := ""
		if f.Count > 0 {
			writes++
			var err error
			if name, err = s.state.PutFailures(ctx, s.opt.Owner, f); err != nil {
				firstErr = cmp.Or(firstErr, err)
				continue
			}
		}
		if old := s.ownFail[addr]; old != "" && old != name {
			if err := s.state.obj.Delete(ctx, old, ""); err != nil {
				// Left for the sweep: it ages out of the window.
				s.opt.Log.Debug("delete a replaced failure count", "addr", addr.String(), "err", err)
			}
		}
		if name == "" {
			delete(s.ownFail, addr)
		} else {
			s.ownFail[addr] = name
		}
		delete(s.pendingFail, addr)
	}
	return firstErr
}

// report logs the bucket becoming unreachable (a warning, repeated every
// few minutes while it lasts) and reachable again.
func (s *Syncer) report(err error) {
	now := s.opt.Now()
	switch {
	case err != nil && (!s.failing || now.Sub(s.warned) >= warnEvery):
		s.opt.Log.Warn("shared ban set unreachable: logins go on with the bans last read, new bans wait to be written", "err", err)
		s.failing, s.warned = true, now
	case err == nil && s.failing:
		s.opt.Log.Info("shared ban set reachable again")
		s.failing = false
	}
}
