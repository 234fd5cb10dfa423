package session

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/doctor/pass"
	"github.com/wharf-sftp/wharf/internal/guard"
)

// What a client is told when it is turned away after admission. Both
// protocols send the same words; the reason goes to the log only.
var (
	ErrLogin           = errors.New("login failed: invalid credentials")
	ErrHomeUnavailable = errors.New("home directory unavailable")
)

// errNotHere is logged for a valid login on a listener the user may not use.
var errNotHere = fmt.Errorf("%w: user not allowed on this listener", auth.ErrInvalidCredentials)

// GateConfig is what a Gate needs; the daemon builds it.
type GateConfig struct {
	// Users returns the user directory in force now; a reload swaps it.
	Users    func() *auth.Directory
	Guard    *guard.Guard
	Sessions *Manager
	Checks   CheckLimits
	// Doctor admits the one-time identities of `wharf doctor` (doctor.go);
	// nil: none.
	Doctor *pass.Verifier
}

// Gate is the one login sequence of both protocols: admission, ban check,
// credential verification (password hashing under a bounded budget),
// failure scoring, the login event and log line, and session open. sftpd
// and ftpd call it and only translate its outcome into their protocol.
type Gate struct {
	users    func() *auth.Directory
	guard    *guard.Guard
	sessions *Manager
	checks   *checkSlots
	doctor   *pass.Verifier
}

// NewGate returns the gate; a nil Guard admits everybody and bans nobody.
func NewGate(c GateConfig) *Gate {
	g := c.Guard
	if g == nil {
		g = guard.New(guard.Limits{}, guard.Defender{}, slog.New(slog.DiscardHandler), nil)
	}
	return &Gate{users: c.Users, guard: g, sessions: c.Sessions, checks: newCheckSlots(c.Checks), doctor: c.Doctor}
}

// PasswordChecks reports the password checks hashing now and those waiting
// for room (the operator's metrics).
func (g *Gate) PasswordChecks() (running, waiting int) {
	return int(g.checks.running.Load()), int(g.checks.waiting.Load())
}

// Sessions is the registry the gate opens sessions in.
func (g *Gate) Sessions() *Manager { return g.sessions }

// Login is one connection's way through the gate, from admission to an
// open session. Its methods are safe for concurrent use: x/crypto may call
// the SSH callbacks from the connection's handshake goroutine only, but
// the front ends close a Login from elsewhere.
type Login struct {
	g     *Gate
	proto string
	id    string
	addr  netip.Addr
	// Log carries the connection's attributes (proto, conn_id, remote);
	// Open adds the user.
	Log    *slog.Logger
	ticket *guard.Ticket
	only   []string // nil: every user may log in here

	mu sync.Mutex
	// A client offers its keys in turn, so refused keys count as one failed
	// login per connection, scored by Close when no session was opened.
	keyUser string
	keyErr  error
	opened  bool
	closed  bool
}

// Admit decides whether a new connection may proceed, before any protocol
// work, so that a banned or over-limit address costs nothing. id is the
// connection's conn_id and log already carries its attributes. The
// returned Login must be closed when the connection ends.
func (g *Gate) Admit(proto, id string, addr netip.Addr, log *slog.Logger) (*Login, error) {
	t, err := g.guard.Admit(addr)
	if err != nil {
		log.Warn("refused", "err", err)
		return nil, err
	}
	return &Login{g: g, proto: proto, id: id, addr: addr, Log: log, ticket: t}, nil
}

// Only restricts this connection to the named users (a listener of their
// own, such as the legacy SFTP one). Call it before the first attempt.
func (l *Login) Only(users []string) { l.only = users }

func (l *Login) attempt(user string) auth.Attempt {
	return auth.Attempt{Protocol: l.proto, User: user, Remote: l.addr}
}

// Key decides a public key login. A refusal is not scored at once: see
// Close.
func (l *Login) Key(user string, key ssh.PublicKey) (*auth.Principal, error) {
	fp := auth.Fingerprint(key)
	if l.g.guard.Banned(l.addr) {
		return nil, l.logFailure(user, auth.MethodPublicKey, fp, guard.ErrBanned)
	}
	if pass.IsUser(user) {
		return l.doctorKey(user, key, fp)
	}
	p, err := l.g.users().VerifyKey(l.attempt(user), key)
	if err == nil && !l.allowed(user) {
		err = errNotHere
	}
	if err != nil {
		l.mu.Lock()
		// The login_failed event names one refusal per connection: an
		// expired key, once offered, is the one the operator needs to
		// hear of, not the unknown keys a client tries next.
		if !errors.Is(l.keyErr, auth.ErrKeyExpired) || errors.Is(err, auth.ErrKeyExpired) {
			l.keyUser, l.keyErr = user, err
		}
		l.mu.Unlock()
		l.logFailure(user, auth.MethodPublicKey, fp, err)
		return nil, ErrLogin
	}
	return p, nil
}

