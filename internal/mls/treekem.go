package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
)

// TreeKEM (RFC 9420, sections 7.4 to 7.6). A committer refreshes its leaf
// and the nodes of its filtered direct path: a fresh leaf key, then a
// chain of path secrets, one per node,
//
//	path_secret[0]   random
//	path_secret[n+1] = DeriveSecret(path_secret[n], "path")
//	node key pair    = DeriveKeyPair(DeriveSecret(path_secret[n], "node"))
//
// and encrypts each node's path secret to the resolution of the node's
// child on its copath, with the provisional GroupContext as context. The
// commit_secret is the path secret one past the last node. A receiver
// decrypts the path secret of its lowest common ancestor with the
// committer, derives the rest, and checks the public keys it derives are
// the path's.

// TreePrivateKeys is a member's private view of the ratchet tree: the
// HPKE private keys of its leaf and of the parent nodes above it that it
// holds (RFC 9420, section 4: the tree invariant). It prints only
// redacted and is not safe for concurrent use.
type TreePrivateKeys struct {
	suite *Suite
	leaf  LeafIndex
	keys  map[NodeIndex]nodeKey
}

type nodeKey struct {
	priv HPKEPrivateKey
	pub  []byte
}

// NewTreePrivateKeys returns the private view of the member at leaf, with
// its leaf's private key, which must match the tree's public key there.
// Add the keys of parent nodes with ImplantPathSecret (a joiner with a
// Welcome's path secret) or SetKey (a member restoring stored state).
func NewTreePrivateKeys(t *Tree, leaf LeafIndex, leafKey HPKEPrivateKey) (*TreePrivateKeys, error) {
	k := &TreePrivateKeys{suite: t.suite, leaf: leaf, keys: map[NodeIndex]nodeKey{}}
	if uint32(leaf) >= t.Leaves() {
		return nil, fmt.Errorf("%w: leaf %d outside a tree of %d leaves", ErrPrivateKeyMismatch, leaf, t.Leaves())
	}
	if err := k.SetKey(t, leaf.node(), leafKey); err != nil {
		return nil, err
	}
	return k, nil
}

// Leaf returns the member's leaf.
func (k *TreePrivateKeys) Leaf() LeafIndex { return k.leaf }

// Nodes returns the nodes whose private key k holds, in increasing order.
func (k *TreePrivateKeys) Nodes() []NodeIndex {
	var ns []NodeIndex
	for x := range k.keys {
		ns = append(ns, x)
	}
	slices.Sort(ns)
	return ns
}

// PrivateKey returns the private key of node x, if k holds it.
func (k *TreePrivateKeys) PrivateKey(x NodeIndex) (HPKEPrivateKey, bool) {
	nk, ok := k.keys[x]
	return nk.priv, ok
}

// Clone returns a copy of k that changes independently.
func (k *TreePrivateKeys) Clone() *TreePrivateKeys {
	c := *k
	c.keys = make(map[NodeIndex]nodeKey, len(k.keys))
	for x, nk := range k.keys {
		c.keys[x] = nk
	}
	return &c
}

// SetKey stores the private key of node x: the member's leaf or a
// non-blank parent above it, whose public key must be key's.
func (k *TreePrivateKeys) SetKey(t *Tree, x NodeIndex, key HPKEPrivateKey) error {
	if t.suite.id != k.suite.id {
		return fmt.Errorf("%w: keys of suite %#04x for a tree of suite %#04x", ErrPrivateKeyMismatch, uint16(k.suite.id), uint16(t.suite.id))
	}
	if x != k.leaf.node() && (isLeaf(x) || !t.inTree(x) || !isBelow(k.leaf, x)) {
		return fmt.Errorf("%w: node %d is not leaf %d or above it", ErrPrivateKeyMismatch, x, k.leaf)
	}
	if t.IsBlank(x) {
		return fmt.Errorf("%w: node %d is blank", ErrPrivateKeyMismatch, x)
	}
	pub := key.Public()
	if !bytes.Equal(pub, t.encryptionKey(x)) {
		return fmt.Errorf("%w: private key for node %d does not match its public key", ErrPrivateKeyMismatch, x)
	}
	k.keys[x] = nodeKey{key, pub}
	return nil
}

