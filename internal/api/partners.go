package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
	"github.com/wharf-sftp/wharf/internal/events"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

// Partner is one user of the config, as the API shows it. It holds no
// secret: keys by fingerprint, the password only as whether there is one.
type Partner struct {
	Name string `json:"name"`
	Home string `json:"home"`
	Keys []Key  `json:"keys"`
	// Password: a password_hash is set.
	Password bool `json:"password"`
	// PasswordExpiresAt is when the password stops working; nil: never.
	PasswordExpiresAt *time.Time `json:"password_expires_at"`
	// Permissions and Protocols are the effective lists: every one when
	// the config does not name them.
	Permissions []string `json:"permissions"`
	Protocols   []string `json:"protocols"`
	// AllowedIPs: empty means from anywhere.
	AllowedIPs    []string `json:"allowed_ips"`
	Disabled      bool     `json:"disabled"`
	MaxUploadSize int64    `json:"max_upload_size"` // 0: no cap
	Source        Source   `json:"source"`
	// LastLogin is the last successful login this daemon saw since it
	// started; null: none.
	LastLogin *Login `json:"last_login"`
}

// Key is one of a partner's public keys.
type Key struct {
	Fingerprint string `json:"fingerprint"` // SHA256:...
	Type        string `json:"type"`        // ssh-ed25519, ...
	// Comment is the config's comment for the key, else the line's.
	Comment string `json:"comment"`
	// ExpiresAt is when the key stops working; nil: never.
	ExpiresAt *time.Time `json:"expires_at"`
}

// Source is where a partner is defined: a file (the config, or users_dir's),
// or an object of a bucket users_dir (an s3:// URL).
type Source struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func newKey(k config.PublicKey) Key {
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(k.Key)))
	if err != nil {
		return Key{} // never for a checked config
	}
	out := Key{Fingerprint: auth.Fingerprint(pub), Type: pub.Type(), Comment: cmp.Or(k.Comment, comment)}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

func (s *Server) partner(u config.User) Partner {
	p := Partner{
		Name: u.Name, Home: u.Home, Keys: make([]Key, 0, len(u.PublicKeys)), Password: u.PasswordHash != "",
		Permissions: u.Permissions, Protocols: u.Protocols, AllowedIPs: u.AllowedIPs, Disabled: u.Disabled,
		MaxUploadSize: int64(u.MaxUploadSize), Source: Source{File: u.Src.File, Line: u.Src.Errorf("name", "").Line},
	}
	for _, k := range u.PublicKeys {
		p.Keys = append(p.Keys, newKey(k))
	}
	if u.PasswordHash != "" && !u.PasswordExpiresAt.IsZero() {
		t := u.PasswordExpiresAt.UTC()
		p.PasswordExpiresAt = &t
	}
	if p.Permissions == nil {
		p.Permissions = vfs.PermNames()
	}
	if p.Protocols == nil {
		p.Protocols = slices.Clone(config.Protocols)
	}
	if p.AllowedIPs == nil {
		p.AllowedIPs = []string{}
	}
	if s.o.Recent != nil {
		if l, ok := s.o.Recent.LastLogin(u.Name); ok {
			p.LastLogin = &l
		}
	}
	return p
}

// PartnerList is the body of listPartners: one page of the partners
// that match, in the config's order.
type PartnerList struct {
	Partners []Partner `json:"partners"`
	// Total is how many partners match, on every page.
	Total int `json:"total"`
	// NextOffset is the offset of the next page; absent on the last.
	NextOffset *int `json:"next_offset,omitempty"`
}

// Pages of listPartners: a page is bounded, so that a service with tens of
// thousands of partners answers each request in bounded memory and time.
const (
	defaultPartnerPage = 1000
	maxPartnerPage     = 1000
)

func (s *Server) listPartners(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	qv := r.URL.Query()
	limit, offset := defaultPartnerPage, 0
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPartnerPage {
			return 0, nil, badRequest("limit", "limit: want a number from 1 to %d", maxPartnerPage)
		}
		limit = n
	}
	if v := qv.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, badRequest("offset", "offset: want a number from 0 (the first partner)")
		}
		offset = n
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	users, err := ed.Users()
	if err != nil {
		return 0, nil, err
	}
	q := strings.ToLower(qv.Get("q"))
	out := PartnerList{Partners: []Partner{}}
	for _, u := range users {
		if q != "" && !strings.Contains(strings.ToLower(u.Name), q) {
			continue
		}
		if out.Total >= offset && len(out.Partners) < limit {
			out.Partners = append(out.Partners, s.partner(u))
		}
		out.Total++
	}
	if next := offset + len(out.Partners); next < out.Total && len(out.Partners) > 0 {
		out.NextOffset = &next
	}
	return http.StatusOK, out, nil
}

