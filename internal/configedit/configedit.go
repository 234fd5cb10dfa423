// Package configedit edits a wharf config file safely: it is what the `wharf
// user` commands run. Every edit is applied to the file's YAML node tree (so
// comments and key order survive), and the resulting bytes are loaded and
// checked exactly as start-up would load and check them, and compared with
// the change asked for, before anything is written; the write is atomic and
// keeps the file's mode and owner. A failed edit leaves every file
// byte-for-byte as it was.
//
// With users_dir set, new users get a file of their own there, and every
// other edit changes whichever file defines the user. A users_dir in a
// bucket holds objects instead of files, written conditionally (bucket.go).
// Nothing here talks to a running daemon: it notices the change by itself.
package configedit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/auth"
	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/vfs"
)

var (
	// ErrUnknownUser: no user of that name in the config.
	ErrUnknownUser = errors.New("no such user")
	// ErrUserExists: AddUser of a name already defined.
	ErrUserExists = errors.New("user already exists")
	// ErrUnknownKey: RemoveKey of a fingerprint the user does not have.
	ErrUnknownKey = errors.New("no such key")
	// ErrDuplicateKey: AddKey of a key the user already has.
	ErrDuplicateKey = errors.New("key already present")
	// ErrInvalid: the input (a name, home, key, permission...) is not valid.
	ErrInvalid = errors.New("invalid input")
)

// takenError is AddUser's refusal of a user file name another file has
// taken: a kind of ErrUserExists (a conflict, not a failure), with its own
// words.
type takenError struct{ msg string }

func (e *takenError) Error() string { return e.msg }
func (e *takenError) Unwrap() error { return ErrUserExists }

func nameTaken(file, user string) error {
	return &takenError{fmt.Sprintf("%s already exists but does not define user %q; rename or remove it first", file, user)}
}

// Check runs what start-up runs on a loaded config besides config.Load
// itself (daemon.Check); an edit is written only if it passes.
type Check func(*config.Config) error

// Editor edits the config file at Path and, when it sets users_dir, the
// user files there. It holds no state between calls.
type Editor struct {
	Path  string // the main config file, as given to --config
	Check Check  // nil: auth.NewDirectory over the users
	// S3Client tunes the S3 client of a users_dir in a bucket (tests).
	S3Client []func(*s3.Options)
}

// NewUser is what AddUser writes.
type NewUser struct {
	Name         string
	Home         string
	PublicKeys   []string // authorized_keys lines
	PasswordHash string   // "": no password login
	// PasswordExpiresAt is when the password stops working; zero: never.
	PasswordExpiresAt time.Time
	Permissions       []string // nil: key absent (every permission); empty: none
	Protocols         []string // nil: key absent (every protocol)
}

// Result says what an edit did.
type Result struct {
	File    string // the file written, created or removed (an s3:// URL for an object)
	Changed bool   // false: it already was as asked (Enable of an enabled user...)
	Created bool   // File is a new users_dir file
	Removed bool   // File, a users_dir file, was deleted
	// Reformatted: the file's blank lines and comment alignment could not be
	// kept exactly; its comments, key order and meaning are.
	Reformatted bool
	// LostComments counts comment lines yaml.v3 had no place for (none in
	// the files tested; the edit is still written, as its meaning is right).
	LostComments int
}

// UserInfo is one user as List reports it. It holds no secret.
type UserInfo struct {
	Name         string   `json:"name"`
	Home         string   `json:"home"`
	Keys         int      `json:"keys"`
	Fingerprints []string `json:"fingerprints"` // SHA256:..., one per key
	// PublicKeys holds each key's fingerprint, comment and expiry.
	PublicKeys []KeyInfo `json:"public_keys"`
	Password   bool      `json:"password"`
	// PasswordExpiresAt is when the password stops working; zero: never.
	PasswordExpiresAt time.Time `json:"password_expires_at,omitzero"`
	// Permissions and Protocols are the effective lists: a key absent from
	// the file means all of them.
	Permissions []string `json:"permissions"`
	Protocols   []string `json:"protocols"`
	Disabled    bool     `json:"disabled"`
	File        string   `json:"file"` // where the user is defined
	Line        int      `json:"line"`
}

