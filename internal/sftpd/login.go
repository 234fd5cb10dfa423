package sftpd

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/guard"
)

// permKey names the principal a successful callback stored, in the
// ssh.Permissions that x/crypto hands back after the handshake.
const permKey = "wharf-principal"

// proto is the protocol name this front end logs in users for.
const proto = "sftp"

// errLogin is all a client learns about a failed attempt.
var errLogin = errors.New("authentication failed")

// errNotHere is logged for a valid login on a listener the user may not use.
var errNotHere = errors.New("user not allowed on this listener")

// login holds one connection's authentication state. x/crypto calls the
// public key callback for queries as well as for signed attempts, so a
// callback's success is not yet a login: the principal is picked only
// after the handshake, from the Permissions x/crypto reports.
type login struct {
	users *auth.Directory
	log   *slog.Logger
	allow []string // nil: every user
	guard *guard.Guard
	addr  netip.Addr
	// failed reports a failed login (the events); it is called as the
	// guard is: per wrong password, once per connection for keys.
	failed      func(method, user string, err error)
	lastKeyUser string
	lastKeyErr  error
	// keyFailed records a refused public key. Clients offer several keys
	// in turn, so key refusals count as one failed login per connection,
	// scored when the connection ends without a login.
	keyFailed bool

	mu         sync.Mutex
	principals map[string]*auth.Principal
}

func newLogin(users *auth.Directory, allow []string, g *guard.Guard, addr netip.Addr, failed func(method, user string, err error), log *slog.Logger) *login {
	return &login{users: users, allow: allow, guard: g, addr: addr, failed: failed, log: log, principals: make(map[string]*auth.Principal)}
}

func (l *login) attempt(c ssh.ConnMetadata) auth.Attempt {
	return auth.Attempt{Protocol: proto, User: c.User(), Remote: l.addr}
}

// failedHandshake scores a connection that ended without a login after
// refusing a key (password failures were scored one by one).
func (l *login) failedHandshake() {
	l.mu.Lock()
	failed, user, err := l.keyFailed, l.lastKeyUser, l.lastKeyErr
	l.mu.Unlock()
	if failed {
		l.guard.LoginFailed(l.addr)
		l.failed(auth.MethodPublicKey, user, err)
	}
}

// refused reports a user who may not log in on this listener at all.
func (l *login) refused(user string) bool {
	return l.allow != nil && !slices.Contains(l.allow, user)
}

func (l *login) accept(p *auth.Principal) *ssh.Permissions {
	// x/crypto caches callback results per (user, key), so the name must
	// include the user: one key may be accepted for two users in a row.
	key := p.User + "\x00" + p.Method + "\x00" + p.Fingerprint
	l.mu.Lock()
	l.principals[key] = p
	l.mu.Unlock()
	return &ssh.Permissions{Extensions: map[string]string{permKey: key}}
}

func (l *login) principal(perms *ssh.Permissions) *auth.Principal {
	if perms == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.principals[perms.Extensions[permKey]]
}

func (l *login) fail(user, method, fingerprint string, err error) error {
	l.log.Warn("login", "user", user, "method", method, "fingerprint", fingerprint, "outcome", "failed", "err", err)
	return errLogin
}

func (l *login) publicKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if l.guard.Banned(l.addr) {
		return nil, l.fail(c.User(), auth.MethodPublicKey, auth.Fingerprint(key), guard.ErrBanned)
	}
	p, err := l.users.VerifyKey(l.attempt(c), key)
	if err == nil && l.refused(c.User()) {
		err = errNotHere
	}
	if err != nil {
		l.mu.Lock()
		l.keyFailed, l.lastKeyUser, l.lastKeyErr = true, c.User(), err
		l.mu.Unlock()
		return nil, l.fail(c.User(), auth.MethodPublicKey, auth.Fingerprint(key), err)
	}
	return l.accept(p), nil
}

func (l *login) password(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	if l.guard.Banned(l.addr) {
		return nil, l.fail(c.User(), auth.MethodPassword, "", guard.ErrBanned)
	}
	p, err := l.users.VerifyPassword(l.attempt(c), string(password))
	if err == nil && l.refused(c.User()) {
		err = errNotHere
	}
	if err != nil {
		l.guard.LoginFailed(l.addr)
		l.failed(auth.MethodPassword, c.User(), err)
		return nil, l.fail(c.User(), auth.MethodPassword, "", err)
	}
	return l.accept(p), nil
}

// keyboardInteractive asks for the password once: FileZilla, WinSCP and
// PuTTY often prefer this method to plain "password".
func (l *login) keyboardInteractive(c ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	answers, err := client("", "", []string{"Password: "}, []bool{false})
	if err != nil {
		return nil, err
	}
	if len(answers) != 1 {
		return nil, l.fail(c.User(), auth.MethodPassword, "", errors.New("no answer to the password prompt"))
	}
	return l.password(c, []byte(answers[0]))
}

// serverConfig builds the SSH configuration for one connection, bound to
// that connection's login state.
func (s *Server) serverConfig(l *login) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion:               "SSH-2.0-wharf", // no version number: it only helps attackers
		PublicKeyCallback:           l.publicKey,
		PasswordCallback:            l.password,
		KeyboardInteractiveCallback: l.keyboardInteractive,
		MaxAuthTries:                6,
	}
	for _, k := range s.signers {
		cfg.AddHostKey(k)
	}
	s.cfg.Algorithms.apply(cfg)
	return cfg
}
