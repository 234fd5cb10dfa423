package admin_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// TestMetricsFollowTransfers runs the daemon with its admin listener,
// makes a login, an upload, a download and a failed login, and checks that
// /metrics parses as Prometheus text with counters that match.
func TestMetricsFollowTransfers(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Storage.Backend = "memory"
	cfg.Admin = config.Admin{Listen: "127.0.0.1:0", TokenFile: tokenFile}
	cfg.Users = []config.User{{Name: "alice", Home: "/alice", PublicKeys: config.Keys(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}}
	d := daemontest.Start(t, cfg)
	base := "http://" + d.AdminAddr().String()

	get := func(path, token string) (int, string) {
		t.Helper()
		code, body := httpGet(t, base+path, token)
		return code, string(body)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Fatalf("/healthz without a token: %d", code)
	}
	if code, _ := get("/metrics", ""); code != 401 {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	if code, _ := get("/metrics", "wrong"); code != 401 {
		t.Fatalf("/metrics with a wrong token: %d, want 401", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get("/readyz", "s3cret-token")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	conn, err := ssh.Dial("tcp", d.Addr, &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 123456)
	f, _ := c.Create("/up.bin")
	f.Write(data)
	f.Close()
	r, _ := c.Open("/up.bin")
	io.Copy(io.Discard, r)
	r.Close()
	c.Close()
	conn.Close()
	if _, err := ssh.Dial("tcp", d.Addr, &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.Password("nope")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}); err == nil {
		t.Fatal("password login without a password succeeded")
	}

	code, body := get("/metrics", "s3cret-token")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := families[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
	metric:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wharf_logins_total", map[string]string{"protocol": "sftp", "method": "publickey", "outcome": "ok"}, 1},
		{"wharf_logins_total", map[string]string{"protocol": "sftp", "method": "password", "outcome": "failed"}, 1},
		{"wharf_transfers_total", map[string]string{"protocol": "sftp", "direction": "up", "outcome": "ok"}, 1},
		{"wharf_transfers_total", map[string]string{"protocol": "sftp", "direction": "down", "outcome": "ok"}, 1},
		{"wharf_transfer_bytes_total", map[string]string{"protocol": "sftp", "direction": "up"}, 123456},
		{"wharf_transfer_bytes_total", map[string]string{"protocol": "sftp", "direction": "down"}, 123456},
		{"wharf_transfer_duration_seconds", map[string]string{"direction": "up"}, 1},
		// The login gate's queue, idle once the logins are done.
		{"wharf_password_checks", map[string]string{"state": "running"}, 0},
		{"wharf_password_checks", map[string]string{"state": "waiting"}, 0},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if strings.Contains(body, "s3cret-token") {
		t.Error("the token appears in /metrics")
	}
}

// TestPprof checks that the profiler is served only when admin.pprof is
// set, behind the token, and that a CPU profile outlives the listener's
// write timeout-free path (it answers after ?seconds=).
func TestPprof(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("pp-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	get := func(base, path, token string) (int, []byte) {
		t.Helper()
		return httpGet(t, base+path, token)
	}
	for _, on := range []bool{false, true} {
		cfg := config.Default()
		cfg.Storage.Backend = "memory"
		cfg.Admin = config.Admin{Listen: "127.0.0.1:0", TokenFile: tokenFile, Pprof: on}
		d := daemontest.Start(t, cfg)
		base := "http://" + d.AdminAddr().String()
		code, body := get(base, "/debug/pprof/", "pp-token")
		if !on {
			if code != http.StatusNotFound {
				t.Fatalf("pprof off: /debug/pprof/ answered %d", code)
			}
			continue
		}
		if code != 200 || !bytes.Contains(body, []byte("goroutine")) {
			t.Fatalf("pprof on: /debug/pprof/ answered %d: %.200s", code, body)
		}
		if code, _ := get(base, "/debug/pprof/", ""); code != http.StatusUnauthorized {
			t.Fatalf("pprof without the token: %d, want 401", code)
		}
		code, body = get(base, "/debug/pprof/profile?seconds=1", "pp-token")
		if code != 200 || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) { // a gzipped profile
			t.Fatalf("CPU profile: %d, %d bytes", code, len(body))
		}
	}
}

// httpGet GETs url, with a bearer token when token is not empty.
func httpGet(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
