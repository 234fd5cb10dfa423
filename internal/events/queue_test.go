package events

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Pushes waiting when the committer starts a transaction are committed
// together: one transaction (one fsync) for all of them, each push
// answered only once it is on disk.
func TestLocalQueueCommitsInGroups(t *testing.T) {
	q, err := openLocal(filepath.Join(t.TempDir(), QueueFile))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- q.Push([]string{"a", "b"}, nil, fmt.Appendf(nil, `{"id":"%d"}`, i)) })
	}
	waitFor(t, 10*time.Second, "every push to wait for the committer", func() bool { return len(q.pushes) == n })
	go q.commit()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := q.commits.Load(); c != 1 {
		t.Errorf("%d transactions for %d waiting pushes, want 1", c, n)
	}
	counts, err := q.counts()
	if err != nil || counts["a"] != n || counts["b"] != n {
		t.Errorf("counts %v (%v), want %d per hook", counts, err, n)
	}
	// Order within a hook is the order of the group.
	seen := map[string]bool{}
	for range n {
		d, ok, err := q.Next(context.Background(), "a")
		if err != nil || !ok {
			t.Fatalf("next: %v %v", ok, err)
		}
		if seen[string(d.Body)] {
			t.Fatalf("%s twice", d.Body)
		}
		seen[string(d.Body)] = true
		if err := q.Done(context.Background(), "a", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := q.Next(context.Background(), "a"); ok {
		t.Error("hook a not empty after every delivery was done")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// A push alone is committed at once: the committer never waits for
// company.
func TestLocalQueueLonePush(t *testing.T) {
	q, err := OpenLocal(filepath.Join(t.TempDir(), QueueFile))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 3 {
		if err := q.Push([]string{"a"}, nil, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if c := q.(*local).commits.Load(); c != uint64(i+1) {
			t.Fatalf("after push %d: %d transactions", i+1, c)
		}
	}
}

// BenchmarkLocalQueuePush measures a push as a session's CLOSE waits for
// it, with many sessions at once (go test -bench LocalQueue -cpu 1,16).
func BenchmarkLocalQueuePush(b *testing.B) {
	q, err := OpenLocal(filepath.Join(b.TempDir(), QueueFile))
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	body := []byte(`{"id":"0123456789abcdef0123456789abcdef","type":"upload","user":"acme","path":"/inbox/order-1.edi","outcome":"ok"}`)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Push([]string{"h"}, nil, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(q.(*local).commits.Load()), "pushes/commit")
}
