package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSSHAudit runs ssh-audit against the SFTP listener's default
// algorithm set: warnings are allowed (the non-ETM MACs stay on for
// libssh2 1.10), failures are not.
func TestSSHAudit(t *testing.T) {
	audit := requireClient(t, "ssh-audit")
	d := startDaemon(t, daemonOpts{Users: []*testUser{newUser(t, "alice")}})
	out, stderr, err := runCmd(t, 2*time.Minute, audit, "--no-colors", "-p", strconv.Itoa(d.Port), "127.0.0.1")
	code := exitCode(err)
	// ssh-audit 2.5: 0 good, 2 warnings, 3 failures; anything else is an error.
	if code != 0 && code != 2 {
		t.Fatalf("ssh-audit exit %d (want 0 or 2: no failure)\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out, "[fail]") {
		t.Fatalf("ssh-audit reports a failure:\n%s", out)
	}
	for _, banned := range []string{"-sha1", "-cbc", "nistp", "ssh-rsa ", "diffie-hellman-group1-", "group14-sha1"} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "(kex)") || strings.HasPrefix(line, "(key)") || strings.HasPrefix(line, "(enc)") || strings.HasPrefix(line, "(mac)") {
				if strings.Contains(line, banned) {
					t.Errorf("offered: %s", line)
				}
			}
		}
	}
	if !strings.Contains(out, "banner: SSH-2.0-wharf") || strings.Contains(out, "SSH-2.0-wharf_") {
		t.Errorf("unexpected banner (no version number wanted):\n%s", out)
	}
}

// TestTestSSL runs testssl.sh against the explicit FTPS listener: no
// protocol below TLS 1.2, no weak cipher, no vulnerability.
func TestTestSSL(t *testing.T) {
	testssl := requireClient(t, "testssl")
	f := startFTPS(t, []*testUser{newUser(t, "alice")}, ftpsOpts{})
	report := filepath.Join(t.TempDir(), "testssl.json")
	out, stderr, err := runCmdOpts(t, 4*time.Minute, cmdOpts{Env: []string{"HOME=" + t.TempDir()}}, testssl,
		"--quiet", "--color", "0", "--warnings", "off", "--starttls", "ftp", "-p", "-s", "-U",
		"--jsonfile", report, f.Explicit)
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("testssl.sh wrote no report (exit %d): %v\n%s\n%s", exitCode(err), rerr, out, stderr)
	}
	var findings []struct{ ID, Severity, Finding string }
	if err := json.Unmarshal(data, &findings); err != nil {
		t.Fatalf("report: %v", err)
	}
	if len(findings) < 20 {
		t.Fatalf("only %d findings: testssl.sh did not get through\n%s", len(findings), out)
	}
	for _, f := range findings {
		switch f.Severity {
		case "LOW", "MEDIUM", "HIGH", "CRITICAL":
			t.Errorf("testssl.sh: %s (%s): %s", f.ID, f.Severity, f.Finding)
		}
	}
	for _, want := range []string{"TLS 1      not offered", "TLS 1.1    not offered", "Obsolete CBC ciphers (AES, ARIA etc.)         not offered"} {
		if !strings.Contains(out, want) {
			t.Errorf("testssl.sh output lacks %q", want)
		}
	}
}
