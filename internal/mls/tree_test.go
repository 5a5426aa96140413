package mls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
)

type treeValidationVector struct {
	CipherSuite CipherSuite   `json:"cipher_suite"`
	Tree        hexBytes      `json:"tree"`
	GroupID     hexBytes      `json:"group_id"`
	TreeHashes  []hexBytes    `json:"tree_hashes"`
	Resolutions [][]NodeIndex `json:"resolutions"`
}

// TestConformanceTreeValidation checks tree-validation.json: for every
// node its tree hash and resolution, then that the tree passes the
// validation a joiner makes (parent hashes, leaf signatures bound to the
// group, unmerged leaves, key uniqueness, capabilities).
func TestConformanceTreeValidation(t *testing.T) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation", &vs)
	c := newVectorCounts("tree-validation.json")
	nodes := 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d", v.CipherSuite, i), func(t *testing.T) {
			tree := mustTree(t, s, v.Tree)
			if len(tree.nodes) != len(v.TreeHashes) || len(tree.nodes) != len(v.Resolutions) {
				t.Fatalf("tree of %d nodes, vector has %d hashes and %d resolutions", len(tree.nodes), len(v.TreeHashes), len(v.Resolutions))
			}
			for x := range NodeIndex(len(tree.nodes)) {
				if got := tree.treeHash(x); !bytes.Equal(got, v.TreeHashes[x]) {
					t.Errorf("node %d: tree hash %x, want %x", x, got, []byte(v.TreeHashes[x]))
				}
				if got := tree.Resolution(x); !slices.Equal(got, v.Resolutions[x]) && len(got)+len(v.Resolutions[x]) > 0 {
					t.Errorf("node %d: resolution %v, want %v", x, got, v.Resolutions[x])
				}
				nodes++
			}
			if err := tree.VerifyParentHashes(); err != nil {
				t.Error(err)
			}
			if err := tree.VerifyLeafSignatures(v.GroupID); err != nil {
				t.Error(err)
			}
			if err := tree.Validate(vectorGroupContext(s, v.GroupID, tree.Root(), v.TreeHashes)); err != nil {
				t.Error(err)
			}
			if got := tree.Marshal(); !bytes.Equal(got, v.Tree) {
				t.Errorf("tree re-encodes differently")
			}
		})
	}
	c.detail = fmt.Sprintf("%d nodes' tree hashes and resolutions", nodes)
	c.log(t)
}

// vectorGroupContext returns a GroupContext for a vector's tree: epoch 0,
// no extensions, the root's tree hash from hashes.
func vectorGroupContext(s *Suite, groupID []byte, root NodeIndex, hashes []hexBytes) *GroupContext {
	return &GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: groupID, TreeHash: hashes[root]}
}

func mustTree(t testing.TB, s *Suite, b []byte) *Tree {
	t.Helper()
	rt, err := UnmarshalRatchetTree(b)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := NewTree(s, rt)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

type treeOperationsVector struct {
	CipherSuite    CipherSuite `json:"cipher_suite"`
	TreeBefore     hexBytes    `json:"tree_before"`
	TreeHashBefore hexBytes    `json:"tree_hash_before"`
	Proposal       hexBytes    `json:"proposal"`
	ProposalSender LeafIndex   `json:"proposal_sender"`
	TreeAfter      hexBytes    `json:"tree_after"`
	TreeHashAfter  hexBytes    `json:"tree_hash_after"`
}

// TestConformanceTreeOperations checks tree-operations.json: the proposal
// from proposal_sender applied to tree_before gives exactly tree_after,
// with the tree hashes before and after.
func TestConformanceTreeOperations(t *testing.T) {
	var vs []treeOperationsVector
	loadVectors(t, "tree-operations", &vs)
	c := newVectorCounts("tree-operations.json")
	var kinds []string
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		r := NewReader(v.Proposal)
		p := decodeProposal(r)
		if err := r.Done(); err != nil {
			t.Fatalf("vector %d: proposal: %v", i, err)
		}
		kinds = append(kinds, fmt.Sprintf("%T", p)[1:])
		t.Run(fmt.Sprintf("%d/%d-%T", v.CipherSuite, i, p), func(t *testing.T) {
			tree := mustTree(t, s, v.TreeBefore)
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashBefore) {
				t.Errorf("tree hash before = %x, want %x", got, []byte(v.TreeHashBefore))
			}
			if _, err := tree.ApplyProposals([]CommittedProposal{{Sender: v.ProposalSender, Proposal: p}}); err != nil {
				t.Fatal(err)
			}
			if got := tree.Marshal(); !bytes.Equal(got, v.TreeAfter) {
				t.Errorf("tree after = %x\nwant %x", got, []byte(v.TreeAfter))
			}
			if got := tree.TreeHash(); !bytes.Equal(got, v.TreeHashAfter) {
				t.Errorf("tree hash after = %x, want %x", got, []byte(v.TreeHashAfter))
			}
			// The cache must agree with a tree hashed from scratch.
			fresh := mustTree(t, s, tree.Marshal())
			if !bytes.Equal(fresh.TreeHash(), tree.TreeHash()) {
				t.Error("cached tree hash differs from a fresh computation")
			}
		})
	}
	c.detail = "proposals " + fmt.Sprint(kinds)
	c.log(t)
}

