// Package daemon is wharf's composition root: it turns a config into a
// user directory, a storage backend, a session manager and the protocol
// front ends, binds their listeners and runs them until told to stop.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-sftp/wharf/internal/admin"
	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/console"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/fleet"
	"github.com/wharf-sftp/wharf/internal/ftpd"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/proxyproto"
	"github.com/wharf-sftp/wharf/internal/regfile"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/session"
	"github.com/wharf-sftp/wharf/internal/sftpd"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// ErrForced is returned by Run when the shutdown grace ran out (or Close
// was called) and live transfers were cut.
var ErrForced = errors.New("forced shutdown: connections were closed before they finished")

// Check runs every check start-up runs that needs no I/O: the config's own
// validation (done by config.Parse) and the parsing of keys and password
// hashes. `wharf config check` and start-up share it.
func Check(cfg *config.Config) (*auth.Directory, error) {
	dir, err := auth.NewDirectory(cfg.Users)
	errs := []error{err}
	errs = append(errs, checkAdminAccess(cfg)...)
	errs = append(errs, checkAlgorithms(cfg, "sftp", sftpAlgorithms(cfg.SFTP))...)
	if l := cfg.SFTP.Legacy; l.Listen != "" {
		errs = append(errs, checkAlgorithms(cfg, "sftp.legacy", legacyAlgorithms(l))...)
	}
	if err := config.JoinErrors(errs); err != nil {
		return nil, err
	}
	return dir, nil
}

// sftpAlgorithms is the main listener's set: the safe defaults unless the
// operator listed others.
func sftpAlgorithms(c config.SFTP) sftpd.Algorithms {
	return sftpd.DefaultAlgorithms().With(c.KexAlgorithms, c.Ciphers, c.MACs, nil)
}

func legacyAlgorithms(l config.Legacy) sftpd.Algorithms {
	return sftpd.DefaultAlgorithms().With(l.KexAlgorithms, l.Ciphers, l.MACs, l.HostKeyAlgorithms)
}

// checkAlgorithms reports names the SSH library does not implement:
// x/crypto would silently drop them.
func checkAlgorithms(cfg *config.Config, prefix string, a sftpd.Algorithms) []error {
	var errs []error
	for field, idx := range a.Unknown() {
		for _, i := range idx {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("%s.%s[%d]", prefix, field, i), "unknown algorithm"))
		}
	}
	return errs
}

// Daemon is a running wharf.
type Daemon struct {
	cfg      *config.Config
	log      *slog.Logger
	users    atomic.Pointer[auth.Directory]
	backend  vfs.Backend
	sessions *session.Manager
	guard    *guard.Guard
	gate     *session.Gate
	metrics  *admin.Metrics
	events   *events.Bus
	recent   *api.Recent        // the admin API's recent events; nil without admin.listen (api.go)
	serving  atomic.Bool        // listeners accepting: what /readyz reports
	proxy    *proxyproto.Policy // nil: no PROXY protocol (proxy.go)
	state    *fleet.State       // nil: no state_url (state.go)
	unlock   func()             // releases state_dir (lockStateDir)
	cert     *ftpd.Certificate  // FTPS's and admin.tls's, once loaded (certificate)
	// expiryWake wakes the expiry cutter after a reload (expiry.go).
	expiryWake chan struct{}
	bans       *fleet.Syncer // the fleet's bans; nil without state_url
	bansFile   sync.Mutex    // one writer of state_dir's ban file (saveBans)

	admin   *admin.Server
	adminLn net.Listener
	api     *api.Server // nil without admin.listen
	token   *auth.Token // admin.token_file's, re-read by the watcher (reloadToken); nil without admin.listen
	// tokenErr is the last failure to re-read admin.token_file, logged
	// once until it changes (the watcher's alone).
	tokenErr string
	console  *console.Server // nil without admin.listen
	// probe reads state_url's folder for /readyz; nil without state_url.
	probe *s3store.Objects
	rl    reloader     // hot reload: the config in force (reload.go)
	ub    *usersBucket // the poller of a users_dir in a bucket; nil: none (users_bucket.go)

	sftp   *sftpd.Server
	sftpLn net.Listener

	legacy   *sftpd.Server // SSH with the legacy algorithm set, for named users
	legacyLn net.Listener

	ftps           *ftpd.Server
	ftpsLn         net.Listener // explicit (AUTH TLS)
	ftpsImplicitLn net.Listener

	closeOnce sync.Once
	forced    atomic.Bool
}

