package config

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Validate checks c and returns every problem at once (up to MaxErrors):
// the errors.Join of *FieldError, each pointing at the line the field was
// written on when c came from Parse, and at line 0 for a Config built in Go
// code.
func (c *Config) Validate() error {
	return JoinErrors(c.validate())
}

func (c *Config) validate() []error {
	src := Source{File: c.File, Lines: c.lines}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf(field, format, args...))
	}

	if c.StateDir == "" {
		add("state_dir", "required")
	}
	if c.ShutdownGrace < 0 {
		add("shutdown_grace", "must not be negative")
	}
	if c.KeyExpiryWarning < 0 {
		add("key_expiry_warning", "must not be negative (0: no warning)")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add("log.level", "unknown level %s (want debug, info, warn or error)", quote(c.Log.Level))
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		add("log.format", "unknown format %s (want text or json)", quote(c.Log.Format))
	}
	if c.SFTP.Listen != "" {
		if msg := checkAddr(c.SFTP.Listen); msg != "" {
			add("sftp.listen", "%s", msg)
		}
	}
	for i, k := range c.SFTP.HostKeys {
		if k == "" {
			add(fmt.Sprintf("sftp.host_keys[%d]", i), "empty path")
		}
	}
	errs = append(errs, c.FTPS.validate(src)...)
	errs = append(errs, c.Limits.validate(src)...)
	errs = append(errs, c.Defender.validate(src)...)
	errs = append(errs, c.SFTP.Legacy.validate(src, c.Users)...)
	errs = append(errs, c.AuditLog.validate(src)...)
	errs = append(errs, c.Admin.validate(src)...)
	errs = append(errs, validateHooks(c.Hooks, src)...)
	errs = append(errs, c.Storage.validate(src)...)
	errs = append(errs, c.Uploads.validate(src)...)
	errs = append(errs, c.ProxyProtocol.validate(src)...)
	errs = append(errs, c.validateState(src)...)
	errs = append(errs, c.validateEventLease(src)...)
	errs = append(errs, c.validateUsersBucket(src)...)

	first := map[string]int{} // user name -> index of its first definition
	for i := range c.Users {
		u := &c.Users[i]
		src := u.Src
		if src.Prefix == "" {
			src.Prefix = fmt.Sprintf("users[%d]", i)
		}
		if src.File == "" {
			src.File = c.File
		}
		errs = append(errs, validateUser(u, src)...)
		if u.Name == "" {
			continue
		}
		j, dup := first[u.Name]
		if !dup {
			first[u.Name] = i
			continue
		}
		if line := c.Users[j].Src.Errorf("name", "").Line; line > 0 {
			errs = append(errs, src.Errorf("name", "duplicate user %s (also defined at line %d)", quote(u.Name), line))
		} else {
			errs = append(errs, src.Errorf("name", "duplicate user %s (also defined as users[%d])", quote(u.Name), j))
		}
	}
	return errs
}

func validateUser(u *User, src Source) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf(field, format, args...))
	}

	switch {
	case u.Name == "":
		add("name", "required")
	case !validName(u.Name):
		add("name", "invalid name %s: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", quote(u.Name))
	}

	switch h := u.Home; {
	case h == "":
		add("home", "required")
	case strings.ContainsRune(h, 0):
		add("home", "contains a NUL byte")
	case !strings.HasPrefix(h, "/"):
		add("home", "must be absolute (start with \"/\"); it is resolved beneath storage.root")
	case slices.Contains(strings.Split(h, "/"), ".."):
		add("home", "must not contain \"..\"")
	case path.Clean(h) != h:
		add("home", "not clean: write %s", quote(path.Clean(h)))
	}

	if h := u.PasswordHash; h != "" && !supportedHash(h) {
		// Never quote the value: an operator may have pasted the password itself.
		add("password_hash", "plaintext or unsupported password hash; store an argon2id or bcrypt hash (see `wharf hash-password`)")
	}

	for i, k := range u.PublicKeys {
		if strings.TrimSpace(k.Key) == "" {
			field := fmt.Sprintf("public_keys[%d]", i)
			if k.Comment != "" || !k.ExpiresAt.IsZero() {
				field += ".key"
			}
			add(field, "empty key")
		}
	}

	if u.Protocols != nil && len(u.Protocols) == 0 {
		add("protocols", "empty: the user could never log in; remove the key to allow every protocol, or set disabled: true")
	}
	for i, p := range u.Protocols {
		if !slices.Contains(Protocols, p) {
			add(fmt.Sprintf("protocols[%d]", i), "unknown protocol %s (want %s)", quote(p), strings.Join(Protocols, " or "))
		}
	}

	for i, c := range u.AllowedIPs {
		if _, err := ParsePrefix(c); err != nil {
			add(fmt.Sprintf("allowed_ips[%d]", i), "%v", err)
		}
	}
	if u.MaxUploadSize < 0 {
		add("max_upload_size", "must not be negative")
	}

	for i, p := range u.Permissions {
		if _, err := vfs.ParsePerm(p); err != nil {
			add(fmt.Sprintf("permissions[%d]", i), "%v", err)
		}
	}
	return errs
}

