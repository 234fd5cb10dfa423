package keygen

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// requireTool returns the path of a command-line tool; a missing one skips
// the test on a developer's machine and fails it in CI (CI=true), where
// .ci/run installs it.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s (Debian package %s) is missing: %v", name, pkg, err)
	}
	t.Skipf("%s (Debian package %s) not found: %v", name, pkg, err)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, nil
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: no exit within a minute", name, strings.Join(args, " "))
	}
	return stdout.String()
}

func TestGenerate(t *testing.T) {
	for _, typ := range []string{"", ED25519, RSA} {
		k, err := Generate(typ, "acme@wharf 2026-12-03")
		if err != nil {
			t.Fatalf("Generate(%q): %v", typ, err)
		}
		pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(k.AuthorizedKey()))
		if err != nil || len(rest) != 0 || comment != "acme@wharf 2026-12-03" || ssh.FingerprintSHA256(pub) != k.Fingerprint() {
			t.Errorf("%s: authorized_keys line %q: %v, comment %q", typ, k.AuthorizedKey(), err, comment)
		}
		pem, err := k.OpenSSH()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ssh.ParseRawPrivateKey(pem)
		if err != nil {
			t.Fatalf("%s: parse the OpenSSH private key: %v", typ, err)
		}
		signer, err := ssh.NewSignerFromKey(raw)
		if err != nil || !bytes.Equal(signer.PublicKey().Marshal(), k.Public.Marshal()) {
			t.Errorf("%s: the private key is not the public key's: %v", typ, err)
		}
		switch raw := raw.(type) {
		case *ed25519.PrivateKey:
			if k.Type != ED25519 || k.Public.Type() != ssh.KeyAlgoED25519 {
				t.Errorf("type %q made %s", typ, k.Public.Type())
			}
		case *rsa.PrivateKey:
			if k.Type != RSA || raw.N.BitLen() != RSABits {
				t.Errorf("rsa key of %d bits", raw.N.BitLen())
			}
		default:
			t.Errorf("%s: parsed as %T", typ, raw)
		}
	}
	if _, err := Generate("dsa", ""); err == nil || !strings.Contains(err.Error(), "ed25519 or rsa") {
		t.Errorf("Generate(dsa): %v", err)
	}
	if _, err := Generate(ED25519, "a\nb"); err == nil {
		t.Error("a comment of two lines was accepted")
	}
}

// parsePPK reads a PPK v3 written without encryption and checks its MAC,
// independently of PPK: the structure PuTTY's appendix C describes.
func parsePPK(t *testing.T, data []byte) (alg, comment string, pub, priv []byte) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	next := func(prefix string) string {
		t.Helper()
		if len(lines) == 0 || !strings.HasPrefix(lines[0], prefix+": ") {
			t.Fatalf("ppk: want %q, got %q", prefix, lines)
		}
		v := strings.TrimPrefix(lines[0], prefix+": ")
		lines = lines[1:]
		return v
	}
	blob := func(prefix string) []byte {
		t.Helper()
		n, err := strconv.Atoi(next(prefix))
		if err != nil || n > len(lines) {
			t.Fatalf("ppk: %s: %v", prefix, err)
		}
		for i, l := range lines[:n] {
			if len(l) > 64 || (i < n-1 && len(l) != 64) {
				t.Errorf("ppk: %s line %d has %d characters", prefix, i, len(l))
			}
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(lines[:n], ""))
		if err != nil {
			t.Fatalf("ppk: %s: %v", prefix, err)
		}
		lines = lines[n:]
		return b
	}
	alg = next("PuTTY-User-Key-File-3")
	if enc := next("Encryption"); enc != "none" {
		t.Fatalf("ppk: encryption %q", enc)
	}
	comment = next("Comment")
	pub, priv = blob("Public-Lines"), blob("Private-Lines")
	mac := hmac.New(sha256.New, nil)
	for _, f := range [][]byte{[]byte(alg), []byte("none"), []byte(comment), pub, priv} {
		mac.Write(sshString(f))
	}
	if got := next("Private-MAC"); got != hex.EncodeToString(mac.Sum(nil)) || len(lines) != 0 {
		t.Fatalf("ppk: MAC %s does not match, or trailing lines %q", got, lines)
	}
	return alg, comment, pub, priv
}

func TestPPKLayout(t *testing.T) {
	for _, typ := range Types {
		k, err := Generate(typ, "acme@wharf 2026-12-03")
		if err != nil {
			t.Fatal(err)
		}
		data, err := k.PPK()
		if err != nil {
			t.Fatal(err)
		}
		alg, comment, pub, priv := parsePPK(t, data)
		if alg != k.Public.Type() || comment != k.Comment || !bytes.Equal(pub, k.Public.Marshal()) {
			t.Errorf("%s: header %q %q or public blob differ", typ, alg, comment)
		}
		if typ == ED25519 {
			seed := k.private.(ed25519.PrivateKey).Seed()
			if !bytes.Equal(priv, sshString(seed)) {
				t.Errorf("ed25519 private blob is not the seed as an SSH string")
			}
		}
	}
}