// New builds every part from cfg and binds the listeners, so that a bad
// address or a port in use fails start-up rather than the first login.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{log: log, expiryWake: make(chan struct{}, 1)}
	d.metrics = admin.NewMetrics(admin.Sources{
		Sessions: d.sessionsByProtocol,
		Bans:     func() int { return len(d.guard.Bans()) },
		Hooks:    d.hookStats,
		// The gate is built below; nothing scrapes before New returns.
		PasswordChecks: func() (int, int) { return d.gate.PasswordChecks() },
	})
	// A users_dir in a bucket: cfg comes from config.Load without its
	// users, which are read here.
	ub, cfg, err := openUsersBucket(cfg, log, d.metrics.S3Request)
	if err != nil {
		return nil, err
	}
	dir, err := Check(cfg)
	if err != nil {
		return nil, err
	}
	d.cfg, d.ub = cfg, ub
	d.users.Store(dir)
	d.watchExpiries()

	// state_dir's lock is taken first: see lockStateDir.
	if d.unlock, err = lockStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := d.openEvents(); err != nil {
		d.unlock()
		return nil, err
	}
	d.backend, err = openStorage(cfg, log, d.metrics)
	if err != nil {
		d.events.Close()
		d.unlock()
		return nil, fmt.Errorf("storage: %w", err)
	}
	d.sessions = session.NewManager(d.backend)
	// Only hooks and the audit log read an upload's hash; without them
	// nobody would see it.
	d.sessions.SetUploadHashes(len(cfg.Hooks) > 0 || cfg.AuditLog.Path != "")
	if cfg.Admin.Listen != "" {
		d.recent = api.NewRecent(cfg.Admin.RecentEventsOrDefault())
		// The audit log's tail: the events of before this start.
		if p := cfg.AuditLog.Path; p != "" && p != "-" {
			if n, err := d.recent.Seed(p); err != nil {
				log.Warn("recent events: the audit log's tail is not read", "component", "api", "err", err)
			} else if n > 0 {
				log.Info("recent events: read the audit log's tail", "component", "api", "events", n)
			}
		}
	}
	d.sessions.SetEvents(doctorFilter{d.metrics.Sink(d.eventSink())})
	d.guard = newGuard(cfg, log, d.banned)
	checks := checkLimits(cfg.Limits)
	d.gate = session.NewGate(session.GateConfig{Users: d.users.Load, Guard: d.guard, Sessions: d.sessions, Checks: checks,
		Doctor: d.doctorVerifier()})
	log.Info("password checks", "component", "session", "limits", checks.String())
	d.initReload(cfg)

	d.proxy, err = newProxyPolicy(cfg, log, d.metrics)
	if err == nil {
		err = d.openState()
	}
	if err == nil && cfg.SFTP.Listen != "" {
		err = d.setupSFTP()
	}
	if err == nil && (cfg.FTPS.Listen != "" || cfg.FTPS.ImplicitListen != "") {
		err = d.setupFTPS()
	}
	if err == nil && cfg.Admin.Listen != "" {
		err = d.setupAdmin()
	}
	if err != nil {
		d.closeListeners()
		d.events.Close()
		d.backend.Close()
		d.unlock()
		return nil, err
	}
	log.Info("started", "users", dir.Len(), "storage", cfg.Storage.Backend)
	return d, nil
}

