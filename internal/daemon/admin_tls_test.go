package daemon_test

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// TestAdminTLS: with admin.tls the admin listener (metrics, API, console)
// speaks TLS only, with the FTPS certificate (here the self-signed one in
// state_dir), and the console's session cookie is Secure.
func TestAdminTLS(t *testing.T) {
	e := &env{t: t, dir: t.TempDir()}
	e.path = filepath.Join(e.dir, "wharf.yaml")
	e.cfg = baseConfig(t)
	var doc map[string]any
	if err := yaml.Unmarshal(e.marshal(e.cfg), &doc); err != nil {
		t.Fatal(err)
	}
	doc["admin"] = map[string]any{"listen": "127.0.0.1:0", "tls": true,
		"users": []map[string]any{{"name": "ops", "password_hash": cheapHash(t, "console")}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, e.path, data)
	e.start()
	addr := e.d.AdminAddr().String()
	line, _ := e.d.WaitLog(t, 0, 5*time.Second, daemontest.Msg("admin tls"))
	logged, _ := line["fingerprint"].(string)

	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the pin is checked below
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer tr.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https /healthz: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	sum := sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	if fp := strings.Join(hexes, ":"); logged != fp {
		t.Errorf("served certificate %s; the daemon logged %s", fp, logged)
	}
	// Plain HTTP gets nothing it can read.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on a TLS admin listener")
		}
	}
	// The console's cookies are Secure over TLS.
	resp, err = c.Get("https://" + addr + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("the login page set no cookie")
	}
	for _, ck := range cookies {
		if !ck.Secure || !ck.HttpOnly {
			t.Errorf("cookie %s: Secure %v HttpOnly %v", ck.Name, ck.Secure, ck.HttpOnly)
		}
	}
}
