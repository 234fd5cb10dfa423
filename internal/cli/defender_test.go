package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/guard"
	"github.com/wharf-sftp/wharf/internal/s3test"
)

// TestDefenderLiftLocal: without state_url, lift checks the running
// daemon's ban file first.
func TestDefenderLiftLocal(t *testing.T) {
	state := t.TempDir()
	path := writeConfig(t, baseConfig+"state_dir: "+state+"\n")
	if err := os.WriteFile(filepath.Join(state, daemon.BansFile), []byte("[]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "", "defender", "lift", "--config", path, "192.0.2.300"); err == nil || !strings.Contains(err.Error(), "lift:") {
		t.Errorf("lift of a bad address: %v", err)
	}
	if _, _, err := run(t, "", "defender", "lift", "--config", path, "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "not banned") {
		t.Errorf("lift of an address not banned: %v", err)
	}
}

// TestDefenderFleet: with state_url, list and lift work on the bucket.
func TestDefenderFleet(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`state_dir: %s
state_url: s3://%s/wharf/state/
storage:
  backend: s3
  s3: {bucket: %s, prefix: homes/, endpoint: %q, path_style: true, region: %s, access_key_id: %s, secret_access_key_file: %s}
`, t.TempDir(), bucket, bucket, srv.Endpoint, srv.Region, srv.AccessKey, secret))
	out, _, err := run(t, "", "defender", "list", "--config", path)
	if err != nil || !strings.Contains(out, "no address is banned") {
		t.Fatalf("list of an empty set: %q, %v", out, err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := daemon.OpenState(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("2001:db8::5")
	if err := st.PutBan(context.Background(), guard.Ban{Addr: addr, Until: time.Now().Add(time.Hour), Offences: 2}); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "", "defender", "list", "--config", path)
	if err != nil || !strings.Contains(out, "2001:db8::5") || !strings.Contains(out, "  2\n") {
		t.Fatalf("list: %q, %v", out, err)
	}
	out, _, err = run(t, "", "defender", "lift", "--config", path, "2001:db8::5")
	if err != nil || !strings.Contains(out, "lifted the ban of 2001:db8::5 in the fleet's set (s3://"+bucket+"/wharf/state/)") {
		t.Fatalf("lift: %q, %v", out, err)
	}
	out, _, err = run(t, "", "defender", "list", "--config", path, "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after lift: %q, %v", out, err)
	}
	if _, _, err := run(t, "", "defender", "lift", "--config", path, "2001:db8::5"); err == nil || !strings.Contains(err.Error(), "not banned") {
		t.Errorf("second lift: %v", err)
	}
}
