package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/testcert"
)

// newRunner is a runner over cfg, its clock at now.
func newRunner(cfg *config.Config, now time.Time) *runner {
	o := Options{Now: func() time.Time { return now }, Timeout: 2 * time.Second}.withDefaults()
	return &runner{o: o, report: &Report{Config: "wharf.yaml"}, cfg: cfg, listening: map[string]string{}}
}

// only returns the results of one check, failing when there are none.
func only(t *testing.T, r *runner, check string) []Result {
	t.Helper()
	var out []Result
	for _, res := range r.report.Results {
		if res.Check == check {
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s result in %+v", check, r.report.Results)
	}
	return out
}

// wantResult checks one result's status, a word of its message and of
// its fix; every warning and failure must come with a fix.
func wantResult(t *testing.T, res Result, status Status, msg, fix string) {
	t.Helper()
	if res.Status != status || !strings.Contains(res.Message, msg) || !strings.Contains(res.Fix, fix) {
		t.Errorf("%s %s: %s %q fix %q; want %s, message with %q, fix with %q", res.Check, res.Target, res.Status, res.Message, res.Fix, status, msg, fix)
	}
	if (res.Status == Fail || res.Status == Warn) && res.Fix == "" {
		t.Errorf("%s %s: %s without a fix", res.Check, res.Target, res.Status)
	}
	if strings.Count(strings.TrimSuffix(res.Fix, "."), ". ") > 0 {
		t.Errorf("%s: the fix is more than one sentence: %q", res.Check, res.Fix)
	}
}

func TestStateDir(t *testing.T) {
	for _, c := range []struct {
		name   string
		setup  func(dir string) string
		status Status
		msg    string
		fix    string
	}{
		{"missing", func(dir string) string { return filepath.Join(dir, "nope") }, Fail, "does not exist", "start wharf once"},
		{"a file", func(dir string) string {
			f := filepath.Join(dir, "f")
			os.WriteFile(f, nil, 0o600)
			return f
		}, Fail, "not a folder", "folder of its own"},
		{"writable by others", func(dir string) string { os.Chmod(dir, 0o777); return dir }, Fail, "other users can write", "chmod 700"},
		{"readable by others", func(dir string) string { os.Chmod(dir, 0o755); return dir }, Warn, "other users can list", "chmod 700"},
		{"private", func(dir string) string { os.Chmod(dir, 0o700); return dir }, OK, "mode 0700", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = c.setup(t.TempDir())
			r := newRunner(cfg, time.Now())
			r.checkStateDir()
			wantResult(t, only(t, r, CheckStateDir)[0], c.status, c.msg, c.fix)
			// No daemon holds any of these.
			d := only(t, r, CheckDaemon)[0]
			if c.name == "missing" || c.name == "a file" {
				wantResult(t, d, Skip, "no state_dir", "")
			} else {
				wantResult(t, d, Fail, "no wharf daemon runs", "wharf serve --config wharf.yaml")
			}
		})
	}
}