// List returns every user of a valid config, in the order Load reads them.
func (e *Editor) List() ([]UserInfo, error) {
	cfg, _, err := e.load()
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		info := UserInfo{
			Name:         u.Name,
			Home:         u.Home,
			Keys:         len(u.PublicKeys),
			Fingerprints: make([]string, 0, len(u.PublicKeys)),
			PublicKeys:   make([]KeyInfo, 0, len(u.PublicKeys)),
			Password:     u.PasswordHash != "",
			Permissions:  u.Permissions,
			Protocols:    u.Protocols,
			Disabled:     u.Disabled,
			File:         u.Src.File,
			Line:         u.Src.Errorf("name", "").Line,
		}
		if info.Password {
			info.PasswordExpiresAt = u.PasswordExpiresAt
		}
		for _, k := range u.PublicKeys {
			fp := fingerprint(k.Key)
			info.Fingerprints = append(info.Fingerprints, fp)
			info.PublicKeys = append(info.PublicKeys, KeyInfo{Fingerprint: fp, Comment: k.Comment, ExpiresAt: k.ExpiresAt})
		}
		if info.Permissions == nil {
			info.Permissions = vfs.PermNames()
		}
		if info.Protocols == nil {
			info.Protocols = slices.Clone(config.Protocols)
		}
		out = append(out, info)
	}
	return out, nil
}

// CheckKey reports whether key is a public_keys entry start-up accepts. The
// error never quotes the key.
func CheckKey(key string) error {
	_, err := auth.NewDirectory([]config.User{{Name: "x", Home: "/", PublicKeys: config.Keys(key)}})
	if err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, fieldMessages(err, func(string) string { return "key" }))
	}
	return nil
}

// AddUser adds a user: to a new file users_dir/NAME.yaml (mode 0640, with
// the main file's group and, run as root, owner) when users_dir is set, else
// at the end of `users`.
func (e *Editor) AddUser(nu NewUser) (Result, error) {
	node := nu.node()
	u, err := checkNewUser(node)
	if err != nil {
		return Result{}, err
	}
	cfg, b, unlock, err := e.begin()
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if i := indexOf(cfg.Users, nu.Name); i >= 0 {
		s := cfg.Users[i].Src
		return Result{}, fmt.Errorf("%w: %q (%s:%d)", ErrUserExists, nu.Name, s.File, s.Errorf("name", "").Line)
	}
	mainData, err := config.ReadFile(cfg.File)
	if err != nil {
		return Result{}, fmt.Errorf("read config: %w", err)
	}

	if b != nil {
		return e.addObject(cfg, b, nu.Name+".yaml", node, u, mainData)
	}
	if cfg.UsersDir != "" {
		file := filepath.Join(cfg.UsersDir, nu.Name+".yaml")
		if _, err := os.Lstat(file); err == nil {
			return Result{}, nameTaken(file, nu.Name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Result{}, fmt.Errorf("check %s: %w", file, err)
		}
		out, err := encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{node}}, detectStyle(mainData))
		if err != nil {
			return Result{}, err
		}
		u.Src.File = file
		if err := e.verify(cfg, nil, map[string][]byte{file: out}, append(slices.Clone(cfg.Users), *u)); err != nil {
			return Result{}, err
		}
		fi, err := os.Stat(cfg.File)
		if err != nil {
			return Result{}, fmt.Errorf("stat config: %w", err)
		}
		uid, gid := owner(fi)
		if err := createFile(file, out, 0o640, uid, gid); err != nil {
			return Result{}, err
		}
		return Result{File: file, Changed: true, Created: true}, nil
	}

	doc, err := decode(mainData, cfg.File)
	if err != nil {
		return Result{}, err
	}
	users, err := seqFor(rootMapping(doc), "users")
	if err != nil {
		return Result{}, err
	}
	appendItem(users, node)
	u.Src.File = cfg.File
	return e.write(&target{cfg: cfg, b: b, file: cfg.File, data: mainData, doc: doc}, append(slices.Clone(cfg.Users), *u))
}

// addObject is AddUser into a bucket: the object name, created only if
// there is none.
func (e *Editor) addObject(cfg *config.Config, b *bucket, name string, node *yaml.Node, u *config.User, mainData []byte) (Result, error) {
	url := b.users.URL + name
	if _, ok := b.users.Objects[name]; ok {
		return Result{}, nameTaken(url, u.Name)
	}
	out, err := encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{node}}, detectStyle(mainData))
	if err != nil {
		return Result{}, err
	}
	u.Src.File = url
	if err := e.verify(cfg, b.with(name, out), nil, append(slices.Clone(cfg.Users), *u)); err != nil {
		return Result{}, err
	}
	if err := b.create(name, out); err != nil {
		return Result{}, err
	}
	return Result{File: url, Changed: true, Created: true}, nil
}

