// Package sftpd is the SSH/SFTP front end: the SSH handshake and login
// (delegated to package auth), the "sftp" subsystem served by pkg/sftp's
// request server over the session's filesystem, and nothing else.
package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/session"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("sftpd: server closed")

// sftpOnly is what a client asking for a shell or a command is told.
const sftpOnly = "This service offers SFTP only.\r\n"

// Config is what a Server needs; the daemon builds it.
type Config struct {
	HostKeys []ssh.Signer
	// Gate admits connections, decides logins and opens sessions.
	Gate *session.Gate
	Log  *slog.Logger
	// LoginTimeout bounds the handshake and authentication (default 30s).
	LoginTimeout time.Duration
	// Algorithms offered; the zero value means DefaultAlgorithms.
	Algorithms Algorithms
	// AllowUsers, when not nil, are the only users who may log in here
	// (the legacy listener).
	AllowUsers []string
	// IdleTimeout closes a logged-in connection that moved no byte for
	// this long; 0: never.
	IdleTimeout time.Duration
	// MaxHandles bounds the files and directories one session holds open;
	// 0: no bound.
	MaxHandles int
}

// Server serves SFTP on any number of listeners.
type Server struct {
	cfg     Config
	log     *slog.Logger
	signers []ssh.Signer // host keys restricted to the configured algorithms

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // one per connection
}

var sftpExtensions sync.Once

// New checks cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if len(cfg.HostKeys) == 0 {
		return nil, errors.New("sftpd: no host keys")
	}
	if cfg.Gate == nil || cfg.Log == nil {
		return nil, errors.New("sftpd: Gate and Log are required")
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 30 * time.Second
	}
	if cfg.Algorithms.KeyExchanges == nil {
		cfg.Algorithms = DefaultAlgorithms()
	}
	signers, err := cfg.Algorithms.hostSigners(cfg.HostKeys)
	if err != nil {
		return nil, fmt.Errorf("sftpd: %w", err)
	}
	// Advertise only what we serve: hardlink@openssh.com would always be
	// refused. pkg/sftp keeps this list in a package variable.
	sftpExtensions.Do(func() {
		_ = sftp.SetSFTPExtensions("posix-rename@openssh.com", "statvfs@openssh.com")
	})
	return &Server{
		cfg:       cfg,
		signers:   signers,
		log:       cfg.Log.With("component", "sftpd"),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}, nil
}

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.log.Info("listening", "proto", "sftp", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if transientAccept(err) {
				// Out of file descriptors or similar: back off and keep
				// serving the sessions already open; ending here would
				// let any client that opens enough connections stop the
				// daemon.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", backoff.String())
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("sftpd: accept: %w", err)
		}
		backoff = 0
		if !s.track(nc) {
			nc.Close()
			return ErrServerClosed
		}
		go s.handleConn(nc)
	}
}

// transientAccept reports whether an accept error passes with time: a
// process or system out of descriptors or buffers, or a connection reset
// before it was accepted.
func transientAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, then waits for open connections to end until
// ctx is done, when it closes the rest and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeConns()
	s.wg.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	clear(s.listeners)
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		nc.Close()
	}
}

