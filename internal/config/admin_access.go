package config

import (
	"fmt"
	"slices"
)

// Who may use the admin API (and, next, the web console) besides the
// bearer token of admin.token_file, and how many recent events the API
// keeps. Secrets are hashes only, made with `wharf hash-password` like a
// user's password_hash; package auth parses them fully (daemon.Check), this
// file checks the rest.

// AdminUser is one entry of admin.users: a person who logs in to the web
// console with a password.
type AdminUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
}

// APIKey is one entry of admin.api_keys: a secret presented as a bearer
// token, stored as its hash, with what it may do.
type APIKey struct {
	Name    string `yaml:"name"`
	KeyHash string `yaml:"key_hash"`
	Scope   string `yaml:"scope"` // ScopeRead | ScopeAdmin
}

// API key scopes: read may call what only reads (GET), admin everything.
const (
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// APIScopes are the names admin.api_keys[].scope accepts.
var APIScopes = []string{ScopeRead, ScopeAdmin}

// TokenAdmin is the name events give the bearer of admin.token_file; no
// admin user or API key may take it.
const TokenAdmin = "token"

// DefaultRecentEvents is how many events the admin API keeps in memory when
// admin.recent_events is not set; MaxRecentEvents bounds the setting (an
// event is a few hundred bytes).
const (
	DefaultRecentEvents = 10_000
	MaxRecentEvents     = 1_000_000
)

// RecentEventsOrDefault is admin.recent_events, or DefaultRecentEvents.
func (a *Admin) RecentEventsOrDefault() int {
	if a.RecentEvents > 0 {
		return a.RecentEvents
	}
	return DefaultRecentEvents
}

func (a *Admin) validateAccess(src Source) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf(field, format, args...))
	}
	if a.RecentEvents < 0 {
		add("admin.recent_events", "must not be negative (0: %d)", DefaultRecentEvents)
	} else if a.RecentEvents > MaxRecentEvents {
		add("admin.recent_events", "%d is above %d: the events are kept in memory", a.RecentEvents, MaxRecentEvents)
	}
	// One namespace for both lists: events name the admin who made a
	// change, and a name must say who that was.
	seen := map[string]string{TokenAdmin: "the bearer of admin.token_file"}
	name := func(field, n string) {
		switch {
		case n == "":
			add(field, "required")
		case !validName(n):
			add(field, "invalid name %s: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", quote(n))
		case seen[n] != "":
			add(field, "duplicate admin name %s (also %s): events name the admin who made a change", quote(n), seen[n])
		default:
			seen[n] = field[:len(field)-len(".name")]
		}
	}
	hash := func(field, h string) {
		switch {
		case h == "":
			add(field, "required: a hash made with `wharf hash-password`")
		case !supportedHash(h):
			// Never quote the value: it may be the secret itself.
			add(field, "plaintext or unsupported hash; store an argon2id or bcrypt hash (see `wharf hash-password`)")
		}
	}
	for i, u := range a.Users {
		f := fmt.Sprintf("admin.users[%d].", i)
		name(f+"name", u.Name)
		hash(f+"password_hash", u.PasswordHash)
	}
	for i, k := range a.APIKeys {
		f := fmt.Sprintf("admin.api_keys[%d].", i)
		name(f+"name", k.Name)
		hash(f+"key_hash", k.KeyHash)
		switch {
		case k.Scope == "":
			add(f+"scope", "required: read (what only reads) or admin (everything)")
		case !slices.Contains(APIScopes, k.Scope):
			add(f+"scope", "unknown scope %s (want read or admin)", quote(k.Scope))
		}
	}
	return errs
}
