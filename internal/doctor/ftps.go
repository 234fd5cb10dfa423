package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/doctor/pass"
)

// maxReplyLines bounds one FTP reply: a FEAT is a dozen lines.
const maxReplyLines = 100

// maxListing bounds the MLSD of the scratch home, which holds one file.
const maxListing = 64 << 10

// maxPortScan bounds the passive ports tried for a bind when PASV fails.
const maxPortScan = 1000

// ftpConn is the doctor's FTPS client: just the commands of a round trip,
// with every data connection resuming the control connection's TLS
// session, as tls_session_reuse: required demands.
type ftpConn struct {
	conn    net.Conn
	r       *bufio.Reader
	tls     *tls.Config
	host    string // the control connection's host, where data may go instead
	timeout time.Duration
	served  []byte // the certificate the server showed, DER
}

// dialFTPS opens the control connection, over TLS from the first byte
// (implicit) or after AUTH TLS, and reads the greeting.
func dialFTPS(ctx context.Context, d dialer, addr string, implicit bool) (*ftpConn, error) {
	timeout := d.timeout
	raw, err := d.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := &ftpConn{conn: raw, host: hostOf(addr), timeout: timeout,
		// The certificate is compared with the file's by the caller;
		// ServerName is also the session cache's key, the same for the
		// control connection and every data connection.
		tls: &tls.Config{InsecureSkipVerify: true, ServerName: hostOf(addr), ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
	if implicit {
		if err := c.startTLS(ctx); err != nil {
			raw.Close()
			return nil, err
		}
	}
	c.r = bufio.NewReader(c.conn)
	if _, err := c.expect("", 220); err != nil {
		c.conn.Close()
		return nil, err
	}
	if !implicit {
		if _, err := c.expect("AUTH TLS", 234); err != nil {
			c.conn.Close()
			return nil, err
		}
		if err := c.startTLS(ctx); err != nil {
			c.conn.Close()
			return nil, err
		}
		c.r = bufio.NewReader(c.conn)
	}
	return c, nil
}

func (c *ftpConn) startTLS(ctx context.Context) error {
	tc := tls.Client(c.conn, c.tls)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		c.served = certs[0].Raw
	}
	c.conn = tc
	return nil
}

// ftpError is a reply other than the one expected.
type ftpError struct {
	cmd  string
	code int
	text string
}

func (e *ftpError) Error() string {
	if e.cmd == "" {
		return fmt.Sprintf("greeting %d %s", e.code, e.text)
	}
	return fmt.Sprintf("%s: %d %s", e.cmd, e.code, e.text)
}

// expect sends cmd (none when "") and reads a reply, which must have one
// of the codes.
func (c *ftpConn) expect(cmd string, codes ...int) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if cmd != "" {
		if _, err := io.WriteString(c.conn, cmd+"\r\n"); err != nil {
			return "", fmt.Errorf("%s: %w", redactCmd(cmd), err)
		}
	}
	code, text, err := c.reply()
	if err != nil {
		return "", fmt.Errorf("%s: %w", redactCmd(cmd), err)
	}
	for _, want := range codes {
		if code == want {
			return text, nil
		}
	}
	return text, &ftpError{cmd: redactCmd(cmd), code: code, text: text}
}

// redactCmd keeps the password out of every error.
func redactCmd(cmd string) string {
	if strings.HasPrefix(cmd, "PASS ") {
		return "PASS"
	}
	return cmd
}

// reply reads one reply, multi-line ones included.
func (c *ftpConn) reply() (int, string, error) {
	var lines []string
	for range maxReplyLines {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) >= 4 && line[3] == ' ' {
			if code, err := strconv.Atoi(line[:3]); err == nil && (len(lines) == 1 || strings.HasPrefix(lines[0], line[:3]+"-")) {
				return code, strings.Join(lines, "\n")[4:], nil
			}
		}
	}
	return 0, "", errors.New("reply too long")
}

func (c *ftpConn) close() {
	_, _ = c.expect("QUIT", 221)
	c.conn.Close()
}

// pasv asks for a passive port and returns the address announced.
func (c *ftpConn) pasv() (string, error) {
	text, err := c.expect("PASV", 227)
	if err != nil {
		return "", err
	}
	open, end := strings.IndexByte(text, '('), strings.IndexByte(text, ')')
	if open < 0 || end < open {
		return "", fmt.Errorf("PASV: no address in %q", text)
	}
	var n [6]int
	parts := strings.Split(text[open+1:end], ",")
	if len(parts) != 6 {
		return "", fmt.Errorf("PASV: no address in %q", text)
	}
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 || v > 255 {
			return "", fmt.Errorf("PASV: no address in %q", text)
		}
		n[i] = v
	}
	return net.JoinHostPort(fmt.Sprintf("%d.%d.%d.%d", n[0], n[1], n[2], n[3]), strconv.Itoa(n[4]<<8|n[5])), nil
}

