package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// The ratchet tree (RFC 9420, section 7) as a group member holds it: the
// public state every member agrees on through the tree hash, with the
// operations proposals and commits apply to it. What a joiner checks of a
// tree is in tree_validate.go; TreeKEM, which refreshes a member's path
// and carries the new secrets to the rest of the group, in treekem.go.

// Errors of the ratchet tree and TreeKEM. Each is wrapped with detail; test
// with errors.Is.
var (
	// ErrInvalidTree: a ratchet tree is malformed or fails the checks a
	// joining member makes (RFC 9420, section 12.4.3.1): its tree hash,
	// parent hashes, leaf signatures and capabilities, unmerged leaves and
	// key uniqueness.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrInvalidUpdatePath: an UpdatePath received in a commit is
	// malformed, does not match the tree, or does not decrypt (RFC 9420,
	// sections 7.5, 7.6 and 12.4.2).
	ErrInvalidUpdatePath = errors.New("mls: invalid update path")
	// ErrInvalidTreeChange: an operation cannot apply to the tree: an
	// update or removal of a blank leaf or one outside the tree, removing
	// the last member, a leaf node that cannot be encoded, a tree that
	// would outgrow 2^31 leaves.
	ErrInvalidTreeChange = errors.New("mls: invalid change to the ratchet tree")
	// ErrPrivateKeyMismatch: private keys or path secrets given for the
	// tree do not match its public keys, or a member holds none of the
	// keys it needs.
	ErrPrivateKeyMismatch = errors.New("mls: private keys do not match the ratchet tree")
)

// maxLeaves is the most leaves a tree may have: leaf indices are uint32
// and node indices, twice as large, must fit one too.
const maxLeaves = 1 << 31

// Tree is a ratchet tree with RFC 9420's semantics: always full (2^d
// leaves, section 7.7), with its tree hashes cached and recomputed only
// where the tree changed.
//
// A Tree owns its nodes and never modifies a *Node once it holds it: a
// change replaces the node. The nodes its accessors return must be treated
// as read-only. Methods that change the tree leave it unchanged when they
// return an error. A Tree is not safe for concurrent use, not even for
// reading, since reading fills the hash cache; Clone it for another
// goroutine.
type Tree struct {
	suite *Suite
	// nodes holds 2·leaves − 1 nodes in the array representation; nil is
	// blank.
	nodes []*Node
	// hashes caches each node's tree hash; nil when not yet computed or
	// invalidated by a change below the node.
	hashes [][]byte
	// ops counts the primitives TreeKEM uses, for the benchmarks; nil
	// otherwise.
	ops *opCounts
}

// opCounts tallies cryptographic primitives, so that a benchmark can set
// an operation's cost against the sum of its primitives'.
type opCounts struct {
	seal, open, deriveKeyPair, sign, verify, expand, keyCheck int
	hash, hashBytes                                           int
}

// NewTree returns the tree a ratchet_tree extension (or an out-of-band
// copy) describes, extended with blank nodes to a full tree as RFC 9420,
// section 12.4.3.3 says. The tree takes ownership of rt's nodes.
//
// NewTree checks the structure only: node types at the right positions,
// the last node non-blank, unmerged leaves inside the tree. Before trusting
// a tree from a GroupInfo or a Welcome, Validate it.
func NewTree(s *Suite, rt RatchetTree) (*Tree, error) {
	if len(rt) == 0 {
		return nil, fmt.Errorf("%w: no nodes", ErrInvalidTree)
	}
	if rt[len(rt)-1] == nil {
		return nil, fmt.Errorf("%w: the last node is blank", ErrInvalidTree)
	}
	if uint64(len(rt)) > uint64(nodeWidth(maxLeaves)) {
		return nil, fmt.Errorf("%w: %d nodes", ErrInvalidTree, len(rt))
	}
	n := uint32(1)
	for uint64(nodeWidth(n)) < uint64(len(rt)) {
		n *= 2
	}
	nodes := make([]*Node, nodeWidth(n))
	copy(nodes, rt)
	for i, nd := range nodes {
		if nd == nil {
			continue
		}
		x := NodeIndex(i)
		switch {
		case isLeaf(x) && (nd.Type != NodeTypeLeaf || nd.Leaf == nil):
			return nil, fmt.Errorf("%w: node %d is a leaf position holding a node of type %d", ErrInvalidTree, x, nd.Type)
		case !isLeaf(x) && (nd.Type != NodeTypeParent || nd.Parent == nil):
			return nil, fmt.Errorf("%w: node %d is a parent position holding a node of type %d", ErrInvalidTree, x, nd.Type)
		case isLeaf(x):
			if err := checkLeafNode(nd.Leaf); err != nil {
				return nil, fmt.Errorf("%w: leaf %d: %v", ErrInvalidTree, x.leaf(), err)
			}
		default:
			for _, l := range nd.Parent.UnmergedLeaves {
				if uint32(l) >= n {
					return nil, fmt.Errorf("%w: node %d lists unmerged leaf %d of a tree of %d leaves", ErrInvalidTree, x, l, n)
				}
			}
		}
	}
	return &Tree{suite: s, nodes: nodes, hashes: make([][]byte, len(nodes))}, nil
}