func writeKey(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

func TestHostKeys(t *testing.T) {
	dir := t.TempDir()
	good, open, garbage := filepath.Join(dir, "good"), filepath.Join(dir, "open"), filepath.Join(dir, "garbage")
	writeKey(t, good, 0o600)
	writeKey(t, open, 0o644)
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	cfg := config.Default()
	cfg.SFTP.HostKeys = []string{good, open, garbage, filepath.Join(dir, "missing")}
	r := newRunner(cfg, time.Now())
	r.checkHostKeys()
	res := only(t, r, CheckHostKey)
	wantResult(t, res[0], OK, "ssh-ed25519 SHA256:", "")
	wantResult(t, res[1], Fail, "mode 0644: other users can read", "chmod 600 "+open)
	wantResult(t, res[2], Fail, "not a private key", "ssh-keygen")
	wantResult(t, res[3], Fail, "missing", "restore it")
	if len(r.hostKeys) != 2 {
		t.Errorf("%d host keys kept for pinning, want the two that parsed (whatever their mode)", len(r.hostKeys))
	}

	// Without host_keys, the generated ones in state_dir are checked.
	cfg = config.Default()
	cfg.StateDir = t.TempDir()
	r = newRunner(cfg, time.Now())
	r.checkHostKeys()
	for i, res := range only(t, r, CheckHostKey) {
		if res.Target != filepath.Join(cfg.StateDir, generatedKeys[i]) || res.Status != Fail {
			t.Errorf("generated key %d: %+v", i, res)
		}
	}
}

// writeCert writes a self-signed certificate valid from notBefore to
// notAfter, and its key with keyMode.
func writeCert(t *testing.T, dir string, notBefore, notAfter time.Time, keyMode os.FileMode) (string, string) {
	t.Helper()
	p, err := testcert.New(notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	cert, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := p.Write(cert, kf, keyMode); err != nil {
		t.Fatal(err)
	}
	return cert, kf
}

func TestCertificate(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		name     string
		from, to time.Time
		keyMode  os.FileMode
		break_   func(cert, key string)
		status   Status
		msg, fix string
	}{
		{"valid", now.Add(-day), now.Add(365 * day), 0o600, nil, OK, "valid until 2028-05-31", ""},
		{"expired", now.Add(-30 * day), now.Add(-2 * day), 0o600, nil, Fail, "expired on 2027-05-30", "renew it"},
		{"expiring", now.Add(-day), now.Add(3 * day), 0o600, nil, Warn, "in 3 days", "renew it"},
		{"not yet valid", now.Add(day), now.Add(9 * day), 0o600, nil, Fail, "not valid before", "clock"},
		{"key open to others", now.Add(-day), now.Add(365 * day), 0o644, nil, Fail, "other users can read it", "chmod 600"},
		{"garbage", now.Add(-day), now.Add(365 * day), 0o600, func(cert, _ string) { os.WriteFile(cert, []byte("junk"), 0o644) },
			Fail, "not a usable pair", "last good pair"},
		{"another key", now.Add(-day), now.Add(365 * day), 0o600, func(_, key string) {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			kd, _ := x509.MarshalPKCS8PrivateKey(other)
			os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
		}, Fail, "private key does not match", "its private key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.FTPS.Listen = "127.0.0.1:2121"
			cfg.FTPS.CertFile, cfg.FTPS.KeyFile = writeCert(t, t.TempDir(), c.from, c.to, c.keyMode)
			if c.break_ != nil {
				c.break_(cfg.FTPS.CertFile, cfg.FTPS.KeyFile)
			}
			r := newRunner(cfg, now)
			r.checkCertificate()
			wantResult(t, only(t, r, CheckCertificate)[0], c.status, c.msg, c.fix)
		})
	}
	// The self-signed one in state_dir, before the daemon made it.
	cfg := config.Default()
	cfg.FTPS.Listen, cfg.StateDir = "127.0.0.1:2121", t.TempDir()
	r := newRunner(cfg, now)
	r.checkCertificate()
	wantResult(t, only(t, r, CheckCertificate)[0], Fail, "missing", "start wharf once")
}

func TestStorageLocal(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Root = t.TempDir()
	r := newRunner(cfg, time.Now())
	r.checkStorage(context.Background())
	wantResult(t, only(t, r, CheckStorage)[0], OK, "took a 4 KiB write", "")
	entries, _ := os.ReadDir(cfg.Storage.Root)
	if len(entries) != 0 {
		t.Errorf("the probe left %v", entries)
	}
	r.cleanup()

	cfg.Storage.Root = filepath.Join(t.TempDir(), "missing")
	r = newRunner(cfg, time.Now())
	r.checkStorage(context.Background())
	wantResult(t, only(t, r, CheckStorage)[0], Fail, "does not exist", "mkdir -p")

	cfg.Storage.Backend = "memory"
	r = newRunner(cfg, time.Now())
	r.checkStorage(context.Background())
	wantResult(t, only(t, r, CheckStorage)[0], Warn, "lost when it stops", "storage.backend")
}

