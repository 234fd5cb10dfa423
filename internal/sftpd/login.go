package sftpd

import (
	"errors"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/session"
)

// permKey names the principal a successful callback stored, in the
// ssh.Permissions that x/crypto hands back after the handshake.
const permKey = "wharf-principal"

// proto is the protocol name this front end logs in users for.
const proto = "sftp"

// login adapts one connection's session.Login to x/crypto's callbacks.
// x/crypto calls the public key callback for queries as well as for signed
// attempts, so a callback's success is not yet a login: the principal is
// picked only after the handshake, from the Permissions x/crypto reports.
type login struct {
	gate *session.Login

	mu         sync.Mutex
	principals map[string]*auth.Principal
}

func newLogin(l *session.Login) *login {
	return &login{gate: l, principals: make(map[string]*auth.Principal)}
}

func (l *login) accept(p *auth.Principal) *ssh.Permissions {
	// x/crypto caches callback results per (user, key), so the name must
	// include the user: one key may be accepted for two users in a row.
	key := p.User + "\x00" + p.Method + "\x00" + p.Fingerprint
	l.mu.Lock()
	l.principals[key] = p
	l.mu.Unlock()
	return &ssh.Permissions{Extensions: map[string]string{permKey: key}}
}

func (l *login) principal(perms *ssh.Permissions) *auth.Principal {
	if perms == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.principals[perms.Extensions[permKey]]
}

func (l *login) publicKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	p, err := l.gate.Key(c.User(), key)
	if err != nil {
		return nil, err
	}
	return l.accept(p), nil
}

func (l *login) password(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	p, err := l.gate.Password(c.User(), string(password))
	if err != nil {
		return nil, err
	}
	return l.accept(p), nil
}

// keyboardInteractive asks for the password once: FileZilla, WinSCP and
// PuTTY often prefer this method to plain "password".
func (l *login) keyboardInteractive(c ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	answers, err := client("", "", []string{"Password: "}, []bool{false})
	if err != nil {
		return nil, err
	}
	if len(answers) != 1 {
		return nil, errors.New("no answer to the password prompt")
	}
	return l.password(c, []byte(answers[0]))
}

// serverConfig builds the SSH configuration for one connection, bound to
// that connection's login state.
func (s *Server) serverConfig(l *login) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion:               "SSH-2.0-wharf", // no version number: it only helps attackers
		PublicKeyCallback:           l.publicKey,
		PasswordCallback:            l.password,
		KeyboardInteractiveCallback: l.keyboardInteractive,
		MaxAuthTries:                6,
	}
	for _, k := range s.signers {
		cfg.AddHostKey(k)
	}
	s.cfg.Algorithms.apply(cfg)
	return cfg
}