// NewOneMemberTree returns the tree of a new group: one leaf, the
// creator's (RFC 9420, section 11). The tree keeps leaf.
func NewOneMemberTree(s *Suite, leaf *LeafNode) (*Tree, error) {
	if err := checkLeafNode(leaf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTreeChange, err)
	}
	return &Tree{suite: s, nodes: []*Node{leafNode(leaf)}, hashes: make([][]byte, 1)}, nil
}

// checkLeafNode refuses a leaf node the encoder cannot write, so that a
// tree never holds one: the decoder never produces such a node, but a
// caller can build one.
func checkLeafNode(l *LeafNode) error {
	if l == nil {
		return errors.New("nil leaf node")
	}
	if l.Source < LeafNodeSourceKeyPackage || l.Source > LeafNodeSourceCommit {
		return fmt.Errorf("leaf node source %d", l.Source)
	}
	if l.Credential.Type == 0 {
		return errors.New("credential type 0")
	}
	return nil
}

func leafNode(l *LeafNode) *Node     { return &Node{Type: NodeTypeLeaf, Leaf: l} }
func parentNode(p *ParentNode) *Node { return &Node{Type: NodeTypeParent, Parent: p} }

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *Suite { return t.suite }

// Clone returns a copy of the tree that changes independently. It is
// cheap: nodes and cached hashes are shared, since neither is ever
// modified in place.
func (t *Tree) Clone() *Tree {
	return &Tree{suite: t.suite, nodes: slices.Clone(t.nodes), hashes: slices.Clone(t.hashes), ops: t.ops}
}

// Leaves returns the number of leaves, a power of two, blank ones
// included.
func (t *Tree) Leaves() uint32 { return uint32(len(t.nodes)+1) / 2 }

// Root returns the index of the root node.
func (t *Tree) Root() NodeIndex { return root(t.Leaves()) }

// Members returns the indices of the non-blank leaves, in order.
func (t *Tree) Members() []LeafIndex {
	var m []LeafIndex
	for l := range LeafIndex(t.Leaves()) {
		if t.nodes[l.node()] != nil {
			m = append(m, l)
		}
	}
	return m
}

// Leaf returns the leaf node at l, or nil if it is blank or outside the
// tree.
func (t *Tree) Leaf(l LeafIndex) *LeafNode {
	if uint32(l) >= t.Leaves() {
		return nil
	}
	if n := t.nodes[l.node()]; n != nil {
		return n.Leaf
	}
	return nil
}

// ParentNode returns the parent node at x, or nil if it is blank, a leaf
// position or outside the tree.
func (t *Tree) ParentNode(x NodeIndex) *ParentNode {
	if int64(x) >= int64(len(t.nodes)) || isLeaf(x) {
		return nil
	}
	if n := t.nodes[x]; n != nil {
		return n.Parent
	}
	return nil
}

// IsBlank reports whether node x is blank. Nodes outside the tree are
// blank, as the padding of a ratchet_tree extension is.
func (t *Tree) IsBlank(x NodeIndex) bool {
	return int64(x) >= int64(len(t.nodes)) || t.nodes[x] == nil
}