// vectorTree returns the first tree-validation.json tree of suite 1 with
// at least minLeaves members and a non-blank parent with unmerged leaves
// if unmerged is set, and its group ID.
func vectorTree(t testing.TB, minLeaves int, unmerged bool) (*Tree, []byte) {
	t.Helper()
	var vs []treeValidationVector
	loadVectors(t, "tree-validation", &vs)
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	for _, v := range vs {
		if v.CipherSuite != s.ID() {
			continue
		}
		tree := mustTree(t, s, v.Tree)
		if len(tree.Members()) < minLeaves {
			continue
		}
		if unmerged && !slices.ContainsFunc(tree.nodes, func(n *Node) bool {
			return n != nil && n.Parent != nil && len(n.Parent.UnmergedLeaves) > 0
		}) {
			continue
		}
		return tree, v.GroupID
	}
	t.Fatal("no suitable tree in tree-validation.json")
	return nil, nil
}

// validateAsIs validates tree against a context carrying its own tree
// hash, so that the checks after the tree hash's run.
func validateAsIs(tree *Tree, groupID []byte) error {
	return tree.Validate(&GroupContext{Version: MLS10, CipherSuite: tree.Suite().ID(), GroupID: groupID, TreeHash: tree.TreeHash()})
}

// editNode replaces node x of tree with a copy that edit changes.
func editNode(tree *Tree, x NodeIndex, edit func(n *Node)) {
	n := *tree.nodes[x]
	if n.Leaf != nil {
		l := *n.Leaf
		n.Leaf = &l
	} else {
		p := *n.Parent
		n.Parent = &p
	}
	edit(&n)
	tree.setNode(x, &n)
}

