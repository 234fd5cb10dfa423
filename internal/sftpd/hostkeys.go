package sftpd

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/atomicfile"
	"github.com/wharf-sftp/wharf/internal/regfile"
)

// generated lists the host keys made when none are configured, with the
// OpenSSH file names an operator will recognise.
var generated = []struct {
	file string
	gen  func() (crypto.Signer, error)
}{
	{"ssh_host_ed25519_key", func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}},
	{"ssh_host_rsa_key", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) }},
}

// LoadHostKeys reads the configured private keys; with none configured it
// loads the keys in stateDir, generating any that are missing, so that the
// fingerprint partners pinned survives restarts.
func LoadHostKeys(paths []string, stateDir string) ([]ssh.Signer, error) {
	if len(paths) == 0 {
		for _, g := range generated {
			p := filepath.Join(stateDir, g.file)
			if err := ensureKey(p, g.gen); err != nil {
				return nil, err
			}
			paths = append(paths, p)
		}
	}
	signers := make([]ssh.Signer, 0, len(paths))
	for _, p := range paths {
		data, err := regfile.Read(p, maxHostKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read host key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse host key %s: %w", p, err)
		}
		signers = append(signers, s)
	}
	return signers, nil
}

// ensureKey writes a new key at path unless one is there. The key is
// written to a temporary file first, so a crash never leaves half a key.
func ensureKey(path string, gen func() (crypto.Signer, error)) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	key, err := gen()
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	private, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, private, 0o600); err != nil {
		return fmt.Errorf("host key: %w", err)
	}
	// The public half, as OpenSSH keeps it, for operators to hand to
	// partners (`ssh-keygen -lf ssh_host_ed25519_key.pub`).
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("host public key: %w", err)
	}
	if err := atomicfile.Write(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		return fmt.Errorf("write host public key: %w", err)
	}
	return nil
}

// marshalKey encodes a private key in OpenSSH's format, as ssh-keygen
// writes it.
func marshalKey(key crypto.Signer) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(key, "wharf host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// Shared is the store a fleet of daemons shares (state_url). Ensure
// returns the content stored under name; when there is none it stores
// gen's result first, create-only, so that of daemons starting at once
// every one gets the first writer's.
type Shared interface {
	Ensure(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// LoadSharedHostKeys returns the fleet's host keys, the ones LoadHostKeys
// would generate (ed25519 and RSA 3072, under the same names), from s:
// every daemon presents the same fingerprints. A key s lacks is created
// there from the daemon's state_dir when it holds one (a daemon that ran
// alone keeps, in the fleet it founds, the fingerprint its partners
// pinned), else generated. Nothing is written to stateDir.
func LoadSharedHostKeys(ctx context.Context, s Shared, stateDir string) ([]ssh.Signer, error) {
	signers := make([]ssh.Signer, 0, len(generated))
	for _, g := range generated {
		data, err := s.Ensure(ctx, g.file, func() ([]byte, error) {
			local, err := regfile.Read(filepath.Join(stateDir, g.file), maxHostKeyFile)
			if err == nil {
				return local, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("read host key: %w", err)
			}
			key, err := g.gen()
			if err != nil {
				return nil, fmt.Errorf("generate host key: %w", err)
			}
			return marshalKey(key)
		})
		if err != nil {
			return nil, fmt.Errorf("shared host key %s: %w", g.file, err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse shared host key %s: %w", g.file, err)
		}
		signers = append(signers, signer)
	}
	return signers, nil
}

// maxHostKeyFile bounds a host key file: an RSA-16384 private key in
// OpenSSH's format is about 12 KiB.
const maxHostKeyFile = 1 << 20
