package e2e

// What a backend holds, seen from outside the daemon, for the suites that
// run over a table of backends (backends_test.go): the disk under the
// storage root for local, the bucket through the test's own S3 client for
// s3. And a counting proxy between the daemon and the S3 store, which shows
// what the daemon read of an object.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/pkg/sftp"
)

const (
	// s3RecordsFolder is where the s3 backend keeps the records of broken
	// uploads' partials, beside the homes (docs/s3.md, "Partials").
	s3RecordsFolder  = ".wharf-partial.s3/"
	s3RequestTimeout = 30 * time.Second // one request of the test's own S3 client
)

// stored is one user's files as the backend keeps them.
type stored struct {
	d  *daemon
	u  *testUser
	s3 *s3.Client // nil on local
}

func newStored(d *daemon, u *testUser) *stored {
	s := &stored{d: d, u: u}
	if d.S3 != nil {
		s.s3 = d.S3.Client()
	}
	return s
}

// key is the object key of client path p ("/a/b" → "alice/a/b"): the
// harness sets no storage.s3.prefix.
func (s *stored) key(p string) string {
	return strings.TrimPrefix(path.Join(s.u.Home, p), "/")
}

// file is the host path of client path p on local.
func (s *stored) file(p string) string {
	return filepath.Join(s.d.HomeDir(s.u), filepath.FromSlash(p))
}

func s3ctx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), s3RequestTimeout)
}

// head is HeadObject of p's key: nil and no error when there is none.
func (s *stored) head(t *testing.T, p string) *s3.HeadObjectOutput {
	t.Helper()
	ctx, cancel := s3ctx(t)
	defer cancel()
	out, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.d.Bucket, Key: aws.String(s.key(p))})
	var nf *s3types.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		t.Fatalf("HeadObject %s: %v", s.key(p), err)
	}
	return out
}

// sum is the SHA-256 and size of what is stored under p; ok is false when
// nothing is.
func (s *stored) sum(t *testing.T, p string) (sum string, size int64, ok bool) {
	t.Helper()
	h := sha256.New()
	if s.s3 == nil {
		f, err := os.Open(s.file(p))
		if errors.Is(err, os.ErrNotExist) {
			return "", 0, false
		}
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		defer f.Close()
		if size, err = io.Copy(h, f); err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		return hex.EncodeToString(h.Sum(nil)), size, true
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.d.Bucket, Key: aws.String(s.key(p))})
	var nk *s3types.NoSuchKey
	if errors.As(err, &nk) {
		return "", 0, false
	}
	if err != nil {
		t.Fatalf("GetObject %s: %v", s.key(p), err)
	}
	defer out.Body.Close()
	if size, err = io.Copy(h, out.Body); err != nil {
		t.Fatalf("read object %s: %v", s.key(p), err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, true
}

// checkSum fails the test unless p is stored with SHA-256 want.
func (s *stored) checkSum(t *testing.T, what, p, want string) {
	t.Helper()
	got, size, ok := s.sum(t, p)
	switch {
	case !ok:
		t.Errorf("%s: nothing stored under %s", what, p)
	case got != want:
		t.Errorf("%s: %s holds %d bytes with sha256 %s, want %s", what, p, size, got, want)
	}
}

// absent fails the test when anything is stored under p: a file (an
// object) or a folder.
func (s *stored) absent(t *testing.T, what, p string) {
	t.Helper()
	if s.s3 == nil {
		if exists(t, s.file(p)) {
			t.Errorf("%s: %s exists on disk", what, p)
		}
		return
	}
	if h := s.head(t, p); h != nil {
		t.Errorf("%s: the bucket holds an object %s (%d bytes)", what, s.key(p), aws.ToInt64(h.ContentLength))
	}
	if keys := s.objects(t, s.key(p)); len(keys) > 0 {
		t.Errorf("%s: the bucket holds %v", what, keys)
	}
}

// names lists a folder as the backend holds it: the entries of the
// directory, or the objects and common prefixes one level below the key.
func (s *stored) names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	if s.s3 == nil {
		return dirNames(t, s.file(dir))
	}
	prefix := s.key(dir) + "/"
	ctx, cancel := s3ctx(t)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: &s.d.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for pages := 0; p.HasMorePages() && pages < 100; pages++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			if n := strings.TrimPrefix(aws.ToString(o.Key), prefix); n != "" {
				out = append(out, n)
			}
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/"))
		}
	}
	slices.Sort(out)
	return out
}

// objects lists every key that starts with prefix (no delimiter), at
// most 1,000.
func (s *stored) objects(t *testing.T, prefix string) []string {
	t.Helper()
	ctx, cancel := s3ctx(t)
	defer cancel()
	out, err := s.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.d.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// multipart lists the bucket's multipart uploads in progress, as
// "key (upload id)", at most 1,000.
func (s *stored) multipart(t *testing.T) []string {
	t.Helper()
	ctx, cancel := s3ctx(t)
	defer cancel()
	out, err := s.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.d.Bucket})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var ups []string
	for _, u := range out.Uploads {
		ups = append(ups, fmt.Sprintf("%s (%s)", aws.ToString(u.Key), aws.ToString(u.UploadId)))
	}
	return ups
}