// ImplantPathSecret sets the keys a Welcome's path secret gives a new
// member (RFC 9420, section 12.4.3.1): pathSecret is that of the lowest
// common ancestor of the member's leaf and the committer's, and each
// non-blank node above it takes the next secret of the chain. Every
// derived key must match the tree; if one does not, k is unchanged.
func (k *TreePrivateKeys) ImplantPathSecret(t *Tree, committer LeafIndex, pathSecret []byte) error {
	if committer == k.leaf || uint32(committer) >= t.Leaves() || uint32(k.leaf) >= t.Leaves() {
		return fmt.Errorf("%w: path secret from leaf %d for leaf %d in a tree of %d leaves", ErrPrivateKeyMismatch, committer, k.leaf, t.Leaves())
	}
	a := commonAncestor(k.leaf.node(), committer.node())
	if t.IsBlank(a) {
		return fmt.Errorf("%w: common ancestor %d of leaves %d and %d is blank", ErrPrivateKeyMismatch, a, k.leaf, committer)
	}
	staged := map[NodeIndex]nodeKey{}
	ps := bytes.Clone(pathSecret)
	defer func() { clear(ps) }()
	for x := a; ; x = parent(x, t.Leaves()) {
		if !t.IsBlank(x) {
			key, err := t.deriveNodeKey(ps)
			if err != nil {
				return err
			}
			pub := key.Public()
			if !bytes.Equal(pub, t.encryptionKey(x)) {
				return fmt.Errorf("%w: key derived for node %d does not match its public key", ErrPrivateKeyMismatch, x)
			}
			staged[x] = nodeKey{key, pub}
			next, err := t.deriveSecret(ps, "path")
			if err != nil {
				return err
			}
			clear(ps)
			ps = next
		}
		if x == t.Root() {
			break
		}
	}
	for x, nk := range staged {
		k.keys[x] = nk
	}
	return nil
}

// setPathSecret sets the key of the single node x from its path secret.
func (k *TreePrivateKeys) setPathSecret(t *Tree, x NodeIndex, pathSecret []byte) error {
	key, err := t.deriveNodeKey(pathSecret)
	if err != nil {
		return err
	}
	return k.SetKey(t, x, key)
}

// Sync drops the keys of nodes the tree has since blanked, replaced or
// truncated away, as RFC 9420, section 7.5 requires of outdated key
// material. ApplyUpdatePath does this itself; call it after other
// changes, such as ApplyProposals.
func (k *TreePrivateKeys) Sync(t *Tree) {
	for x, nk := range k.keys {
		if t.IsBlank(x) || !bytes.Equal(nk.pub, t.encryptionKey(x)) {
			delete(k.keys, x)
		}
	}
}

// Erase drops every key. HPKE private keys cannot be zeroed from outside
// crypto/hpke; dropping the references lets them be collected.
func (k *TreePrivateKeys) Erase() { clear(k.keys) }

// String returns a redacted form.
func (k *TreePrivateKeys) String() string {
	if k == nil {
		return "mls-tree-private-keys(nil)"
	}
	return fmt.Sprintf("mls-tree-private-keys(REDACTED, leaf=%d, %d keys)", k.leaf, len(k.keys))
}

// GoString implements fmt.GoStringer with the redacted form.
func (k *TreePrivateKeys) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k *TreePrivateKeys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k *TreePrivateKeys) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// deriveNodeKey returns DeriveKeyPair(DeriveSecret(pathSecret, "node")).
func (t *Tree) deriveNodeKey(pathSecret []byte) (HPKEPrivateKey, error) {
	ns, err := t.deriveSecret(pathSecret, "node")
	if err != nil {
		return HPKEPrivateKey{}, err
	}
	defer clear(ns)
	if t.ops != nil {
		t.ops.deriveKeyPair++
	}
	return t.suite.DeriveKeyPair(ns)
}

func (t *Tree) deriveSecret(secret []byte, label string) ([]byte, error) {
	if t.ops != nil {
		t.ops.expand++
	}
	return t.suite.DeriveSecret(secret, label)
}

// PathParams says how CreateUpdatePath builds a commit's UpdatePath.
type PathParams struct {
	// Signer signs the new leaf node; its public key must be the leaf
	// node's signature key.
	Signer SignaturePrivateKey
	// LeafNode holds the content of the committer's new leaf: signature
	// key, credential, capabilities and extensions. nil keeps the current
	// leaf's. CreateUpdatePath sets the rest: a fresh encryption key, the
	// source commit, the parent hash and the signature.
	LeafNode *LeafNode
	// Context is the provisional GroupContext of the new epoch (RFC 9420,
	// section 12.4.1): new epoch, old confirmed transcript hash, new
	// extensions. CreateUpdatePath fills in TreeHash from the new tree.
	Context GroupContext
	// Exclude lists the leaves the commit adds, which get the path secrets
	// from their Welcome instead.
	Exclude []LeafIndex
	// Rand is where the leaf key and the first path secret come from (nil
	// means crypto/rand). HPKE encryption always draws on crypto/rand.
	Rand io.Reader
}

