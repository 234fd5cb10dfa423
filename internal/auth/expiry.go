package auth

import (
	"cmp"
	"slices"
	"time"
)

// Expiry is one credential with an expiry: a key (Fingerprint set) or a
// password (Fingerprint ""). It holds nothing secret.
type Expiry struct {
	User        string
	Fingerprint string // SHA256:... of the key; "" for the password
	Comment     string // the key's comment in the config, if any
	At          time.Time
}

// Password reports whether e is a password's expiry.
func (e Expiry) Password() bool { return e.Fingerprint == "" }

// Expiries returns every credential of an enabled user that has an
// expiry, expired ones included, sorted by expiry, then user and
// fingerprint. Disabled users are left out: nobody logs in as them, so
// their credentials' expiry warns of nothing.
func (d *Directory) Expiries() []Expiry {
	var out []Expiry
	for _, name := range d.names {
		e := d.users[name]
		if e.disabled {
			continue
		}
		for _, k := range e.keys {
			if !k.until.IsZero() {
				out = append(out, Expiry{User: name, Fingerprint: k.fp, Comment: k.comment, At: k.until})
			}
		}
		if e.password != nil && !e.passUntil.IsZero() {
			out = append(out, Expiry{User: name, At: e.passUntil})
		}
	}
	slices.SortFunc(out, func(a, b Expiry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.User, b.User), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// Expiring returns the credentials of Expiries that are still valid at now
// and expire within window: what the daily warning names.
func (d *Directory) Expiring(now time.Time, window time.Duration) []Expiry {
	var out []Expiry
	for _, x := range d.Expiries() {
		if now.Before(x.At) && x.At.Sub(now) <= window {
			out = append(out, x)
		}
	}
	return out
}
