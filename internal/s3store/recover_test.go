package s3store

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// kill stops e's Backend as a SIGKILL would stop its daemon: uploads in
// progress are neither committed nor aborted, their live records stay,
// and nothing of it reaches the bucket any more (every request fails,
// and the heartbeat stops).
func (e *env) kill(t *testing.T) {
	t.Helper()
	e.count.failWhen(func(*http.Request) bool { return true })
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
}

// sent waits until every part u has started is in the bucket.
func sent(u vfs.Upload) { u.(*Upload).wg.Wait() }

// startUpload writes data into a new upload of name (Continue as said),
// in order from base by 4 workers, and waits for the parts it sent.
func startUpload(t *testing.T, st vfs.Store, name string, cont bool, data []byte, base int64) vfs.Upload {
	t.Helper()
	u := mustCreate(t, st, name, vfs.CreateOptions{Continue: cont})
	writeOutOfOrder(t, u, data, base, 32<<10, 4, false)
	sent(u)
	return u
}

// resumeAndCheck checks that name's partial holds want bytes, continues
// it with the rest of data, and checks the object and that nothing is
// left: no multipart upload, no record (partial or live).
func resumeAndCheck(t *testing.T, e *env, name string, data []byte, want int64) {
	t.Helper()
	fi, err := e.home.(vfs.Resumer).Partial(name)
	if err != nil || fi.Size() != want {
		t.Fatalf("Partial %s: %v, %v; want %d bytes", name, fi, err, want)
	}
	u := mustCreate(t, e.home, name, vfs.CreateOptions{Continue: true})
	writeOutOfOrder(t, u, data[want:], want, 32<<10, 4, true)
	if err := u.Commit(); err != nil {
		t.Fatalf("Commit of the resumed %s: %v", name, err)
	}
	got, _ := e.object(t, e.prefix+name[1:])
	equal(t, "resumed "+name, got, data)
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}
}

func mustRecover(t *testing.T, e *env, wantRecovered, wantAborted int) {
	t.Helper()
	r, a, err := e.b.Recover(testContext(t))
	if err != nil || r != wantRecovered || a != wantAborted {
		t.Fatalf("Recover: %d recovered, %d aborted, %v; want %d, %d", r, a, err, wantRecovered, wantAborted)
	}
}

// A daemon killed mid-upload leaves the resume point: restarted (the same
// host and state_dir, so the same owner), its start-up makes the upload
// the name's partial, the size of the full parts the bucket received, and
// the client's resume completes it byte for byte.
func TestRecoverKilledUpload(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before, if set, prepares the name (with the killed daemon's
		// Backend) and returns the offset the killed upload continues from
		// (0: a fresh upload).
		before func(t *testing.T, e *env, data []byte) int64
		upTo   int   // what the killed upload had written
		want   int64 // the partial recovered
	}{
		{name: "fresh upload", upTo: 16 << 20, want: 15 << 20},
		{name: "resumed partial", upTo: 22 << 20, want: 20 << 20,
			before: func(t *testing.T, e *env, data []byte) int64 {
				// A partial of one part and a 2 MiB tail, which the killed
				// daemon was continuing.
				u := startUpload(t, e.home, "/big", false, data[:7<<20], 0)
				if err := u.Abort(errBroken); err != nil {
					t.Fatal(err)
				}
				return 7 << 20
			}},
		{name: "replaces an older partial", upTo: 12 << 20, want: 10 << 20,
			before: func(t *testing.T, e *env, _ []byte) int64 {
				// A partial of other bytes, older than the killed upload.
				u := startUpload(t, e.home, "/big", false, randomBytes(t, 1000), 0)
				if err := u.Abort(errBroken); err != nil {
					t.Fatal(err)
				}
				return 0
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir() // the daemon's state_dir/s3-spool
			sameDaemon := func(_ *Config, o *Options) { o.SpoolDir = spool }
			e := newEnv(t, sameDaemon)
			data := randomBytes(t, 30<<20)
			var base int64
			if tc.before != nil {
				base = tc.before(t, e, data)
			}
			startUpload(t, e.home, "/big", base > 0, data[base:tc.upTo], base)
			e.kill(t)
			if _, ok := e.object(t, e.prefix+"big"); ok {
				t.Fatal("an object under the name after the kill")
			}

			e2 := e.another(t, sameDaemon)
			if e2.b.owner != e.b.owner {
				t.Fatalf("the restarted daemon is another owner: %q, %q", e2.b.owner, e.b.owner)
			}
			mustRecover(t, e2, 1, 0)
			resumeAndCheck(t, e2, "/big", data, tc.want)
		})
	}
}

