package e2e

// `wharf doctor` against a real `wharf serve`: on a healthy daemon every
// check passes and it exits 0, text and --json alike; for each fault
// injected into a running setup (a host key readable by others, state_dir
// open to others, a listener address nothing or something else answers
// on, the passive ports held by other programs, an expired or broken
// certificate, a key that expires tomorrow or has expired, a read-only
// store, the daemon gone) the failing check names the cause and its fix in
// one sentence, and it exits 1.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/testcert"
)

// doctorReport is `wharf doctor --json`, decoded on its own terms: the
// shape monitoring relies on.
type doctorReport struct {
	Config string         `json:"config"`
	Time   time.Time      `json:"time"`
	OK     *bool          `json:"ok"`
	Counts map[string]int `json:"counts"`
	Checks []doctorCheck  `json:"checks"`
}

type doctorCheck struct {
	Check   string   `json:"check"`
	Target  string   `json:"target"`
	Status  string   `json:"status"`
	Message string   `json:"message"`
	Fix     string   `json:"fix"`
	Seconds *float64 `json:"seconds"`
}

func (c doctorCheck) String() string {
	return fmt.Sprintf("%s %s: %s: %s (fix: %s)", c.Check, c.Target, c.Status, c.Message, c.Fix)
}

// doctorDaemon is a daemon serving SFTP, explicit and implicit FTPS and
// the admin endpoint on fixed ports, as an operator's config has them
// (the doctor reads the addresses from the config, so port 0 will not do).
type doctorDaemon struct {
	*ftpsDaemon
	Admin string
}

// startDoctorDaemon starts the daemon on ports the kernel picks, then
// writes those ports into its config and restarts it on them.
func startDoctorDaemon(t *testing.T, users []*testUser, ftpsKeys, extra string) *doctorDaemon {
	t.Helper()
	f := startFTPS(t, users, ftpsOpts{PassivePorts: 5, FTPS: ftpsKeys, Extra: "admin:\n  listen: \"127.0.0.1:0\"\n" + extra})
	admin := func(mark int) string {
		l := f.WaitLogSince(t, mark, logMatch("msg", "listening", "component", "admin"), startTimeout)
		a, _ := l["addr"].(string)
		return a
	}
	addr := admin(0)
	editConfig(t, f.ConfigPath, f.ConfigPath, func(c map[string]any) {
		configSection(c, "sftp")["listen"] = f.Addr
		configSection(c, "ftps")["listen"] = f.Explicit
		configSection(c, "ftps")["implicit_listen"] = f.Implicit
		configSection(c, "admin")["listen"] = addr
	})
	mark := f.LogMark()
	f.Restart(t)
	if got := admin(mark); got != addr || f.Explicit == "" {
		t.Fatalf("after the restart on fixed ports the admin endpoint is on %s, want %s", got, addr)
	}
	return &doctorDaemon{ftpsDaemon: f, Admin: addr}
}

// editConfig reads the YAML config at src, lets edit change it and writes
// it to dst (src itself, or a copy the daemon does not read).
func editConfig(t *testing.T, src, dst string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read config: %v", err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	edit(c)
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
}

// configSection is the mapping under key, made if absent.
func configSection(c map[string]any, key string) map[string]any {
	m, ok := c[key].(map[string]any)
	if !ok {
		m = map[string]any{}
		c[key] = m
	}
	return m
}

// runDoctor runs `wharf doctor --json` on config and returns the report
// and the exit status; the JSON must parse whatever the status.
func runDoctor(t *testing.T, config string) (doctorReport, int) {
	t.Helper()
	stdout, stderr, err := runCmd(t, time.Minute, wharfBin, "doctor", "--config", config, "--json")
	code := exitCode(err)
	var r doctorReport
	if jerr := json.Unmarshal([]byte(stdout), &r); jerr != nil {
		t.Fatalf("wharf doctor --json (exit %d) printed no JSON report: %v\nstdout:\n%s\nstderr:\n%s", code, jerr, stdout, stderr)
	}
	if r.OK == nil || r.Counts == nil || len(r.Checks) == 0 || r.Config != config || r.Time.IsZero() {
		t.Fatalf("report lacks ok, counts, checks, config or time:\n%s", stdout)
	}
	for _, c := range r.Checks {
		if c.Seconds == nil || c.Check == "" || c.Message == "" {
			t.Errorf("check without check, message or seconds: %+v", c)
		}
		if (c.Status == "fail" || c.Status == "warn") && c.Fix == "" {
			t.Errorf("%s without a fix", c)
		}
	}
	if (code == 0) != *r.OK || (code != 0 && code != 1) {
		t.Errorf("exit status %d with ok=%v; want 0 when ok, 1 when not", code, *r.OK)
	}
	return r, code
}

