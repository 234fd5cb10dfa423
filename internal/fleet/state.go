// Package fleet is what the daemons of a fleet share through one folder of
// a bucket, state_url: their identity (the host keys and the self-signed
// FTPS certificate, generated once by whichever daemon starts first) and
// their bans. It is built on s3store.Objects; the daemon wires it in.
//
// The folder holds private keys: only the daemons' credentials may read
// it (see the README's "Running a fleet").
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/wharf-sftp/wharf/internal/s3store"
)

// identityDir holds the fleet's host keys and certificate.
const identityDir = "identity/"

// State is a fleet's shared folder.
type State struct {
	obj *s3store.Objects
}

// New returns the state kept in obj's folder.
func New(obj *s3store.Objects) *State { return &State{obj: obj} }

// URL is the folder's s3:// URL, for messages.
func (s *State) URL() string { return s.obj.URL() }

// Ensure returns the object identity/NAME. When there is none it creates
// it with gen's result, create-only (If-None-Match: *): of daemons
// starting at once on an empty folder, one writes and the others, whose
// create fails, read the winner's. So every daemon gets the same bytes,
// and gen (an RSA key takes a while) runs only when nothing is there. It
// is sftpd.Shared and ftpd.Shared.
func (s *State) Ensure(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	name = identityDir + name
	data, _, err := s.obj.Get(ctx, name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	fresh, err := gen()
	if err != nil {
		return nil, err
	}
	_, err = s.obj.Create(ctx, name, fresh)
	switch {
	case err == nil:
		return fresh, nil
	case errors.Is(err, s3store.ErrChanged):
		// Another daemon created it between our read and our write.
		data, _, err := s.obj.Get(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("read the identity another daemon created: %w", err)
		}
		return data, nil
	default:
		return nil, err
	}
}
