// Package auth decides who may log in. A Directory is built once from the
// configured users (every key, hash and permission parsed and checked up
// front) and then answers VerifyKey and VerifyPassword for both protocols.
package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// ErrInvalidCredentials is the one error a failed login returns, whatever the
// cause, so that the reply (and its timing) never tells an attacker whether
// the user exists. The wrapped detail is for logs only.
var ErrInvalidCredentials = errors.New("invalid credentials")

// ErrKeyExpired and ErrPasswordExpired are in the chain of a login refused
// for a credential past its expires_at (errors.Is), besides
// ErrInvalidCredentials: the client is told nothing more, the log and the
// login_failed event say which key, and when it expired.
var (
	ErrKeyExpired      = errors.New("key expired")
	ErrPasswordExpired = errors.New("password expired")
)

// Login methods, as recorded in Principal.Method.
const (
	MethodPublicKey = "publickey"
	MethodPassword  = "password"
)

// Principal is an authenticated user. Each Verify call returns a new one, so
// callers may keep or change it freely.
type Principal struct {
	User        string // config name
	Home        string // config home, e.g. "/alice"
	Perms       vfs.Perms
	Method      string // MethodPublicKey or MethodPassword
	Fingerprint string // SHA256:... of the key used; "" for password
	Protocol    string // "sftp" or "ftps": what the user logged in over
	Remote      netip.Addr
	// MaxUploadSize caps any file the user writes; 0: no cap.
	MaxUploadSize int64

	// credential identifies the password hash a password login was checked
	// against (see hashID), so that Recheck can tell whether it still holds.
	// A digest, never the hash: a Principal may end up printed.
	credential string
}

// Directory is the set of users allowed to log in. It is immutable after
// NewDirectory and safe for concurrent use; a config reload builds a new one.
type Directory struct {
	users map[string]*entry
	names []string // sorted
	// dummy stands in for the hash of unknown, disabled and password-less
	// users, so that their failed logins cost what a wrong password costs.
	dummy passwordHash
}

type entry struct {
	name      string
	home      string
	perms     vfs.Perms
	disabled  bool
	keys      map[string]keyInfo // ssh wire bytes (key.Marshal()) -> the key's fingerprint and expiry
	password  passwordHash       // nil: password login not configured
	passID    string             // hashID of the configured hash; "" without one
	passUntil time.Time          // password_expires_at; zero: never
	protos    []string           // nil: every protocol
	nets      []netip.Prefix     // allowed_ips; empty: anywhere
	maxUpload int64
}

// keyInfo is what the directory keeps of a configured key.
type keyInfo struct {
	fp      string    // SHA256:...
	until   time.Time // expires_at; zero: never
	comment string    // the mapping's comment, for Expiries
}

// expired reports whether a credential valid until until (zero: forever)
// no longer is at now. A key stops working at the instant written.
func expired(until, now time.Time) bool {
	return !until.IsZero() && !now.Before(until)
}

// allows reports whether the user may log in over proto.
func (e *entry) allows(proto string) bool {
	return e.protos == nil || slices.Contains(e.protos, proto)
}

