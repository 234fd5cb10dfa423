package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Listener kinds: how each answers a new connection.
const (
	kindSSH      = "ssh"
	kindFTP      = "ftp"  // explicit FTPS: a plain 220, then AUTH TLS
	kindFTPS     = "ftps" // implicit FTPS: TLS from the first byte
	kindHTTP     = "http" // the admin endpoint
	maxGreeting  = 1 << 10
	wharfInGreet = "wharf" // in the SSH banner and the FTP greeting
)

// Config keys of the listeners, as r.listening names them.
const (
	keySFTP     = "sftp.listen"
	keyLegacy   = "sftp.legacy.listen"
	keyFTPS     = "ftps.listen"
	keyImplicit = "ftps.implicit_listen"
	keyAdmin    = "admin.listen"
)

// checkListeners: each configured listener has a fixed port, something
// answers on it, and that something is wharf.
func (r *runner) checkListeners(ctx context.Context) {
	for _, l := range []struct{ key, addr, kind string }{
		{keySFTP, r.cfg.SFTP.Listen, kindSSH},
		{keyLegacy, r.cfg.SFTP.Legacy.Listen, kindSSH},
		{keyFTPS, r.cfg.FTPS.Listen, kindFTP},
		{keyImplicit, r.cfg.FTPS.ImplicitListen, kindFTPS},
		{keyAdmin, r.cfg.Admin.Listen, kindHTTP},
	} {
		if l.addr == "" {
			continue
		}
		start := time.Now()
		res := Result{Check: CheckListener, Target: l.key + " " + l.addr}
		dial, err := dialAddr(l.addr)
		if err != nil {
			res.Status, res.Message = Fail, err.Error()
			res.Fix = "set " + l.key + " to a fixed address and port partners can use, such as 0.0.0.0:" + defaultPort(l.kind)
			r.add(start, res)
			continue
		}
		greeting, err := greet(ctx, newDialer(r.cfg, r.o.Timeout), dial, l.kind)
		switch {
		case err != nil:
			res.Status, res.Message = Fail, err.Error()
			res.Fix = dialFix(err, l.key, r.report.Config)
		case !strings.Contains(greeting, wharfInGreet):
			res.Status = Fail
			res.Message = fmt.Sprintf("%s answers, but not as wharf: %q", dial, greeting)
			res.Fix = "another program holds " + dial + ": stop it, or move " + l.key + " (and the daemon) to a free port"
		default:
			r.listening[l.key] = dial
			res.Status, res.Message = OK, fmt.Sprintf("wharf answers on %s: %q", dial, greeting)
		}
		r.add(start, res)
	}
}

func defaultPort(kind string) string {
	switch kind {
	case kindSSH:
		return "22"
	case kindFTP:
		return "21"
	case kindFTPS:
		return "990"
	}
	return "9100"
}

// dialAddr is where the doctor, on the daemon's host, reaches a listen
// address: a wildcard host is dialled on loopback.
func dialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", listen, err)
	}
	if port == "0" || port == "" {
		return "", errors.New("port 0: the kernel picks another port at each start, so partners cannot know it and the doctor cannot find it")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// greet connects to addr and reads what a wharf listener of kind says
// first; for HTTP, GET /healthz's status line.
func greet(ctx context.Context, d dialer, addr, kind string) (string, error) {
	timeout := d.timeout
	if kind == kindHTTP {
		return greetHTTP(ctx, addr, timeout)
	}
	conn, err := d.dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if kind == kindFTPS {
		// Not verified here: the round trip compares it with the file's.
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: hostOf(addr)})
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("%s accepted the connection but %w: TLS handshake: %w", addr, errSilent, err)
		}
		conn = tc
	}
	line, err := bufio.NewReaderSize(conn, maxGreeting).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s accepted the connection but %w within %s: %w", addr, errSilent, timeout, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func greetHTTP(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /healthz on %s: %s", addr, resp.Status)
	}
	return "wharf admin: GET /healthz " + resp.Status, nil
}

// errSilent is a listener that accepts connections but does not greet.
var errSilent = errors.New("did not greet")

// dialFix says what to do about a listener that does not answer.
func dialFix(err error, key, config string) string {
	var ne net.Error
	switch {
	case errors.Is(err, errSilent):
		return "look at the daemon's log: a daemon at its connection limits or stuck greets late or not at all, and another program may hold the port"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "start wharf (wharf serve --config " + config + "), or set " + key + " to the address the daemon listens on (its log says it at start)"
	case errors.As(err, &ne) && ne.Timeout():
		return "a firewall drops connections to this port: allow inbound TCP to it"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "set " + key + " to an address of this machine (or 0.0.0.0 for all of them)"
	}
	return "look at the daemon's log for " + key
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}
