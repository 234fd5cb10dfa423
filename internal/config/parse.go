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
	c, _, err := parse(data)
	return c, err
}

// parse is Parse, also returning the document's top-level mapping (nil
// when there is none) for Load to find users_dir in a broken file.
func parse(data []byte) (*Config, *yaml.Node, error) {
	root, err := document(data)
	if err != nil {
		return nil, nil, errors.Join(err)
	}
	c := Default()
	p := newParser()
	if root != nil {
		p.value(root, reflect.ValueOf(c).Elem(), "")
	}
	c.lines = p.lines
	if !p.given["storage.root"] && c.Storage.Backend != "local" {
		c.Storage.Root = "" // the default root only means something to the local backend
	}
	p.fillSources(c.Users)

	errs := p.errors()
	for _, e := range c.validate() {
		// A value that failed to decode was left as it was; saying
		// so again ("home: required") would only repeat the first error.
		if fe, ok := e.(*FieldError); ok && p.isBad(fe.Field) {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, root, JoinErrors(errs)
	}
	return c, root, nil
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
	if err := checkAliases(root); err != nil {
		return nil, err
	}
	return root, nil
}

// checkAliases refuses a document whose aliases name more values than the
// document writes out, before anything is decoded: aliases let a few
// kilobytes name one list millions of times ("billion laughs"), and each
// copy would be walked, decoded and, when wrong, reported. Sharing a
// permissions list or a set of keys between users stays well inside the
// bound, which lets aliases at most double the document, plus a margin.
func checkAliases(root *yaml.Node) *FieldError {
	written := countNodes(root)
	limit := 2*written + 10000
	if n := expandedNodes(root, limit, map[*yaml.Node]int{}); n > limit {
		return &FieldError{Line: root.Line, Msg: fmt.Sprintf(
			"too many values: the document repeats aliases too often (more than %d values once aliases are expanded, for %d written; write the values out)",
			limit, written)}
	}
	return nil
}

// countNodes counts the nodes written in the document, an alias as one.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// expandedNodes counts the nodes of n with every alias replaced by the node
// it names, stopping above limit (limit+1 then). memo holds the count of
// every node already counted, -1 for one being counted: an alias back to
// it is a cycle, which expands without end.
func expandedNodes(n *yaml.Node, limit int, memo map[*yaml.Node]int) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return expandedNodes(n.Alias, limit, memo)
	}
	if c, ok := memo[n]; ok {
		if c < 0 {
			return limit + 1
		}
		return c
	}
	memo[n] = -1
	c := 1
	for _, k := range n.Content {
		if c += expandedNodes(k, limit, memo); c > limit {
			c = limit + 1
			break
		}
	}
	memo[n] = c
	return c
}

// syntaxError turns the parser's "yaml: line 3: did not find expected key"
// into a FieldError carrying the line. The parser's messages are fixed
// text, except that a few quote a name from the document ("unknown anchor
// 'x' referenced"): whatever sits between quotes is left out, since the
// document may be any file (a shadow file has no business in a log).
func syntaxError(err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, text
			}
		}
	}
	return &FieldError{Line: line, Msg: "invalid YAML: " + unquoted(msg)}
}

