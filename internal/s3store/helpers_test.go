package s3store

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// testTimeout bounds every test's S3 calls together.
const testTimeout = 2 * time.Minute

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// isolateAWS keeps the developer's AWS setup away from the clients a
// test builds (s3test.IsolateAWS).
func isolateAWS(t *testing.T) { s3test.IsolateAWS(t) }

// machineBundle sets AWS_CA_BUNDLE as these machines do (to the system
// bundle) unless it is already set, and returns it: every S3 test runs as
// the daemon will, with the variable set.
func machineBundle(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("AWS_CA_BUNDLE"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("AWS_CA_BUNDLE=%s: %v", b, err)
		}
		return b
	}
	for _, b := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
		if _, err := os.Stat(b); err == nil {
			t.Setenv("AWS_CA_BUNDLE", b)
			return b
		}
	}
	t.Fatal("no system CA bundle to set AWS_CA_BUNDLE to")
	return ""
}

// writeSecret puts secret in a file as an operator would, with a final
// newline, and returns its path.
func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverConfig is the Config that reaches srv's bucket with static
// credentials from a secret file.
func serverConfig(t *testing.T, srv *s3test.Server, bucket string) Config {
	t.Helper()
	c := DefaultConfig()
	c.Bucket, c.Region, c.Endpoint, c.PathStyle = bucket, srv.Region, srv.Endpoint, true
	c.AccessKeyID, c.SecretAccessKeyFile = srv.AccessKey, writeSecret(t, srv.SecretKey)
	return c
}

// newTestClient starts nothing: it builds the client under test for srv's
// bucket, with AWS_CA_BUNDLE set as on these machines and the rest of the
// developer's AWS setup isolated.
func newTestClient(t *testing.T, srv *s3test.Server, bucket string, opts ...func(*s3.Options)) *s3.Client {
	t.Helper()
	isolateAWS(t)
	machineBundle(t)
	c, err := NewClient(testContext(t), serverConfig(t, srv, bucket), opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// wire records the headers of every request the client sends and every
// response it gets, as they cross the HTTP client: below signing and
// checksum middleware, above the socket.
type wire struct {
	inner s3.HTTPClient
	mu    sync.Mutex
	log   []exchange
}

type exchange struct {
	method, query string
	req, resp     http.Header
	status        int
}

func (w *wire) Do(r *http.Request) (*http.Response, error) {
	resp, err := w.inner.Do(r)
	e := exchange{method: r.Method, query: r.URL.RawQuery, req: r.Header.Clone()}
	if resp != nil {
		e.resp, e.status = resp.Header.Clone(), resp.StatusCode
	}
	w.mu.Lock()
	w.log = append(w.log, e)
	w.mu.Unlock()
	return resp, err
}

func (w *wire) exchanges() []exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]exchange(nil), w.log...)
}

// recordWire installs a wire on the client's HTTP client, keeping the SDK's
// own client (and its CA bundle) beneath it.
func recordWire(w *wire) func(*s3.Options) {
	return func(o *s3.Options) {
		w.inner = o.HTTPClient
		o.HTTPClient = w
	}
}