// passive is what the first data connection found out: the passive ports
// check.
type passive struct {
	done      bool
	announced string
	// via is where the data connections go: the announced host, or the
	// control connection's when the announced one did not answer.
	viaControl bool
	result     Result
}

// transfer runs one data command (STOR, MLSD, RETR): PASV, connect, the
// command, TLS on the data connection, send or receive, the final reply.
func (r *runner) transfer(ctx context.Context, c *ftpConn, pv *passive, cmd string, send []byte, limit int64) ([]byte, error) {
	announced, err := c.pasv()
	if err != nil {
		if !pv.done {
			pv.done, pv.result = true, r.pasvRefused(err)
		}
		return nil, err
	}
	data, err := r.dialData(ctx, c, pv, announced)
	if err != nil {
		return nil, err
	}
	defer data.Close()
	if _, err := c.expect(cmd, 150, 125); err != nil {
		return nil, err
	}
	_ = data.SetDeadline(time.Now().Add(2 * c.timeout))
	tc := tls.Client(data, c.tls)
	var got []byte
	if send != nil {
		_, err = tc.Write(send)
	} else {
		got, err = io.ReadAll(io.LimitReader(tc, limit+1))
		if err == nil && int64(len(got)) > limit {
			err = fmt.Errorf("more than %d bytes", limit)
		}
	}
	// Close sends close_notify: without it the daemon takes an upload
	// for a broken one.
	if cerr := tc.Close(); err == nil && send != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: data connection: %w", cmd, err)
	}
	if !tc.ConnectionState().DidResume && r.cfg.FTPS.TLSSessionReuse == "required" {
		return nil, fmt.Errorf("%s: the data connection did not resume the TLS session", cmd)
	}
	if _, err := c.expect("", 226, 250); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return got, nil
}

// dialData connects to a passive port. The first time, it tries the
// announced address and, when that does not answer, the same port on the
// control connection's host, and records what it found as the passive
// ports check.
func (r *runner) dialData(ctx context.Context, c *ftpConn, pv *passive, announced string) (net.Conn, error) {
	d := newDialer(r.cfg, c.timeout)
	_, port, _ := net.SplitHostPort(announced)
	fallback := net.JoinHostPort(c.host, port)
	if pv.done {
		if pv.viaControl {
			return d.dial(ctx, fallback)
		}
		return d.dial(ctx, announced)
	}
	pv.done, pv.announced = true, announced
	res := Result{Check: CheckPassive, Target: r.cfg.FTPS.PassivePorts}
	if res.Target == "" {
		res.Target = "any port"
	}
	conn, err := d.dial(ctx, announced)
	p, _ := strconv.Atoi(port)
	first, last, _ := r.cfg.FTPS.PassivePortRange()
	switch {
	case err == nil && first != 0 && (p < first || p > last):
		res.Status = Fail
		res.Message = fmt.Sprintf("PASV announced %s, outside ftps.passive_ports", announced)
		res.Fix = "restart wharf so that it applies ftps.passive_ports"
	case err == nil:
		res.Status, res.Message = OK, fmt.Sprintf("PASV announced %s and it answered", announced)
	default:
		fconn, ferr := net.Conn(nil), error(nil)
		if fallback != announced {
			fconn, ferr = d.dial(ctx, fallback)
		}
		res.Status = Fail
		if fallback != announced && ferr == nil {
			res.Message = fmt.Sprintf("PASV sends clients to %s, which does not answer from here (%v), while the same port answers on %s", announced, shortErr(err), fallback)
			// The rest of the round trip goes on there.
			conn, err, pv.viaControl = fconn, nil, true
			res.Fix = "set ftps.public_host to the address partners reach this host at (or remove it to announce the address each client connected to), and open and forward ftps.passive_ports there"
		} else {
			res.Message = fmt.Sprintf("passive port %s does not answer: %v", announced, shortErr(err))
			res.Fix = "allow inbound TCP to ftps.passive_ports (" + r.cfg.FTPS.PassivePorts + ") in the firewall"
		}
	}
	pv.result = res
	return conn, err
}