// TestPPKPuttygen has Debian's puttygen (putty-tools) read each .ppk, which
// it does only if the MAC holds, and convert it back to an OpenSSH key: the
// private key it recovers must be the one generated. Ed25519 runs on
// several keys, so that seeds with a zero top byte are likely met.
func TestPPKPuttygen(t *testing.T) {
	puttygen := requireTool(t, "puttygen", "putty-tools")
	dir := t.TempDir()
	var keys []*Key
	for range 8 {
		k, err := Generate(ED25519, "acme@wharf 2026-12-03")
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	k, err := Generate(RSA, "acme-rsa")
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, k)
	for i, k := range keys {
		files, err := k.WriteFiles(dir, "k"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(run(t, puttygen, files.PPK, "-O", "public-openssh")); got != k.AuthorizedKey() {
			t.Errorf("%s: puttygen reads the public key as %q, want %q", k.Type, got, k.AuthorizedKey())
		}
		if got := run(t, puttygen, "-l", files.PPK); !strings.Contains(got, k.Fingerprint()) {
			t.Errorf("%s: puttygen -l: %q, want %s", k.Type, got, k.Fingerprint())
		}
		back := filepath.Join(dir, "back"+strconv.Itoa(i))
		run(t, puttygen, files.PPK, "-O", "private-openssh-new", "-o", back)
		data, err := os.ReadFile(back)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ssh.ParseRawPrivateKey(data)
		if err != nil {
			t.Fatalf("%s: parse puttygen's conversion: %v", k.Type, err)
		}
		switch want := k.private.(type) {
		case ed25519.PrivateKey:
			if got, ok := raw.(*ed25519.PrivateKey); !ok || !want.Equal(*got) {
				t.Errorf("ed25519 key %d: puttygen recovered another private key", i)
			}
		case *rsa.PrivateKey:
			// The same key, whichever prime comes first (puttygen's
			// OpenSSH output may order them otherwise).
			got, ok := raw.(*rsa.PrivateKey)
			if !ok || !want.PublicKey.Equal(&got.PublicKey) || want.D.Cmp(got.D) != 0 || len(got.Primes) != 2 ||
				!(want.Primes[0].Cmp(got.Primes[0]) == 0 && want.Primes[1].Cmp(got.Primes[1]) == 0 ||
					want.Primes[0].Cmp(got.Primes[1]) == 0 && want.Primes[1].Cmp(got.Primes[0]) == 0) {
				t.Errorf("rsa: puttygen recovered another private key")
			}
		}
	}
	// A .ppk with one byte of the private blob changed is refused: the MAC
	// is checked, so the one above held.
	data, err := keys[0].PPK()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("Private-Lines: 1\n")) + len("Private-Lines: 1\n")
	data[i+5] ^= 1 // still base64
	if data[i+5] == '\n' || !bytes.ContainsRune([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), rune(data[i+5])) {
		data[i+5] = 'A'
	}
	bad := filepath.Join(dir, "bad.ppk")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(puttygen, bad, "-O", "private-openssh-new", "-o", filepath.Join(dir, "bad-back"))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("puttygen accepted a .ppk whose private blob was changed:\n%s", out)
	}
	// And one whose MAC is wrong, to show the MAC is what it checks.
	if data, err = keys[0].PPK(); err != nil {
		t.Fatal(err)
	}
	if last := &data[len(data)-2]; *last == '0' { // the MAC's last hex digit
		*last = '1'
	} else {
		*last = '0'
	}
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(puttygen, bad, "-O", "private-openssh-new", "-o", filepath.Join(dir, "bad-back2"))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "mac") {
		t.Errorf("puttygen on a wrong MAC: %v\n%s", err, out)
	}
}

// TestOpenSSHKeygen: ssh-keygen reads the OpenSSH private key written.
func TestOpenSSHKeygen(t *testing.T) {
	keygen := requireTool(t, "ssh-keygen", "openssh-client")
	k, err := Generate(ED25519, "acme@wharf")
	if err != nil {
		t.Fatal(err)
	}
	files, err := k.WriteFiles(t.TempDir(), "acme_ed25519")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(run(t, keygen, "-y", "-f", files.Private))
	want := strings.Fields(k.AuthorizedKey())
	if len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ssh-keygen -y: %q, want %q", got, want)
	}
}

func TestWriteFiles(t *testing.T) {
	k, err := Generate(ED25519, "acme@wharf")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new", "out")
	files, err := k.WriteFiles(dir, "acme_ed25519")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the new folder: %v, %v; want mode 0700", fi.Mode(), err)
	}
	for path, mode := range map[string]fs.FileMode{files.Private: 0o600, files.Public: 0o644, files.PPK: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
	if pub, _ := os.ReadFile(files.Public); string(pub) != k.AuthorizedKey()+"\n" {
		t.Errorf(".pub holds %q", pub)
	}

	// Never overwritten, even one file of three; nothing left behind.
	other, _ := Generate(ED25519, "")
	before, _ := os.ReadFile(files.Private)
	if _, err := other.WriteFiles(dir, "acme_ed25519"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second key over the first: %v", err)
	}
	if after, _ := os.ReadFile(files.Private); !bytes.Equal(before, after) {
		t.Error("the first private key was overwritten")
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "k.ppk"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteFiles(dir2, "k"); err == nil {
		t.Error("an existing .ppk was not noticed")
	}
	if _, err := os.Stat(filepath.Join(dir2, "k")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused write left the private key behind: %v", err)
	}
	// A symbolic link planted where the key goes is not followed.
	dir3 := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir3, "k.pub")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteFiles(dir3, "k"); err == nil {
		t.Error("a symbolic link in the way was not noticed")
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the write followed the symbolic link")
	}
	for _, base := range []string{"", "a/b", "..", "."} {
		if _, err := other.WriteFiles(dir3, base); err == nil {
			t.Errorf("file name %q accepted", base)
		}
	}
	Remove(files)
	for _, p := range files.List() {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove left %s", p)
		}
	}
}

func TestPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p := Password()
		if len(p) != 26 || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" || seen[p] {
			t.Fatalf("password %q: want 26 fresh characters of A-Z2-7", p)
		}
		seen[p] = true
	}
}
