package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// receiver is a webhook endpoint on 127.0.0.1 that records the events it
// accepted (answered 2xx), in order.
type receiver struct {
	t      *testing.T
	secret []byte
	down   atomic.Bool // answer 503
	hits   atomic.Int64

	mu       sync.Mutex
	accepted []Event
	problems []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.hits.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if rc.down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	var ev Event
	var problem string
	switch {
	case json.Unmarshal(body, &ev) != nil:
		problem = "body is not an event: " + string(body)
	case r.Method != http.MethodPost:
		problem = "method " + r.Method
	case r.Header.Get("Content-Type") != "application/json":
		problem = "content type " + r.Header.Get("Content-Type")
	case r.Header.Get(HeaderEvent) != ev.Type:
		problem = fmt.Sprintf("%s %q for a %q event", HeaderEvent, r.Header.Get(HeaderEvent), ev.Type)
	case r.Header.Get(HeaderDelivery) != ev.ID:
		problem = fmt.Sprintf("%s %q for event %q", HeaderDelivery, r.Header.Get(HeaderDelivery), ev.ID)
	case rc.secret != nil && !Verify(rc.secret, body, r.Header.Get(HeaderSignature)):
		problem = "bad signature " + r.Header.Get(HeaderSignature)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if problem != "" {
		rc.problems = append(rc.problems, problem)
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	rc.accepted = append(rc.accepted, ev)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) ids() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var ids []string
	for _, ev := range rc.accepted {
		ids = append(ids, ev.ID)
	}
	return ids
}

func (rc *receiver) check() {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.problems {
		rc.t.Errorf("receiver: %s", p)
	}
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBus runs b until the test ends.
func runBus(t *testing.T, b *Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func hookStats(b *Bus, name string) HookStats {
	for _, h := range b.Stats().Hooks {
		if h.Name == name {
			return h
		}
	}
	return HookStats{}
}

func emitN(b *Bus, n int) []string {
	var ids []string
	for i := range n {
		ev := Event{ID: NewID(), Type: Upload, User: "acme", Protocol: "sftp", Path: fmt.Sprintf("/inbox/f%03d.csv", i), Size: int64(i), Outcome: "ok"}
		b.Emit(ev)
		ids = append(ids, ev.ID)
	}
	return ids
}

func TestSignatureKnownVector(t *testing.T) {
	// RFC-independent but widely published HMAC-SHA256 example.
	got := Signature([]byte("key"), []byte("The quick brown fox jumps over the lazy dog"))
	want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got != want {
		t.Errorf("Signature = %s, want %s", got, want)
	}
	tests := []struct {
		secret, body, header string
		want                 bool
	}{
		{"key", "body", Signature([]byte("key"), []byte("body")), true},
		{"other", "body", Signature([]byte("key"), []byte("body")), false},
		{"key", "body!", Signature([]byte("key"), []byte("body")), false},
		{"key", "body", "", false},
		{"key", "body", strings.TrimPrefix(Signature([]byte("key"), []byte("body")), "sha256="), false},
	}
	for _, tt := range tests {
		if got := Verify([]byte(tt.secret), []byte(tt.body), tt.header); got != tt.want {
			t.Errorf("Verify(%q, %q, %q) = %v, want %v", tt.secret, tt.body, tt.header, got, tt.want)
		}
	}
}

func TestWebhookSignedDelivery(t *testing.T) {
	const secret = "s3cret-value-never-logged"
	tests := []struct {
		name       string
		file       string // secret_file content
		verifyWith []byte // the receiver's copy; nil: no check
		wantHeader bool
	}{
		{"trailing newline ignored", secret + "\n", []byte(secret), true},
		{"exact", secret, []byte(secret), true},
		{"no secret file: unsigned", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{t: t, secret: tt.verifyWith}
			var sawHeader atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawHeader.Store(r.Header.Get(HeaderSignature) != "")
				rc.ServeHTTP(w, r)
			}))
			defer srv.Close()
			wh := &config.Webhook{URL: srv.URL + "/hook"}
			if tt.file != "" {
				wh.SecretFile = writeSecret(t, tt.file)
			}
			log, logs := testLogger()
			b, err := Open(Options{StateDir: t.TempDir(), Log: log, Hooks: []config.Hook{{Name: "erp", Webhook: wh}}})
			if err != nil {
				t.Fatal(err)
			}
			runBus(t, b)
			ids := emitN(b, 3)
			waitFor(t, 10*time.Second, "deliveries", func() bool { return hookStats(b, "erp").Delivered == 3 })
			rc.check()
			if got := rc.ids(); !slices.Equal(got, ids) {
				t.Errorf("accepted %v, want %v", got, ids)
			}
			if sawHeader.Load() != tt.wantHeader {
				t.Errorf("signature header present = %v, want %v", sawHeader.Load(), tt.wantHeader)
			}
			if strings.Contains(logs.String(), secret) {
				t.Error("the secret appears in the log")
			}
			if len(logs.Lines(`"msg":"hook delivered"`, `"hook":"erp"`, `"status":204`)) != 3 {
				t.Errorf("want 3 delivery lines in the log:\n%s", logs)
			}
		})
	}
}

func TestWebhookSecretFileErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"missing", filepath.Join(t.TempDir(), "absent")},
		{"empty", writeSecret(t, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(Options{StateDir: t.TempDir(), Hooks: []config.Hook{{Name: "h", Webhook: &config.Webhook{URL: "http://127.0.0.1:1/", SecretFile: tt.file}}}})
			if err == nil || !strings.Contains(err.Error(), "hook h") {
				t.Errorf("Open = %v, want an error naming the hook", err)
			}
		})
	}
}

func TestWebhookAnswers(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr bool
	}{
		{"200", func(w http.ResponseWriter, r *http.Request) {}, false},
		{"204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, false},
		{"404", http.NotFound, true},
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, true},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hook" {
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			}
		}, true},
		{"slower than the timeout", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body) // the server notices the client leaving only once the body is read
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			wh, err := newWebhook(&config.Webhook{URL: srv.URL + "/hook", Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = wh.deliver(context.Background(), &Event{ID: "1", Type: Upload}, []byte(`{"id":"1"}`))
			if (err != nil) != tt.wantErr {
				t.Errorf("deliver = %v, want error %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("deliver took %s despite a 200ms timeout", d)
			}
		})
	}
}

func TestWebhookErrorsHideURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	wh, err := newWebhook(&config.Webhook{URL: "http://user:pw-TOKEN@" + addr + "/hook?token=q-TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wh.deliver(context.Background(), &Event{ID: "1", Type: Upload}, []byte(`{}`))
	if err == nil {
		t.Fatal("deliver to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("error %q carries the URL's credentials", err)
	}
}

// TestWebhookOutage: an endpoint that fails for a while, then recovers,
// receives every event, in order, and the deliveries are counted.
func TestWebhookOutage(t *testing.T) {
	tests := []struct {
		name string
		// fail starts the outage and returns the URL and the recovery.
		fail func(t *testing.T, rc *receiver) (url string, recover func())
	}{
		{"503", func(t *testing.T, rc *receiver) (string, func()) {
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			rc.down.Store(true)
			return srv.URL, func() { rc.down.Store(false) }
		}},
		{"connection refused", func(t *testing.T, rc *receiver) (string, func()) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			_ = ln.Close()
			return "http://" + addr, func() {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Skipf("port %s was taken meanwhile: %v", addr, err)
				}
				srv := httptest.NewUnstartedServer(rc)
				srv.Listener = ln
				srv.Start()
				t.Cleanup(srv.Close)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{t: t, secret: []byte("k")}
			url, recover := tt.fail(t, rc)
			log, logs := testLogger()
			b, err := Open(Options{
				StateDir:    t.TempDir(),
				Log:         log,
				Hooks:       []config.Hook{{Name: "erp", Events: []string{Upload}, Webhook: &config.Webhook{URL: url + "/hook", SecretFile: writeSecret(t, "k")}}},
				BackoffBase: 5 * time.Millisecond,
				BackoffMax:  40 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			runBus(t, b)
			ids := emitN(b, 10)
			b.Emit(Event{Type: Login, User: "acme"}) // filtered out
			waitFor(t, 10*time.Second, "failed attempts", func() bool { return hookStats(b, "erp").Failed >= 4 })
			if s := hookStats(b, "erp"); s.Delivered != 0 || s.Queued != 10 {
				t.Errorf("during the outage: %+v, want nothing delivered and 10 queued", s)
			}
			ids = append(ids, emitN(b, 5)...) // queued while down, too
			recover()
			waitFor(t, 10*time.Second, "every delivery", func() bool { return hookStats(b, "erp").Delivered == 15 })
			rc.check()
			if got := rc.ids(); !slices.Equal(got, ids) {
				t.Errorf("accepted (in order)\n%v\nwant\n%v", got, ids)
			}
			if s := hookStats(b, "erp"); s.Queued != 0 || s.Dropped != 0 {
				t.Errorf("after recovery: %+v", s)
			}
			if len(logs.Lines(`"msg":"hook delivery failed"`, `"retry_in"`)) < 4 {
				t.Errorf("want the failed attempts logged:\n%s", logs)
			}
		})
	}
}

// TestHooksIndependent: a dead endpoint delays only its own hook.
func TestHooksIndependent(t *testing.T) {
	good := &receiver{t: t}
	dead := &receiver{t: t}
	dead.down.Store(true)
	gs, ds := httptest.NewServer(good), httptest.NewServer(dead)
	defer gs.Close()
	defer ds.Close()
	b, err := Open(Options{
		StateDir: t.TempDir(),
		Hooks: []config.Hook{
			{Name: "dead", Webhook: &config.Webhook{URL: ds.URL}},
			{Name: "good", Paths: []string{"/inbox/**"}, Webhook: &config.Webhook{URL: gs.URL}},
		},
		BackoffBase: 5 * time.Millisecond,
		BackoffMax:  20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	ids := emitN(b, 20)
	b.Emit(Event{Type: Upload, Path: "/outbox/x"}) // only for "dead"
	waitFor(t, 10*time.Second, "the good hook", func() bool { return hookStats(b, "good").Delivered == 20 })
	good.check()
	if got := good.ids(); !slices.Equal(got, ids) {
		t.Errorf("good hook got %v, want %v", got, ids)
	}
	if s := hookStats(b, "dead"); s.Queued != 21 || s.Delivered != 0 || s.Failed == 0 {
		t.Errorf("dead hook %+v: want 21 queued, none delivered, failures counted", s)
	}
	if n := dead.hits.Load(); n == 0 {
		t.Error("the dead endpoint was never tried")
	}
}
