// Package console is the web console on the admin listener, at /: HTML
// pages rendered on the server from embedded templates and one stylesheet
// (no script, no CDN: it works offline). Every change goes through the
// admin API's own operations in process (api.Server.Do), so it is
// validated, scoped and recorded as an event naming the admin exactly as
// an API call is.
//
// Admins log in with an admin.users password or an admin.api_keys key;
// a failed login counts in the defender. Sessions live in memory with an
// expiry; the cookie is HttpOnly, SameSite=Strict, and Secure when the
// console is served over TLS. Every form carries a CSRF token: a POST
// without the right one is refused with 403.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/onboard"
)

//go:embed assets
var assets embed.FS

// Options are what New needs.
type Options struct {
	API *api.Server
	// Users are admin.users; their hashes were checked by daemon.Check.
	// SetUsers replaces them while the console serves (a reload).
	Users []config.AdminUser
	// Defender scores failed logins and refuses banned addresses.
	Defender api.Defender
	// Packet builds user's onboarding packet for partners connecting to
	// host, with the key files just issued (nil: none).
	Packet func(ctx context.Context, user, host string, ids []onboard.Identity) (*onboard.Packet, error)
	Log    *slog.Logger
}

// Session limits: an admin is logged out after idle without a request,
// or lifetime after logging in; at most maxSessions are kept (logging in
// beyond that drops the oldest).
const (
	idle        = time.Hour
	lifetime    = 12 * time.Hour
	maxSessions = 1000
	// maxPasswordChecks bounds the password hashes verified at once (19
	// MiB each with argon2id's defaults).
	maxPasswordChecks = 2
	hashWait          = 5 * time.Second
	// issuedFor is how long a generated private key stays available for
	// the packet's download after the partner is created.
	issuedFor = 15 * time.Minute
	// maxForm bounds a form's body: the largest is a partner with a
	// pasted public key.
	maxForm = 64 << 10
)

const (
	sessionCookie = "wharf_console"
	loginCookie   = "wharf_login" // the login form's CSRF token (double submit)
)

// Server is the console's http.Handler.
type Server struct {
	o      Options
	log    *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	users  atomic.Pointer[passwords] // admin.users in force (SetUsers)
	checks chan struct{}

	mu       sync.Mutex
	sessions map[string]*session
}

// session is a logged-in admin.
type session struct {
	id      string
	admin   api.Admin
	csrf    string
	started time.Time
	seen    time.Time
	flash   string
	issued  *issued // the last generated key, for the packet
}

// passwords is one version of admin.users, never changed once built.
type passwords struct {
	byName map[string]password
	dummy  *auth.Secret // verified for unknown names, so timing does not tell them
}

type password struct {
	secret     *auth.Secret
	credential string // api.Credential(name, admin, password_hash)
}

func newPasswords(users []config.AdminUser) (*passwords, error) {
	p := &passwords{byName: map[string]password{}}
	for i, u := range users {
		sec, err := auth.ParseSecret(u.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("admin.users[%d].password_hash: %w", i, err)
		}
		p.byName[u.Name] = password{secret: sec, credential: api.Credential(u.Name, config.ScopeAdmin, u.PasswordHash)}
		if p.dummy == nil {
			p.dummy = sec
		}
	}
	return p, nil
}

// issued is a private key handed out once, kept briefly in memory so that
// the packet can include it. A generated password is not: packets never
// hold one.
type issued struct {
	user    string
	openssh string
	ppk     string
	until   time.Time
}

// New builds the console.
func New(o Options) (*Server, error) {
	s := &Server{o: o, mux: http.NewServeMux(), sessions: map[string]*session{},
		checks: make(chan struct{}, maxPasswordChecks)}
	s.log = o.Log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "console")
	users, err := newPasswords(o.Users)
	if err != nil {
		return nil, err
	}
	s.users.Store(users)
	if err := s.parsePages(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the console, every answer with the security headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// CSP allows nothing but the console's own stylesheet and forms: no
// script at all, no inline style, no framing.
const CSP = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// session returns the request's live session, or nil.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[c.Value]
	if ss == nil {
		return nil
	}
	if now.Sub(ss.seen) > idle || now.Sub(ss.started) > lifetime {
		delete(s.sessions, ss.id)
		return nil
	}
	ss.seen = now
	if ss.issued != nil && now.After(ss.issued.until) {
		ss.issued = nil // handed out once, and not kept past issuedFor
	}
	return ss
}

// SetUsers puts users (admin.users, as a reload read them) in force and
// ends every console session whose access is gone or changed: its
// admin.users entry or API key removed, or its password hash, key hash or
// scope changed. Call it after the API's SetKeys, whose keys it consults.
// It returns how many sessions it ended.
func (s *Server) SetUsers(users []config.AdminUser) (int, error) {
	p, err := newPasswords(users)
	if err != nil {
		return 0, err
	}
	s.users.Store(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	ended := 0
	for id, ss := range s.sessions {
		if !s.current(ss.admin) {
			delete(s.sessions, id)
			ended++
			s.log.Info("logout", "admin", ss.admin.Name, "reason", "access changed by a reload")
		}
	}
	return ended, nil
}

// current reports whether a still holds the access it logged in with.
func (s *Server) current(a api.Admin) bool {
	if u, ok := s.users.Load().byName[a.Name]; ok && u.credential == a.Credential {
		return true
	}
	return s.o.API != nil && s.o.API.Current(a)
}

// newSession logs a in, dropping expired sessions and, past
// maxSessions, the oldest. It returns nil when a's access changed while
// it logged in (a reload between its check and now).
func (s *Server) newSession(a api.Admin) *session {
	now := time.Now()
	ss := &session{id: randomToken(), admin: a, csrf: randomToken(), started: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(a) {
		return nil
	}
	var oldest *session
	for id, o := range s.sessions {
		if now.Sub(o.seen) > idle || now.Sub(o.started) > lifetime {
			delete(s.sessions, id)
			continue
		}
		if oldest == nil || o.started.Before(oldest.started) {
			oldest = o
		}
	}
	if len(s.sessions) >= maxSessions && oldest != nil {
		delete(s.sessions, oldest.id)
	}
	s.sessions[ss.id] = ss
	return ss
}

func (s *Server) endSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss.id)
	s.mu.Unlock()
}

// setFlash and takeFlash carry a message over a redirect.
func (s *Server) setFlash(ss *session, msg string) {
	s.mu.Lock()
	ss.flash = msg
	s.mu.Unlock()
}

func (s *Server) takeFlash(ss *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := ss.flash
	ss.flash = ""
	return m
}

func (s *Server) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// authed wraps a page that needs a logged-in admin; for a POST, the
// session's CSRF token too.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, ss *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss := s.session(r)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if ss == nil || !sameToken(r.PostFormValue("csrf"), ss.csrf) {
				http.Error(w, "forbidden: missing or wrong CSRF token; reload the page", http.StatusForbidden)
				return
			}
		}
		if ss == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		h(w, r, ss)
	})
}

func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// checkPassword verifies name's password under the maxPasswordChecks
// bound, returning the credential it matched ("" for a wrong name or
// password); an unknown name costs a verification too.
func (s *Server) checkPassword(ctx context.Context, name, password string) (credential string, err error) {
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case s.checks <- struct{}{}:
	case <-wait.C:
		return "", errors.New("too many logins at once; try again")
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.checks }()
	users := s.users.Load()
	u, ok := users.byName[name]
	if !ok {
		if users.dummy != nil {
			users.dummy.Verify(password)
		}
		return "", nil
	}
	if !u.secret.Verify(password) {
		return "", nil
	}
	return u.credential, nil
}
