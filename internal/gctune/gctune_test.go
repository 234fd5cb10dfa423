package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	p := Policy{MinHeadroom: 128 << 20, MaxPercent: 1000}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 1000},              // nothing measured yet: the cap
		{4 << 20, 1000},        // 128 MiB over 4 MiB is 3200%: capped
		{32 << 20, 400},        // 128 MiB of headroom over 32 MiB live
		{128 << 20, 100},       // the floor meets GOGC's own doubling
		{1 << 30, 100},         // thousands of sessions: never below the default
		{(128 << 20) / 3, 300}, // integer division rounds down
	} {
		if got := p.Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// gcPercent reads the current GOGC (SetGCPercent returns the old value).
func gcPercent() int {
	old := debug.SetGCPercent(100)
	debug.SetGCPercent(old)
	return old
}

func TestRunSetsAndRespectsTheEnvironment(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	log := slog.New(slog.DiscardHandler)

	debug.SetGCPercent(100)
	Policy{MinHeadroom: 1 << 40, MaxPercent: 777, Interval: time.Hour}.Run(context.Background(), true, log)
	if got := gcPercent(); got != 100 {
		t.Fatalf("with GOGC in the environment the policy changed GOGC to %d", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A headroom far above any live heap: the cap applies at once.
		Policy{MinHeadroom: 1 << 40, MaxPercent: 777, Interval: 10 * time.Millisecond}.Run(ctx, false, log)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for gcPercent() != 777 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want 777", gcPercent())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
