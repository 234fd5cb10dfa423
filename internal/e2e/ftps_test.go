package e2e

// FTPS helpers shared by the lftp, curl and ftplib suites, and the FTPS tests
// that need no client at all: a raw FTP control connection in Go shows what a
// client library would hide (the exact reply to a plaintext USER, which TLS
// versions and suites the server accepts, where a data connection may come
// from).

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	passiveRangeSize = 20               // ports in each daemon's passive_ports
	ftpReplyTimeout  = 15 * time.Second // one reply on a raw control connection
)

// ftpsOpts configures startFTPS.
type ftpsOpts struct {
	Backend      string // as daemonOpts.Backend
	SessionReuse string // tls_session_reuse: "" (the default, required) | "required" | "allowed"
	// Protocols sets users[].protocols by user name; users not named keep the
	// key absent (every protocol).
	Protocols map[string][]string
	// PassivePorts is the size of the passive range; 0: passiveRangeSize.
	PassivePorts int
	// FTPS is more keys of the ftps section, each line indented by two
	// spaces; Extra is raw YAML at the top level (daemonOpts.Extra).
	FTPS, Extra string
}

// ftpsDaemon is a daemon serving SFTP and FTPS (explicit and implicit).
// Addresses and CertFP are re-read by Restart.
type ftpsDaemon struct {
	*daemon
	Explicit, Implicit   string // 127.0.0.1:PORT
	PassiveLo, PassiveHi int    // passive_ports, inclusive
	CertFP               string // "tls certificate" fingerprint: sha256 of the DER, hex with colons
}

// startFTPS starts a daemon with an ftps section (both listeners on
// 127.0.0.1:0, a passive range free at the time of the call). The harness
// cannot write users[].protocols, so when o.Protocols is set the config the
// harness wrote is rewritten with them and the daemon restarted once: every
// other part of the harness (start, stop, log checks) stays in use.
func startFTPS(t *testing.T, users []*testUser, o ftpsOpts) *ftpsDaemon {
	t.Helper()
	n := o.PassivePorts
	if n == 0 {
		n = passiveRangeSize
	}
	lo, hi := freePassiveRange(t, n)
	var b strings.Builder
	b.WriteString("ftps:\n")
	b.WriteString("  listen: \"127.0.0.1:0\"\n")
	b.WriteString("  implicit_listen: \"127.0.0.1:0\"\n")
	fmt.Fprintf(&b, "  passive_ports: \"%d-%d\"\n", lo, hi)
	if o.SessionReuse != "" {
		fmt.Fprintf(&b, "  tls_session_reuse: %s\n", o.SessionReuse)
	}
	b.WriteString(o.FTPS)
	b.WriteString("\n")
	b.WriteString(o.Extra)
	d := startDaemon(t, daemonOpts{Users: users, Backend: o.Backend, Extra: b.String()})
	f := &ftpsDaemon{daemon: d, PassiveLo: lo, PassiveHi: hi}
	if len(o.Protocols) == 0 {
		f.readFTPS(t, 0)
		return f
	}
	setProtocols(t, d.ConfigPath, o.Protocols)
	f.Restart(t)
	return f
}

// Restart restarts the daemon (same config, state and data) and re-reads the
// FTPS addresses and certificate fingerprint from the new process's log.
func (f *ftpsDaemon) Restart(t *testing.T) {
	t.Helper()
	mark := f.LogMark()
	f.daemon.Restart(t)
	f.readFTPS(t, mark)
}

