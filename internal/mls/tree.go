package mls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The ratchet tree (RFC 9420, section 7) as a group member holds it: the
// public state every member agrees on through the tree hash, with the
// operations proposals and commits apply to it. TreeKEM, which refreshes
// a member's path and carries the new secrets to the rest of the group, is
// in treekem.go.

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
// creator's (RFC 9420, section 11).
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

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid (RFC 9420, section 7.9.2): linked by a matching parent
// hash from exactly one non-blank descendant, which is the leaf that set
// it in a commit or a parent node itself so linked. Links are followed
// bottom up: a node's parent_hash can only name its lowest non-blank
// ancestor, since the nodes between were outside the sender's filtered
// direct path or blanked since.
func (t *Tree) VerifyParentHashes() error {
	links := make([]int, len(t.nodes))
	for i, n := range t.nodes {
		d := NodeIndex(i)
		if n == nil {
			continue
		}
		var ph []byte
		switch {
		case n.Parent != nil:
			ph = n.Parent.ParentHash
		case n.Leaf.Source == LeafNodeSourceCommit:
			ph = n.Leaf.ParentHash
		default:
			continue // no parent hash to link with
		}
		p, ok := t.nonBlankAncestor(d)
		if !ok {
			continue
		}
		if t.linked(d, p, ph) {
			links[p]++
		}
	}
	for i, n := range t.nodes {
		if n != nil && n.Parent != nil && links[i] != 1 {
			if links[i] == 0 {
				return fmt.Errorf("%w: parent node %d is not parent-hash valid: no descendant's parent hash links to it", ErrInvalidTree, i)
			}
			return fmt.Errorf("%w: parent node %d is not parent-hash valid: %d descendants link to it", ErrInvalidTree, i, links[i])
		}
	}
	return nil
}

// nonBlankAncestor returns the lowest non-blank proper ancestor of x.
func (t *Tree) nonBlankAncestor(x NodeIndex) (NodeIndex, bool) {
	for _, p := range directPath(x, t.Leaves()) {
		if t.nodes[p] != nil {
			return p, true
		}
	}
	return 0, false
}

// linked reports whether the parent hash ph of node d is valid with
// respect to its ancestor p (RFC 9420, section 7.9.2): ph is p's parent
// hash with the copath child on the other side, and d is in the resolution
// of p's child c on its side, whose other nodes are exactly p's unmerged
// leaves under c.
func (t *Tree) linked(d, p NodeIndex, ph []byte) bool {
	if !bytes.Equal(ph, t.parentHash(p, copathChild(p, d))) {
		return false
	}
	c := pathChild(p, d)
	res := t.Resolution(c)
	i := slices.Index(res, d)
	if i < 0 {
		return false
	}
	res = slices.Delete(res, i, i+1)
	var unmerged []NodeIndex
	for _, l := range t.nodes[p].Parent.UnmergedLeaves {
		if isBelow(l, c) {
			unmerged = append(unmerged, l.node())
		}
	}
	slices.Sort(res)
	slices.Sort(unmerged)
	return slices.Equal(res, unmerged)
}

// VerifyLeafSignatures checks the signature of every non-blank leaf, the
// leaves from updates and commits bound to groupID and their leaf index.
func (t *Tree) VerifyLeafSignatures(groupID []byte) error {
	for _, l := range t.Members() {
		if err := t.Leaf(l).Verify(t.suite, groupID, l); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, l, err)
		}
	}
	return nil
}

