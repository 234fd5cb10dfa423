package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/wharf-sftp/wharf/internal/admin"
	"github.com/wharf-sftp/wharf/internal/auth"
)

// expiryEvery is how often the keys and passwords expiring within
// key_expiry_warning are logged: once at start, then once a day.
const expiryEvery = 24 * time.Hour

// expiryWarner logs the credentials about to expire. It reads the user
// directory and the warning window in force at each round, so a reload
// applies to the next one.
type expiryWarner struct {
	dir    func() *auth.Directory
	window func() time.Duration
	log    *slog.Logger
	every  time.Duration
}

// run logs a round now and one every w.every until quit is closed.
func (w expiryWarner) run(quit <-chan struct{}) {
	w.round(time.Now())
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case now := <-tick.C:
			w.round(now)
		}
	}
}

// round logs one line per credential expiring within the window, soonest
// first: the operator's reminder to rotate before a partner is locked out.
func (w expiryWarner) round(now time.Time) {
	window := w.window()
	if window <= 0 {
		return
	}
	for _, x := range w.dir().Expiring(now, window) {
		left := inDays(x.At.Sub(now))
		if x.Password() {
			w.log.Warn("password expires soon", "user", x.User, "expires_at", x.At.UTC().Format(time.RFC3339), "in", left)
			continue
		}
		attrs := []any{"user", x.User, "fingerprint", x.Fingerprint, "expires_at", x.At.UTC().Format(time.RFC3339), "in", left}
		if x.Comment != "" {
			attrs = append(attrs, "comment", x.Comment)
		}
		w.log.Warn("key expires soon", attrs...)
	}
}

// inDays writes a time left as people count it in days: "10d", "9d4h";
// under a day, "5h30m0s".
func inDays(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day {
		return d.Round(time.Minute).String()
	}
	days, hours := d/day, (d%day).Round(time.Hour)/time.Hour
	if hours == 24 {
		days, hours = days+1, 0
	}
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

// startExpiryWarnings starts the daily warning and returns the function
// that stops it and waits for it.
func (d *Daemon) startExpiryWarnings() (stop func()) {
	w := expiryWarner{dir: d.users.Load, window: d.expiryWindow, log: d.log.With("component", "expiry"), every: expiryEvery}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(quit)
	}()
	return func() {
		close(quit)
		<-done
	}
}

// expiryWindow is key_expiry_warning in force.
func (d *Daemon) expiryWindow() time.Duration {
	d.rl.mu.Lock()
	defer d.rl.mu.Unlock()
	return d.rl.cur.KeyExpiryWarning
}

// watchExpiries exposes every configured expiry as a metric, read from the
// directory in force at each scrape.
func (d *Daemon) watchExpiries() {
	d.metrics.WatchExpiries(func() []admin.Expiry {
		xs := d.users.Load().Expiries()
		out := make([]admin.Expiry, len(xs))
		for i, x := range xs {
			out[i] = admin.Expiry{User: x.User, Fingerprint: x.Fingerprint, At: x.At}
		}
		return out
	}, time.Now)
}

// expiryRecheckMax bounds how long the expiry cutter sleeps without
// looking at the directory again; a reload wakes it at once.
const expiryRecheckMax = time.Minute

// startExpiryCuts starts the goroutine that closes the sessions whose key
// or password expires while they are open, at the instant it expires:
// logins refuse an expired credential by themselves, and a reload closes
// such sessions too, but an expiry needs no reload (a rotation's grace
// ends on its own). It returns the function that stops it and waits.
func (d *Daemon) startExpiryCuts() (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		checked := time.Now()
		for {
			now := time.Now()
			wait := expiryRecheckMax
			for _, x := range d.users.Load().Expiries() {
				if x.At.After(now) {
					wait = min(wait, x.At.Sub(now))
					break
				}
			}
			t := time.NewTimer(wait)
			select {
			case <-quit:
				t.Stop()
				return
			case <-d.expiryWake:
				t.Stop()
			case <-t.C:
			}
			now = time.Now()
			if d.expiredSince(checked, now) {
				dir := d.users.Load()
				if closed, _ := d.sessions.Reconcile(dir.Recheck); closed > 0 {
					d.log.Info("sessions closed: their credential expired", "component", "expiry", "sessions_closed", closed)
				}
			}
			checked = now
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// expiredSince reports whether a credential in force expired in (from, to].
func (d *Daemon) expiredSince(from, to time.Time) bool {
	for _, x := range d.users.Load().Expiries() {
		if x.At.After(from) && !x.At.After(to) {
			return true
		}
	}
	return false
}

// wakeExpiryCuts tells the expiry cutter that the users changed.
func (d *Daemon) wakeExpiryCuts() {
	select {
	case d.expiryWake <- struct{}{}:
	default:
	}
}
