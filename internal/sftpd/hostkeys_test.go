package sftpd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestHostKeysGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := LoadHostKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].PublicKey().Type() != ssh.KeyAlgoED25519 || first[1].PublicKey().Type() != ssh.KeyAlgoRSA {
		t.Fatalf("generated %d keys", len(first))
	}
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
		pub, err := os.ReadFile(filepath.Join(dir, name+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey(pub); err != nil {
			t.Errorf("%s.pub: %v", name, err)
		}
	}
	again, err := LoadHostKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if !bytes.Equal(first[i].PublicKey().Marshal(), again[i].PublicKey().Marshal()) {
			t.Errorf("key %d changed across loads", i)
		}
	}
	if _, err := LoadHostKeys([]string{filepath.Join(dir, "missing")}, dir); err == nil {
		t.Error("a configured key that does not exist was accepted")
	}
}

// TestHostKeyNotARegularFile: a host key path pointed at a FIFO fails
// start-up with a clear error instead of blocking it for ever.
func TestHostKeyNotARegularFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "host_key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadHostKeys([]string{fifo}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("host key on a FIFO: %v, want a refusal", err)
	}
}
