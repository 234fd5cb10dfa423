package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wharf-sftp/wharf/internal/auth"
)

// Server serves /metrics, /healthz, /readyz and, given one, the admin API
// under /api/.
type Server struct {
	http *http.Server
	log  *slog.Logger
}

// Options are the admin listener's settings.
type Options struct {
	// Token, when it holds one, is required as a bearer token on
	// everything but /healthz; it may change while the server runs (nil:
	// none).
	Token *auth.Token
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// API, when not nil, serves /api/ (package api), which authenticates
	// its callers itself: the token, or an API key.
	API http.Handler
	// Console, when not nil, serves the web console at / (package
	// console), which logs its admins in itself.
	Console http.Handler
}

// NewServer builds the handler. ready reports why the daemon cannot serve
// (nil: ready).
func NewServer(m *Metrics, o Options, ready func() error, log *slog.Logger) *Server {
	token := o.Token
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", bearer(token, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})))
	mux.Handle("GET /metrics", bearer(token, promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})))
	if o.API != nil {
		mux.Handle("/api/", o.API)
	}
	if o.Console != nil {
		mux.Handle("/", o.Console)
	}
	if o.Pprof {
		mux.Handle("/debug/pprof/", bearer(token, longWrite(http.HandlerFunc(pprof.Index))))
		mux.Handle("/debug/pprof/cmdline", bearer(token, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", bearer(token, longWrite(http.HandlerFunc(pprof.Profile))))
		mux.Handle("/debug/pprof/symbol", bearer(token, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", bearer(token, longWrite(http.HandlerFunc(pprof.Trace))))
	}
	return &Server{
		log: log.With("component", "admin"),
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
		},
	}
}

// longWrite lifts the server's write timeout for profiles and traces,
// which answer only after the ?seconds= they were asked to sample.
func longWrite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

// bearer requires "Authorization: Bearer <token>" when token holds one
// at start (admin.token_file is set, and may change only to another
// token), checked against the token in force at each request.
func bearer(token *auth.Token, next http.Handler) http.Handler {
	if token.Get() == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !token.Matches(presented) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wharf"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("listening", "proto", "http", "addr", ln.Addr().String())
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// Close stops the server at once.
func (s *Server) Close() error { return s.http.Close() }