// TestTreeValidateMalformed checks that each kind of broken tree fails
// validation with an error wrapping ErrInvalidTree that says why.
func TestTreeValidateMalformed(t *testing.T) {
	base, groupID := vectorTree(t, 5, true)
	if err := validateAsIs(base, groupID); err != nil {
		t.Fatal(err)
	}
	var someParent, unmergedParent NodeIndex
	for i, n := range base.nodes {
		if n != nil && n.Parent != nil {
			someParent = NodeIndex(i)
			if len(n.Parent.UnmergedLeaves) > 0 {
				unmergedParent = NodeIndex(i)
			}
		}
	}
	members := base.Members()
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	tests := []struct {
		name string
		edit func(tree *Tree)
		want string
		is   error
	}{
		{"bad parent hash", func(tree *Tree) {
			editNode(tree, someParent, func(n *Node) { n.Parent.ParentHash = flip(append(n.Parent.ParentHash, 0)) })
		}, "parent-hash valid", nil},
		{"replaced parent key", func(tree *Tree) {
			editNode(tree, someParent, func(n *Node) { n.Parent.EncryptionKey = flip(n.Parent.EncryptionKey) })
		}, "", nil},
		{"duplicate encryption key", func(tree *Tree) {
			editNode(tree, members[2].node(), func(n *Node) { n.Leaf.EncryptionKey = tree.Leaf(members[0]).EncryptionKey })
		}, "same encryption key", nil},
		{"parent key duplicates a leaf's", func(tree *Tree) {
			editNode(tree, someParent, func(n *Node) { n.Parent.EncryptionKey = tree.Leaf(members[0]).EncryptionKey })
		}, "same encryption key", nil},
		{"duplicate signature key", func(tree *Tree) {
			editNode(tree, members[2].node(), func(n *Node) { n.Leaf.SignatureKey = tree.Leaf(members[0]).SignatureKey })
		}, "same signature key", nil},
		{"invalid encryption key", func(tree *Tree) {
			editNode(tree, members[2].node(), func(n *Node) { n.Leaf.EncryptionKey = n.Leaf.EncryptionKey[1:] })
		}, "", ErrMalformedKey},
		{"unmerged leaves out of order", func(tree *Tree) {
			editNode(tree, unmergedParent, func(n *Node) {
				u := n.Parent.UnmergedLeaves
				n.Parent.UnmergedLeaves = append([]LeafIndex{u[0]}, u...)
			})
		}, "increasing order", nil},
		{"unmerged leaf not below", func(tree *Tree) {
			editNode(tree, unmergedParent, func(n *Node) {
				lo, hi := leafSpan(unmergedParent)
				var l LeafIndex
				for l = 0; uint32(l) >= lo && uint32(l) < hi; l++ {
				}
				n.Parent.UnmergedLeaves = []LeafIndex{l}
			})
		}, "not below", nil},
		{"unmerged leaf blank", func(tree *Tree) {
			l := tree.ParentNode(unmergedParent).UnmergedLeaves[0]
			tree.setNode(l.node(), nil)
		}, "blank", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := base.Clone()
			tt.edit(tree)
			err := validateAsIs(tree, groupID)
			if !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Validate = %v, want an error wrapping ErrInvalidTree saying %q", err, tt.want)
			}
			t.Log(err)
		})
	}
	// A changed leaf breaks the parent hashes above it first; in a tree
	// without parent nodes, the leaf checks show.
	s := base.Suite()
	rand := testRand(2)
	flat, err := NewOneMemberTree(s, must3(testLeaf(t, s, rand, "a")))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "c"} {
		if _, err := flat.AddLeaf(must3(testLeaf(t, s, rand, name))); err != nil {
			t.Fatal(err)
		}
	}
	if err := validateAsIs(flat, groupID); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(l *LeafNode)
		want string
		is   error
	}{
		{"bad leaf signature", func(l *LeafNode) { l.Signature = flip(l.Signature) }, "leaf 1", ErrBadSignature},
		{"own credential type unsupported", func(l *LeafNode) { l.Capabilities.Credentials = []CredentialType{0xF00D} }, "credential type 0x0001", nil},
		{"credential type others do not support", func(l *LeafNode) {
			l.Credential = Credential{Type: 0xF00D, Data: []byte("x")}
			l.Capabilities.Credentials = []CredentialType{CredentialBasic, 0xF00D}
		}, "does not support the credential type 0xf00d", nil},
		{"extension not in capabilities", func(l *LeafNode) { l.Extensions = []Extension{{Type: 0xF0F0}} }, "capabilities do not list", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree := flat.Clone()
			editNode(tree, 2, func(n *Node) { tt.edit(n.Leaf) })
			err := validateAsIs(tree, groupID)
			if !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Validate = %v, want an error wrapping ErrInvalidTree saying %q", err, tt.want)
			}
			t.Log(err)
		})
	}
	t.Run("tree hash mismatch", func(t *testing.T) {
		ctx := &GroupContext{Version: MLS10, CipherSuite: base.Suite().ID(), GroupID: groupID, TreeHash: flip(base.TreeHash())}
		if err := base.Validate(ctx); !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), "tree hash") {
			t.Fatalf("Validate = %v", err)
		}
	})
	t.Run("wrong group", func(t *testing.T) {
		if err := validateAsIs(base, flip(groupID)); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Validate = %v, want ErrBadSignature", err)
		}
	})
	t.Run("required capabilities", func(t *testing.T) {
		req := RequiredCapabilities{Extensions: []ExtensionType{0xF0F0}}
		ctx := &GroupContext{Version: MLS10, CipherSuite: base.Suite().ID(), GroupID: groupID, TreeHash: base.TreeHash(),
			Extensions: []Extension{makeExtension(ExtRequiredCapabilities, &req)}}
		if err := base.Validate(ctx); !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), "required extension") {
			t.Fatalf("Validate = %v", err)
		}
	})
}