func (d *Daemon) setupSFTP() error {
	keys, err := d.hostKeys()
	if err != nil {
		return err
	}
	for _, k := range keys {
		d.log.Info("host key", "component", "sftpd", "type", k.PublicKey().Type(), "fingerprint", auth.Fingerprint(k.PublicKey()))
	}
	d.sftp, err = sftpd.New(sftpd.Config{
		HostKeys:     keys,
		Gate:         d.gate,
		Log:          d.log,
		LoginTimeout: d.cfg.Limits.LoginTimeout,
		Algorithms:   sftpAlgorithms(d.cfg.SFTP),
		IdleTimeout:  d.cfg.Limits.IdleTimeout,
		MaxHandles:   d.cfg.Limits.MaxHandlesPerSession,
	})
	if err != nil {
		return err
	}
	d.sftpLn, err = d.listen(d.cfg.SFTP.Listen)
	if err != nil {
		return fmt.Errorf("sftp listener: %w", err)
	}
	if l := d.cfg.SFTP.Legacy; l.Listen != "" {
		d.legacy, err = sftpd.New(sftpd.Config{
			HostKeys:     keys,
			Gate:         d.gate,
			Log:          d.log.With("listener", "legacy"),
			LoginTimeout: d.cfg.Limits.LoginTimeout,
			Algorithms:   legacyAlgorithms(l),
			AllowUsers:   l.Users,
			IdleTimeout:  d.cfg.Limits.IdleTimeout,
			MaxHandles:   d.cfg.Limits.MaxHandlesPerSession,
		})
		if err != nil {
			return fmt.Errorf("legacy listener: %w", err)
		}
		if d.legacyLn, err = d.listen(l.Listen); err != nil {
			return fmt.Errorf("legacy sftp listener: %w", err)
		}
	}
	return nil
}

func (d *Daemon) setupFTPS() error {
	f := d.cfg.FTPS
	cert, err := d.certificate()
	if err != nil {
		return err
	}
	first, last, err := f.PassivePortRange()
	if err != nil {
		return err // validated already; kept for safety
	}
	d.ftps, err = ftpd.New(ftpd.Config{
		Certificate:  cert,
		RequireReuse: f.TLSSessionReuse == "required",
		PassivePorts: [2]int{first, last},
		PublicHost:   f.PublicHost,
		Gate:         d.gate,
		Log:          d.log,
		LoginTimeout: d.cfg.Limits.LoginTimeout,
		IdleTimeout:  d.cfg.Limits.IdleTimeout,

		PassiveTimeout:    f.PassiveTimeout,
		MaxPassivePerUser: f.PassivePerUser(),
		WrapData:          d.wrapData(),
	})
	if err != nil {
		return err
	}
	if f.Listen != "" {
		if d.ftpsLn, err = d.listen(f.Listen); err != nil {
			return fmt.Errorf("ftps listener: %w", err)
		}
	}
	if f.ImplicitListen != "" {
		if d.ftpsImplicitLn, err = d.listen(f.ImplicitListen); err != nil {
			return fmt.Errorf("ftps implicit listener: %w", err)
		}
	}
	return nil
}

