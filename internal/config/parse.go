package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse decodes and validates one YAML document. No I/O: it is the fuzz
// target and what `wharf config check` runs.
//
// Keys that are absent (or written as null) take their Default value; keys
// that are present keep what was written, so `sftp: {listen: ""}` turns the
// SFTP listener off while a file without `sftp.listen` gets the default.
//
// On failure Parse returns a nil Config and the errors.Join of every problem
// found, each a *FieldError, sorted by line.
func Parse(data []byte) (*Config, error) {
	root, err := document(data)
	if err != nil {
		return nil, errors.Join(err)
	}
	c := Default()
	p := parser{
		lines:  map[string]int{},
		given:  map[string]bool{},
		bad:    map[string]bool{},
		budget: 4*len(data) + 10000,
	}
	if root != nil {
		p.value(root, reflect.ValueOf(c).Elem(), "")
	}
	c.lines = p.lines
	if !p.given["storage.root"] && c.Storage.Backend != "local" {
		c.Storage.Root = "" // the default root only means something to the local backend
	}
	p.fillSources(c.Users)

	errs := p.errs
	if err := c.Validate(); err != nil {
		for _, e := range unwrap(err) {
			// A value that failed to decode was left as it was; saying
			// so again ("home: required") would only repeat the first error.
			if fe, ok := e.(*FieldError); ok && p.isBad(fe.Field) {
				continue
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int {
			return cmp.Compare(lineOf(a), lineOf(b))
		})
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// document returns the top-level mapping of the single document in data, or
// nil when data holds no document or only a null one.
func document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(err)
	default:
		return nil, &FieldError{Line: next.Line, Msg: "a second YAML document: a config file holds exactly one"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := resolve(doc.Content[0])
	switch {
	case isNull(root):
		return nil, nil
	case root.Kind != yaml.MappingNode:
		return nil, &FieldError{Line: root.Line, Msg: "the top level must be a mapping of keys, got " + kindName(root)}
	}
	return root, nil
}

// syntaxError turns the parser's "yaml: line 3: did not find expected key"
// into a FieldError carrying the line.
func syntaxError(err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return &FieldError{Line: line, Msg: "invalid YAML: " + text}
			}
		}
	}
	return &FieldError{Msg: "invalid YAML: " + msg}
}

// parser walks the node tree against the schema's yaml tags, decoding as it
// goes, so that every problem is reported with its field path and line.
type parser struct {
	lines map[string]int  // field path -> line, for keys and list items
	given map[string]bool // field paths written with a non-null value
	bad   map[string]bool // field paths whose value could not be decoded
	errs  []error

	// budget bounds the nodes visited: aliases let a small document name
	// the same large list many times over ("billion laughs").
	budget int
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// fail reports a value that could not be decoded into field.
func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	p.bad[field] = true
	p.errorf(n.Line, field, format, args...)
}

// isBad reports whether field, or a field containing it, failed to decode.
func (p *parser) isBad(field string) bool {
	for f := field; f != ""; {
		if p.bad[f] {
			return true
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return false
		}
		f = f[:i]
	}
	return false
}

// fillSources sets each user's Src from the lines recorded under "users[i]",
// keyed relative to it, in one pass over the lines.
func (p *parser) fillSources(users []User) {
	for i := range users {
		prefix := fmt.Sprintf("users[%d]", i)
		users[i].Src = Source{Prefix: prefix, Lines: map[string]int{"": p.lines[prefix]}}
	}
	for f, line := range p.lines {
		rest, ok := strings.CutPrefix(f, "users[")
		if !ok {
			continue
		}
		num, rest, ok := strings.Cut(rest, "].")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(num); err == nil && i >= 0 && i < len(users) {
			users[i].Src.Lines[rest] = line
		}
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// value decodes n into v, the field at path field.
func (p *parser) value(n *yaml.Node, v reflect.Value, field string) {
	n = resolve(n)
	if p.budget--; p.budget < 0 {
		if p.budget == -1 {
			p.fail(n, field, "too many values: the document repeats aliases too often")
		}
		return
	}
	switch {
	case v.Kind() == reflect.Pointer:
		// An optional section (hooks[].webhook): present means allocated.
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		p.value(n, v.Elem(), field)
	case v.Type() == durationType:
		p.duration(n, v, field)
	case v.Kind() == reflect.Struct:
		p.mapping(n, v, field)
	case v.Kind() == reflect.Slice:
		p.sequence(n, v, field)
	default:
		p.scalar(n, v, field)
	}
}

func (p *parser) mapping(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "want a mapping, got %s", kindName(n))
		return
	}
	known := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, field, "keys must be plain names, got %s", kindName(k))
			continue
		}
		path := joinPath(field, k.Value)
		if k.ShortTag() == "!!merge" {
			p.errorf(k.Line, path, "merge keys are not supported; write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k.Line, path, "duplicate key (first written at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := known[k.Value]
		if !ok {
			p.errorf(k.Line, path, "unknown key%s", suggest(k.Value, known))
			continue
		}
		p.lines[path] = k.Line
		if isNull(resolve(val)) {
			if v.Type() == reflect.TypeFor[User]() && k.Value == "permissions" {
				// Absent means every permission and [] means none: a bare
				// `permissions:` is too easy to misread either way.
				p.fail(val, path, "null: write [] for no permissions, or remove the key for all of them")
			}
			continue
		}
		p.given[path] = true
		p.value(val, v.Field(idx), path)
	}
}

func (p *parser) sequence(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "want a list, got %s", kindName(n))
		return
	}
	// MakeSlice keeps `[]` non-nil, distinct from an absent key.
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		path := fmt.Sprintf("%s[%d]", field, i)
		p.lines[path] = item.Line
		p.value(item, s.Index(i), path)
	}
	v.Set(s)
}

func (p *parser) scalar(n *yaml.Node, v reflect.Value, field string) {
	want := "a " + v.Kind().String()
	switch v.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "an integer"
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "want %s, got %s", want, kindName(n))
		return
	}
	// The decoder's own message quotes the value, which may be a password
	// pasted into the wrong field: say only what was expected.
	if err := n.Decode(v.Addr().Interface()); err != nil {
		p.fail(n, field, "want %s", want)
	}
}

func (p *parser) duration(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "want a duration such as \"30s\", got %s", kindName(n))
		return
	}
	if isNull(n) {
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.fail(n, field, "invalid duration %s (want e.g. \"30s\" or \"1m30s\")", quote(n.Value))
		return
	}
	v.SetInt(int64(d))
}

// yamlFields maps each yaml key of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// resolve follows an alias to the node it names. Anchors cannot sit on
// aliases, so one step suffices.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a scalar"
	default:
		return "an alias"
	}
}

func joinPath(parent, key string) string {
	if !plainKey(key) || len(key) > 64 {
		key = quote(key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// plainKey reports whether key can appear unquoted in a field path.
func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// quote renders text for an error message, shortened so that a stray
// megabyte of YAML does not become a megabyte of error.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" when none is close enough to be a likely typo.
func suggest(key string, known map[string]int) string {
	if len(key) > 64 {
		return ""
	}
	best, bestDist := "", 0
	for _, k := range slices.Sorted(maps.Keys(known)) {
		d := editDistance(key, k)
		if best == "" || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > max(2, len(best)/3) || bestDist >= len(key) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func lineOf(err error) int {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Line
	}
	return 0
}

// unwrap lists the errors joined in err.
func unwrap(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