// RemoveUser removes a user: its entry in `users`, or its users_dir file.
func (e *Editor) RemoveUser(name string) (Result, error) {
	t, unlock, err := e.open(name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	want := slices.Delete(slices.Clone(t.cfg.Users), t.i, t.i+1)
	if t.object != "" {
		if err := e.verify(t.cfg, t.b.with(t.object, nil), nil, want); err != nil {
			return Result{}, err
		}
		if err := t.b.remove(t.object); err != nil {
			return Result{}, err
		}
		return Result{File: t.file, Changed: true, Removed: true}, nil
	}
	if t.list == nil {
		if err := e.verify(t.cfg, t.b.objects(), map[string][]byte{t.file: nil}, want); err != nil {
			return Result{}, err
		}
		if err := removeFile(t.file, t.data); err != nil {
			return Result{}, err
		}
		return Result{File: t.file, Changed: true, Removed: true}, nil
	}
	removeItem(t.list, t.j, t.listKey, true)
	return e.write(t, want)
}

// AddKey appends an authorized_keys line to a user's public_keys.
func (e *Editor) AddKey(name, key string) (Result, error) {
	return e.AddPublicKey(name, config.PublicKey{Key: key})
}

// RemoveKey removes the key with that SHA256 fingerprint from a user.
func (e *Editor) RemoveKey(name, fp string) (Result, error) {
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) == len("SHA256:") {
		return Result{}, fmt.Errorf("%w: %q is not a key fingerprint: want SHA256:... (`wharf user list --json` shows them)", ErrInvalid, fp)
	}
	return e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		i := slices.IndexFunc(u.PublicKeys, func(k config.PublicKey) bool { return fingerprint(k.Key) == fp })
		if i < 0 {
			have := make([]string, len(u.PublicKeys))
			for j, k := range u.PublicKeys {
				have[j] = fingerprint(k.Key)
			}
			return false, fmt.Errorf("%w: user %q has no key %s (it has: %s)", ErrUnknownKey, name, fp, strings.Join(have, ", "))
		}
		k := lookup(m, "public_keys")
		seq := owned(m, k)
		removeItem(seq, i, m.Content[k], false)
		u.PublicKeys = slices.Delete(slices.Clone(u.PublicKeys), i, i+1)
		return true, nil
	})
}

// SetDisabled disables or enables a user; doing what is already so changes
// nothing.
func (e *Editor) SetDisabled(name string, disabled bool) (Result, error) {
	return e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		if u.Disabled == disabled {
			return false, nil
		}
		setScalar(m, "disabled", "!!bool", strconv.FormatBool(disabled))
		u.Disabled = disabled
		return true, nil
	})
}

// SetPasswordHash sets a user's password_hash (make it with
// auth.HashPassword), without expiry: SetPassword with a zero time.
func (e *Editor) SetPasswordHash(name, hash string) (Result, error) {
	return e.SetPassword(name, hash, time.Time{})
}

