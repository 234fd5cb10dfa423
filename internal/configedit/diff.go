package configedit

import "slices"

type opKind byte

const (
	opEqual  opKind = iota // a[op.a] == b[op.b]
	opDelete               // a[op.a] only
	opInsert               // b[op.b] only
)

type op struct {
	kind opKind
	a, b int
}

// maxTrace bounds the memory Myers' algorithm may use (in ints). An edit of
// a few users needs a tiny fraction; past it, the differing middle is
// treated as replaced, which is still a correct (if less faithful) diff.
const maxTrace = 4 << 20

// diff returns a shortest edit script turning a into b: common prefix and
// suffix first, Myers' O(ND) algorithm on what lies between.
func diff(a, b []string) []op {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ops := make([]op, 0, len(a)+len(b))
	for i := range pre {
		ops = append(ops, op{opEqual, i, i})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	mid, ok := myers(ma, mb)
	if !ok {
		mid = mid[:0]
		for i := range ma {
			mid = append(mid, op{opDelete, i, 0})
		}
		for j := range mb {
			mid = append(mid, op{opInsert, 0, j})
		}
	}
	for _, o := range mid {
		ops = append(ops, op{o.kind, o.a + pre, o.b + pre})
	}
	for i := range suf {
		ops = append(ops, op{opEqual, len(a) - suf + i, len(b) - suf + i})
	}
	return ops
}

// myers is the greedy forward algorithm of "An O(ND) Difference Algorithm"
// (E. Myers, 1986), keeping each round's frontier to trace the path back.
func myers(a, b []string) ([]op, bool) {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		ops := make([]op, 0, n+m)
		for i := range n {
			ops = append(ops, op{opDelete, i, 0})
		}
		for j := range m {
			ops = append(ops, op{opInsert, 0, j})
		}
		return ops, true
	}
	offset := n + m + 1
	v := make([]int, 2*offset+1) // v[offset+k]: furthest x on diagonal k
	var trace [][]int
	for d := 0; d <= n+m; d++ {
		if (d+1)*len(v) > maxTrace {
			return nil, false
		}
		trace = append(trace, slices.Clone(v))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[offset+k-1] < v[offset+k+1]) {
				x = v[offset+k+1] // down: insert b[y]
			} else {
				x = v[offset+k-1] + 1 // right: delete a[x]
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[offset+k] = x
			if x >= n && y >= m {
				return backtrack(trace, offset, n, m), true
			}
		}
	}
	return nil, false // unreachable: d = n+m always reaches the end
}

func backtrack(trace [][]int, offset, x, y int) []op {
	var ops []op
	for d := len(trace) - 1; d >= 0; d-- {
		v := trace[d]
		k := x - y
		var prevK int
		if k == -d || (k != d && v[offset+k-1] < v[offset+k+1]) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := v[offset+prevK]
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x, y = x-1, y-1
			ops = append(ops, op{opEqual, x, y})
		}
		if d > 0 {
			if x == prevX {
				ops = append(ops, op{opInsert, 0, prevY})
			} else {
				ops = append(ops, op{opDelete, prevX, 0})
			}
		}
		x, y = prevX, prevY
	}
	slices.Reverse(ops)
	return ops
}
