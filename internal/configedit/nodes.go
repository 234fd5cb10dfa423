package configedit

import (
	"errors"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// userKeys is the order `wharf user` writes a user's keys in, and decides
// where a missing key is inserted into an existing entry.
var userKeys = []string{"name", "home", "public_keys", "password_hash", "password_expires_at", "permissions", "protocols", "disabled"}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func str(value string) *yaml.Node { return scalar("!!str", value) }

func strSeq(values []string, flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	for _, v := range values {
		n.Content = append(n.Content, str(v))
	}
	return n
}

// lookup returns the index in m.Content of key's key node, or -1. Load has
// checked that every key is a plain, unique scalar.
func lookup(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// owned returns m's value at key index i for editing. An alias is first
// replaced by a copy of what it names, so that the edit cannot reach the
// other entries that share it.
func owned(m *yaml.Node, i int) *yaml.Node {
	v := m.Content[i+1]
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		c := detach(v.Alias)
		c.HeadComment, c.LineComment, c.FootComment = v.HeadComment, v.LineComment, v.FootComment
		m.Content[i+1] = c
		keepLineComment(m.Content[i], c)
		return c
	}
	return v
}

// keepLineComment moves the line comment of v, the value of key, to key
// when v is a block list or mapping: yaml.v3 writes such a comment after the
// next value, far from where it was, while beside the key is where
// `key: [] # c` or `key: *alias # c` had it.
func keepLineComment(key, v *yaml.Node) {
	if v.LineComment == "" || v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0 {
		return
	}
	key.LineComment = joinComments(key.LineComment, v.LineComment)
	v.LineComment = ""
}

// detach deep-copies n without its anchors (the original keeps them, and an
// anchor may be defined only once). Aliases inside stay aliases: what they
// name still precedes them in the document.
func detach(n *yaml.Node) *yaml.Node {
	c := *n
	c.Anchor = ""
	if n.Kind == yaml.AliasNode {
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = detach(child)
	}
	return &c
}

// insertKey adds key: value to the user mapping m at its place in userKeys
// order: before the first present key that comes after it.
func insertKey(m *yaml.Node, key string, value *yaml.Node) {
	rank := func(k string) int {
		if i := slices.Index(userKeys, k); i >= 0 {
			return i
		}
		return len(userKeys)
	}
	at := len(m.Content)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if rank(m.Content[i].Value) > rank(key) {
			at = i
			break
		}
	}
	m.Content = slices.Insert(m.Content, at, str(key), value)
}

// setScalar sets key to a scalar in the user mapping m, keeping the key, its
// comments and (for strings) its quoting when present.
func setScalar(m *yaml.Node, key, tag, value string) {
	i := lookup(m, key)
	if i < 0 {
		insertKey(m, key, scalar(tag, value))
		return
	}
	v := m.Content[i+1]
	if v.Kind != yaml.ScalarNode {
		n := scalar(tag, value)
		n.HeadComment, n.LineComment, n.FootComment = v.HeadComment, v.LineComment, v.FootComment
		m.Content[i+1] = n
		return
	}
	// An anchor stays: if other entries alias this value, the check after
	// the edit sees them change and refuses it.
	v.Tag, v.Value = tag, value
	// A quoted "true" would be a string; and a block scalar adds a newline.
	if tag != "!!str" || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		v.Style = 0
	}
}

// seqFor returns the list at key in mapping m, ready to be appended to: it
// is created when absent, a null becomes an empty block list, an alias a
// copy, and an empty flow list ("[]") turns into a block list so that
// items land one per line.
func seqFor(m *yaml.Node, key string) (*yaml.Node, error) {
	i := lookup(m, key)
	if i < 0 {
		s := strSeq(nil, false)
		insertKey(m, key, s)
		return s, nil
	}
	v := owned(m, i)
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		s := strSeq(nil, false)
		s.HeadComment, s.LineComment, s.FootComment = v.HeadComment, v.LineComment, v.FootComment
		m.Content[i+1] = s
		v = s
	case v.Kind != yaml.SequenceNode:
		return nil, errors.New(key + " is not a list")
	case len(v.Content) == 0:
		v.Style &^= yaml.FlowStyle
	default:
		return v, nil
	}
	keepLineComment(m.Content[i], v)
	return v, nil
}

// appendItem appends item to seq, quoting it as the items before it are
// quoted, so that a list of keys keeps one look.
func appendItem(seq, item *yaml.Node) {
	if n := len(seq.Content); n > 0 && item.Kind == yaml.ScalarNode {
		if last := seq.Content[n-1]; last.Kind == yaml.ScalarNode {
			item.Style = last.Style &^ (yaml.LiteralStyle | yaml.FoldedStyle | yaml.FlowStyle)
		}
	}
	seq.Content = append(seq.Content, item)
}

// removeItem deletes item i of seq. Its comments go with it, except those a
// reader would take for comments on the list rather than on the item:
// paragraphs of its head comment that a blank line separates from it, the
// whole head comment of the first item when firstIsGeneral (above the first
// entry of `users`, a comment usually describes the list), and its foot
// comment. Those move to the next item, else to the previous one, else above
// parent, the list's key.
func removeItem(seq *yaml.Node, i int, parent *yaml.Node, firstIsGeneral bool) {
	item := seq.Content[i]
	keep := item.HeadComment
	if cut := strings.LastIndex(keep, "\n\n"); cut >= 0 {
		keep = keep[:cut]
	} else if i > 0 || !firstIsGeneral {
		keep = ""
	}
	keep = joinComments(keep, item.FootComment)
	seq.Content = slices.Delete(seq.Content, i, i+1)
	if keep == "" {
		return
	}
	switch {
	case i < len(seq.Content):
		next := seq.Content[i]
		next.HeadComment = joinComments(keep, next.HeadComment)
	case i > 0:
		prev := seq.Content[i-1]
		prev.FootComment = joinComments(prev.FootComment, keep)
	default:
		parent.HeadComment = joinComments(parent.HeadComment, keep)
	}
}

func joinComments(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// rootMapping returns the document's top-level mapping, creating it in an
// empty (or null) document.
func rootMapping(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		doc.Kind, doc.Content = yaml.DocumentNode, []*yaml.Node{m}
		return m
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		// Load accepted the file, so this is a null document ("~").
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: root.HeadComment, FootComment: root.FootComment}
		doc.Content[0] = m
		return m
	}
	return root
}

// findUser returns the index in seq of the entry named name, or -1.
func findUser(seq *yaml.Node, name string) int {
	for i, item := range seq.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		if item.Kind != yaml.MappingNode {
			continue
		}
		if k := lookup(item, "name"); k >= 0 {
			v := item.Content[k+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if v.Kind == yaml.ScalarNode && v.Value == name {
				return i
			}
		}
	}
	return -1
}
