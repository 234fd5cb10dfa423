package auth

import (
	"bytes"
	//lint:ignore SA1019 only to build an ssh-dss key that must be refused
	"crypto/dsa"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// authorizedLine returns pub as an authorized_keys line without a comment.
func authorizedLine(t testing.TB, pub any) string {
	t.Helper()
	k, ok := pub.(ssh.PublicKey)
	if !ok {
		var err error
		if k, err = ssh.NewPublicKey(pub); err != nil {
			t.Fatalf("NewPublicKey(%T): %v", pub, err)
		}
	}
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
}

func newED25519(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func newECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func newRSA(t testing.TB, bits int) *rsa.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// fakeDSA is an ssh-dss key with parameters of the right sizes. Nobody checks
// that they are prime, and generating real ones takes seconds.
func fakeDSA(t testing.TB) *dsa.PublicKey {
	t.Helper()
	p := new(big.Int).Lsh(big.NewInt(1), 1023)
	p.Add(p, big.NewInt(1))
	q := new(big.Int).Lsh(big.NewInt(1), 159)
	q.Add(q, big.NewInt(1))
	return &dsa.PublicKey{Parameters: dsa.Parameters{P: p, Q: q, G: big.NewInt(2)}, Y: big.NewInt(3)}
}

// skLine builds security-key (FIDO) authorized_keys lines, which crypto/...
// cannot produce, from their wire format.
func skED25519Line(t testing.TB) string {
	t.Helper()
	wire := ssh.Marshal(struct {
		Name        string
		KeyBytes    []byte
		Application string
	}{ssh.KeyAlgoSKED25519, newED25519(t), "ssh:"})
	k, err := ssh.ParsePublicKey(wire)
	if err != nil {
		t.Fatal(err)
	}
	return authorizedLine(t, k)
}

func skECDSALine(t testing.TB) string {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wire := ssh.Marshal(struct {
		Name        string
		Curve       string
		KeyBytes    []byte
		Application string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", priv.PublicKey().Bytes(), "ssh:"})
	k, err := ssh.ParsePublicKey(wire)
	if err != nil {
		t.Fatal(err)
	}
	return authorizedLine(t, k)
}

func certLine(t testing.TB) string {
	t.Helper()
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(newED25519(t))
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, ValidPrincipals: []string{"alice"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	return authorizedLine(t, cert)
}

func TestParseAuthorizedKey(t *testing.T) {
	ed := authorizedLine(t, newED25519(t))
	edFields := strings.Fields(ed)
	rsa2048 := authorizedLine(t, newRSA(t, 2048))
	rsa1024 := authorizedLine(t, newRSA(t, 1024))
	dss := authorizedLine(t, fakeDSA(t))
	otherED := authorizedLine(t, newED25519(t))

	tests := []struct {
		name     string
		line     string
		wantType string // "" when an error is wanted
		wantErr  string // substring of the error
	}{
		{"ed25519", ed, ssh.KeyAlgoED25519, ""},
		{"ed25519 with comment", ed + " alice@laptop", ssh.KeyAlgoED25519, ""},
		{"comment with spaces", ed + " alice's key (2024)", ssh.KeyAlgoED25519, ""},
		{"options ignored", `from="10.0.0.0/8,192.168.1.*",no-pty,restrict ` + ed + " alice", ssh.KeyAlgoED25519, ""},
		{"command option", `command="internal-sftp" ` + ed, ssh.KeyAlgoED25519, ""},
		{"surrounding whitespace and crlf", "  \t" + ed + "\r\n", ssh.KeyAlgoED25519, ""},
		{"yaml block scalar newline", ed + "\n", ssh.KeyAlgoED25519, ""},
		{"ecdsa p256", authorizedLine(t, newECDSA(t, elliptic.P256())), ssh.KeyAlgoECDSA256, ""},
		{"ecdsa p384", authorizedLine(t, newECDSA(t, elliptic.P384())), ssh.KeyAlgoECDSA384, ""},
		{"ecdsa p521", authorizedLine(t, newECDSA(t, elliptic.P521())), ssh.KeyAlgoECDSA521, ""},
		{"rsa 2048", rsa2048, ssh.KeyAlgoRSA, ""},
		{"sk-ed25519", skED25519Line(t) + " yubikey", ssh.KeyAlgoSKED25519, ""},
		{"sk-ecdsa", skECDSALine(t), ssh.KeyAlgoSKECDSA256, ""},

		{"rsa 1024 refused", rsa1024, "", "1024 bits, at least 2048"},
		{"dsa refused", dss, "", "ssh-dss (DSA) keys are not accepted"},
		{"dsa with options refused", "no-pty " + dss, "", "ssh-dss (DSA)"},
		{"certificate refused", certLine(t), "", "is a certificate"},
		{"cert-authority refused", "cert-authority " + ed, "", "cert-authority option is not supported"},
		{"cert-authority any case", `no-pty,CERT-AUTHORITY,principals="a" ` + ed, "", "cert-authority"},
		{"empty", "", "", "empty entry"},
		{"blank", " \t\n", "", "empty entry"},
		{"comment only", "# " + ed, "", "is a comment"},
		{"garbage", "hello world this is not a key", "", "not a valid authorized_keys line"},
		{"type only", "ssh-ed25519", "", "not a valid authorized_keys line"},
		{"bad base64", "ssh-ed25519 AAAA!!!!notbase64", "", "not valid base64"},
		{"truncated key", edFields[0] + " " + edFields[1][:40], "", "not a valid authorized_keys line"},
		{"type mismatch", "ssh-rsa " + edFields[1], "", "not a valid authorized_keys line"},
		{"unknown option-like first token", "restrict" + edFields[1], "", "not a valid authorized_keys line"},
		{"two keys in one entry", ed + "\n" + otherED, "", "several lines"},
		{"two keys cr separated", ed + "\r" + otherED, "", "several lines"},
		{"key then comment line", ed + "\n# second", "", "several lines"},
		{"private key pasted", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "", "private key"},
		{"unmatched quote", `from="10.0.0.1 ` + ed, "", "not a valid authorized_keys line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := parseAuthorizedKey(tt.line)
			if tt.wantType != "" {
				if err != nil {
					t.Fatalf("parseAuthorizedKey: %v", err)
				}
				if key.Type() != tt.wantType {
					t.Errorf("type = %q, want %q", key.Type(), tt.wantType)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseAuthorizedKey accepted %s key, want error containing %q", key.Type(), tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			// No key material in the message: base64 blobs are the long tokens
			// (key type names, which may be quoted, are at most 40 bytes).
			for _, f := range strings.Fields(tt.line) {
				if len(f) > 40 && strings.Contains(msg, f) {
					t.Errorf("error %q quotes input token %q", msg, f)
				}
			}
		})
	}
}

// The key accepted from an entry must be the one the client later presents:
// wharf compares wire bytes, so options and comments must not change them.
func TestParseAuthorizedKeyWireBytes(t *testing.T) {
	pub, err := ssh.NewPublicKey(newED25519(t))
	if err != nil {
		t.Fatal(err)
	}
	line := authorizedLine(t, pub)
	for _, entry := range []string{line, line + " comment", "no-pty,from=\"*\" " + line + " c"} {
		key, err := parseAuthorizedKey(entry)
		if err != nil {
			t.Fatalf("parseAuthorizedKey(%q): %v", entry, err)
		}
		if !bytes.Equal(key.Marshal(), pub.Marshal()) {
			t.Errorf("entry %q: wire bytes differ from the generated key", entry)
		}
		if got, want := Fingerprint(key), ssh.FingerprintSHA256(pub); got != want {
			t.Errorf("Fingerprint = %q, want %q", got, want)
		}
	}
}

func FuzzParseAuthorizedKey(f *testing.F) {
	// Fixed keys, so that the seed corpus is the same on every run.
	ed := authorizedLine(f, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public())
	f.Add(ed)
	f.Add(ed + " alice@example")
	f.Add(`from="10.0.0.0/8",no-pty ` + ed + " c")
	f.Add("cert-authority " + ed)
	f.Add(ed + "\n" + ed)
	f.Add(authorizedLine(f, fakeDSA(f)))
	f.Add("# comment")
	f.Add("")
	f.Add(`"unterminated ssh-ed25519 AAAA`)
	f.Add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ")
	f.Fuzz(func(t *testing.T, line string) {
		key, err := parseAuthorizedKey(line)
		if err != nil {
			if key != nil {
				t.Fatalf("error %v with a non-nil key", err)
			}
			return
		}
		if strings.ContainsAny(strings.TrimSpace(line), "\r\n") {
			t.Fatalf("accepted a multi-line entry %q", line)
		}
		if err := checkKeyType(key); err != nil {
			t.Fatalf("accepted a key checkKeyType refuses: %v", err)
		}
		wire := key.Marshal()
		again, err := ssh.ParsePublicKey(wire)
		if err != nil {
			t.Fatalf("accepted key does not re-parse: %v", err)
		}
		if !bytes.Equal(again.Marshal(), wire) {
			t.Fatal("accepted key does not round-trip through Marshal/ParsePublicKey")
		}
		if again.Type() != key.Type() {
			t.Fatalf("type changed in round trip: %q -> %q", key.Type(), again.Type())
		}
		if !strings.HasPrefix(Fingerprint(key), "SHA256:") {
			t.Fatalf("Fingerprint = %q", Fingerprint(key))
		}
	})
}