// CommitPath is a committer's side of an UpdatePath: the path to put in
// the Commit, the committer's private keys in the new tree, the
// commit_secret, and the path secrets a Welcome gives new members. It
// prints only redacted; Erase it once the Welcomes are built.
type CommitPath struct {
	// Path is the Commit's path field.
	Path UpdatePath

	keys    *TreePrivateKeys
	leaf    LeafIndex
	nodes   []NodeIndex // the filtered direct path
	secrets []secret    // the path secret of each of nodes
	commit  secret
}

// Keys returns the committer's private keys for the new tree: its new
// leaf key and the keys of its filtered direct path, which replace all it
// held before.
func (c *CommitPath) Keys() *TreePrivateKeys { return c.keys }

// CommitSecret returns a copy of the commit_secret, for the key schedule.
func (c *CommitPath) CommitSecret() []byte { return c.commit.clone() }

// PathSecret returns a copy of the path secret of the lowest common
// ancestor of the committer and the new member at joiner: the
// GroupSecrets.path_secret of its Welcome (RFC 9420, section 12.4.1).
func (c *CommitPath) PathSecret(joiner LeafIndex) ([]byte, error) {
	if joiner == c.leaf || joiner >= maxLeaves {
		return nil, fmt.Errorf("mls: path secret for leaf %d from the committer at leaf %d", joiner, c.leaf)
	}
	i := slices.Index(c.nodes, commonAncestor(c.leaf.node(), joiner.node()))
	if i < 0 {
		return nil, fmt.Errorf("mls: leaf %d shares no node of the committer's filtered direct path", joiner)
	}
	if c.secrets[i].get == nil {
		return nil, fmt.Errorf("mls: path secret: %w", errConsumed)
	}
	return c.secrets[i].clone(), nil
}

// Erase zeroes the path secrets and the commit secret.
func (c *CommitPath) Erase() {
	for _, s := range c.secrets {
		s.erase()
	}
	c.commit.erase()
}

// String returns a redacted form.
func (c *CommitPath) String() string {
	if c == nil {
		return "mls-commit-path(nil)"
	}
	return fmt.Sprintf("mls-commit-path(REDACTED, leaf=%d, %d nodes)", c.leaf, len(c.nodes))
}

