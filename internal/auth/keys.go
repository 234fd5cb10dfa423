package auth

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// minRSABits is the smallest RSA modulus accepted. 2048 bits is the floor of
// NIST SP 800-131A and of OpenSSH's RequiredRSASize default; smaller keys are
// factorable by well-funded attackers.
const minRSABits = 2048

// Fingerprint returns the key's SHA256 fingerprint ("SHA256:..."), the only
// form in which keys appear in logs.
func Fingerprint(key ssh.PublicKey) string {
	return ssh.FingerprintSHA256(key)
}

// parseAuthorizedKey parses one public_keys entry: exactly one
// authorized_keys line, "[options] type base64 [comment]".
//
// Options are accepted and ignored for now, with one exception (see below):
// wharf serves only SFTP/FTPS, so no-pty, command=, restrict and the
// forwarding options change nothing, while from= (source address limits) is
// the job of the per-user allowed_ips setting a later issue adds. Until then a
// from= or expiry-time= option is NOT enforced.
//
// Error messages never quote the line: it may hold anything the operator
// pasted, including a private key or a password typed in the wrong place.
func parseAuthorizedKey(line string) (ssh.PublicKey, error) {
	// YAML block scalars ("|") end with a newline, and files edited on
	// Windows carry a CR: neither makes a second line.
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return nil, errors.New("empty entry, want one authorized_keys line")
	case strings.HasPrefix(line, "-----BEGIN"):
		return nil, errors.New("looks like a PEM block (a private key?); list the public key, one authorized_keys line")
	case strings.ContainsAny(line, "\r\n"):
		return nil, errors.New("several lines in one entry; list one key per entry")
	case line[0] == '#':
		return nil, errors.New("is a comment, not a key")
	}

	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		// x/crypto's errors quote tokens of the line, so only a classification
		// of them is passed on.
		var b64 base64.CorruptInputError
		if errors.As(err, &b64) {
			return nil, errors.New("not a valid authorized_keys line: key data is not valid base64")
		}
		return nil, errors.New("not a valid authorized_keys line: want [options] key-type base64-key [comment]")
	}
	if len(rest) != 0 {
		// Unreachable while newlines are refused above; kept so that a change
		// there cannot silently admit a second key.
		return nil, errors.New("several keys in one entry; list one key per entry")
	}
	for _, opt := range options {
		name, _, _ := strings.Cut(opt, "=")
		// cert-authority turns the line from "this key may log in" into "keys
		// certified by this CA may log in". Ignoring it would grant access on
		// terms the operator did not write, so it is refused until supported.
		if strings.EqualFold(name, "cert-authority") {
			return nil, errors.New("the cert-authority option is not supported; list user keys, not a CA key")
		}
	}
	if err := checkKeyType(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKeyType admits the key types an OpenSSH client offers today and
// refuses the weak ones. The messages name only the key type, which comes from
// x/crypto's fixed list, never key material.
func checkKeyType(key ssh.PublicKey) error {
	if _, ok := key.(*ssh.Certificate); ok {
		return fmt.Errorf("%s is a certificate; list the plain public key instead", key.Type())
	}
	switch t := key.Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return errors.New("ssh-rsa key of unknown size")
		}
		pub, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return errors.New("ssh-rsa key of unknown size")
		}
		if bits := pub.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("ssh-rsa key has %d bits, at least %d are required; prefer an ed25519 key", bits, minRSABits)
		}
		return nil
	//lint:ignore SA1019 named only to refuse it with a helpful message
	case ssh.InsecureKeyAlgoDSA:
		return errors.New("ssh-dss (DSA) keys are not accepted: DSA is limited to 1024 bits and OpenSSH has removed it; use an ed25519 key")
	default:
		return fmt.Errorf("unsupported key type %s; use ed25519, ecdsa or rsa (>= %d bits)", t, minRSABits)
	}
}