// TestNewTreeMalformed checks the structural checks of NewTree.
func TestNewTreeMalformed(t *testing.T) {
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	base, _ := vectorTree(t, 2, false)
	leaf := base.nodes[0]
	par := &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte{1}}}
	for _, tt := range []struct {
		name string
		rt   RatchetTree
	}{
		{"empty", RatchetTree{}},
		{"ends blank", RatchetTree{leaf, nil}},
		{"parent at a leaf position", RatchetTree{par}},
		{"leaf at a parent position", RatchetTree{leaf, leaf, leaf}},
		{"untyped leaf", RatchetTree{{Type: NodeTypeParent, Leaf: leaf.Leaf}}},
		{"unmerged leaf outside", RatchetTree{leaf, {Type: NodeTypeParent, Parent: &ParentNode{UnmergedLeaves: []LeafIndex{2}}}, leaf}},
		{"unmerged leaf beyond 2^31", RatchetTree{leaf, {Type: NodeTypeParent, Parent: &ParentNode{UnmergedLeaves: []LeafIndex{1 << 31}}}, leaf}},
	} {
		if _, err := NewTree(s, tt.rt); !errors.Is(err, ErrInvalidTree) {
			t.Errorf("%s: NewTree = %v, want ErrInvalidTree", tt.name, err)
		}
	}
	// A tree two nodes short of full is padded.
	tree, err := NewTree(s, RatchetTree{leaf, nil, leaf, nil, leaf})
	if err != nil || tree.Leaves() != 4 || !tree.IsBlank(6) || tree.IsBlank(4) {
		t.Fatalf("NewTree of 5 nodes: %v leaves, %v", tree.Leaves(), err)
	}
	if got := tree.RatchetTree(); len(got) != 5 {
		t.Errorf("RatchetTree keeps %d nodes, want 5", len(got))
	}
}

// testLeaf returns a leaf node from a key package, with fresh keys.
func testLeaf(t testing.TB, s *Suite, rand io.Reader, name string) (*LeafNode, HPKEPrivateKey, SignaturePrivateKey) {
	t.Helper()
	enc, err := s.GenerateHPKEKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.GenerateSignatureKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	ln := &LeafNode{
		EncryptionKey: enc.Public(),
		SignatureKey:  sig.Public(),
		Credential:    Credential{Type: CredentialBasic, Identity: []byte(name)},
		Capabilities: Capabilities{Versions: []ProtocolVersion{MLS10}, CipherSuites: []CipherSuite{s.ID()},
			Extensions: []ExtensionType{}, Proposals: []ProposalType{}, Credentials: []CredentialType{CredentialBasic}},
		Source:     LeafNodeSourceKeyPackage,
		Lifetime:   Lifetime{NotBefore: 0, NotAfter: 1 << 62},
		Extensions: []Extension{},
	}
	if err := ln.Sign(s, sig, nil, 0); err != nil {
		t.Fatal(err)
	}
	return ln, enc, sig
}

// must3 returns the first of three results.
func must3[A, B, C any](a A, _ B, _ C) A { return a }

func testRand(seed uint64) io.Reader {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return mrand.NewChaCha8(b)
}

