package mls

import (
	"slices"
	"testing"
)

// TestConformanceTreeMath checks every entry of tree-math.json: the node
// count, the root, and each node's children, parent and sibling, where a
// JSON null means the node has none.
func TestConformanceTreeMath(t *testing.T) {
	var vs []struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    NodeIndex `json:"root"`
		Left    []*NodeIndex
		Right   []*NodeIndex
		Parent  []*NodeIndex
		Sibling []*NodeIndex
	}
	loadVectors(t, "tree-math", &vs)
	entries := 0
	for _, v := range vs {
		n := v.NLeaves
		if got := nodeWidth(n); got != v.NNodes {
			t.Errorf("nodeWidth(%d) = %d, want %d", n, got, v.NNodes)
		}
		if got := root(n); got != v.Root {
			t.Errorf("root(%d) = %d, want %d", n, got, v.Root)
		}
		for _, arr := range [][]*NodeIndex{v.Left, v.Right, v.Parent, v.Sibling} {
			if len(arr) != int(v.NNodes) {
				t.Fatalf("n_leaves %d: an array has %d entries, want %d", n, len(arr), v.NNodes)
			}
		}
		for i := range NodeIndex(v.NNodes) {
			check := func(name string, want *NodeIndex, has bool, f func() NodeIndex) {
				t.Helper()
				entries++
				switch {
				case want == nil && has:
					t.Errorf("n=%d: %s(%d) exists, want none", n, name, i)
				case want != nil && !has:
					t.Errorf("n=%d: %s(%d) is none, want %d", n, name, i, *want)
				case want != nil:
					if got := f(); got != *want {
						t.Errorf("n=%d: %s(%d) = %d, want %d", n, name, i, got, *want)
					}
				}
			}
			check("left", v.Left[i], !isLeaf(i), func() NodeIndex { return left(i) })
			check("right", v.Right[i], !isLeaf(i), func() NodeIndex { return right(i) })
			check("parent", v.Parent[i], i != root(n), func() NodeIndex { return parent(i, n) })
			check("sibling", v.Sibling[i], i != root(n), func() NodeIndex { return sibling(i, n) })
		}
	}
	t.Logf("tree-math.json: %d vectors checked (%d node entries)", len(vs), entries)
}

// TestTreeMathPaths checks directPath, copath and commonAncestor against
// their definitions, built from parent and sibling, on every node of every
// full tree up to 256 leaves.
func TestTreeMathPaths(t *testing.T) {
	for n := uint32(1); n <= 256; n *= 2 {
		r := root(n)
		w := NodeIndex(nodeWidth(n))
		ancestors := func(x NodeIndex) []NodeIndex { // x and its direct path
			a := []NodeIndex{x}
			for x != r {
				x = parent(x, n)
				a = append(a, x)
			}
			return a
		}
		for x := range w {
			dp := directPath(x, n)
			if want := ancestors(x)[1:]; !slices.Equal(dp, want) {
				t.Fatalf("n=%d: directPath(%d) = %v, want %v", n, x, dp, want)
			}
			cp := copath(x, n)
			var want []NodeIndex
			for _, y := range ancestors(x) {
				if y != r {
					want = append(want, sibling(y, n))
				}
			}
			if !slices.Equal(cp, want) {
				t.Fatalf("n=%d: copath(%d) = %v, want %v", n, x, cp, want)
			}
			if x != r && level(parent(x, n)) != level(x)+1 {
				t.Fatalf("n=%d: parent(%d) is not one level up", n, x)
			}
			for y := range w {
				// The lowest node in both ancestor lists.
				ay := ancestors(y)
				var want NodeIndex
				for _, a := range ancestors(x) {
					if slices.Contains(ay, a) {
						want = a
						break
					}
				}
				if got := commonAncestor(x, y); got != want {
					t.Fatalf("n=%d: commonAncestor(%d, %d) = %d, want %d", n, x, y, got, want)
				}
			}
		}
		for l := range LeafIndex(n) {
			if x := l.node(); !isLeaf(x) || x.leaf() != l {
				t.Fatalf("leaf %d <-> node %d", l, x)
			}
		}
	}
}

func TestTreeMathPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"left of a leaf", func() { left(4) }},
		{"right of a leaf", func() { right(0) }},
		{"parent of the root", func() { parent(3, 4) }},
		{"sibling of the root", func() { sibling(0, 1) }},
		{"parent outside the tree", func() { parent(7, 4) }},
		{"directPath outside the tree", func() { directPath(8, 4) }},
		{"tree not full", func() { parent(0, 3) }},
		{"empty tree", func() { directPath(0, 0) }},
		{"too many leaves", func() { nodeWidth(1<<31 + 1) }},
		{"leaf of a parent", func() { NodeIndex(3).leaf() }},
		{"leaf index too big", func() { LeafIndex(1 << 31).node() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f()
		})
	}
}

func TestTreeMathLargest(t *testing.T) {
	const n = 1 << 31
	if w := nodeWidth(n); w != 1<<32-1 {
		t.Fatalf("nodeWidth(2^31) = %d", w)
	}
	r := root(n)
	if r != 1<<31-1 {
		t.Fatalf("root(2^31) = %d", r)
	}
	last := NodeIndex(nodeWidth(n) - 1)
	if dp := directPath(last, n); len(dp) != 31 || dp[30] != r {
		t.Fatalf("directPath(%d) = %v", last, dp)
	}
	if cp := copath(0, n); len(cp) != 31 || cp[30] != 3<<30-1 {
		t.Fatalf("copath(0) = %v", cp)
	}
}