// GoString implements fmt.GoStringer with the redacted form.
func (c *CommitPath) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (c *CommitPath) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (c *CommitPath) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// CreateUpdatePath refreshes the path of the member at from, as its
// commit does (RFC 9420, sections 7.4, 7.5 and 12.4.1): it blanks the
// direct path, sets a fresh leaf key and the keys of the filtered direct
// path, computes the parent hashes, signs the new leaf node, and encrypts
// each path secret to the copath resolution, without the leaves in
// p.Exclude, under the provisional GroupContext. Apply the commit's
// proposals to the tree first.
//
// The tree becomes the new tree, unless there is an error. The
// committer's previous private keys are all replaced by CommitPath.Keys.
func (t *Tree) CreateUpdatePath(from LeafIndex, p PathParams) (*CommitPath, error) {
	s := t.suite
	cur := t.Leaf(from)
	if cur == nil {
		return nil, fmt.Errorf("%w: update path from leaf %d, which is blank", ErrInvalidTreeChange, from)
	}
	if p.Context.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: update path: group context of suite %#04x for a tree of suite %#04x", uint16(p.Context.CipherSuite), uint16(s.id))
	}
	ln := *cur
	if p.LeafNode != nil {
		ln = *p.LeafNode
	}
	if !bytes.Equal(p.Signer.Public(), ln.SignatureKey) {
		return nil, fmt.Errorf("mls: update path: the signer is not the leaf node's signature key")
	}

	nt := t.Clone()
	nt.blankDirectPath(from)
	fdp := nt.FilteredDirectPath(from)
	c := &CommitPath{leaf: from, nodes: fdp, secrets: make([]secret, len(fdp))}
	fail := func(err error) (*CommitPath, error) {
		c.Erase()
		return nil, fmt.Errorf("mls: update path: %w", err)
	}
	c.keys = &TreePrivateKeys{suite: s, leaf: from, keys: map[NodeIndex]nodeKey{}}
	if t.ops != nil {
		t.ops.deriveKeyPair++
	}
	leafKey, err := s.GenerateHPKEKey(p.Rand)
	if err != nil {
		return fail(err)
	}
	ps, err := readRandom(p.Rand, s.nh)
	if err != nil {
		return fail(err)
	}
	for i, x := range fdp {
		c.secrets[i] = newSecret(ps)
		key, err := nt.deriveNodeKey(ps)
		if err != nil {
			return fail(err)
		}
		pub := key.Public()
		c.keys.keys[x] = nodeKey{key, pub}
		nt.setNode(x, parentNode(&ParentNode{EncryptionKey: pub}))
		if ps, err = nt.deriveSecret(ps, "path"); err != nil {
			return fail(err)
		}
	}
	c.commit = newSecret(ps)

	ln.EncryptionKey = leafKey.Public()
	ln.Source = LeafNodeSourceCommit
	ln.Lifetime = Lifetime{}
	ln.ParentHash = nt.setParentHashes(from, fdp)
	if t.ops != nil {
		t.ops.sign++
	}
	if err := ln.Sign(s, p.Signer, p.Context.GroupID, from); err != nil {
		return fail(err)
	}
	nt.setNode(from.node(), leafNode(&ln))
	c.keys.keys[from.node()] = nodeKey{leafKey, ln.EncryptionKey}

	ctx := p.Context
	ctx.TreeHash = nt.TreeHash()
	gc := ctx.Marshal()
	c.Path = UpdatePath{LeafNode: ln, Nodes: make([]UpdatePathNode, len(fdp))}
	for i, x := range fdp {
		n := UpdatePathNode{EncryptionKey: bytes.Clone(nt.encryptionKey(x)), EncryptedPathSecret: []HPKECiphertext{}}
		for _, r := range nt.copathResolution(x, from, p.Exclude) {
			if t.ops != nil {
				t.ops.seal++
			}
			kemOut, ct, err := s.EncryptWithLabel(nt.encryptionKey(r), "UpdatePathNode", gc, c.secrets[i].bytes())
			if err != nil {
				return fail(fmt.Errorf("node %d: %w", r, err))
			}
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, HPKECiphertext{KEMOutput: kemOut, Ciphertext: ct})
		}
		c.Path.Nodes[i] = n
	}
	*t = *nt
	return c, nil
}

// setParentHashes sets the parent_hash of each node of leaf from's
// filtered direct path fdp, freshly set, from the root down (RFC 9420,
// section 7.9), and returns the parent hash for the leaf.
func (t *Tree) setParentHashes(from LeafIndex, fdp []NodeIndex) []byte {
	x := from.node()
	ph := []byte{}
	for i := len(fdp) - 1; i >= 0; i-- {
		q := *t.nodes[fdp[i]].Parent
		q.ParentHash = ph
		t.setNode(fdp[i], parentNode(&q))
		ph = t.parentHash(fdp[i], copathChild(fdp[i], x))
	}
	return ph
}

// copathResolution returns the resolution of the child of p on leaf
// from's copath, without the leaves in exclude.
func (t *Tree) copathResolution(p NodeIndex, from LeafIndex, exclude []LeafIndex) []NodeIndex {
	res := t.Resolution(copathChild(p, from.node()))
	if len(exclude) == 0 {
		return res
	}
	return slices.DeleteFunc(res, func(r NodeIndex) bool {
		return isLeaf(r) && slices.Contains(exclude, r.leaf())
	})
}

// ApplyUpdatePath merges the UpdatePath of a commit from the member at
// sender into the tree, which must already have the commit's proposals
// applied, and returns the commit_secret (RFC 9420, sections 7.5 and
// 12.4.2). ctx is the provisional GroupContext; its TreeHash is replaced
// by the new tree's. exclude lists the leaves the commit added.
//
// It checks the path: its leaf node (source commit, fresh keys, its
// parent hash, what the group requires, its signature), that it has one
// node for each of the sender's filtered direct path and one ciphertext
// for each node of each copath resolution, that none of its keys is
// already in the tree. With keys, the private view of the receiving
// member, it decrypts the path secret of the member's lowest common
// ancestor with the sender, derives the rest, checks the derived public
// keys are the path's, and updates keys. With keys nil, it only merges
// and checks the public part and returns no commit_secret.
//
// Errors wrap ErrInvalidUpdatePath (and ErrDecrypt where a ciphertext
// does not decrypt), or ErrPrivateKeyMismatch if keys has no key to
// decrypt with. On error, neither the tree nor keys change.
func (t *Tree) ApplyUpdatePath(keys *TreePrivateKeys, sender LeafIndex, path *UpdatePath, ctx GroupContext, exclude []LeafIndex) ([]byte, error) {
	ancestor, commit, err := t.applyUpdatePath(keys, sender, path, ctx, exclude)
	clear(ancestor)
	return commit, err
}

