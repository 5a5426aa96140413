package mls

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// Validation of the ratchet tree: what a member joining a group checks of
// the tree it is given (RFC 9420, section 12.4.3.1), and of a leaf node
// entering the tree (section 7.3).

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
