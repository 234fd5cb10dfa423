package s3store

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/syncbuf"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// The sweep aborts orphaned uploads once they are older than the lease
// of an upload in progress (a younger one may be another daemon's, about
// to be marked live) and partials once they expire, logging each; it
// leaves uploads in progress, fresh partials and everything outside the
// prefix alone.
func TestSweep(t *testing.T) {
	var now time.Time
	var mu sync.Mutex
	logs := &syncbuf.Buffer{}
	e := newEnv(t, func(_ *Config, o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		o.Log = slog.New(slog.NewTextHandler(logs, nil))
		o.PartialTTL = 24 * time.Hour
	})
	setNow := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	setNow(time.Now())
	ctx := testContext(t)

	// A partial with parts, and one of a tail alone.
	for i, size := range []int{6 << 20, 10} {
		u := mustCreate(t, e.home, "/partial"+strings.Repeat("x", i), vfs.CreateOptions{})
		writeOutOfOrder(t, u, randomBytes(t, size), 0, 32<<10, 4, false)
		if err := u.Abort(errBroken); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan under the prefix (a daemon that died mid-upload), and an
	// upload outside it.
	for _, key := range []string{e.prefix + "orphan", "elsewhere/upload"} {
		if _, err := e.raw.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	// An upload in progress, already multipart.
	live := mustCreate(t, e.home, "/live", vfs.CreateOptions{})
	liveData := randomBytes(t, 7<<20)
	writeOutOfOrder(t, live, liveData, 0, 32<<10, 4, false)

	n, err := e.b.Sweep(ctx)
	if err != nil || n != 0 {
		t.Fatalf("Sweep now: %d, %v; want nothing: the orphan is younger than the lease", n, err)
	}
	setNow(time.Now().Add(DefaultLeaseTimeout + time.Minute))
	n, err = e.b.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep after the lease: %d, %v; want the orphan alone", n, err)
	}
	if ups := e.uploads(t); len(ups) != 4 || hasString(ups, "orphan") {
		t.Errorf("after the first sweep: uploads %q", ups)
	}
	if !strings.Contains(logs.String(), "reason=orphaned") {
		t.Errorf("the orphan's abort was not logged: %s", logs)
	}

	// A day later both partials have expired; the live upload stands.
	setNow(time.Now().Add(25 * time.Hour))
	n, err = e.b.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep a day later: %d, %v; want the two partials", n, err)
	}
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 2 || len(recs) != 1 || !strings.Contains(recs[0], "/"+liveDir) {
		t.Errorf("after the expiry: uploads %q, records %q; want the live one (and its live record) and the one outside", ups, recs)
	}
	if c := strings.Count(logs.String(), "reason=expired"); c != 2 {
		t.Errorf("%d expiries logged; want 2:\n%s", c, logs)
	}
	if err := live.Commit(); err != nil {
		t.Fatalf("the live upload after two sweeps: %v", err)
	}
	got, _ := e.object(t, e.prefix+"live")
	equal(t, "live upload", got, liveData)

	// A record whose upload another tool aborted is deleted once expired.
	u := mustCreate(t, e.home, "/lost", vfs.CreateOptions{})
	if _, err := u.WriteAt([]byte("lost"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	r, err := e.b.headRecord(e.prefix + "lost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &e.bucket,
		Key: aws.String(e.prefix + "lost"), UploadId: &r.uploadID}); err != nil {
		t.Fatal(err)
	}
	setNow(time.Now().Add(48 * time.Hour))
	if _, err := e.b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if recs := e.records(t); len(recs) != 0 {
		t.Errorf("an expired record without its upload survived: %q", recs)
	}
}