// pasvRefused words a PASV the daemon could not serve: usually every port
// of the range is held by something else.
func (r *runner) pasvRefused(err error) Result {
	res := Result{Check: CheckPassive, Target: r.cfg.FTPS.PassivePorts, Status: Fail}
	first, last, _ := r.cfg.FTPS.PassivePortRange()
	if first == 0 {
		res.Message = "the daemon could not open a passive port: " + err.Error()
		res.Fix = "look at the daemon's log for the PASV of user doctor:"
		return res
	}
	held, tried := heldPorts(first, last)
	res.Message = fmt.Sprintf("the daemon could not open a passive port (%v); %d of the %d ports tried in %d-%d are held by other programs",
		err, held, tried, first, last)
	if held == tried {
		res.Fix = fmt.Sprintf("free ports %d-%d (`ss -ltnp 'sport >= %d and sport <= %d'` shows who holds them) or move ftps.passive_ports to a free range",
			first, last, first, last)
	} else {
		res.Fix = "widen ftps.passive_ports, or lower ftps.max_passive_per_user if one user holds them all"
	}
	return res
}

// heldPorts tries to bind each port of a range as the daemon would, and
// counts those it cannot.
func heldPorts(first, last int) (held, tried int) {
	for p := first; p <= last && tried < maxPortScan; p++ {
		tried++
		ln, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(p)))
		if err != nil {
			held++
			continue
		}
		ln.Close()
	}
	return held, tried
}

// shortErr is an error without its address prefix, which the message
// already gives.
func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// checkFTPS runs the FTPS round trip on the explicit listener (else the
// implicit one) and reports the passive ports it used.
func (r *runner) checkFTPS(ctx context.Context) {
	f := r.cfg.FTPS
	if f.Listen == "" && f.ImplicitListen == "" {
		return
	}
	start := time.Now()
	// The explicit listener, unless only the implicit one answers.
	key, listen, implicit := keyFTPS, f.Listen, false
	if _, up := r.listening[keyFTPS]; listen == "" || (!up && r.listening[keyImplicit] != "") {
		key, listen, implicit = keyImplicit, f.ImplicitListen, true
	}
	target := key + " " + listen
	addr, p, ok := r.roundTripReady(CheckFTPS, key, target, start)
	if !ok {
		r.add(start, Result{Check: CheckPassive, Target: f.PassivePorts, Status: Skip, Message: "no FTPS round trip to use them"})
		return
	}
	pv := &passive{}
	res := Result{Check: CheckFTPS, Target: target}
	served, step, err := r.ftpsRoundTrip(ctx, addr, implicit, p, pv)
	switch {
	case err != nil:
		res.Status = Fail
		res.Message, res.Fix = ftpsFailure(step, addr, err, p.User)
		if pv.done && pv.result.Status == Fail {
			res.Fix = "see the passive_ports check: every listing and transfer needs a passive port"
		}
	case r.certFP != "" && served != r.certFP:
		res.Status = Fail
		res.Message = fmt.Sprintf("the round trip worked, but %s serves certificate %s, not the one on disk (%s)", addr, served, r.certFP)
		res.Fix = "wharf keeps serving the last good certificate while the files are broken or do not match: fix them (see the certificate check)"
	default:
		res.Status = OK
		res.Message = fmt.Sprintf("upload, list, download and delete of %d KiB as %s through the daemon, data over TLS", probeSize>>10, p.User)
		if r.cfg.FTPS.TLSSessionReuse == "required" {
			res.Message += " resuming the control connection's session"
		}
		res.Message += "; certificate " + served
	}
	r.add(start, res)
	if pv.done {
		r.add(start, pv.result)
	} else {
		r.add(start, Result{Check: CheckPassive, Target: f.PassivePorts, Status: Skip, Message: "the round trip stopped before its first data connection"})
	}
}

