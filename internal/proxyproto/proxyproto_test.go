package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	lib "github.com/pires/go-proxyproto"
)

// The balancer dials from 127.0.0.2 (trusted); anyone else from 127.0.0.3.
const (
	balancerIP = "127.0.0.2"
	strangerIP = "127.0.0.3"
)

// partner and front are what a balancer's header says: the partner's
// address and the balancer's own front end.
var (
	partner = &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001}
	front   = &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 22}
)

// refusals records the Refused callbacks.
type refusals struct {
	mu      sync.Mutex
	reasons []string
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *refusals) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	ln   net.Listener // wrapped
	addr string
	ref  *refusals
	log  *logBuf
	got  chan net.Conn // what the server's Accept returned
}

// serve wraps a loopback listener with a policy trusting the balancer and
// accepts from it until the test ends, as a protocol server would.
func serve(t *testing.T, timeout time.Duration, data bool) *fixture {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{addr: raw.Addr().String(), ref: &refusals{}, log: &logBuf{}, got: make(chan net.Conn, 16)}
	p, err := New(Options{Trusted: []netip.Prefix{netip.MustParsePrefix(balancerIP + "/32")}, Timeout: timeout,
		Log: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})), Refused: f.ref.add})
	if err != nil {
		t.Fatal(err)
	}
	if data {
		f.ln = p.Data(raw)
	} else {
		f.ln = p.Listen(raw)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := f.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			f.got <- c
		}
	})
	t.Cleanup(func() {
		f.ln.Close()
		wg.Wait()
		for {
			select {
			case c := <-f.got:
				c.Close()
			default:
				return
			}
		}
	})
	return f
}

func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) accept(t *testing.T, within time.Duration) net.Conn {
	t.Helper()
	select {
	case c := <-f.got:
		return c
	case <-time.After(within):
		t.Fatalf("no connection accepted within %v; log:\n%s", within, f.log)
		return nil
	}
}

func (f *fixture) noAccept(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case c := <-f.got:
		t.Fatalf("accepted a connection from %v that should have been refused", c.RemoteAddr())
	case <-time.After(wait):
	}
}

// readAll reads n bytes from c with a deadline.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// closedByServer waits for the server to close c.
func closedByServer(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	b := make([]byte, 64)
	for range 100 {
		_, err := c.Read(b)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
		return
	}
	t.Fatal("server kept sending")
}

