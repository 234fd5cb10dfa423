package daemon

import (
	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/doctor/pass"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/session"
)

// What the daemon does for `wharf doctor` (package doctor/pass has the
// design): admit its one-time passes, keep its probe out of the events and
// keep its session through a reload.

// doctorVerifier returns the Verifier of state_dir's passes, after
// removing any left there: they were made for a daemon that is gone.
func (d *Daemon) doctorVerifier() *pass.Verifier {
	v := pass.NewVerifier(d.cfg.StateDir)
	if err := v.Clear(); err != nil {
		d.log.Error("doctor passes", "err", err)
	}
	return v
}

// doctorFilter keeps a doctor session's events (its login, the probe's
// upload, download and delete) from hooks and the audit log: a partner's
// processing must not pick up a probe file. The diagnostic log still
// records each of them (user "doctor:ID"), and refused doctor logins stay
// events like any refused login.
type doctorFilter struct{ next events.Sink }

func (f doctorFilter) Emit(e events.Event) {
	if e.Type != events.LoginFailed && pass.IsUser(e.User) {
		return
	}
	f.next.Emit(e)
}

// keepDoctor is check, except that a doctor session outlives a reload:
// its user is in no config, and its pass lasts minutes.
func keepDoctor(check session.Recheck) session.Recheck {
	return func(p *auth.Principal) (*auth.Principal, error) {
		if p != nil && pass.IsUser(p.User) {
			return p, nil
		}
		return check(p)
	}
}
