package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits bound what one client, one user or the whole server may hold, so
// that one partner's buggy script cannot starve the others.
type Limits struct {
	MaxConnections        int           `yaml:"max_connections"`
	MaxConnectionsPerIP   int           `yaml:"max_connections_per_ip"`
	MaxConnectionsPerUser int           `yaml:"max_connections_per_user"`
	MaxUnauthenticated    int           `yaml:"max_unauthenticated"`
	LoginTimeout          time.Duration `yaml:"login_timeout"`
	IdleTimeout           time.Duration `yaml:"idle_timeout"`
	MaxHandlesPerSession  int           `yaml:"max_handles_per_session"`
	// Password hash verifications at once, and the memory they may hold
	// together (from each hash's own parameters); 0: derived from the
	// machine's cores and memory. An attempt that finds no room within
	// PasswordCheckWait fails as a failed login, without hashing.
	MaxConcurrentPasswordChecks int           `yaml:"max_concurrent_password_checks"`
	PasswordCheckMemory         ByteSize      `yaml:"password_check_memory"`
	PasswordCheckWait           time.Duration `yaml:"password_check_wait"`
}

// DefaultLimits are safe for a partner-facing server on a small VM.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:        2000,
		MaxConnectionsPerIP:   20,
		MaxConnectionsPerUser: 10,
		MaxUnauthenticated:    200,
		LoginTimeout:          30 * time.Second,
		IdleTimeout:           15 * time.Minute,
		MaxHandlesPerSession:  256,
		PasswordCheckWait:     2 * time.Second,
	}
}

// Defender bans addresses that keep failing to log in.
type Defender struct {
	Enabled    bool          `yaml:"enabled"`
	Threshold  int           `yaml:"threshold"`    // failed logins...
	Window     time.Duration `yaml:"window"`       // ...within this window ban the address
	BanTime    time.Duration `yaml:"ban_time"`     // doubled on each repeat offence...
	MaxBanTime time.Duration `yaml:"max_ban_time"` // ...up to this
	Allow      []string      `yaml:"allow"`        // CIDRs never banned
}

// DefaultDefender is on: a server on port 22 is brute-forced within minutes.
func DefaultDefender() Defender {
	return Defender{
		Enabled:    true,
		Threshold:  10,
		Window:     5 * time.Minute,
		BanTime:    30 * time.Minute,
		MaxBanTime: 24 * time.Hour,
	}
}

// Legacy is an extra SSH listener for clients that need algorithms the
// main listener must not offer (SHA-1, CBC, old DH groups). Algorithms are
// negotiated before the user is known, hence a listener of its own that
// only the named users may log in on.
type Legacy struct {
	Listen            string   `yaml:"listen"` // empty: none
	KexAlgorithms     []string `yaml:"kex_algorithms"`
	Ciphers           []string `yaml:"ciphers"`
	MACs              []string `yaml:"macs"`
	HostKeyAlgorithms []string `yaml:"host_key_algorithms"`
	Users             []string `yaml:"users"`
}

// ByteSize is a size written as bytes ("1048576") or with a unit
// ("10GiB", "500MB", "64KiB").
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize reads "10GiB" and friends.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %s (want e.g. \"10GiB\", \"500MB\" or a number of bytes)", quote(s))
	}
	return ByteSize(n * mult), nil
}

// FormatByteSize writes n for people in the largest binary unit it
// reaches, to one decimal: "1023 B", "1.5 KiB", "5.0 GiB".
func FormatByteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// UnmarshalYAML decodes a size from a scalar.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func (l *Limits) validate(src Source) []error {
	var errs []error
	for field, v := range map[string]int{
		"max_connections":          l.MaxConnections,
		"max_connections_per_ip":   l.MaxConnectionsPerIP,
		"max_connections_per_user": l.MaxConnectionsPerUser,
		"max_unauthenticated":      l.MaxUnauthenticated,
		"max_handles_per_session":  l.MaxHandlesPerSession,
	} {
		if v < 1 {
			errs = append(errs, src.Errorf("limits."+field, "must be at least 1"))
		}
	}
	if l.MaxConcurrentPasswordChecks < 0 {
		errs = append(errs, src.Errorf("limits.max_concurrent_password_checks", "must not be negative (0: derived from cores and memory)"))
	}
	if l.PasswordCheckMemory != 0 && l.PasswordCheckMemory < 1<<20 {
		errs = append(errs, src.Errorf("limits.password_check_memory", "must be at least 1MiB (0: derived from cores and memory)"))
	}
	if l.PasswordCheckWait <= 0 {
		errs = append(errs, src.Errorf("limits.password_check_wait", "must be positive"))
	}
	if l.LoginTimeout <= 0 {
		errs = append(errs, src.Errorf("limits.login_timeout", "must be positive"))
	}
	if l.IdleTimeout < 0 {
		errs = append(errs, src.Errorf("limits.idle_timeout", "must not be negative (0: no idle timeout)"))
	}
	return errs
}

func (d *Defender) validate(src Source) []error {
	var errs []error
	if !d.Enabled {
		return nil
	}
	if d.Threshold < 1 {
		errs = append(errs, src.Errorf("defender.threshold", "must be at least 1"))
	}
	for field, v := range map[string]time.Duration{"window": d.Window, "ban_time": d.BanTime, "max_ban_time": d.MaxBanTime} {
		if v <= 0 {
			errs = append(errs, src.Errorf("defender."+field, "must be positive"))
		}
	}
	if d.MaxBanTime < d.BanTime {
		errs = append(errs, src.Errorf("defender.max_ban_time", "must not be shorter than ban_time"))
	}
	for i, c := range d.Allow {
		if _, err := ParsePrefix(c); err != nil {
			errs = append(errs, src.Errorf(fmt.Sprintf("defender.allow[%d]", i), "%v", err))
		}
	}
	return errs
}

func (l *Legacy) validate(src Source, users []User) []error {
	if l.Listen == "" {
		return nil
	}
	var errs []error
	if msg := checkAddr(l.Listen); msg != "" {
		errs = append(errs, src.Errorf("sftp.legacy.listen", "%s", msg))
	}
	if len(l.Users) == 0 {
		errs = append(errs, src.Errorf("sftp.legacy.users", "required: name the users who may log in on the legacy listener"))
	}
	known := map[string]bool{}
	for _, u := range users {
		known[u.Name] = true
	}
	for i, name := range l.Users {
		if !known[name] {
			errs = append(errs, src.Errorf(fmt.Sprintf("sftp.legacy.users[%d]", i), "unknown user %s", quote(name)))
		}
	}
	return errs
}

// ParsePrefix reads a CIDR ("203.0.113.0/24") or a single address, which
// means that address alone.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("invalid network %s (want a CIDR such as \"203.0.113.0/24\" or an address)", quote(s))
}
