package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// bucketConfig is a config with users_dir in a bucket of srv.
func bucketConfig(t *testing.T, srv *s3test.Server, bucket string) *config.Config {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Storage.Backend = "s3"
	c.Storage.S3.Bucket, c.Storage.S3.Prefix = bucket, "homes/"
	c.Storage.S3.Region, c.Storage.S3.Endpoint, c.Storage.S3.PathStyle = srv.Region, srv.Endpoint, true
	c.Storage.S3.AccessKeyID, c.Storage.S3.SecretAccessKeyFile = srv.AccessKey, secret
	c.UsersDir = "s3://" + bucket + "/wharf/users"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// requests counts the S3 requests by operation, and fails those of the
// operation fail names.
type requests struct {
	s3test.Requests
	fail atomic.Value // string: an operation to fail
}

// failing makes requests of the operation r.fail names fail, as a store
// that errs does.
func (r *requests) failing() func(*s3.Options) {
	return func(o *s3.Options) {
		o.HTTPClient = failClient{next: o.HTTPClient, r: r}
		o.RetryMaxAttempts = 1
	}
}

type failClient struct {
	next s3.HTTPClient
	r    *requests
}

func (c failClient) Do(req *http.Request) (*http.Response, error) {
	if op, _ := c.r.fail.Load().(string); op != "" && awsmiddleware.GetOperationName(req.Context()) == op {
		return nil, errors.New("injected failure")
	}
	return c.next.Do(req)
}

// TestUsersBucketPoll: one listing per poll; objects are read only when
// the listing shows them new or changed, and a failed read publishes
// nothing.
func TestUsersBucketPoll(t *testing.T) {
	srv := s3test.Start(t)
	s3test.IsolateAWS(t)
	bucket := srv.NewBucket(t)
	cfg := bucketConfig(t, srv, bucket)
	store := srv.Client()
	ctx := context.Background()
	put := func(key, body string) {
		t.Helper()
		if _, err := store.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string) {
		t.Helper()
		if _, err := store.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}); err != nil {
			t.Fatal(err)
		}
	}
	user := func(name string) string { return "name: " + name + "\nhome: /" + name + "\n" }
	put("wharf/users/acme.yaml", user("acme"))
	put("wharf/users/beta.yaml", user("beta"))
	put("wharf/users/notes.txt", "not a user")
	put("wharf/users/old/gamma.yaml", user("gamma"))
	put("homes/acme/report.yaml", user("evil"))

	var reqs requests
	b, err := newUsersBucket(ctx, cfg, slog.New(slog.DiscardHandler), s3store.CountRequests(reqs.Count), reqs.failing())
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string, wantChanged bool, want map[string]int) {
		t.Helper()
		changed, err := b.poll(ctx)
		got := reqs.Take()
		if err != nil || changed != wantChanged || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: poll = %v, %v with requests %v; want %v, nil with %v", name, changed, err, got, wantChanged, want)
		}
	}
	has := func(name string, want map[string]string) {
		t.Helper()
		cur := b.current()
		got := map[string]string{}
		for n, d := range cur.Objects {
			got[n] = string(d)
		}
		if cur.URL != "s3://"+bucket+"/wharf/users/" || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: objects %s %v, want %v", name, cur.URL, got, want)
		}
	}

	step("first poll", true, map[string]int{"ListObjectsV2": 1, "GetObject": 2})
	has("first poll", map[string]string{"acme.yaml": user("acme"), "beta.yaml": user("beta")})
	for i := range 3 {
		step(fmt.Sprintf("unchanged poll %d", i), false, map[string]int{"ListObjectsV2": 1})
	}
	// The same bytes written again: the same ETag, nothing to read.
	put("wharf/users/acme.yaml", user("acme"))
	step("same bytes rewritten", false, map[string]int{"ListObjectsV2": 1})

	put("wharf/users/acme.yaml", user("acme")+"disabled: true\n")
	step("one object changed", true, map[string]int{"ListObjectsV2": 1, "GetObject": 1})
	has("one object changed", map[string]string{"acme.yaml": user("acme") + "disabled: true\n", "beta.yaml": user("beta")})
	put("wharf/users/notes2.txt", "still not a user")
	step("a non-user object added", false, map[string]int{"ListObjectsV2": 1})

	del("wharf/users/beta.yaml")
	step("one object removed", true, map[string]int{"ListObjectsV2": 1})
	has("one object removed", map[string]string{"acme.yaml": user("acme") + "disabled: true\n"})

	// A read that fails publishes nothing; the next poll reads only what
	// is still missing.
	before := b.current()
	put("wharf/users/delta.yaml", user("delta"))
	reqs.fail.Store("GetObject")
	if changed, err := b.poll(ctx); changed || err == nil || !strings.Contains(err.Error(), "delta.yaml") {
		t.Errorf("poll with failing reads = %v, %v; want an error naming delta.yaml", changed, err)
	}
	if b.current() != before {
		t.Error("a failed poll published a new set")
	}
	reqs.Take()
	reqs.fail.Store("ListObjectsV2")
	if changed, err := b.poll(ctx); changed || err == nil {
		t.Errorf("poll with a failing listing = %v, %v", changed, err)
	}
	reqs.Take()
	reqs.fail.Store("")
	step("after the failures", true, map[string]int{"ListObjectsV2": 1, "GetObject": 1})
	has("after the failures", map[string]string{"acme.yaml": user("acme") + "disabled: true\n", "delta.yaml": user("delta")})

	// Past 1,000 keys a listing takes a request per page: still no read.
	var body bytes.Buffer
	for i := range 1000 {
		body.Reset()
		fmt.Fprintf(&body, "name: u%04d\nhome: /u%04d\n", i, i)
		put(fmt.Sprintf("wharf/users/u%04d.yaml", i), body.String())
	}
	step("1,002 users, first poll", true, map[string]int{"ListObjectsV2": 2, "GetObject": 1000})
	step("1,002 users, unchanged", false, map[string]int{"ListObjectsV2": 2})
	if n := len(b.current().Objects); n != 1002 {
		t.Errorf("%d objects, want 1002", n)
	}
	start := time.Now()
	if _, err := b.poll(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("an unchanged poll of 1,002 user objects: %v, %v", time.Since(start).Round(time.Millisecond), reqs.Take())
}

// TestUsersBucketRun: run polls on its ticker and cues the watcher after
// a change only, and stops with its context.
func TestUsersBucketRun(t *testing.T) {
	srv := s3test.Start(t)
	s3test.IsolateAWS(t)
	bucket := srv.NewBucket(t)
	cfg := bucketConfig(t, srv, bucket)
	cfg.UsersPoll = 100 * time.Millisecond
	var reqs requests
	b, err := newUsersBucket(context.Background(), cfg, slog.New(slog.DiscardHandler), s3store.CountRequests(reqs.Count))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cues := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx, func() { cues <- struct{}{} })
	}()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(550 * time.Millisecond)
	if len(cues) != 0 {
		t.Errorf("%d cues for an empty folder", len(cues))
	}
	if n := reqs.Take(); n["GetObject"] != 0 || n["ListObjectsV2"] < 3 || n["ListObjectsV2"] > 6 {
		t.Errorf("requests in 550ms of 100ms polls: %v", n)
	}
	key := "wharf/users/acme.yaml"
	if _, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("name: acme\nhome: /acme\n")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cues:
	case <-time.After(5 * time.Second):
		t.Fatal("no cue within 5s of a new user object")
	}
	b.pollNow()
	time.Sleep(200 * time.Millisecond)
	if len(cues) != 0 {
		t.Errorf("a cue without a change")
	}
}
