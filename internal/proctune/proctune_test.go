package proctune

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestWant(t *testing.T) {
	p := Policy{BusyShare: 0.75}
	for _, c := range []struct {
		name       string
		s          Sample
		cur, limit int
		want       int
	}{
		{"idle daemon", Sample{Own: 0, Free: 4}, 4, 4, 1},
		{"one session, client on the other core", Sample{Own: 0.95, Free: 0.3}, 1, 2, 1},
		{"one session, idle machine", Sample{Own: 0.95, Free: 1}, 1, 2, 2},
		{"small files, half a core", Sample{Own: 0.6, Free: 1}, 2, 2, 1},
		{"busy daemon, busy machine", Sample{Own: 2, Free: 0}, 2, 2, 2},
		{"three cores wanted, limit two", Sample{Own: 2.2, Free: 6}, 2, 2, 2},
		{"half a core idle counts", Sample{Own: 1, Free: 0.5}, 2, 4, 2},
		{"less than half does not", Sample{Own: 1, Free: 0.4}, 2, 4, 1},
		{"never below one", Sample{Own: 0, Free: 0}, 1, 8, 1},
		{"busy, not saturated: three-quarters each", Sample{Own: 3, Free: 60}, 4, 64, 4},
		{"saturated: all the room at once", Sample{Own: 0.95, Free: 63}, 1, 64, 64},
		{"saturated, room for three", Sample{Own: 1.9, Free: 1.2}, 2, 8, 3},
	} {
		if got := p.Want(c.s, c.cur, c.limit); got != c.want {
			t.Errorf("%s: Want(%+v, %d, %d) = %d, want %d", c.name, c.s, c.cur, c.limit, got, c.want)
		}
	}
}

func TestStateRaisesAtOnceLowersWhenIntervalsAgree(t *testing.T) {
	st := state{cur: 4}
	for i, c := range []struct{ want, cur int }{
		{1, 4}, {2, 4}, {1, 2}, // three lower in a row: the most of them
		{3, 3},         // up at once
		{1, 3}, {3, 3}, // a lower interval, then one that agrees: streak reset
		{1, 3}, {1, 3}, {1, 1},
		{1, 1}, {2, 2},
	} {
		if got := st.next(c.want, 3); got != c.cur {
			t.Fatalf("step %d: wanted %d, count %d, want %d", i, c.want, got, c.cur)
		}
	}
}

const stat = `cpu  100 5 50 800 20 1 2 3 7 0
cpu0 50 2 25 400 10 1 1 2 4 0
cpu1 50 3 25 400 10 0 1 1 3 0
intr 12345 1 2 3
ctxt 99
`

func TestParseStat(t *testing.T) {
	idle, total, cpus, err := parseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// Guest time (7) is inside user already: not added again.
	if idle != 820 || total != 981 || cpus != 2 {
		t.Fatalf("idle %d, total %d, cpus %d; want 820, 981, 2", idle, total, cpus)
	}
	for _, bad := range []string{
		"",
		"intr 1 2 3\n",
		"cpu  1 2 3\ncpu0 1 2 3 4 5\n",
		"cpu  1 2 x 4 5\ncpu0 1 2 3 4 5\n",
		"cpu  1 2 3 4 5\n",
	} {
		if _, _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestSince(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c0 := clock{wall: t0, own: time.Second, idle: 100, total: 400, cpus: 2}
	c1 := clock{wall: t0.Add(2 * time.Second), own: 2 * time.Second, idle: 300, total: 800, cpus: 2}
	s, ok := c1.since(c0)
	if !ok || s.Own != 0.5 || s.Free != 1 {
		t.Fatalf("since = %+v, %v; want Own 0.5, Free 1", s, ok)
	}
	if _, ok := c0.since(c0); ok {
		t.Error("an empty interval measured something")
	}
}

func TestRunFollowsAnIdleProcessDownAndRestores(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(orig)
	const limit = 2 // even on a one-CPU machine: the policy caps at the count it finds
	runtime.GOMAXPROCS(limit)

	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	Default.Run(context.Background(), true, log)
	if got := runtime.GOMAXPROCS(0); got != limit {
		t.Fatalf("with GOMAXPROCS in the environment the count changed to %d", got)
	}
	if !strings.Contains(logs.String(), "GOMAXPROCS from the environment") {
		t.Errorf("log does not say the environment decides:\n%s", logs.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Policy{BusyShare: 0.75, Interval: 20 * time.Millisecond, DownAfter: 2}.Run(ctx, false, log)
	}()
	// This test process uses far less than three quarters of a core while
	// it waits: the policy wants one processor whatever else the machine
	// runs.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS still %d after 10 s of an idle process; log:\n%s", runtime.GOMAXPROCS(0), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != limit {
		t.Fatalf("after Run ended GOMAXPROCS is %d, want %d restored", got, limit)
	}
}
