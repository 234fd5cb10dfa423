package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fleetLease is the fleet's storage.s3.upload_lease in the kill test: the
// shortest a daemon accepts, so that the test waits seconds, not minutes.
const fleetLease = 3 * time.Second

// fleetResumeWithin bounds the partner's retries after the kill: the lease,
// a takeover pass (half the lease), HAProxy taking the dead daemon out
// (two failed checks 2 s apart), and ample spare on a loaded machine.
const fleetResumeWithin = 60 * time.Second

// TestFleetKillUpload: kill -9 of the daemon serving a partner's upload
// through the balancer. The partner reconnects through the balancer (to
// another daemon: the dead one is out once HAProxy's checks fail), and
// retries `reput` until the survivors' takeover has made the dead upload
// its name's partial (upload_lease 3 s); the reput then sends only what
// had not reached the bucket, and the file downloads with its SHA-256.
func TestFleetKillUpload(t *testing.T) {
	sftp := requireClient(t, "sftp")
	haproxyBin(t)
	alice := newUser(t, "alice")
	f := startFleetOpts(t, fleetOpts{UploadLease: fleetLease.String()}, alice)
	const size, partSize = 64 << 20, 5 << 20 // the harness's part_size
	src := filepath.Join(t.TempDir(), "big")
	sum := writeRandomFile(t, src, size)

	// The upload, through the balancer from 127.0.0.2, at 8 MB/s (-l is
	// in Kbit/s): about 8 s for the file.
	d0 := f.daemons[0] // the host key is the fleet's: any daemon's known_hosts will do
	args := append(append(viaBalancer(d0, f.front, "127.0.0.2"), opensshArgs(d0, alice)...),
		"-l", "64000", "-b", writeBatch(t, "put "+src+" /big\n"), target(alice))
	c := startBackground(t, nil, sftp, args...)
	serving, others := f.servingLogin(t, "alice", "127.0.0.2")
	seen := waitParts(t, d0, "homes/alice/big", 2)
	serving.d.Kill()
	killed := time.Now()
	c.kill()
	t.Logf("daemon %d, serving the upload, killed with %d parts of %d MiB in the bucket", serving.n, seen, partSize>>20)

	// The partner retries through the balancer until the resume point is
	// there: before the takeover, reput finds no remote file; before
	// HAProxy has taken the dead daemon out, the connection fails.
	var took, reputTook time.Duration
	marks := make([]int, len(others))
	for i, o := range others {
		marks[i] = o.d.LogMark()
	}
	attempts := 0
	var failures []string // when each failed attempt ended, and why
	for {
		attempts++
		began := time.Now()
		out, stderr, err := f.sftpBalanced(t, alice, "127.0.0.2", "reput "+src+" /big\n")
		if err == nil {
			took, reputTook = time.Since(killed), time.Since(began)
			break
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		failures = append(failures, fmt.Sprintf("%v: %s", time.Since(killed).Round(10*time.Millisecond), lines[len(lines)-1]))
		if time.Since(killed) > fleetResumeWithin {
			t.Fatalf("reput through the balancer still failing %v after the kill (%d attempts): %v\n%s\n%s",
				fleetResumeWithin, attempts, err, out, stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Which survivor took the upload over, and which one served the reput.
	var part int64
	takers := 0
	for _, o := range others {
		for _, l := range o.d.logsSince(0) {
			if logMatch("msg", "recovered upload", "path", "/alice/big")(l) {
				takers++
				got, _ := l["bytes"].(float64)
				if part != 0 && int64(got) != part {
					t.Errorf("daemon %d recovered %v bytes, another %d", o.n, got, part)
				}
				part = int64(got)
				at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
				t.Logf("daemon %d took the dead upload over %v after the kill: %d MiB in %v parts",
					o.n, at.Sub(killed).Round(time.Millisecond), part>>20, l["parts"])
			}
		}
	}
	if takers == 0 {
		t.Fatal("no surviving daemon logged \"recovered upload\" of /alice/big")
	}
	if part < int64(seen)*partSize || part >= size {
		t.Errorf("the partial holds %d bytes; want at least the %d parts seen before the kill and less than the file", part, seen)
	}
	// The transfer line comes once the daemon has answered the close.
	var resumedOn *fleetMember
	var transfer map[string]any
	for deadline := time.Now().Add(10 * time.Second); resumedOn == nil; time.Sleep(50 * time.Millisecond) {
		for i, o := range others {
			if l, ok := o.d.pollLog(marks[i], logMatch("msg", "transfer", "user", "alice", "op", "upload", "path", "/big",
				"outcome", "ok"), 0); ok {
				resumedOn, transfer = &others[i], l
			}
		}
		if resumedOn == nil && time.Now().After(deadline) {
			t.Fatal("no surviving daemon logged the reput's transfer")
		}
	}
	if got, _ := transfer["bytes"].(float64); int64(got) != size-part {
		t.Errorf("the reput sent %v bytes; want the %d the partial lacked (of %d)", transfer["bytes"], size-part, size)
	}
	recovered := 0.0
	for _, o := range others {
		recovered += o.metric(t, "wharf_uploads_recovered_total")
	}
	if recovered != float64(takers) {
		t.Errorf("wharf_uploads_recovered_total sums to %v on the survivors; want %d", recovered, takers)
	}
	t.Logf("kill to a successful reput: %v (%d attempts; the reput on daemon %d took %v and sent %d of %d MiB); failed attempts: %q",
		took.Round(time.Millisecond), attempts, resumedOn.n, reputTook.Round(time.Millisecond), (size-part)>>20, size>>20, failures)

	// Downloaded through the balancer, byte for byte.
	back := filepath.Join(t.TempDir(), "back")
	if out, stderr, err := f.sftpBalanced(t, alice, "127.0.0.2", "get /big "+back+"\n"); err != nil {
		t.Fatalf("download through the balancer: %v\n%s\n%s", err, out, stderr)
	}
	checkSum(t, "download after the resume", back, sum)
}

// fleetMember is a daemon of the fleet and its number (1-based, as in
// the example's server names).
type fleetMember struct {
	d *daemon
	n int
}

// metric reads a counter from the daemon's /metrics.
func (m fleetMember) metric(t *testing.T, name string) float64 {
	t.Helper()
	admin := m.d.WaitLog(t, logMatch("msg", "listening", "proto", "http"), startTimeout)
	return scrapeGauges(t, fmt.Sprintf("http://%s/metrics", admin["addr"]), name)[name]
}

// servingLogin waits for user's login from the address from on one of the
// daemons, and returns that daemon and the others.
func (f *fleet) servingLogin(t *testing.T, user, from string) (fleetMember, []fleetMember) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, d := range f.daemons {
			if _, ok := d.pollLog(0, loginFrom(user, "ok", from), 0); !ok {
				continue
			}
			var others []fleetMember
			for j, o := range f.daemons {
				if j != i {
					others = append(others, fleetMember{o, j + 1})
				}
			}
			return fleetMember{d, i + 1}, others
		}
	}
	t.Fatalf("no daemon logged %s's login from %s within 30 s", user, from)
	return fleetMember{}, nil
}

// waitParts waits until the one multipart upload of key in d's bucket
// holds at least n parts, and returns how many it holds.
func waitParts(t *testing.T, d *daemon, key string, n int) int {
	t.Helper()
	const within = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	client := d.S3.Client()
	for ; ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		ups, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &d.Bucket, Prefix: &key})
		if err != nil || len(ups.Uploads) != 1 {
			continue
		}
		parts, err := client.ListParts(ctx, &s3.ListPartsInput{Bucket: &d.Bucket, Key: &key, UploadId: ups.Uploads[0].UploadId})
		if err == nil && len(parts.Parts) >= n {
			return len(parts.Parts)
		}
	}
	t.Fatalf("the upload of %s did not reach %d parts within %v", key, n, within)
	return 0
}