// encryptionKey returns the HPKE public key of the non-blank node x.
func (t *Tree) encryptionKey(x NodeIndex) []byte {
	n := t.nodes[x]
	if n.Leaf != nil {
		return n.Leaf.EncryptionKey
	}
	return n.Parent.EncryptionKey
}

// inTree reports whether x is a node of the tree.
func (t *Tree) inTree(x NodeIndex) bool { return int64(x) < int64(len(t.nodes)) }

// Resolution returns the resolution of node x (RFC 9420, section 4.1.2):
// the non-blank nodes that together cover every non-blank node below x,
// left first, each followed by its unmerged leaves. It returns nil for a
// node outside the tree.
func (t *Tree) Resolution(x NodeIndex) []NodeIndex {
	if !t.inTree(x) {
		return nil
	}
	return t.appendResolution(nil, x)
}

func (t *Tree) appendResolution(dst []NodeIndex, x NodeIndex) []NodeIndex {
	if n := t.nodes[x]; n != nil {
		dst = append(dst, x)
		if n.Parent != nil {
			for _, l := range n.Parent.UnmergedLeaves {
				dst = append(dst, l.node())
			}
		}
		return dst
	}
	if isLeaf(x) {
		return dst
	}
	return t.appendResolution(t.appendResolution(dst, left(x)), right(x))
}

// hasNonBlank reports whether the subtree under x has a non-blank node,
// which is whether x's resolution is non-empty.
func (t *Tree) hasNonBlank(x NodeIndex) bool {
	if t.nodes[x] != nil {
		return true
	}
	return !isLeaf(x) && (t.hasNonBlank(left(x)) || t.hasNonBlank(right(x)))
}

// FilteredDirectPath returns the filtered direct path of leaf l (RFC 9420,
// section 4.1.2): its ancestors, from its parent up, without those whose
// child on l's copath has an empty resolution. It returns nil for a leaf
// outside the tree.
func (t *Tree) FilteredDirectPath(l LeafIndex) []NodeIndex {
	if uint32(l) >= t.Leaves() {
		return nil
	}
	var fdp []NodeIndex
	x := l.node()
	for _, p := range directPath(x, t.Leaves()) {
		if t.hasNonBlank(copathChild(p, x)) {
			fdp = append(fdp, p)
		}
	}
	return fdp
}

// copathChild returns the child of the parent node p whose subtree does
// not hold the node x, which must be below p.
func copathChild(p, x NodeIndex) NodeIndex {
	if x < p {
		return right(p)
	}
	return left(p)
}

// pathChild returns the child of the parent node p whose subtree holds the
// node x, which must be below p.
func pathChild(p, x NodeIndex) NodeIndex {
	if x < p {
		return left(p)
	}
	return right(p)
}

// leafSpan returns the leaves under node x: [lo, hi).
func leafSpan(x NodeIndex) (lo, hi uint32) {
	k := level(x)
	lo = (uint32(x) - (1<<k - 1)) / 2
	return lo, lo + 1<<k
}

// isBelow reports whether leaf l is in the subtree under x.
func isBelow(l LeafIndex, x NodeIndex) bool {
	lo, hi := leafSpan(x)
	return uint32(l) >= lo && uint32(l) < hi
}

// TreeHash returns the tree hash of the root (RFC 9420, section 7.8), the
// GroupContext's tree_hash.
func (t *Tree) TreeHash() []byte { return bytes.Clone(t.treeHash(t.Root())) }

// treeHash returns the tree hash of node x, from the cache if it can. The
// result is the cache's: do not modify it.
func (t *Tree) treeHash(x NodeIndex) []byte {
	if h := t.hashes[x]; h != nil {
		return h
	}
	var h []byte
	if isLeaf(x) {
		h = t.hashLeaf(x, t.nodes[x])
	} else {
		h = t.hashParent(t.nodes[x], nil, t.treeHash(left(x)), t.treeHash(right(x)))
	}
	t.hashes[x] = h
	return h
}

// hashLeaf hashes TreeHashInput for the leaf node x holding n (nil: blank).
func (t *Tree) hashLeaf(x NodeIndex, n *Node) []byte {
	var w Writer
	w.U8(uint8(NodeTypeLeaf))
	w.U32(uint32(x.leaf()))
	w.Optional(n != nil, func(w *Writer) { n.Leaf.encode(w) })
	return t.hash(w.Bytes())
}

