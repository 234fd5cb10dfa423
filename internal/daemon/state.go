package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/fleet"
	"github.com/wharf-sftp/wharf/internal/ftpd"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3store"
	"github.com/wharf-sftp/wharf/internal/sftpd"
)

// What a fleet shares through state_url (package fleet): the identity
// partners see (host keys, the self-signed FTPS certificate) and the
// defender's bans.

// stateTimeout bounds start-up's requests to the state: reading (or, for
// the first daemon, writing) the identity, and the first read of the bans.
// A daemon that cannot reach its fleet's identity does not start: it would
// show partners other fingerprints.
const stateTimeout = time.Minute

// OpenState opens the folder state_url names with storage.s3's endpoint,
// region and credentials; nil without state_url. count, if not nil, is
// called for each request (wharf_s3_requests_total).
func OpenState(ctx context.Context, cfg *config.Config, count func(op string)) (*fleet.State, error) {
	if cfg.StateURL == "" {
		return nil, nil
	}
	var opts []func(*s3.Options)
	if count != nil {
		opts = append(opts, s3store.CountRequests(count))
	}
	obj, err := s3store.NewObjects(ctx, s3store.FromConfig(cfg.Storage.S3), cfg.StateURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("state_url: %w", err)
	}
	return fleet.New(obj), nil
}

// openEvents opens the event bus. With state_url its delivery queue is the
// fleet's, in the bucket (fleet.Queue): the deliveries of a daemon that
// dies are made by the others; else a bbolt file in state_dir.
func (d *Daemon) openEvents() error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	var err error
	if d.state, err = OpenState(ctx, d.cfg, d.metrics.S3Request); err != nil {
		return err
	}
	opts := events.Options{StateDir: d.cfg.StateDir, Hooks: d.cfg.Hooks, AuditLog: d.cfg.AuditLog, Log: d.log}
	if d.state != nil {
		d.log.Info("fleet state", "component", "fleet", "url", d.state.URL())
		opts.StateDir = ""
		if len(d.cfg.Hooks) > 0 {
			q, err := d.state.Queue(ctx, fleet.QueueOptions{Lease: d.cfg.EventLeaseOrDefault(), Log: d.log})
			if err != nil {
				return err
			}
			opts.Queue = q
		}
	}
	if d.events, err = events.Open(opts); err != nil {
		if opts.Queue != nil {
			_ = opts.Queue.Close()
		}
		return fmt.Errorf("events: %w", err)
	}
	return nil
}

// openState reads the fleet's bans once, with state_url, so
// that an address the fleet banned is refused from the first connection.
// An unreachable bucket only delays that to the syncer's next round.
func (d *Daemon) openState() error {
	if d.state == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	var window time.Duration // failed logins counted across the fleet
	if d.cfg.Defender.Enabled {
		window = d.cfg.Defender.Window
	}
	d.bans = fleet.NewSyncer(d.state, d.guard, fleet.SyncOptions{
		Retain:  d.cfg.Defender.MaxBanTime,
		Window:  window,
		Changed: d.saveBans,
		Log:     d.log,
	})
	_ = d.bans.Refresh(ctx) // a failure is logged; Run's rounds go on trying
	return nil
}

// publishBan hands a ban this daemon made to the fleet (nil without
// state_url). It is the guard's callback: it never blocks.
func (d *Daemon) publishBan(b guard.Ban) {
	if d.bans != nil {
		d.bans.Publish(b)
	}
}

// startBans starts the goroutine that keeps the bans: the fleet's syncer
// with state_url, else the reader of local lift requests. stop ends it and
// waits for it.
func (d *Daemon) startBans() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if d.bans != nil {
			d.bans.Run(ctx)
		} else {
			d.serveLifts(ctx)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// hostKeys are the configured host keys; else, with state_url, the
// fleet's; else those generated in state_dir.
func (d *Daemon) hostKeys() ([]ssh.Signer, error) {
	if d.state == nil || len(d.cfg.SFTP.HostKeys) > 0 {
		return sftpd.LoadHostKeys(d.cfg.SFTP.HostKeys, d.cfg.StateDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	return sftpd.LoadSharedHostKeys(ctx, d.state, d.cfg.StateDir)
}

// certificate is the configured FTPS certificate; else, with state_url,
// the fleet's self-signed one; else the one generated in state_dir.
// FTPS and the admin listener (admin.tls) share the one it loads: one
// read (of the files, or of the fleet's bucket), one reload watch.
func (d *Daemon) certificate() (*ftpd.Certificate, error) {
	if d.cert != nil {
		return d.cert, nil
	}
	f := d.cfg.FTPS
	var err error
	if d.state == nil || f.CertFile != "" || f.KeyFile != "" {
		d.cert, err = ftpd.LoadCertificate(f.CertFile, f.KeyFile, d.cfg.StateDir)
		return d.cert, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	d.cert, err = ftpd.LoadSharedCertificate(ctx, d.state, d.cfg.StateDir)
	return d.cert, err
}

// ErrNotBanned is Lift's answer for an address without a ban.
var ErrNotBanned = errors.New("not banned")

// liftWait bounds how long Lift waits for a local daemon to take the
// request: a few of its looks.
const liftWait = 5 * liftPoll

// ListBans returns the bans in force for `wharf defender list`: with
// state_url the fleet's, read from the bucket; else those the daemon
// running on state_dir keeps in its ban file.
func ListBans(ctx context.Context, cfg *config.Config) ([]guard.Ban, error) {
	st, err := OpenState(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return ReadBans(cfg.StateDir)
	}
	objects, _, err := st.ListBans(ctx)
	if err != nil {
		return nil, err
	}
	bans := fleet.Current(objects, time.Now())
	if bans == nil {
		bans = []guard.Ban{} // as the ban file has it: [] in JSON
	}
	return bans, nil
}

// Lift ends addr's ban for `wharf defender lift`: with state_url in the
// fleet's set, which every daemon reads within fleet.DefaultRefresh; else
// on the daemon running on state_dir. It returns where the ban was lifted,
// for the operator, and ErrNotBanned when addr has none there.
func Lift(ctx context.Context, cfg *config.Config, addr netip.Addr) (string, error) {
	addr = addr.Unmap() // as the guard records addresses
	st, err := OpenState(ctx, cfg, nil)
	if err != nil {
		return "", err
	}
	if st != nil {
		n, err := st.LiftBan(ctx, addr)
		if err != nil {
			return "", err
		}
		if n == 0 {
			return "", fmt.Errorf("%s: %w in %s", addr, ErrNotBanned, st.URL())
		}
		return fmt.Sprintf("the fleet's set (%s); every daemon drops it within %s", st.URL(), fleet.DefaultRefresh), nil
	}
	bans, err := ReadBans(cfg.StateDir)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(bans, func(b guard.Ban) bool { return b.Addr == addr }) {
		return "", fmt.Errorf("%s: %w by the daemon on %s", addr, ErrNotBanned, cfg.StateDir)
	}
	if err := RequestLift(ctx, cfg.StateDir, addr, liftWait); err != nil {
		return "", err
	}
	return "the daemon on " + cfg.StateDir, nil
}
