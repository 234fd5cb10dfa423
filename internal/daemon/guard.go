package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/wharf-sftp/wharf/internal/atomicfile"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/session"
)

// BansFile is where the daemon keeps the current ban list, in state_dir,
// for `wharf defender list`.
const BansFile = "defender.json"

func newGuard(cfg *config.Config, log *slog.Logger, onBan func()) *guard.Guard {
	l, d := cfg.Limits, cfg.Defender
	var allow []netip.Prefix
	for _, a := range d.Allow {
		if p, err := config.ParsePrefix(a); err == nil { // validated already
			allow = append(allow, p)
		}
	}
	path := filepath.Join(cfg.StateDir, BansFile)
	save := func(bans []guard.Ban) {
		if onBan != nil {
			onBan()
		}
		if err := writeBans(path, bans); err != nil {
			log.Error("write ban list", "err", err)
		}
	}
	g := guard.New(
		guard.Limits{MaxConnections: l.MaxConnections, MaxPerIP: l.MaxConnectionsPerIP, MaxPerUser: l.MaxConnectionsPerUser, MaxUnauthenticated: l.MaxUnauthenticated},
		guard.Defender{Enabled: d.Enabled, Threshold: d.Threshold, Window: d.Window, BanTime: d.BanTime, MaxBanTime: d.MaxBanTime, Allow: allow},
		log, save)
	// Bans do not survive a restart: say so in the file.
	if err := writeBans(path, nil); err != nil {
		log.Error("write ban list", "err", err)
	}
	return g
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
