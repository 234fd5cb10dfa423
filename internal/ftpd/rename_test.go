package ftpd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ftpserverlib keeps the source of an RNFR until a rename succeeds. A
// failed RNFR or RNTO must end it: the next RNTO is refused and the earlier
// source stays where it is.
func TestRenameStateClearedByFailure(t *testing.T) {
	d, addr := startFTPD(t, nil, "alice")
	home := filepath.Join(d.Config.Storage.Root, "alice")
	c := loggedIn(t, addr, "alice")
	if _, code, text := c.transfer("STOR a", []byte("keep me")); code != 226 {
		t.Fatalf("STOR a: %d %q", code, text)
	}
	refusedRNTO := func(target string) {
		t.Helper()
		code, text := c.cmd("RNTO " + target)
		if code < 500 || !strings.Contains(text, "RNFR") {
			t.Errorf("RNTO %s: %d %q, want a 5xx refusal asking for RNFR", target, code, text)
		}
	}
	stays := func() {
		t.Helper()
		if _, err := os.Stat(filepath.Join(home, "a")); err != nil {
			t.Errorf("a moved: %v", err)
		}
		for _, n := range []string{"b", "c"} {
			if _, err := os.Stat(filepath.Join(home, n)); err == nil {
				t.Errorf("%s exists: an RNTO renamed a stale RNFR source", n)
			}
		}
	}

	// A failed RNTO.
	{
		c.must("RNFR", "RNFR a", 350)
		if code, text := c.cmd("RNTO /no-such-dir/b"); code < 500 {
			t.Fatalf("RNTO into a missing directory: %d %q", code, text)
		}
		refusedRNTO("b")
		stays()
	}
	// A failed RNFR after a good one.
	{
		c.must("RNFR", "RNFR a", 350)
		if code, text := c.cmd("RNFR no-such-file"); code < 500 {
			t.Fatalf("RNFR of a missing file: %d %q", code, text)
		}
		refusedRNTO("c")
		stays()
	}
	// A rename still works, once.
	{
		c.must("RNFR", "RNFR a", 350)
		c.must("RNTO", "RNTO b", 250)
		if _, err := os.Stat(filepath.Join(home, "b")); err != nil {
			t.Errorf("b after RNFR a, RNTO b: %v", err)
		}
		refusedRNTO("c") // one RNFR, one RNTO
	}
}
