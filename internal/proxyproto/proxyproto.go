// Package proxyproto gives wharf's listeners the partner's real address
// when they sit behind a TCP load balancer that speaks the PROXY protocol
// (v1 or v2; HAProxy's send-proxy-v2, an AWS NLB's proxy protocol v2).
//
// Only the trusted networks (the balancers) may send a header, and they
// must: a balancer that forgot send-proxy would otherwise make every
// partner look like the balancer, and one ban would lock them all out. A
// header from any other address is an attempt to claim an address that is
// not the sender's: the connection is closed.
//
// A header is read before the connection is handed to the server, so that
// the first RemoteAddr (the guard's admission, the log's "remote") already
// sees the partner. It is read on a goroutine of its own with a deadline,
// never on the accept loop: a balancer slow to send one cannot hold up the
// connections behind it.
package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	lib "github.com/pires/go-proxyproto"
)

// Why a connection was refused: the label of the refusal counter.
const (
	ReasonUntrusted = "untrusted" // a header from an address not in the trusted networks
	ReasonMissing   = "missing"   // a trusted address sent something other than a header
	ReasonInvalid   = "invalid"   // a malformed or truncated header
	ReasonTimeout   = "timeout"   // a trusted address sent no header in time
)

// Defaults of Options.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxPending = 256
)

// errRefused is what the protocol server reads from a connection that sent
// a header it may not send; the connection is closed by then.
var errRefused = errors.New("proxyproto: PROXY header from an untrusted address")

// maxDataRefused bounds how many refused connections one Accept of a
// passive data listener skips before it gives up.
const maxDataRefused = 16

// Options configure a Policy.
type Options struct {
	// Trusted are the balancers' networks. Required: a Policy that trusts
	// nobody would refuse nothing and believe nothing, so the daemon
	// leaves its listeners unwrapped instead.
	Trusted []netip.Prefix
	// Timeout bounds the reading of one header; 0: DefaultTimeout.
	Timeout time.Duration
	// MaxPending bounds the headers being read at once on one listener;
	// beyond, accepting waits for one to finish (only trusted addresses
	// take a place). 0: DefaultMaxPending.
	MaxPending int
	Log        *slog.Logger
	// Refused, when set, is called once per refused connection with one of
	// the Reason constants: the daemon counts them.
	Refused func(reason string)
}

// Policy decides, per connection, whether a PROXY header is required,
// allowed or refused, and wraps listeners to apply that. It is safe for
// concurrent use and holds no connection itself.
type Policy struct {
	trusted    []netip.Prefix
	timeout    time.Duration
	maxPending int
	log        *slog.Logger
	refused    func(string)
}

