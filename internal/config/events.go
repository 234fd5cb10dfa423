package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// Uploads configures how uploads land.
type Uploads struct {
	// Atomic writes each upload under a hidden temporary name and renames
	// it to its final name only when the client closes it successfully.
	Atomic bool `yaml:"atomic"`
	// Fsync flushes each upload and its directory to disk before the
	// client's reply and the upload event. Off trades that for speed.
	Fsync bool `yaml:"fsync"`
	// PartialTTL is how long a broken upload's partial waits for a resume;
	// on s3, a start-up sweep aborts older multipart uploads.
	PartialTTL time.Duration `yaml:"partial_ttl"`
}

func (u *Uploads) validate(src Source) []error {
	if u.PartialTTL <= 0 {
		return []error{src.Errorf("uploads.partial_ttl", "must be positive")}
	}
	return nil
}

// AuditLog is the JSON-lines record of every event, apart from the
// diagnostic log.
type AuditLog struct {
	Path       string   `yaml:"path"` // "-" for stdout; empty: off
	MaxSize    ByteSize `yaml:"max_size"`
	MaxBackups int      `yaml:"max_backups"`
}

// Admin is the HTTP listener for /metrics, /healthz and /readyz.
type Admin struct {
	Listen    string `yaml:"listen"`     // empty: off
	TokenFile string `yaml:"token_file"` // bearer token for all but /healthz; empty: none
	// Pprof serves Go's profiler under /debug/pprof/, behind the token.
	// Off by default: a profile costs CPU and shows internals.
	Pprof bool `yaml:"pprof"`
	// TLS serves the admin listener (metrics, API, console) over TLS with
	// the FTPS certificate: ftps.cert_file and key_file, else the
	// self-signed one in state_dir (or the fleet's), as FTPS would.
	TLS bool `yaml:"tls"`
	// Users, APIKeys and RecentEvents are the admin API's (admin_access.go).
	// A reload applies Users and APIKeys (reload:"live", see Restart).
	Users        []AdminUser `yaml:"users" reload:"live"`
	APIKeys      []APIKey    `yaml:"api_keys" reload:"live"`
	RecentEvents int         `yaml:"recent_events"`
}

// Timeouts of hooks that set none: one webhook request, one run of a
// command.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultCommandTimeout = 60 * time.Second
)

// Hook delivers matching events to a webhook or a command.
type Hook struct {
	Name    string       `yaml:"name"`
	Events  []string     `yaml:"events"` // empty: every event type
	Paths   []string     `yaml:"paths"`  // globs on the user-visible path; empty: every path
	Webhook *Webhook     `yaml:"webhook"`
	Command *HookCommand `yaml:"command"`
}

// Webhook POSTs the event as JSON, signed with HMAC-SHA256.
type Webhook struct {
	URL        string        `yaml:"url"`
	SecretFile string        `yaml:"secret_file"`
	Timeout    time.Duration `yaml:"timeout"`
}

// HookCommand runs a program (never through a shell) with the event on stdin.
type HookCommand struct {
	Argv    []string      `yaml:"argv"`
	Timeout time.Duration `yaml:"timeout"`
}

// EventTypes are the names hooks[].events accepts.
var EventTypes = []string{"upload", "download", "delete", "rename", "mkdir", "rmdir", "login", "login_failed", "checksum",
	// Changes made through the admin API (package api).
	"user.created", "user.changed", "user.deleted", "key.added", "key.removed", "key.rotated", "session.closed", "ban.lifted"}

func (a *AuditLog) validate(src Source) []error {
	var errs []error
	if a.MaxSize < 0 {
		errs = append(errs, src.Errorf("audit_log.max_size", "must not be negative"))
	}
	if a.MaxBackups < 0 {
		errs = append(errs, src.Errorf("audit_log.max_backups", "must not be negative"))
	}
	return errs
}

func (a *Admin) validate(src Source) []error {
	errs := a.validateAccess(src)
	if a.Listen == "" {
		return errs
	}
	if msg := checkAddr(a.Listen); msg != "" {
		return append(errs, src.Errorf("admin.listen", "%s", msg))
	}
	if a.Pprof && a.TokenFile == "" && !loopbackAddr(a.Listen) {
		// Profiles and goroutine dumps show paths, user names and memory.
		return append(errs, src.Errorf("admin.pprof", "needs admin.token_file when admin.listen is not a loopback address"))
	}
	return errs
}

func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func validateHooks(hooks []Hook, src Source) []error {
	var errs []error
	names := map[string]int{}
	for i, h := range hooks {
		f := func(field string) string { return fmt.Sprintf("hooks[%d].%s", i, field) }
		switch {
		case h.Name == "":
			errs = append(errs, src.Errorf(f("name"), "required"))
		case names[h.Name] > 0:
			errs = append(errs, src.Errorf(f("name"), "duplicate hook %s", quote(h.Name)))
		}
		names[h.Name]++
		for j, e := range h.Events {
			if !slices.Contains(EventTypes, e) {
				errs = append(errs, src.Errorf(fmt.Sprintf("hooks[%d].events[%d]", i, j), "unknown event %s", quote(e)))
			}
		}
		for j, p := range h.Paths {
			if _, err := path.Match(p, "/"); err != nil || p == "" || p[0] != '/' {
				errs = append(errs, src.Errorf(fmt.Sprintf("hooks[%d].paths[%d]", i, j), "invalid glob %s: want an absolute pattern such as \"/*/inbox/**\"", quote(p)))
			}
		}
		switch {
		case (h.Webhook == nil) == (h.Command == nil):
			errs = append(errs, src.Errorf(f("name"), "a hook has exactly one of webhook or command"))
		case h.Webhook != nil:
			u, err := url.Parse(h.Webhook.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, src.Errorf(f("webhook.url"), "want an http:// or https:// URL"))
			}
			if h.Webhook.Timeout < 0 {
				errs = append(errs, src.Errorf(f("webhook.timeout"), "must not be negative"))
			}
		case h.Command != nil:
			if len(h.Command.Argv) == 0 || h.Command.Argv[0] == "" {
				errs = append(errs, src.Errorf(f("command.argv"), "required: the program and its arguments"))
			} else if !path.IsAbs(h.Command.Argv[0]) {
				errs = append(errs, src.Errorf(f("command.argv[0]"), "want an absolute path: hooks never search PATH"))
			}
			for j, arg := range h.Command.Argv {
				// exec refuses such an argument, so the hook would fail
				// (and be retried) on every event.
				if strings.ContainsRune(arg, 0) {
					errs = append(errs, src.Errorf(f(fmt.Sprintf("command.argv[%d]", j)), "contains a NUL byte, which no program argument can hold"))
				}
			}
			if h.Command.Timeout < 0 {
				errs = append(errs, src.Errorf(f("command.timeout"), "must not be negative"))
			}
		}
	}
	return errs
}