// wantFailure finds the failed check (and target suffix), whose message
// must name the cause and whose fix must say what to do, in one sentence.
func wantFailure(t *testing.T, r doctorReport, code int, check, target, cause, fix string) doctorCheck {
	t.Helper()
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, c := range r.Checks {
		if c.Check != check || !strings.HasSuffix(c.Target, target) || c.Status != "fail" {
			continue
		}
		if !strings.Contains(c.Message, cause) || !strings.Contains(c.Fix, fix) {
			t.Errorf("%s\nwant the cause %q and the fix %q", c, cause, fix)
		}
		if strings.Count(strings.TrimSuffix(c.Fix, "."), ". ") > 0 {
			t.Errorf("the fix is more than one sentence: %q", c.Fix)
		}
		t.Logf("%s", c)
		return c
	}
	t.Errorf("no failed %s check on %q; got:\n%s", check, target, checksText(r))
	return doctorCheck{}
}

func checksText(r doctorReport) string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

// TestDoctorHealthy: every check passes on a healthy daemon, in text and
// JSON; the round trips leave nothing behind and never reach the audit
// log or hooks, while a partner's transfer does.
func TestDoctorHealthy(t *testing.T) {
	alice := newUser(t, "alice")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	d := startDoctorDaemon(t, []*testUser{alice}, "", "audit_log:\n  path: "+strconv.Quote(audit)+"\n")

	stdout, stderr, err := runCmd(t, time.Minute, wharfBin, "doctor", "--config", d.ConfigPath)
	if err != nil {
		t.Fatalf("wharf doctor on a healthy daemon: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("wharf doctor:\n%s", stdout)
	if !strings.Contains(stdout, " 0 failed, 0 skipped\n") {
		t.Errorf("text report does not end with 0 failed, 0 skipped")
	}

	start := time.Now()
	r, code := runDoctor(t, d.ConfigPath)
	t.Logf("wharf doctor --json: exit %d in %v, counts %v", code, time.Since(start).Round(time.Millisecond), r.Counts)
	if code != 0 || !*r.OK {
		t.Errorf("exit %d ok %v, want 0 and true", code, *r.OK)
	}
	seen := map[string]int{}
	for _, c := range r.Checks {
		seen[c.Check]++
		// The clock may be unsynchronized on a test machine; all else passes.
		if c.Status != "ok" && !(c.Check == "clock" && c.Status == "warn") {
			t.Errorf("not ok on a healthy daemon: %s", c)
		}
	}
	for check, n := range map[string]int{"config": 1, "clock": 1, "state_dir": 1, "daemon": 1, "host_key": 2, "certificate": 1, "storage": 1,
		"listener": 4, "sftp_round_trip": 1, "ftps_round_trip": 1, "passive_ports": 1, "public_host": 1, "credentials": 1} {
		if seen[check] != n {
			t.Errorf("%d %s checks, want %d", seen[check], check, n)
		}
	}

	// The daemon logged the doctor's logins on both protocols.
	for _, proto := range []string{"sftp", "ftps"} {
		d.WaitLog(t, func(l map[string]any) bool {
			u, _ := l["user"].(string)
			return l["msg"] == "login" && l["proto"] == proto && l["outcome"] == "ok" && strings.HasPrefix(u, "doctor:")
		}, 5*time.Second)
	}
	// Nothing left: no scratch home, no probe, no pass.
	if entries, _ := os.ReadDir(d.Root); len(entries) != 0 {
		t.Errorf("the storage root holds %v after the doctor's runs", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.StateDir, "doctor")); len(entries) != 0 {
		t.Errorf("passes left in state_dir: %v", entries)
	}
	// A partner's upload reaches the audit log; the doctor's probes do not.
	local := filepath.Join(t.TempDir(), "f.txt")
	writeRandomFile(t, local, 100)
	sftpOK(t, d.daemon, alice, "put "+local+" /f.txt\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(audit)
		if strings.Contains(string(data), `"user":"alice"`) && strings.Contains(string(data), `"type":"upload"`) {
			if strings.Contains(string(data), "doctor:") {
				t.Errorf("the doctor's session reached the audit log:\n%s", data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's upload is not in the audit log after 10s:\n%s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeCertPair writes a self-signed ECDSA certificate valid from
// notBefore to notAfter and its key (0600) at the two paths.
func writeCertPair(t *testing.T, certFile, keyFile string, notBefore, notAfter time.Time) {
	t.Helper()
	p, err := testcert.New(notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(certFile, keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDoctorFaults injects one fault at a time into a running setup and
// undoes it: each is named, with its fix, and the exit status is 1.
func TestDoctorFaults(t *testing.T) {
	alice := newUser(t, "alice")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertPair(t, cert, key, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	d := startDoctorDaemon(t, []*testUser{alice}, fmt.Sprintf("  cert_file: %q\n  key_file: %q\n", cert, key), "")
	if r, code := runDoctor(t, d.ConfigPath); code != 0 {
		t.Fatalf("the setup is not healthy to begin with (exit %d):\n%s", code, checksText(r))
	}
	// copyConfig is the daemon's config with one change, for faults that
	// live in what the operator wrote rather than in the running daemon.
	copyConfig := func(t *testing.T, edit func(map[string]any)) string {
		p := filepath.Join(t.TempDir(), "wharf.yaml")
		editConfig(t, d.ConfigPath, p, edit)
		return p
	}
	chmod := func(t *testing.T, path string, mode os.FileMode) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(path, fi.Mode().Perm()) })
	}

	t.Run("HostKeyMode0644", func(t *testing.T) {
		hostKey := filepath.Join(d.StateDir, "ssh_host_rsa_key")
		chmod(t, hostKey, 0o644)
		r, code := runDoctor(t, d.ConfigPath)
		wantFailure(t, r, code, "host_key", "ssh_host_rsa_key", "mode 0644: other users can read this private key", "chmod 600 "+hostKey)
	})
	t.Run("StateDirOpen", func(t *testing.T) {
		chmod(t, d.StateDir, 0o777)
		r, code := runDoctor(t, d.ConfigPath)
		wantFailure(t, r, code, "state_dir", d.StateDir, "mode 0777: other users can write", "chmod 700 "+d.StateDir)
	})
	t.Run("ListenerNotReachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nothing := ln.Addr().String()
		ln.Close()
		p := copyConfig(t, func(c map[string]any) { configSection(c, "ftps")["listen"] = nothing })
		r, code := runDoctor(t, p)
		wantFailure(t, r, code, "listener", "ftps.listen "+nothing, "connection refused", "or set ftps.listen to the address the daemon listens on")
		// The round trip goes on through the implicit listener.
		for _, c := range r.Checks {
			if c.Check == "ftps_round_trip" && (c.Status != "ok" || !strings.HasPrefix(c.Target, "ftps.implicit_listen")) {
				t.Errorf("with the explicit listener gone: %s", c)
			}
		}
	})
	t.Run("ListenerTakenByAnotherProgram", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
				c.Close()
			}
		}()
		defer func() { ln.Close(); <-served }()
		p := copyConfig(t, func(c map[string]any) { configSection(c, "sftp")["listen"] = ln.Addr().String() })
		r, code := runDoctor(t, p)
		wantFailure(t, r, code, "listener", "sftp.listen "+ln.Addr().String(), "answers, but not as wharf: \"SSH-2.0-OpenSSH_9.6\"", "another program holds")
	})
	t.Run("PassivePortsBlocked", func(t *testing.T) {
		var held []net.Listener
		for p := d.PassiveLo; p <= d.PassiveHi; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("hold passive port %d: %v", p, err)
			}
			held = append(held, ln)
		}
		defer func() {
			for _, ln := range held {
				ln.Close()
			}
		}()
		r, code := runDoctor(t, d.ConfigPath)
		rng := fmt.Sprintf("%d-%d", d.PassiveLo, d.PassiveHi)
		wantFailure(t, r, code, "passive_ports", rng, "5 of the 5 ports tried in "+rng+" are held by other programs", "free ports "+rng)
		wantFailure(t, r, code, "ftps_round_trip", "", "PASV", "see the passive_ports check")
	})
	// replace swaps a file's content for the test's duration.
	replace := func(t *testing.T, path string, write func()) {
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		write()
		t.Cleanup(func() {
			if err := os.WriteFile(path, old, 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("CertificateExpired", func(t *testing.T) {
		replace(t, cert, func() {
			replace(t, key, func() {
				writeCertPair(t, cert, key, time.Now().AddDate(-1, 0, 0), time.Now().Add(-48*time.Hour))
			})
		})
		r, code := runDoctor(t, d.ConfigPath)
		wantFailure(t, r, code, "certificate", cert, "expired on", "renew it and put the new certificate in "+cert)
	})
	t.Run("CertificateBroken", func(t *testing.T) {
		replace(t, cert, func() {
			if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		})
		r, code := runDoctor(t, d.ConfigPath)
		wantFailure(t, r, code, "certificate", cert, "not a usable pair", "its private key in "+key)
	})
	keyExpiring := func(t *testing.T, at time.Time) string {
		return copyConfig(t, func(c map[string]any) {
			users, _ := c["users"].([]any)
			for _, u := range users {
				if m, _ := u.(map[string]any); m["name"] == "alice" {
					// A partner with this key only: no password to fall back on.
					m["public_keys"] = []any{map[string]any{"key": alice.PubKey, "expires_at": at.UTC().Format(time.RFC3339)}}
					delete(m, "password_hash")
				}
			}
		})
	}
	t.Run("KeyExpiringTomorrow", func(t *testing.T) {
		r, code := runDoctor(t, keyExpiring(t, time.Now().Add(24*time.Hour)))
		c := wantFailure(t, r, code, "credentials", "alice", "alice will be locked out: key "+alice.Fingerprint(), "wharf user key rotate alice --generate-key")
		if !strings.Contains(c.Message, "(in 23 hours)") && !strings.Contains(c.Message, "(in 24 hours)") {
			t.Errorf("the message does not say when: %q", c.Message)
		}
	})
	t.Run("KeyExpired", func(t *testing.T) {
		r, code := runDoctor(t, keyExpiring(t, time.Now().Add(-72*time.Hour)))
		wantFailure(t, r, code, "credentials", "alice", "alice cannot log in any more: key "+alice.Fingerprint()+" expired on", "wharf user key rotate alice")
	})
	// Last: the daemon goes away.
	t.Run("DaemonGone", func(t *testing.T) {
		d.Kill()
		r, code := runDoctor(t, d.ConfigPath)
		wantFailure(t, r, code, "daemon", d.StateDir, "no wharf daemon runs on this state_dir", "wharf serve --config "+d.ConfigPath)
		wantFailure(t, r, code, "listener", "sftp.listen "+d.Addr, "connection refused", "start wharf")
	})
}

// TestDoctorStorageReadOnly remounts the store read-only under the running
// daemon: the storage check says so and how to fix it, and the round trip
// fails as partners' uploads would.
func TestDoctorStorageReadOnly(t *testing.T) {
	alice := newUser(t, "alice")
	d := startDoctorDaemon(t, []*testUser{alice}, "", "")
	remount := tmpfsStore(t, d.daemon)
	if r, code := runDoctor(t, d.ConfigPath); code != 0 {
		t.Fatalf("healthy on the tmpfs first (exit %d):\n%s", code, checksText(r))
	}
	remount(true)
	defer remount(false)
	r, code := runDoctor(t, d.ConfigPath)
	wantFailure(t, r, code, "storage", d.Root, "read-only file system", "remount the file system under "+d.Root+" read-write")
	wantFailure(t, r, code, "sftp_round_trip", "", "", "storage check")
}