// hashParent hashes TreeHashInput for a parent node n (nil: blank) with
// children's tree hashes lh and rh. If drop is non-empty, those leaves are
// left out of n's unmerged leaves.
func (t *Tree) hashParent(n *Node, drop []LeafIndex, lh, rh []byte) []byte {
	var w Writer
	w.U8(uint8(NodeTypeParent))
	w.Optional(n != nil, func(w *Writer) {
		p := n.Parent
		if len(drop) > 0 {
			q := *p
			q.UnmergedLeaves = slices.DeleteFunc(slices.Clone(p.UnmergedLeaves), func(l LeafIndex) bool {
				return slices.Contains(drop, l)
			})
			p = &q
		}
		p.encode(w)
	})
	w.Opaque(lh)
	w.Opaque(rh)
	return t.hash(w.Bytes())
}

func (t *Tree) hash(b []byte) []byte {
	if t.ops != nil {
		t.ops.hash++
		t.ops.hashBytes += len(b)
	}
	return t.suite.Hash(b)
}

// originalTreeHash returns the tree hash of x in the tree with the leaves
// in drop blanked and removed from every unmerged_leaves list: the
// original_sibling_tree_hash of RFC 9420, section 7.9, for a parent whose
// unmerged leaves are drop. Where none of drop is under x, it is x's
// cached tree hash.
func (t *Tree) originalTreeHash(x NodeIndex, drop []LeafIndex) []byte {
	if !slices.ContainsFunc(drop, func(l LeafIndex) bool { return isBelow(l, x) }) {
		return t.treeHash(x)
	}
	if isLeaf(x) {
		return t.hashLeaf(x, nil) // x is one of drop
	}
	return t.hashParent(t.nodes[x], drop, t.originalTreeHash(left(x), drop), t.originalTreeHash(right(x), drop))
}

// parentHash returns the parent hash of the non-blank parent p with copath
// child s (RFC 9420, section 7.9): Hash(ParentHashInput).
func (t *Tree) parentHash(p, s NodeIndex) []byte {
	pn := t.nodes[p].Parent
	var w Writer
	w.Opaque(pn.EncryptionKey)
	w.Opaque(pn.ParentHash)
	w.Opaque(t.originalTreeHash(s, pn.UnmergedLeaves))
	return t.hash(w.Bytes())
}

// setNode replaces node x and invalidates the cached hashes it feeds.
func (t *Tree) setNode(x NodeIndex, n *Node) {
	t.nodes[x] = n
	t.hashes[x] = nil
	for _, p := range directPath(x, t.Leaves()) {
		t.hashes[p] = nil
	}
}

// blankDirectPath blanks the parents of leaf l.
func (t *Tree) blankDirectPath(l LeafIndex) {
	for _, p := range directPath(l.node(), t.Leaves()) {
		if t.nodes[p] != nil {
			t.setNode(p, nil)
		}
	}
}

// Marshal returns the tree as a ratchet_tree extension carries it.
func (t *Tree) Marshal() []byte { return t.RatchetTree().Marshal() }

// RatchetTree returns the tree's nodes in the wire form, without the blank
// nodes after the last non-blank one (RFC 9420, section 12.4.3.3). The
// nodes are the tree's: treat them as read-only.
func (t *Tree) RatchetTree() RatchetTree {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1] == nil {
		end--
	}
	return slices.Clone(RatchetTree(t.nodes[:end]))
}