func header(version byte) []byte {
	var b bytes.Buffer
	if _, err := lib.HeaderProxyFromAddrs(version, partner, front).WriteTo(&b); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// eachHeader runs f for a v1 and a v2 header, on a control listener and a
// passive data listener.
func eachHeader(t *testing.T, f func(t *testing.T, version byte, data bool)) {
	for _, version := range []byte{1, 2} {
		for _, data := range []bool{false, true} {
			name := map[byte]string{1: "v1", 2: "v2"}[version] + map[bool]string{false: "", true: " data"}[data]
			t.Run(name, func(t *testing.T) { f(t, version, data) })
		}
	}
}

func TestHeaderFromBalancer(t *testing.T) {
	eachHeader(t, func(t *testing.T, version byte, data bool) {
		f := serve(t, 5*time.Second, data)
		c := dialFrom(t, balancerIP, f.addr)
		// The header and the protocol's first bytes in one write,
		// as a balancer does once the client has spoken.
		if _, err := c.Write(append(header(version), "SSH-2.0-partner\r\n"...)); err != nil {
			t.Fatal(err)
		}
		s := f.accept(t, 5*time.Second)
		if got := s.RemoteAddr().String(); got != partner.String() {
			t.Errorf("RemoteAddr = %s, want the partner %s", got, partner)
		}
		if got := s.LocalAddr().String(); got != front.String() {
			t.Errorf("LocalAddr = %s, want the balancer's front %s", got, front)
		}
		if got := readN(t, s, len("SSH-2.0-partner\r\n")); got != "SSH-2.0-partner\r\n" {
			t.Errorf("server read %q after the header", got)
		}
		// Later bytes come from the socket itself.
		c.Write([]byte("more"))
		if got := readN(t, s, 4); got != "more" {
			t.Errorf("server read %q", got)
		}
		s.Write([]byte("reply"))
		if got := readN(t, c, 5); got != "reply" {
			t.Errorf("client read %q", got)
		}
		if r := f.ref.get(); len(r) != 0 {
			t.Errorf("refusals %v", r)
		}
	})
}

// A v2 LOCAL header (HAProxy's health checks) keeps the balancer's own
// address.
func TestLocalHeader(t *testing.T) {
	f := serve(t, 5*time.Second, false)
	c := dialFrom(t, balancerIP, f.addr)
	h := &lib.Header{Version: 2, Command: lib.LOCAL, TransportProtocol: lib.UNSPEC}
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	s := f.accept(t, 5*time.Second)
	if got := s.RemoteAddr().(*net.TCPAddr).IP.String(); got != balancerIP {
		t.Errorf("RemoteAddr = %v, want the balancer's", s.RemoteAddr())
	}
}

func TestBalancerWithoutHeader(t *testing.T) {
	f := serve(t, 5*time.Second, false)
	c := dialFrom(t, balancerIP, f.addr)
	c.Write([]byte("SSH-2.0-forgot-send-proxy\r\n"))
	closedByServer(t, c, 5*time.Second)
	f.noAccept(t, 100*time.Millisecond)
	if r := f.ref.get(); len(r) != 1 || r[0] != ReasonMissing {
		t.Errorf("refusals %v, want [%s]", r, ReasonMissing)
	}
	if !strings.Contains(f.log.String(), "level=ERROR") || !strings.Contains(f.log.String(), "send-proxy-v2") {
		t.Errorf("log does not say what to fix:\n%s", f.log)
	}
}

func TestInvalidHeader(t *testing.T) {
	f := serve(t, 5*time.Second, false)
	c := dialFrom(t, balancerIP, f.addr)
	c.Write([]byte("PROXY TCP4 not-an-address 198.51.100.1 1 2\r\n"))
	closedByServer(t, c, 5*time.Second)
	f.noAccept(t, 100*time.Millisecond)
	if r := f.ref.get(); len(r) != 1 || r[0] != ReasonInvalid {
		t.Errorf("refusals %v, want [%s]", r, ReasonInvalid)
	}
}

// A balancer's plain TCP health check connects and closes: not a refusal.
func TestHealthCheckProbe(t *testing.T) {
	f := serve(t, 5*time.Second, false)
	c := dialFrom(t, balancerIP, f.addr)
	c.Close()
	f.noAccept(t, 200*time.Millisecond)
	if r := f.ref.get(); len(r) != 0 {
		t.Errorf("refusals %v, want none", r)
	}
}

func TestHeaderFromStranger(t *testing.T) {
	eachHeader(t, func(t *testing.T, version byte, data bool) {
		f := serve(t, 5*time.Second, data)
		c := dialFrom(t, strangerIP, f.addr)
		// Accepted at once (the server may speak first)...
		s := f.accept(t, 5*time.Second)
		if got := s.RemoteAddr().(*net.TCPAddr).IP.String(); got != strangerIP {
			t.Errorf("RemoteAddr = %v, want the stranger's own", s.RemoteAddr())
		}
		s.Write([]byte("banner\r\n"))
		if got := readN(t, c, 8); got != "banner\r\n" {
			t.Errorf("client read %q", got)
		}
		// ...but its header, sent in two pieces, is refused.
		h := header(version)
		c.Write(h[:3])
		time.Sleep(20 * time.Millisecond)
		c.Write(append(h[3:], "SSH-2.0-x\r\n"...))
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := s.Read(make([]byte, 64))
		if n != 0 || !errors.Is(err, errRefused) {
			t.Fatalf("server read %d bytes, err %v; want errRefused", n, err)
		}
		if _, err := s.Read(make([]byte, 64)); !errors.Is(err, errRefused) {
			t.Fatalf("second read: %v, want errRefused", err)
		}
		closedByServer(t, c, 5*time.Second)
		if r := f.ref.get(); len(r) != 1 || r[0] != ReasonUntrusted {
			t.Errorf("refusals %v, want [%s]", r, ReasonUntrusted)
		}
		if l := f.log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "remote="+strangerIP) {
			t.Errorf("no warning naming the stranger:\n%s", l)
		}
	})
}

