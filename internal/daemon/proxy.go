package daemon

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/wharf-sftp/wharf/internal/admin"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/proxyproto"
)

// newProxyPolicy is proxy_protocol: nil when no balancer is trusted, and
// the listeners are then bound as they are.
func newProxyPolicy(cfg *config.Config, log *slog.Logger, m *admin.Metrics) (*proxyproto.Policy, error) {
	trusted := cfg.ProxyProtocol.Prefixes()
	if len(trusted) == 0 {
		return nil, nil
	}
	p, err := proxyproto.New(proxyproto.Options{
		Trusted: trusted,
		// A balancer sends the header as it connects: a few seconds is
		// plenty, and never more than a login may take.
		Timeout: min(cfg.Limits.LoginTimeout, proxyproto.DefaultTimeout),
		// Connections waiting for their header are connections not yet
		// logged in: the same bound.
		MaxPending: cfg.Limits.MaxUnauthenticated,
		Log:        log,
		Refused:    m.ProxyRefused,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy_protocol: %w", err)
	}
	log.Info("proxy protocol", "component", "proxyproto", "trusted", cfg.ProxyProtocol.Trusted)
	return p, nil
}

// listen binds a protocol listener (SFTP, FTPS control), behind the PROXY
// protocol when balancers are trusted.
func (d *Daemon) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || d.proxy == nil {
		return ln, err
	}
	return d.proxy.Listen(ln), nil
}

// wrapData is ftpd's hook for passive data listeners; nil without the
// PROXY protocol.
func (d *Daemon) wrapData() func(net.Listener) net.Listener {
	if d.proxy == nil {
		return nil
	}
	return d.proxy.Data
}