// What a dead upload leaves is the run of parts of 5 MiB or more from
// part 1 without a gap; an upload without one is aborted.
func TestRecoverParts(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name          string
		parts         map[int32]int // part number: size
		want          int64         // the partial; 0: aborted
		wantRecovered int
	}{
		{"a gap", map[int32]int{1: 5 * mib, 3: 5 * mib}, 5 * mib, 1},
		{"a small last part", map[int32]int{1: 5 * mib, 2: 6 * mib, 3: 100}, 11 * mib, 1},
		{"no full part", map[int32]int{1: 100}, 0, 0},
		{"no part", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := testContext(t)
			key := e.prefix + "f"
			data := randomBytes(t, 20*mib)
			out, err := e.raw.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: &key})
			if err != nil {
				t.Fatal(err)
			}
			id := aws.ToString(out.UploadId)
			var nums []int32
			for n := range tc.parts {
				nums = append(nums, n)
			}
			sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
			off := 0
			for _, n := range nums {
				// Part n holds data from where the parts before it end, as
				// an upload's parts would.
				if _, err := e.raw.UploadPart(ctx, &s3.UploadPartInput{Bucket: &e.bucket, Key: &key, UploadId: &id,
					PartNumber: aws.Int32(n), Body: bytes.NewReader(data[off : off+tc.parts[n]])}); err != nil {
					t.Fatal(err)
				}
				off += tc.parts[n]
			}
			// Marked live by this Backend's owner: a previous life's.
			if err := e.b.putLive(ctx, &liveUpload{key: key, id: id}); err != nil {
				t.Fatal(err)
			}
			mustRecover(t, e, tc.wantRecovered, 1-tc.wantRecovered)
			if tc.want == 0 {
				if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
					t.Errorf("left: uploads %q, records %q", ups, recs)
				}
				if _, err := e.home.(vfs.Resumer).Partial("/f"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Partial: %v; want ErrNotExist", err)
				}
				return
			}
			resumeAndCheck(t, e, "/f", data, tc.want)
		})
	}
}

// Several daemons on one prefix: a starting daemon leaves alone the
// uploads of another whose heartbeat is fresh, however long they have
// run, and recovers those of a daemon whose heartbeat stopped once the
// lease has expired.
func TestRecoverFleet(t *testing.T) {
	alive := newEnv(t, func(_ *Config, o *Options) { o.Owner, o.LeaseRefresh = "alive", 200*time.Millisecond })
	dead := alive.another(t, func(_ *Config, o *Options) { o.Owner = "dead" })
	busyData, crashedData := randomBytes(t, 20<<20), randomBytes(t, 20<<20)
	busy := startUpload(t, alive.home, "/busy", false, busyData[:12<<20], 0)
	startUpload(t, dead.home, "/crashed", false, crashedData[:12<<20], 0)
	dead.kill(t)

	// With the default lease of 5 minutes both are in progress.
	mustRecover(t, alive.another(t, func(_ *Config, o *Options) { o.Owner = "first" }), 0, 0)

	// With a lease of 3 s, once the dead daemon's heartbeat is older than
	// that: the dead one's upload is recovered, the live one is not,
	// although it began before as well.
	const lease = 3 * time.Second
	crashedKey := alive.prefix + "crashed"
	ups, err := alive.raw.ListMultipartUploads(testContext(t), &s3.ListMultipartUploadsInput{Bucket: &alive.bucket, Prefix: &crashedKey})
	if err != nil || len(ups.Uploads) != 1 {
		t.Fatalf("the crashed upload: %v, %v", ups, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lr, err := alive.b.headLive(crashedKey, aws.ToString(ups.Uploads[0].UploadId))
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(lr.beat) > lease+time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead daemon's heartbeat is still %v old", time.Since(lr.beat))
		}
	}
	started := alive.another(t, func(_ *Config, o *Options) { o.Owner, o.LeaseTimeout = "second", lease })
	mustRecover(t, started, 1, 0)
	if n := alive.count.requests()["live PUT"]; n < 3 {
		t.Errorf("%d writes of the live upload's record; want its creation and heartbeats", n)
	}

	// The live upload goes on and completes; the crashed one resumes on
	// the started daemon.
	writeOutOfOrder(t, busy, busyData[12<<20:], 12<<20, 32<<10, 4, false)
	if err := busy.Commit(); err != nil {
		t.Fatalf("the live upload after another daemon's start: %v", err)
	}
	got, _ := alive.object(t, alive.prefix+"busy")
	equal(t, "the live upload", got, busyData)
	resumeAndCheck(t, started, "/crashed", crashedData, 10<<20)
}

// A dead upload whose last heartbeat is older than the partials' TTL is
// aborted, not recovered.
func TestRecoverExpired(t *testing.T) {
	e := newEnv(t)
	startUpload(t, e.home, "/old", false, randomBytes(t, 12<<20), 0)
	e.kill(t)
	later := e.another(t, func(_ *Config, o *Options) {
		o.PartialTTL = 24 * time.Hour
		o.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	})
	mustRecover(t, later, 0, 1)
	if ups, recs := e.uploads(t), e.records(t); len(ups) != 0 || len(recs) != 0 {
		t.Errorf("left: uploads %q, records %q", ups, recs)
	}
	if _, err := later.home.(vfs.Resumer).Partial("/old"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Partial: %v; want ErrNotExist", err)
	}
}