// readFTPS reads the FTPS listeners and certificate logged after mark.
func (f *ftpsDaemon) readFTPS(t *testing.T, mark int) {
	t.Helper()
	addr := func(mode string) string {
		l := f.WaitLogSince(t, mark, logMatch("msg", "listening", "component", "ftpd", "proto", "ftps", "mode", mode), startTimeout)
		a, _ := l["addr"].(string)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("ftpd %s listening line has addr %q; want 127.0.0.1:PORT", mode, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 {
			t.Fatalf("ftpd %s listening line has port %q", mode, port)
		}
		return a
	}
	f.Explicit, f.Implicit = addr("explicit"), addr("implicit")
	l := f.WaitLogSince(t, mark, logMatch("msg", "tls certificate", "component", "ftpd"), startTimeout)
	f.CertFP, _ = l["fingerprint"].(string)
	if f.CertFP == "" {
		t.Fatalf("\"tls certificate\" log line without a fingerprint: %v", l)
	}
}

// ExplicitPort and ImplicitPort are the FTPS ports as strings, for clients'
// command lines.
func (f *ftpsDaemon) ExplicitPort() string { return portOf(f.Explicit) }
func (f *ftpsDaemon) ImplicitPort() string { return portOf(f.Implicit) }

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// inPassiveRange reports whether a data port lies in passive_ports.
func (f *ftpsDaemon) inPassiveRange(port int) bool {
	return port >= f.PassiveLo && port <= f.PassiveHi
}

// setProtocols rewrites the config file with users[].protocols, keeping
// every key the harness and Extra wrote.
func setProtocols(t *testing.T, configPath string, protocols map[string][]string) {
	t.Helper()
	for name, p := range protocols {
		setUserKeys(t, configPath, name, map[string]any{"protocols": p})
	}
}

// freePassiveRange finds n consecutive ports in 20000-32700 that are free on
// 127.0.0.1 right now, by listening on each and closing them again. The start
// is random so that daemons started one after another get different ranges.
// The range lies below Linux's ephemeral ports (32768-60999), which every
// client connection and every kernel-chosen listener of a busy test run
// takes from: ranges there were once all taken in 50 tries.
func freePassiveRange(t *testing.T, n int) (lo, hi int) {
	t.Helper()
	const first, last, attempts = 20000, 32700, 50
	for range attempts {
		lo = first + mrand.IntN(last-first-n+1)
		var held []net.Listener
		ok := true
		for p := lo; p < lo+n; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			ln.Close()
		}
		if ok {
			return lo, lo + n - 1
		}
	}
	t.Fatalf("no %d consecutive free ports in %d-%d after %d attempts", n, first, last, attempts)
	return 0, 0
}

// certFingerprint is the daemon's fingerprint format for a DER certificate:
// lowercase hex SHA-256 bytes joined by colons.
func certFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = hex.EncodeToString([]byte{b})
	}
	return strings.Join(parts, ":")
}

// readCertFile returns the DER of the first certificate in a PEM file.
func readCertFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read certificate: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM CERTIFICATE block", filepath.Base(path))
	}
	return block.Bytes
}

// ftpCtl is a raw FTP control connection: it sends command lines and reads
// replies, nothing more, so a test sees exactly what the server says.
type ftpCtl struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialFTP connects to addr, over TLS from the first byte when conf is not nil
// (implicit FTPS), and reads the greeting, which must be a 220.
func dialFTP(t *testing.T, addr string, conf *tls.Config) *ftpCtl {
	t.Helper()
	c, err := dialFTPErr(addr, conf)
	if err != nil {
		t.Fatalf("ftp connect %s: %v", addr, err)
	}
	t.Cleanup(func() { c.conn.Close() })
	return c
}

func dialFTPErr(addr string, conf *tls.Config) (*ftpCtl, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if conf != nil {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, conf)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &ftpCtl{conn: conn, r: bufio.NewReader(conn)}
	code, text, err := c.reply()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if code != 220 {
		conn.Close()
		return nil, fmt.Errorf("greeting %d %q, want 220", code, text)
	}
	return c, nil
}

