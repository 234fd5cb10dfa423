package fleet

// Against a real S3 server (versitygw, internal/s3test): the identity
// created once by concurrent daemons, and bans shared by guards that see
// the same prefix through clients of their own, as daemons do.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/s3test"
	"github.com/wharf-sftp/wharf/internal/syncbuf"
)

// bucketConfig is storage.s3 for a bucket of srv, reached at endpoint (the
// server's own, or a forwarder in front of it).
func bucketConfig(t *testing.T, srv *s3test.Server, bucket, endpoint string) s3store.Config {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := s3store.DefaultConfig()
	c.Bucket, c.Region, c.Endpoint, c.PathStyle = bucket, srv.Region, endpoint, true
	c.AccessKeyID, c.SecretAccessKeyFile = srv.AccessKey, secret
	return c
}

// requests counts the state's S3 requests by operation.
type requests = s3test.Requests

func openState(t *testing.T, cfg s3store.Config, url string, req *requests) *State {
	t.Helper()
	var count func(string)
	if req != nil {
		count = req.Count
	} else {
		count = func(string) {}
	}
	obj, err := s3store.NewObjects(context.Background(), cfg, url, s3store.CountRequests(count))
	if err != nil {
		t.Fatal(err)
	}
	return New(obj)
}

// TestEnsureOnce: daemons starting at once on an empty folder all get the
// first writer's bytes, and only one write succeeds.
func TestEnsureOnce(t *testing.T) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	const daemons = 8
	url := "s3://" + cfg.Bucket + "/fleet/state/"
	states := make([]*State, daemons)
	for i := range states {
		states[i] = openState(t, cfg, url, nil)
	}
	for round := range 3 {
		name := fmt.Sprintf("key-%d", round)
		got := make([][]byte, daemons)
		errs := make([]error, daemons)
		var gens atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range states {
			wg.Go(func() {
				<-start
				got[i], errs[i] = s.Ensure(context.Background(), name, func() ([]byte, error) {
					gens.Add(1)
					return []byte(fmt.Sprintf("daemon %d %s", i, rand.Text())), nil
				})
			})
		}
		close(start)
		wg.Wait()
		for i := range states {
			if errs[i] != nil {
				t.Fatalf("round %d, daemon %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("round %d: daemon %d got %q, daemon 0 %q", round, i, got[i], got[0])
			}
		}
		stored, _, err := states[0].obj.Get(context.Background(), identityDir+name)
		if err != nil || !bytes.Equal(stored, got[0]) {
			t.Fatalf("round %d: stored %q (%v), daemons got %q", round, stored, err, got[0])
		}
		t.Logf("round %d: %d of %d daemons generated, all got the stored bytes", round, gens.Load(), daemons)
	}
	// Once it exists, nobody generates.
	if _, err := states[0].Ensure(context.Background(), "key-0", func() ([]byte, error) {
		return nil, errors.New("generated again")
	}); err != nil {
		t.Fatal(err)
	}
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("2001:db8::7")
	other = netip.MustParseAddr("198.51.100.9")
)

// member is one daemon's guard and syncer, running until the test ends.
type member struct {
	guard *guard.Guard
	sync  *Syncer
	req   *requests
	logs  *syncbuf.Buffer
}

func defender() guard.Defender {
	return guard.Defender{Enabled: true, Threshold: 3, Window: time.Minute, BanTime: time.Hour, MaxBanTime: 24 * time.Hour}
}

func startMember(t *testing.T, cfg s3store.Config, url string, opt SyncOptions) *member {
	t.Helper()
	m := &member{req: &requests{}, logs: &syncbuf.Buffer{}}
	log := slog.New(slog.NewTextHandler(m.logs, nil))
	var s *Syncer
	m.guard = guard.New(guard.Limits{}, defender(), log, func(b guard.Ban) { s.Publish(b) })
	opt.Log = log
	s = NewSyncer(openState(t, cfg, url, m.req), m.guard, opt)
	m.sync = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("member log:\n%s", m.logs.String())
		}
	})
	return m
}

func ban(g *guard.Guard, a netip.Addr) {
	for range defender().Threshold {
		g.LoginFailed(a)
	}
}

