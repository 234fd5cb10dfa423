// Package config holds wharf's configuration schema as plain structs, and the
// strict parser and validator that turn YAML into them.
package config

import (
	"fmt"
	"time"
)

// Config is one wharf configuration file. The YAML keys are a contract:
// later versions extend them and never rename them.
//
// Its settings sit in two groups, inlined into the one YAML mapping: Restart,
// read once when the daemon starts, and Live, which a reload applies. A new
// key goes into one of them, never into Config itself: the group it is in is
// what decides whether a reload applies it or reports it as needing a
// restart (TestSettingsClassified fails on a setting outside both).
type Config struct {
	Restart `yaml:",inline"`
	Live    `yaml:",inline"`

	// File is the path the config was loaded from ("" when parsed from bytes).
	File string `yaml:"-"`

	// lines maps a field path ("sftp.listen", "users[1].home") to the line it
	// was written on, so that Validate can point at the file. Nil for a Config
	// built in Go code: its errors then carry line 0.
	lines map[string]int
}

// Restart holds the settings that only a restart applies: what the daemon
// builds once at start from them (listeners, host keys, storage, the
// defender, the event queue) is not rebuilt by a reload. A reload that
// changes one keeps the value in force and logs its key as needing a
// restart (see Changed). A new key belongs here unless the code that uses
// it reads the config in force again on every use.
//
// One exception, for keys the schema nests in a restart-only mapping: a
// field tagged `reload:"live"` is applied by a reload all the same
// (Reloaded). admin.users and admin.api_keys are such: they sit under
// admin beside its listener, and the API and console take a new version
// while they serve.
type Restart struct {
	StateDir      string        `yaml:"state_dir"`
	Log           Log           `yaml:"log"`
	SFTP          SFTP          `yaml:"sftp"`
	FTPS          FTPS          `yaml:"ftps"`
	Storage       Storage       `yaml:"storage"`
	Limits        Limits        `yaml:"limits"`
	Defender      Defender      `yaml:"defender"`
	Uploads       Uploads       `yaml:"uploads"`
	AuditLog      AuditLog      `yaml:"audit_log"`
	Admin         Admin         `yaml:"admin"`
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol"`
	Hooks         []Hook        `yaml:"hooks"`
	// StateURL (s3://BUCKET/PREFIX/) is what a fleet of daemons shares:
	// host keys, the self-signed FTPS certificate, bans (state.go). Empty:
	// all of it in state_dir or in memory, as on a single daemon.
	StateURL string `yaml:"state_url"`
	// UsersPoll is how often every daemon lists a bucket users_dir; 0:
	// DefaultUsersPoll.
	UsersPoll time.Duration `yaml:"users_poll"`
	// EventLease is, with state_url, how long a daemon's hold on a hook
	// delivery lasts before another daemon may take it over (state.go);
	// 0: DefaultEventLease.
	EventLease time.Duration `yaml:"event_lease"`
}

// Live holds the settings a reload applies while the daemon runs: the
// users (the next login sees them, and open sessions are reconciled with
// them) and how long a shutdown drains.
type Live struct {
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	Users         []User        `yaml:"users"`
	// UsersDir is a folder of *.yaml files, one user each (the fields of
	// one users entry), for configuration management that drops a file per
	// partner, or a folder of a bucket, s3://BUCKET/PREFIX/, of such
	// objects (fleet_users.go). Empty: none.
	UsersDir string `yaml:"users_dir"`
	// KeyExpiryWarning is how far ahead a key or password expiry is
	// logged, once a day; 0: never.
	KeyExpiryWarning time.Duration `yaml:"key_expiry_warning"`
}

// Default returns the configuration an empty file means. Code that builds a
// Config by hand (tests, embedders) should start from it, so that Validate
// only sees the fields it sets.
func Default() *Config {
	return &Config{
		Restart: Restart{
			StateDir: "./var/state",
			Log:      Log{Level: "info", Format: "text"},
			SFTP:     SFTP{Listen: "127.0.0.1:2022"},
			FTPS:     FTPS{PassivePorts: "50000-50100", TLSSessionReuse: "required", PassiveTimeout: 30 * time.Second},
			Limits:   DefaultLimits(),
			Defender: DefaultDefender(),
			Uploads:  Uploads{Atomic: true, Fsync: true, PartialTTL: partialTTLDefault},
			AuditLog: AuditLog{MaxSize: 100 << 20, MaxBackups: 10},
			Storage:  Storage{Backend: "local", Root: "./var/data", S3: DefaultS3()},
		},
		Live: Live{ShutdownGrace: 30 * time.Second, KeyExpiryWarning: DefaultKeyExpiryWarning},
	}
}

// Log selects the diagnostic log's level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// SFTP configures the SSH/SFTP listener.
type SFTP struct {
	Listen   string   `yaml:"listen"`    // empty: no SFTP listener
	HostKeys []string `yaml:"host_keys"` // private key paths; empty: generated in state_dir
	// Algorithm lists; empty: wharf's safe default set.
	KexAlgorithms []string `yaml:"kex_algorithms"`
	Ciphers       []string `yaml:"ciphers"`
	MACs          []string `yaml:"macs"`
	// Legacy is an optional extra listener with its own (weaker) algorithms
	// for old appliances, so the main listener never has to offer them.
	Legacy Legacy `yaml:"legacy"`
}

