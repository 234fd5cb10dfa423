package s3store

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// testLease is the lease of the takeover tests: short enough to wait for,
// long enough for a heartbeat of 200 ms on a busy machine.
const testLease = 3 * time.Second

// uploadOf returns the id of the one multipart upload of key.
func (e *env) uploadOf(t *testing.T, key string) string {
	t.Helper()
	out, err := e.raw.ListMultipartUploads(testContext(t), &s3.ListMultipartUploadsInput{Bucket: &e.bucket, Prefix: &key})
	if err != nil || len(out.Uploads) != 1 {
		t.Fatalf("the multipart uploads of %s: %v, %v; want one", key, out, err)
	}
	return aws.ToString(out.Uploads[0].UploadId)
}

// waitExpired waits until the live record of key's upload is older than
// the lease (with a second to spare for the store's second-grained
// dates).
func (e *env) waitExpired(t *testing.T, key string) {
	t.Helper()
	id := e.uploadOf(t, key)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lr, err := e.b.headLive(key, id)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(lr.beat) > testLease+time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the heartbeat of %s is still %v old", key, time.Since(lr.beat))
		}
	}
}

// One pass of the takeover, in a fleet of four daemons on one prefix:
// "running" (whose pass it is, with an upload in progress and a partial),
// "dead" (killed mid-upload), "busy" (alive, heartbeat running, an upload
// in progress). The pass costs one listing and one HEAD per upload not
// its own; it makes the dead daemon's upload a partial once its lease has
// expired, and nothing else: the others' uploads go on and complete, the
// partial stays, and a live record of its own owner that it does not
// know (an upload being marked) is left alone while it is fresh.
func TestTakeoverPass(t *testing.T) {
	running := newEnv(t, func(_ *Config, o *Options) {
		o.Owner, o.LeaseTimeout, o.LeaseRefresh = "running", testLease, time.Hour // no heartbeat in the counts
	})
	dead := running.another(t, func(_ *Config, o *Options) { o.Owner, o.LeaseTimeout = "dead", testLease })
	busy := running.another(t, func(_ *Config, o *Options) {
		o.Owner, o.LeaseTimeout, o.LeaseRefresh = "busy", testLease, 200*time.Millisecond
	})
	ctx := testContext(t)
	ownData, crashedData, busyData := randomBytes(t, 12<<20), randomBytes(t, 20<<20), randomBytes(t, 20<<20)
	own := startUpload(t, running.home, "/own", false, ownData[:6<<20], 0)
	kept := startUpload(t, running.home, "/kept", false, randomBytes(t, 6<<20), 0)
	if err := kept.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	startUpload(t, dead.home, "/crashed", false, crashedData[:12<<20], 0)
	dead.kill(t)
	killed := time.Now()
	busyUp := startUpload(t, busy.home, "/busy", false, busyData[:12<<20], 0)

	pass := func() (int, int, map[string]int) {
		t.Helper()
		running.count.reset()
		r, a, err := running.b.takeover(ctx)
		if err != nil {
			t.Fatalf("takeover: %v", err)
		}
		return r, a, running.count.requests()
	}

	// The lease of the dead daemon's upload has not expired: nothing
	// changes, for a listing and a HEAD of each of the three uploads not
	// this daemon's (the crashed, the busy, the partial's).
	r, a, reqs := pass()
	if r != 0 || a != 0 {
		t.Fatalf("a pass within the lease recovered %d, aborted %d", r, a)
	}
	if want := map[string]int{"ListMultipartUploads": 1, "live HEAD": 3}; !sameCounts(reqs, want) {
		t.Errorf("a pass with nothing to take over sent %v; want %v", reqs, want)
	}
	t.Logf("a pass over 4 uploads (1 this daemon's, 2 in progress elsewhere, 1 partial), nothing to take over: %v", reqs)

	running.waitExpired(t, running.prefix+"crashed")
	// An upload of this daemon's own owner whose live record was just
	// written but which is not registered yet, as goLive leaves it for a
	// moment: fresh, it is no previous life's.
	markingKey := running.prefix + "marking"
	out, err := running.raw.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &running.bucket, Key: &markingKey})
	if err != nil {
		t.Fatal(err)
	}
	markingID := aws.ToString(out.UploadId)
	if _, err := running.raw.UploadPart(ctx, &s3.UploadPartInput{Bucket: &running.bucket, Key: &markingKey, UploadId: &markingID,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(randomBytes(t, MinPartSize))}); err != nil {
		t.Fatal(err)
	}
	if err := running.b.putLive(ctx, &liveUpload{key: markingKey, id: markingID}); err != nil {
		t.Fatal(err)
	}

	r, a, reqs = pass()
	took := time.Since(killed)
	if r != 1 || a != 0 {
		t.Fatalf("the pass after the lease: recovered %d, aborted %d; want the crashed upload", r, a)
	}
	want := map[string]int{"ListMultipartUploads": 1, "live HEAD": 4, // the crashed, the busy, the partial's, the marking
		"ListParts": 1, "record HEAD": 1, "record PUT": 1, "live DELETE": 1} // the takeover of the crashed
	if !sameCounts(reqs, want) {
		t.Errorf("the pass that took over sent %v; want %v", reqs, want)
	}
	t.Logf("the pass that took over the dead upload (%v after the kill, lease %v): %v", took.Round(time.Millisecond), testLease, reqs)

	// Left alone: the fresh upload of this daemon's owner, the partial.
	if _, err := running.b.headLive(markingKey, markingID); err != nil {
		t.Errorf("the live record of the upload being marked: %v", err)
	}
	if _, err := running.b.headRecord(markingKey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the upload being marked has a partial record: %v", err)
	}
	if fi, err := running.home.(vfs.Resumer).Partial("/kept"); err != nil || fi.Size() != 6<<20 {
		t.Errorf("the partial after the pass: %v, %v", fi, err)
	}
	if _, err := running.raw.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &running.bucket,
		Key: &markingKey, UploadId: &markingID}); err != nil {
		t.Fatal(err)
	}
	if err := running.b.deleteLive(markingKey, markingID); err != nil {
		t.Fatal(err)
	}
	if err := running.home.Remove("/kept"); err != nil {
		t.Fatal(err)
	}

	// The uploads in progress go on and complete.
	for _, u := range []struct {
		e    *env
		up   vfs.Upload
		name string
		data []byte
		at   int64
	}{{running, own, "own", ownData, 6 << 20}, {busy, busyUp, "busy", busyData, 12 << 20}} {
		writeOutOfOrder(t, u.up, u.data[u.at:], u.at, 32<<10, 4, false)
		if err := u.up.Commit(); err != nil {
			t.Fatalf("%s after the takeover: %v", u.name, err)
		}
		got, _ := u.e.object(t, u.e.prefix+u.name)
		equal(t, u.name, got, u.data)
	}
	// The dead one resumes from its two full parts.
	resumeAndCheck(t, running, "/crashed", crashedData, 10<<20)
}

func sameCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// The takeover runs by itself once started: a daemon killed mid-upload
// has its upload made a partial by a running one within the lease and a
// pass interval, reported to Options.Recovered; Close stops it.
func TestTakeoverRunning(t *testing.T) {
	recovered := make(chan [2]int, 10)
	running := newEnv(t, func(_ *Config, o *Options) {
		o.Owner, o.LeaseTimeout = "running", testLease
		o.Recovered = func(r, a int) { recovered <- [2]int{r, a} }
	})
	running.b.StartTakeover()
	running.b.StartTakeover() // a second call starts nothing
	dead := running.another(t, func(_ *Config, o *Options) { o.Owner, o.LeaseTimeout = "dead", testLease })
	data := randomBytes(t, 20<<20)
	startUpload(t, dead.home, "/crashed", false, data[:12<<20], 0)
	dead.kill(t)
	killed := time.Now()

	// The lease, a pass interval, and time to spare.
	limit := testLease + running.b.takeoverEvery() + 10*time.Second
	select {
	case got := <-recovered:
		if got != [2]int{1, 0} {
			t.Fatalf("a pass reported %d recovered, %d aborted; want 1, 0", got[0], got[1])
		}
	case <-time.After(limit):
		t.Fatalf("no takeover %v after the kill", limit)
	}
	took := time.Since(killed)
	// The lease counts from the last heartbeat, up to a refresh before the
	// kill, as the store dates it: in whole seconds (versitygw).
	if early := testLease - dead.b.o.LeaseRefresh - time.Second; took < early {
		t.Errorf("taken over %v after the kill, within the lease of %v", took, testLease)
	}
	t.Logf("the dead daemon's upload taken over %v after the kill (lease %v, a pass every %v)",
		took.Round(time.Millisecond), testLease, running.b.takeoverEvery())
	resumeAndCheck(t, running, "/crashed", data, 10<<20)

	stopped := time.Now()
	if err := running.b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	running.count.reset()
	time.Sleep(2 * running.b.takeoverEvery())
	if n := running.count.requests()["ListMultipartUploads"]; n != 0 {
		t.Errorf("%d passes after Close", n)
	}
	select {
	case got := <-recovered:
		t.Errorf("another report %v", got)
	default:
	}
}

// upload_lease reaches the Backend as its lease and a heartbeat of a
// fifth of it, unless Options set them.
func TestUploadLease(t *testing.T) {
	isolateAWS(t)
	for _, tc := range []struct {
		lease, optTimeout, optRefresh time.Duration
		wantTimeout, wantRefresh      time.Duration
	}{
		{0, 0, 0, DefaultLeaseTimeout, time.Minute},
		{10 * time.Second, 0, 0, 10 * time.Second, 2 * time.Second},
		{10 * time.Second, 4 * time.Second, 0, 4 * time.Second, 800 * time.Millisecond},
		{10 * time.Second, 0, time.Second, 10 * time.Second, time.Second},
	} {
		cfg := DefaultConfig()
		cfg.Bucket, cfg.UploadLease = "abc", tc.lease
		b, err := NewBackend(testContext(t), cfg, Options{LeaseTimeout: tc.optTimeout, LeaseRefresh: tc.optRefresh})
		if err != nil {
			t.Fatal(err)
		}
		if b.o.LeaseTimeout != tc.wantTimeout || b.o.LeaseRefresh != tc.wantRefresh || b.takeoverEvery() != tc.wantTimeout/2 {
			t.Errorf("%+v: lease %v, refresh %v, takeover every %v; want %v, %v, %v", tc, b.o.LeaseTimeout, b.o.LeaseRefresh,
				b.takeoverEvery(), tc.wantTimeout, tc.wantRefresh, tc.wantTimeout/2)
		}
		b.Close()
	}
	cfg := DefaultConfig()
	cfg.Bucket, cfg.UploadLease = "abc", time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("an upload lease of 1s passed Validate")
	}
}