// modify runs one edit of an existing user under the lock: fn changes the
// user's mapping node and, to match, the expected User.
func (e *Editor) modify(name string, fn func(m *yaml.Node, want *config.User) (bool, error)) (Result, error) {
	t, unlock, err := e.open(name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	m := rootMapping(t.doc)
	if t.list != nil {
		if item := t.list.Content[t.j]; item.Kind == yaml.AliasNode {
			t.list.Content[t.j] = detach(item.Alias)
		}
		m = t.list.Content[t.j]
	}
	want := slices.Clone(t.cfg.Users)
	changed, err := fn(m, &want[t.i])
	if err != nil || !changed {
		return Result{File: t.file}, err
	}
	return e.write(t, want)
}

// target is an existing user opened for editing.
type target struct {
	cfg  *config.Config
	b    *bucket    // the users_dir in a bucket; nil: none
	i    int        // the user's index in cfg.Users
	file string     // the file that defines it (an s3:// URL for an object)
	data []byte     // that file's bytes
	doc  *yaml.Node // and its tree
	// object is the name in b of the object that defines the user; "":
	// a local file.
	object string
	// For a user of the main file: the `users` list (safe to edit), its
	// key, and the user's index in it. list is nil for a users_dir user,
	// whose file is the user's mapping.
	list, listKey *yaml.Node
	j             int
}

// begin takes the lock and loads the config. The lock is the config
// file's: it orders the edits of one machine; a bucket's conditional writes
// order those of several.
func (e *Editor) begin() (*config.Config, *bucket, func(), error) {
	unlock, err := lock(e.Path)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, b, err := e.load()
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return cfg, b, unlock, nil
}

// open begins an edit of the user called name.
func (e *Editor) open(name string) (*target, func(), error) {
	cfg, b, unlock, err := e.begin()
	if err != nil {
		return nil, nil, err
	}
	t, err := find(cfg, b, name)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return t, unlock, nil
}

func find(cfg *config.Config, b *bucket, name string) (*target, error) {
	t := &target{cfg: cfg, b: b, i: indexOf(cfg.Users, name)}
	if t.i < 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, name)
	}
	t.file = cfg.Users[t.i].Src.File
	var err error
	if t.object = b.objectName(t.file); t.object != "" {
		t.data = b.users.Objects[t.object]
	} else if t.data, err = config.ReadFile(t.file); err != nil {
		return nil, fmt.Errorf("read %s: %w", t.file, err)
	}
	if t.doc, err = decode(t.data, t.file); err != nil {
		return nil, err
	}
	if t.file != cfg.File {
		return t, nil
	}
	root := rootMapping(t.doc)
	k := lookup(root, "users")
	if k < 0 {
		return nil, fmt.Errorf("%s: no users list (internal error)", t.file)
	}
	t.list, t.listKey = owned(root, k), root.Content[k]
	if t.j = findUser(t.list, name); t.j < 0 {
		return nil, fmt.Errorf("%s: user %q not found in the YAML (internal error)", t.file, name)
	}
	return t, nil
}

// write renders t.doc, the edited tree of t.file (whose bytes were
// t.data), checks the result and replaces the file, or the object if the
// version read is still there.
func (e *Editor) write(t *target, want []config.User) (Result, error) {
	out, reformatted, lost, err := render(t.doc, t.data)
	if err != nil {
		return Result{}, err
	}
	if t.object != "" {
		if err := e.verify(t.cfg, t.b.with(t.object, out), nil, want); err != nil {
			return Result{}, err
		}
		if err := t.b.replace(t.object, out); err != nil {
			return Result{}, err
		}
	} else {
		if err := e.verify(t.cfg, t.b.objects(), map[string][]byte{t.file: out}, want); err != nil {
			return Result{}, err
		}
		if err := replaceFile(t.file, out, t.data); err != nil {
			return Result{}, err
		}
	}
	return Result{File: t.file, Changed: true, Reformatted: reformatted, LostComments: lost}, nil
}

// load loads and checks the config as it is now: an edit starts only from a
// config that start-up would accept.
func (e *Editor) load() (*config.Config, *bucket, error) {
	cfg, b, err := loadConfig(e.Path, e.S3Client)
	if err == nil {
		err = e.check(cfg)
	}
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return nil, nil, fmt.Errorf("the config is not valid; fix it first (`wharf config check`), nothing was changed:\n%w", err)
		}
		return nil, nil, err
	}
	return cfg, b, nil
}

func (e *Editor) check(cfg *config.Config) error {
	if e.Check != nil {
		return e.Check(cfg)
	}
	_, err := auth.NewDirectory(cfg.Users)
	return err
}

// verify loads the config with overlay in place of the files it names (and
// objs as the objects of a users_dir in a bucket; nil: none) and
// checks it as start-up would; then it checks that the edit did exactly
// what was asked: the users are want (compared by name, with their files),
// and nothing else changed.
func (e *Editor) verify(old *config.Config, objs *config.UserObjects, overlay map[string][]byte, want []config.User) error {
	cfg, err := config.LoadWith(e.Path, config.LoadOptions{Overlay: overlay, Objects: objs})
	if err == nil {
		err = e.check(cfg)
	}
	if err != nil {
		return fmt.Errorf("the change would leave an invalid config, so nothing was written:\n%w", err)
	}
	if !sameSettings(old, cfg) {
		return errors.New("the change would alter settings other than users; nothing was written (please report this)")
	}
	got := map[string]config.User{}
	for _, u := range cfg.Users {
		got[u.Name] = u
	}
	for _, w := range want {
		g, ok := got[w.Name]
		if !ok || !sameUser(g, w) {
			return fmt.Errorf("the edited file would not give user %q the intended settings; nothing was written (a YAML anchor or alias shared with another entry? edit the file by hand)", w.Name)
		}
		delete(got, w.Name)
	}
	if len(got) > 0 {
		return errors.New("the edited file would define users it should not; nothing was written (please report this)")
	}
	return nil
}

