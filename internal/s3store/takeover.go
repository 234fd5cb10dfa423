package s3store

import (
	"context"
	"math/rand/v2"
	"time"
)

// The running takeover of dead daemons' uploads.
//
// Recover, at start-up, makes the uploads of a daemon that died mid-upload
// their names' partials once their lease has expired. In a fleet whose
// daemons keep running, no daemon may start for hours after another was
// killed, and meanwhile the partner who reconnects through the balancer
// to a surviving daemon finds no partial to resume: `reput` fails with
// "not found", and a plain `put` sends the whole file again. So a running
// Backend repeats Recover's first case by itself: every LeaseTimeout/2 a
// pass lists the multipart uploads under the prefix and reads the live
// record of each upload that is not in progress here, and an upload whose
// heartbeat is older than LeaseTimeout becomes its name's partial as at
// start-up (the same code: recoverUploads and recoverUpload). A partner's
// resume point thus appears within LeaseTimeout + LeaseTimeout/2 of the
// dead daemon's last heartbeat, on every daemon.
//
// What a pass leaves alone: this daemon's uploads in progress (it knows
// them, and skips them without a request), an upload whose live record is
// fresh whoever its owner (at start-up a record of this daemon's own owner
// is a previous life's; while it runs, such a record not yet registered
// here is an upload being marked), and every upload without a live record
// (partials, orphans), whose aborts wait for the next start as before: a
// pass costs at most one ListMultipartUploads per 1,000 uploads under the
// prefix plus one HEAD per upload not this daemon's, and a takeover the
// requests of one at start-up (ListParts, HEAD, PUT and DELETE of
// records). Two daemons may take over one upload at about the same time
// (each pass runs at a random phase, so rarely): each writes the same
// partial record, and each counts and logs it.

// takeoverEvery is the interval between two passes of the takeover.
func (b *Backend) takeoverEvery() time.Duration { return max(b.o.LeaseTimeout/2, time.Millisecond) }

// StartTakeover starts the takeover of dead daemons' uploads: a pass every
// LeaseTimeout/2 (the first within that long of the call), by a goroutine
// that Close stops and waits for. The daemon calls it once its start-up
// Recover is done; a second call, or one after Close, does nothing. Each pass that recovered
// or aborted uploads reports them to Options.Recovered; a pass that
// failed is logged, and the next one tries again.
func (b *Backend) StartTakeover() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopTakeover != nil || b.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopTakeover = cancel
	b.background.Go(func() { b.takeoverLoop(ctx) })
}

// takeoverLoop runs a pass every takeoverEvery, the first at a random
// point of the first interval: daemons started together (a deployment's
// rollout) would otherwise pass at the same moments, and take each dead
// upload over twice.
func (b *Backend) takeoverLoop(ctx context.Context) {
	every := b.takeoverEvery()
	t := time.NewTimer(rand.N(every) + 1)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(every)
		recovered, aborted, err := b.takeover(ctx)
		if (recovered > 0 || aborted > 0) && b.o.Recovered != nil {
			b.o.Recovered(recovered, aborted)
		}
		if err != nil && ctx.Err() == nil {
			b.o.Log.Warn("s3: taking over the uploads of dead daemons", "recovered", recovered, "aborted", aborted, "err", err)
		}
	}
}

// takeover is one pass of the takeover.
func (b *Backend) takeover(ctx context.Context) (recovered, aborted int, err error) {
	return b.recoverUploads(ctx, true)
}
