package doctor_test

// The doctor against a daemon running in this process (daemontest): the
// round trips, and what they say when the config the doctor reads is not
// the daemon's. internal/e2e runs the same against the real binary.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
	"github.com/wharf-sftp/wharf/internal/doctor"
	"github.com/wharf-sftp/wharf/internal/s3test"
	"github.com/wharf-sftp/wharf/internal/testcert"
)

// startDaemon runs a daemon with SFTP, both FTPS listeners and the admin
// endpoint, and returns it with a copy of its config naming the ports it
// bound (the doctor reads listen addresses from the config).
func startDaemon(t *testing.T, change ...func(*config.Config)) (*daemontest.Daemon, config.Config) {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pub)
	cfg := config.Default()
	cfg.FTPS.Listen, cfg.FTPS.ImplicitListen, cfg.Admin.Listen = "x", "x", "x" // daemontest picks the ports
	cfg.FTPS.PassivePorts = ""
	cfg.Users = []config.User{{Name: "alice", Home: "/alice", PublicKeys: config.Keys(string(ssh.MarshalAuthorizedKey(key)))}}
	for _, c := range change {
		c(cfg)
	}
	d := daemontest.Start(t, cfg)
	// t.TempDir is 0755; the daemon makes a state_dir of its own 0700.
	if err := os.Chmod(d.Config.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := *d.Config
	c.SFTP.Listen = d.SFTPAddr().String()
	c.FTPS.Listen = d.FTPSAddr().String()
	c.FTPS.ImplicitListen = d.FTPSImplicitAddr().String()
	c.Admin.Listen = d.AdminAddr().String()
	return d, c
}

func results(r *doctor.Report, check string) []doctor.Result {
	var out []doctor.Result
	for _, res := range r.Results {
		if res.Check == check {
			out = append(out, res)
		}
	}
	return out
}

func TestHealthyDaemon(t *testing.T) {
	_, cfg := startDaemon(t)
	healthy(t, cfg)
}

// TestBehindLocalBalancer: with a balancer on this host trusted for the
// PROXY protocol, the daemon demands a header on every connection from
// loopback, and the doctor sends one.
func TestBehindLocalBalancer(t *testing.T) {
	_, cfg := startDaemon(t, func(c *config.Config) { c.ProxyProtocol.Trusted = []string{"127.0.0.0/8"} })
	healthy(t, cfg)
}

// TestHealthyOnS3: the storage check and the round trips on a bucket, and
// nothing of the doctor's left in it afterwards.
func TestHealthyOnS3(t *testing.T) {
	s3test.IsolateAWS(t)
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	_, cfg := startDaemon(t, func(c *config.Config) {
		c.Storage.Backend = "s3"
		c.Storage.S3.Bucket, c.Storage.S3.Prefix, c.Storage.S3.Endpoint = bucket, "homes/", srv.Endpoint
		c.Storage.S3.PathStyle, c.Storage.S3.Region = true, srv.Region
		c.Storage.S3.AccessKeyID, c.Storage.S3.SecretAccessKeyFile = srv.AccessKey, secret
		c.Storage.S3.PartSize = config.S3MinPartSize
	})
	healthy(t, cfg)
	out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("homes/.wharf-doctor")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		t.Errorf("left in the bucket: %s", *o.Key)
	}
}

// healthy runs the doctor on cfg and wants every check to pass.
func healthy(t *testing.T, cfg config.Config) {
	t.Helper()
	r := doctor.RunConfig(context.Background(), &cfg, doctor.Options{})
	for _, res := range r.Results {
		switch {
		case res.Status == doctor.Fail, res.Status == doctor.Warn && res.Check != doctor.CheckClock:
			t.Errorf("%s %s: %s: %s (fix: %s)", res.Check, res.Target, res.Status, res.Message, res.Fix)
		case res.Status == doctor.Skip && res.Check != doctor.CheckClock:
			t.Errorf("%s %s skipped: %s", res.Check, res.Target, res.Message)
		}
	}
	for _, check := range []string{doctor.CheckStateDir, doctor.CheckDaemon, doctor.CheckHostKey, doctor.CheckCertificate, doctor.CheckStorage,
		doctor.CheckListener, doctor.CheckSFTP, doctor.CheckFTPS, doctor.CheckPassive, doctor.CheckPublicHost, doctor.CheckCredentials} {
		if len(results(r, check)) == 0 {
			t.Errorf("no %s check", check)
		}
	}
	if n := len(results(r, doctor.CheckListener)); n != 4 {
		t.Errorf("%d listener checks, want 4", n)
	}
	if !r.OK {
		t.Error("report not OK")
	}
	// The scratch home and the pass are gone.
	if entries, _ := os.ReadDir(cfg.Storage.Root); len(entries) != 0 {
		t.Errorf("storage root after the run: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, "doctor")); len(entries) != 0 {
		t.Errorf("passes left: %v", entries)
	}
}

// TestOtherStateDir: a config whose state_dir no daemon holds, while the
// listeners answer: the round trips are skipped, saying why, not failed
// as a refused login.
func TestOtherStateDir(t *testing.T) {
	_, cfg := startDaemon(t)
	cfg.StateDir = t.TempDir()
	r := doctor.RunConfig(context.Background(), &cfg, doctor.Options{})
	if d := results(r, doctor.CheckDaemon); len(d) != 1 || d[0].Status != doctor.Fail {
		t.Errorf("daemon check: %+v", d)
	}
	for _, check := range []string{doctor.CheckSFTP, doctor.CheckFTPS} {
		res := results(r, check)
		if len(res) != 1 || res[0].Status != doctor.Skip || !strings.Contains(res[0].Message, "runs another config") {
			t.Errorf("%s: %+v", check, res)
		}
	}
}

// TestIdentityMismatch: host keys and a certificate on disk other than
// the ones the daemon serves (another daemon on the port, or files
// changed under it).
func TestIdentityMismatch(t *testing.T) {
	_, cfg := startDaemon(t)
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	other := filepath.Join(dir, "other_host_key")
	if err := os.WriteFile(other, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.SFTP.HostKeys = []string{other}
	// Another certificate, valid and with its key.
	pair, err := testcert.New(time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cfg.FTPS.CertFile, cfg.FTPS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := pair.Write(cfg.FTPS.CertFile, cfg.FTPS.KeyFile, 0o600); err != nil {
		t.Fatal(err)
	}

	r := doctor.RunConfig(context.Background(), &cfg, doctor.Options{})
	sftp := results(r, doctor.CheckSFTP)
	if len(sftp) != 1 || sftp[0].Status != doctor.Fail || !strings.Contains(sftp[0].Message, "not one of the host key files") {
		t.Errorf("sftp round trip with another host key on disk: %+v", sftp)
	}
	ftps := results(r, doctor.CheckFTPS)
	if len(ftps) != 1 || ftps[0].Status != doctor.Fail || !strings.Contains(ftps[0].Message, "not the one on disk") {
		t.Errorf("ftps round trip with another certificate on disk: %+v", ftps)
	}
}
