// Package ftpd is the FTPS front end: github.com/fclairamb/ftpserverlib
// over the same users (package auth), sessions and confined filesystem
// (packages session and vfs) as SFTP. It adds only what FTP needs: TLS on
// every connection, passive data ports, and the check that data
// connections resume the control connection's TLS session.
package ftpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/wharf-sftp/wharf/internal/session"
)

// proto is the protocol name FTPS users are checked against and logged with.
const proto = "ftps"

// Config is what a Server needs; the daemon builds it.
type Config struct {
	Certificate *Certificate
	// RequireReuse refuses data connections that do not resume the control
	// connection's TLS session (tls_session_reuse: required).
	RequireReuse bool
	// PassivePorts is the inclusive range for data connections; 0, 0 lets
	// the kernel choose.
	PassivePorts [2]int
	// PublicHost is the IP announced for passive connections; "" announces
	// the address the client connected to.
	PublicHost string
	// Gate admits connections, decides logins and opens sessions.
	Gate *session.Gate
	Log  *slog.Logger
	// LoginTimeout closes a connection that has not logged in (default 30s).
	LoginTimeout time.Duration
	// IdleTimeout closes a session with no command for this long; 0: never.
	IdleTimeout time.Duration
	// PassiveTimeout closes a passive listener nobody connected to (default
	// 30s); MaxPassivePerUser bounds one user's passive listeners (0: none).
	PassiveTimeout    time.Duration
	MaxPassivePerUser int
	// WrapData, when set, wraps each passive data listener: the PROXY
	// protocol, for a balancer that forwards the passive ports and says
	// whose data connection it carries. The data connection's address is
	// then the partner's, as the control connection's is.
	WrapData func(net.Listener) net.Listener
}

// Server serves FTPS on an explicit (AUTH TLS) listener, an implicit one,
// or both.
type Server struct {
	cfg          Config
	loginTimeout time.Duration
	log          *slog.Logger
	tls          *tls.Config
	conns        tracker   // one per control connection, from connect to disconnect
	files        tracker   // files open for a transfer (ftpserverlib closes them on its own goroutines)
	serving      tracker   // Serve loops running
	live         *registry // control connections, by the goroutine serving them
	pasv         *passives // passive listeners held by each session and user
	raw          sync.Map  // accepted control sockets not yet claimed by ClientConnected

	mu      sync.Mutex
	servers []*ftpserver.FtpServer
	closed  bool
}

// New checks cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Certificate == nil || cfg.Gate == nil || cfg.Log == nil {
		return nil, errors.New("ftpd: Certificate, Gate and Log are required")
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 30 * time.Second
	}
	if cfg.PassiveTimeout <= 0 {
		cfg.PassiveTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, loginTimeout: cfg.LoginTimeout, log: cfg.Log.With("component", "ftpd"), tls: tlsConfig(cfg.Certificate, cfg.RequireReuse),
		live: newRegistry(), pasv: newPassives(cfg.PassiveTimeout, cfg.MaxPassivePerUser)}
	s.log.Info("tls certificate", "fingerprint", cfg.Certificate.Fingerprint())
	return s, nil
}

// ServeExplicit serves FTPS with AUTH TLS on ln until Shutdown or Close.
func (s *Server) ServeExplicit(ln net.Listener) error {
	return s.serve(tracking{ln, &s.raw, &s.conns}, ftpserver.MandatoryEncryption, "explicit")
}

// ServeImplicit serves FTPS with TLS from the first byte on ln.
func (s *Server) ServeImplicit(ln net.Listener) error {
	// ftpserverlib wraps only the listeners it creates itself.
	return s.serve(tls.NewListener(tracking{ln, &s.raw, &s.conns}, s.tls), ftpserver.ImplicitEncryption, "implicit")
}

// tracking records each accepted control connection by remote address.
// Ending a session closes that socket: the library's own goroutine then
// sees the connection fail and cleans up. Calling the library's
// ClientContext.Close from another goroutine races with it (ftpserverlib
// v0.32.3 writes its state without a lock).
//
// It also counts the connection in conns, at once: the library starts the
// connection's goroutine, which calls ClientConnected and, always, in the
// end ClientDisconnected (which counts it out), only after Accept returned;
// counted any later, a Shutdown in between would find nothing to wait for
// and return while that goroutine still runs.
type tracking struct {
	net.Listener
	raw   *sync.Map // remote address -> net.Conn
	conns *tracker
}

