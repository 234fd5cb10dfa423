// Package api is the admin REST API under /api/v1/ on the admin listener:
// partners (the users of the config, edited through package configedit as
// `wharf user` edits them), live sessions, recent events, bans and health,
// JSON in and out. The OpenAPI document (openapi.json, served at
// /api/openapi.json) is the one list of routes: New serves each operation
// it names with the handler of that operationId, under the scope it gives.
//
// Callers authenticate with a bearer token: admin.token_file's (every
// right) or an admin.api_keys entry's (its scope). A wrong one counts as a
// failed login of the caller's address in the defender. Every change made
// here is an event (user.created, ...) naming the admin, delivered to the
// hooks and the audit log like a transfer's.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/onboard"
	"github.com/wharf-sftp/wharf/internal/session"
)

// Control is what the API reads and changes of the running daemon.
type Control interface {
	// Editor edits the users as `wharf user` does; nil when the daemon's
	// config was not loaded from a file.
	Editor() *configedit.Editor
	// Sessions lists the live sessions; CloseSession closes one by its ID
	// and reports whether it was live.
	Sessions() []session.Info
	CloseSession(id string) bool
	// Bans lists the bans in force here (the fleet's included, as last
	// read); LiftBan lifts one here and, with state_url, in the fleet.
	Bans() []guard.Ban
	LiftBan(ctx context.Context, addr netip.Addr) (Lifted, error)
	// Health runs what /readyz checks, every one of them.
	Health(ctx context.Context) []Check
}

// Lifted says where LiftBan found a ban.
type Lifted struct {
	Here  bool // this daemon had it (its own, or the fleet's as last read)
	Fleet int  // ban objects deleted from state_url's set
}

// Check is one readiness check: Err nil when it passed.
type Check struct {
	Name string
	Err  error
}

// Defender is the part of the guard that scores failed authentications.
type Defender interface {
	Banned(netip.Addr) bool
	LoginFailed(netip.Addr)
}

// Options are what New needs.
type Options struct {
	// Token is admin.token_file's bearer token (nil or empty: none), which
	// may change while the API serves. Its bearer may do everything, and
	// is named config.TokenAdmin in events.
	Token *auth.Token
	// Keys are admin.api_keys; their hashes were checked by daemon.Check.
	// SetKeys replaces them while the API serves (a reload).
	Keys    []config.APIKey
	Control Control
	// Recent holds the recent events and last logins; Events is where the
	// API's own events go (the audit log and hooks, through Recent).
	Recent *Recent
	Events events.Sink
	// Packet builds a partner's onboarding packet for partners connecting
	// to host (the daemon reads its config and identity); nil: no packets.
	Packet func(ctx context.Context, user, host string, ids []onboard.Identity) (*onboard.Packet, error)
	// Doctor runs `wharf doctor`'s checks against the daemon and returns
	// the report (a *doctor.Report: package doctor speaks SFTP and FTPS,
	// which the API does not import); nil: none.
	Doctor   func(ctx context.Context) any
	Defender Defender
	Log      *slog.Logger
}

// maxHashChecks bounds the API key verifications running at once: each
// is a full password hash (19 MiB with the argon2id defaults), and a
// stream of wrong keys must not take the machine's memory or CPU before
// the defender bans their address.
const maxHashChecks = 2

// hashWait bounds the wait of a request for a verification slot.
const hashWait = 5 * time.Second

// Server is the API's http.Handler, mounted on /api/ by package admin.
type Server struct {
	o      Options
	log    *slog.Logger
	mux    *http.ServeMux
	keys   atomic.Pointer[keyring] // admin.api_keys in force (SetKeys)
	checks chan struct{}           // semaphore of maxHashChecks
}

// keyring is one version of admin.api_keys, never changed once built:
// SetKeys swaps in a new one, so a request checks its token against one
// version whole, and a key the new version dropped or changed stops
// working at once (its digest is known only to the old version).
type keyring struct {
	keys []apiKey

	mu    sync.Mutex
	known map[[sha256.Size]byte]*apiKey // digest of a key verified before -> its entry
}

type apiKey struct {
	name, scope string
	secret      *auth.Secret
	credential  string // Credential(name, scope, key_hash)
}

