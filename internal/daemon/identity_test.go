package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// checkIdentity compares what ReadPublicIdentity read with what d presents.
func checkIdentity(t *testing.T, id daemon.PublicIdentity, d *daemontest.Daemon, ftpsAddr string) {
	t.Helper()
	var fps []string
	for _, k := range id.HostKeys {
		fps = append(fps, ssh.FingerprintSHA256(k))
	}
	want := []string{hostKey(t, d.Addr, ssh.KeyAlgoED25519), hostKey(t, d.Addr, ssh.KeyAlgoRSASHA512)}
	if strings.Join(fps, " ") != strings.Join(want, " ") {
		t.Errorf("host keys read %v, presented %v", fps, want)
	}
	if id.Certificate == nil {
		t.Fatal("no certificate read")
	}
	sum := sha256.Sum256(id.Certificate.Raw)
	if got, want := hex.EncodeToString(sum[:]), certFingerprint(t, ftpsAddr); got != want {
		t.Errorf("certificate read %s, presented %s", got, want)
	}
}

// TestReadPublicIdentity: what `wharf user onboard` shows partners is what
// the daemon presents, on a single daemon.
func TestReadPublicIdentity(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.FTPS.ImplicitListen = "127.0.0.1:0"
	cfg.FTPS.PassivePorts = ""
	cfg.StateDir = t.TempDir()
	if _, err := daemon.ReadPublicIdentity(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "start it once") {
		t.Errorf("before the first start: %v", err)
	}
	d := daemontest.Start(t, cfg)
	id, err := daemon.ReadPublicIdentity(context.Background(), d.Config)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, id, d, d.FTPSImplicitAddr().String())

	// Without FTPS there is no certificate to read (nor to fail on).
	noFTPS := *d.Config
	noFTPS.FTPS.ImplicitListen = ""
	id, err = daemon.ReadPublicIdentity(context.Background(), &noFTPS)
	if err != nil || id.Certificate != nil || len(id.HostKeys) != 2 {
		t.Errorf("without FTPS: %d keys, certificate %v, %v", len(id.HostKeys), id.Certificate != nil, err)
	}
}

// TestReadPublicIdentityFleet: with state_url, the fleet's identity from
// the bucket, read without creating it.
func TestReadPublicIdentityFleet(t *testing.T) {
	srv, bucket, secret := fleetServer(t)
	cfg := fleetConfig(t, srv, bucket, secret)
	if _, err := daemon.ReadPublicIdentity(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "start one") {
		t.Errorf("before any daemon started: %v", err)
	}
	d := daemontest.Start(t, cfg) // the first daemon creates the identity
	id, err := daemon.ReadPublicIdentity(context.Background(), fleetConfig(t, srv, bucket, secret))
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, id, d, d.FTPSImplicitAddr().String())
}
