package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/regfile"
)

// maxPublicKeyFile bounds a .pub file: one authorized_keys line.
const maxPublicKeyFile = 64 << 10

// HostPublicKeys returns the public halves of the host keys LoadHostKeys
// serves, for showing to partners, without generating or writing
// anything: of each configured key its PATH.pub when there is one, else
// the key file's public half; with none configured, the .pub files
// LoadHostKeys wrote beside the keys it generated in stateDir. When
// stateDir holds none yet, the error says to start the daemon once.
func HostPublicKeys(paths []string, stateDir string) ([]ssh.PublicKey, error) {
	generatedKeys := len(paths) == 0
	if generatedKeys {
		for _, g := range generated {
			paths = append(paths, filepath.Join(stateDir, g.file))
		}
	}
	keys := make([]ssh.PublicKey, 0, len(paths))
	for _, p := range paths {
		key, err := publicKeyOf(p)
		if generatedKeys && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no host key %s yet: the daemon generates its host keys in state_dir when it first starts; start it once (or set sftp.host_keys)", p)
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// publicKeyOf reads PATH.pub, else the public half of the private key at
// path. A passphrase-protected key still yields its public half.
func publicKeyOf(path string) (ssh.PublicKey, error) {
	data, err := regfile.Read(path+".pub", maxPublicKeyFile)
	if err == nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse host public key %s.pub: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read host public key: %w", err)
	}
	data, err = regfile.Read(path, maxHostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	return privateToPublic(path, data)
}

func privateToPublic(name string, data []byte) (ssh.PublicKey, error) {
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing) && missing.PublicKey != nil:
		return missing.PublicKey, nil
	case err != nil:
		return nil, fmt.Errorf("parse host key %s: %w", name, err)
	}
	return signer.PublicKey(), nil
}

// SharedReader reads an object of a fleet's identity without creating
// it; fs.ErrNotExist (wrapped) when there is none. fleet.State is one.
type SharedReader interface {
	ReadIdentity(ctx context.Context, name string) ([]byte, error)
}

// SharedHostPublicKeys returns the public halves of the fleet's host keys,
// the ones LoadSharedHostKeys serves, without creating them: when the
// fleet has none yet, the error says to start a daemon first.
func SharedHostPublicKeys(ctx context.Context, s SharedReader) ([]ssh.PublicKey, error) {
	keys := make([]ssh.PublicKey, 0, len(generated))
	for _, g := range generated {
		data, err := s.ReadIdentity(ctx, g.file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the fleet has no host key %s yet: the first daemon to start with state_url creates it; start one", g.file)
		}
		if err != nil {
			return nil, fmt.Errorf("shared host key %s: %w", g.file, err)
		}
		key, err := privateToPublic("shared "+g.file, data)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}