func (l tracking) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.conns.Add(1)
		l.raw.Store(c.RemoteAddr().String(), c)
	}
	return c, err
}

func (s *Server) serve(ln net.Listener, mode ftpserver.TLSRequirement, name string) error {
	d := &driver{srv: s, settings: s.settings(ln, mode)}
	fs := ftpserver.NewFtpServer(d)
	fs.Logger = slog.New(floor{s.log.Handler(), slog.LevelWarn})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.servers = append(s.servers, fs)
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	if err := fs.Listen(); err != nil {
		return fmt.Errorf("ftpd: %w", err)
	}
	s.log.Info("listening", "proto", proto, "mode", name, "addr", ln.Addr().String())
	if err := fs.Serve(); err != nil {
		return fmt.Errorf("ftpd: %w", err)
	}
	return nil
}

func (s *Server) settings(ln net.Listener, mode ftpserver.TLSRequirement) *ftpserver.Settings {
	st := &ftpserver.Settings{
		Listener:          ln,
		PublicHost:        s.cfg.PublicHost,
		Banner:            "wharf FTPS: AUTH TLS, then log in", // no version: it only helps attackers
		TLSRequired:       mode,
		DisableActiveMode: true, // active mode makes the server connect out: FXP and bounce attacks
		// Data connections come from the control connection's address.
		PasvConnectionsCheck: ftpserver.IPMatchRequired,
		IdleTimeout:          int(s.cfg.IdleTimeout / time.Second),
		ConnectionTimeout:    30,
		EnableHASH:           true,
		// Files travel byte for byte whatever TYPE says, as on SFTP: an
		// EDI file's checksum must survive the trip.
		DisableASCIIConversion: true,
		DisableSite:            true,
	}
	if p := s.cfg.PassivePorts; p[0] != 0 {
		st.PassiveTransferPortRange = ftpserver.PortRange{Start: p[0], End: p[1]}
	}
	return st
}

// Shutdown stops accepting, then waits for control connections, their
// transfers and the Serve loops to end until ctx is done. Then it closes
// every socket (control connections logged in or not, passive listeners),
// waits a bounded time for ftpserverlib's goroutines to see that and end,
// and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopListeners()
	if s.drained(ctx) {
		return nil
	}
	s.closeAll()
	bound, cancel := context.WithTimeout(context.Background(), forceWait)
	defer cancel()
	if !s.drained(bound) {
		s.log.Warn("connections still open after forced close", "wait", forceWait.String())
	}
	return ctx.Err()
}

// drained waits for the Serve loops, control connections and open
// transfer files to end.
func (s *Server) drained(ctx context.Context) bool {
	return s.serving.wait(ctx) && s.conns.wait(ctx) && s.files.wait(ctx)
}

// Close stops accepting and closes every FTPS connection at once, without
// waiting.
func (s *Server) Close() error {
	s.stopListeners()
	s.closeAll()
	return nil
}

// closeAll closes every control socket, claimed or not, and every passive
// listener. Closing a socket is what ends a connection from outside the
// library's goroutine (see tracking).
func (s *Server) closeAll() {
	for _, c := range s.live.all() {
		c.close()
	}
	s.raw.Range(func(k, v any) bool {
		v.(net.Conn).Close()
		return true
	})
	s.pasv.closeAll()
}

func (s *Server) stopListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, fs := range s.servers {
		_ = fs.Stop()
	}
}

// floor drops the library's records below a level: its info lines
// duplicate ours.
type floor struct {
	slog.Handler
	min slog.Level
}

func (f floor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f floor) WithAttrs(as []slog.Attr) slog.Handler { return floor{f.Handler.WithAttrs(as), f.min} }
func (f floor) WithGroup(g string) slog.Handler       { return floor{f.Handler.WithGroup(g), f.min} }
