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
	API   *api.Server
	Users []config.AdminUser // admin.users; their hashes were checked by daemon.Check
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
	users  map[string]*auth.Secret
	dummy  *auth.Secret // verified for unknown names, so timing does not tell them
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
	s := &Server{o: o, mux: http.NewServeMux(), users: map[string]*auth.Secret{}, sessions: map[string]*session{},
		checks: make(chan struct{}, maxPasswordChecks)}
	s.log = o.Log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "console")
	for i, u := range o.Users {
		sec, err := auth.ParseSecret(u.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("admin.users[%d].password_hash: %w", i, err)
		}
		s.users[u.Name] = sec
		if s.dummy == nil {
			s.dummy = sec
		}
	}
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

// newSession logs a in, dropping expired sessions and, past
// maxSessions, the oldest.
func (s *Server) newSession(a api.Admin) *session {
	now := time.Now()
	ss := &session{id: randomToken(), admin: a, csrf: randomToken(), started: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
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
// bound; an unknown name costs a verification too.
func (s *Server) checkPassword(ctx context.Context, name, password string) (bool, error) {
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case s.checks <- struct{}{}:
	case <-wait.C:
		return false, errors.New("too many logins at once; try again")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.checks }()
	sec, ok := s.users[name]
	if !ok {
		if s.dummy != nil {
			s.dummy.Verify(password)
		}
		return false, nil
	}
	return sec.Verify(password), nil
}
