package onboard

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// PuTTY (and WinSCP, which is built on it) keep the host keys a user
// trusts in a cache of entries "TYPE@PORT:HOST" -> the key's numbers in
// hex: "0xE,0xN" for RSA, "0xX,0xY" (the affine point) for Ed25519, and
// "CURVE,0xX,0xY" for ECDSA. winscp.ini carries such entries, so that an
// imported site trusts our host keys without a prompt; PuTTY's own tools
// read the same format from ~/.putty/sshhostkeys, which is how the
// end-to-end test proves it.

// puttyCacheEntry returns key's entry for host:port; ok is false for a
// key type PuTTY does not cache.
func puttyCacheEntry(key ssh.PublicKey, host string, port int) (name, value string, ok bool) {
	ck, isCrypto := key.(ssh.CryptoPublicKey)
	if !isCrypto {
		return "", "", false
	}
	suffix := fmt.Sprintf("@%d:%s", port, host)
	switch k := ck.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		return "rsa2" + suffix, "0x" + big.NewInt(int64(k.E)).Text(16) + ",0x" + k.N.Text(16), true
	case ed25519.PublicKey:
		x, y, err := edwardsAffine(k)
		if err != nil {
			return "", "", false
		}
		return "ssh-ed25519" + suffix, "0x" + x.Text(16) + ",0x" + y.Text(16), true
	case *ecdsa.PublicKey:
		curve := strings.TrimPrefix(key.Type(), "ecdsa-sha2-")
		raw, err := k.Bytes() // 0x04 || X || Y
		if err != nil || len(raw) < 3 || raw[0] != 4 {
			return "", "", false
		}
		n := (len(raw) - 1) / 2
		x := new(big.Int).SetBytes(raw[1 : 1+n])
		y := new(big.Int).SetBytes(raw[1+n:])
		return key.Type() + suffix, curve + ",0x" + x.Text(16) + ",0x" + y.Text(16), true
	}
	return "", "", false
}

// ed25519Curve returns the constants of Ed25519, -x² + y² = 1 + d·x²·y²
// over GF(p): p = 2²⁵⁵ - 19, d = -121665/121666, and sqrt(-1) =
// 2^((p-1)/4). Made per call: big.Int values are mutable, and shared ones
// would be package-level state.
func ed25519Curve() (p, d, sqrtM1 *big.Int) {
	p = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	d = new(big.Int).Mul(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), p))
	d.Mod(d, p)
	sqrtM1 = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(p, big.NewInt(1)), 2), p)
	return p, d, sqrtM1
}

// edwardsAffine decodes an Ed25519 public key (RFC 8032 5.1.3): y is the
// little-endian number with the top bit cleared, which is x's sign.
func edwardsAffine(pub ed25519.PublicKey) (x, y *big.Int, err error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("ed25519 key of %d bytes", len(pub))
	}
	edP, edD, edSqrtM1 := ed25519Curve()
	be := make([]byte, len(pub))
	for i, b := range pub {
		be[len(pub)-1-i] = b
	}
	sign := be[0] >> 7
	be[0] &= 0x7f
	y = new(big.Int).SetBytes(be)
	if y.Cmp(edP) >= 0 {
		return nil, nil, fmt.Errorf("ed25519 key: y out of range")
	}
	// x² = (y² - 1) / (d·y² + 1)
	yy := new(big.Int).Mul(y, y)
	u := new(big.Int).Sub(yy, big.NewInt(1))
	u.Mod(u, edP)
	v := new(big.Int).Mul(edD, yy)
	v.Add(v, big.NewInt(1))
	v.Mod(v, edP)
	xx := new(big.Int).Mul(u, new(big.Int).ModInverse(v, edP))
	xx.Mod(xx, edP)
	// p ≡ 5 (mod 8): x = xx^((p+3)/8), times sqrt(-1) if that squares to -xx.
	x = new(big.Int).Exp(xx, new(big.Int).Rsh(new(big.Int).Add(edP, big.NewInt(3)), 3), edP)
	if sq := new(big.Int).Exp(x, big.NewInt(2), edP); sq.Cmp(xx) != 0 {
		x.Mul(x, edSqrtM1).Mod(x, edP)
		if sq := new(big.Int).Exp(x, big.NewInt(2), edP); sq.Cmp(xx) != 0 {
			return nil, nil, fmt.Errorf("ed25519 key: not a point of the curve")
		}
	}
	if x.Sign() == 0 && sign == 1 {
		return nil, nil, fmt.Errorf("ed25519 key: bad sign of x = 0")
	}
	if uint(x.Bit(0)) != uint(sign) {
		x.Sub(edP, x)
	}
	return x, y, nil
}

// puttyFingerprint is a host key as PuTTY and FileZilla show it (and as
// psftp -hostkey takes it): type, size in bits, and OpenSSH's SHA256
// fingerprint.
func puttyFingerprint(key ssh.PublicKey) string {
	return fmt.Sprintf("%s %d %s", key.Type(), keyBits(key), ssh.FingerprintSHA256(key))
}

// winscpFingerprint is a host key as WinSCP shows it and compares a
// site's SshHostKey with it: as PuTTY's, without the "SHA256:" (WinSCP
// compares the rest as it stands, so the prefix would never match).
func winscpFingerprint(key ssh.PublicKey) string {
	return fmt.Sprintf("%s %d %s", key.Type(), keyBits(key), strings.TrimPrefix(ssh.FingerprintSHA256(key), "SHA256:"))
}

// keyBits is a key's size as PuTTY names it: 255 for Ed25519.
func keyBits(key ssh.PublicKey) int {
	ck, ok := key.(ssh.CryptoPublicKey)
	if !ok {
		return 0
	}
	switch k := ck.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		return k.N.BitLen()
	case ed25519.PublicKey:
		return 255
	case *ecdsa.PublicKey:
		return k.Curve.Params().BitSize
	}
	return 0
}
