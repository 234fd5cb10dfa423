package daemon

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wharf-sftp/wharf/internal/config"
)

// TestCheckCapsErrors: the checks made after parsing (keys and hashes, in
// package auth) list at most config.MaxErrors problems too, then count the
// rest, so a config of thousands of broken users prints a page.
func TestCheckCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("storage: {backend: memory}\nusers:\n")
	for i := range 120 {
		fmt.Fprintf(&b, "  - {name: u%d, home: /u%d, public_keys: [\"ssh-ed25519 AAAAnotakey\"]}\n", i, i)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	_, err = Check(cfg)
	if err == nil {
		t.Fatal("120 broken keys passed the check")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != config.MaxErrors+1 || lines[len(lines)-1] != "and 70 more problems" {
		t.Fatalf("%d lines, the last %q; want %d problems and \"and 70 more problems\"", len(lines), lines[len(lines)-1], config.MaxErrors)
	}
}
