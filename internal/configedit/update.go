package configedit

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/s3store"
)

// What the admin API needs besides the edits `wharf user` makes: changes of
// home, permissions, protocols and allowed_ips, and input problems one by
// one rather than as one line of text.

// ErrChanged is the error of an edit that lost to another one made at the
// same time (a bucket's conditional write, or a file rewritten between the
// read and the write by a writer that does not take the lock): nothing was
// written, and the edit may be tried again.
var ErrChanged = s3store.ErrChanged

// InputError is ErrInvalid with each problem apart, for a caller that
// shows each beside its field. Its text is ErrInvalid's, as `wharf user`
// prints it.
type InputError struct {
	Problems []Problem
}

// Problem is one field of the input that start-up would refuse.
type Problem struct {
	Field string // as in a users_dir file: "home", "public_keys[1]"; "" for the input as a whole
	Msg   string // the words of config or auth, as `wharf config check` prints them
}

func (e *InputError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		if p.Field == "" {
			parts = append(parts, p.Msg)
			continue
		}
		parts = append(parts, inputName(p.Field)+": "+p.Msg)
	}
	return ErrInvalid.Error() + ": " + strings.Join(slices.Compact(parts), "; ")
}

func (e *InputError) Unwrap() error { return ErrInvalid }

// inputError collects the problems of a user checked alone.
func inputError(err error) *InputError {
	out := &InputError{}
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *config.FieldError
		if errors.As(err, &fe) {
			out.Problems = append(out.Problems, Problem{Field: fe.Field, Msg: fe.Msg})
		} else {
			out.Problems = append(out.Problems, Problem{Msg: err.Error()})
		}
	}
	walk(err)
	return out
}

// checkAlone runs on one user's mapping what Load and start-up run on a
// user, and returns its problems as an *InputError.
func checkAlone(node *yaml.Node) (*config.User, error) {
	u, err := parseAlone(node)
	if err != nil {
		return nil, inputError(err)
	}
	return u, nil
}

// Validate checks nu as AddUser does before it reads any file, and returns
// the problems as an *InputError.
func (nu NewUser) Validate() error {
	_, err := checkAlone(nu.node())
	return err
}

// Change is what Update sets on an existing user; nil fields stay as they
// are. For the lists, a pointer to nil removes the key from the user's
// entry: every permission, every protocol, any address.
type Change struct {
	Home        *string
	Permissions *[]string
	Protocols   *[]string
	AllowedIPs  *[]string // an empty list is removed too: it means anywhere
	Disabled    *bool
}

// Fields names the fields c sets, as a users_dir file names them.
func (c Change) Fields() []string {
	var out []string
	for _, f := range []struct {
		set  bool
		name string
	}{{c.Home != nil, "home"}, {c.Permissions != nil, "permissions"}, {c.Protocols != nil, "protocols"},
		{c.AllowedIPs != nil, "allowed_ips"}, {c.Disabled != nil, "disabled"}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// probe is a user that has what c sets, for checking c alone.
func (c Change) probe() *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	home := "/"
	if c.Home != nil {
		home = *c.Home
	}
	m.Content = append(m.Content, str("name"), str("x"), str("home"), str(home))
	for _, l := range []struct {
		key  string
		list *[]string
	}{{"permissions", c.Permissions}, {"protocols", c.Protocols}, {"allowed_ips", c.AllowedIPs}} {
		if l.list != nil && *l.list != nil {
			m.Content = append(m.Content, str(l.key), strSeq(*l.list, true))
		}
	}
	return m
}

// Update changes an existing user's home, permissions, protocols, allowed
// addresses or disabled flag, each only when c sets it. The values are
// checked first, alone, as AddUser checks a new user (an *InputError);
// then the edit is checked and written as every other edit is. Setting
// what already is changes nothing.
func (e *Editor) Update(name string, c Change) (Result, error) {
	if _, err := checkAlone(c.probe()); err != nil {
		return Result{}, err
	}
	if c.AllowedIPs != nil && len(*c.AllowedIPs) == 0 {
		c.AllowedIPs = new([]string)
	}
	return e.modify(name, func(m *yaml.Node, u *config.User) (bool, error) {
		changed := false
		if c.Home != nil && *c.Home != u.Home {
			setScalar(m, "home", "!!str", *c.Home)
			u.Home, changed = *c.Home, true
		}
		for _, l := range []struct {
			key  string
			want *[]string
			have *[]string
		}{{"permissions", c.Permissions, &u.Permissions}, {"protocols", c.Protocols, &u.Protocols}, {"allowed_ips", c.AllowedIPs, &u.AllowedIPs}} {
			if l.want == nil || sameList(*l.want, *l.have) {
				continue
			}
			setList(m, l.key, *l.want)
			*l.have, changed = slices.Clone(*l.want), true
		}
		if c.Disabled != nil && *c.Disabled != u.Disabled {
			setScalar(m, "disabled", "!!bool", strconv.FormatBool(*c.Disabled))
			u.Disabled, changed = *c.Disabled, true
		}
		return changed, nil
	})
}

// sameList compares two lists as the config reads them: nil (the key
// absent) differs from empty (written as []).
func sameList(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// setList sets key to a flow list of values in the user mapping m, keeping
// the comments around the value it replaces; nil removes the key.
func setList(m *yaml.Node, key string, values []string) {
	i := lookup(m, key)
	if values == nil {
		if i >= 0 {
			removeKey(m, i)
		}
		return
	}
	n := strSeq(values, true)
	if i < 0 {
		insertKey(m, key, n)
		return
	}
	old := m.Content[i+1]
	n.HeadComment, n.LineComment, n.FootComment = old.HeadComment, old.LineComment, old.FootComment
	// A block list's comment beside the key (moved there on reading)
	// stays beside it.
	m.Content[i+1] = n
}

// removeKey deletes the key at index i of mapping m and its value. A head
// comment above the key moves to the next key (or below the previous
// value): it usually speaks of more than this one setting. The comments
// beside the key and in its value go with it.
func removeKey(m *yaml.Node, i int) {
	keep := joinComments(m.Content[i].HeadComment, m.Content[i+1].FootComment)
	m.Content = slices.Delete(m.Content, i, i+2)
	switch {
	case keep == "":
	case i < len(m.Content):
		m.Content[i].HeadComment = joinComments(keep, m.Content[i].HeadComment)
	case i > 0:
		prev := m.Content[i-1]
		prev.FootComment = joinComments(prev.FootComment, keep)
	default:
		m.HeadComment = joinComments(m.HeadComment, keep)
	}
}

// Users returns every user of a valid config, in the order Load reads
// them, with all their fields (List's UserInfo is what a table shows).
func (e *Editor) Users() ([]config.User, error) {
	cfg, _, err := e.load()
	if err != nil {
		return nil, err
	}
	return cfg.Users, nil
}