func sameSettings(a, b *config.Config) bool {
	x, y := *a, *b
	x.Users, y.Users = nil, nil
	bx, err1 := yaml.Marshal(&x)
	by, err2 := yaml.Marshal(&y)
	return err1 == nil && err2 == nil && string(bx) == string(by) && a.File == b.File
}

// sameUser compares every field, so that a field added to config.User is
// checked too; positions are ignored, files are not.
func sameUser(a, b config.User) bool {
	norm := func(u config.User) config.User {
		u.Src = config.Source{File: u.Src.File}
		if len(u.PublicKeys) == 0 {
			u.PublicKeys = nil // absent and [] both mean no key (unlike permissions)
		}
		return u
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func decode(data []byte, file string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", file, err)
	}
	return &doc, nil
}

func indexOf(users []config.User, name string) int {
	return slices.IndexFunc(users, func(u config.User) bool { return u.Name == name })
}

// fingerprint returns the SHA256 fingerprint of an authorized_keys line, or
// "" when it does not parse (never for a checked config).
func fingerprint(line string) string {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil {
		return ""
	}
	return auth.Fingerprint(key)
}

// node is the mapping AddUser writes, keys in userKeys order.
func (nu NewUser) node() *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, str(k), v) }
	add("name", str(nu.Name))
	add("home", str(nu.Home))
	if len(nu.PublicKeys) > 0 {
		add("public_keys", strSeq(nu.PublicKeys, false))
	}
	if nu.PasswordHash != "" {
		h := str(nu.PasswordHash)
		h.Style = yaml.DoubleQuotedStyle
		add("password_hash", h)
		if !nu.PasswordExpiresAt.IsZero() {
			x := str(config.FormatTime(nu.PasswordExpiresAt))
			x.Style = yaml.DoubleQuotedStyle
			add("password_expires_at", x)
		}
	}
	if nu.Permissions != nil {
		add("permissions", strSeq(nu.Permissions, true))
	}
	if nu.Protocols != nil {
		add("protocols", strSeq(nu.Protocols, true))
	}
	return m
}

// checkNewUser runs on the user alone what Load and start-up run, so that a
// bad name, home, key or permission is reported against the input (--home,
// key 2, ...) rather than a line of a file not yet written.
func checkNewUser(node *yaml.Node) (*config.User, error) {
	u, err := parseAlone(node)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, fieldMessages(err, inputName))
	}
	return u, nil
}

// parseAlone checks one user entry on its own, as start-up would: the
// schema, then keys and hash (package auth). The error holds a
// config.FieldError per problem.
func parseAlone(node *yaml.Node) (*config.User, error) {
	data, err := encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{node}}, defaultStyle)
	if err != nil {
		return nil, err
	}
	u, err := config.ParseUser(data)
	if err == nil {
		_, err = auth.NewDirectory([]config.User{*u})
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// inputName names a user field as the person who typed the command knows it.
func inputName(field string) string {
	base, idx, _ := strings.Cut(field, "[")
	switch base {
	case "name":
		return "user name"
	case "home":
		return "home"
	case "public_keys":
		if n, err := strconv.Atoi(strings.TrimSuffix(idx, "]")); err == nil {
			return "key " + strconv.Itoa(n+1)
		}
		return "keys"
	case "password_hash":
		return "password hash"
	}
	return base // permissions, protocols
}

// fieldMessages renders the FieldErrors joined in err as "name: message"
// parts, without their file and line, which mean nothing for input.
func fieldMessages(err error, name func(field string) string) string {
	var parts []string
	var walk func(error)
	walk = func(err error) {
		var fe *config.FieldError
		switch j := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range j.Unwrap() {
				walk(e)
			}
		default:
			if errors.As(err, &fe) {
				parts = append(parts, name(fe.Field)+": "+fe.Msg)
			} else {
				parts = append(parts, err.Error())
			}
		}
	}
	walk(err)
	return strings.Join(slices.Compact(parts), "; ")
}
