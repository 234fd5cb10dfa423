package daemon

import (
	"context"
	"fmt"
	"github.com/wharf-sftp/wharf/internal/doctor"
	"net/netip"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wharf-sftp/wharf/internal/api"
	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/session"
)

// The admin API (package api) on the admin listener: this file hands it
// the daemon's parts.

// checkAdminAccess parses the hashes of admin.api_keys and admin.users
// as the API will use them: part of Check, so that `wharf config check`
// reports a malformed one with its line.
func checkAdminAccess(cfg *config.Config) []error {
	var errs []error
	for i, k := range cfg.Admin.APIKeys {
		if _, err := auth.ParseSecret(k.KeyHash); err != nil && k.KeyHash != "" {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("admin.api_keys[%d].key_hash", i), "%v", err))
		}
	}
	for i, u := range cfg.Admin.Users {
		if _, err := auth.ParseSecret(u.PasswordHash); err != nil && u.PasswordHash != "" {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("admin.users[%d].password_hash", i), "%v", err))
		}
	}
	return errs
}

// eventSink is where the sessions' events go: the API's recent events
// first (they are stamped there), then the bus.
func (d *Daemon) eventSink() events.Sink {
	if d.recent == nil {
		return d.events
	}
	return d.recent.Sink(d.events)
}

// newAPI builds the API served under /api/ on the admin listener.
func (d *Daemon) newAPI(token *auth.Token) (*api.Server, error) {
	return api.New(api.Options{
		Token:    token,
		Keys:     d.cfg.Admin.APIKeys,
		Control:  apiControl{d},
		Recent:   d.recent,
		Events:   d.eventSink(),
		Packet:   d.packet,
		Doctor:   d.doctor,
		Defender: d.guard,
		Log:      d.log,
	})
}

// apiControl is the daemon as package api reads and changes it.
type apiControl struct{ d *Daemon }

// Editor edits the config file the daemon runs on, as `wharf user` does;
// the daemon then reloads the change like any other.
func (c apiControl) Editor() *configedit.Editor {
	if c.d.rl.path == "" {
		return nil
	}
	return &configedit.Editor{
		Path: c.d.rl.path,
		Check: func(cfg *config.Config) error {
			_, err := Check(cfg)
			return err
		},
		S3Client: []func(*s3.Options){s3store.CountRequests(c.d.metrics.S3Request)},
	}
}

func (c apiControl) Sessions() []session.Info { return c.d.sessions.Infos() }

func (c apiControl) CloseSession(id string) bool { return c.d.sessions.CloseSession(id) }

func (c apiControl) Bans() []guard.Ban { return c.d.guard.Bans() }

// LiftBan lifts addr's ban here and, with state_url, deletes it from the
// fleet's set, which every other daemon reads within fleet.DefaultRefresh.
func (c apiControl) LiftBan(ctx context.Context, addr netip.Addr) (api.Lifted, error) {
	d := c.d
	l := api.Lifted{Here: d.guard.Lift(addr)}
	if l.Here {
		d.saveBans()
	}
	if d.state != nil {
		n, err := d.state.LiftBan(ctx, addr)
		if err != nil {
			return l, err
		}
		l.Fleet = n
	}
	return l, nil
}

// Health runs every check /readyz runs.
func (c apiControl) Health(context.Context) []api.Check {
	var out []api.Check
	for _, rc := range c.d.readyChecks() {
		out = append(out, api.Check{Name: rc.name, Err: rc.run()})
	}
	return out
}

// doctor runs `wharf doctor`'s checks against this daemon, from the config
// file it runs on (nil without one: the API then answers 501).
func (d *Daemon) doctor(ctx context.Context) any {
	return doctor.Run(ctx, d.rl.path, doctor.Options{Check: func(c *config.Config) error {
		_, err := Check(c)
		return err
	}})
}