// reply reads one reply, multi-line ones ("213-...", "213 end") included, and
// returns its code and its lines joined by "\n".
func (c *ftpCtl) reply() (int, string, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(ftpReplyTimeout)); err != nil {
		return 0, "", fmt.Errorf("set deadline: %w", err)
	}
	var lines []string
	code := 0
	const maxLines = 1000 // a FEAT or HASH reply is a handful of lines
	for range maxLines {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n"), fmt.Errorf("read reply: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 {
			if code == 0 {
				return 0, line, fmt.Errorf("malformed reply line %q", line)
			}
			continue
		}
		n, err := strconv.Atoi(line[:3])
		if err != nil {
			if code == 0 {
				return 0, line, fmt.Errorf("malformed reply line %q", line)
			}
			continue
		}
		if code == 0 {
			code = n
		}
		if n == code && line[3] == ' ' {
			return code, strings.Join(lines, "\n"), nil
		}
	}
	return 0, strings.Join(lines, "\n"), fmt.Errorf("reply longer than %d lines", maxLines)
}

// cmd sends one command line and reads the reply.
func (c *ftpCtl) cmd(line string) (int, string, error) {
	if err := c.conn.SetWriteDeadline(time.Now().Add(ftpReplyTimeout)); err != nil {
		return 0, "", fmt.Errorf("set deadline: %w", err)
	}
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		return 0, "", fmt.Errorf("send %s: %w", strings.Fields(line)[0], err)
	}
	return c.reply()
}

// must sends a command and fails the test unless the reply has code want.
// what names the command in the message, so a password never appears there.
func (c *ftpCtl) must(t *testing.T, what, line string, want int) string {
	t.Helper()
	code, text, err := c.cmd(line)
	if err != nil || code != want {
		t.Fatalf("%s: reply %d %q (%v), want %d", what, code, text, err, want)
	}
	return text
}

// authTLS upgrades the control connection (explicit FTPS).
func (c *ftpCtl) authTLS(t *testing.T, conf *tls.Config) {
	t.Helper()
	if err := c.authTLSErr(conf); err != nil {
		t.Fatal(err)
	}
}