// newKeyring parses keys (admin.api_keys).
func newKeyring(keys []config.APIKey) (*keyring, error) {
	kr := &keyring{known: map[[sha256.Size]byte]*apiKey{}}
	for i, k := range keys {
		sec, err := auth.ParseSecret(k.KeyHash)
		if err != nil {
			return nil, fmt.Errorf("admin.api_keys[%d].key_hash: %w", i, err)
		}
		kr.keys = append(kr.keys, apiKey{name: k.Name, scope: k.Scope, secret: sec, credential: Credential(k.Name, k.Scope, k.KeyHash)})
	}
	return kr, nil
}

// Credential identifies one version of an admin's access: the name, the
// scope and the hash of the secret (an admin.users password_hash, an
// admin.api_keys key_hash). The console keeps it with each session and
// ends the session when a reload changes or removes it (Admin.Credential).
func Credential(name, scope, hash string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + scope + "\x00" + hash))
	return hex.EncodeToString(sum[:])
}

// SetKeys puts keys (admin.api_keys, as a reload read them) in force: the
// next request is checked against them. A request already authenticated
// finishes as the key it presented.
func (s *Server) SetKeys(keys []config.APIKey) error {
	kr, err := newKeyring(keys)
	if err != nil {
		return err
	}
	s.keys.Store(kr)
	return nil
}

// Current reports whether a, logged in with an API key, still holds it:
// the key in force under a's name has a's scope and secret.
func (s *Server) Current(a Admin) bool {
	for _, k := range s.keys.Load().keys {
		if k.name == a.Name {
			return k.credential == a.Credential
		}
	}
	return false
}

// caller is who made a request.
type caller struct {
	name  string // the API key's, or config.TokenAdmin
	scope string
	addr  netip.Addr
}

// handler serves one operation. It returns the status and the body to
// send as JSON (nil: none), or an error (*Error, or one of configedit's,
// which errors.go maps).
type handler func(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error)

// New builds the API from the operations of the OpenAPI document.
func New(o Options) (*Server, error) {
	s := &Server{o: o, mux: http.NewServeMux(), checks: make(chan struct{}, maxHashChecks)}
	s.log = o.Log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "api")
	if s.o.Events == nil {
		s.o.Events = events.Discard{}
	}
	if err := s.SetKeys(o.Keys); err != nil {
		return nil, err
	}
	ops, err := Operations()
	if err != nil {
		return nil, err
	}
	handlers := s.handlers()
	methods := map[string][]string{} // path -> methods, for 405
	for _, op := range ops {
		h, ok := handlers[op.ID]
		if !ok {
			return nil, fmt.Errorf("openapi.json: operation %s has no handler", op.ID)
		}
		delete(handlers, op.ID)
		s.mux.Handle(op.Method+" "+op.Path, s.serve(op, h))
		methods[op.Path] = append(methods[op.Path], op.Method)
	}
	for id := range handlers {
		return nil, fmt.Errorf("handler %s is not an operation of openapi.json", id)
	}
	paths := http.NewServeMux()
	for p, m := range methods {
		allow := strings.Join(m, ", ")
		paths.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "this path allows " + allow})
		})
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if _, pat := paths.Handler(r); pat != "" {
			paths.ServeHTTP(w, r)
			return
		}
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route; see /api/openapi.json"})
	})
	return s, nil
}

func (s *Server) handlers() map[string]handler {
	return map[string]handler{
		"getOpenAPI":    s.getOpenAPI,
		"getHealth":     s.getHealth,
		"listPartners":  s.listPartners,
		"createPartner": s.createPartner,
		"getPartner":    s.getPartner,
		"updatePartner": s.updatePartner,
		"deletePartner": s.deletePartner,
		"addKey":        s.addKey,
		"removeKey":     s.removeKey,
		"rotateKeys":    s.rotateKeys,
		"getPacket":     s.getPacket,
		"runDoctor":     s.runDoctor,
		"listSessions":  s.listSessions,
		"closeSession":  s.closeSession,
		"listEvents":    s.listEvents,
		"listBans":      s.listBans,
		"liftBan":       s.liftBan,
	}
}

