package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/s3test"
)

// TestFleetEventsSurviveKill: a daemon of a fleet killed with deliveries
// pending (its endpoint was down) has them delivered by another daemon
// once its heartbeat lapses (event_lease), each event with its own id.
func TestFleetEventsSurviveKill(t *testing.T) {
	const lease = 3 * time.Second
	alice := newUser(t, "alice")
	r := newReceiver(t, "fleet-secret")
	r.setDown(true)
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, append(r.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	store := s3test.Start(t)
	bucket := store.NewBucket(t)
	extra := fmt.Sprintf(`state_url: s3://%s/fleet/state/
event_lease: %s
hooks:
  - name: erp
    events: [upload]
    webhook: {url: %q, secret_file: %s, timeout: 1s}
`, bucket, lease, r.url, secretFile)
	start := func() *daemon {
		return startDaemon(t, daemonOpts{Users: []*testUser{alice}, Backend: "s3", S3Shared: store, S3Bucket: bucket,
			S3Prefix: "homes/", StatePrefix: "fleet/state/identity/", Extra: extra})
	}
	a, b := start(), start()

	local := filepath.Join(t.TempDir(), "f")
	writeRandomFile(t, local, 1000)
	names := []string{"/inbox/o1.edi", "/inbox/o2.edi", "/inbox/o3.edi", "/inbox/o4.edi"}
	batch := "mkdir /inbox\n"
	for _, n := range names {
		batch += "put " + local + " " + n + "\n"
	}
	sftpOK(t, a, alice, batch)
	a.WaitLog(t, logMatch("msg", "hook delivery failed", "hook", "erp"), 10*time.Second)
	if got := r.uploads(); len(got) != 0 {
		t.Fatalf("delivered while the endpoint was down: %+v", got)
	}

	a.Kill()
	killed := time.Now()
	r.setDown(false)
	got := r.waitUploads(len(names), 30*time.Second)
	took := time.Since(killed)
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
	}
	slices.Sort(paths)
	if !slices.Equal(paths, names) {
		t.Fatalf("delivered after the kill: %v, want %v", paths, names)
	}
	// The heartbeat is rewritten every lease/4; the survivor looks every
	// lease/4 too: the takeover comes within lease + lease/4 + a second
	// of dating slack after the last heartbeat, plus the attempts.
	if took > 3*lease {
		t.Errorf("delivered %s after the kill, want within about %s", took, lease+lease/4+time.Second)
	}
	takeovers := 0
	for _, l := range b.Logs() {
		if l["msg"] == "took over the delivery of a daemon that stopped" {
			takeovers++
		}
	}
	if takeovers != len(names) {
		t.Errorf("survivor logged %d takeovers, want %d", takeovers, len(names))
	}
	t.Logf("event_lease %s: %d deliveries of the killed daemon made by another %s after the kill", lease, len(names), took.Round(time.Millisecond))
}
