package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestLoadConfig checks the load daemon's config against the daemon's own
// strict parser: an unknown or misspelt key would only show when a long
// benchmark reaches its last rows.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wharf.yaml")
	pub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench"
	if err := os.WriteFile(path, []byte(loadConfig(filepath.Join(dir, "state"), filepath.Join(dir, "data"), "bench", pub, 10000)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Limits
	for _, v := range []int{l.MaxConnections, l.MaxConnectionsPerIP, l.MaxConnectionsPerUser} {
		if v < 10000+loadMaxInFlight {
			t.Errorf("limits %+v do not admit 10,000 sessions and the logins in flight", l)
		}
	}
	if l.MaxUnauthenticated < loadMaxInFlight || l.IdleTimeout < 10*time.Minute {
		t.Errorf("limits %+v", l)
	}
	if !cfg.Defender.Enabled || !slices.Contains(cfg.Defender.Allow, "127.0.0.0/8") {
		t.Errorf("defender %+v: want it on, with loopback allowed", cfg.Defender)
	}
	if len(cfg.Users) != 1 || cfg.Users[0].Name != "bench" || cfg.SFTP.Listen != "127.0.0.1:0" {
		t.Errorf("users %+v, listen %q", cfg.Users, cfg.SFTP.Listen)
	}
}

func TestLoadFlags(t *testing.T) {
	o, err := parseFlags([]string{"-rows", "loginrate,idle"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.idleSessions != 10000 || o.loginRate != 200 || o.loginDuration != 10*time.Second {
		t.Errorf("defaults: %d sessions, %d logins/s for %s", o.idleSessions, o.loginRate, o.loginDuration)
	}
	o, err = parseFlags([]string{"-quick", "-login-rate", "50"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.idleSessions != 500 || o.loginRate != 50 || o.loginDuration != 2*time.Second {
		t.Errorf("quick: %d sessions, %d logins/s for %s", o.idleSessions, o.loginRate, o.loginDuration)
	}
	for _, args := range [][]string{
		{"-idle-sessions", "0"}, {"-idle-sessions", "100001"}, {"-login-rate", "0"}, {"-login-duration", "100ms"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestOpenFilesLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	got, err := openFilesLimit(os.Getpid())
	if err != nil || got != rl.Cur {
		t.Errorf("got %d, %v; want %d", got, err, rl.Cur)
	}
	if need := daemonFDs(10000); need < 10000 || need > 11000 {
		t.Errorf("%d descriptors for 10,000 sessions: each needs one, and a few more", need)
	}
}