// TestTreeOperations checks adding, updating and removing leaves: the
// leftmost blank leaf, doubling, unmerged leaves in order, blanked paths,
// truncation, and that failed operations change nothing.
func TestTreeOperations(t *testing.T) {
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	rand := testRand(1)
	leaf := func(name string) *LeafNode { l, _, _ := testLeaf(t, s, rand, name); return l }
	tree, err := NewOneMemberTree(s, leaf("a"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint32{2, 4, 4, 8} {
		l, err := tree.AddLeaf(leaf(fmt.Sprint(i)))
		if err != nil || l != LeafIndex(i+1) || tree.Leaves() != want {
			t.Fatalf("add %d: leaf %d, %d leaves, %v", i, l, tree.Leaves(), err)
		}
	}
	// Give the root and node 1 keys, as a commit would, then add into
	// blanks below them: the new leaves are unmerged there, in order.
	tree.setNode(7, parentNode(&ParentNode{EncryptionKey: []byte("root")}))
	tree.setNode(1, parentNode(&ParentNode{EncryptionKey: []byte("one")}))
	if err := tree.RemoveLeaf(3); err != nil {
		t.Fatal(err)
	}
	if !tree.IsBlank(7) || !tree.IsBlank(5) || tree.IsBlank(1) || tree.Leaves() != 8 {
		t.Fatalf("remove 3 did not blank its path only: %v", tree.RatchetTree())
	}
	tree.setNode(7, parentNode(&ParentNode{EncryptionKey: []byte("root")}))
	if err := tree.RemoveLeaf(1); err != nil {
		t.Fatal(err)
	}
	tree.setNode(7, parentNode(&ParentNode{EncryptionKey: []byte("root")}))
	for _, want := range []LeafIndex{1, 3} {
		if l, err := tree.AddLeaf(leaf("again")); err != nil || l != want {
			t.Fatalf("AddLeaf = %d, %v, want %d", l, err, want)
		}
	}
	if got := tree.ParentNode(7).UnmergedLeaves; !slices.Equal(got, []LeafIndex{1, 3}) {
		t.Errorf("root's unmerged leaves = %v, want [1 3]", got)
	}
	if got := tree.Resolution(3); !slices.Equal(got, []NodeIndex{0, 2, 4, 6}) {
		t.Errorf("resolution(3) = %v", got)
	}
	if got := tree.Resolution(7); !slices.Equal(got, []NodeIndex{7, 2, 6}) {
		t.Errorf("resolution(7) = %v", got)
	}
	if got := tree.FilteredDirectPath(4); !slices.Equal(got, []NodeIndex{7}) {
		t.Errorf("filtered direct path of 4 = %v", got)
	}

	// Update blanks the path.
	if err := tree.UpdateLeaf(1, leaf("b2")); err != nil || !tree.IsBlank(1) || !tree.IsBlank(7) {
		t.Fatalf("UpdateLeaf: %v", err)
	}
	// Removing the right half truncates.
	before := tree.Marshal()
	if err := tree.RemoveLeaf(4); err != nil || tree.Leaves() != 4 {
		t.Fatalf("RemoveLeaf(4): %d leaves, %v", tree.Leaves(), err)
	}
	fresh := mustTree(t, s, tree.Marshal())
	if !bytes.Equal(fresh.TreeHash(), tree.TreeHash()) {
		t.Error("cached tree hash differs after truncation")
	}

	// Failures change nothing.
	before = tree.Marshal()
	for _, err := range []error{
		tree.RemoveLeaf(2 + 4),
		tree.UpdateLeaf(9, leaf("x")),
		tree.UpdateLeaf(0, &LeafNode{}),
	} {
		if !errors.Is(err, ErrInvalidTreeChange) {
			t.Errorf("got %v, want ErrInvalidTreeChange", err)
		}
	}
	_, err = tree.ApplyProposals([]CommittedProposal{
		{Proposal: &AddProposal{KeyPackage: KeyPackage{LeafNode: *leaf("y")}}},
		{Proposal: &RemoveProposal{Removed: 0}},
		{Proposal: &RemoveProposal{Removed: 0}},
	})
	if !errors.Is(err, ErrInvalidTreeChange) || !bytes.Equal(tree.Marshal(), before) {
		t.Errorf("ApplyProposals with a double removal = %v, tree changed: %v", err, !bytes.Equal(tree.Marshal(), before))
	}
	for _, l := range tree.Members()[1:] {
		if err := tree.RemoveLeaf(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := tree.RemoveLeaf(0); !errors.Is(err, ErrInvalidTreeChange) || tree.Leaves() != 1 {
		t.Errorf("removing the last member: %v, %d leaves", err, tree.Leaves())
	}
}
