package session

import (
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/doctor/pass"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// The one-time identities of `wharf doctor` (package doctor/pass has the
// design and its threats): a "doctor:" name never reaches the user
// directory, and no configured user can have one.

// doctorPerms are what a round trip needs in its scratch home: no mkdir,
// no rename.
const doctorPerms = vfs.PermList | vfs.PermDownload | vfs.PermUpload | vfs.PermOverwrite | vfs.PermDelete

// errNoDoctor is why a doctor name is refused by a gate without a
// Verifier.
var errNoDoctor = fmt.Errorf("%w: doctor passes not accepted here", auth.ErrInvalidCredentials)

// doctorKey decides a key login of a doctor name, as Key does for users:
// a refusal is scored by Close.
func (l *Login) doctorKey(user string, key ssh.PublicKey, fp string) (*auth.Principal, error) {
	g, err := l.doctorGrant(user, func(v *pass.Verifier) (pass.Grant, error) { return v.Key(user, l.addr, key) })
	if err != nil {
		l.mu.Lock()
		l.keyUser, l.keyErr = user, err
		l.mu.Unlock()
		l.logFailure(user, auth.MethodPublicKey, fp, err)
		return nil, ErrLogin
	}
	return l.doctorPrincipal(user, auth.MethodPublicKey, g), nil
}

// doctorPassword decides a password login of a doctor name: a digest
// compare, outside the hashing budget.
func (l *Login) doctorPassword(user, password string) (*auth.Principal, error) {
	g, err := l.doctorGrant(user, func(v *pass.Verifier) (pass.Grant, error) { return v.Password(user, l.addr, password) })
	if err != nil {
		return nil, l.failed(user, auth.MethodPassword, err, true)
	}
	return l.doctorPrincipal(user, auth.MethodPassword, g), nil
}

// doctorGrant runs check, the doctor pass's verification of one method,
// unless the name may not log in here or the gate takes no passes.
func (l *Login) doctorGrant(user string, check func(*pass.Verifier) (pass.Grant, error)) (pass.Grant, error) {
	switch {
	case !l.allowed(user):
		return pass.Grant{}, errNotHere // checked first: a refusal here leaves the pass unused
	case l.g.doctor == nil:
		return pass.Grant{}, errNoDoctor
	}
	g, err := check(l.g.doctor)
	if err != nil {
		return pass.Grant{}, fmt.Errorf("%w: %w", auth.ErrInvalidCredentials, err)
	}
	return g, nil
}

func (l *Login) doctorPrincipal(user, method string, g pass.Grant) *auth.Principal {
	return &auth.Principal{User: user, Home: g.Home, Perms: doctorPerms, Method: method, Fingerprint: g.Fingerprint,
		Protocol: l.proto, Remote: l.addr, MaxUploadSize: pass.MaxUpload}
}
