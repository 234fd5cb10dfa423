package api

import (
	"fmt"
	"slices"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/keygen"
)

// issue makes the credentials a createPartner request asks for
// (generate_key, generate_password), adds what the config stores to nu (an
// authorized_keys line, a password hash), and returns what the answer
// hands out this once (the private key in both formats, the password):
// wharf keeps none of it. nil when nothing was asked.
func issue(nu *configedit.NewUser, in NewPartner) (map[string]string, error) {
	out := map[string]string{}
	if in.GenerateKey != "" {
		line, err := issueKey(in.GenerateKey, nu.Name, out)
		if err != nil {
			return nil, err
		}
		nu.PublicKeys = append(nu.PublicKeys, line)
	}
	if in.GeneratePassword {
		if nu.PasswordHash != "" {
			return nil, badRequest("generate_password", "give either password_hash or generate_password, not both")
		}
		pw := keygen.Password()
		hash, err := auth.HashPassword(pw)
		if err != nil {
			return nil, err
		}
		nu.PasswordHash, out["password"] = hash, pw
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// issueKey generates a key pair of type typ for user, puts the private key
// (OpenSSH and PuTTY .ppk), the public key and its fingerprint into out,
// and returns the authorized_keys line the config keeps.
func issueKey(typ, user string, out map[string]string) (string, error) {
	if !slices.Contains(keygen.Types, typ) {
		return "", badRequest("generate_key", "unknown key type %q: want ed25519 or rsa", typ)
	}
	k, err := keygen.Generate(typ, user)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	priv, err := k.OpenSSH()
	if err != nil {
		return "", err
	}
	ppk, err := k.PPK()
	if err != nil {
		return "", err
	}
	out["private_key"], out["private_key_ppk"] = string(priv), string(ppk)
	out["public_key"], out["fingerprint"] = k.AuthorizedKey(), k.Fingerprint()
	return k.AuthorizedKey(), nil
}