// ApplyExternalUpdatePath merges the UpdatePath of an external commit
// (RFC 9420, section 12.4.3.2), whose sender is not yet a member: it takes
// the leftmost blank leaf, doubling the tree if none is blank, and its path
// is processed from there as ApplyUpdatePath does. Apply the commit's
// proposals first. It returns the joiner's leaf and the commit_secret. (The
// joiner builds such a path with AddLeaf, then CreateUpdatePath from the
// leaf it got.)
func (t *Tree) ApplyExternalUpdatePath(keys *TreePrivateKeys, path *UpdatePath, ctx GroupContext) (LeafIndex, []byte, error) {
	nt := t.Clone()
	// A stand-in for the joiner's leaf, replaced by the path's: without an
	// encryption key, so that the path's own key is not taken for a reused
	// one.
	standIn := path.LeafNode
	standIn.EncryptionKey = nil
	l, err := nt.AddLeaf(&standIn)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: external commit: %w", ErrInvalidUpdatePath, err)
	}
	commit, err := nt.ApplyUpdatePath(keys, l, path, ctx, nil)
	if err != nil {
		return 0, nil, err
	}
	*t = *nt
	return l, commit, nil
}

// applyUpdatePath is ApplyUpdatePath, returning also the path secret the
// receiver decrypted, for the conformance tests.
func (t *Tree) applyUpdatePath(keys *TreePrivateKeys, sender LeafIndex, path *UpdatePath, ctx GroupContext, exclude []LeafIndex) (ancestorSecret, commitSecret []byte, err error) {
	s := t.suite
	invalid := func(format string, args ...any) ([]byte, []byte, error) {
		return nil, nil, fmt.Errorf("%w: from leaf %d: "+format, append([]any{ErrInvalidUpdatePath, sender}, args...)...)
	}
	if ctx.CipherSuite != s.id {
		return nil, nil, fmt.Errorf("mls: update path: group context of suite %#04x for a tree of suite %#04x", uint16(ctx.CipherSuite), uint16(s.id))
	}
	if t.Leaf(sender) == nil {
		return invalid("the sender's leaf is blank")
	}
	if keys != nil {
		switch {
		case keys.suite.id != s.id:
			return nil, nil, fmt.Errorf("%w: keys of suite %#04x for a tree of suite %#04x", ErrPrivateKeyMismatch, uint16(keys.suite.id), uint16(s.id))
		case keys.leaf == sender:
			return nil, nil, fmt.Errorf("mls: update path: leaf %d processing its own path", sender)
		case t.Leaf(keys.leaf) == nil:
			return nil, nil, fmt.Errorf("%w: the receiver's leaf %d is blank", ErrPrivateKeyMismatch, keys.leaf)
		case slices.Contains(exclude, keys.leaf):
			return nil, nil, fmt.Errorf("mls: update path: leaf %d was added by the commit and joins by its Welcome", keys.leaf)
		}
	}

	ln, err := cloneLeafNode(&path.LeafNode)
	if err != nil {
		return invalid("leaf node: %v", err)
	}
	if ln.Source != LeafNodeSourceCommit {
		return invalid("leaf node of source %d, want commit (3)", ln.Source)
	}
	fdp := t.FilteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return invalid("%d path nodes for a filtered direct path of %d", len(path.Nodes), len(fdp))
	}
	pubs := [][]byte{ln.EncryptionKey}
	for _, n := range path.Nodes {
		pubs = append(pubs, bytes.Clone(n.EncryptionKey))
	}
	for i, k := range pubs {
		for _, q := range pubs[:i] {
			if bytes.Equal(k, q) {
				return invalid("an encryption key appears twice in the path")
			}
		}
	}
	if x, ok := t.findEncryptionKey(pubs); ok {
		return invalid("reuses the encryption key of node %d", x)
	}
	if t.ops != nil {
		t.ops.keyCheck++
	}
	if err := s.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return invalid("leaf node: %w", err)
	}
	for _, m := range t.Members() {
		if m != sender && bytes.Equal(t.Leaf(m).SignatureKey, ln.SignatureKey) {
			return invalid("leaf node's signature key is already leaf %d's", m)
		}
	}

	nt := t.Clone()
	nt.blankDirectPath(sender)
	for i, x := range fdp {
		nt.setNode(x, parentNode(&ParentNode{EncryptionKey: pubs[i+1]}))
	}
	if ph := nt.setParentHashes(sender, fdp); !bytes.Equal(ph, ln.ParentHash) {
		return invalid("leaf node's parent hash does not match the path")
	}
	g, err := newGroupRequirements(nt, &ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: update path: %w", err)
	}
	if err := g.check(ln, sender); err != nil {
		return invalid("leaf node: %w", err)
	}
	nt.setNode(sender.node(), leafNode(ln))

	ctx.TreeHash = nt.TreeHash()
	gc := ctx.Marshal()
	res := make([][]NodeIndex, len(fdp))
	for i, x := range fdp {
		res[i] = nt.copathResolution(x, sender, exclude)
		if got := len(path.Nodes[i].EncryptedPathSecret); got != len(res[i]) {
			return invalid("path node %d has %d ciphertexts for a copath resolution of %d", i, got, len(res[i]))
		}
	}

	// Decrypt where the receiver's leaf meets the path; the nodes below
	// there are not derived, so check their keys are valid keys.
	first := len(fdp)
	var newKeys map[NodeIndex]nodeKey
	if keys != nil {
		first = slices.Index(fdp, commonAncestor(keys.leaf.node(), sender.node()))
		if first < 0 {
			return nil, nil, fmt.Errorf("%w: the receiver's leaf %d is not below the sender's filtered direct path", ErrPrivateKeyMismatch, keys.leaf)
		}
		j := slices.IndexFunc(res[first], func(r NodeIndex) bool {
			nk, ok := keys.keys[r]
			return ok && bytes.Equal(nk.pub, nt.encryptionKey(r))
		})
		if j < 0 {
			return nil, nil, fmt.Errorf("%w: leaf %d holds no private key of the resolution it is in", ErrPrivateKeyMismatch, keys.leaf)
		}
		ct := path.Nodes[first].EncryptedPathSecret[j]
		if t.ops != nil {
			t.ops.open++
		}
		ps, err := s.DecryptWithLabel(keys.keys[res[first][j]].priv, "UpdatePathNode", gc, ct.KEMOutput, ct.Ciphertext)
		if err != nil {
			return invalid("path node %d: %w", first, err)
		}
		ancestorSecret = bytes.Clone(ps)
		newKeys = map[NodeIndex]nodeKey{}
		for i := first; i < len(fdp); i++ {
			key, err := nt.deriveNodeKey(ps)
			if err != nil {
				clear(ps)
				clear(ancestorSecret)
				return nil, nil, err
			}
			pub := key.Public()
			if !bytes.Equal(pub, pubs[i+1]) {
				clear(ps)
				clear(ancestorSecret)
				return invalid("path node %d: the public key differs from the one derived from its path secret", i)
			}
			newKeys[fdp[i]] = nodeKey{key, pub}
			next, err := nt.deriveSecret(ps, "path")
			clear(ps)
			if err != nil {
				clear(ancestorSecret)
				return nil, nil, err
			}
			ps = next
		}
		commitSecret = ps
	}
	for i := range first {
		if t.ops != nil {
			t.ops.keyCheck++
		}
		if err := s.ValidateHPKEPublicKey(pubs[i+1]); err != nil {
			clear(ancestorSecret)
			clear(commitSecret)
			return invalid("path node %d: %w", i, err)
		}
	}

	*t = *nt
	if keys != nil {
		for _, x := range directPath(sender.node(), t.Leaves()) {
			delete(keys.keys, x)
		}
		for x, nk := range newKeys {
			keys.keys[x] = nk
		}
		keys.Sync(t)
	}
	return ancestorSecret, commitSecret, nil
}

// cloneLeafNode returns a deep copy of l, so that the tree does not share
// memory with a message the caller may reuse. It fails on a leaf node the
// encoder cannot write.
func cloneLeafNode(l *LeafNode) (*LeafNode, error) {
	if err := checkLeafNode(l); err != nil {
		return nil, err
	}
	c := new(LeafNode)
	if err := unmarshalCopy(marshalWire(l), c); err != nil {
		return nil, errors.New("leaf node does not re-encode")
	}
	return c, nil
}