// waitFor polls cond every 10ms for up to limit and returns how long it
// took to hold; it fails the test when it never does.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestBansShared: a ban by one daemon is in force on another within a
// refresh; a lift (the CLI's) ends it on both; an unchanged set costs one
// LIST per refresh and nothing else.
func TestBansShared(t *testing.T) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	url := "s3://" + cfg.Bucket + "/wharf/state/"
	const refresh = 300 * time.Millisecond
	opt := SyncOptions{Refresh: refresh, Retain: time.Hour}
	a := startMember(t, cfg, url, opt)
	b := startMember(t, cfg, url, opt)

	ban(a.guard, addrA)
	if _, err := a.guard.Admit(addrA); !errors.Is(err, guard.ErrBanned) {
		t.Fatalf("the banning daemon admits: %v", err)
	}
	took := waitFor(t, 10*time.Second, "ban seen by the other daemon", func() bool { return b.guard.Banned(addrA) })
	t.Logf("ban by one daemon in force on the other after %s (refresh %s)", took.Round(time.Millisecond), refresh)
	if took > refresh+time.Second {
		t.Errorf("propagation took %s, want within a refresh (%s) and a request", took, refresh)
	}
	if _, err := b.guard.Admit(other); err != nil {
		t.Errorf("another address refused: %v", err)
	}
	if bans := b.guard.Bans(); len(bans) != 1 || bans[0].Addr != addrA || bans[0].Offences != 1 {
		t.Errorf("other daemon's bans = %v", bans)
	}
	ban(b.guard, addrB)
	waitFor(t, 10*time.Second, "IPv6 ban seen", func() bool { return a.guard.Banned(addrB) })

	// Steady state: each refresh is one LIST.
	a.req.Take()
	time.Sleep(10 * refresh)
	got := a.req.Take()
	lists := got["ListObjectsV2"]
	if lists < 5 || len(got) != 1 {
		t.Errorf("requests over 10 refreshes of an unchanged set: %v, want only ListObjectsV2, about 10", got)
	}
	t.Logf("requests over %s of an unchanged set of 2 bans: %v", 10*refresh, got)

	// `wharf defender lift`: the CLI's own client.
	cli := openState(t, cfg, url, nil)
	objects, _, err := cli.ListBans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cur := Current(objects, time.Now()); len(cur) != 2 || cur[0].Addr != addrA || cur[1].Addr != addrB {
		t.Fatalf("listed %v", cur)
	}
	if n, err := cli.LiftBan(context.Background(), addrA); err != nil || n != 1 {
		t.Fatalf("LiftBan = %d, %v", n, err)
	}
	took = waitFor(t, 10*time.Second, "lift seen by both", func() bool { return !a.guard.Banned(addrA) && !b.guard.Banned(addrA) })
	t.Logf("lift in force on both daemons after %s", took.Round(time.Millisecond))
	if !a.guard.Banned(addrB) || !b.guard.Banned(addrB) {
		t.Error("the lift of one address ended another's ban")
	}
	// The pardon forgot the offence: a new ban of addrA is a first one.
	ban(b.guard, addrA)
	if bans := b.guard.Bans(); len(bans) != 2 || bans[0].Offences != 1 {
		t.Errorf("after lift and new failures: %v, want a first offence", bans)
	}
	waitFor(t, 10*time.Second, "new ban after lift seen", func() bool { return a.guard.Banned(addrA) })
	if n, err := cli.LiftBan(context.Background(), other); err != nil || n != 0 {
		t.Errorf("LiftBan of an address never banned = %d, %v", n, err)
	}
}

