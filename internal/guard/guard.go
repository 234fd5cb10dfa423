// Package guard decides which connections may proceed, before any
// authentication work: it counts connections (in total, per address, per
// user, and those not yet logged in) against the configured limits, and it
// bans addresses that keep failing to log in (the defender). SFTP and FTPS
// both ask it, so a partner's brute force or runaway script is stopped the
// same way on either protocol.
package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Limits are the connection limits; a value below 1 means no limit.
type Limits struct {
	MaxConnections     int
	MaxPerIP           int
	MaxPerUser         int
	MaxUnauthenticated int
}

// Defender configures bans. A disabled defender never bans.
type Defender struct {
	Enabled    bool
	Threshold  int           // failed logins...
	Window     time.Duration // ...within this window ban the address
	BanTime    time.Duration // doubled on each repeat offence...
	MaxBanTime time.Duration // ...up to this
	Allow      []netip.Prefix
}

// Refusals. Their text is what a client is told.
var (
	ErrBanned          = errors.New("too many failed logins from your address; try again later")
	ErrTooMany         = errors.New("server busy: too many connections")
	ErrTooManyFromIP   = errors.New("too many connections from your address")
	ErrTooManyUnauth   = errors.New("server busy: too many connections logging in")
	ErrTooManyForUser  = errors.New("too many sessions for this user")
	errTicketLoggedIn  = errors.New("guard: ticket already logged in")
	maxTracked         = 100_000 // addresses with failure records; oldest dropped beyond
	failuresPerAddress = 64      // timestamps kept per address
)

// Guard is safe for concurrent use.
type Guard struct {
	limits Limits
	def    Defender
	log    *slog.Logger
	now    func() time.Time
	onBan  func(Ban) // called (outside the lock) with each ban g makes

	mu      sync.Mutex
	total   int
	unauth  int
	perIP   map[netip.Addr]int
	perUser map[string]int
	records map[netip.Addr]*record
	// checks counts the password checks in flight (queued or hashing) per
	// address; bounded by the admitted connections, which each run one.
	checks map[netip.Addr]int
	// shared is a fleet's ban set as last read (SetShared): the bans every
	// daemon made, this one's included once written, and those expired
	// but not yet deleted, whose offences still count.
	shared map[netip.Addr]Ban
	// othersFailed is a fleet's failed logins per address within the
	// window as the other daemons last reported them (SetSharedFailures);
	// changed lists the addresses whose own count changed since the last
	// TakeFailures, for the fleet (nil without one: nobody takes them).
	othersFailed map[netip.Addr]int
	changed      map[netip.Addr]bool
}

type record struct {
	failures []time.Time // within the window
	offences int         // bans so far
	until    time.Time   // banned until
	last     time.Time
}

// Ban is one banned address, for `wharf defender list`.
type Ban struct {
	Addr     netip.Addr `json:"addr"`
	Until    time.Time  `json:"until"`
	Offences int        `json:"offences"`
}

// New returns a guard. onBan, if not nil, is called with each ban the
// guard makes: the daemon lists it in a file, a fleet writes it to its
// shared set (never the guard: it makes no I/O).
func New(l Limits, d Defender, log *slog.Logger, onBan func(Ban)) *Guard {
	return &Guard{
		limits: l, def: d, log: log.With("component", "guard"), now: time.Now, onBan: onBan,
		perIP: map[netip.Addr]int{}, perUser: map[string]int{}, records: map[netip.Addr]*record{},
		checks: map[netip.Addr]int{},
	}
}

// AddrOf extracts the IP of a connection's remote address.
func AddrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Ticket is one admitted connection. Close it when the connection ends.
type Ticket struct {
	g        *Guard
	addr     netip.Addr
	user     string
	loggedIn bool
	closed   bool
}

// Admit decides whether a new connection from addr may proceed. It is
// called before any protocol work, so a banned address costs nothing.
func (g *Guard) Admit(addr netip.Addr) (*Ticket, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bannedLocked(addr) {
		return nil, ErrBanned
	}
	switch {
	case over(g.total, g.limits.MaxConnections):
		return nil, ErrTooMany
	case over(g.perIP[addr], g.limits.MaxPerIP):
		return nil, ErrTooManyFromIP
	case over(g.unauth, g.limits.MaxUnauthenticated):
		return nil, ErrTooManyUnauth
	}
	g.total++
	g.unauth++
	g.perIP[addr]++
	return &Ticket{g: g, addr: addr}, nil
}

func over(n, limit int) bool { return limit > 0 && n >= limit }

// LoggedIn moves the connection from "logging in" to user's sessions,
// refusing it when the user already has as many as allowed.
func (t *Ticket) LoggedIn(user string) error {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.loggedIn || t.closed {
		return errTicketLoggedIn
	}
	if over(g.perUser[user], g.limits.MaxPerUser) {
		return ErrTooManyForUser
	}
	t.loggedIn, t.user = true, user
	g.unauth--
	g.perUser[user]++
	return nil
}

