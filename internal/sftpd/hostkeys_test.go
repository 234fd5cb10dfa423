package sftpd

import (
	"bytes"
	"context"
	"crypto/rsa"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// memShared is a Shared store in memory, create-only like the bucket.
type memShared struct {
	mu      sync.Mutex
	objects map[string][]byte
	gens    int // how often gen ran
}

func (m *memShared) Ensure(_ context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data, ok := m.objects[name]; ok {
		return data, nil
	}
	data, err := gen()
	if err != nil {
		return nil, err
	}
	m.gens++
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[name] = data
	return data, nil
}

func fingerprints(keys []ssh.Signer) []string {
	var out []string
	for _, k := range keys {
		out = append(out, ssh.FingerprintSHA256(k.PublicKey()))
	}
	return out
}

// TestSharedHostKeys: daemons of a fleet get the keys of the first, and a
// daemon with keys of its own in state_dir founds the fleet with them.
func TestSharedHostKeys(t *testing.T) {
	ctx := context.Background()
	shared := &memShared{}
	empty := t.TempDir()
	first, err := LoadSharedHostKeys(ctx, shared, empty)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].PublicKey().Type() != ssh.KeyAlgoED25519 || first[1].PublicKey().Type() != ssh.KeyAlgoRSA {
		t.Fatalf("got %v", fingerprints(first))
	}
	if rsa := first[1].PublicKey().(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey); rsa.N.BitLen() != 3072 {
		t.Errorf("RSA key of %d bits, want 3072", rsa.N.BitLen())
	}
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Errorf("state_dir got %d files; a fleet's keys live in the shared store only", len(names))
	}
	other := t.TempDir()
	if _, err := LoadHostKeys(nil, other); err != nil { // keys of its own, not used
		t.Fatal(err)
	}
	second, err := LoadSharedHostKeys(ctx, shared, other)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fingerprints(first), fingerprints(second)) || shared.gens != 2 {
		t.Errorf("second daemon: %v, want %v (%d generated)", fingerprints(second), fingerprints(first), shared.gens)
	}

	// A daemon that ran alone founds the fleet with its own keys.
	alone := t.TempDir()
	local, err := LoadHostKeys(nil, alone)
	if err != nil {
		t.Fatal(err)
	}
	founded, err := LoadSharedHostKeys(ctx, &memShared{}, alone)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fingerprints(local), fingerprints(founded)) {
		t.Errorf("founded with %v, want the state_dir keys %v", fingerprints(founded), fingerprints(local))
	}

	bad := &memShared{objects: map[string][]byte{"ssh_host_ed25519_key": []byte("not a key")}}
	if _, err := LoadSharedHostKeys(ctx, bad, empty); err == nil || !strings.Contains(err.Error(), "ssh_host_ed25519_key") {
		t.Errorf("a broken shared key: %v, want an error naming it", err)
	}
}
