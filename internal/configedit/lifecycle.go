package configedit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
)

// The lifecycle of credentials: keys added with a comment or an expiry,
// rotations that give the keys a user had an expiry, passwords with one.
// A key without comment or expiry is written as its authorized_keys line
// alone, as before; with either, as the mapping form, one line each:
//
//	- {key: "ssh-ed25519 AAAA... acme", comment: "ETL server", expires_at: "2027-03-01T00:00:00Z"}

// KeyInfo is one key as List reports it.
type KeyInfo struct {
	Fingerprint string    `json:"fingerprint"`
	Comment     string    `json:"comment,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// KeyExpiry is a key a rotation gave an expiry, and the expiry now in
// force (earlier than the rotation's when the key already had one).
type KeyExpiry struct {
	Fingerprint string
	ExpiresAt   time.Time
}

// keyNode is the list item of k: its line alone, or the mapping form when
// it has a comment or an expiry.
func keyNode(k config.PublicKey) *yaml.Node {
	if k.Comment == "" && k.ExpiresAt.IsZero() {
		return str(k.Key)
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	add := func(name, value string) {
		v := str(value)
		v.Style = yaml.DoubleQuotedStyle
		m.Content = append(m.Content, str(name), v)
	}
	add("key", k.Key)
	if k.Comment != "" {
		add("comment", k.Comment)
	}
	if !k.ExpiresAt.IsZero() {
		add("expires_at", config.FormatTime(k.ExpiresAt))
	}
	return m
}

// setKeyExpiry gives item i of the public_keys list seq the expiry until:
// a line becomes the mapping form (keeping its comments and quoting), a
// mapping gets or changes its expires_at.
func setKeyExpiry(seq *yaml.Node, i int, until time.Time) {
	item := seq.Content[i]
	if item.Kind == yaml.AliasNode && item.Alias != nil {
		item = detach(item.Alias)
		seq.Content[i] = item
	}
	ts := config.FormatTime(until)
	if item.Kind == yaml.MappingNode {
		setScalar(item, "expires_at", "!!str", ts)
		if v := item.Content[lookup(item, "expires_at")+1]; v.Style == 0 {
			v.Style = yaml.DoubleQuotedStyle
		}
		return
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle,
		HeadComment: item.HeadComment, LineComment: item.LineComment, FootComment: item.FootComment}
	line := *item
	line.HeadComment, line.LineComment, line.FootComment = "", "", ""
	if line.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || line.Style == 0 {
		line.Style = yaml.DoubleQuotedStyle // a plain line may hold ", " or ": ", which a flow mapping cannot
	}
	exp := str(ts)
	exp.Style = yaml.DoubleQuotedStyle
	m.Content = []*yaml.Node{str("key"), &line, str("expires_at"), exp}
	seq.Content[i] = m
}

// AddPublicKey appends a key to a user's public_keys, in the mapping form
// when it has a comment or an expiry.
func (e *Editor) AddPublicKey(name string, k config.PublicKey) (Result, error) {
	if err := checkPublicKey(k); err != nil {
		return Result{}, err
	}
	fp := fingerprint(k.Key)
	return e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		if slices.ContainsFunc(u.PublicKeys, func(have config.PublicKey) bool { return fingerprint(have.Key) == fp }) {
			return false, fmt.Errorf("%w: user %q already has %s", ErrDuplicateKey, name, fp)
		}
		seq, err := seqFor(m, "public_keys")
		if err != nil {
			return false, err
		}
		appendItem(seq, keyNode(k))
		u.PublicKeys = append(slices.Clone(u.PublicKeys), k)
		return true, nil
	})
}

// checkPublicKey checks a key to add: its line as CheckKey does, and a
// comment of one line.
func checkPublicKey(k config.PublicKey) error {
	if err := CheckKey(k.Key); err != nil {
		return err
	}
	if strings.ContainsAny(k.Comment, "\r\n") {
		return fmt.Errorf("%w: comment: must be one line", ErrInvalid)
	}
	return nil
}

// RotateKeys adds keys to a user and gives every key the user had before
// an expiry of until, so that old and new keys both work until then and
// the old ones stop by themselves. A key that already expires sooner
// keeps its expiry. until is rounded up to the second. It returns the keys
// it gave an expiry, with the expiry
// each now has. At least one key must be added, and none may be one the
// user has.
func (e *Editor) RotateKeys(name string, add []config.PublicKey, until time.Time) (Result, []KeyExpiry, error) {
	if len(add) == 0 {
		return Result{}, nil, fmt.Errorf("%w: no new key to rotate to", ErrInvalid)
	}
	fps := make([]string, len(add))
	for i, k := range add {
		if err := checkPublicKey(k); err != nil {
			return Result{}, nil, err
		}
		fps[i] = fingerprint(k.Key)
		if slices.Contains(fps[:i], fps[i]) {
			return Result{}, nil, fmt.Errorf("%w: the same new key given twice (%s)", ErrInvalid, fps[i])
		}
	}
	until = config.CeilSecond(until)
	var expiring []KeyExpiry
	res, err := e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		for _, have := range u.PublicKeys {
			if fp := fingerprint(have.Key); slices.Contains(fps, fp) {
				return false, fmt.Errorf("%w: user %q already has %s; rotate to a new key", ErrDuplicateKey, name, fp)
			}
		}
		keys := slices.Clone(u.PublicKeys)
		var seq *yaml.Node
		if len(keys) > 0 {
			seq = owned(m, lookup(m, "public_keys"))
		}
		for i, k := range keys {
			at := until
			if !k.ExpiresAt.IsZero() && k.ExpiresAt.Before(until) {
				at = k.ExpiresAt
			} else {
				setKeyExpiry(seq, i, until)
				keys[i].ExpiresAt = until
			}
			expiring = append(expiring, KeyExpiry{Fingerprint: fingerprint(k.Key), ExpiresAt: at})
		}
		seq, err := seqFor(m, "public_keys")
		if err != nil {
			return false, err
		}
		for _, k := range add {
			appendItem(seq, keyNode(k))
		}
		u.PublicKeys = append(keys, add...)
		return true, nil
	})
	if err != nil {
		return Result{}, nil, err
	}
	return res, expiring, nil
}

// SetPassword sets a user's password_hash (make it with
// auth.HashPassword) and its expiry: password_expires_at is set to
// expires, or removed when expires is zero, as a new password does not
// inherit the old one's deadline. The hash never appears in an error.
func (e *Editor) SetPassword(name, hash string, expires time.Time) (Result, error) {
	probe := config.User{Name: "x", Home: "/", PasswordHash: hash}
	if _, err := auth.NewDirectory([]config.User{probe}); err != nil {
		return Result{}, fmt.Errorf("%w: %s", ErrInvalid, fieldMessages(err, func(string) string { return "password hash" }))
	}
	if !expires.IsZero() {
		expires = config.CeilSecond(expires)
	}
	return e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		setScalar(m, "password_hash", "!!str", hash)
		if i := lookup(m, "password_hash"); m.Content[i+1].Style == 0 {
			m.Content[i+1].Style = yaml.DoubleQuotedStyle // as hash-password's output is usually pasted
		}
		u.PasswordHash = hash
		if expires.IsZero() {
			deleteKey(m, "password_expires_at")
		} else {
			setScalar(m, "password_expires_at", "!!str", config.FormatTime(expires))
			if v := m.Content[lookup(m, "password_expires_at")+1]; v.Style == 0 {
				v.Style = yaml.DoubleQuotedStyle
			}
		}
		u.PasswordExpiresAt = expires
		return true, nil
	})
}

// deleteKey removes key and its value from the mapping m, if present. Its
// head comment stays, on the key that follows (or at the mapping's foot):
// a comment above a line usually says more than that line.
func deleteKey(m *yaml.Node, key string) {
	i := lookup(m, key)
	if i < 0 {
		return
	}
	keep := m.Content[i].HeadComment
	m.Content = slices.Delete(m.Content, i, i+2)
	if keep == "" {
		return
	}
	if i < len(m.Content) {
		m.Content[i].HeadComment = joinComments(keep, m.Content[i].HeadComment)
	} else {
		m.FootComment = joinComments(keep, m.FootComment)
	}
}