// partBytes is what the multipart uploads of p's key hold in completed
// parts so far; -1 when there is no such upload.
func (s *stored) partBytes(t *testing.T, p string) int64 {
	t.Helper()
	key := s.key(p)
	ctx, cancel := s3ctx(t)
	defer cancel()
	ups, err := s.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.d.Bucket, Prefix: &key})
	if err != nil {
		t.Fatalf("ListMultipartUploads %s: %v", key, err)
	}
	total := int64(-1)
	for _, u := range ups.Uploads {
		if aws.ToString(u.Key) != key {
			continue
		}
		parts, err := s.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: &s.d.Bucket, Key: &key, UploadId: u.UploadId})
		if err != nil {
			continue // completed or aborted meanwhile
		}
		var n int64
		for _, part := range parts.Parts {
			n += aws.ToInt64(part.Size)
		}
		total = max(total, n)
	}
	return total
}

// inFlight is how many bytes of an upload of p under way the backend has
// received so far, -1 when it shows none: the temporary file of an atomic
// upload on local, the completed parts of the multipart upload on s3.
func (s *stored) inFlight(t *testing.T, p string) int64 {
	t.Helper()
	if s.s3 == nil {
		return tempSize(filepath.Dir(s.file(p)), path.Base(p))
	}
	return s.partBytes(t, p)
}

// waitInFlight waits until the backend holds at least min bytes of an
// upload of p, failing if the client c exits first.
func (s *stored) waitInFlight(t *testing.T, c *bgClient, p string, min int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if s.inFlight(t, p) >= min {
			return
		}
		select {
		case <-c.done:
			t.Fatalf("the client exited before %d bytes of %s arrived:\n%s", min, p, c.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no upload of %s with %d bytes within a minute", p, min)
}

// leftovers are what uploads left behind beside the files, which a
// completed resume must leave none of: on local the temporary files and
// partials in p's folder, on s3 every multipart upload and partial record
// in the bucket.
func (s *stored) leftovers(t *testing.T, dir string) []string {
	t.Helper()
	if s.s3 == nil {
		var out []string
		for _, n := range dirNames(t, s.file(dir)) {
			if strings.HasPrefix(n, ".wharf-") {
				out = append(out, n)
			}
		}
		return out
	}
	return append(s.multipart(t), s.objects(t, s3RecordsFolder)...)
}

// seed stores the content of the local file src under p, as another
// program writing into the storage would: no daemon takes part.
func (s *stored) seed(t *testing.T, p, src string) {
	t.Helper()
	if s.s3 == nil {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(s.file(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.file(p), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.d.Bucket, Key: aws.String(s.key(p)), Body: f}); err != nil {
		t.Fatalf("PutObject %s: %v", s.key(p), err)
	}
}

// sftpSession is a pkg/sftp client of u, closed by t.Cleanup: a second
// session beside the real clients, and a client whose writes the test
// paces itself.
func sftpSession(t *testing.T, d *daemon, u *testUser) (*sftp.Client, io.Closer) {
	t.Helper()
	conn, err := reloadDial(t, d, u)
	if err != nil {
		t.Fatalf("login %s: %v", u.Name, err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		t.Fatalf("sftp %s: %v", u.Name, err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c, conn
}

// s3Proxy is a reverse proxy on 127.0.0.1 between the daemon and the S3
// store that counts, per request path (/bucket/key), the bytes of GET
// responses and of PUT bodies: what the daemon read of an object, and what
// it sent.
type s3Proxy struct {
	URL string

	mu   sync.Mutex
	gets map[string]int64
	puts map[string]int64
}

// startS3Proxy proxies to the store at endpoint until the test ends.
func startS3Proxy(t *testing.T, endpoint string) *s3Proxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("store endpoint %q: %v", endpoint, err)
	}
	p := &s3Proxy{gets: map[string]int64{}, puts: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			// The daemon signed the Host it dialled (the proxy's): SigV4
			// checks that header, so it must reach the store unchanged.
			r.Out.Host = r.In.Host
			if r.Out.Method == http.MethodPut && r.Out.Body != nil {
				r.Out.Body = &countedBody{ReadCloser: r.Out.Body, p: p, counts: p.puts, key: r.Out.URL.Path}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet {
				resp.Body = &countedBody{ReadCloser: resp.Body, p: p, counts: p.gets, key: resp.Request.URL.Path}
			}
			return nil
		},
		Transport: &http.Transport{Proxy: nil, ExpectContinueTimeout: time.Second, MaxIdleConnsPerHost: 16},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	p.URL = "http://" + ln.Addr().String()
	return p
}

// got and put are the bytes of GET responses and PUT bodies for the
// object key of bucket so far.
func (p *s3Proxy) got(bucket, key string) int64 { return p.count(p.gets, bucket, key) }
func (p *s3Proxy) put(bucket, key string) int64 { return p.count(p.puts, bucket, key) }

func (p *s3Proxy) count(m map[string]int64, bucket, key string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m["/"+bucket+"/"+key]
}

type countedBody struct {
	io.ReadCloser
	p      *s3Proxy
	counts map[string]int64
	key    string
}

func (b *countedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.mu.Lock()
		b.counts[b.key] += int64(n)
		b.p.mu.Unlock()
	}
	return n, err
}
