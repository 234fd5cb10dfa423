package sftpd

import (
	"bytes"
	"os"
	"path/filepath"
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