// Validate checks the tree as a member joining the group ctx describes
// must before using it (RFC 9420, section 12.4.3.1):
//
//   - its tree hash is ctx.TreeHash and its suite ctx.CipherSuite;
//   - unmerged leaves: each parent's list is in increasing order, names
//     non-blank leaves below it, and each such leaf is also listed by
//     every non-blank node between it and the parent;
//   - HPKE public keys are valid for the suite and unique across all
//     nodes, signature keys valid and unique across leaves;
//   - every non-blank parent node is parent-hash valid;
//   - every leaf is valid as section 7.3 has it, as far as the tree and
//     ctx tell: its signature (bound to ctx.GroupID and its index for
//     the update and commit sources), its extensions listed in its
//     capabilities, its capabilities covering the group context's
//     extensions and required_capabilities and every credential type in
//     use, its credential type supported by every member.
//
// Not checked here: credentials against the application's
// Authentication Service (section 5.3.1), and lifetimes, which need a
// clock (section 7.3 recommends checking them for received trees).
// Errors wrap ErrInvalidTree.
func (t *Tree) Validate(ctx *GroupContext) error {
	if ctx.CipherSuite != t.suite.id {
		return fmt.Errorf("%w: group of suite %#04x, tree of suite %#04x", ErrInvalidTree, uint16(ctx.CipherSuite), uint16(t.suite.id))
	}
	if !bytes.Equal(t.treeHash(t.Root()), ctx.TreeHash) {
		return fmt.Errorf("%w: tree hash does not match the group context's", ErrInvalidTree)
	}
	if err := t.verifyUnmergedLeaves(); err != nil {
		return err
	}
	if err := t.verifyKeys(); err != nil {
		return err
	}
	if err := t.VerifyParentHashes(); err != nil {
		return err
	}
	g, err := newGroupRequirements(t, ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	for _, l := range t.Members() {
		if err := g.check(t.Leaf(l), l); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, l, err)
		}
	}
	return nil
}

// verifyUnmergedLeaves checks every parent's unmerged_leaves (RFC 9420,
// sections 7.1 and 12.4.3.1).
func (t *Tree) verifyUnmergedLeaves() error {
	for i, n := range t.nodes {
		if n == nil || n.Parent == nil {
			continue
		}
		u := n.Parent.UnmergedLeaves
		for j := 1; j < len(u); j++ {
			if u[j-1] >= u[j] {
				return fmt.Errorf("%w: parent node %d: unmerged leaves not in increasing order", ErrInvalidTree, i)
			}
		}
	}
	// Every list is sorted now, so lookups can use binary search: a parent
	// high in a large tree can list many unmerged leaves.
	for i, n := range t.nodes {
		if n == nil || n.Parent == nil {
			continue
		}
		p := NodeIndex(i)
		for _, l := range n.Parent.UnmergedLeaves {
			if !isBelow(l, p) {
				return fmt.Errorf("%w: parent node %d: unmerged leaf %d is not below it", ErrInvalidTree, p, l)
			}
			if t.nodes[l.node()] == nil {
				return fmt.Errorf("%w: parent node %d: unmerged leaf %d is blank", ErrInvalidTree, p, l)
			}
			for _, q := range directPath(l.node(), t.Leaves()) {
				if q == p {
					break
				}
				if qn := t.nodes[q]; qn != nil {
					if _, found := slices.BinarySearch(qn.Parent.UnmergedLeaves, l); !found {
						return fmt.Errorf("%w: parent node %d lists unmerged leaf %d, node %d between them does not", ErrInvalidTree, p, l, q)
					}
				}
			}
		}
	}
	return nil
}

// verifyKeys checks that the HPKE keys of all nodes and the signature keys
// of all leaves are valid for the suite and unique (RFC 9420, sections 7.3
// and 12.4.3.1).
func (t *Tree) verifyKeys() error {
	enc := map[string]NodeIndex{}
	sig := map[string]LeafIndex{}
	for i, n := range t.nodes {
		if n == nil {
			continue
		}
		x := NodeIndex(i)
		k := t.encryptionKey(x)
		if err := t.suite.ValidateHPKEPublicKey(k); err != nil {
			return fmt.Errorf("%w: node %d: %w", ErrInvalidTree, x, err)
		}
		if y, dup := enc[string(k)]; dup {
			return fmt.Errorf("%w: nodes %d and %d have the same encryption key", ErrInvalidTree, y, x)
		}
		enc[string(k)] = x
		if n.Leaf == nil {
			continue
		}
		if err := t.suite.ValidateSignaturePublicKey(n.Leaf.SignatureKey); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, x.leaf(), err)
		}
		if l, dup := sig[string(n.Leaf.SignatureKey)]; dup {
			return fmt.Errorf("%w: leaves %d and %d have the same signature key", ErrInvalidTree, l, x.leaf())
		}
		sig[string(n.Leaf.SignatureKey)] = x.leaf()
	}
	return nil
}

