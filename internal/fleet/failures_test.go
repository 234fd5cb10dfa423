package fleet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

func TestFailureNames(t *testing.T) {
	last := time.Date(2026, 12, 3, 16, 0, 5, 700_000_000, time.UTC)
	for _, owner := range []string{"sftp-1-4242", "host_with_underscores-7"} {
		f := guard.Failures{Addr: netip.MustParseAddr("2001:db8::7"), Count: 4, Last: last}
		name := failureName(owner, f)
		got, ok := parseFailureName(name)
		if !ok || got.Addr != f.Addr || got.Count != 4 || !got.Last.Equal(last.Truncate(time.Second)) || got.Owner != owner || got.Name != name {
			t.Errorf("%s: parsed %+v, %v", name, got, ok)
		}
	}
	for _, bad := range []string{
		"failures/192.0.2.1/owner_4", "failures/192.0.2.1/_4_2026-12-03T16:00:05Z", "failures/192.0.2.1/o_0_2026-12-03T16:00:05Z",
		"failures/192.0.2.1/o_x_2026-12-03T16:00:05Z", "failures/nope/o_4_2026-12-03T16:00:05Z", "bans/192.0.2.1/o_4_2026-12-03T16:00:05Z",
	} {
		if f, ok := parseFailureName(bad); ok {
			t.Errorf("%s parsed: %+v", bad, f)
		}
	}
}

func TestOthersFailed(t *testing.T) {
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	obj := func(addr netip.Addr, owner string, n int, ago time.Duration) FailureObject {
		return FailureObject{Failures: guard.Failures{Addr: addr, Count: n, Last: now.Add(-ago)}, Owner: owner}
	}
	got := othersFailed([]FailureObject{
		obj(a, "me", 9, 0),              // our own: never counted twice
		obj(a, "d2", 2, 10*time.Second), // replaced by d2's later count
		obj(a, "d2", 3, 5*time.Second),  // d2's latest
		obj(a, "d3", 4, 30*time.Second), // within the window
		obj(b, "d3", 5, 2*time.Minute),  // left the window
		obj(b, "d2", 1, 59*time.Second), // within
	}, "me", time.Minute, now)
	if len(got) != 2 || got[a] != 7 || got[b] != 1 {
		t.Errorf("othersFailed = %v, want a: 3+4, b: 1", got)
	}
}

// TestFailuresCountAcrossDaemons: failed logins spread over daemons ban
// at the threshold in all, on every daemon, within a couple of refreshes.
func TestFailuresCountAcrossDaemons(t *testing.T) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	url := "s3://" + cfg.Bucket + "/wharf/state/"
	const refresh = 300 * time.Millisecond
	opt := SyncOptions{Refresh: refresh, Retain: time.Hour, Window: defender().Window}
	members := []*member{}
	for _, owner := range []string{"d1", "d2", "d3"} {
		opt.Owner = owner
		members = append(members, startMember(t, cfg, url, opt))
	}
	// Threshold 3: one failure on each daemon.
	for _, m := range members {
		m.guard.LoginFailed(addrA)
	}
	took := waitFor(t, 10*time.Second, "a ban on every daemon", func() bool {
		for _, m := range members {
			if !m.guard.Banned(addrA) {
				return false
			}
		}
		return true
	})
	t.Logf("3 failures, one per daemon, banned the address on all three after %s (refresh %s)", took.Round(time.Millisecond), refresh)
	for _, m := range members {
		if _, err := m.guard.Admit(other); err != nil {
			t.Errorf("another address refused: %v", err)
		}
	}
	// Two failures in all are no ban.
	members[0].guard.LoginFailed(addrB)
	members[1].guard.LoginFailed(addrB)
	time.Sleep(5 * refresh)
	for i, m := range members {
		if m.guard.Banned(addrB) {
			t.Errorf("daemon %d banned an address with 2 failures in all (threshold 3)", i+1)
		}
	}
}