// closeListeners releases what New bound when start-up fails half way.
func (d *Daemon) closeListeners() {
	for _, ln := range []net.Listener{d.sftpLn, d.legacyLn, d.ftpsLn, d.ftpsImplicitLn, d.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// LegacyAddr is the bound legacy SFTP address, or nil.
func (d *Daemon) LegacyAddr() net.Addr { return addrOf(d.legacyLn) }

// FTPSAddr is the bound explicit FTPS address, or nil.
func (d *Daemon) FTPSAddr() net.Addr { return addrOf(d.ftpsLn) }

// FTPSImplicitAddr is the bound implicit FTPS address, or nil.
func (d *Daemon) FTPSImplicitAddr() net.Addr { return addrOf(d.ftpsImplicitLn) }

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// SFTPAddr is the bound SFTP address (useful with port 0), or nil.
func (d *Daemon) SFTPAddr() net.Addr { return addrOf(d.sftpLn) }

// Run serves until ctx is done, then drains for the configured grace
// before closing what is left. It returns ErrForced when it had to cut
// connections, and a serve error if a listener failed.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.startWatcher()()
	defer d.startBans()()
	defer d.startExpiryWarnings()()
	defer d.startExpiryCuts()()
	// Each listener's Serve runs until shutdown closes it; Run returns
	// only after every one has returned.
	var serving sync.WaitGroup
	serveErr := make(chan error, 5)
	serve := func(f func() error) { serving.Go(func() { serveErr <- f() }) }
	if d.admin != nil {
		serve(func() error { return d.admin.Serve(d.adminLn) })
	}
	if d.sftp != nil {
		serve(func() error { return d.sftp.Serve(d.sftpLn) })
	}
	if d.legacy != nil {
		serve(func() error { return d.legacy.Serve(d.legacyLn) })
	}
	if d.ftpsLn != nil {
		serve(func() error { return d.ftps.ServeExplicit(d.ftpsLn) })
	}
	if d.ftpsImplicitLn != nil {
		serve(func() error { return d.ftps.ServeImplicit(d.ftpsImplicitLn) })
	}
	// Deliveries run until the sessions have drained, so events of
	// transfers that finish during the drain are queued and, where the
	// endpoint answers, delivered.
	deliver, stopDelivery := context.WithCancel(context.Background())
	defer stopDelivery()
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		if err := d.events.Run(deliver); err != nil {
			d.log.Error("event delivery", "err", err)
		}
	}()
	d.serving.Store(true)
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if err == nil {
			err = errors.New("a listener stopped")
		}
		d.log.Error("listener failed", "err", err)
	}
	d.serving.Store(false)
	d.log.Info("shutting down", "grace", d.shutdownGrace().String(), "sessions", len(d.sessions.Live()))
	grace, cancel := context.WithTimeout(context.Background(), d.shutdownGrace())
	defer cancel()
	if sdErr := d.shutdown(grace); sdErr != nil && err == nil {
		err = sdErr
	}
	if d.admin != nil {
		_ = d.admin.Shutdown(grace) // after the drain: /metrics stays up while transfers finish
	}
	serving.Wait() // every listener is closed by now
	stopDelivery()
	<-delivered
	if cerr := d.events.Close(); cerr != nil {
		d.log.Error("close event queue", "err", cerr)
	}
	d.closeOnce.Do(func() { d.backend.Close() })
	d.unlock()
	d.log.Info("stopped")
	return err
}

// shutdown stops accepting, closes sessions as soon as they have no
// transfer in progress, and cuts whatever is left when ctx ends.
func (d *Daemon) shutdown(ctx context.Context) error {
	var fronts []frontEnd
	if d.sftp != nil {
		fronts = append(fronts, d.sftp)
	}
	if d.legacy != nil {
		fronts = append(fronts, d.legacy)
	}
	if d.ftps != nil {
		fronts = append(fronts, d.ftps)
	}
	if len(fronts) == 0 {
		return nil
	}
	drained := make(chan struct{})
	var revoker sync.WaitGroup
	defer revoker.Wait()
	revoker.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			d.sessions.Revoke(func(s *session.Session) bool { return !s.Busy() })
			select {
			case <-drained:
				return
			case <-tick.C:
			}
		}
	})
	errs := make(chan error, len(fronts))
	for _, f := range fronts {
		go func() { errs <- f.Shutdown(ctx) }()
	}
	var cut bool
	for range fronts {
		cut = <-errs != nil || cut
	}
	close(drained)
	if cut || d.forced.Load() {
		return ErrForced
	}
	return nil
}

// frontEnd is what shutdown needs of a protocol server.
type frontEnd interface {
	Shutdown(context.Context) error
	Close() error
}

// Close cuts every connection at once (a second interrupt during the
// drain); Run then returns ErrForced.
func (d *Daemon) Close() {
	d.forced.Store(true)
	if d.sftp != nil {
		d.sftp.Close()
	}
	if d.legacy != nil {
		d.legacy.Close()
	}
	if d.ftps != nil {
		d.ftps.Close()
	}
}

