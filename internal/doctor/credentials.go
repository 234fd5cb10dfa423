package doctor

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/config"
)

// credential is one way a user logs in, and when it stops working.
type credential struct {
	what    string // "key SHA256:..." or "password"
	key     bool
	expires time.Time // zero: never
}

// checkCredentials: no enabled user has a key or password that expired,
// or that expires within ExpiryWarning. A user left with nothing that
// works (now, or after the window) fails; one whose other credentials go
// on (a rotation's overlap, a leftover key) is a warning.
func (r *runner) checkCredentials() {
	start := time.Now()
	now := r.o.Now()
	horizon := now.Add(r.o.ExpiryWarning)
	users, keys, reported := 0, 0, 0
	for _, u := range r.cfg.Users {
		if u.Disabled {
			continue
		}
		users++
		keys += len(u.PublicKeys)
		creds := credentialsOf(u)
		var expired, soon []credential
		lasting := 0
		for _, c := range creds {
			switch {
			case c.expires.IsZero() || c.expires.After(horizon):
				lasting++
			case !c.expires.After(now):
				expired = append(expired, c)
			default:
				soon = append(soon, c)
			}
		}
		if len(expired)+len(soon) == 0 {
			continue
		}
		reported++
		var parts []string
		for _, c := range expired {
			parts = append(parts, fmt.Sprintf("%s expired on %s (%s ago)", c.what, day(c.expires), ago(now.Sub(c.expires))))
		}
		for _, c := range soon {
			parts = append(parts, fmt.Sprintf("%s expires on %s (in %s)", c.what, day(c.expires), ago(c.expires.Sub(now))))
		}
		what := strings.Join(parts, "; ")
		res := Result{Check: CheckCredentials, Target: u.Name}
		switch {
		case lasting == 0 && len(soon) == 0:
			res.Status = Fail
			res.Message = u.Name + " cannot log in any more: " + what
			res.Fix = renewFix(u.Name, append(expired, soon...))
		case lasting == 0:
			res.Status = Fail
			res.Message = fmt.Sprintf("%s will be locked out: %s, and nothing else of theirs lasts beyond %d days", u.Name, what, int(r.o.ExpiryWarning.Hours()/24))
			res.Fix = renewFix(u.Name, append(expired, soon...))
		case len(soon) > 0:
			res.Status = Warn
			res.Message = what + "; " + u.Name + " has other credentials that go on"
			res.Fix = "make sure " + u.Name + " has switched to the newer credential before then (the daemon's login lines name the key fingerprint used)"
		default:
			res.Status = Warn
			res.Message = what + "; " + u.Name + " logs in with the others"
			res.Fix = removeFix(u.Name, expired)
		}
		r.add(start, res)
	}
	if reported == 0 {
		r.add(start, Result{Check: CheckCredentials, Status: OK,
			Message: fmt.Sprintf("%d enabled users, %d keys: nothing expired or expiring within %d days", users, keys, int(r.o.ExpiryWarning.Hours()/24))})
	}
}

func credentialsOf(u config.User) []credential {
	var out []credential
	for i, k := range u.PublicKeys {
		what := fmt.Sprintf("public_keys[%d]", i)
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Key)); err == nil {
			what = "key " + ssh.FingerprintSHA256(pub)
		}
		if k.Comment != "" {
			what += " (" + k.Comment + ")"
		}
		out = append(out, credential{what: what, key: true, expires: k.ExpiresAt})
	}
	if u.PasswordHash != "" {
		out = append(out, credential{what: "password", expires: u.PasswordExpiresAt})
	}
	return out
}

// renewFix is the command that gives a user a credential that works.
func renewFix(user string, creds []credential) string {
	for _, c := range creds {
		if c.key {
			return "rotate it: wharf user key rotate " + user + " --generate-key (the old key keeps working for --grace), then send " + user + " the new key"
		}
	}
	return "set a new password: wharf user passwd " + user + " --generate-password, then send it to " + user
}

// removeFix is the command that drops what expired.
func removeFix(user string, expired []credential) string {
	for _, c := range expired {
		if fp, ok := strings.CutPrefix(c.what, "key "); ok {
			fp, _, _ = strings.Cut(fp, " ")
			return "remove it: wharf user key remove " + user + " " + fp
		}
	}
	return "remove the expired password: edit " + user + "'s password_hash and password_expires_at out of the config"
}