// Password decides a password login. The hash runs under the gate's
// budget: an attempt that cannot start within the wait fails as a failed
// login without hashing, and an address with more attempts in flight than
// its share is scored before any hashing, so that a flood reaches its ban
// instead of the server's memory.
func (l *Login) Password(user, password string) (*auth.Principal, error) {
	const method = auth.MethodPassword
	if l.g.guard.Banned(l.addr) {
		return nil, l.logFailure(user, method, "", guard.ErrBanned)
	}
	if pass.IsUser(user) {
		return l.doctorPassword(user, password)
	}
	done, beyond := l.g.guard.StartCheck(l.addr, l.g.checks.share)
	defer done()
	if beyond {
		l.g.guard.LoginFailed(l.addr)
	}
	check := l.g.users().PasswordCheck(l.attempt(user))
	release, err := l.g.checks.acquire(check.Cost())
	if err != nil {
		return nil, l.failed(user, method, fmt.Errorf("%w: %w", auth.ErrInvalidCredentials, err), !beyond)
	}
	// The flood this attempt queued behind may have got its address banned.
	if l.g.guard.Banned(l.addr) {
		release()
		return nil, l.logFailure(user, method, "", guard.ErrBanned)
	}
	p, err := check.Verify(password)
	release()
	if err == nil && !l.allowed(user) {
		err = errNotHere
	}
	if err != nil {
		return nil, l.failed(user, method, err, !beyond)
	}
	return p, nil
}

func (l *Login) allowed(user string) bool {
	return l.only == nil || slices.Contains(l.only, user)
}

// failed records a refused password: scored by the defender unless that
// was done before hashing, an event, a log line. It returns what the
// client is told.
func (l *Login) failed(user, method string, err error, score bool) error {
	if score {
		l.g.guard.LoginFailed(l.addr)
	}
	l.g.sessions.loginFailed(l.proto, method, user, l.addr, err)
	return l.logFailure(user, method, "", err)
}

// logFailure writes the "login failed" line and returns the client's words
// for err: a ban says so, anything else is ErrLogin.
func (l *Login) logFailure(user, method, fingerprint string, err error) error {
	attrs := []any{"user", user, "method", method}
	if fingerprint != "" {
		attrs = append(attrs, "fingerprint", fingerprint)
	}
	l.Log.Warn("login", append(attrs, "outcome", "failed", "err", err)...)
	if errors.Is(err, guard.ErrBanned) {
		return guard.ErrBanned
	}
	return ErrLogin
}

// Open turns an authenticated principal into a session: the user's place
// in the connection limits, the home, the login event and log line.
// closeConn is how a reload or shutdown ends the connection. The error
// is what the client is told.
func (l *Login) Open(p *auth.Principal, closeConn func()) (*Session, error) {
	log := l.Log.With("user", p.User)
	attrs := []any{"method", p.Method}
	if p.Fingerprint != "" {
		attrs = append(attrs, "fingerprint", p.Fingerprint)
	}
	if err := l.ticket.LoggedIn(p.User); err != nil {
		log.Warn("login", append(attrs, "outcome", "failed", "err", err)...)
		return nil, err
	}
	s, err := l.g.sessions.Open(l.id, p, log, closeConn)
	if err != nil {
		log.Error("open session", "err", err)
		return nil, ErrHomeUnavailable
	}
	l.mu.Lock()
	l.opened = true
	l.mu.Unlock()
	log.Info("login", append(attrs, "outcome", "ok")...)
	return s, nil
}

// Close ends the connection's passage: a connection that refused a key and
// never logged in is scored as one failed login, and its place in the
// connection limits is released. It is idempotent; it does not close the
// session Open returned.
func (l *Login) Close() {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	user, err, opened := l.keyUser, l.keyErr, l.opened
	l.mu.Unlock()
	if !first {
		return
	}
	if err != nil && !opened {
		l.g.guard.LoginFailed(l.addr)
		l.g.sessions.loginFailed(l.proto, auth.MethodPublicKey, user, l.addr, err)
	}
	l.ticket.Close()
}