// NewLogger builds the diagnostic logger the config asks for.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (d *Daemon) setupAdmin() error {
	var token string
	if f := d.cfg.Admin.TokenFile; f != "" {
		var err error
		if token, err = readToken(f); err != nil {
			return err
		}
	}
	d.token = auth.NewToken(token)
	if d.cfg.StateURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
		defer cancel()
		var err error
		if d.probe, err = s3store.NewObjects(ctx, s3store.FromConfig(d.cfg.Storage.S3), d.cfg.StateURL,
			s3store.CountRequests(d.metrics.S3Request)); err != nil {
			return fmt.Errorf("admin: state_url: %w", err)
		}
	}
	apiServer, err := d.newAPI(d.token)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	con, err := d.newConsole(apiServer)
	if err != nil {
		return fmt.Errorf("admin console: %w", err)
	}
	d.api, d.console = apiServer, con
	d.admin = admin.NewServer(d.metrics, admin.Options{Token: d.token, Pprof: d.cfg.Admin.Pprof, API: apiServer, Console: con}, d.ready, d.log)
	if d.adminLn, err = net.Listen("tcp", d.cfg.Admin.Listen); err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	if d.cfg.Admin.TLS {
		cert, err := d.certificate()
		if err != nil {
			d.adminLn.Close()
			return fmt.Errorf("admin tls: %w", err)
		}
		d.log.Info("admin tls", "component", "admin", "fingerprint", cert.Fingerprint())
		d.adminLn = tls.NewListener(d.adminLn, &tls.Config{GetCertificate: cert.GetCertificate, MinVersion: tls.VersionTLS12})
	}
	return nil
}

// AdminAddr is the bound admin address, or nil.
func (d *Daemon) AdminAddr() net.Addr { return addrOf(d.adminLn) }

// readyProbe is the object /readyz reads in state_url's folder. It never
// exists: a "not found" answer is the bucket reachable with these
// credentials, one GET per check (stores bill it like any other).
const readyProbe = "readyz-probe"

// readyTimeout bounds the bucket's answer to /readyz, below a balancer's
// usual check timeout.
const readyTimeout = 3 * time.Second

// ready is /readyz: the listeners accept, the storage takes a write and,
// with state_url, the fleet's state bucket answers: a daemon that cannot
// see the shared users, identity and bans is taken out of the balancer.
func (d *Daemon) ready() error {
	for _, c := range d.readyChecks() {
		if err := c.run(); err != nil {
			return err
		}
	}
	return nil
}

// readyCheck is one of /readyz's checks; the admin API's health runs them
// all and shows each.
type readyCheck struct {
	name string
	run  func() error
}

func (d *Daemon) readyChecks() []readyCheck {
	checks := []readyCheck{{"listeners", func() error {
		if !d.serving.Load() {
			return errors.New("listeners not serving")
		}
		return nil
	}}}
	if d.probe != nil {
		checks = append(checks, readyCheck{"state_bucket", d.stateReady})
	}
	return append(checks, readyCheck{"storage", d.storageReady})
}

// stateReady checks that state_url's bucket answers.
func (d *Daemon) stateReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	_, _, err := d.probe.Get(ctx, readyProbe)
	cancel()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.New("state bucket unreachable")
	}
	return nil
}

// storageReady checks that the storage takes a write.
func (d *Daemon) storageReady() error {
	root, err := d.backend.Home("/")
	if err != nil {
		return errors.New("storage unavailable")
	}
	defer root.Close()
	name := "/.wharf-readyz-" + session.NewID()
	u, err := root.Create(name, vfs.CreateOptions{Exclusive: true})
	if err == nil {
		if _, err = u.WriteAt([]byte("ok"), 0); err == nil {
			err = u.Commit()
		} else {
			_ = u.Abort(vfs.ErrDetached)
		}
		if rerr := root.Remove(name); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return errors.New("storage not writable")
	}
	return nil
}

// sessionsByProtocol counts the logged-in sessions, for /metrics.
func (d *Daemon) sessionsByProtocol() map[string]int {
	out := map[string]int{}
	for _, s := range d.sessions.Live() {
		out[s.Principal.Protocol]++
	}
	return out
}

// hookStats reads the delivery state of each hook, for /metrics.
func (d *Daemon) hookStats() map[string]admin.HookStats {
	out := map[string]admin.HookStats{}
	for _, h := range d.events.Stats().Hooks {
		out[h.Name] = admin.HookStats{Queued: int(h.Queued), Delivered: h.Delivered, Failed: h.Failed, Dropped: h.Dropped}
	}
	return out
}

// maxTokenFile bounds admin.token_file: a token is a line.
const maxTokenFile = 64 << 10

// readToken reads admin.token_file: its one line, which must not be empty.
func readToken(file string) (string, error) {
	b, err := regfile.Read(file, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("admin token: %s is empty", file)
	}
	return token, nil
}