// New returns the policy of o.
func New(o Options) (*Policy, error) {
	if len(o.Trusted) == 0 {
		return nil, errors.New("proxyproto: no trusted network")
	}
	if o.Log == nil {
		return nil, errors.New("proxyproto: Log is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	refused := o.Refused
	if refused == nil {
		refused = func(string) {}
	}
	return &Policy{trusted: o.Trusted, timeout: o.Timeout, maxPending: o.MaxPending,
		log: o.Log.With("component", "proxyproto"), refused: refused}, nil
}

// Trusts reports whether a is in a trusted network.
func (p *Policy) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p.trusted {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Policy) trustsAddr(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && p.Trusts(ap.Addr())
}

// admit applies the policy to one accepted connection: from a trusted
// address it reads the header (blocking up to the timeout); from any other
// it returns a connection that refuses a header in place of the protocol's
// first bytes. On error the connection is closed, logged and counted.
func (p *Policy) admit(raw net.Conn) (net.Conn, error) {
	if !p.trustsAddr(raw.RemoteAddr()) {
		return &sniffConn{Conn: raw, p: p}, nil
	}
	return p.readHeader(raw)
}

// readHeader reads the PROXY header a trusted peer must send first.
func (p *Policy) readHeader(raw net.Conn) (net.Conn, error) {
	peer := raw.RemoteAddr().String()
	_ = raw.SetReadDeadline(time.Now().Add(p.timeout))
	// go-proxyproto reads a v1 line byte by byte and a v2 header by its
	// length, never past its end: what follows stays in br for the server.
	br := bufio.NewReaderSize(raw, 256)
	h, err := lib.Read(br)
	_ = raw.SetReadDeadline(time.Time{})
	if err != nil {
		defer raw.Close() // after the log line and the count: a test that sees the close sees them
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			p.refuse(ReasonTimeout, "no PROXY header in time from a trusted address", "remote", peer, "timeout", p.timeout.String())
		case errors.Is(err, lib.ErrNoProxyProtocol) && br.Buffered() == 0:
			// Connected and closed without a byte: a balancer's plain TCP
			// health check (an AWS NLB's checks carry no header).
			p.log.Debug("closed before its PROXY header", "remote", peer)
		case errors.Is(err, lib.ErrNoProxyProtocol):
			// Someone must act: every partner behind this balancer is
			// refused until it sends the header.
			p.log.Error("no PROXY header from a trusted address: does the load balancer send one (HAProxy: send-proxy-v2)?", "remote", peer)
			p.refused(ReasonMissing)
		default:
			p.refuse(ReasonInvalid, "invalid PROXY header", "remote", peer, "err", err)
		}
		return nil, err
	}
	c := &proxiedConn{Conn: raw, remote: raw.RemoteAddr(), local: raw.LocalAddr()}
	if br.Buffered() > 0 {
		c.br = br
	}
	// LOCAL is the balancer speaking for itself (HAProxy's health checks);
	// UNKNOWN or a unix address carries nothing an address check can use.
	// Both keep the connection's own addresses, as the specification says.
	if !h.Command.IsLocal() && tcpAddr(h.SourceAddr) && tcpAddr(h.DestinationAddr) {
		c.remote, c.local = h.SourceAddr, h.DestinationAddr
	}
	p.log.Debug("proxied", "remote", c.remote.String(), "via", peer)
	return c, nil
}

func tcpAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t != nil && t.IP != nil
}

func (p *Policy) refuse(reason, msg string, args ...any) {
	p.log.Warn(msg, append(args, "reason", reason)...)
	p.refused(reason)
}

// proxiedConn is a connection whose header was read: its addresses are the
// header's, and the bytes read past the header come first.
type proxiedConn struct {
	net.Conn
	br            *bufio.Reader // nil once drained (or when nothing was read past the header)
	remote, local net.Addr
}

// RemoteAddr is the partner's address, as the balancer saw it.
func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the partner connected to: the balancer's. FTPS
// announces it for passive mode when ftps.public_host is not set.
func (c *proxiedConn) LocalAddr() net.Addr { return c.local }

func (c *proxiedConn) Read(b []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(b) // only what is buffered: no read on the socket
		}
		c.br = nil
	}
	return c.Conn.Read(b)
}

// The signatures a header starts with; "PROXY " with its space, so that
// nothing but a v1 header matches.
var (
	sigV1 = []byte("PROXY ")
	sigV2 = lib.SIGV2
)

// sniffConn is a connection from an untrusted address. Its first bytes
// are held back until they can no longer be the start of a header: a
// header closes the connection; anything else (an SSH version line, a TLS
// hello, an FTP command) is passed on unchanged. It reads only when the
// server reads, so a server that speaks first is not delayed.
type sniffConn struct {
	net.Conn
	p       *Policy
	checked bool
	refused bool
	head    [12]byte // len(sigV2), the longer signature
	n, off  int      // bytes in head; bytes of head already passed on
}

func (c *sniffConn) Read(b []byte) (int, error) {
	if !c.checked {
		if err := c.sniff(); err != nil {
			return 0, err
		}
	}
	if c.off < c.n {
		k := copy(b, c.head[c.off:c.n])
		c.off += k
		return k, nil
	}
	return c.Conn.Read(b)
}