// Anything but a header passes through unchanged from an untrusted
// address, even bytes that start like one.
func TestStrangerWithoutHeader(t *testing.T) {
	for _, first := range []string{"SSH-2.0-OpenSSH_9.2\r\n", "\x16\x03\x01\x00\xa5", "\r\n\r\nX", "PROXYX", "PRO", "\r\n"} {
		t.Run(strings.ToValidUTF8(first, "?"), func(t *testing.T) {
			f := serve(t, 5*time.Second, false)
			c := dialFrom(t, strangerIP, f.addr)
			s := f.accept(t, 5*time.Second)
			c.Write([]byte(first))
			// Bytes too few to tell ("PRO") are held back until more come
			// or the peer closes: then they are passed on.
			c.(*net.TCPConn).CloseWrite()
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(s)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != first {
				t.Errorf("server read %q, want %q", got, first)
			}
			if r := f.ref.get(); len(r) != 0 {
				t.Errorf("refusals %v", r)
			}
		})
	}
}

// A balancer that sends nothing is dropped after the timeout, and
// connections behind it are accepted meanwhile.
func TestSlowHeader(t *testing.T) {
	const timeout = 500 * time.Millisecond
	f := serve(t, timeout, false)
	start := time.Now()
	silent := make([]net.Conn, 5)
	for i := range silent {
		silent[i] = dialFrom(t, balancerIP, f.addr)
	}
	// Behind them: a proxied partner and a direct stranger, at once.
	c := dialFrom(t, balancerIP, f.addr)
	c.Write(header(2))
	s := f.accept(t, timeout/2)
	if s.RemoteAddr().String() != partner.String() {
		t.Errorf("RemoteAddr = %v", s.RemoteAddr())
	}
	dialFrom(t, strangerIP, f.addr)
	f.accept(t, timeout/2)
	for _, c := range silent {
		closedByServer(t, c, 5*time.Second)
	}
	if el := time.Since(start); el < timeout || el > timeout+3*time.Second {
		t.Errorf("silent connections closed after %v; timeout %v", el, timeout)
	}
	want := []string{ReasonTimeout, ReasonTimeout, ReasonTimeout, ReasonTimeout, ReasonTimeout}
	if r := f.ref.get(); strings.Join(r, ",") != strings.Join(want, ",") {
		t.Errorf("refusals %v, want %v", r, want)
	}
}

// Close ends the headers being read and the accepting goroutine; Accept
// then reports a closed listener.
func TestClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Trusted: []netip.Prefix{netip.MustParsePrefix(balancerIP + "/32")}, Timeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln := p.Listen(raw)
	c := dialFrom(t, balancerIP, raw.Addr().String())
	time.Sleep(50 * time.Millisecond) // let its header read start
	done := make(chan error, 1)
	go func() { done <- ln.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a header")
	}
	closedByServer(t, c, 5*time.Second)
	_, err = ln.Accept()
	var oe *net.OpError
	if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) {
		t.Fatalf("Accept after Close: %v, want a *net.OpError with net.ErrClosed", err)
	}
}

func TestNewNeedsTrusted(t *testing.T) {
	if _, err := New(Options{Log: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("New without trusted networks succeeded")
	}
}

func TestTrustsMapped(t *testing.T) {
	p, err := New(Options{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"10.1.2.3": true, "::ffff:10.1.2.3": true, "11.0.0.1": false, "::1": false} {
		if got := p.Trusts(netip.MustParseAddr(a)); got != want {
			t.Errorf("Trusts(%s) = %v, want %v", a, got, want)
		}
	}
}

// BenchmarkAccept is one connection from dial to the server's Accept,
// with a v2 header from the balancer, or without one from anyone else, and
// on a listener without the PROXY protocol for comparison.
func BenchmarkAccept(b *testing.B) {
	for _, tc := range []struct {
		name, from string
		header     []byte
	}{{"proxied", balancerIP, header(2)}, {"direct", strangerIP, nil}, {"unwrapped", strangerIP, nil}} {
		b.Run(tc.name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			p, err := New(Options{Trusted: []netip.Prefix{netip.MustParsePrefix(balancerIP + "/32")}, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			ln := p.Listen(raw)
			if tc.name == "unwrapped" {
				ln.Close()
				if raw, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				ln = raw
			}
			defer ln.Close()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
			for b.Loop() {
				c, err := d.Dial("tcp", raw.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				if tc.header != nil {
					c.Write(tc.header)
				}
				s, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				s.RemoteAddr()
				s.Close()
				c.Close()
			}
		})
	}
}
