package keygen

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
)

// PPK is the private key in PuTTY's format, version 3 (PuTTY 0.75 of 2021
// and later, and the WinSCP and FileZilla releases since that read it),
// unencrypted. The layout is that of
// the PuTTY manual's appendix C: a text header, the public key blob (SSH
// wire format) and the private blob in base64 lines of 64 characters,
// and an HMAC-SHA-256 over both blobs and the header fields. Without
// encryption the MAC's key is empty: it guards against corruption, not
// tampering, as in every unencrypted PPK.
func (k *Key) PPK() ([]byte, error) {
	alg := k.Public.Type()
	pub := k.Public.Marshal()
	priv, err := ppkPrivate(k)
	if err != nil {
		return nil, err
	}
	const enc = "none"
	var b bytes.Buffer
	fmt.Fprintf(&b, "PuTTY-User-Key-File-3: %s\n", alg)
	fmt.Fprintf(&b, "Encryption: %s\n", enc)
	fmt.Fprintf(&b, "Comment: %s\n", k.Comment)
	writeLines(&b, "Public-Lines", pub)
	writeLines(&b, "Private-Lines", priv)
	mac := hmac.New(sha256.New, nil)
	for _, field := range [][]byte{[]byte(alg), []byte(enc), []byte(k.Comment), pub, priv} {
		mac.Write(sshString(field))
	}
	fmt.Fprintf(&b, "Private-MAC: %s\n", hex.EncodeToString(mac.Sum(nil)))
	return b.Bytes(), nil
}

// ppkPrivate is the private blob: for Ed25519 the 32-byte secret as an
// SSH string (PuTTY reads it as an unsigned little-endian integer of the
// curve's size, which is the seed's bytes as they are); for RSA the
// mpints d, p, q and q⁻¹ mod p.
func ppkPrivate(k *Key) ([]byte, error) {
	switch priv := k.private.(type) {
	case ed25519.PrivateKey:
		return sshString(priv.Seed()), nil
	case *rsa.PrivateKey:
		if len(priv.Primes) != 2 {
			return nil, fmt.Errorf("ppk: rsa key with %d primes, want 2", len(priv.Primes))
		}
		p, q := priv.Primes[0], priv.Primes[1]
		iqmp := new(big.Int).ModInverse(q, p)
		if iqmp == nil {
			return nil, fmt.Errorf("ppk: rsa key: q has no inverse mod p")
		}
		var b []byte
		for _, n := range []*big.Int{priv.D, p, q, iqmp} {
			b = append(b, mpint(n)...)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("ppk: unsupported key type %T", k.private)
	}
}

// writeLines writes "NAME: N" and data in base64 lines of 64 characters.
func writeLines(b *bytes.Buffer, name string, data []byte) {
	s := base64.StdEncoding.EncodeToString(data)
	n := (len(s) + 63) / 64
	fmt.Fprintf(b, "%s: %d\n", name, n)
	for i := 0; i < len(s); i += 64 {
		b.WriteString(s[i:min(i+64, len(s))])
		b.WriteByte('\n')
	}
}

// sshString is data as an SSH string (RFC 4251 section 5): a uint32
// length, then the bytes.
func sshString(data []byte) []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(data)), uint32(len(data)))
	return append(out, data...)
}

// mpint is a non-negative n as an SSH mpint: big-endian, with a leading
// zero byte when the top bit is set, empty for zero.
func mpint(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return sshString(b)
}