// fakeServer answers every connection with greeting, as another program
// holding a listener's port would.
func fakeServer(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestListeners(t *testing.T) {
	cfg := config.Default()
	cfg.SFTP.Listen = fakeServer(t, "SSH-2.0-OpenSSH_9.6\r\n")
	cfg.FTPS.Listen = freeAddr(t)
	cfg.FTPS.ImplicitListen = "127.0.0.1:0"
	cfg.SFTP.Legacy.Listen = fakeServer(t, "SSH-2.0-wharf\r\n")
	r := newRunner(cfg, time.Now())
	r.checkListeners(context.Background())
	res := only(t, r, CheckListener)
	wantResult(t, res[0], Fail, "not as wharf", "another program holds")
	wantResult(t, res[1], OK, "SSH-2.0-wharf", "")
	wantResult(t, res[2], Fail, "connection refused", "set ftps.listen to the address the daemon listens on")
	wantResult(t, res[3], Fail, "port 0", "fixed address and port")
	if len(r.listening) != 1 || r.listening[keyLegacy] == "" {
		t.Errorf("listening = %v, want only the legacy listener", r.listening)
	}

	// A listener that accepts and says nothing: not a firewall.
	cfg = config.Default()
	cfg.SFTP.Listen = silentServer(t)
	r = newRunner(cfg, time.Now())
	r.o.Timeout = 200 * time.Millisecond
	r.checkListeners(context.Background())
	wantResult(t, only(t, r, CheckListener)[0], Fail, "accepted the connection but did not greet within 200ms", "look at the daemon's log")
}

// silentServer accepts connections and holds them without a word.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:22": "127.0.0.1:22", ":2022": "127.0.0.1:2022", "[::]:22": "[::1]:22",
		"192.0.2.4:22": "192.0.2.4:22", "localhost:21": "localhost:21",
	} {
		if got, err := dialAddr(in); err != nil || got != want {
			t.Errorf("dialAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:0", "nonsense"} {
		if _, err := dialAddr(bad); err == nil {
			t.Errorf("dialAddr(%q) accepted", bad)
		}
	}
}

func TestCredentials(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	key := func() string {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		k, _ := ssh.NewPublicKey(pub)
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	}
	tomorrow, lastWeek, nextYear := now.Add(24*time.Hour), now.Add(-7*24*time.Hour), now.Add(365*24*time.Hour)
	users := []config.User{
		{Name: "fine", PublicKeys: []config.PublicKey{{Key: key()}, {Key: key(), ExpiresAt: nextYear}}},
		{Name: "tomorrow", PublicKeys: []config.PublicKey{{Key: key(), ExpiresAt: tomorrow}}},
		{Name: "gone", PublicKeys: []config.PublicKey{{Key: key(), ExpiresAt: lastWeek}}, PasswordHash: "$argon2id$x", PasswordExpiresAt: lastWeek},
		{Name: "rotating", PublicKeys: []config.PublicKey{{Key: key(), ExpiresAt: tomorrow, Comment: "old"}, {Key: key()}}},
		{Name: "leftover", PublicKeys: []config.PublicKey{{Key: key(), ExpiresAt: lastWeek}, {Key: key()}}},
		{Name: "password", PasswordHash: "$argon2id$x", PasswordExpiresAt: tomorrow},
		{Name: "off", Disabled: true, PublicKeys: []config.PublicKey{{Key: key(), ExpiresAt: lastWeek}}},
	}
	cfg := config.Default()
	cfg.Users = users
	r := newRunner(cfg, now)
	r.checkCredentials()
	got := map[string]Result{}
	for _, res := range only(t, r, CheckCredentials) {
		got[res.Target] = res
	}
	if len(got) != 5 {
		t.Errorf("%d users reported, want 5 (fine and off are not): %v", len(got), got)
	}
	wantResult(t, got["tomorrow"], Fail, "will be locked out", "wharf user key rotate tomorrow --generate-key")
	if !strings.Contains(got["tomorrow"].Message, "in 24 hours") {
		t.Errorf("tomorrow: %q does not say when", got["tomorrow"].Message)
	}
	wantResult(t, got["gone"], Fail, "cannot log in any more", "wharf user key rotate gone")
	wantResult(t, got["rotating"], Warn, "(old) expires on 2027-06-02", "switched to the newer credential")
	wantResult(t, got["leftover"], Warn, "expired on 2027-05-25", "wharf user key remove leftover SHA256:")
	wantResult(t, got["password"], Fail, "password expires", "wharf user passwd password --generate-password")

	cfg.Users = users[:1]
	r = newRunner(cfg, now)
	r.checkCredentials()
	wantResult(t, only(t, r, CheckCredentials)[0], OK, "nothing expired or expiring within 14 days", "")
}

func TestPASVAndListing(t *testing.T) {
	for reply, want := range map[string]string{
		"227 Entering Passive Mode (127,0,0,1,195,80)": "127.0.0.1:50000",
		"227 =192,0,2,1,0,21 (192,0,2,1,0,21)":         "192.0.2.1:21",
	} {
		got, err := parsePASVReply(t, reply)
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", reply, got, err, want)
		}
	}
	listing := "type=cdir;modify=20270601120000; .\r\ntype=file;size=65536;modify=20270601120000; " + probeName + "\r\n"
	if !listed(listing, probeName, probeSize) || listed(listing, probeName, 1) || listed(listing, "other", probeSize) {
		t.Error("listed misreads an MLSD listing")
	}
}

