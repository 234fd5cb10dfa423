package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/console"
	"github.com/wharf-sftp/wharf/internal/onboard"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// The web console (package console) at / on the admin listener: this
// file hands it the API it drives and the onboarding packet's inputs.

// packetTimeout bounds reading the config and the server's identity for
// one packet (a bucket users_dir or state_url may be behind them).
const packetTimeout = 20 * time.Second

func (d *Daemon) newConsole(a *api.Server) (*console.Server, error) {
	return console.New(console.Options{
		API:      a,
		Users:    d.cfg.Admin.Users,
		Defender: d.guard,
		Packet:   d.packet,
		Log:      d.log,
	})
}

// packet builds user's onboarding packet from the config file as it is
// now (the partner may have been created a moment ago), as `wharf user
// onboard` does.
func (d *Daemon) packet(ctx context.Context, user, host string, ids []onboard.Identity) (*onboard.Packet, error) {
	if d.rl.path == "" {
		return nil, errors.New("the daemon's config was not loaded from a file")
	}
	ctx, cancel := context.WithTimeout(ctx, packetTimeout)
	defer cancel()
	cfg, err := configedit.LoadConfig(d.rl.path, s3store.CountRequests(d.metrics.S3Request))
	if err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	id, err := ReadPublicIdentity(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// A listen address with port 0 (the kernel's pick) has a port only
	// once bound: the one this daemon got.
	ports := onboard.Ports{SFTP: boundPort(cfg.SFTP.Listen, d.SFTPAddr()), FTPS: boundPort(cfg.FTPS.Listen, d.FTPSAddr()),
		FTPSImplicit: boundPort(cfg.FTPS.ImplicitListen, d.FTPSImplicitAddr())}
	return onboard.Build(onboard.Input{Config: cfg, User: user, Host: host, Ports: ports, HostKeys: id.HostKeys,
		Certificate: id.Certificate, Identities: ids})
}

// boundPort is bound's port when listen asks for port 0, else 0 (the
// listen address's port stands).
func boundPort(listen string, bound net.Addr) int {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port != "0" {
		return 0
	}
	if a, ok := bound.(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