// Close releases the connection's place. It is idempotent.
func (t *Ticket) Close() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	g.total--
	if g.perIP[t.addr]--; g.perIP[t.addr] <= 0 {
		delete(g.perIP, t.addr)
	}
	if !t.loggedIn {
		g.unauth--
		return
	}
	if g.perUser[t.user]--; g.perUser[t.user] <= 0 {
		delete(g.perUser, t.user)
	}
}

// Banned reports whether addr is banned now; a login attempt already under
// way from it is refused without checking the credentials.
func (g *Guard) Banned(addr netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bannedLocked(addr)
}

func (g *Guard) bannedLocked(addr netip.Addr) bool {
	now := g.now()
	if b, ok := g.shared[addr]; ok && now.Before(b.Until) {
		return true
	}
	r := g.records[addr]
	if r == nil || r.until.IsZero() {
		return false
	}
	if now.Before(r.until) {
		return true
	}
	r.until = time.Time{}
	g.log.Info("unban", "addr", addr.String())
	return false
}

// LoginFailed scores a failed login from addr and bans it past the
// threshold. Each repeat offence doubles the ban, up to MaxBanTime.
func (g *Guard) LoginFailed(addr netip.Addr) {
	if !g.def.Enabled || g.allowed(addr) {
		return
	}
	g.mu.Lock()
	now := g.now()
	r := g.records[addr]
	if r == nil {
		g.pruneLocked(now)
		r = &record{}
		g.records[addr] = r
	}
	r.last = now
	cut := now.Add(-g.def.Window)
	r.failures = slices.DeleteFunc(r.failures, func(t time.Time) bool { return t.Before(cut) })
	if len(r.failures) < failuresPerAddress {
		r.failures = append(r.failures, now)
	}
	if g.changed != nil {
		g.changed[addr] = true
	}
	made, ok := g.scoreLocked(addr, r, now)
	g.mu.Unlock()
	if ok {
		g.banned(made)
	}
}

// scoreLocked bans addr if its failures within the window, this daemon's
// and those the fleet's other daemons reported, reach the threshold.
func (g *Guard) scoreLocked(addr netip.Addr, r *record, now time.Time) (Ban, bool) {
	// A ban of the fleet's in force counts as this daemon's own: the
	// failures of logins already under way when it arrived do not ban the
	// address again, for longer.
	shared := g.shared[addr]
	if len(r.failures)+g.othersFailed[addr] < g.def.Threshold || now.Before(r.until) || now.Before(shared.Until) {
		return Ban{}, false
	}
	// Offences the fleet recorded count as this daemon's: a partner banned
	// by one daemon and failing again on another gets the doubled ban.
	offences := max(r.offences, shared.Offences)
	ban := g.def.BanTime << min(offences, 30)
	if ban <= 0 || ban > g.def.MaxBanTime {
		ban = g.def.MaxBanTime
	}
	r.offences = offences + 1
	r.until = now.Add(ban)
	r.failures = nil
	if g.changed != nil {
		g.changed[addr] = true // its count is 0 again
	}
	return Ban{Addr: addr, Until: r.until.UTC(), Offences: r.offences}, true
}

// banned logs a ban scoreLocked made and hands it on; outside the lock.
func (g *Guard) banned(b Ban) {
	g.log.Warn("ban", "addr", b.Addr.String(), "duration", b.Until.Sub(g.now()).Round(time.Second).String(), "offences", b.Offences, "failures", g.def.Threshold)
	if g.onBan != nil {
		g.onBan(b)
	}
}

// Failures is one address's failed logins within the window as this
// daemon counts them, for a fleet's other daemons.
type Failures struct {
	Addr  netip.Addr
	Count int       // 0: none any more (banned, lifted, or aged out)
	Last  time.Time // the latest failure
}

// TakeFailures returns the addresses whose count changed since the last
// call, with their counts now. The first call starts the tracking: a
// daemon without a fleet never calls it, and keeps no such set.
func (g *Guard) TakeFailures() []Failures {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changed == nil {
		g.changed = map[netip.Addr]bool{}
		return nil
	}
	out := make([]Failures, 0, len(g.changed))
	for a := range g.changed {
		f := Failures{Addr: a}
		if r := g.records[a]; r != nil && len(r.failures) > 0 {
			f.Count, f.Last = len(r.failures), r.failures[len(r.failures)-1]
		}
		out = append(out, f)
	}
	clear(g.changed)
	return out
}

