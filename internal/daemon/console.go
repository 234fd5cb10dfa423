package daemon

import (
	"context"
	"errors"
	"fmt"
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
	return onboard.Build(onboard.Input{Config: cfg, User: user, Host: host, HostKeys: id.HostKeys,
		Certificate: id.Certificate, Identities: ids})
}
