package configedit

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// lcs is the length of a longest common subsequence, by dynamic programming.
func lcs(a, b []string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// TestDiff checks on random inputs that the script is valid (it turns a
// into b) and shortest (its equal lines are a longest common subsequence).
func TestDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() []string {
		s := make([]string, rng.IntN(12))
		for i := range s {
			s[i] = string(rune('a' + rng.IntN(4)))
		}
		return s
	}
	for range 3000 {
		a, b := gen(), gen()
		ops := diff(a, b)
		var gotA, gotB []string
		equal, ia, ib := 0, 0, 0
		for _, o := range ops {
			switch o.kind {
			case opEqual:
				if o.a != ia || o.b != ib || a[o.a] != b[o.b] {
					t.Fatalf("diff(%q, %q): bad equal op %+v", a, b, o)
				}
				gotA, gotB = append(gotA, a[o.a]), append(gotB, b[o.b])
				ia, ib, equal = ia+1, ib+1, equal+1
			case opDelete:
				if o.a != ia {
					t.Fatalf("diff(%q, %q): delete %+v out of order", a, b, o)
				}
				gotA = append(gotA, a[o.a])
				ia++
			case opInsert:
				if o.b != ib {
					t.Fatalf("diff(%q, %q): insert %+v out of order", a, b, o)
				}
				gotB = append(gotB, b[o.b])
				ib++
			}
		}
		if !slices.Equal(gotA, a) || !slices.Equal(gotB, b) {
			t.Fatalf("diff(%q, %q) does not cover both sides: %+v", a, b, ops)
		}
		if want := lcs(a, b); equal != want {
			t.Fatalf("diff(%q, %q) keeps %d lines, want %d", a, b, equal, want)
		}
	}
}

func TestDiffTooLargeFallsBack(t *testing.T) {
	// Two long, entirely different middles exceed the trace budget: the
	// middle is replaced wholesale, which is still a valid script.
	n := 2000
	a, b := make([]string, n), make([]string, n)
	for i := range n {
		a[i], b[i] = "a"+strings.Repeat("x", i%7), "b"+strings.Repeat("y", i%5)
	}
	a = append([]string{"same"}, append(a, "end")...)
	b = append([]string{"same"}, append(b, "end")...)
	ops := diff(a, b)
	if len(ops) != 2+2*n || ops[0].kind != opEqual || ops[len(ops)-1].kind != opEqual {
		t.Errorf("got %d ops, want %d with equal ends", len(ops), 2+2*n)
	}
}

func TestRestore(t *testing.T) {
	tests := []struct {
		name     string
		orig     string
		encoded  string // as yaml.v3 would write the edited tree
		want     string
		fallback bool
	}{
		{
			name:    "blank lines and alignment come back",
			orig:    "# head\n\na: 1      # one\n\nb:\n  c: 2   # two\n",
			encoded: "# head\n\na: 1 # one\nb:\n  c: 2 # two\n  d: 3\n",
			want:    "# head\n\na: 1      # one\n\nb:\n  c: 2   # two\n  d: 3\n",
		},
		{
			name:    "a comment line yaml.v3 moved stays where it was",
			orig:    "a:\n  b: 1\n  # about c\n  c: 2\n",
			encoded: "a:\n  b: 1\n# about c\n  c: 2\n",
			want:    "a:\n  b: 1\n  # about c\n  c: 2\n",
		},
		{
			name:    "a changed value keeps its comment column",
			orig:    "a: true       # why\n",
			encoded: "a: false # why\n",
			want:    "a: false      # why\n",
		},
		{
			name:    "quoted value with a hash",
			orig:    "a: \"x # y\"   # why\n",
			encoded: "a: \"x # z\" # why\n",
			want:    "a: \"x # z\"   # why\n",
		},
		{
			name:     "merging would change a value: fall back",
			orig:     "a: \"x  y\"\n",
			encoded:  "a: \"x y\"\n",
			fallback: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := restore([]byte(tt.orig), []byte(tt.encoded))
			if ok == tt.fallback {
				t.Fatalf("restore ok = %v, want %v (got %q)", ok, !tt.fallback, got)
			}
			if ok && string(got) != tt.want {
				t.Errorf("restore =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestRenderFallback: when the merged text would not mean what yaml.v3
// wrote, the file is written as yaml.v3 wrote it, and the caller is told.
func TestRenderFallback(t *testing.T) {
	orig := []byte("# c\n\na: \"x  y\"   # two spaces\nb: 1\n")
	doc, err := decode(orig, "f")
	if err != nil {
		t.Fatal(err)
	}
	root := rootMapping(doc)
	root.Content[1].Value = "x y"
	out, reformatted, lost, err := render(doc, orig)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# c\n\na: \"x y\" # two spaces\nb: 1\n"; !reformatted || lost != 0 || string(out) != want {
		t.Errorf("render = %q, reformatted %v, lost %d; want %q, true, 0", out, reformatted, lost, want)
	}

	root.Content[1].Value = "x  y"
	out, reformatted, _, err = render(doc, orig)
	if err != nil || reformatted || string(out) != string(orig) {
		t.Errorf("render of the unchanged tree = %q, reformatted %v (%v); want the original bytes", out, reformatted, err)
	}
}

func TestDetectStyle(t *testing.T) {
	tests := []struct {
		doc  string
		want style
	}{
		{"", style{2, false}},
		{"a: 1\n", style{2, false}},
		{"a:\n  b: 1\n", style{2, false}},
		{"a:\n    b: 1\n", style{4, false}},
		{"users:\n- name: a\n  home: /a\n", style{2, true}},
		{"users:\n    - name: a\n      home: /a\n", style{4, false}},
		{"log: {level: info}\nusers:\n   - name: a\n", style{3, false}},
		{"users: [a]\n", style{2, false}},
	}
	for _, tt := range tests {
		if got := detectStyle([]byte(tt.doc)); got != tt.want {
			t.Errorf("detectStyle(%q) = %+v, want %+v", tt.doc, got, tt.want)
		}
	}
}