// SetSharedFailures puts in force the failed logins per address within
// the window that a fleet's other daemons reported, and bans the
// addresses whose failures, theirs and this daemon's, reach the
// threshold now: a partner whose attempts the balancer spreads over N
// daemons is banned after threshold failures in all, not N × threshold.
func (g *Guard) SetSharedFailures(others map[netip.Addr]int) {
	if !g.def.Enabled {
		return
	}
	g.mu.Lock()
	g.othersFailed = others
	now := g.now()
	cut := now.Add(-g.def.Window)
	var made []Ban
	for addr, n := range others {
		if n <= 0 || g.allowed(addr) {
			continue
		}
		r := g.records[addr]
		if r == nil {
			if n < g.def.Threshold {
				continue
			}
			g.pruneLocked(now)
			r = &record{last: now}
			g.records[addr] = r
		}
		r.failures = slices.DeleteFunc(r.failures, func(t time.Time) bool { return t.Before(cut) })
		if b, ok := g.scoreLocked(addr, r, now); ok {
			made = append(made, b)
		}
	}
	g.mu.Unlock()
	for _, b := range made {
		g.banned(b)
	}
}

// SetShared puts a fleet's ban set, as just read, in force: an address
// banned there is refused here too, until its ban ends. Expired bans still
// in the set are kept for their offences. It reports whether the addresses
// banned now changed.
func (g *Guard) SetShared(bans []Ban) bool {
	m := make(map[netip.Addr]Ban, len(bans))
	for _, b := range bans {
		if g.allowed(b.Addr) {
			continue // defender.allow: never banned here, whoever banned it
		}
		if old, ok := m[b.Addr]; !ok || b.Until.After(old.Until) {
			m[b.Addr] = b
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.bansLocked()
	g.shared = m
	return !slices.Equal(before, g.bansLocked())
}

// Lift ends addr's ban, this daemon's and the fleet's as last read, and
// forgets its failures and offences: an operator's pardon. It reports
// whether addr was banned.
func (g *Guard) Lift(addr netip.Addr) bool {
	g.mu.Lock()
	banned := g.bannedLocked(addr)
	delete(g.records, addr)
	if g.changed != nil {
		g.changed[addr] = true
	}
	if _, ok := g.shared[addr]; ok {
		// Replaced, not changed: SetShared's maps are never written.
		m := maps.Clone(g.shared)
		delete(m, addr)
		g.shared = m
	}
	g.mu.Unlock()
	if banned {
		g.log.Info("ban lifted", "addr", addr.String())
	}
	return banned
}

// StartCheck registers a password check from addr, before it queues for
// hashing. beyond reports that addr already had share or more checks in
// flight: an address that floods the server with attempts is then scored
// before any hashing, so that it reaches its ban without making the
// server hash for it first. done ends the check; call it exactly once.
func (g *Guard) StartCheck(addr netip.Addr, share int) (done func(), beyond bool) {
	g.mu.Lock()
	beyond = g.checks[addr] >= share
	g.checks[addr]++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.checks[addr]--; g.checks[addr] <= 0 {
				delete(g.checks, addr)
			}
			g.mu.Unlock()
		})
	}, beyond
}

func (g *Guard) allowed(addr netip.Addr) bool {
	for _, p := range g.def.Allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// pruneLocked forgets addresses with no ban in force and no recent
// failure, and bounds the table so a scan from many addresses cannot grow
// it without limit.
func (g *Guard) pruneLocked(now time.Time) {
	if len(g.records) < maxTracked {
		return
	}
	for a, r := range g.records {
		if now.After(r.until) && now.Sub(r.last) > g.def.Window {
			delete(g.records, a)
		}
	}
	for a := range g.records { // still full: drop arbitrary entries
		if len(g.records) < maxTracked {
			break
		}
		delete(g.records, a)
	}
}

// Bans lists the addresses banned now, by this daemon or its fleet.
func (g *Guard) Bans() []Ban {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bansLocked()
}

func (g *Guard) bansLocked() []Ban {
	now := g.now()
	var out []Ban
	for a, r := range g.records {
		if now.Before(r.until) {
			b := Ban{Addr: a, Until: r.until.UTC(), Offences: r.offences}
			if s, ok := g.shared[a]; ok && now.Before(s.Until) {
				b.Until, b.Offences = maxTime(b.Until, s.Until.UTC()), max(b.Offences, s.Offences)
			}
			out = append(out, b)
		}
	}
	for a, s := range g.shared {
		if r := g.records[a]; now.Before(s.Until) && (r == nil || !now.Before(r.until)) {
			out = append(out, Ban{Addr: a, Until: s.Until.UTC(), Offences: s.Offences})
		}
	}
	slices.SortFunc(out, func(x, y Ban) int { return x.Addr.Compare(y.Addr) })
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// String describes the limits, for the start-up log.
func (l Limits) String() string {
	return fmt.Sprintf("total=%d per_ip=%d per_user=%d unauthenticated=%d", l.MaxConnections, l.MaxPerIP, l.MaxPerUser, l.MaxUnauthenticated)
}