func (c *ftpCtl) authTLSErr(conf *tls.Config) error {
	code, text, err := c.cmd("AUTH TLS")
	if err != nil || code != 234 {
		return fmt.Errorf("AUTH TLS: reply %d %q (%v), want 234", code, text, err)
	}
	tc := tls.Client(c.conn, conf)
	if err := tc.SetDeadline(time.Now().Add(ftpReplyTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake after AUTH TLS: %w", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	return nil
}

// login sends USER and PASS, then PBSZ 0 and PROT P when protect is set.
func (c *ftpCtl) login(t *testing.T, u *testUser, protect bool) {
	t.Helper()
	c.must(t, "USER", "USER "+u.Name, 331)
	c.must(t, "PASS", "PASS "+u.Password, 230)
	if protect {
		c.must(t, "PBSZ", "PBSZ 0", 200)
		c.must(t, "PROT", "PROT P", 200)
	}
}

// epsvPort and pasvReply find the port in EPSV (229) and PASV (227) replies.
var (
	epsvPort  = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)
	pasvReply = regexp.MustCompile(`\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)`)
)

// epsv asks for a passive data port and returns it.
func (c *ftpCtl) epsv(t *testing.T) int {
	t.Helper()
	text := c.must(t, "EPSV", "EPSV", 229)
	m := epsvPort.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("EPSV reply %q has no (|||PORT|)", text)
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// clientTLS is a TLS client config for the self-signed certificate: the
// tests compare the presented certificate with the file instead of verifying
// a chain. ServerName keys the session cache: the data port differs from the
// control port, and without it no session would be found to resume.
func clientTLS(cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // the certificate is checked against state_dir by the callers
		ServerName:         "wharf-e2e",
		ClientSessionCache: cache,
		MinVersion:         tls.VersionTLS12,
	}
}

// TestFTPSPlaintextRefused sends USER, and then the right password, on the
// explicit port without AUTH TLS: the server must answer with a 5xx reply
// that names TLS and must never log the user in.
func TestFTPSPlaintextRefused(t *testing.T) {
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	mark := f.LogMark()

	c := dialFTP(t, f.Explicit, nil)
	code, text, err := c.cmd("USER " + alice.Name)
	if err != nil {
		t.Fatalf("USER before AUTH TLS: %v (reply %q)", err, text)
	}
	if code < 500 || code > 599 || !strings.Contains(strings.ToUpper(text), "TLS") {
		t.Errorf("USER before AUTH TLS: reply %d %q, want 5xx saying TLS is required", code, text)
	}
	// The connection may be closed by now; if not, even the right password must not log in.
	if code, text, err := c.cmd("PASS " + alice.Password); err == nil && (code == 230 || code/100 == 2) {
		t.Errorf("PASS in plaintext after a refused USER: reply %d %q, want a refusal", code, text)
	}
	assertNoHostPath(t, f.daemon, "plaintext USER", text)
	// A login line would be logged before any reply to PASS; give it a moment.
	if l, ok := f.pollLog(mark, logMatch("msg", "login", "outcome", "ok"), time.Second); ok {
		t.Errorf("a plaintext control connection logged in: %v", l)
	}
}

// TestFTPSCertificate checks the self-signed certificate (generated once into
// state_dir, key 0600, the same after a restart, the one presented and
// logged) and the TLS versions and suites the server accepts, on both
// the implicit port and the explicit one after AUTH TLS.
func TestFTPSCertificate(t *testing.T) {
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	certPath := filepath.Join(f.StateDir, "ftps_cert.pem")
	keyPath := filepath.Join(f.StateDir, "ftps_key.pem")

	der := readCertFile(t, certPath)
	if got := certFingerprint(der); got != f.CertFP {
		t.Errorf("logged certificate fingerprint %s, state_dir/ftps_cert.pem has %s", f.CertFP, got)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse ftps_cert.pem: %v", err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("self-signed certificate key is %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("stat ftps_key.pem: %v", err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("ftps_key.pem mode %o, want 600", m)
	}

	presented := func(t *testing.T) []byte {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", f.Implicit, clientTLS(nil))
		if err != nil {
			t.Fatalf("implicit TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	if got := presented(t); certFingerprint(got) != certFingerprint(der) {
		t.Errorf("the implicit listener presents %s, not the certificate in state_dir (%s)", certFingerprint(got), certFingerprint(der))
	}

	t.Run("Versions", func(t *testing.T) {
		cases := []struct {
			name     string
			min, max uint16
			suites   []uint16
			ok       bool
		}{
			{"TLS1.0", tls.VersionTLS10, tls.VersionTLS10, nil, false},
			{"TLS1.1", tls.VersionTLS11, tls.VersionTLS11, nil, false},
			{"TLS1.2-CBC", tls.VersionTLS12, tls.VersionTLS12, []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
			}, false},
			{"TLS1.2-GCM", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
			{"TLS1.2-ChaCha20", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
			{"TLS1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				conf := clientTLS(nil)
				conf.MinVersion, conf.MaxVersion, conf.CipherSuites = tc.min, tc.max, tc.suites
				for _, mode := range []string{"implicit", "explicit"} {
					var err error
					if mode == "implicit" {
						var c *ftpCtl
						if c, err = dialFTPErr(f.Implicit, conf); err == nil {
							c.conn.Close()
						}
					} else {
						c := dialFTP(t, f.Explicit, nil)
						err = c.authTLSErr(conf)
						c.conn.Close()
					}
					switch {
					case tc.ok && err != nil:
						t.Errorf("%s: %v", mode, err)
					case !tc.ok && err == nil:
						t.Errorf("%s: the server accepted %s", mode, tc.name)
					case !tc.ok && !strings.Contains(err.Error(), "remote error"):
						// The refusal must come from the server (an alert), not
						// from this client declining its own settings.
						t.Errorf("%s: %s failed without a server alert: %v", mode, tc.name, err)
					}
				}
			})
		}
	})

	t.Run("SameAfterRestart", func(t *testing.T) {
		before := f.CertFP
		keyBefore, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		f.Restart(t)
		if f.CertFP != before {
			t.Errorf("certificate fingerprint changed across a restart: %s, then %s", before, f.CertFP)
		}
		keyAfter, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(keyAfter) != string(keyBefore) {
			t.Errorf("ftps_key.pem was rewritten by the restart")
		}
		if got := presented(t); certFingerprint(got) != before {
			t.Errorf("after a restart the server presents %s, want %s", certFingerprint(got), before)
		}
	})
}

// TestFTPSDataConnections drives data connections by hand: every passive
// port lies in passive_ports, an unprotected transfer (no PROT P) is refused,
// a data connection from another address than the control connection's is
// refused, and one that resumes the TLS session from the right address works.
func TestFTPSDataConnections(t *testing.T) {
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	if err := os.MkdirAll(f.HomeDir(alice), 0o755); err != nil {
		t.Fatal(err)
	}
	const content = "data connection test\n"
	writeFileT(t, filepath.Join(f.HomeDir(alice), "hello.txt"), content)

	// retr runs RETR on a data connection dialed from local (nil: any
	// address) and returns what arrived and the final reply.
	retr := func(t *testing.T, c *ftpCtl, conf *tls.Config, local net.Addr) (data string, code int, text string) {
		t.Helper()
		port := c.epsv(t)
		if !f.inPassiveRange(port) {
			t.Errorf("EPSV port %d outside passive_ports %d-%d", port, f.PassiveLo, f.PassiveHi)
		}
		dl := net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}
		raw, err := dl.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("dial data port: %v", err)
		}
		defer raw.Close()
		if err := c.conn.SetWriteDeadline(time.Now().Add(ftpReplyTimeout)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.conn.Write([]byte("RETR hello.txt\r\n")); err != nil {
			t.Fatalf("send RETR: %v", err)
		}
		code, text, err = c.reply()
		if err != nil {
			t.Fatalf("RETR reply: %v", err)
		}
		if code != 150 && code != 125 {
			return "", code, text
		}
		tc := tls.Client(raw, conf)
		if err := tc.SetDeadline(time.Now().Add(ftpReplyTimeout)); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		for range 1000 {
			n, err := tc.Read(buf)
			b.WriteString(string(buf[:n]))
			if err != nil {
				break
			}
		}
		tc.Close()
		code, text, err = c.reply()
		if err != nil {
			t.Fatalf("RETR final reply: %v", err)
		}
		return b.String(), code, text
	}

	t.Run("PASV", func(t *testing.T) {
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(nil))
		c.login(t, alice, true)
		for i := range 5 {
			text := c.must(t, "PASV", "PASV", 227)
			m := pasvReply.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("PASV reply %q has no (h1,h2,h3,h4,p1,p2)", text)
			}
			if host := strings.Join(m[1:5], "."); host != "127.0.0.1" {
				t.Errorf("PASV %d announces %s, want the address the client connected to (127.0.0.1)", i, host)
			}
			p1, _ := strconv.Atoi(m[5])
			p2, _ := strconv.Atoi(m[6])
			if p := p1*256 + p2; !f.inPassiveRange(p) {
				t.Errorf("PASV %d port %d outside passive_ports %d-%d", i, p, f.PassiveLo, f.PassiveHi)
			}
			if p := c.epsv(t); !f.inPassiveRange(p) {
				t.Errorf("EPSV %d port %d outside passive_ports %d-%d", i, p, f.PassiveLo, f.PassiveHi)
			}
		}
	})

	t.Run("PassiveListenerOnLoopback", func(t *testing.T) {
		// The daemon was told to listen on 127.0.0.1 only; a passive data
		// listener on every interface would open the port to the network.
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(nil))
		c.login(t, alice, true)
		port := c.epsv(t)
		addrs, ok := procListeners(port)
		if !ok {
			t.Skip("no /proc/net/tcp here: cannot see the listener's address")
		}
		if len(addrs) == 0 {
			t.Fatalf("no listening socket on the EPSV port %d", port)
		}
		for _, a := range addrs {
			if !isLoopbackHex(a) {
				t.Errorf("passive data port %d listens on %s (as /proc/net shows it), want 127.0.0.1 only", port, a)
			}
		}
	})

	t.Run("UnprotectedRefused", func(t *testing.T) {
		mark := f.LogMark()
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(nil))
		c.login(t, alice, false)
		port := c.epsv(t)
		raw, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
		if err != nil {
			t.Fatalf("dial data port: %v", err)
		}
		defer raw.Close()
		code, text, err := c.cmd("RETR hello.txt")
		if err != nil {
			t.Fatalf("RETR without PROT P: %v", err)
		}
		if code < 400 {
			t.Errorf("RETR without PROT P: reply %d %q, want a 4xx/5xx refusal", code, text)
			if code == 150 || code == 125 {
				_, _, _ = c.reply() // the transfer's end, so the connection is left in order
			}
		}
		if err := raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if b, _ := bufio.NewReader(raw).ReadString('\n'); strings.Contains(b, strings.TrimSpace(content)) {
			t.Errorf("the file went out in plaintext on the data connection")
		}
		if l, ok := f.pollLog(mark, logMatch("msg", "transfer", "op", "download", "outcome", "ok"), 500*time.Millisecond); ok {
			t.Errorf("an unprotected download was logged as done: %v", l)
		}
	})

	t.Run("OtherAddressRefused", func(t *testing.T) {
		// Loopback is 127.0.0.0/8 on Linux: 127.0.0.2 is another client address on this host.
		probe, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("127.0.0.2 is not usable here: %v", err)
		}
		probe.Close()
		cache := tls.NewLRUClientSessionCache(4)
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(cache))
		c.login(t, alice, true)

		data, code, text := retr(t, c, clientTLS(cache), &net.TCPAddr{IP: net.ParseIP("127.0.0.2")})
		if data == content || code/100 == 2 {
			t.Errorf("a data connection from 127.0.0.2 for a control connection from 127.0.0.1 was served: reply %d %q", code, text)
		}
		if code < 400 {
			t.Errorf("data connection from another address: final reply %d %q, want 4xx/5xx", code, text)
		}
		// The same control connection, from the right address and resuming
		// the session: shows that the address alone was refused.
		data, code, text = retr(t, c, clientTLS(cache), nil)
		if code != 226 || data != content {
			t.Errorf("data connection from 127.0.0.1 resuming the session: got %q, reply %d %q; want the file and 226", data, code, text)
		}
	})

	t.Run("FreshSessionRefused", func(t *testing.T) {
		cache := tls.NewLRUClientSessionCache(4)
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(cache))
		c.login(t, alice, true)
		// No session cache on the data connection: a full handshake, which
		// tls_session_reuse: required (the default) must refuse.
		data, code, text := retr(t, c, clientTLS(nil), nil)
		if data == content {
			t.Errorf("a data connection without TLS session resumption received the file")
		}
		// ftpserverlib reports a failure inside the transfer as 550: the TLS
		// handshake runs after the 150 reply, so a 425 is not possible.
		if code < 400 || code > 599 || !strings.Contains(text, "TLS session resumption") {
			t.Errorf("data connection without resumption: reply %d %q, want 4xx/5xx mentioning \"TLS session resumption\"", code, text)
		}
		data, code, text = retr(t, c, clientTLS(cache), nil)
		if code != 226 || data != content {
			t.Errorf("after the refusal, a resuming data connection: got %q, reply %d %q; want the file and 226", data, code, text)
		}
	})
}