// handleConn runs one SSH connection from handshake to logout.
func (s *Server) handleConn(nc net.Conn) {
	defer s.untrack(nc)
	defer nc.Close()
	connID := session.NewID()
	log := s.cfg.Log.With("proto", "sftp", "conn_id", connID, "remote", nc.RemoteAddr().String())
	gate, err := s.cfg.Gate.Admit(proto, connID, guard.AddrOf(nc.RemoteAddr()), log)
	if err != nil {
		// RFC 4253 lets a server send lines before its version string:
		// OpenSSH clients show this one.
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(nc, "wharf: "+err.Error()+"\r\n")
		return
	}
	defer gate.Close()
	gate.Only(s.cfg.AllowUsers)

	_ = nc.SetDeadline(time.Now().Add(s.cfg.LoginTimeout))
	idle := newIdleConn(nc)
	login := newLogin(gate)
	sconn, chans, reqs, err := ssh.NewServerConn(idle, s.serverConfig(login))
	if err != nil {
		log.Debug("handshake failed", "err", err)
		return
	}
	defer sconn.Close()
	_ = nc.SetDeadline(time.Time{})
	defer idle.watch(s.cfg.IdleTimeout, func() { log.Info("idle timeout", "idle", s.cfg.IdleTimeout.String()) })()

	p := login.principal(sconn.Permissions)
	if p == nil { // cannot happen: x/crypto only succeeds through our callbacks
		log.Error("login without principal")
		return
	}
	// refuse turns the client away after authentication with a reason it
	// shows ("channel 0: open failed: ...").
	refuse := func(reason ssh.RejectionReason, msg string) {
		var discard sync.WaitGroup
		discard.Go(func() { ssh.DiscardRequests(reqs) })
		for nch := range chans {
			_ = nch.Reject(reason, msg)
		}
		discard.Wait() // reqs closes with the connection, as chans does
	}
	start := time.Now()
	sess, err := gate.Open(p, func() { sconn.Close() })
	if err != nil {
		reason := ssh.ResourceShortage
		if errors.Is(err, session.ErrHomeUnavailable) {
			reason = ssh.ConnectionFailed
		}
		refuse(reason, err.Error())
		return
	}
	log = sess.Log
	defer sess.Close()

	// Global requests (tcpip-forward...) are refused from this loop rather
	// than from a goroutine of their own: one fewer per held session.
	var channels sync.WaitGroup
	for chans != nil || reqs != nil {
		select {
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
			} else if req.WantReply {
				_ = req.Reply(false, nil)
			}
		case nch, ok := <-chans:
			if !ok {
				chans = nil
			} else {
				s.openChannel(sess, nch, &channels, log)
			}
		}
	}
	channels.Wait()
	log.Info("logout", "duration", time.Since(start).String())
}

// openChannel accepts a session channel and serves it in a goroutine that
// channels tracks; any other kind is refused.
func (s *Server) openChannel(sess *session.Session, nch ssh.NewChannel, channels *sync.WaitGroup, log *slog.Logger) {
	if nch.ChannelType() != "session" {
		_ = nch.Reject(ssh.Prohibited, "this server offers SFTP only")
		return
	}
	ch, creqs, err := nch.Accept()
	if err != nil {
		log.Debug("accept channel", "err", err)
		return
	}
	channels.Add(1)
	go func() {
		defer channels.Done()
		s.handleChannel(sess, ch, creqs)
	}()
}

// handleChannel serves one session channel: the sftp subsystem, or a
// one-line refusal for a shell or a command.
func (s *Server) handleChannel(sess *session.Session, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			var sub struct{ Name string }
			if err := ssh.Unmarshal(req.Payload, &sub); err != nil || sub.Name != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			go refuseAll(reqs)
			s.serveSFTP(sess, ch)
			sendExit(ch, 0)
			return
		case "shell", "exec":
			_ = req.Reply(true, nil)
			go refuseAll(reqs)
			_, _ = io.WriteString(ch.Stderr(), sftpOnly)
			sendExit(ch, 1)
			return
		case "pty-req":
			// Accepted so that a terminal client waits for the refusal
			// message instead of giving up on the pty.
			_ = req.Reply(true, nil)
		default: // env, x11-req, agent forwarding...
			_ = req.Reply(false, nil)
		}
	}
}

func (s *Server) serveSFTP(sess *session.Session, ch ssh.Channel) {
	// The request server closes its stream when done; the channel must
	// outlive it so that exit-status still reaches the client (scp fails
	// without it). handleChannel closes the channel.
	// No WithRSAllocator, although recycling packet buffers cut server
	// CPU per uploaded GB by a third: a session keeps every 256 KiB page
	// its busiest moment had in flight until it ends. Measured: 5 MiB held
	// per session after one download with 64 requests in flight, for as
	// long as a GUI client stays connected (up to limits.idle_timeout),
	// and +9 KiB per fresh idle session. Memory that grows with connected
	// clients is the worse failure for a server that holds thousands.
	rs := sftp.NewRequestServer(newLimitsStream(ch, s.cfg.MaxHandles), newHandlers(sess, s.cfg.MaxHandles),
		sftp.WithRSMaxTxPacket(maxDataLength))
	if err := rs.Serve(); err != nil && !errors.Is(err, io.EOF) {
		sess.Log.Debug("sftp session ended", "err", err)
	}
	rs.Close()
}

func refuseAll(reqs <-chan *ssh.Request) {
	for req := range reqs {
		_ = req.Reply(false, nil)
	}
}

func sendExit(ch ssh.Channel, status uint32) {
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
}