// ftpsRoundTrip returns the certificate's fingerprint, the step that
// failed and why.
func (r *runner) ftpsRoundTrip(ctx context.Context, addr string, implicit bool, p *pass.Pass, pv *passive) (string, string, error) {
	c, err := dialFTPS(ctx, newDialer(r.cfg, r.o.Timeout), addr, implicit)
	if err != nil {
		return "", stepConnect, err
	}
	defer c.close()
	served := colonHex(c.served)
	for _, s := range []struct {
		cmd  string
		code int
	}{{"PBSZ 0", 200}, {"PROT P", 200}, {"USER " + p.User, 331}, {"PASS " + p.Password, 230}, {"TYPE I", 200}} {
		if _, err := c.expect(s.cmd, s.code); err != nil {
			step := stepConnect
			if strings.HasPrefix(s.cmd, "USER") || strings.HasPrefix(s.cmd, "PASS") {
				step = stepLogin
			}
			return served, step, err
		}
	}
	data := make([]byte, probeSize)
	_, _ = rand.Read(data)
	if _, err := r.transfer(ctx, c, pv, "STOR "+probeName, data, 0); err != nil {
		return served, stepUpload, err
	}
	listing, err := r.transfer(ctx, c, pv, "MLSD", nil, maxListing)
	if err != nil {
		return served, stepList, err
	}
	if !listed(string(listing), probeName, probeSize) {
		return served, stepList, fmt.Errorf("MLSD does not show %s with %d bytes:\n%s", probeName, probeSize, listing)
	}
	got, err := r.transfer(ctx, c, pv, "RETR "+probeName, nil, probeSize)
	switch {
	case err != nil:
		return served, stepDownload, err
	case !bytes.Equal(got, data):
		return served, stepDownload, errors.New("downloaded other bytes than were uploaded")
	}
	if _, err := c.expect("DELE "+probeName, 250); err != nil {
		return served, stepDelete, err
	}
	return served, "", nil
}

// listed reports whether an MLSD listing has name with size bytes.
func listed(listing, name string, size int) bool {
	for _, line := range strings.Split(listing, "\n") {
		facts, file, ok := strings.Cut(strings.TrimRight(line, "\r"), " ")
		if !ok || file != name {
			continue
		}
		for _, f := range strings.Split(facts, ";") {
			if k, v, _ := strings.Cut(f, "="); strings.EqualFold(k, "size") && v == strconv.Itoa(size) {
				return true
			}
		}
	}
	return false
}

// ftpsFailure words a failed FTPS round trip.
func ftpsFailure(step, addr string, err error, user string) (string, string) {
	logHint := "look at the daemon's log for user " + user
	switch step {
	case stepConnect:
		return fmt.Sprintf("%s: %v", addr, err), "see the listener and certificate checks; " + logHint
	case stepLogin:
		return fmt.Sprintf("%s refused the doctor's one-time password: %v", addr, err),
			"make sure the daemon listening there is the one of this config and state_dir, and recent enough to admit doctor passes; " + logHint
	}
	return fmt.Sprintf("%s failed: %v", step, err), "see the storage and passive ports checks; partners' transfers fail the same way; " + logHint
}

// checkPublicHost: ftps.public_host, which PASV announces, is this
// machine: one of its addresses, or one that reaches this daemon (NAT).
func (r *runner) checkPublicHost(ctx context.Context) {
	f := r.cfg.FTPS
	if f.Listen == "" && f.ImplicitListen == "" {
		return
	}
	start := time.Now()
	res := Result{Check: CheckPublicHost, Target: f.PublicHost}
	ip, err := netip.ParseAddr(f.PublicHost)
	switch {
	case f.PublicHost == "":
		res.Status, res.Message = OK, "not set: PASV announces the address each client connected to"
	case err != nil:
		res.Status, res.Message = Fail, err.Error()
		res.Fix = "set ftps.public_host to this machine's public IPv4 address"
	case !ip.Is4() && !ip.Is4In6():
		res.Status, res.Message = Fail, "an IPv6 address: PASV can only announce IPv4, so every passive transfer fails"
		res.Fix = "set ftps.public_host to this machine's public IPv4 address, or remove it"
	case pass.IsLocal(ip):
		res.Status, res.Message = OK, "an address of this machine"
	default:
		res.Status, res.Message = r.reachesUs(ctx, f.PublicHost)
		if res.Status != OK {
			res.Fix = "set ftps.public_host to the address partners reach this host at; behind NAT that does not loop back, run the FTPS check from outside"
		}
	}
	r.add(start, res)
}

// reachesUs tries the FTPS port at host: a NAT address that loops back
// to this host answers with wharf's greeting.
func (r *runner) reachesUs(ctx context.Context, host string) (Status, string) {
	listen, kind := r.cfg.FTPS.Listen, kindFTP
	if listen == "" {
		listen, kind = r.cfg.FTPS.ImplicitListen, kindFTPS
	}
	_, port, _ := net.SplitHostPort(listen)
	addr := net.JoinHostPort(host, port)
	greeting, err := greet(ctx, newDialer(r.cfg, r.o.Timeout), addr, kind)
	if err == nil && strings.Contains(greeting, wharfInGreet) {
		return OK, "not an address of this machine, but " + addr + " reaches this daemon (NAT)"
	}
	if err == nil {
		err = fmt.Errorf("it answers %q", greeting)
	}
	return Warn, fmt.Sprintf("not an address of this machine, and %s does not reach wharf from here: %v", addr, shortErr(err))
}
