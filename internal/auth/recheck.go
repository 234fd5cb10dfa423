package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// ErrRevoked is what every Recheck refusal matches (errors.Is): the
// principal logged in under a config that no longer lets it in.
var ErrRevoked = errors.New("access revoked")

// revoked is a Recheck refusal. Its text is the bare reason ("user
// removed"), ready for a log line's reason attribute.
type revoked string

func (r revoked) Error() string        { return string(r) }
func (r revoked) Is(target error) bool { return target == ErrRevoked }

// hashID is an opaque identity of a configured password hash. Comparing two
// of them tells whether the hash changed without keeping the hash (which
// holds the salt an offline guess needs) in a Principal.
func hashID(hash string) string {
	sum := sha256.Sum256([]byte("wharf password hash\x00" + strings.TrimSpace(hash)))
	return hex.EncodeToString(sum[:16])
}

// Recheck decides whether a principal authenticated earlier (against this
// or an older Directory) may keep its session under this one: the user must
// still exist, be enabled, be allowed on p.Protocol and keep its home, and
// the credential it logged in with (the key, or the very same password
// hash) must still be configured. It returns a copy of p with the
// permissions now in force, or an error matching ErrRevoked whose text is
// the reason. A credential past its expiry no longer holds either: expiry
// is checked at login and again at each reload, so a rotation's grace
// shortened to now ends the old key's sessions too. Keys appear in reasons
// only as fingerprints; passwords and hashes never.
func (d *Directory) Recheck(p *Principal) (*Principal, error) {
	return d.recheck(p, time.Now())
}

func (d *Directory) recheck(p *Principal, now time.Time) (*Principal, error) {
	if p == nil {
		return nil, revoked("no principal")
	}
	e := d.users[p.User]
	switch {
	case e == nil:
		return nil, revoked("user removed")
	case e.disabled:
		return nil, revoked("user disabled")
	case !e.allows(p.Protocol):
		return nil, revoked(fmt.Sprintf("protocol %s no longer allowed", p.Protocol))
	case !e.from(p.Remote):
		return nil, revoked(fmt.Sprintf("address %s no longer in allowed_ips", p.Remote))
	case e.home != p.Home:
		// The session's filesystem is rooted at the old home; moving it
		// under a live session would leave the partner writing where the
		// operator no longer looks.
		return nil, revoked(fmt.Sprintf("home changed from %s to %s", p.Home, e.home))
	}
	switch p.Method {
	case MethodPublicKey:
		k, ok := e.key(p.Fingerprint)
		switch {
		case !ok:
			return nil, revoked(fmt.Sprintf("key %s removed", p.Fingerprint))
		case expired(k.until, now):
			return nil, revoked(fmt.Sprintf("key %s expired at %s", p.Fingerprint, k.until.UTC().Format(time.RFC3339)))
		}
	case MethodPassword:
		switch {
		case e.password == nil:
			return nil, revoked("password removed")
		case e.passID != p.credential:
			return nil, revoked("password changed")
		case expired(e.passUntil, now):
			return nil, revoked(fmt.Sprintf("password expired at %s", e.passUntil.UTC().Format(time.RFC3339)))
		}
	default:
		return nil, revoked(fmt.Sprintf("unknown login method %q", p.Method))
	}
	np := *p
	np.Perms = e.perms
	np.MaxUploadSize = e.maxUpload
	return &np, nil
}

// fingerprints returns the fingerprints of the user's keys, sorted.
func (e *entry) fingerprints() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k.fp)
	}
	slices.Sort(out)
	return out
}

// key returns the user's key with fingerprint fp.
func (e *entry) key(fp string) (keyInfo, bool) {
	for _, k := range e.keys {
		if k.fp == fp {
			return k, true
		}
	}
	return keyInfo{}, false
}

