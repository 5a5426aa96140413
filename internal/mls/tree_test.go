package mls

import (
	"bytes"
	"fmt"
	"slices"
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
