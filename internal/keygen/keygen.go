// Package keygen issues credentials for partners: SSH key pairs written as
// the files their clients read (an OpenSSH private key for OpenSSH and
// most ETL tools, a PuTTY .ppk for PuTTY, WinSCP and FileZilla, and the
// .pub line the server keeps), and strong random passwords. The server
// keeps only the public half and the password's hash; what this package
// returns is for the operator to hand over once.
package keygen

import (
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
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key types Generate makes.
const (
	ED25519 = "ed25519"
	RSA     = "rsa"
)

// Types lists the key types, the default first.
var Types = []string{ED25519, RSA}

// RSABits is the size of generated RSA keys: 3072 bits is NIST's size for
// use beyond 2030 (SP 800-57), and every client that takes RSA takes it.
const RSABits = 3072

// Key is a generated key pair.
type Key struct {
	Type    string // ED25519 or RSA
	Comment string
	Public  ssh.PublicKey
	private crypto.Signer // ed25519.PrivateKey or *rsa.PrivateKey
}

// Generate makes a new key pair of type typ ("" is ED25519). The comment
// ends up in the files and the authorized_keys line; it must be one line.
func Generate(typ, comment string) (*Key, error) {
	if strings.ContainsAny(comment, "\r\n") {
		return nil, errors.New("key comment: must be one line")
	}
	k := &Key{Type: typ, Comment: comment}
	var pub crypto.PublicKey
	switch typ {
	case "", ED25519:
		k.Type = ED25519
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		pub, k.private = p, priv
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, RSABits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		pub, k.private = &priv.PublicKey, priv
	default:
		return nil, fmt.Errorf("unknown key type %q: want %s", typ, strings.Join(Types, " or "))
	}
	var err error
	if k.Public, err = ssh.NewPublicKey(pub); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return k, nil
}

// AuthorizedKey is the public key as one authorized_keys line, with the
// comment: what the server's config records.
func (k *Key) AuthorizedKey() string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Public)))
	if k.Comment != "" {
		line += " " + k.Comment
	}
	return line
}

// Fingerprint is the key's SHA256 fingerprint, as the server logs it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Public) }

// OpenSSH is the private key in OpenSSH's format, unencrypted.
func (k *Key) OpenSSH() ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(k.private, k.Comment)
	if err != nil {
		return nil, fmt.Errorf("encode openssh private key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// Files are the paths WriteFiles wrote.
type Files struct {
	Private string // OpenSSH private key, mode 0600
	Public  string // Private + ".pub": the authorized_keys line, mode 0644
	PPK     string // PuTTY private key, mode 0600
}

// List returns the paths, private key first.
func (f Files) List() []string { return []string{f.Private, f.Public, f.PPK} }

// WriteFiles writes the key pair into dir (created with mode 0700 if
// missing) as base (OpenSSH private key), base.pub and base.ppk. It never
// overwrites: if any of them exists, or cannot be written, nothing is left
// behind and the error says which.
func (k *Key) WriteFiles(dir, base string) (Files, error) {
	if base == "" || strings.ContainsAny(base, `/\`) || base == "." || base == ".." {
		return Files{}, fmt.Errorf("key file name %q: want a plain file name", base)
	}
	priv, err := k.OpenSSH()
	if err != nil {
		return Files{}, err
	}
	ppk, err := k.PPK()
	if err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("key folder: %w", err)
	}
	f := Files{Private: filepath.Join(dir, base), Public: filepath.Join(dir, base+".pub"), PPK: filepath.Join(dir, base+".ppk")}
	for _, p := range f.List() {
		if _, err := os.Lstat(p); err == nil {
			return Files{}, fmt.Errorf("%s already exists; remove it or write the key elsewhere (--out)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Files{}, fmt.Errorf("check %s: %w", p, err)
		}
	}
	var written []string
	for _, w := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{{f.Private, priv, 0o600}, {f.Public, []byte(k.AuthorizedKey() + "\n"), 0o644}, {f.PPK, ppk, 0o600}} {
		if err := createFile(w.path, w.data, w.mode); err != nil {
			Remove(Files{}, written...)
			return Files{}, err
		}
		written = append(written, w.path)
	}
	return f, nil
}

// Remove deletes the files of f and any paths given, ignoring those
// already gone: the undo of WriteFiles when what the key was for failed.
func Remove(f Files, paths ...string) {
	for _, p := range append(paths, f.Private, f.Public, f.PPK) {
		if p != "" {
			_ = os.Remove(p)
		}
	}
}

// createFile creates path exclusively (never through a symbolic link
// planted there) with mode, writes data and syncs it.
func createFile(path string, data []byte, mode fs.FileMode) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// The umask may have taken bits off the mode; a private key's mode is
	// set exactly, and a group or world bit never added.
	if err := fh.Chmod(mode); err != nil {
		fh.Close()
		os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Password returns a new random password: 26 characters of base32
// (A-Z, 2-7), 130 bits of entropy. Its alphabet needs no quoting in a
// shell, a URL or an INI file.
func Password() string { return rand.Text() }