// parsePASVReply runs pasv over a fake control connection whose server
// sends reply.
func parsePASVReply(t *testing.T, reply string) (string, error) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		buf := make([]byte, 64)
		server.Read(buf)
		server.Write([]byte(reply + "\r\n"))
	}()
	c := &ftpConn{conn: client, timeout: 2 * time.Second}
	c.r = bufio.NewReader(client)
	return c.pasv()
}

func TestHeldPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	if held, tried := heldPorts(p, p); held != 1 || tried != 1 {
		t.Errorf("heldPorts of a held port: %d of %d", held, tried)
	}
	free, _ := strconv.Atoi(freeAddr(t)[len("127.0.0.1:"):])
	if held, _ := heldPorts(free, free); held != 0 {
		t.Errorf("heldPorts of a free port: %d", held)
	}
}

// TestReportOutput: the text has one line per check and the fix under
// each failure; the JSON has the documented shape.
func TestReportOutput(t *testing.T) {
	r := &runner{report: &Report{Config: "/etc/wharf/wharf.yaml", Time: time.Unix(0, 0).UTC()}}
	r.add(time.Now(), Result{Check: CheckConfig, Target: "/etc/wharf/wharf.yaml", Status: OK, Message: "valid"})
	r.add(time.Now(), Result{Check: CheckHostKey, Target: "/k", Status: Fail, Message: "mode 0644", Fix: "chmod 600 /k"})
	r.add(time.Now(), Result{Check: CheckClock, Status: Warn, Message: "not synchronized", Fix: "enable NTP"})
	rep := r.finish()
	if rep.OK || !rep.Failed() || rep.Counts[Fail] != 1 || rep.Counts[OK] != 1 || rep.Counts[Warn] != 1 || rep.Counts[Skip] != 0 {
		t.Fatalf("report %+v", rep)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  FAIL  host_key /k: mode 0644\n        fix: chmod 600 /k\n", "1 ok, 1 warning, 1 failed, 0 skipped\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Config string         `json:"config"`
		OK     *bool          `json:"ok"`
		Counts map[string]int `json:"counts"`
		Checks []struct {
			Check, Target, Status, Message, Fix string
			Seconds                             *float64
		} `json:"checks"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if back.OK == nil || *back.OK || back.Counts["fail"] != 1 || len(back.Checks) != 3 || back.Checks[1].Fix != "chmod 600 /k" || back.Checks[1].Seconds == nil {
		t.Errorf("JSON shape: %+v\n%s", back, js.String())
	}
}