// AddLeaf puts ln in the leftmost blank leaf, doubling the tree if none is
// blank, and lists the new leaf as unmerged in every non-blank parent
// above it (RFC 9420, section 12.1.1). It returns the leaf's index. It
// does not validate ln: see VerifyLeafNode. The tree keeps ln.
func (t *Tree) AddLeaf(ln *LeafNode) (LeafIndex, error) {
	if err := checkLeafNode(ln); err != nil {
		return 0, fmt.Errorf("%w: add: %v", ErrInvalidTreeChange, err)
	}
	l, ok := LeafIndex(0), false
	for ; uint32(l) < t.Leaves(); l++ {
		if t.nodes[l.node()] == nil {
			ok = true
			break
		}
	}
	if !ok {
		if t.Leaves() >= maxLeaves {
			return 0, fmt.Errorf("%w: add: the tree has the most leaves it can", ErrInvalidTreeChange)
		}
		t.extend()
	}
	for _, p := range directPath(l.node(), t.Leaves()) {
		n := t.nodes[p]
		if n == nil {
			continue
		}
		q := *n.Parent
		i, _ := slices.BinarySearch(q.UnmergedLeaves, l)
		q.UnmergedLeaves = slices.Insert(slices.Clone(q.UnmergedLeaves), i, l)
		t.setNode(p, parentNode(&q))
	}
	t.setNode(l.node(), leafNode(ln))
	return l, nil
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root, over a blank right subtree (RFC 9420, section 7.7). Node
// indices and cached hashes of the old tree stay valid.
func (t *Tree) extend() {
	n := len(t.nodes) + 1
	t.nodes = append(t.nodes, make([]*Node, n)...)
	t.hashes = append(t.hashes, make([][]byte, n)...)
}

// truncate halves the tree while the right subtree of the root has no
// non-blank leaf (RFC 9420, sections 7.7 and 12.1.3).
func (t *Tree) truncate() {
	for t.Leaves() > 1 {
		r := t.Root()
		for x := r + 1; int(x) < len(t.nodes); x += 2 {
			if t.nodes[x] != nil {
				return
			}
		}
		t.nodes = t.nodes[:r:r]
		t.hashes = t.hashes[:r:r]
	}
}

// UpdateLeaf replaces the leaf node of member l and blanks its direct path
// (RFC 9420, section 12.1.2). It does not validate ln: see
// VerifyLeafNode. The tree keeps ln.
func (t *Tree) UpdateLeaf(l LeafIndex, ln *LeafNode) error {
	if err := checkLeafNode(ln); err != nil {
		return fmt.Errorf("%w: update leaf %d: %v", ErrInvalidTreeChange, l, err)
	}
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: update of leaf %d, which is blank", ErrInvalidTreeChange, l)
	}
	t.setNode(l.node(), leafNode(ln))
	t.blankDirectPath(l)
	return nil
}

// RemoveLeaf blanks member l's leaf and direct path, then truncates the
// tree (RFC 9420, section 12.1.3). Removing the last member is an error.
func (t *Tree) RemoveLeaf(l LeafIndex) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: removal of leaf %d, which is blank", ErrInvalidTreeChange, l)
	}
	if len(t.Members()) == 1 {
		return fmt.Errorf("%w: removal of leaf %d, the last member", ErrInvalidTreeChange, l)
	}
	t.setNode(l.node(), nil)
	t.blankDirectPath(l)
	t.truncate()
	return nil
}

// CommittedProposal is a proposal a commit covers, with the leaf of the
// member who sent it; only an Update uses Sender, since the other
// proposals that change the tree say which leaf they concern.
type CommittedProposal struct {
	Sender   LeafIndex
	Proposal Proposal
}

// ApplyProposals applies a commit's proposals to the tree in the order
// RFC 9420, section 12.3 prescribes: Updates, then Removes, then Adds in
// the order given. Other proposal types do not change the tree and are
// skipped. It returns the leaves the Adds filled, in order.
//
// It checks only that each proposal applies (an Update or Remove of a
// non-blank leaf); whether the list is valid (section 12.2) and each leaf
// node acceptable (VerifyLeafNode) is for the caller to check first. The
// tree keeps the proposals' leaf nodes. On error the tree is unchanged.
func (t *Tree) ApplyProposals(ps []CommittedProposal) ([]LeafIndex, error) {
	nt := t.Clone()
	for _, p := range ps {
		if u, ok := p.Proposal.(*UpdateProposal); ok {
			if err := nt.UpdateLeaf(p.Sender, &u.LeafNode); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range ps {
		if r, ok := p.Proposal.(*RemoveProposal); ok {
			if err := nt.RemoveLeaf(r.Removed); err != nil {
				return nil, err
			}
		}
	}
	var added []LeafIndex
	for _, p := range ps {
		if a, ok := p.Proposal.(*AddProposal); ok {
			l, err := nt.AddLeaf(&a.KeyPackage.LeafNode)
			if err != nil {
				return nil, err
			}
			added = append(added, l)
		}
	}
	*t = *nt
	return added, nil
}
