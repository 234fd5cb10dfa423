package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/wharf-sftp/wharf/internal/atomicfile"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/session"
)

// BansFile is where the daemon keeps the current ban list, in state_dir,
// for `wharf defender list`.
const BansFile = "defender.json"

func newGuard(cfg *config.Config, log *slog.Logger, onBan func(guard.Ban)) *guard.Guard {
	l, d := cfg.Limits, cfg.Defender
	var allow []netip.Prefix
	for _, a := range d.Allow {
		if p, err := config.ParsePrefix(a); err == nil { // validated already
			allow = append(allow, p)
		}
	}
	g := guard.New(
		guard.Limits{MaxConnections: l.MaxConnections, MaxPerIP: l.MaxConnectionsPerIP, MaxPerUser: l.MaxConnectionsPerUser, MaxUnauthenticated: l.MaxUnauthenticated},
		guard.Defender{Enabled: d.Enabled, Threshold: d.Threshold, Window: d.Window, BanTime: d.BanTime, MaxBanTime: d.MaxBanTime, Allow: allow},
		log, onBan)
	// Bans do not survive a restart: say so in the file, and drop the
	// lift requests nobody took.
	if err := writeBans(filepath.Join(cfg.StateDir, BansFile), nil); err != nil {
		log.Error("write ban list", "err", err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.StateDir, LiftDir)); err != nil {
		log.Error("drop lift requests", "err", err)
	}
	return g
}

// banned is the guard's callback for each ban it makes: counted, handed to
// the fleet, listed in the ban file.
func (d *Daemon) banned(b guard.Ban) {
	d.metrics.Banned()
	d.publishBan(b)
	d.saveBans()
}

// saveBans writes the bans in force here to state_dir's ban file. One
// writer at a time, each listing the bans as it writes: the last file
// written is never an older list than another's.
func (d *Daemon) saveBans() {
	d.bansFile.Lock()
	defer d.bansFile.Unlock()
	if err := writeBans(filepath.Join(d.cfg.StateDir, BansFile), d.guard.Bans()); err != nil {
		d.log.Error("write ban list", "err", err)
	}
}

func writeBans(path string, bans []guard.Ban) error {
	if bans == nil {
		bans = []guard.Ban{}
	}
	data, err := json.MarshalIndent(bans, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// ReadBans reads the ban list a running daemon keeps in stateDir.
func ReadBans(stateDir string) ([]guard.Ban, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, BansFile))
	if err != nil {
		return nil, fmt.Errorf("read ban list: %w", err)
	}
	var bans []guard.Ban
	if err := json.Unmarshal(data, &bans); err != nil {
		return nil, fmt.Errorf("read ban list: %w", err)
	}
	return bans, nil
}

// checkLimits is limits.max_concurrent_password_checks and friends, with
// what the config leaves at 0 derived from this machine.
func checkLimits(l config.Limits) session.CheckLimits {
	c := session.DefaultCheckLimits(runtime.NumCPU(), memTotal())
	if l.MaxConcurrentPasswordChecks > 0 {
		c.Concurrent = l.MaxConcurrentPasswordChecks
	}
	if l.PasswordCheckMemory > 0 {
		c.Memory = int64(l.PasswordCheckMemory)
	}
	c.Wait = l.PasswordCheckWait
	return c
}

// memTotal is the machine's memory in bytes; 0 when unknown.
func memTotal() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// LiftDir, in state_dir, is where `wharf defender lift` asks a daemon
// without state_url to lift a ban: an empty file named after the address,
// which the daemon removes once it has lifted the ban.
const LiftDir = "defender-lift"

// liftPoll is how often the daemon looks for lift requests: one listing of
// a folder that is almost always empty.
const liftPoll = time.Second

// maxLifts bounds the requests taken per look.
const maxLifts = 1000

// serveLifts takes lift requests until ctx is done.
func (d *Daemon) serveLifts(ctx context.Context) {
	dir := filepath.Join(d.cfg.StateDir, LiftDir)
	tick := time.NewTicker(liftPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.takeLifts(dir)
		}
	}
}

func (d *Daemon) takeLifts(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return // no request was ever made
	}
	names, _ := f.Readdirnames(maxLifts)
	f.Close()
	lifted := false
	for _, name := range names {
		if addr, err := netip.ParseAddr(name); err == nil {
			lifted = d.guard.Lift(addr.Unmap()) || lifted
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Error("remove lift request", "err", err)
		}
	}
	if lifted {
		d.saveBans()
	}
}

// RequestLift asks the daemon running on stateDir (without state_url) to
// lift addr's ban, and waits up to wait for it to take the request; it
// withdraws the request when none did.
func RequestLift(ctx context.Context, stateDir string, addr netip.Addr, wait time.Duration) error {
	dir := filepath.Join(stateDir, LiftDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lift request: %w", err)
	}
	path := filepath.Join(dir, addr.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, fs.ErrExist): // already asked: wait for that request
	default:
		return fmt.Errorf("lift request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(liftPoll / 10)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			os.Remove(path)
			return fmt.Errorf("no daemon took the lift request within %s: is wharf running on state_dir %s? (bans end with the daemon anyway)", wait, stateDir)
		case <-tick.C:
		}
	}
}
