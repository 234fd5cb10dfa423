package configedit

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// style is how a file indents: spaces per level, and whether list items
// start at their key's column ("compact", `users:\n- name: a`) or one level
// in (`users:\n  - name: a`).
type style struct {
	indent  int
	compact bool
}

var defaultStyle = style{indent: 2}

// detectStyle reads the indentation of the first nested mapping and the
// placement of the first block list under a key in the original file.
func detectStyle(data []byte) style {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return defaultStyle
	}
	lines := strings.Split(string(data), "\n")
	st := defaultStyle
	foundIndent, foundSeq := false, false
	budget := 10000 // nodes visited: detection needs only the first few
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if budget--; budget < 0 || (foundIndent && foundSeq) {
			return
		}
		if n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle == 0 {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 {
					continue
				}
				switch v.Kind {
				case yaml.MappingNode:
					if d := v.Content[0].Column - k.Column; !foundIndent && d >= 2 && d <= 9 {
						st.indent, foundIndent = d, true
					}
				case yaml.SequenceNode:
					first := v.Content[0]
					if foundSeq || first.Line < 1 || first.Line > len(lines) {
						break
					}
					line := lines[first.Line-1]
					dash := len(line) - len(strings.TrimLeft(line, " ")) + 1 // 1-based column
					if dash > len(line) || line[dash-1] != '-' {
						break
					}
					foundSeq = true
					st.compact = dash == k.Column
					if d := dash - k.Column; !foundIndent && !st.compact && d >= 2 && d <= 9 {
						st.indent, foundIndent = d, true
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc.Content[0])
	return st
}

func encode(doc *yaml.Node, st style) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(st.indent)
	if st.compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// render encodes the edited document of a file whose bytes were orig,
// keeping orig's formatting where yaml.v3 loses it. reformatted reports that
// it could not, and the file will be written as yaml.v3 encodes it.
//
// lost counts the comment lines of the edited tree that yaml.v3 could not
// place in out (it has no place for some positions); they are counted, not
// quoted, as a comment may hold anything.
func render(doc *yaml.Node, orig []byte) (out []byte, reformatted bool, lost int, err error) {
	enc, err := encode(doc, detectStyle(orig))
	if err != nil {
		return nil, false, 0, err
	}
	out, reformatted = enc, true
	if len(bytes.TrimSpace(orig)) == 0 {
		reformatted = false
	} else if res, ok := restore(orig, enc); ok {
		out, reformatted = res, false
	}
	var got yaml.Node
	if err := yaml.Unmarshal(out, &got); err != nil {
		return nil, false, 0, fmt.Errorf("re-read the edited YAML: %w", err)
	}
	return out, reformatted, missing(comments(doc), comments(&got)), nil
}

// missing counts the items of want (sorted) absent from have (sorted),
// as multisets.
func missing(want, have []string) int {
	n, j := 0, 0
	for _, w := range want {
		for j < len(have) && have[j] < w {
			j++
		}
		if j < len(have) && have[j] == w {
			j++
			continue
		}
		n++
	}
	return n
}

// restore returns encoded, the edited document as yaml.v3 writes it, with
// orig's own text put back wherever a line is unchanged. yaml.v3 keeps
// comments but drops blank lines, realigns comments beside values and
// re-indents comment lines; a line diff puts those back, so that only the
// lines the edit touches differ from the file the operator wrote.
//
// Lines are compared ignoring what YAML does not read (runs of spaces inside
// a line, and a comment line's indentation), so the merge could in theory
// change meaning; it is therefore decoded and compared with encoded, node by
// node and comment by comment, and ok is false when they differ.
func restore(orig, encoded []byte) (out []byte, ok bool) {
	o, n := splitLines(orig), splitLines(encoded)
	ops := diff(o.keys(), n.keys())
	changed := realign(ops, o.lines, n.lines)

	eol := "\n"
	if crlf := bytes.Count(orig, []byte("\r\n")); crlf > 0 && crlf == bytes.Count(orig, []byte("\n")) {
		eol = "\r\n" // every line of orig ends so; the new ones will too
	}
	var b strings.Builder
	emit := func(blanks []string, line, end string) {
		for _, l := range blanks {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		b.WriteString(line)
		b.WriteString(end)
	}
	for i := 0; i < len(ops); {
		if op := ops[i]; op.kind == opEqual {
			emit(o.blanks[op.a], o.lines[op.a], "\n")
			i++
			continue
		}
		// A run of changes: orig's lines in it go, encoded's come.
		var dels, ins []int
		for ; i < len(ops) && ops[i].kind != opEqual; i++ {
			if ops[i].kind == opDelete {
				dels = append(dels, ops[i].a)
			} else {
				ins = append(ins, ops[i].b)
			}
		}
		if l0 := strings.TrimSpace(o.lines[0]); len(dels) > 0 && dels[0] == 0 && (l0 == "---" || strings.HasPrefix(l0, "--- ")) {
			// yaml.v3 drops a leading document marker; keep it.
			emit(o.blanks[0], o.lines[0], "\n")
			dels = dels[1:]
		}
		for k, j := range ins {
			blanks := n.blanks[j]
			if k == 0 && len(dels) > 0 {
				// A replaced line keeps the blank lines that set it apart.
				blanks = o.blanks[dels[0]]
			}
			line := n.lines[j]
			if l, ok := changed[j]; ok {
				line = l
			}
			emit(blanks, line, eol)
		}
	}
	res := []byte(b.String())

	var want, got yaml.Node
	if yaml.Unmarshal(encoded, &want) != nil || yaml.Unmarshal(res, &got) != nil {
		return nil, false
	}
	if !sameTree(&want, &got) || !slices.Equal(comments(&want), comments(&got)) {
		return nil, false
	}
	return res, true
}

// realign returns, for lines the edit changed (say `disabled: true  # why`
// became `disabled: false # why`), the new line with its comment at the
// column the original had. A changed line is paired with the original it
// replaces when a run of changes deletes as many lines as it inserts.
func realign(ops []op, orig, enc []string) map[int]string {
	out := map[int]string{}
	for i := 0; i < len(ops); {
		if ops[i].kind == opEqual {
			i++
			continue
		}
		var del, ins []int
		for ; i < len(ops) && ops[i].kind != opEqual; i++ {
			if ops[i].kind == opDelete {
				del = append(del, ops[i].a)
			} else {
				ins = append(ins, ops[i].b)
			}
		}
		if len(del) != len(ins) {
			continue
		}
		for k := range del {
			if l, ok := alignComment(orig[del[k]], enc[ins[k]]); ok {
				out[ins[k]] = l
			}
		}
	}
	return out
}

// alignComment moves the comment of newLine to the column it has in
// oldLine, when both end with the same comment. Where the comment starts is
// not known without a YAML lexer (a quoted value may hold " #"), so each
// candidate is checked by decoding the line alone: it must mean exactly
// what newLine means, comment included.
func alignComment(oldLine, newLine string) (string, bool) {
	for from := 0; from < len(newLine); {
		at := strings.Index(newLine[from:], " #")
		if at < 0 {
			return "", false
		}
		at += from
		from = at + 2
		body, comment := strings.TrimRight(newLine[:at], " "), newLine[at+1:]
		col := len(oldLine) - len(comment)
		if !strings.HasSuffix(oldLine, comment) || col <= len(body)+1 || oldLine[col-1] != ' ' {
			continue
		}
		line := body + strings.Repeat(" ", col-len(body)) + comment
		if sameLine(newLine, line) {
			return line, true
		}
	}
	return "", false
}

// sameLine reports whether two lines decode, each on its own, to the same
// YAML with the same comments.
func sameLine(a, b string) bool {
	var x, y yaml.Node
	if yaml.Unmarshal([]byte(strings.TrimLeft(a, " ")), &x) != nil || yaml.Unmarshal([]byte(strings.TrimLeft(b, " ")), &y) != nil {
		return false
	}
	cx, cy := comments(&x), comments(&y)
	return len(cx) > 0 && sameTree(&x, &y) && slices.Equal(cx, cy)
}

// lines is a file split into its non-blank lines, each with the blank lines
// before it.
type lines struct {
	lines  []string
	blanks [][]string
	tail   []string // blank lines after the last non-blank one
}

func splitLines(data []byte) lines {
	var l lines
	var pending []string
	for line := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			pending = append(pending, line)
			continue
		}
		l.lines = append(l.lines, line)
		l.blanks = append(l.blanks, pending)
		pending = nil
	}
	l.tail = pending
	return l
}

func (l lines) keys() []string {
	keys := make([]string, len(l.lines))
	for i, line := range l.lines {
		keys[i] = lineKey(line)
	}
	return keys
}

// lineKey is what two lines must share to be the same line: the indentation
// and the words, but neither the alignment of a comment beside a value nor
// the indentation of a comment line.
func lineKey(line string) string {
	body := strings.TrimSpace(line)
	if strings.HasPrefix(body, "#") {
		return body
	}
	indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
	return indent + strings.Join(strings.Fields(body), " ")
}

// sameTree reports whether a and b mean the same YAML: kinds, resolved tags,
// values, anchors and aliases, ignoring positions, styles and comments.
func sameTree(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return false
	}
	switch a.Kind {
	case yaml.ScalarNode, yaml.AliasNode:
		if a.Value != b.Value {
			return false
		}
	}
	for i := range a.Content {
		if !sameTree(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// comments returns every comment line in the tree, trimmed and sorted.
func comments(n *yaml.Node) []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for _, c := range []string{n.HeadComment, n.LineComment, n.FootComment} {
			for line := range strings.SplitSeq(c, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					out = append(out, line)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	slices.Sort(out)
	return out
}