// groupRequirements is what a leaf must support to be in a group: the
// group context's extensions, its required_capabilities, and the
// credential types of the members.
type groupRequirements struct {
	t       *Tree
	groupID []byte
	exts    []ExtensionType
	req     RequiredCapabilities
	members []LeafIndex
	// credUsers counts the members using each credential type.
	credUsers map[CredentialType]int
	// lacking lists, for each credential type asked about, the members
	// whose capabilities do not support it: computed once per type, so
	// that validating every leaf of a tree stays linear.
	lacking map[CredentialType][]LeafIndex
}

func newGroupRequirements(t *Tree, ctx *GroupContext) (*groupRequirements, error) {
	g := &groupRequirements{t: t, groupID: ctx.GroupID, members: t.Members(),
		credUsers: map[CredentialType]int{}, lacking: map[CredentialType][]LeafIndex{}}
	for _, e := range ctx.Extensions {
		g.exts = append(g.exts, e.Type)
	}
	if _, err := decodeExtension(ctx.Extensions, ExtRequiredCapabilities, &g.req); err != nil {
		return nil, fmt.Errorf("group context: %w", err)
	}
	for _, l := range g.members {
		g.credUsers[t.Leaf(l).Credential.Type]++
	}
	return g, nil
}

// lackingSupport returns the members whose capabilities do not list the
// credential type c.
func (g *groupRequirements) lackingSupport(c CredentialType) []LeafIndex {
	ls, ok := g.lacking[c]
	if !ok {
		for _, m := range g.members {
			if !slices.Contains(g.t.Leaf(m).Capabilities.Credentials, c) {
				ls = append(ls, m)
			}
		}
		g.lacking[c] = ls
	}
	return ls
}

// check validates the leaf node ln at leaf l against the group, as far as
// RFC 9420, section 7.3 can be checked without the Authentication Service
// and a clock. The signature is checked last: it is the expensive part.
func (g *groupRequirements) check(ln *LeafNode, l LeafIndex) error {
	c := &ln.Capabilities
	if !slices.Contains(c.Credentials, ln.Credential.Type) {
		return fmt.Errorf("credential type %#04x not in its own capabilities", uint16(ln.Credential.Type))
	}
	for _, e := range ln.Extensions {
		if !supportsExtension(c, e.Type) {
			return fmt.Errorf("carries extension %#04x its capabilities do not list", uint16(e.Type))
		}
	}
	for _, e := range g.exts {
		if !supportsExtension(c, e) {
			return fmt.Errorf("does not support the group context extension %#04x", uint16(e))
		}
	}
	for _, e := range g.req.Extensions {
		if !supportsExtension(c, e) {
			return fmt.Errorf("does not support the required extension %#04x", uint16(e))
		}
	}
	for _, p := range g.req.Proposals {
		if p > ProposalGroupContextExtensions && !slices.Contains(c.Proposals, p) {
			return fmt.Errorf("does not support the required proposal type %#04x", uint16(p))
		}
	}
	for _, cr := range g.req.Credentials {
		if !slices.Contains(c.Credentials, cr) {
			return fmt.Errorf("does not support the required credential type %#04x", uint16(cr))
		}
	}
	// Leaf l's current node, which ln may replace, does not count.
	var own CredentialType
	if cur := g.t.Leaf(l); cur != nil {
		own = cur.Credential.Type
	}
	for cr, n := range g.credUsers {
		if (cr != own || n > 1) && !slices.Contains(c.Credentials, cr) {
			return fmt.Errorf("does not support the credential type %#04x a member uses", uint16(cr))
		}
	}
	for _, m := range g.lackingSupport(ln.Credential.Type) {
		if m != l {
			return fmt.Errorf("credential type %#04x is not supported by leaf %d", uint16(ln.Credential.Type), m)
		}
	}
	if g.t.ops != nil {
		g.t.ops.verify++
	}
	return ln.Verify(g.t.suite, g.groupID, l)
}

// supportsExtension reports whether capabilities c cover extension type
// e: the types RFC 9420 defines are supported by every client and must not
// be listed (section 7.2).
func supportsExtension(c *Capabilities, e ExtensionType) bool {
	return e <= ExtExternalSenders || slices.Contains(c.Extensions, e)
}

