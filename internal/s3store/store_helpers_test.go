package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/s3test"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// env is a Backend on a fresh bucket of a real versitygw, the home
// "/alice" on it, and what a test needs to look behind the store.
type env struct {
	srv    *s3test.Server
	bucket string
	raw    *s3.Client // independent of the code under test
	b      *Backend
	home   vfs.Store
	prefix string // the home's key prefix
	count  *counter
}

type envOption func(*Config, *Options)

// newEnv starts versitygw and a Backend with 5 MiB parts, 3 in flight,
// the prefix "wharf", a spool in t.TempDir() and o applied.
func newEnv(t *testing.T, o ...envOption) *env {
	t.Helper()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	isolateAWS(t)
	machineBundle(t)
	return newEnvOn(t, srv, bucket, o...)
}

// another is a second Backend on e's bucket, as newEnv builds one: another
// daemon on the same prefix, or this one restarted.
func (e *env) another(t *testing.T, o ...envOption) *env {
	t.Helper()
	return newEnvOn(t, e.srv, e.bucket, o...)
}

func newEnvOn(t *testing.T, srv *s3test.Server, bucket string, o ...envOption) *env {
	t.Helper()
	cfg := serverConfig(t, srv, bucket)
	cfg.PartSize, cfg.UploadConcurrency, cfg.Prefix = MinPartSize, 3, "wharf"
	c := &counter{}
	opts := Options{SpoolDir: t.TempDir(), Client: []func(*s3.Options){c.install}}
	for _, f := range o {
		f(&cfg, &opts)
	}
	b, err := NewBackend(testContext(t), cfg, opts)
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	home, err := b.Home("/alice")
	if err != nil {
		t.Fatalf("Home: %v", err)
	}
	t.Cleanup(func() { home.Close() })
	return &env{srv: srv, bucket: bucket, raw: srv.Client(), b: b, home: home, prefix: "wharf/alice/", count: c}
}

// counter counts the bytes of successful response bodies to GETs of
// objects (not listings, not partial records), as they cross the client's
// HTTP client.
type counter struct {
	inner    s3.HTTPClient
	getBytes atomic.Int64
	mu       sync.Mutex
	gets     []string // paths of GETs of objects
	// fail, when set, makes each request it returns true for fail as a
	// dropped connection would, before it reaches the store.
	fail func(*http.Request) bool
	// rewrite, when set, replaces the body of each successful response
	// (a store answering what versitygw cannot).
	rewrite func(*http.Request, []byte) []byte
	ops     map[string]int // requests sent, by opOf
}

// opOf names what a request does, for counting: an S3 operation, or a
// method on a record ("live PUT": a live record's write).
func opOf(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case strings.Contains(r.URL.Path, "/"+recordsDir+"/"+liveDir):
		return "live " + r.Method
	case strings.Contains(r.URL.Path, "/"+recordsDir+"/"):
		return "record " + r.Method
	case q.Has("uploads") && r.Method == http.MethodPost:
		return "CreateMultipartUpload"
	case q.Has("uploads"):
		return "ListMultipartUploads"
	case q.Has("uploadId") && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return "UploadPartCopy"
	case q.Has("uploadId") && r.Method == http.MethodPut:
		return "UploadPart"
	case q.Has("uploadId") && r.Method == http.MethodPost:
		return "CompleteMultipartUpload"
	case q.Has("uploadId") && r.Method == http.MethodDelete:
		return "AbortMultipartUpload"
	case q.Has("uploadId"):
		return "ListParts"
	case q.Has("list-type"):
		return "ListObjectsV2"
	}
	return r.Method + " object"
}

// requests returns the requests sent since the last reset, by opOf.
func (c *counter) requests() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.ops))
	for k, v := range c.ops {
		m[k] = v
	}
	return m
}

func (c *counter) rewriteWith(f func(*http.Request, []byte) []byte) {
	c.mu.Lock()
	c.rewrite = f
	c.mu.Unlock()
}

func (c *counter) failWhen(f func(*http.Request) bool) {
	c.mu.Lock()
	c.fail = f
	c.mu.Unlock()
}

func (c *counter) install(o *s3.Options) {
	c.inner = o.HTTPClient
	o.HTTPClient = c
}