// TestBansSweep: a ban that ended more than Retain ago is not in force
// and its object is deleted; a name that is not a ban is left alone.
func TestBansSweep(t *testing.T) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	url := "s3://" + cfg.Bucket + "/state/"
	st := openState(t, cfg, url, nil)
	ctx := context.Background()
	now := time.Now()
	for _, b := range []guard.Ban{
		{Addr: addrA, Until: now.Add(-2 * time.Hour), Offences: 1}, // ended, past retention
		{Addr: addrB, Until: now.Add(-time.Minute), Offences: 2},   // ended, retained for its offences
		{Addr: other, Until: now.Add(time.Hour), Offences: 1},
	} {
		if err := st.PutBan(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.obj.Put(ctx, "bans/README", []byte("not a ban")); err != nil {
		t.Fatal(err)
	}
	g := guard.New(guard.Limits{}, defender(), slog.New(slog.DiscardHandler), nil)
	s := NewSyncer(st, g, SyncOptions{Retain: time.Hour})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if g.Banned(addrA) || g.Banned(addrB) || !g.Banned(other) {
		t.Errorf("banned: %s %v, %s %v, %s %v", addrA, g.Banned(addrA), addrB, g.Banned(addrB), other, g.Banned(other))
	}
	var names []string
	if err := st.obj.List(ctx, "bans/", func(e s3store.Entry) error { names = append(names, e.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 || strings.Contains(strings.Join(names, " "), addrA.String()) {
		t.Errorf("after the sweep: %v, want addrB's, other's and the README", names)
	}
	// addrB's retained offences double its next ban here.
	ban(g, addrB)
	if bans := g.Bans(); len(bans) != 2 || bans[1].Addr != addrB || bans[1].Offences != 3 || time.Until(bans[1].Until) < 3*time.Hour {
		t.Errorf("bans = %v, want addrB at its third offence", bans)
	}
}

// TestBansUnreachable: while the bucket hangs, logins are decided at once
// on the set last read, a warning is logged, and a ban made meanwhile is
// written once the bucket answers again.
func TestBansUnreachable(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	fwd := startForwarder(t, strings.TrimPrefix(srv.Endpoint, "http://"))
	url := "s3://" + bucket + "/state/"
	opt := SyncOptions{Refresh: 200 * time.Millisecond, RoundTimeout: time.Second, Retain: time.Hour}
	a := startMember(t, bucketConfig(t, srv, bucket, "http://"+fwd.addr()), url, opt)
	b := startMember(t, bucketConfig(t, srv, bucket, srv.Endpoint), url, opt)

	ban(b.guard, addrB)
	waitFor(t, 10*time.Second, "ban seen before the outage", func() bool { return a.guard.Banned(addrB) })

	fwd.hang(true)
	waitFor(t, 10*time.Second, "warning", func() bool { return strings.Contains(a.logs.String(), "shared ban set unreachable") })
	// Logins are decided in memory, at once, whatever the bucket does.
	start := time.Now()
	for range 1000 {
		if _, err := a.guard.Admit(addrB); !errors.Is(err, guard.ErrBanned) {
			t.Fatalf("the last set read was dropped: %v", err)
		}
		tk, err := a.guard.Admit(other)
		if err != nil {
			t.Fatalf("another address refused: %v", err)
		}
		tk.Close()
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("2000 admissions took %s with the bucket hanging", d)
	}
	ban(a.guard, addrA) // made during the outage: pending
	if !a.guard.Banned(addrA) {
		t.Fatal("a ban made during the outage is not in force where it was made")
	}
	time.Sleep(3 * opt.RoundTimeout)
	if b.guard.Banned(addrA) {
		t.Fatal("a ban crossed a hanging bucket")
	}
	fwd.hang(false)
	took := waitFor(t, 10*time.Second, "ban made during the outage written and seen", func() bool { return b.guard.Banned(addrA) })
	t.Logf("after the bucket came back, the ban made during the outage was in force elsewhere in %s", took.Round(time.Millisecond))
	waitFor(t, 10*time.Second, "recovery logged", func() bool { return strings.Contains(a.logs.String(), "reachable again") })
}

// forwarder is a TCP forwarder on loopback that can hang: it then holds
// new and live connections without passing a byte, as a store behind a
// dead network path does.
type forwarder struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	hanging bool
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]bool{}}
	f.wg.Go(f.accept)
	t.Cleanup(func() {
		ln.Close()
		f.closeAll()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

// hang makes the forwarder hold connections (on) or pass them (off). Held
// connections are closed when it stops hanging, so clients reconnect.
func (f *forwarder) hang(on bool) {
	f.mu.Lock()
	f.hanging = on
	f.mu.Unlock()
	f.closeAll()
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func (f *forwarder) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
}

func (f *forwarder) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.track(c, true)
		f.mu.Lock()
		hanging := f.hanging
		f.mu.Unlock()
		f.wg.Go(func() {
			defer f.track(c, false)
			defer c.Close()
			if hanging {
				_, _ = io.Copy(io.Discard, c) // until closed
				return
			}
			up, err := net.Dial("tcp", f.target)
			if err != nil {
				return
			}
			f.track(up, true)
			defer f.track(up, false)
			defer up.Close()
			var both sync.WaitGroup
			both.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			_, _ = io.Copy(c, up)
			c.Close()
			both.Wait()
		})
	}
}

// TestLiftBeforeRead: a ban lifted before its own daemon's next listing
// (an operator quick to act on `wharf defender list`) ends there too.
func TestLiftBeforeRead(t *testing.T) {
	srv := s3test.Start(t)
	cfg := bucketConfig(t, srv, srv.NewBucket(t), srv.Endpoint)
	url := "s3://" + cfg.Bucket + "/state/"
	ctx := context.Background()
	var s *Syncer
	g := guard.New(guard.Limits{}, defender(), slog.New(slog.DiscardHandler), func(b guard.Ban) { s.Publish(b) })
	s = NewSyncer(openState(t, cfg, url, nil), g, SyncOptions{})
	if err := s.Refresh(ctx); err != nil { // as the daemon does at start
		t.Fatal(err)
	}
	ban(g, addrA)
	if err := s.round(ctx, false); err != nil { // the write a ban wakes, no listing
		t.Fatal(err)
	}
	if n, err := openState(t, cfg, url, nil).LiftBan(ctx, addrA); err != nil || n != 1 {
		t.Fatalf("LiftBan = %d, %v", n, err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if g.Banned(addrA) {
		t.Error("a ban lifted before its daemon's next listing is still in force there")
	}
}