// VerifyLeafNode validates a leaf node about to enter the tree at leaf l,
// from an Update proposal or a commit's UpdatePath, or the leaf node of a
// key package an Add brings in (RFC 9420, section 7.3): its source is
// want, its keys are valid and not used by any other member, it supports
// what the group ctx requires and the members' credential types and they
// support its, and its signature verifies (bound to ctx.GroupID and l for
// the update and commit sources). Credentials and lifetimes are the
// caller's to check. It does not change the tree.
func (t *Tree) VerifyLeafNode(ln *LeafNode, l LeafIndex, want LeafNodeSource, ctx *GroupContext) error {
	if err := checkLeafNode(ln); err != nil {
		return err
	}
	if ln.Source != want {
		return fmt.Errorf("mls: leaf node of source %d, want %d", ln.Source, want)
	}
	if err := t.checkNewLeafKeys(ln, l); err != nil {
		return err
	}
	g, err := newGroupRequirements(t, ctx)
	if err != nil {
		return err
	}
	if err := g.check(ln, l); err != nil {
		return fmt.Errorf("mls: leaf node: %w", err)
	}
	return nil
}

// checkNewLeafKeys checks that a new leaf node for leaf l has valid keys
// that no other node of the tree uses (a leaf's own old encryption key
// included: an update must change it).
func (t *Tree) checkNewLeafKeys(ln *LeafNode, l LeafIndex) error {
	if err := t.suite.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return err
	}
	if err := t.suite.ValidateSignaturePublicKey(ln.SignatureKey); err != nil {
		return err
	}
	if x, ok := t.findEncryptionKey([][]byte{ln.EncryptionKey}); ok {
		return fmt.Errorf("mls: leaf node's encryption key is already the key of node %d", x)
	}
	for _, m := range t.Members() {
		if m != l && bytes.Equal(t.Leaf(m).SignatureKey, ln.SignatureKey) {
			return fmt.Errorf("mls: leaf node's signature key is already leaf %d's", m)
		}
	}
	return nil
}

// findEncryptionKey returns a node whose HPKE key is one of keys. It
// compares 8-byte prefixes first: keys are random, so that rules out
// almost every node for the price of an integer comparison, which matters
// when every commit checks its path's keys against a large tree.
func (t *Tree) findEncryptionKey(keys [][]byte) (NodeIndex, bool) {
	prefix := func(b []byte) uint64 {
		var p [8]byte
		copy(p[:], b)
		return binary.BigEndian.Uint64(p[:])
	}
	ps := make([]uint64, len(keys))
	for i, k := range keys {
		ps[i] = prefix(k)
	}
	for i, n := range t.nodes {
		if n == nil {
			continue
		}
		k := t.encryptionKey(NodeIndex(i))
		p := prefix(k)
		for j, q := range ps {
			if p == q && bytes.Equal(k, keys[j]) {
				return NodeIndex(i), true
			}
		}
	}
	return 0, false
}

// Sign sets l's signature: SignWithLabel(key, "LeafNodeTBS", LeafNodeTBS)
// (RFC 9420, section 7.2), binding a leaf node from an update or a commit
// to groupID and its leaf index.
func (l *LeafNode) Sign(s *Suite, key SignaturePrivateKey, groupID []byte, leaf LeafIndex) error {
	if err := checkLeafNode(l); err != nil {
		return fmt.Errorf("mls: sign leaf node: %w", err)
	}
	sig, err := s.SignWithLabel(key, "LeafNodeTBS", l.tbs(groupID, leaf))
	if err != nil {
		return err
	}
	l.Signature = sig
	return nil
}

// Verify checks l's signature under its own signature key; groupID and
// leaf are those it is bound to if its source is update or commit. The
// error wraps ErrBadSignature or ErrMalformedKey.
func (l *LeafNode) Verify(s *Suite, groupID []byte, leaf LeafIndex) error {
	if err := checkLeafNode(l); err != nil {
		return fmt.Errorf("mls: verify leaf node: %w", err)
	}
	return s.VerifyWithLabel(l.SignatureKey, "LeafNodeTBS", l.tbs(groupID, leaf), l.Signature)
}

// AddLeaf puts ln in the leftmost blank leaf, doubling the tree if none is
// blank, and lists the new leaf as unmerged in every non-blank parent
// above it (RFC 9420, section 12.1.1). It returns the leaf's index. It
// does not validate ln: see VerifyLeafNode.
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
// VerifyLeafNode.
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
// node acceptable (VerifyLeafNode) is for the caller to check first. On
// error the tree is unchanged.
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
