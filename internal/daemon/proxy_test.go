package daemon

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/wharf-sftp/wharf/internal/admin"
	"github.com/wharf-sftp/wharf/internal/config"
)

// The listeners are bound behind the PROXY protocol at start only: a
// reload that changes proxy_protocol.trusted says a restart is needed and
// keeps the networks in force.
func TestReloadProxyProtocolNeedsRestart(t *testing.T) {
	cur, next := config.Default(), config.Default()
	cur.ProxyProtocol.Trusted = []string{"10.0.0.0/8"}
	next.ProxyProtocol.Trusted = []string{"10.0.0.0/8", "192.0.2.7"}
	live, restart := liveConfig(cur, next)
	if !slices.Equal(restart, []string{"proxy_protocol.trusted"}) {
		t.Errorf("restart = %v, want [proxy_protocol.trusted]", restart)
	}
	if !slices.Equal(live.ProxyProtocol.Trusted, cur.ProxyProtocol.Trusted) {
		t.Errorf("in force after reload: %v, want %v", live.ProxyProtocol.Trusted, cur.ProxyProtocol.Trusted)
	}
}

func TestProxyPolicyOffByDefault(t *testing.T) {
	p, err := newProxyPolicy(config.Default(), slog.New(slog.DiscardHandler), admin.NewMetrics(admin.Sources{}))
	if err != nil || p != nil {
		t.Fatalf("newProxyPolicy with no trusted network = %v, %v; want nil, nil", p, err)
	}
	cfg := config.Default()
	cfg.ProxyProtocol.Trusted = []string{"10.0.0.0/8"}
	if p, err := newProxyPolicy(cfg, slog.New(slog.DiscardHandler), admin.NewMetrics(admin.Sources{})); err != nil || p == nil {
		t.Fatalf("newProxyPolicy with a trusted network = %v, %v", p, err)
	}
}