// from reports whether the user may log in from addr (allowed_ips).
func (e *entry) from(addr netip.Addr) bool {
	if len(e.nets) == 0 {
		return true
	}
	for _, n := range e.nets {
		if n.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// Attempt is one login attempt: who claims to be whom, over what, from where.
type Attempt struct {
	Protocol string // "sftp" or "ftps"
	User     string
	Remote   netip.Addr
	// At is when the attempt is made, against which expiries are
	// checked; zero: now.
	At time.Time
}

func (a Attempt) now() time.Time {
	if a.At.IsZero() {
		return time.Now()
	}
	return a.At
}

// NewDirectory parses every user's keys, password hash and permissions. It
// reports every problem at once: an errors.Join of *config.FieldError, each
// pointing at the file, line and field, and none quoting key material or a
// hash.
func NewDirectory(users []config.User) (*Directory, error) {
	d := &Directory{
		users: make(map[string]*entry, len(users)),
		dummy: dummyHash(),
	}
	var errs []error
	for _, u := range users {
		e, uerrs := newEntry(u)
		errs = append(errs, uerrs...)
		switch {
		case u.Name == "":
			// An empty name would let a client that sends no user name in.
			errs = append(errs, u.Src.Errorf("name", "user name is empty"))
		case d.users[u.Name] != nil:
			errs = append(errs, u.Src.Errorf("name", "duplicate user name %q", u.Name))
		default:
			d.users[u.Name] = e
			d.names = append(d.names, u.Name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(d.names)
	return d, nil
}

// newEntry checks one user. Disabled users are checked too: a broken entry
// should be found when it is written, not when it is enabled.
func newEntry(u config.User) (*entry, []error) {
	var errs []error
	e := &entry{
		name:      u.Name,
		home:      u.Home,
		disabled:  u.Disabled,
		protos:    u.Protocols,
		maxUpload: int64(u.MaxUploadSize),
	}

	// Mirrors vfs.ParsePerms (nil = every permission, [] = none), one name at
	// a time so that each error points at its index.
	e.perms = vfs.PermAll
	if u.Permissions != nil {
		e.perms = 0
		for i, name := range u.Permissions {
			p, err := vfs.ParsePerm(name)
			if err != nil {
				errs = append(errs, u.Src.Errorf(fmt.Sprintf("permissions[%d]", i), "%v", err))
				continue
			}
			e.perms |= p
		}
	}

	for i, c := range u.AllowedIPs {
		n, err := config.ParsePrefix(c)
		if err != nil {
			errs = append(errs, u.Src.Errorf(fmt.Sprintf("allowed_ips[%d]", i), "%v", err))
			continue
		}
		e.nets = append(e.nets, n)
	}

	seen := make(map[string]int, len(u.PublicKeys)) // wire bytes -> index
	for i, pk := range u.PublicKeys {
		field := fmt.Sprintf("public_keys[%d]", i)
		key, err := parseAuthorizedKey(pk.Key)
		if err != nil {
			errs = append(errs, u.Src.Errorf(field, "%v", err))
			continue
		}
		wire := string(key.Marshal())
		if j, dup := seen[wire]; dup {
			errs = append(errs, u.Src.Errorf(field, "same key as public_keys[%d]", j))
			continue
		}
		seen[wire] = i
		if e.keys == nil {
			e.keys = make(map[string]keyInfo, len(u.PublicKeys))
		}
		e.keys[wire] = keyInfo{fp: Fingerprint(key), until: pk.ExpiresAt, comment: pk.Comment}
	}

	if u.PasswordHash != "" {
		h, err := parsePasswordHash(u.PasswordHash)
		if err != nil {
			errs = append(errs, u.Src.Errorf("password_hash", "%v", err))
		} else {
			e.password = h
			e.passID = hashID(u.PasswordHash)
			e.passUntil = u.PasswordExpiresAt
		}
	}
	return e, errs
}

// VerifyKey reports whether user may log in with key. The server has already
// checked the client's signature; this decides whether the key is the user's.
// Every failure wraps ErrInvalidCredentials.
func (d *Directory) VerifyKey(a Attempt, key ssh.PublicKey) (*Principal, error) {
	e := d.users[a.User]
	var wire string
	if key != nil {
		wire = string(key.Marshal())
	}
	var k keyInfo
	var found bool
	if e != nil && key != nil {
		k, found = e.keys[wire]
	}
	switch {
	case e == nil:
		return nil, fmt.Errorf("%w: unknown user", ErrInvalidCredentials)
	case e.disabled:
		return nil, fmt.Errorf("%w: user disabled", ErrInvalidCredentials)
	case key == nil:
		return nil, fmt.Errorf("%w: no key", ErrInvalidCredentials)
	case !found:
		// The fingerprint is public and tells the operator which key was tried.
		return nil, fmt.Errorf("%w: key %s not authorized", ErrInvalidCredentials, Fingerprint(key))
	case expired(k.until, a.now()):
		return nil, fmt.Errorf("%w: %w: %s expired at %s", ErrInvalidCredentials, ErrKeyExpired, k.fp, k.until.UTC().Format(time.RFC3339))
	case !e.allows(a.Protocol):
		return nil, fmt.Errorf("%w: protocol %s not allowed for this user", ErrInvalidCredentials, a.Protocol)
	case !e.from(a.Remote):
		return nil, fmt.Errorf("%w: address %s not in allowed_ips", ErrInvalidCredentials, a.Remote)
	}
	return e.principal(a, MethodPublicKey, k.fp), nil
}

// VerifyPassword reports whether password is user's: PasswordCheck(a)
// verified at once, for callers that need no bound on concurrent checks.
// Every failure wraps ErrInvalidCredentials.
func (d *Directory) VerifyPassword(a Attempt, password string) (*Principal, error) {
	return d.PasswordCheck(a).Verify(password)
}

// PasswordCheck is one password login attempt, prepared: the hash it will
// run is chosen, so that its cost is known before any hashing starts (the
// login gate bounds how much memory concurrent checks hold).
type PasswordCheck struct {
	a      Attempt
	e      *entry
	h      passwordHash
	reason string // why the attempt fails whatever the password; "" if it may succeed
}

// PasswordCheck prepares the check of a password login. Every check runs
// exactly one password hash verification, against a dummy hash when the
// user is unknown, disabled or has no password, so that the time taken does
// not reveal which users exist. (Users whose hashes use other parameters than
// the defaults, or bcrypt, take a different time than the dummy; operators
// who care keep the defaults.)
func (d *Directory) PasswordCheck(a Attempt) *PasswordCheck {
	c := &PasswordCheck{a: a, e: d.users[a.User], h: d.dummy}
	switch {
	case c.e == nil:
		c.reason = "unknown user"
	case c.e.disabled:
		c.reason = "user disabled"
	case c.e.password == nil:
		c.reason = "no password set"
	default:
		c.h = c.e.password
	}
	return c
}

// Cost is the memory, in bytes, that Verify allocates while it runs.
func (c *PasswordCheck) Cost() int64 { return c.h.cost() }

// Verify runs the hash and decides. Every failure wraps
// ErrInvalidCredentials.
func (c *PasswordCheck) Verify(password string) (*Principal, error) {
	ok := c.h.verify([]byte(password))
	if c.reason != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalidCredentials, c.reason)
	}
	if !ok {
		return nil, fmt.Errorf("%w: wrong password", ErrInvalidCredentials)
	}
	// Told only to whoever knows the password: to anyone else an expired
	// password is just a wrong one.
	if expired(c.e.passUntil, c.a.now()) {
		return nil, fmt.Errorf("%w: %w at %s", ErrInvalidCredentials, ErrPasswordExpired, c.e.passUntil.UTC().Format(time.RFC3339))
	}
	// Checked last, after the full hash verification: a refused protocol
	// costs what a wrong password costs.
	if !c.e.allows(c.a.Protocol) {
		return nil, fmt.Errorf("%w: protocol %s not allowed for this user", ErrInvalidCredentials, c.a.Protocol)
	}
	if !c.e.from(c.a.Remote) {
		return nil, fmt.Errorf("%w: address %s not in allowed_ips", ErrInvalidCredentials, c.a.Remote)
	}
	return c.e.principal(c.a, MethodPassword, ""), nil
}

func (e *entry) principal(a Attempt, method, fingerprint string) *Principal {
	p := &Principal{
		Protocol:      a.Protocol,
		Remote:        a.Remote,
		User:          e.name,
		Home:          e.home,
		Perms:         e.perms,
		MaxUploadSize: e.maxUpload,
		Method:        method,
		Fingerprint:   fingerprint,
	}
	if method == MethodPassword {
		p.credential = e.passID
	}
	return p
}

// Users returns the user names, sorted.
func (d *Directory) Users() []string { return slices.Clone(d.names) }

// Len returns the number of users.
func (d *Directory) Len() int { return len(d.names) }
