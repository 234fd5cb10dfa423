package sftpd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// ReadIdentity makes memShared a SharedReader: what Ensure stored.
func (m *memShared) ReadIdentity(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[name]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", name, fs.ErrNotExist)
	}
	return data, nil
}

func samePublic(t *testing.T, got []ssh.PublicKey, want []ssh.Signer) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Marshal(), want[i].PublicKey().Marshal()) {
			t.Errorf("key %d: %s, want %s", i, ssh.FingerprintSHA256(got[i]), ssh.FingerprintSHA256(want[i].PublicKey()))
		}
	}
}

// TestHostPublicKeys: the public halves of the keys LoadHostKeys serves,
// read without generating anything.
func TestHostPublicKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := HostPublicKeys(nil, dir); err == nil || !strings.Contains(err.Error(), "start it once") {
		t.Errorf("before the first start: %v, want an error saying to start the daemon once", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("HostPublicKeys created state_dir")
	}
	signers, err := LoadHostKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := HostPublicKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, got, signers)

	// A configured key without a .pub: its public half; a passphrase
	// does not stand in the way.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	plain, _ := ssh.MarshalPrivateKey(priv, "")
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	for name, block := range map[string]*pem.Block{"plain": plain, "locked": locked} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := HostPublicKeys([]string{p}, dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		samePublic(t, got, []ssh.Signer{signer})
	}

	// A configured key with a .pub: the .pub (the key file is not read).
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p+".pub", ssh.MarshalAuthorizedKey(signers[0].PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("unreadable garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = HostPublicKeys([]string{p}, dir)
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, got, signers[:1])

	if _, err := HostPublicKeys([]string{filepath.Join(dir, "missing")}, dir); err == nil {
		t.Error("a configured key that is missing is no error")
	}
}

func TestSharedHostPublicKeys(t *testing.T) {
	ctx := context.Background()
	shared := &memShared{}
	if _, err := SharedHostPublicKeys(ctx, shared); err == nil || !strings.Contains(err.Error(), "start one") {
		t.Errorf("empty fleet: %v", err)
	}
	if len(shared.objects) != 0 {
		t.Error("SharedHostPublicKeys created objects")
	}
	signers, err := LoadSharedHostKeys(ctx, shared, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := SharedHostPublicKeys(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, got, signers)
}