// UserChange is what a new Directory changes about one user, in terms safe
// to log: keys as fingerprints, the password only as whether one is set and
// whether it changed. For an added user the Before fields are zero; for a
// removed one only User and Removed are set.
type UserChange struct {
	User           string
	Added, Removed bool

	HomeBefore, HomeAfter         string
	DisabledBefore, DisabledAfter bool
	// KeysAdded and KeysRemoved are fingerprints, sorted. For an added user
	// KeysAdded lists every key.
	KeysAdded, KeysRemoved []string
	// KeysExpiry lists the keys kept whose expires_at changed (a rotation
	// sets them), sorted, each "SHA256:... until TIME" or "SHA256:...
	// never": what a log line shows.
	KeysExpiry []string
	// PasswordBefore and PasswordAfter say whether a password hash is
	// configured; PasswordChanged, that one is before and after but it is
	// not the same hash.
	PasswordBefore, PasswordAfter bool
	PasswordChanged               bool
	// PasswordExpiryBefore and PasswordExpiryAfter are password_expires_at
	// (zero: never).
	PasswordExpiryBefore, PasswordExpiryAfter time.Time
	PermsBefore, PermsAfter                   vfs.Perms
	// Protocols are nil when every protocol is allowed.
	ProtocolsBefore, ProtocolsAfter []string
}

// Diff lists what next changes relative to prev, one UserChange per user
// added, removed or changed, sorted by name. Users identical in both are
// left out, so an empty result means no login decision changed.
func Diff(prev, next *Directory) []UserChange {
	var out []UserChange
	names := slices.Concat(prev.names, next.names)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		a, b := prev.users[name], next.users[name]
		switch {
		case b == nil:
			out = append(out, UserChange{User: name, Removed: true})
		case a == nil:
			c := change(&entry{}, b)
			c.Added = true
			out = append(out, c)
		default:
			if c := change(a, b); !c.same() {
				out = append(out, c)
			}
		}
	}
	return out
}

func change(a, b *entry) UserChange {
	ka, kb := a.fingerprints(), b.fingerprints()
	c := UserChange{
		User:            b.name,
		HomeBefore:      a.home,
		HomeAfter:       b.home,
		DisabledBefore:  a.disabled,
		DisabledAfter:   b.disabled,
		PasswordBefore:  a.password != nil,
		PasswordAfter:   b.password != nil,
		PasswordChanged: a.password != nil && b.password != nil && a.passID != b.passID,

		PasswordExpiryBefore: a.passUntil,
		PasswordExpiryAfter:  b.passUntil,
		PermsBefore:          a.perms,
		PermsAfter:           b.perms,
		ProtocolsBefore:      slices.Clone(a.protos),
		ProtocolsAfter:       slices.Clone(b.protos),
	}
	for _, fp := range kb {
		if !slices.Contains(ka, fp) {
			c.KeysAdded = append(c.KeysAdded, fp)
		}
	}
	for _, fp := range ka {
		if !slices.Contains(kb, fp) {
			c.KeysRemoved = append(c.KeysRemoved, fp)
		}
	}
	for _, fp := range kb {
		old, ok := a.key(fp)
		if now, _ := b.key(fp); ok && !old.until.Equal(now.until) {
			c.KeysExpiry = append(c.KeysExpiry, fp+" "+Until(now.until))
		}
	}
	return c
}

// same reports whether the change changes nothing.
func (c *UserChange) same() bool {
	return c.HomeBefore == c.HomeAfter &&
		c.DisabledBefore == c.DisabledAfter &&
		len(c.KeysAdded) == 0 && len(c.KeysRemoved) == 0 &&
		len(c.KeysExpiry) == 0 &&
		c.PasswordBefore == c.PasswordAfter && !c.PasswordChanged &&
		c.PasswordExpiryBefore.Equal(c.PasswordExpiryAfter) &&
		c.PermsBefore == c.PermsAfter &&
		!c.ProtocolsChanged()
}

// ProtocolsChanged reports whether the set of allowed protocols changed
// (order does not matter; nil, every protocol, differs from any list).
func (c *UserChange) ProtocolsChanged() bool {
	a, b := c.ProtocolsBefore, c.ProtocolsAfter
	if (a == nil) != (b == nil) {
		return true
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return !slices.Equal(slices.Compact(a), slices.Compact(b))
}

// Until is how an expiry reads in a log line: "until 2027-03-01T00:00:00Z",
// or "never" for the zero time.
func Until(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return "until " + t.UTC().Format(time.RFC3339)
}

// FormatProtocols is how a protocols list reads in a log line: "all" for
// nil (every protocol), else the names comma separated.
func FormatProtocols(protos []string) string {
	if protos == nil {
		return "all"
	}
	return strings.Join(protos, ",")
}
