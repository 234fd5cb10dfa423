package onboard

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxIdentity bounds an issued key file: an RSA-16384 key is about 12 KiB.
const maxIdentity = 64 << 10

// identities checks the issued key files and places them in the packet:
// each must be a private key (OpenSSH format, or PuTTY .ppk) whose public
// half is one of the user's keys that has not expired, so that a packet
// never carries a key that does not log in, or someone else's.
func (p *plan) identities() error {
	seen := map[string]bool{}
	for _, id := range p.in.Identities {
		name := id.Name
		switch {
		case name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, "."):
			return inputErr("issued key file name %q: want a plain file name", name)
		case slices.Contains(fixedNames, name):
			return inputErr("issued key file %q has the name of a file of the packet; rename it", name)
		case seen[name]:
			return inputErr("issued key file %q given twice", name)
		case len(id.Data) > maxIdentity:
			return inputErr("issued key file %q is larger than %d bytes: not a key", name, maxIdentity)
		}
		seen[name] = true
		pub, ppk, err := identityPublicKey(id.Data)
		if err != nil {
			return inputErr("issued key file %q: %v", name, err)
		}
		fp := ssh.FingerprintSHA256(pub)
		i := slices.IndexFunc(p.keys, func(k userKey) bool { return k.fp == fp })
		if i < 0 {
			return inputErr("issued key file %q holds key %s, which is not one of user %q's keys (or it expired)", name, fp, p.user.Name)
		}
		if p.issuedFP != "" && p.issuedFP != fp {
			return inputErr("issued key files hold two different keys (%s and %s): give one key, as an OpenSSH file and/or a .ppk", p.issuedFP, fp)
		}
		p.issuedFP = fp
		switch {
		case ppk && p.ppk != "":
			return inputErr("two .ppk files given (%q and %q)", p.ppk, name)
		case ppk:
			p.ppk = name
		case p.openssh != "":
			return inputErr("two OpenSSH private key files given (%q and %q)", p.openssh, name)
		default:
			p.openssh = name
		}
	}
	if p.openssh != "" {
		p.pub = p.openssh + ".pub"
		if seen[p.pub] || slices.Contains(fixedNames, p.pub) {
			return inputErr("issued key file %q: its public key would be written as %q, a name already taken", p.openssh, p.pub)
		}
	}
	return nil
}

// addIdentities appends the issued files to the packet, private keys
// with mode 0600, and the OpenSSH key's .pub (curl wants it beside the
// private key).
func (p *plan) addIdentities() {
	for _, id := range p.in.Identities {
		p.add(id.Name, 0o600, id.Data)
	}
	if p.pub != "" {
		k := p.issuedKey()
		line := k.line
		if k.comment != "" {
			line += " " + k.comment
		}
		p.add(p.pub, 0o644, []byte(line+"\n"))
	}
}

// issuedKey is the user's key the issued files hold.
func (p *plan) issuedKey() userKey {
	for _, k := range p.keys {
		if k.fp == p.issuedFP {
			return k
		}
	}
	return userKey{}
}

// identityPublicKey returns the public half of a private key file and
// whether it is a PuTTY .ppk. A passphrase-protected OpenSSH key still
// yields it; a .pub file or anything else is refused.
func identityPublicKey(data []byte) (ssh.PublicKey, bool, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case bytes.HasPrefix(trimmed, []byte("PuTTY-User-Key-File-")):
		k, err := ppkPublicKey(trimmed)
		return k, true, err
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN ")):
		signer, err := ssh.ParsePrivateKey(trimmed)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing) && missing.PublicKey != nil:
			return missing.PublicKey, false, nil
		case err != nil:
			return nil, false, errors.New("not a private key wharf can read (want OpenSSH or PEM format, or a PuTTY .ppk)")
		}
		return signer.PublicKey(), false, nil
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey(trimmed); err == nil {
		return nil, false, errors.New("is a public key: give the private key file that was issued (the packet adds its .pub)")
	}
	return nil, false, errors.New("not a private key file (want OpenSSH format, or a PuTTY .ppk)")
}

// ppkPublicKey reads the public key of a PuTTY key file (versions 2 and
// 3): the base64 lines after "Public-Lines: N", which are in the clear
// even in an encrypted file.
func ppkPublicKey(data []byte) (ssh.PublicKey, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Public-Lines:")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 1000 {
			return nil, errors.New("PuTTY key file with a bad Public-Lines count")
		}
		var b64 strings.Builder
		for range n {
			if !sc.Scan() {
				return nil, errors.New("PuTTY key file cut short in its public lines")
			}
			b64.WriteString(strings.TrimSpace(sc.Text()))
		}
		blob, err := base64.StdEncoding.DecodeString(b64.String())
		if err != nil {
			return nil, fmt.Errorf("PuTTY key file: public lines: %w", err)
		}
		k, err := ssh.ParsePublicKey(blob)
		if err != nil {
			return nil, fmt.Errorf("PuTTY key file: public key: %w", err)
		}
		return k, nil
	}
	return nil, errors.New("PuTTY key file without Public-Lines")
}