// TestFTPSCrossProtocol: one daemon, one user, both protocols, the same
// bytes either way; and users restricted to one protocol refused on the other.
func TestFTPSCrossProtocol(t *testing.T) {
	requireClient(t, "sftp")
	requireClient(t, "curl")
	alice := newUser(t, "alice")
	sam := newUser(t, "sam") // SFTP only
	fay := newUser(t, "fay") // FTPS only
	f := startFTPS(t, []*testUser{alice, sam, fay}, ftpsOpts{
		Protocols: map[string][]string{"sam": {"sftp"}, "fay": {"ftps"}},
	})
	local := t.TempDir()
	home := f.HomeDir(alice)

	t.Run("SFTPToFTPS", func(t *testing.T) {
		src := filepath.Join(local, "via-sftp")
		sum := writeRandomFile(t, src, 3<<20+7)
		sftpOK(t, f.daemon, alice, fmt.Sprintf("put %s /via-sftp\n", src))
		back := filepath.Join(local, "via-sftp.back")
		curlFTPSOK(t, f, alice, "-o", back, ftpsURL(f, "/via-sftp"))
		checkSum(t, "sftp upload, ftps download", back, sum)
	})

	t.Run("FTPSToSFTP", func(t *testing.T) {
		src := filepath.Join(local, "via-ftps")
		sum := writeRandomFile(t, src, 3<<20+11)
		curlFTPSOK(t, f, alice, "-T", src, ftpsURL(f, "/via-ftps"))
		checkSum(t, "ftps upload (on disk)", filepath.Join(home, "via-ftps"), sum)
		back := filepath.Join(local, "via-ftps.back")
		sftpOK(t, f.daemon, alice, fmt.Sprintf("get /via-ftps %s\n", back))
		checkSum(t, "ftps upload, sftp download", back, sum)
		f.WaitLog(t, logMatch("msg", "transfer", "proto", "ftps", "user", "alice", "op", "upload",
			"path", "/via-ftps", "bytes", 3<<20+11, "outcome", "ok"), 10*time.Second)
		f.WaitLog(t, logMatch("msg", "transfer", "proto", "sftp", "user", "alice", "op", "download",
			"path", "/via-ftps", "bytes", 3<<20+11, "outcome", "ok"), 10*time.Second)
	})

	t.Run("SFTPOnlyUser", func(t *testing.T) {
		mark := f.LogMark()
		_, stderr, err := curlFTPS(t, f, sam, sam.Password, ftpsURL(f, "/"))
		if code := exitCode(err); code != curlLoginDenied {
			t.Errorf("sam (protocols: [sftp]) over FTPS: curl exit %d, want %d (login denied)\n%s", code, curlLoginDenied, stderr)
		}
		f.WaitLogSince(t, mark, logMatch("msg", "login", "proto", "ftps", "user", "sam", "outcome", "failed"), 10*time.Second)
		sftpOK(t, f.daemon, sam, "pwd\n") // the same user is fine over SFTP
	})

	t.Run("FTPSOnlyUser", func(t *testing.T) {
		mark := f.LogMark()
		out := sftpFails(t, f.daemon, fay, "pwd\n")
		if !strings.Contains(out, "Permission denied") {
			t.Errorf("fay (protocols: [ftps]) over SFTP: want an authentication refusal, got:\n%s", out)
		}
		if l, ok := f.pollLog(mark, logMatch("msg", "login", "user", "fay", "outcome", "ok"), time.Second); ok {
			t.Errorf("fay logged in over SFTP: %v", l)
		}
		curlFTPSOK(t, f, fay, ftpsURL(f, "/")) // and fine over FTPS
	})
}

// isLoopbackHex reports whether a local address of /proc/net/tcp or tcp6 is
// loopback: 127.0.0.1, ::ffff:127.0.0.1 or ::1.
func isLoopbackHex(a string) bool {
	switch a {
	case "0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000":
		return true
	}
	return false
}

// procListeners returns the local addresses (hex, as Linux shows them) of
// the listening TCP sockets on port; ok is false where /proc/net is missing.
func procListeners(port int) (addrs []string, ok bool) {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		ok = true
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			const listen = "0A"
			if len(fields) < 4 || fields[3] != listen {
				continue
			}
			addr, portHex, found := strings.Cut(fields[1], ":")
			p, err := strconv.ParseUint(portHex, 16, 16)
			if !found || err != nil || int(p) != port {
				continue
			}
			addrs = append(addrs, addr)
		}
	}
	return addrs, ok
}