// ServeHTTP serves /api/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// serve authenticates and authorizes a request for op, then runs h.
func (s *Server) serve(op Operation, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, local := inProcess(r)
		if !local {
			c = &caller{addr: remoteAddr(r)}
		}
		if op.Scope != ScopeNone && !local {
			var err *Error
			if c, err = s.authenticate(r); err != nil {
				writeError(w, err)
				return
			}
		}
		if op.Scope == config.ScopeAdmin && c.scope != config.ScopeAdmin {
			writeError(w, &Error{Status: http.StatusForbidden, Code: "forbidden",
				Message: fmt.Sprintf("API key %q has scope %s; %s needs scope admin", c.name, c.scope, op.ID)})
			return
		}
		status, body, err := h(w, r, c)
		if err != nil {
			e := s.apiError(err)
			if e.Status >= 500 {
				s.log.Error("request failed", "op", op.ID, "admin", c.name, "err", err)
			}
			writeError(w, e)
			return
		}
		if f, ok := body.(file); ok {
			f.write(w, status)
			return
		}
		writeJSON(w, status, body)
	})
}

// file is an answer that is a file, not JSON: the onboarding packet.
type file struct {
	contentType, name string
	data              []byte
}

func (f file) write(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.name}))
	w.WriteHeader(status)
	_, _ = w.Write(f.data)
}

// authenticate finds who presents the request's bearer token.
func (s *Server) authenticate(r *http.Request) (*caller, *Error) {
	c := &caller{addr: remoteAddr(r)}
	if s.o.Token.Get() == "" && len(s.keys.Load().keys) == 0 {
		return nil, unauthorized("the admin API needs admin.token_file or admin.api_keys in the config")
	}
	if s.o.Defender != nil && s.o.Defender.Banned(c.addr) {
		return nil, &Error{Status: http.StatusForbidden, Code: "banned", Message: "too many failed logins from this address; wait for the ban to end"}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, unauthorized("missing bearer token: send Authorization: Bearer <admin token or API key>")
	}
	if s.o.Token.Matches(token) {
		c.name, c.scope = config.TokenAdmin, config.ScopeAdmin
		return c, nil
	}
	k, err := s.findKey(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if k == nil {
		if s.o.Defender != nil {
			s.o.Defender.LoginFailed(c.addr)
		}
		s.log.Warn("login", "remote", c.addr.String(), "outcome", "failed", "err", "unknown bearer token")
		return nil, unauthorized("invalid bearer token")
	}
	c.name, c.scope = k.name, k.scope
	return c, nil
}

// findKey returns the API key in force that token is, or nil. A key once
// verified is known by its digest: hashing runs for the first request of
// each key, and for wrong keys, under the maxHashChecks bound.
func (s *Server) findKey(ctx context.Context, token string) (*apiKey, *Error) {
	kr := s.keys.Load()
	if len(kr.keys) == 0 {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(token))
	kr.mu.Lock()
	k, ok := kr.known[sum]
	kr.mu.Unlock()
	if ok {
		return k, nil
	}
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case s.checks <- struct{}{}:
	case <-wait.C:
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "too many API key checks at once; try again"}
	case <-ctx.Done():
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "request ended"}
	}
	defer func() { <-s.checks }()
	var found *apiKey
	for j := range kr.keys {
		// Every key is tried, so that the time taken does not tell which
		// one matched.
		if kr.keys[j].secret.Verify(token) && found == nil {
			found = &kr.keys[j]
		}
	}
	if found != nil {
		kr.mu.Lock()
		kr.known[sum] = found
		kr.mu.Unlock()
	}
	return found, nil
}

func unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
}

// remoteAddr is the request's client address, as the defender counts it.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// emit records a change the caller made.
func (s *Server) emit(c *caller, e events.Event) {
	e.Protocol, e.Remote, e.Admin, e.Outcome = events.ProtocolAPI, c.addr.String(), c.name, "ok"
	s.o.Events.Emit(e)
	attrs := []any{"admin", c.name, "remote", e.Remote, "type", e.Type}
	for _, kv := range [][2]string{{"user", e.User}, {"fingerprint", e.Fingerprint}, {"session", e.Session}, {"addr", e.Addr}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	if len(e.Changes) > 0 {
		attrs = append(attrs, "changes", e.Changes)
	}
	s.log.Info("admin change", attrs...)
}

// editor is the users' editor, or the error of a daemon without one.
func (s *Server) editor() (*configedit.Editor, error) {
	if ed := s.o.Control.Editor(); ed != nil {
		return ed, nil
	}
	return nil, &Error{Status: http.StatusConflict, Code: "not_editable",
		Message: "the daemon's config was not loaded from a file: its users cannot be read or edited here"}
}