func (c *counter) Do(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	fail, rewrite := c.fail, c.rewrite
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[opOf(r)]++
	c.mu.Unlock()
	if fail != nil && fail(r) {
		return nil, errors.New("injected: connection reset")
	}
	resp, err := c.inner.Do(r)
	if err == nil && rewrite != nil && resp.StatusCode < 300 {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		body = rewrite(r, body)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Del("Content-Length")
	}
	if err == nil && r.Method == http.MethodGet && resp.StatusCode < 300 &&
		!strings.Contains(r.URL.Path, "/"+recordsDir+"/") && !r.URL.Query().Has("list-type") &&
		!r.URL.Query().Has("uploads") && !r.URL.Query().Has("uploadId") {
		c.mu.Lock()
		c.gets = append(c.gets, r.URL.Path)
		c.mu.Unlock()
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.getBytes}
	}
	return resp, err
}

func (c *counter) reset() {
	c.getBytes.Store(0)
	c.mu.Lock()
	c.gets, c.ops = nil, nil
	c.mu.Unlock()
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// object returns the object key's content, or nil and false if there is
// none.
func (e *env) object(t *testing.T, key string) ([]byte, bool) {
	t.Helper()
	ctx := testContext(t)
	out, err := e.raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: &key})
	if err != nil {
		if code, _ := apiCode(err); code == "NoSuchKey" {
			return nil, false
		}
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func (e *env) putRaw(t *testing.T, key string, body []byte) {
	t.Helper()
	put(testContext(t), t, e.raw, e.bucket, key, body)
}

// uploads lists the multipart uploads in the bucket.
func (e *env) uploads(t *testing.T) []string {
	t.Helper()
	out, err := e.raw.ListMultipartUploads(testContext(t), &s3.ListMultipartUploadsInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// records lists the records in the bucket: partials' and live ones.
func (e *env) records(t *testing.T) []string {
	t.Helper()
	out, err := e.raw.ListObjectsV2(testContext(t), &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String(e.b.records)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// writeOutOfOrder writes data into u from offset base as pkg/sftp's
// workers do: chunks of chunk bytes taken in order from a queue by
// workers goroutines, so they land slightly out of order; with shuffle,
// the queue itself is shuffled within runs of 64 chunks (OpenSSH's
// requests in flight), as a reordering network path would.
func writeOutOfOrder(t *testing.T, u vfs.Upload, data []byte, base int64, chunk, workers int, shuffle bool) {
	t.Helper()
	var offs []int64
	for o := 0; o < len(data); o += chunk {
		offs = append(offs, int64(o))
	}
	if shuffle {
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < len(offs); i += 64 {
			run := offs[i:min(i+64, len(offs))]
			r.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		}
	}
	queue := make(chan int64)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for o := range queue {
				end := min(o+int64(chunk), int64(len(data)))
				if n, err := u.WriteAt(data[o:end], base+o); err != nil || n != int(end-o) {
					errs <- errors.Join(err, errors.New("short write"))
					return
				}
			}
		})
	}
	for _, o := range offs {
		queue <- o
	}
	close(queue)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("WriteAt: %v", err)
	}
}

// readAll reads name through the store: Open from 0 and Read to the end.
func readAll(t *testing.T, st vfs.Store, name string) []byte {
	t.Helper()
	f, err := st.Open(name, 0)
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func mustCreate(t *testing.T, st vfs.Store, name string, o vfs.CreateOptions) vfs.Upload {
	t.Helper()
	u, err := st.Create(name, o)
	if err != nil {
		t.Fatalf("Create %s %+v: %v", name, o, err)
	}
	return u
}

// listNames lists name through the store, n entries at a time.
func listNames(t *testing.T, st vfs.Store, name string, n int) []string {
	t.Helper()
	l, err := st.List(name)
	if err != nil {
		t.Fatalf("List %s: %v", name, err)
	}
	defer l.Close()
	var names []string
	for {
		fis, err := l.Next(n)
		if len(fis) > n {
			t.Fatalf("Next(%d) returned %d entries", n, len(fis))
		}
		for _, fi := range fis {
			s := fi.Name()
			if fi.IsDir() {
				s += "/"
			}
			names = append(names, s)
		}
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v; want %v", what, err, want)
	}
}

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, %s", what, len(got), sum(got), len(want), sum(want))
	}
}

var errBroken = errors.New("the connection dropped")

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s || strings.HasSuffix(x, "/"+s) {
			return true
		}
	}
	return false
}

var _ = context.Background
var _ fs.FileInfo
