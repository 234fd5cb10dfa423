package api

import (
	"context"

	"github.com/wharf-sftp/wharf/internal/configedit"
)

// Issuer makes the credentials of a partner created without any: the
// createPartner request then carries neither public_keys nor a
// password_hash. Issue adds what the config stores to nu (an
// authorized_keys line, a password hash) and returns what the response
// hands out, this once, by name (a private key, a password): nothing of
// it is kept. Options.Issuer nil: such a partner is created without
// credentials, as `wharf user add NAME --home DIR` creates one.
type Issuer interface {
	Issue(ctx context.Context, nu *configedit.NewUser) (handOut map[string]string, err error)
}