// unquoted drops every '...', "..." and `...` span from msg, and bounds it.
func unquoted(msg string) string {
	var b strings.Builder
	var in rune
	for _, r := range msg {
		switch {
		case in != 0:
			if r == in {
				in = 0
			}
		case r == '\'' || r == '"' || r == '`':
			in = r
		default:
			b.WriteRune(r)
		}
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	if len(out) > 200 {
		out = out[:200] + "..."
	}
	return out
}

// parser walks the node tree against the schema's yaml tags, decoding as it
// goes, so that every problem is reported with its field path and line.
type parser struct {
	lines map[string]int  // field path -> line, for keys and list items
	given map[string]bool // field paths written with a non-null value
	bad   map[string]bool // field paths whose value could not be decoded
	errs  []error
	more  int // errors found beyond MaxErrors, counted, not kept
}

func newParser() *parser {
	return &parser{lines: map[string]int{}, given: map[string]bool{}, bad: map[string]bool{}}
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	// Errors come in document order, so the first MaxErrors are the ones
	// that will be shown; the rest are only counted, so that a file of a
	// million bad lines costs no more memory than one of fifty.
	if len(p.errs) >= MaxErrors {
		p.more++
		return
	}
	p.errs = append(p.errs, &FieldError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// errors returns the errors found, with a *MoreErrors for those not kept.
func (p *parser) errors() []error {
	if p.more == 0 {
		return slices.Clone(p.errs)
	}
	return append(slices.Clone(p.errs), &MoreErrors{N: p.more})
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

var (
	durationType  = reflect.TypeFor[time.Duration]()
	timeType      = reflect.TypeFor[time.Time]()
	publicKeyType = reflect.TypeFor[PublicKey]()
)

// value decodes n into v, the field at path field.
func (p *parser) value(n *yaml.Node, v reflect.Value, field string) {
	n = resolve(n)
	switch {
	case v.Kind() == reflect.Pointer:
		// An optional section (hooks[].webhook): present means allocated.
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		p.value(n, v.Elem(), field)
	case v.Type() == durationType:
		p.duration(n, v, field)
	case v.Type() == timeType:
		p.timestamp(n, v, field)
	case v.Type() == publicKeyType && n.Kind == yaml.ScalarNode:
		// The short form: the authorized_keys line alone.
		p.scalar(n, v.Field(0), field)
	case v.Type() == publicKeyType && n.Kind != yaml.MappingNode:
		p.fail(n, field, "want an authorized_keys line or a mapping {key, comment, expires_at}, got %s", kindName(n))
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
		if k.ShortTag() == "!!merge" {
			p.errorf(k.Line, field, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		// A key that is not a plain name is never repeated in an error:
		// the file may be anything (a shadow file's lines are such keys).
		// The line number says where it is.
		path, hidden := field, " (not a plain name, so not repeated here)"
		if plainKey(k.Value) {
			path, hidden = joinPath(field, k.Value), ""
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k.Line, path, "duplicate key%s (first written at line %d)", hidden, first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := known[k.Value]
		if !ok {
			if len(p.errs) >= MaxErrors {
				p.more++ // not shown: spare the suggestion's cost
				continue
			}
			p.errorf(k.Line, path, "unknown key%s%s", hidden, suggest(k.Value, known))
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
		p.value(val, v.FieldByIndex(idx), path)
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
	d, err := ParseDuration(n.Value)
	if err != nil {
		// quote shows the value only when it is a plain word.
		p.fail(n, field, "invalid duration %s (want e.g. \"30s\", \"1m30s\" or \"7d\")", quote(n.Value))
		return
	}
	v.SetInt(int64(d))
}

// timestamp reads a time: RFC 3339 (2027-03-01T00:00:00Z, with any
// offset) or a date alone (2027-03-01, midnight UTC).
func (p *parser) timestamp(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "want a time such as 2027-03-01T00:00:00Z, got %s", kindName(n))
		return
	}
	t, err := ParseTime(n.Value)
	if err != nil {
		p.fail(n, field, "invalid time %s (want e.g. 2027-03-01T00:00:00Z or 2027-03-01)", quote(n.Value))
		return
	}
	v.Set(reflect.ValueOf(t))
}

// yamlFields maps each yaml key of struct type t to the index path of its
// field (for reflect.Value.FieldByIndex). The keys of a struct field tagged
// `yaml:",inline"` (Config's Restart and Live) are keys of t itself, as
// the YAML encoder writes them.
func yamlFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := range t.NumField() {
		name, inline, ok := yamlKey(t.Field(i))
		switch {
		case !ok:
		case inline:
			for k, idx := range yamlFields(t.Field(i).Type) {
				m[k] = append([]int{i}, idx...)
			}
		default:
			m[name] = []int{i}
		}
	}
	return m
}

// yamlKey is the key field f is read from; inline is true for a struct
// whose fields are keys of the mapping f is in, and ok false for a field
// that is not read from the file.
func yamlKey(f reflect.StructField) (name string, inline, ok bool) {
	if !f.IsExported() {
		return "", false, false
	}
	name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch {
	case name == "-":
		return "", false, false
	case opts == "inline" && f.Type.Kind() == reflect.Struct:
		return "", true, true
	case name == "":
		name = strings.ToLower(f.Name)
	}
	return name, false, true
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

// joinPath appends key, a plainKey, to the field path parent.
func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// plainKey reports whether an error may name key: a plain identifier of
// letters, digits, '_', '-' and '.', at most 64 bytes. Any other key is
// pointed at by its line only.
func plainKey(key string) bool {
	return plainText(key, "_-.")
}

// plainText reports whether s is 1 to 64 ASCII letters, digits and bytes
// of extra.
func plainText(s, extra string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

// quote renders a value written in the file for an error message, when it
// is plain text: at most 64 letters, digits and "_-./:@*[]" (names, paths,
// globs, addresses, durations). Anything else, a hash or a password pasted
// into the wrong field among them, is not repeated: the error's line
// points at it.
func quote(s string) string {
	if s != "" && !plainText(s, "_-./:@*[]") {
		return "(value not shown)"
	}
	return strconv.Quote(s)
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" when none is close enough to be a likely typo.
func suggest(key string, known map[string][]int) string {
	if !plainKey(key) {
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

// JoinErrors keeps the first MaxErrors of errs and joins them, with one
// *MoreErrors counting the rest (those already counted in errs included).
// It is how every error list of this package is returned.
func JoinErrors(errs []error) error {
	var kept []error
	more := 0
	for _, e := range errs {
		for _, e := range unwrap(e) {
			if m, ok := e.(*MoreErrors); ok {
				more += m.N
				continue
			}
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 && more == 0 {
		return nil
	}
	if len(kept) > MaxErrors {
		more += len(kept) - MaxErrors
		kept = kept[:MaxErrors]
	}
	if more > 0 {
		kept = append(kept, &MoreErrors{N: more})
	}
	return errors.Join(kept...)
}

// sortByLine orders errs by line, keeping the order of errors on one line.
func sortByLine(errs []error) {
	slices.SortStableFunc(errs, func(a, b error) int {
		return cmp.Compare(lineOf(a), lineOf(b))
	})
}