// find reads the partner called name.
func (s *Server) find(ed *configedit.Editor, name string) (Partner, error) {
	users, err := ed.Users()
	if err != nil {
		return Partner{}, err
	}
	i := slices.IndexFunc(users, func(u config.User) bool { return u.Name == name })
	if i < 0 {
		return Partner{}, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such partner: " + name}
	}
	return s.partner(users[i]), nil
}

func (s *Server) getPartner(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	p, err := s.find(ed, r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

// NewPartner is the body of createPartner: what `wharf user add` takes.
type NewPartner struct {
	Name         string   `json:"name"`
	Home         string   `json:"home"`
	PublicKeys   []string `json:"public_keys"`
	PasswordHash string   `json:"password_hash"` // from `wharf hash-password`; the password itself never travels
	// Permissions and Protocols: absent or null, every one; [] none.
	Permissions *[]string `json:"permissions"`
	Protocols   *[]string `json:"protocols"`
	// GenerateKey ("ed25519" or "rsa") issues a key pair: the config gets
	// the public key, the answer the private key (OpenSSH and PuTTY .ppk),
	// this once. GeneratePassword issues a password the same way (the
	// config gets its hash). As `wharf user add --generate-key
	// --generate-password` does.
	GenerateKey      string `json:"generate_key"`
	GeneratePassword bool   `json:"generate_password"`
}

// Created is the body of createPartner's answer.
type Created struct {
	Partner Partner `json:"partner"`
	// Credentials are what generate_key and generate_password issued,
	// shown this once.
	Credentials map[string]string `json:"credentials,omitempty"`
}

func (s *Server) createPartner(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	var in NewPartner
	if err := readJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	nu := configedit.NewUser{Name: in.Name, Home: in.Home, PublicKeys: in.PublicKeys, PasswordHash: in.PasswordHash}
	if in.Permissions != nil {
		nu.Permissions = append([]string{}, *in.Permissions...)
	}
	if in.Protocols != nil {
		nu.Protocols = append([]string{}, *in.Protocols...)
	}
	if err := nu.Validate(); err != nil {
		return 0, nil, err
	}
	handOut, err := issue(&nu, in)
	if err != nil {
		return 0, nil, err
	}
	if _, err := ed.AddUser(nu); err != nil {
		return 0, nil, err
	}
	s.emit(c, events.Event{Type: events.UserCreated, User: nu.Name})
	p, err := s.find(ed, nu.Name)
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", "/api/v1/partners/"+url.PathEscape(nu.Name))
	return http.StatusCreated, Created{Partner: p, Credentials: handOut}, nil
}

// PartnerChange is the body of updatePartner: the fields to set, the
// others left as they are (a JSON merge patch).
type PartnerChange struct {
	Home        optional[string]   `json:"home"`
	Permissions optional[[]string] `json:"permissions"` // null: every permission
	Protocols   optional[[]string] `json:"protocols"`   // null: every protocol
	AllowedIPs  optional[[]string] `json:"allowed_ips"` // null or []: anywhere
	Disabled    optional[bool]     `json:"disabled"`
}

// optional is a JSON field that may be absent (set false), null or a value.
type optional[T any] struct {
	set  bool
	null bool
	v    T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set, o.null = true, string(b) == "null"
	return json.Unmarshal(b, &o.v)
}

func (o optional[T]) ptr() *T {
	if !o.set {
		return nil
	}
	return &o.v
}

func (s *Server) updatePartner(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	var in PartnerChange
	if err := readJSON(w, r, &in, "application/json", "application/merge-patch+json"); err != nil {
		return 0, nil, err
	}
	for _, f := range []struct {
		name string
		null bool
	}{{"home", in.Home.null}, {"disabled", in.Disabled.null}} {
		if f.null {
			return 0, nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: f.name, Message: f.name + ": must not be null"}
		}
	}
	ch := configedit.Change{Home: in.Home.ptr(), Permissions: in.Permissions.ptr(), Protocols: in.Protocols.ptr(),
		AllowedIPs: in.AllowedIPs.ptr(), Disabled: in.Disabled.ptr()}
	fields := ch.Fields()
	if len(fields) == 0 {
		return 0, nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid",
			Message: "nothing to change: set home, permissions, protocols, allowed_ips or disabled"}
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	res, err := ed.Update(name, ch)
	if err != nil {
		return 0, nil, err
	}
	if res.Changed {
		s.emit(c, events.Event{Type: events.UserChanged, User: name, Changes: fields})
	}
	p, err := s.find(ed, name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

func (s *Server) deletePartner(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if _, err := ed.RemoveUser(name); err != nil {
		return 0, nil, err
	}
	s.emit(c, events.Event{Type: events.UserDeleted, User: name})
	return http.StatusNoContent, nil, nil
}

// NewKey is the body of addKey.
type NewKey struct {
	PublicKey string `json:"public_key"` // an authorized_keys line
}

// checkKeyLine checks a request's public_key on its own, before any edit,
// so that its problem names the request's field.
func checkKeyLine(line string) error {
	probe := configedit.NewUser{Name: "x", Home: "/", PublicKeys: []string{line}}
	if err := probe.Validate(); err != nil {
		if ie, ok := err.(*configedit.InputError); ok {
			return inputError(ie, func(string) string { return "public_key" })
		}
		return err
	}
	return nil
}

func (s *Server) addKey(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	var in NewKey
	if err := readJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if err := checkKeyLine(in.PublicKey); err != nil {
		return 0, nil, err
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if _, err := ed.AddKey(name, in.PublicKey); err != nil {
		return 0, nil, err
	}
	k := newKey(config.PublicKey{Key: in.PublicKey})
	s.emit(c, events.Event{Type: events.KeyAdded, User: name, Fingerprint: k.Fingerprint})
	w.Header().Set("Location", "/api/v1/partners/"+url.PathEscape(name)+"/keys/"+url.PathEscape(k.Fingerprint))
	return http.StatusCreated, k, nil
}

func (s *Server) removeKey(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	name, fp := r.PathValue("name"), r.PathValue("fingerprint")
	if _, err := ed.RemoveKey(name, fp); err != nil {
		return 0, nil, err
	}
	s.emit(c, events.Event{Type: events.KeyRemoved, User: name, Fingerprint: fp})
	return http.StatusNoContent, nil, nil
}

// KeyRotation is the body of rotateKeys: the new key (an authorized_keys
// line, or generate_key to issue one) and how long the older keys keep
// working.
type KeyRotation struct {
	PublicKey   string `json:"public_key"`
	GenerateKey string `json:"generate_key"`
	Grace       string `json:"grace"` // a duration such as "7d"; "0": the old keys stop now
}

// Rotated is the answer of rotateKeys.
type Rotated struct {
	Key Key `json:"key"`
	// Expiring are the older keys with the expiry each has now.
	Expiring []KeyExpiry `json:"expiring"`
	// Credentials are what generate_key issued, shown this once.
	Credentials map[string]string `json:"credentials,omitempty"`
}

// KeyExpiry is a key and when it stops working.
type KeyExpiry struct {
	Fingerprint string    `json:"fingerprint"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// rotateKeys adds a key and sets every older key of the partner to expire
// after the grace, as `wharf user key rotate` does.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	var in KeyRotation
	if err := readJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	grace, err := config.ParseDuration(in.Grace)
	if err != nil || in.Grace == "" {
		return 0, nil, badRequest("grace", "want a duration such as \"7d\" or \"36h\" (\"0\": the old keys stop now)")
	}
	name := r.PathValue("name")
	var handOut map[string]string
	line := in.PublicKey
	switch {
	case (in.PublicKey == "") == (in.GenerateKey == ""):
		return 0, nil, badRequest("public_key", "give exactly one of public_key or generate_key")
	case in.GenerateKey != "":
		handOut = map[string]string{}
		if line, err = issueKey(in.GenerateKey, name, handOut); err != nil {
			return 0, nil, err
		}
	default:
		if err := checkKeyLine(line); err != nil {
			return 0, nil, err
		}
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	_, expiring, err := ed.RotateKeys(name, []config.PublicKey{{Key: line}}, time.Now().Add(grace))
	if err != nil {
		return 0, nil, err
	}
	k := newKey(config.PublicKey{Key: line})
	out := Rotated{Key: k, Expiring: make([]KeyExpiry, 0, len(expiring)), Credentials: handOut}
	for _, x := range expiring {
		out.Expiring = append(out.Expiring, KeyExpiry{Fingerprint: x.Fingerprint, ExpiresAt: x.ExpiresAt.UTC()})
	}
	s.emit(c, events.Event{Type: events.KeyRotated, User: name, Fingerprint: k.Fingerprint})
	return http.StatusOK, out, nil
}

// getPacket answers the partner's onboarding packet as a zip, as `wharf
// user onboard NAME --host HOST --zip` writes it; without a private key
// (the API hands an issued key out in the answer that issued it).
func (s *Server) getPacket(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	if s.o.Packet == nil {
		return 0, nil, &Error{Status: http.StatusNotImplemented, Code: "unavailable", Message: "onboarding packets need the daemon's config file"}
	}
	host := strings.TrimSpace(r.URL.Query().Get("host"))
	if host == "" {
		return 0, nil, badRequest("host", "want host: the name or address partners connect to")
	}
	ed, err := s.editor()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if _, err := s.find(ed, name); err != nil {
		return 0, nil, err
	}
	p, err := s.o.Packet(r.Context(), name, host, nil)
	if err != nil {
		return 0, nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: err.Error()}
	}
	var buf bytes.Buffer
	if err := p.WriteZip(&buf, time.Now()); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, file{contentType: "application/zip", name: name + "-onboarding.zip", data: buf.Bytes()}, nil
}

// Login is a partner's last successful login.
type Login struct {
	Time     time.Time `json:"time"`
	Protocol string    `json:"protocol"`
	Method   string    `json:"method"`
	Remote   string    `json:"remote"`
}