// What marking uploads live costs: nothing for a file of one PutObject;
// one PUT and one DELETE of its live record for a multipart upload,
// whatever its number of parts; one PUT a LeaseRefresh while it lasts,
// all uploads in one pass. No heartbeat writes a record back once its
// upload has ended.
func TestLiveRequests(t *testing.T) {
	e := newEnv(t, func(_ *Config, o *Options) { o.LeaseRefresh = time.Hour }) // beats by hand below
	live := func() (int, int) {
		r := e.count.requests()
		return r["live PUT"], r["live DELETE"]
	}
	for _, tc := range []struct {
		size            int
		wantPut, wantDe int
	}{
		{100, 0, 0},
		{MinPartSize - 1, 0, 0},
		{40 << 20, 1, 1},
	} {
		e.count.reset()
		u := mustCreate(t, e.home, "/f", vfs.CreateOptions{})
		writeOutOfOrder(t, u, randomBytes(t, tc.size), 0, 32<<10, 4, false)
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
		p, d := live()
		if p != tc.wantPut || d != tc.wantDe {
			t.Errorf("%d bytes: %d PUTs and %d DELETEs of a live record; want %d, %d", tc.size, p, d, tc.wantPut, tc.wantDe)
		}
		r := e.count.requests()
		total := 0
		var ops []string
		for op, n := range r {
			total += n
			ops = append(ops, op+"="+strconv.Itoa(n))
		}
		sort.Strings(ops)
		t.Logf("%d bytes: %d requests: %s", tc.size, total, strings.Join(ops, " "))
	}

	// Two uploads in progress: a beat rewrites both records (once they are
	// half a refresh old), and none once they have ended.
	ctx := testContext(t)
	var ups []vfs.Upload
	for _, name := range []string{"/a", "/b"} {
		ups = append(ups, startUpload(t, e.home, name, false, randomBytes(t, 6<<20), 0))
	}
	e.count.reset()
	if n := e.b.beat(ctx); n != 0 {
		t.Errorf("a beat right after the records were written rewrote %d", n)
	}
	e.b.mu.Lock()
	for _, lu := range e.b.live {
		lu.mu.Lock()
		lu.beat = lu.beat.Add(-time.Hour) // as if a refresh had passed
		lu.mu.Unlock()
	}
	e.b.mu.Unlock()
	if n := e.b.beat(ctx); n != 2 {
		t.Errorf("a beat rewrote %d records; want 2", n)
	}
	for _, u := range ups {
		if err := u.Abort(vfs.ErrDetached); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.b.beat(ctx); n != 0 {
		t.Errorf("a beat after the uploads ended rewrote %d records", n)
	}
	if p, d := live(); p != 2 || d != 2 {
		t.Errorf("%d PUTs and %d DELETEs of live records; want the two beats and the two ends", p, d)
	}
	if recs := e.records(t); len(recs) != 0 {
		t.Errorf("records left: %q", recs)
	}
}

// The heartbeat runs on its own while uploads are in progress, and Close
// stops it.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t, func(_ *Config, o *Options) { o.LeaseRefresh = 50 * time.Millisecond })
	u := startUpload(t, e.home, "/f", false, randomBytes(t, 6<<20), 0)
	for deadline := time.Now().Add(20 * time.Second); e.count.requests()["live PUT"] < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes of the live record in 20 s; want the heartbeat's", e.count.requests()["live PUT"])
		}
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if recs := e.records(t); len(recs) != 0 {
		t.Errorf("records left: %q", recs)
	}
}

// A broken upload whose partial's record cannot be written (the bucket
// failing then) keeps its live record, so that the daemon's next start
// recovers its parts.
func TestRecoverUnrecordedPartial(t *testing.T) {
	spool := t.TempDir()
	sameDaemon := func(_ *Config, o *Options) { o.SpoolDir = spool }
	e := newEnv(t, sameDaemon, noRetries)
	data := randomBytes(t, 20<<20)
	u := startUpload(t, e.home, "/f", false, data[:12<<20], 0)
	e.count.failWhen(func(r *http.Request) bool { return opOf(r) == "record PUT" })
	if err := u.Abort(errBroken); err == nil {
		t.Fatal("Abort kept the partial through a failing bucket")
	}
	e.count.failWhen(nil)
	if recs := e.records(t); len(recs) != 1 || !strings.Contains(recs[0], "/"+liveDir) {
		t.Fatalf("records %q; want the upload's live record alone", recs)
	}
	e2 := e.another(t, sameDaemon)
	mustRecover(t, e2, 1, 0)
	resumeAndCheck(t, e2, "/f", data, 10<<20)
}

// A resume that fails for a passing reason (listing the partial's parts)
// loses nothing: the partial is there for the next attempt.
func TestResumeTransientFailureKeepsPartial(t *testing.T) {
	e := newEnv(t, noRetries)
	data := randomBytes(t, 20<<20)
	u := startUpload(t, e.home, "/f", false, data[:12<<20], 0)
	if err := u.Abort(errBroken); err != nil {
		t.Fatal(err)
	}
	e.count.failWhen(func(r *http.Request) bool { return opOf(r) == "ListParts" })
	if _, err := e.home.Create("/f", vfs.CreateOptions{Continue: true}); err == nil {
		t.Fatal("the resume succeeded without listing the parts")
	}
	e.count.failWhen(nil)
	resumeAndCheck(t, e, "/f", data, 12<<20)
}
