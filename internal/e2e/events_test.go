package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/events"
)

// receiver is a webhook endpoint on 127.0.0.1 that checks signatures and
// records events by id (deliveries are at-least-once).
type receiver struct {
	t      *testing.T
	secret []byte
	url    string

	mu     sync.Mutex
	down   bool
	order  []string
	byID   map[string]events.Event
	badSig int
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: []byte(secret), byID: map[string]events.Event{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/wharf"
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if !events.Verify(r.secret, body, req.Header.Get(events.HeaderSignature)) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	if _, dup := r.byID[e.ID]; !dup {
		r.order = append(r.order, e.ID)
	}
	r.byID[e.ID] = e
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// uploads returns the upload events received, in order.
func (r *receiver) uploads() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event
	for _, id := range r.order {
		if e := r.byID[id]; e.Type == events.Upload {
			out = append(out, e)
		}
	}
	return out
}

func (r *receiver) waitUploads(n int, timeout time.Duration) []events.Event {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.uploads()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hookConfig is the YAML of one webhook hook plus an audit log.
func hookConfig(t *testing.T, r *receiver, auditPath string) string {
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, append(r.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("audit_log:\n  path: %s\nhooks:\n  - name: erp\n    events: [upload]\n    paths: [\"/inbox/**\"]\n"+
		"    webhook: {url: %q, secret_file: %s, timeout: 5s}\n", auditPath, r.url, secretFile)
}

// TestUploadEvent: a completed upload yields exactly one signed event with
// the file's SHA-256, and the audit log has it too.
func TestUploadEvent(t *testing.T) {
	alice := newUser(t, "alice")
	r := newReceiver(t, "hook-secret")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: hookConfig(t, r, audit)})
	size := int64(64 << 20)
	if testing.Short() {
		size = 1 << 20
	}
	local := filepath.Join(t.TempDir(), "order.edi")
	sum := writeRandomFile(t, local, size)
	sftpOK(t, d, alice, "mkdir /inbox\nput "+local+" /inbox/order.edi\nput "+local+" /elsewhere.edi\n")

	r.waitUploads(1, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // a second event, if any, would arrive now
	got := r.uploads()
	if len(got) != 1 {
		t.Fatalf("%d upload events, want exactly 1 (the path filter leaves out /elsewhere.edi): %+v", len(got), got)
	}
	e := got[0]
	if e.Path != "/inbox/order.edi" || e.StoragePath != "/alice/inbox/order.edi" || e.Size != size || e.SHA256 != sum ||
		e.User != "alice" || e.Protocol != "sftp" || e.Outcome != "ok" || e.ID == "" {
		t.Errorf("event: %+v (want sha256 %s)", e, sum)
	}
	if r.badSig > 0 {
		t.Errorf("%d deliveries with a bad signature", r.badSig)
	}
	data, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	var uploads int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ae events.Event
		if err := json.Unmarshal([]byte(line), &ae); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if ae.Type == events.Upload {
			uploads++
		}
	}
	if uploads != 2 {
		t.Errorf("audit log has %d uploads, want 2 (it records every event)", uploads)
	}
}

// TestWebhookOutage: an endpoint down for 10 s then back receives every
// event, in order.
func TestWebhookOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 10 s outage")
	}
	alice := newUser(t, "alice")
	r := newReceiver(t, "s")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: hookConfig(t, r, "")})
	r.setDown(true)
	local := filepath.Join(t.TempDir(), "f")
	writeRandomFile(t, local, 1000)
	sftpOK(t, d, alice, "mkdir /inbox\nput "+local+" /inbox/1\nput "+local+" /inbox/2\nput "+local+" /inbox/3\n")
	time.Sleep(10 * time.Second)
	r.setDown(false)
	got := r.waitUploads(3, 60*time.Second)
	if len(got) != 3 {
		t.Fatalf("%d of 3 events delivered after the outage", len(got))
	}
	for i, e := range got {
		if want := fmt.Sprintf("/inbox/%d", i+1); e.Path != want {
			t.Errorf("event %d is %s, want %s (oldest first)", i, e.Path, want)
		}
	}
}

// TestEventsSurviveSIGKILL: events queued when the daemon is killed are
// delivered after it restarts.
func TestEventsSurviveSIGKILL(t *testing.T) {
	alice := newUser(t, "alice")
	r := newReceiver(t, "s")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}, Extra: hookConfig(t, r, "")})
	r.setDown(true)
	local := filepath.Join(t.TempDir(), "f")
	writeRandomFile(t, local, 1000)
	sftpOK(t, d, alice, "mkdir /inbox\nput "+local+" /inbox/a\nput "+local+" /inbox/b\n")
	d.WaitLog(t, logMatch("msg", "transfer", "path", "/inbox/b"), 10*time.Second)
	d.KillAndRestart(t)
	r.setDown(false)
	got := r.waitUploads(2, 30*time.Second)
	if len(got) != 2 || got[0].Path != "/inbox/a" || got[1].Path != "/inbox/b" {
		t.Fatalf("after SIGKILL and restart: %+v", got)
	}
}

// TestCommandHookMovesUploads runs the example hook of deploy/examples:
// each file uploaded into /inbox ends up in /processed, byte-identical.
func TestCommandHookMovesUploads(t *testing.T) {
	script, err := filepath.Abs("../../deploy/examples/move-to-processed")
	if err != nil {
		t.Fatal(err)
	}
	alice := newUser(t, "alice")
	d := startDaemon(t, daemonOpts{Users: []*testUser{alice}})
	// The hook needs the storage root, known only once the daemon has one.
	extra := fmt.Sprintf("hooks:\n  - name: move\n    events: [upload]\n    paths: [\"/inbox/**\"]\n"+
		"    command: {argv: [%s, %s], timeout: 30s}\n", script, d.Root)
	d.stop(t)
	d.writeConfig(t, "local", extra)
	d.start(t)

	local := filepath.Join(t.TempDir(), "invoice.xml")
	sum := writeRandomFile(t, local, 100_000)
	sftpOK(t, d, alice, "mkdir /inbox\nput "+local+" /inbox/invoice.xml\n")
	moved := filepath.Join(d.HomeDir(alice), "processed", "invoice.xml")
	deadline := time.Now().Add(30 * time.Second)
	for !exists(t, moved) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook did not move the upload:\n%s", d.RawLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sha256File(t, moved); got != sum {
		t.Fatalf("moved file differs")
	}
	if exists(t, filepath.Join(d.HomeDir(alice), "inbox", "invoice.xml")) {
		t.Fatal("the upload is still in the inbox")
	}
}