// Protocols are the names users[].protocols accepts.
var Protocols = []string{"sftp", "ftps"}

func (f *FTPS) validate(src Source) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, src.Errorf("ftps."+field, format, args...))
	}
	for field, addr := range map[string]string{"listen": f.Listen, "implicit_listen": f.ImplicitListen} {
		if addr != "" {
			if msg := checkAddr(addr); msg != "" {
				add(field, "%s", msg)
			}
		}
	}
	if f.PassivePorts != "" {
		if _, _, err := f.PassivePortRange(); err != nil {
			add("passive_ports", "%v", err)
		}
	}
	if f.PublicHost != "" && net.ParseIP(f.PublicHost) == nil {
		add("public_host", "want an IP address, got %s", quote(f.PublicHost))
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		add("cert_file", "cert_file and key_file go together: set both, or neither for a generated certificate")
	}
	if !slices.Contains([]string{"required", "allowed"}, f.TLSSessionReuse) {
		add("tls_session_reuse", "unknown value %s (want required or allowed)", quote(f.TLSSessionReuse))
	}
	if f.PassiveTimeout <= 0 {
		add("passive_timeout", "must be positive, e.g. 30s: a passive port nobody connects to is held until then")
	}
	if f.MaxPassivePerUser < 0 {
		add("max_passive_per_user", "must not be negative (0: a quarter of passive_ports)")
	}
	return errs
}

// PassivePerUser is how many passive listeners one user may hold at once:
// max_passive_per_user, or by default a quarter of passive_ports (at least
// 1), so that one partner's sessions cannot take every port. 0 means no
// bound: without a range the kernel has ports enough.
func (f *FTPS) PassivePerUser() int {
	if f.MaxPassivePerUser > 0 {
		return f.MaxPassivePerUser
	}
	first, last, err := f.PassivePortRange()
	if err != nil || first == 0 {
		return 0
	}
	return max(1, (last-first+1)/4)
}

// PassivePortRange parses passive_ports ("50000-50100"); 0, 0 means the
// kernel picks a port for each passive connection.
func (f *FTPS) PassivePortRange() (first, last int, err error) {
	if f.PassivePorts == "" {
		return 0, 0, nil
	}
	lo, hi, ok := strings.Cut(f.PassivePorts, "-")
	if !ok {
		hi = lo
	}
	first, err1 := strconv.Atoi(strings.TrimSpace(lo))
	last, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || first < 1024 || last > 65535 || first > last {
		return 0, 0, fmt.Errorf("invalid range %s: want FIRST-LAST within 1024-65535, e.g. \"50000-50100\"", quote(f.PassivePorts))
	}
	return first, last, nil
}

func supportedHash(h string) bool {
	for _, prefix := range []string{"$argon2id$", "$2a$", "$2b$", "$2y$"} {
		if strings.HasPrefix(h, prefix) {
			return true
		}
	}
	return false
}

// validName reports whether name matches ^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._@-", rune(c))) {
			return false
		}
	}
	return true
}

// checkAddr returns why addr is not a host:port to listen on, or "".
func checkAddr(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("invalid address %s: want host:port, e.g. \"127.0.0.1:2022\"", quote(addr))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return fmt.Sprintf("invalid port %s: want a number from 0 to 65535", quote(port))
	}
	return ""
}
