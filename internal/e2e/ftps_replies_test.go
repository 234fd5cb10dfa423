package e2e

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/events"
)

// TestFTPSChecksumEvents: HASH, XSHA256, XCRC and XMD5 read a file to
// answer a digest; nothing else leaves the server. They are recorded as
// checksum events, and only a real RETR is a download.
func TestFTPSChecksumEvents(t *testing.T) {
	requireClient(t, "curl")
	alice := newUser(t, "alice")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{Extra: "audit_log:\n  path: " + audit + "\n"})
	src := filepath.Join(t.TempDir(), "report.csv")
	sum := writeRandomFile(t, src, 1<<20)
	curlFTPSOK(t, f, alice, "-T", src, ftpsURL(f, "/report.csv"))

	c := dialFTP(t, f.Explicit, nil)
	c.authTLS(t, clientTLS(tls.NewLRUClientSessionCache(4)))
	c.login(t, alice, true)
	if text := c.must(t, "HASH", "HASH report.csv", 213); !strings.Contains(strings.ToLower(text), sum) {
		t.Errorf("HASH reply %q lacks the SHA-256 %s", text, sum)
	}
	if text := c.must(t, "XSHA256", "XSHA256 /report.csv", 250); !strings.Contains(strings.ToLower(text), sum) {
		t.Errorf("XSHA256 reply %q lacks the SHA-256 %s", text, sum)
	}
	c.must(t, "XCRC", "XCRC report.csv", 250)
	c.must(t, "XMD5", "XMD5 report.csv 0 1000", 250)
	c.must(t, "QUIT", "QUIT", 221)
	curlFTPSOK(t, f, alice, "-o", filepath.Join(t.TempDir(), "back.csv"), ftpsURL(f, "/report.csv"))

	// The audit log is written as events arrive; wait for the download,
	// the last of them.
	var checksums, downloads []events.Event
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		checksums, downloads = nil, nil
		data, _ := os.ReadFile(audit)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e events.Event
			if json.Unmarshal([]byte(line), &e) != nil || e.Path != "/report.csv" {
				continue
			}
			switch e.Type {
			case events.Checksum:
				checksums = append(checksums, e)
			case events.Download:
				downloads = append(downloads, e)
			}
		}
		if len(downloads) > 0 && len(checksums) >= 4 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(checksums) != 4 || len(downloads) != 1 {
		t.Fatalf("audit log: %d checksum and %d download events for /report.csv, want 4 and 1", len(checksums), len(downloads))
	}
	for _, e := range checksums {
		if e.Outcome != "ok" || e.Protocol != "ftps" || e.User != "alice" {
			t.Errorf("checksum event %+v", e)
		}
	}
	if d := downloads[0]; d.Bytes != 1<<20 || d.Outcome != "ok" {
		t.Errorf("download event %+v, want 1 MiB, ok", d)
	}
}

// TestFTPSUploadOverSizeCap: an upload past the user's max_upload_size is
// refused with 552 (storage limit), as RFC 959 says, not a generic 550.
// Python's ftplib is the client: when the server stops reading, the upload's
// data connection breaks, and the script still reads the reply that follows
// on the control connection (curl gives up on the send error first).
func TestFTPSUploadOverSizeCap(t *testing.T) {
	alice := newUser(t, "alice")
	f := startFTPS(t, []*testUser{alice}, ftpsOpts{})
	setUserKeys(t, f.ConfigPath, "alice", map[string]any{"max_upload_size": "64KiB"})
	f.Restart(t)

	big, small := filepath.Join(t.TempDir(), "big.bin"), filepath.Join(t.TempDir(), "small.bin")
	writeRandomFile(t, big, 1<<20)
	writeRandomFile(t, small, 32<<10)
	runFtplib(t, f, alice, "reuse", []ftpStep{
		{Name: "over the cap", Op: "stor", Args: []any{big, "big.bin"}, fail: 552},
		{Name: "under the cap", Op: "stor", Args: []any{small, "small.bin"}},
	})
	if _, err := os.Stat(filepath.Join(f.HomeDir(alice), "big.bin")); err == nil {
		t.Error("the refused upload landed")
	}
	if _, err := os.Stat(filepath.Join(f.HomeDir(alice), "small.bin")); err != nil {
		t.Errorf("the upload under the cap: %v", err)
	}
}

// setUserKeys sets keys of one users[] entry in the config file, through a
// generic YAML round trip that keeps every other key.
func setUserKeys(t *testing.T, configPath, user string, keys map[string]any) {
	t.Helper()
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatalf("read config: %v", err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	users, _ := c["users"].([]any)
	found := false
	for _, u := range users {
		if m, ok := u.(map[string]any); ok && m["name"] == user {
			for k, v := range keys {
				m[k] = v
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no user %s in the config", user)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	if err := os.WriteFile(configPath, out, 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
}
