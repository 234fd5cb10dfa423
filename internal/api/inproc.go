package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
)

// The web console (package console) changes the daemon through the API's
// own operations, in process: the same routes, validation, scope checks
// and events, with the console's logged-in admin as the caller instead of
// a bearer token's. So a partner created in the console is created, and
// recorded, exactly as one created over HTTP.

// Admin is who calls an operation in process: an admin.users name or an
// API key's, with its scope, from the address they logged in from.
type Admin struct {
	Name  string
	Scope string // config.ScopeRead | config.ScopeAdmin
	Addr  netip.Addr
	// Credential is the version of the access the admin logged in with
	// (see Credential): a reload that changes it ends the console session.
	Credential string
}

// adminCtx is the context key of an in-process caller. Only Do sets it:
// nothing a network client sends can put a value in a request's context.
type adminCtx struct{}

// Do runs the operation method path (e.g. "POST", "/api/v1/partners") as
// a, with body (nil: none) sent as JSON, and decodes the answer into out
// (nil: ignored). An error answer is returned as its *Error; an answer
// with a failure status but a document of its own (getHealth's 503) is
// decoded into out, and returned as an *Error with that status too.
func (s *Server) Do(ctx context.Context, a Admin, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	r, err := http.NewRequestWithContext(context.WithValue(ctx, adminCtx{}, a), method, path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.RemoteAddr = netip.AddrPortFrom(a.Addr, 0).String()
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	s.mux.ServeHTTP(w, r)
	if w.status >= 400 {
		var e struct {
			Error *Error `json:"error"`
		}
		if err := json.Unmarshal(w.body.Bytes(), &e); err == nil && e.Error != nil {
			e.Error.Status = w.status
			return e.Error
		}
		// A failure that answers with its document (getHealth's 503):
		// out gets it, and the error says the status.
		if out != nil {
			if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
				return fmt.Errorf("decode %s %s: %w", method, path, err)
			}
		}
		return &Error{Status: w.status, Code: "status", Message: fmt.Sprintf("%s %s: %s", method, path, http.StatusText(w.status))}
	}
	if out == nil || w.body.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// inProcess is the caller Do put in r's context, if any.
func inProcess(r *http.Request) (*caller, bool) {
	a, ok := r.Context().Value(adminCtx{}).(Admin)
	if !ok {
		return nil, false
	}
	return &caller{name: a.Name, scope: a.Scope, addr: a.Addr}, true
}

// recorder is the http.ResponseWriter of an in-process call. The API's
// answers are JSON bounded by what it builds (a listing of partners or
// events), held whole.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Login finds the API key token is, for the console's login form: as a
// bearer token is checked (admin.token_file's is not accepted there: the
// console names its admins). A wrong key counts in the defender.
func (s *Server) Login(ctx context.Context, addr netip.Addr, token string) (Admin, error) {
	k, e := s.findKey(ctx, token)
	if e != nil {
		return Admin{}, e
	}
	if k == nil {
		if s.o.Defender != nil {
			s.o.Defender.LoginFailed(addr)
		}
		s.log.Warn("login", "remote", addr.String(), "outcome", "failed", "err", "unknown API key", "via", "console")
		return Admin{}, unauthorized("invalid API key")
	}
	return Admin{Name: k.name, Scope: k.scope, Addr: addr, Credential: k.credential}, nil
}
