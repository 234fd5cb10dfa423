package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFTPSPassivePortHoarding is the attack of issue 12: one user opens as
// many FTPS sessions as max_connections_per_user allows (10), sends EPSV in
// each and never connects, on a passive range of 10 ports, and keeps the
// sessions alive with NOOP. Another partner must still transfer files (curl
// here): the hoarder holds at most max_passive_per_user listeners (by
// default a quarter of the range: 2), and is told why the others are
// refused.
func TestFTPSPassivePortHoarding(t *testing.T) {
	requireClient(t, "curl")
	mallory, victim := newUser(t, "mallory"), newUser(t, "victim")
	f := startFTPS(t, []*testUser{mallory, victim}, ftpsOpts{PassivePorts: 10})

	var held, refused int
	var sessions []*ftpCtl
	for i := range 10 {
		c := dialFTP(t, f.Explicit, nil)
		c.authTLS(t, clientTLS(tls.NewLRUClientSessionCache(4)))
		c.login(t, mallory, true)
		code, text, err := c.cmd("EPSV")
		switch {
		case err != nil:
			t.Fatalf("session %d EPSV: %v", i, err)
		case code == 229:
			held++
		case code == 421 && strings.Contains(text, "too many passive"):
			refused++
		default:
			t.Fatalf("session %d EPSV: %d %q, want 229 or a 421 that names the limit", i, code, text)
		}
		sessions = append(sessions, c)
	}
	if held != 2 || refused != 8 {
		t.Errorf("mallory got %d passive ports and %d refusals in 10 sessions, want 2 and 8", held, refused)
	}
	for _, c := range sessions {
		c.must(t, "NOOP", "NOOP", 200)
	}

	// The victim uploads and downloads while every one of mallory's sessions
	// is alive, several times: each transfer needs a free port.
	src := filepath.Join(t.TempDir(), "payload")
	sum := writeRandomFile(t, src, 256<<10)
	for i := range 5 {
		name := fmt.Sprintf("/payload-%d", i)
		curlFTPSOK(t, f, victim, "-T", src, ftpsURL(f, name))
		dst := filepath.Join(t.TempDir(), "back")
		curlFTPSOK(t, f, victim, "-o", dst, ftpsURL(f, name))
		if got := sha256File(t, dst); got != sum {
			t.Fatalf("download %d: sha256 %s, want %s", i, got, sum)
		}
		for _, c := range sessions {
			c.must(t, "NOOP", "NOOP", 200)
		}
	}
	if _, err := os.Stat(filepath.Join(f.HomeDir(victim), "payload-4")); err != nil {
		t.Errorf("victim's upload: %v", err)
	}
}