// FTPS configures the FTP-over-TLS listeners. TLS is always required.
type FTPS struct {
	Listen         string `yaml:"listen"`          // explicit FTPS (AUTH TLS); empty: none
	ImplicitListen string `yaml:"implicit_listen"` // implicit FTPS, e.g. ":990"; empty: none
	PassivePorts   string `yaml:"passive_ports"`   // "50000-50100"; "" lets the kernel choose
	PublicHost     string `yaml:"public_host"`     // IP announced for passive data connections
	CertFile       string `yaml:"cert_file"`       // empty: self-signed certificate in state_dir
	KeyFile        string `yaml:"key_file"`
	// TLSSessionReuse is "required" (a data connection must resume the
	// control connection's TLS session) or "allowed".
	TLSSessionReuse string `yaml:"tls_session_reuse"`
	// PassiveTimeout closes a passive data listener nobody connected to.
	PassiveTimeout time.Duration `yaml:"passive_timeout"`
	// MaxPassivePerUser bounds the passive listeners one user holds at once
	// over all their sessions; 0: a quarter of passive_ports, at least 1
	// (no bound when the kernel picks the ports). See PassivePerUser.
	MaxPassivePerUser int `yaml:"max_passive_per_user"`
}

// User is one account. Secrets are stored as hashes only.
type User struct {
	Name string `yaml:"name"`
	Home string `yaml:"home"`
	// PublicKeys are the user's keys: each an authorized_keys line, or a
	// mapping with the line and, optionally, a comment and an expiry.
	PublicKeys   []PublicKey `yaml:"public_keys"`
	PasswordHash string      `yaml:"password_hash"`
	// PasswordExpiresAt, if set, is when the password stops working.
	PasswordExpiresAt time.Time `yaml:"password_expires_at"`
	// Permissions is nil when the key is absent (every permission) and
	// empty when the operator wrote [] (none).
	Permissions []string `yaml:"permissions"`
	Disabled    bool     `yaml:"disabled"`
	// Protocols the user may log in with; nil (absent) means all.
	Protocols []string `yaml:"protocols"`
	// AllowedIPs are CIDRs (or single addresses) the user may log in from;
	// empty: anywhere.
	AllowedIPs []string `yaml:"allowed_ips"`
	// MaxUploadSize caps the size of any file the user writes; 0: no cap.
	MaxUploadSize ByteSize `yaml:"max_upload_size"`

	// Where this entry was written, so that checks made after parsing (key and
	// hash syntax, in package auth) can still point at file, line and field.
	Src Source `yaml:"-"`
}

// PublicKey is one of a user's keys. In YAML it is either the
// authorized_keys line alone or a mapping:
//
//	public_keys:
//	  - ssh-ed25519 AAAA... ops@acme
//	  - {key: "ssh-ed25519 AAAA...", comment: "ETL server", expires_at: 2027-03-01T00:00:00Z}
type PublicKey struct {
	Key     string `yaml:"key"` // the authorized_keys line
	Comment string `yaml:"comment"`
	// ExpiresAt, if set, is when the key stops working.
	ExpiresAt time.Time `yaml:"expires_at"`
}

// Keys makes PublicKeys of authorized_keys lines, none expiring.
func Keys(lines ...string) []PublicKey {
	out := make([]PublicKey, len(lines))
	for i, l := range lines {
		out[i] = PublicKey{Key: l}
	}
	return out
}

// Lines returns the authorized_keys lines of keys.
func Lines(keys []PublicKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Key
	}
	return out
}

// Source locates a YAML mapping in its file.
type Source struct {
	File   string         // "" when parsed from bytes
	Prefix string         // field path of the mapping, e.g. "users[2]"
	Lines  map[string]int // key ("name", "public_keys[1]") -> line; "" -> the mapping itself
}

// Errorf returns a FieldError for one field of the mapping, e.g.
// u.Src.Errorf("public_keys[1]", "not an authorized_keys line").
func (s Source) Errorf(field, format string, args ...any) *FieldError {
	line, ok := s.Lines[field]
	if !ok {
		// "public_keys[1]" absent: try "public_keys", then the mapping itself.
		for i := len(field) - 1; i > 0; i-- {
			if field[i] == '[' || field[i] == '.' {
				if l, ok := s.Lines[field[:i]]; ok {
					line = l
					break
				}
			}
		}
		if line == 0 {
			line = s.Lines[""]
		}
	}
	full := field
	if s.Prefix != "" {
		full = s.Prefix + "." + field
	}
	return &FieldError{File: s.File, Line: line, Field: full, Msg: fmt.Sprintf(format, args...)}
}

// FieldError is one problem in a configuration file.
type FieldError struct {
	File  string // "" when parsed from bytes
	Line  int    // 1-based; 0 when unknown
	Field string // dotted path, e.g. "users[0].password_hash"
	Msg   string
}

func (e *FieldError) Error() string {
	loc := e.File
	if loc == "" {
		loc = "config"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

// MaxErrors is how many problems an error from this package lists; the
// rest are counted in a *MoreErrors. A file of garbage yields a page, not
// a flood of log lines.
const MaxErrors = 50

// MoreErrors stands for the problems found beyond the first MaxErrors.
type MoreErrors struct{ N int }

func (e *MoreErrors) Error() string {
	if e.N == 1 {
		return "and 1 more problem"
	}
	return fmt.Sprintf("and %d more problems", e.N)
}

// Errorf returns a FieldError for a top-level field path ("sftp.ciphers[1]")
// pointing at the line it was written on, for checks made outside this
// package (algorithm names are known to the SSH library, not here).
func (c *Config) Errorf(field, format string, args ...any) *FieldError {
	return Source{File: c.File, Lines: c.lines}.Errorf(field, format, args...)
}
