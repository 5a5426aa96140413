package mls

import (
	"fmt"
	"math/bits"
)

// Tree math for the array representation of a ratchet tree (RFC 9420,
// section 4.1 and appendix C). A tree with n leaves has 2n-1 nodes; leaf L
// sits at node 2L, parents at odd indices, and the root at 2^k-1 for the
// largest 2^k below the node count.
//
// RFC 9420 trees are always full: they grow by doubling and shrink by
// halving (section 7.7), and a ratchet_tree extension is padded to a full
// tree (section 12.4.3.3). So every function taking a leaf count n requires
// n to be a power of two, as the RFC's own parent() does implicitly. The
// functions panic on arguments outside their domain (a leaf's children, the
// root's parent, a node outside the tree), as the RFC's pseudocode raises:
// the callers work on trees whose size they have already checked, and an
// index that escapes that check is a bug, not bad input.

// LeafIndex numbers a tree's leaves from the left, starting at 0.
type LeafIndex uint32

// NodeIndex numbers a tree's nodes in the array representation: leaves at
// even indices, parents at odd ones.
type NodeIndex uint32

// node returns the index of leaf l's node. l must be below 2^31, which
// every leaf of a tree with a valid size is.
func (l LeafIndex) node() NodeIndex {
	if l >= 1<<31 {
		panic(fmt.Sprintf("mls: leaf index %d out of range", l))
	}
	return NodeIndex(2 * l)
}

// leaf returns the leaf index of the leaf node x.
func (x NodeIndex) leaf() LeafIndex {
	if !isLeaf(x) {
		panic(fmt.Sprintf("mls: node %d is not a leaf", x))
	}
	return LeafIndex(x / 2)
}

// isLeaf reports whether x is a leaf node.
func isLeaf(x NodeIndex) bool { return x&1 == 0 }

// level returns the height of node x above the leaves: 0 for leaves, 1 for
// their parents, and so on. It is the number of trailing one bits of x.
func level(x NodeIndex) int { return bits.TrailingZeros32(^uint32(x)) }

// nodeWidth returns the number of nodes in a tree with n leaves. n must be
// at most 2^31.
func nodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	if n > 1<<31 {
		panic(fmt.Sprintf("mls: %d leaves is too many", n))
	}
	return 2*(n-1) + 1
}

// root returns the root of a tree with n leaves.
func root(n uint32) NodeIndex {
	w := nodeWidth(n)
	if w == 0 {
		return 0
	}
	return NodeIndex(1)<<(bits.Len32(w)-1) - 1
}

// left returns the left child of the parent node x.
func left(x NodeIndex) NodeIndex {
	k := level(x)
	if k == 0 {
		panic(fmt.Sprintf("mls: leaf node %d has no children", x))
	}
	return x ^ 1<<(k-1)
}

// right returns the right child of the parent node x.
func right(x NodeIndex) NodeIndex {
	k := level(x)
	if k == 0 {
		panic(fmt.Sprintf("mls: leaf node %d has no children", x))
	}
	return x ^ 3<<(k-1)
}

// checkTree panics unless n is a valid (full) tree size and x one of its
// nodes.
func checkTree(x NodeIndex, n uint32) {
	if n == 0 || n&(n-1) != 0 {
		panic(fmt.Sprintf("mls: %d leaves is not a power of two", n))
	}
	if uint32(x) >= nodeWidth(n) {
		panic(fmt.Sprintf("mls: node %d outside a tree of %d leaves", x, n))
	}
}

// parent returns the parent of node x in a tree with n leaves. x must not
// be the root.
func parent(x NodeIndex, n uint32) NodeIndex {
	checkTree(x, n)
	if x == root(n) {
		panic(fmt.Sprintf("mls: root node %d has no parent", x))
	}
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ b<<(k+1)
}

// sibling returns the other child of x's parent in a tree with n leaves. x
// must not be the root.
func sibling(x NodeIndex, n uint32) NodeIndex {
	p := parent(x, n)
	if x < p {
		return right(p)
	}
	return left(p)
}

// directPath returns the ancestors of x in a tree with n leaves, from x's
// parent up to the root; it is empty for the root.
func directPath(x NodeIndex, n uint32) []NodeIndex {
	checkTree(x, n)
	r := root(n)
	d := make([]NodeIndex, 0, level(r)-level(x))
	for x != r {
		x = parent(x, n)
		d = append(d, x)
	}
	return d
}

// copath returns the siblings of x and of each of its ancestors below the
// root, in a tree with n leaves, ordered from x's sibling up; it is empty
// for the root.
func copath(x NodeIndex, n uint32) []NodeIndex {
	d := directPath(x, n)
	c := make([]NodeIndex, 0, len(d))
	for _, y := range d {
		c = append(c, sibling(x, n))
		x = y
	}
	return c
}

// commonAncestor returns the lowest node that is x or an ancestor of x and
// also y or an ancestor of y.
func commonAncestor(x, y NodeIndex) NodeIndex {
	// One is an ancestor of the other (or they are equal) when they agree
	// on every bit above the higher one's level.
	lx, ly := level(x)+1, level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	// Otherwise the ancestor is the node at the level where their bits
	// first agree: their common prefix, then 0111…
	k := 0
	for x != y {
		x, y = x>>1, y>>1
		k++
	}
	return x<<k + 1<<(k-1) - 1
}
