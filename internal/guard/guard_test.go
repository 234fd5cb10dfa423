package guard

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newGuard(l Limits, d Defender) (*Guard, *clock, *[][]Ban) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var calls [][]Ban
	var g *Guard
	g = New(l, d, slog.New(slog.DiscardHandler), func(made Ban) {
		all := g.Bans() // outside the lock: the guard may be asked
		if !slices.Contains(all, made) {
			panic("the ban made is not in force")
		}
		calls = append(calls, all)
	})
	g.now = c.now
	return g, c, &calls
}

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("192.0.2.2")
)

func TestLimits(t *testing.T) {
	g, _, _ := newGuard(Limits{MaxConnections: 3, MaxPerIP: 2, MaxPerUser: 1, MaxUnauthenticated: 2}, Defender{})
	a, err := g.Admit(ip1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Admit(ip1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(ip1); !errors.Is(err, ErrTooManyFromIP) {
		t.Fatalf("third from one address: %v", err)
	}
	if _, err := g.Admit(ip2); !errors.Is(err, ErrTooManyUnauth) {
		t.Fatalf("third logging in: %v", err)
	}
	if err := a.LoggedIn("alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.LoggedIn("alice"); !errors.Is(err, ErrTooManyForUser) {
		t.Fatalf("second session of alice: %v", err)
	}
	c, err := g.Admit(ip2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(ip2); !errors.Is(err, ErrTooMany) {
		t.Fatalf("fourth in total: %v", err)
	}
	a.Close()
	a.Close() // idempotent
	if err := b.LoggedIn("alice"); err != nil {
		t.Fatalf("alice after her first session closed: %v", err)
	}
	b.Close()
	c.Close()
	if g.total != 0 || g.unauth != 0 || len(g.perIP) != 0 || len(g.perUser) != 0 {
		t.Fatalf("counters not back to zero: total %d unauth %d ip %v user %v", g.total, g.unauth, g.perIP, g.perUser)
	}
}

func TestDefender(t *testing.T) {
	d := Defender{Enabled: true, Threshold: 3, Window: time.Minute, BanTime: 10 * time.Minute, MaxBanTime: 25 * time.Minute,
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	g, c, calls := newGuard(Limits{}, d)

	// Failures spread wider than the window never add up to a ban.
	for range 5 {
		g.LoginFailed(ip1)
		c.add(31 * time.Second)
	}
	if g.Banned(ip1) {
		t.Fatal("banned for failures outside the window")
	}
	for range 3 {
		g.LoginFailed(ip1)
	}
	if !g.Banned(ip1) {
		t.Fatal("not banned after 3 failures in the window")
	}
	if _, err := g.Admit(ip1); !errors.Is(err, ErrBanned) {
		t.Fatalf("banned address admitted: %v", err)
	}
	if _, err := g.Admit(ip2); err != nil {
		t.Fatalf("another address refused: %v", err)
	}
	if len(*calls) != 1 || len((*calls)[0]) != 1 || (*calls)[0][0].Addr != ip1 {
		t.Fatalf("ban list callbacks: %v", *calls)
	}
	c.add(10*time.Minute + time.Second)
	if g.Banned(ip1) {
		t.Fatal("still banned after ban_time")
	}
	// A repeat offence doubles the ban, capped at max_ban_time.
	for range 3 {
		g.LoginFailed(ip1)
	}
	if bans := g.Bans(); len(bans) != 1 || bans[0].Until.Sub(c.now()) != 20*time.Minute {
		t.Fatalf("second ban: %v", bans)
	}
	c.add(21 * time.Minute)
	for range 3 {
		g.LoginFailed(ip1)
	}
	if bans := g.Bans(); len(bans) != 1 || bans[0].Until.Sub(c.now()) != 25*time.Minute {
		t.Fatalf("third ban not capped: %v", bans)
	}
	// Allow-listed addresses are never banned.
	allowed := netip.MustParseAddr("198.51.100.7")
	for range 10 {
		g.LoginFailed(allowed)
	}
	if g.Banned(allowed) {
		t.Fatal("allow-listed address banned")
	}
}

func TestDefenderDisabled(t *testing.T) {
	g, _, _ := newGuard(Limits{}, Defender{Enabled: false, Threshold: 1})
	for range 10 {
		g.LoginFailed(ip1)
	}
	if g.Banned(ip1) {
		t.Fatal("a disabled defender banned")
	}
}

func TestRecordsBounded(t *testing.T) {
	g, c, _ := newGuard(Limits{}, Defender{Enabled: true, Threshold: 100, Window: time.Second, BanTime: time.Minute, MaxBanTime: time.Hour})
	base := ip1.As4()
	for i := range maxTracked + 10 {
		b := base
		b[2], b[3] = byte(i>>8), byte(i)
		b[1] = byte(i >> 16)
		g.LoginFailed(netip.AddrFrom4(b))
		if i%1000 == 0 {
			c.add(2 * time.Second)
		}
	}
	if n := len(g.records); n > maxTracked {
		t.Fatalf("%d records kept, bound is %d", n, maxTracked)
	}
}

// TestSharedBans: a fleet's set, as SetShared puts it in force, refuses
// its addresses until their bans end, counts their offences, and never
// bans an allow-listed address; Lift pardons either kind.
func TestSharedBans(t *testing.T) {
	d := Defender{Enabled: true, Threshold: 3, Window: time.Minute, BanTime: 10 * time.Minute, MaxBanTime: time.Hour,
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	g, c, calls := newGuard(Limits{}, d)
	ip3 := netip.MustParseAddr("2001:db8::3")
	allowed := netip.MustParseAddr("198.51.100.7")
	now := c.now()
	changed := g.SetShared([]Ban{
		{Addr: ip1, Until: now.Add(5 * time.Minute), Offences: 1},
		{Addr: ip1, Until: now.Add(-time.Minute), Offences: 1}, // an older object of the same address
		{Addr: ip2, Until: now.Add(-time.Minute), Offences: 2}, // expired, offences kept
		{Addr: allowed, Until: now.Add(time.Hour), Offences: 1},
	})
	if !changed {
		t.Error("SetShared of a new ban reported no change")
	}
	if _, err := g.Admit(ip1); !errors.Is(err, ErrBanned) {
		t.Errorf("address of the fleet's set admitted: %v", err)
	}
	for _, a := range []netip.Addr{ip2, ip3, allowed} {
		if g.Banned(a) {
			t.Errorf("%s banned", a)
		}
	}
	if bans := g.Bans(); len(bans) != 1 || bans[0].Addr != ip1 || !bans[0].Until.Equal(now.Add(5*time.Minute)) {
		t.Errorf("Bans = %v, want ip1's shared ban", bans)
	}
	// Failures of logins already under way do not ban it again.
	for range 3 {
		g.LoginFailed(ip1)
	}
	if len(*calls) != 0 {
		t.Errorf("a shared ban in force was made again: %v", *calls)
	}
	// ip2's two offences elsewhere make its ban here the third: 40 minutes.
	for range 3 {
		g.LoginFailed(ip2)
	}
	if bans := g.Bans(); len(bans) != 2 || bans[1].Addr != ip2 || bans[1].Offences != 3 || bans[1].Until.Sub(c.now()) != 40*time.Minute {
		t.Errorf("Bans = %v, want ip2 for 40m at its third offence", bans)
	}
	if g.SetShared([]Ban{{Addr: ip1, Until: now.Add(5 * time.Minute), Offences: 1}, {Addr: ip2, Until: now.Add(-time.Minute), Offences: 2}}) {
		t.Error("SetShared without the expired allow-listed entry reported a change")
	}
	// Time ends a shared ban as it ends a local one.
	c.add(5 * time.Minute)
	if g.Banned(ip1) {
		t.Error("ip1 still banned after its shared ban ended")
	}
	// Lift pardons: ip2's ban (its own) and offences go.
	if !g.Lift(ip2) || g.Banned(ip2) {
		t.Error("ip2 not lifted")
	}
	if g.Lift(ip3) {
		t.Error("Lift of an address never banned reported a ban")
	}
	for range 3 {
		g.LoginFailed(ip2)
	}
	if bans := g.Bans(); len(bans) != 1 || bans[0].Offences != 1 || bans[0].Until.Sub(c.now()) != 10*time.Minute {
		// The fleet's offences went with the lift too: a first offence.
		t.Errorf("Bans after lift and new failures = %v, want a first offence", bans)
	}
	g.SetShared([]Ban{{Addr: ip3, Until: c.now().Add(time.Minute), Offences: 1}})
	if !g.Lift(ip3) || g.Banned(ip3) {
		t.Error("a shared ban was not lifted")
	}
}

// A fleet's daemons count failures together: this daemon's and those the
// others report add up to the threshold, whichever arrives last.
func TestSharedFailures(t *testing.T) {
	d := Defender{Enabled: true, Threshold: 10, Window: time.Minute, BanTime: 10 * time.Minute, MaxBanTime: time.Hour,
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	g, c, calls := newGuard(Limits{}, d)
	if got := g.TakeFailures(); got != nil {
		t.Fatalf("first TakeFailures = %v, want nil (it starts the tracking)", got)
	}
	for range 4 {
		g.LoginFailed(ip1)
	}
	got := g.TakeFailures()
	if len(got) != 1 || got[0].Addr != ip1 || got[0].Count != 4 || !got[0].Last.Equal(c.t) {
		t.Fatalf("TakeFailures = %+v, want ip1 with 4", got)
	}
	if got := g.TakeFailures(); len(got) != 0 {
		t.Fatalf("nothing changed, TakeFailures = %+v", got)
	}
	// The others saw 5: 9 in all, no ban yet; the tenth, here, bans.
	g.SetSharedFailures(map[netip.Addr]int{ip1: 5})
	if g.Banned(ip1) {
		t.Fatal("banned at 9 failures in all")
	}
	g.LoginFailed(ip1)
	if !g.Banned(ip1) || len(*calls) != 1 {
		t.Fatalf("not banned at 4+1 here and 5 elsewhere (bans made %d)", len(*calls))
	}
	// The ban reset the count, and says so.
	if got := g.TakeFailures(); len(got) != 1 || got[0].Count != 0 {
		t.Fatalf("after the ban, TakeFailures = %+v, want ip1 with 0", got)
	}
	// The others' reports alone reach it: banned when they arrive, with no
	// failure here.
	g.SetSharedFailures(map[netip.Addr]int{ip2: 10, netip.MustParseAddr("198.51.100.7"): 50})
	if !g.Banned(ip2) || len(*calls) != 2 {
		t.Fatalf("ip2 with 10 failures elsewhere not banned (bans made %d)", len(*calls))
	}
	if g.Banned(netip.MustParseAddr("198.51.100.7")) {
		t.Fatal("an allowed address was banned")
	}
	// Failures here that left the window do not count with the others'.
	c.add(time.Hour)
	ip3 := netip.MustParseAddr("192.0.2.3")
	for range 6 {
		g.LoginFailed(ip3)
	}
	c.add(2 * time.Minute)
	g.SetSharedFailures(map[netip.Addr]int{ip3: 6})
	if g.Banned(ip3) {
		t.Fatal("banned with failures here older than the window")
	}
}