// sniff reads until the bytes so far are no signature's prefix, or are a
// whole signature. Each read brings at least a byte, so it reads at most
// len(head) times.
func (c *sniffConn) sniff() error {
	if c.refused {
		return errRefused
	}
	for range len(c.head) {
		k, err := c.Conn.Read(c.head[c.n:])
		c.n += k
		got := c.head[:c.n]
		if bytes.HasPrefix(got, sigV1) || bytes.HasPrefix(got, sigV2) {
			c.refused = true
			c.p.refuse(ReasonUntrusted, "PROXY header from an address that is not a trusted load balancer", "remote", c.Conn.RemoteAddr().String())
			c.Conn.Close()
			return errRefused
		}
		if !prefixOf(got, sigV1) && !prefixOf(got, sigV2) || c.n == len(c.head) {
			c.checked = true
			return nil
		}
		if err != nil {
			if c.n == 0 {
				return err
			}
			c.checked = true // pass on what came; the next read meets the error again
			return nil
		}
	}
	c.checked = true // only reads of 0 bytes without an error get here
	return nil
}

// prefixOf reports whether b could still grow into sig.
func prefixOf(b, sig []byte) bool {
	return len(b) < len(sig) && bytes.HasPrefix(sig, b)
}

// Listen wraps a control listener (SFTP, FTPS): each accepted connection
// is admitted on a goroutine of its own, and Accept returns connections
// whose header, if they needed one, is read.
func (p *Policy) Listen(ln net.Listener) net.Listener {
	l := &listener{Listener: ln, p: p, ready: make(chan accepted), done: make(chan struct{}),
		slots: make(chan struct{}, p.maxPending), pending: make(map[net.Conn]struct{})}
	l.wg.Go(l.run)
	return l
}

type accepted struct {
	c   net.Conn
	err error
}

type listener struct {
	net.Listener
	p     *Policy
	ready chan accepted // unbuffered: a connection waits here for the server's Accept
	done  chan struct{} // closed by Close
	slots chan struct{} // headers being read
	wg    sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	pending   map[net.Conn]struct{} // raw connections whose header is being read
	closeOnce sync.Once
	closeErr  error
}

// run accepts until the listener is closed. Untrusted connections go
// straight to the server; trusted ones after their header.
func (l *listener) run() {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			if !l.deliver(accepted{err: err}) || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // the server backs off on a transient error, then accepts again
		}
		if !l.p.trustsAddr(raw.RemoteAddr()) {
			if !l.deliver(accepted{c: &sniffConn{Conn: raw, p: l.p}}) {
				raw.Close()
				return
			}
			continue
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			raw.Close()
			return
		}
		if !l.track(raw) {
			raw.Close()
			return
		}
		l.wg.Go(func() {
			defer func() { <-l.slots }()
			c, err := l.p.readHeader(raw)
			l.untrack(raw)
			if err == nil && !l.deliver(accepted{c: c}) {
				c.Close()
			}
		})
	}
}

// deliver hands a to the server's Accept; false when the listener closed
// first.
func (l *listener) deliver(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		return false
	}
}

func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.done:
		// What a closed net.Listener returns: servers recognise it
		// (ftpserverlib compares its text).
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close stops accepting, cuts the headers being read and waits for the
// goroutines of the listener to end.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.Listener.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l.closeErr
}

// Data wraps an FTPS passive data listener. A balancer that forwards the
// passive ports sends a header on data connections too; the data
// connection then shows the partner's address, which ftpserverlib compares
// with the control connection's. It reads the header in Accept: a passive
// listener serves one transfer, accepted on the session's own goroutine.
func (p *Policy) Data(ln net.Listener) net.Listener {
	return dataListener{Listener: ln, p: p}
}

type dataListener struct {
	net.Listener
	p *Policy
}

func (l dataListener) Accept() (net.Conn, error) {
	for range maxDataRefused {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, err := l.p.admit(raw); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("proxyproto: %d data connections refused in a row", maxDataRefused)
}
