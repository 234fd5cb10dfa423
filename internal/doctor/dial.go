package doctor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// dialer opens the doctor's connections to SFTP and FTPS listeners (and
// passive ports). When proxy_protocol.trusted holds the address a
// connection leaves from (a balancer on this host), the daemon demands a
// PROXY header on it: the doctor sends one, v1, naming that connection's
// own true addresses, so the daemon sees it come from this machine, as it
// does.
type dialer struct {
	timeout time.Duration
	trusted []netip.Prefix
}

func newDialer(cfg *config.Config, timeout time.Duration) dialer {
	return dialer{timeout: timeout, trusted: cfg.ProxyProtocol.Prefixes()}
}

func (d dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil || len(d.trusted) == 0 {
		return conn, err
	}
	local, lok := conn.LocalAddr().(*net.TCPAddr)
	remote, rok := conn.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return conn, nil
	}
	src, dst := local.AddrPort(), remote.AddrPort()
	if !d.isTrusted(src.Addr()) {
		return conn, nil
	}
	family := "TCP4"
	if !src.Addr().Unmap().Is4() || !dst.Addr().Unmap().Is4() {
		family = "TCP6"
		src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
		dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	} else {
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	}
	_ = conn.SetWriteDeadline(time.Now().Add(d.timeout))
	if _, err := fmt.Fprintf(conn, "PROXY %s %s %s %d %d\r\n", family, src.Addr(), dst.Addr(), src.Port(), dst.Port()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("PROXY header: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

func (d dialer) isTrusted(a netip.Addr) bool {
	for _, p := range d.trusted {
		if p.Contains(a.Unmap()) || p.Contains(a) {
			return true
		}
	}
	return false
}
