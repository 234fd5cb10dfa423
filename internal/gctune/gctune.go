// Package gctune paces Go's garbage collector for a file server.
//
// A transfer allocates a fresh buffer for every packet (x/crypto's SSH
// reader, pkg/sftp's request decoder), while the live heap stays a few
// MiB: with GOGC=100 the collector then runs every few MiB moved, and the
// memory it frees is handed back to the kernel and faulted in again. The
// allocation is the libraries'; the pace is ours. Measured on a 1 GiB
// upload, GOGC=400 cut the server's CPU per GB by a third.
//
// A fixed high GOGC would also multiply the heap of a daemon holding
// thousands of sessions, where the live heap is hundreds of MiB. So the
// policy is a floor on the headroom instead: the heap may grow at least
// MinHeadroom above the live heap, and by GOGC=100's proportion when
// that is more. It is what a "minimum heap size" would do (golang/go#42430).
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy is the headroom the collector is given.
type Policy struct {
	// MinHeadroom is the least the heap may grow above the live heap
	// before a collection.
	MinHeadroom uint64
	// MaxPercent bounds GOGC when the live heap is tiny (at start).
	MaxPercent int
	// Interval is how often the live heap is read.
	Interval time.Duration
}

// Default gives a daemon 64 MiB of headroom, read every 100 ms: a small VM
// keeps its memory for the page cache, and transfers still collect rarely
// (the SSH path's live heap is a few MiB, so GOGC stays near its cap).
// The step is short because the live heap can jump: an s3 upload's part
// buffers take it from a few MiB to 85 MB within a second, and with GOGC
// still at the idle heap's 1000 the next goal is ten times that. At 128
// MiB and one second a 1 GiB s3 upload grew RSS by 230-245 MiB; at 64 MiB
// and 100 ms by 143-146 (make bench, same machine, same hour).
var Default = Policy{MinHeadroom: 64 << 20, MaxPercent: 1000, Interval: 100 * time.Millisecond}

// Percent is the GOGC that gives live bytes of live heap the policy's
// headroom.
func (p Policy) Percent(live uint64) int {
	const base = 100 // GOGC's default: the heap may double
	if live == 0 {
		return p.MaxPercent
	}
	pct := p.MinHeadroom * 100 / live
	if pct > uint64(p.MaxPercent) {
		return p.MaxPercent
	}
	return max(int(pct), base)
}

// Run sets GOGC by the policy until ctx ends. An operator's GOGC in the
// environment wins: pass explicit as true and Run returns at once.
func (p Policy) Run(ctx context.Context, explicit bool, log *slog.Logger) {
	if explicit {
		log.Info("gc pacing", "policy", "GOGC from the environment")
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := -1
	apply := func() {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		// Small moves are left alone: each SetGCPercent call makes the
		// runtime recompute its pacing.
		if pct := p.Percent(live); current < 0 || pct < current*9/10 || pct > current*11/10 {
			debug.SetGCPercent(pct)
			current = pct
		}
	}
	apply()
	log.Info("gc pacing", "policy", "headroom floor", "min_headroom_mib", p.MinHeadroom>>20, "gogc", current)
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			apply()
		}
	}
}
