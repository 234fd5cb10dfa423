package ftpd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func derFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var parts []string
	for _, b := range sum {
		parts = append(parts, fmt.Sprintf("%02x", b))
	}
	return strings.Join(parts, ":")
}

// TestReadCertificate: the certificate LoadCertificate serves, read
// without generating anything.
func TestReadCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := ReadCertificate("", dir); err == nil || !strings.Contains(err.Error(), "start it once") {
		t.Errorf("before the first start: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("ReadCertificate created state_dir")
	}
	served, err := LoadCertificate("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadCertificate("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if derFingerprint(got.Raw) != served.Fingerprint() {
		t.Errorf("read %s, served %s", derFingerprint(got.Raw), served.Fingerprint())
	}
	// A configured chain: its first certificate, the leaf; the key file
	// is never read.
	chain, _ := os.ReadFile(filepath.Join(dir, generatedCert))
	other := t.TempDir()
	if err := EnsureSelfSigned(filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem")); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(other, "c.pem"))
	bundle := filepath.Join(other, "chain.pem")
	if err := os.WriteFile(bundle, append(append([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), chain...), second...), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = ReadCertificate(bundle, dir)
	if err != nil {
		t.Fatal(err)
	}
	if derFingerprint(got.Raw) != served.Fingerprint() {
		t.Error("the first certificate of a chain file was not the one read")
	}
	if _, err := ReadCertificate(filepath.Join(other, "k.pem"), dir); err == nil {
		t.Error("a key file read as a certificate")
	}
}

func TestSharedCertificatePublic(t *testing.T) {
	ctx := context.Background()
	shared := &memShared{}
	if _, err := SharedCertificate(ctx, shared); err == nil || !strings.Contains(err.Error(), "start one") {
		t.Errorf("empty fleet: %v", err)
	}
	if len(shared.objects) != 0 {
		t.Error("SharedCertificate created objects")
	}
	served, err := LoadSharedCertificate(ctx, shared, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := SharedCertificate(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	if derFingerprint(got.Raw) != served.Fingerprint() {
		t.Errorf("read %s, served %s", derFingerprint(got.Raw), served.Fingerprint())
	}
}
