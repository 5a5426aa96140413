package mls

import (
	"bytes"
	"fmt"
	"testing"
)

type treeKEMVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes    `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          LeafIndex `json:"index"`
		EncryptionPriv hexBytes  `json:"encryption_priv"`
		SignaturePriv  hexBytes  `json:"signature_priv"`
		PathSecrets    []struct {
			Node       NodeIndex `json:"node"`
			PathSecret hexBytes  `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        LeafIndex  `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// treeKEMGroup is a vector's tree with every member's private state.
type treeKEMGroup struct {
	suite *Suite
	tree  *Tree
	keys  map[LeafIndex]*TreePrivateKeys
	sigs  map[LeafIndex]SignaturePrivateKey
	ctx   GroupContext
}

func loadTreeKEMGroup(t testing.TB, s *Suite, v *treeKEMVector) *treeKEMGroup {
	t.Helper()
	g := &treeKEMGroup{
		suite: s,
		tree:  mustTree(t, s, v.RatchetTree),
		keys:  map[LeafIndex]*TreePrivateKeys{},
		sigs:  map[LeafIndex]SignaturePrivateKey{},
		ctx: GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: v.GroupID, Epoch: v.Epoch,
			ConfirmedTranscriptHash: v.ConfirmedTranscriptHash},
	}
	for _, lp := range v.LeavesPrivate {
		enc, err := s.ParseHPKEPrivateKey(lp.EncryptionPriv)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewTreePrivateKeys(g.tree, lp.Index, enc)
		if err != nil {
			t.Fatalf("leaf %d: %v", lp.Index, err)
		}
		for _, ps := range lp.PathSecrets {
			if err := k.setPathSecret(g.tree, ps.Node, ps.PathSecret); err != nil {
				t.Fatalf("leaf %d: node %d: %v", lp.Index, ps.Node, err)
			}
		}
		g.keys[lp.Index] = k
		if g.sigs[lp.Index], err = s.ParseSignaturePrivateKey(lp.SignaturePriv); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// TestConformanceTreeKEM checks treekem.json. The tree is valid and every
// member's private keys match it. For each update path: every member with
// private keys processes it, getting the path secret of its common
// ancestor with the sender and the commit_secret given, and the tree hash
// after; then the sender makes a fresh path of its own, which every other
// member processes to the same commit_secret and tree, and the new tree
// is valid.
func TestConformanceTreeKEM(t *testing.T) {
	var vs []treeKEMVector
	loadVectors(t, "treekem", &vs)
	c := newVectorCounts("treekem.json")
	paths, receipts := 0, 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d", v.CipherSuite, i), func(t *testing.T) {
			g := loadTreeKEMGroup(t, s, v)
			ctx := g.ctx
			ctx.TreeHash = g.tree.TreeHash()
			if err := g.tree.Validate(&ctx); err != nil {
				t.Fatal(err)
			}
			for _, up := range v.UpdatePaths {
				var path UpdatePath
				if err := unmarshalCopy(up.UpdatePath, &path); err != nil {
					t.Fatal(err)
				}
				paths++
				public := g.tree.Clone()
				if _, err := public.ApplyUpdatePath(nil, up.Sender, &path, g.ctx, nil); err != nil {
					t.Fatalf("sender %d: public merge: %v", up.Sender, err)
				}
				if got := public.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
					t.Errorf("sender %d: tree hash after = %x, want %x", up.Sender, got, []byte(up.TreeHashAfter))
				}
				for to, k := range g.keys {
					if to == up.Sender {
						continue
					}
					tree, keys := g.tree.Clone(), k.Clone()
					ancestor, commit, err := tree.applyUpdatePath(keys, up.Sender, &path, g.ctx, nil)
					if err != nil {
						t.Errorf("sender %d, receiver %d: %v", up.Sender, to, err)
						continue
					}
					receipts++
					if !bytes.Equal(ancestor, up.PathSecrets[to]) {
						t.Errorf("sender %d, receiver %d: path secret %x, want %x", up.Sender, to, ancestor, []byte(up.PathSecrets[to]))
					}
					if !bytes.Equal(commit, up.CommitSecret) {
						t.Errorf("sender %d, receiver %d: commit secret %x, want %x", up.Sender, to, commit, []byte(up.CommitSecret))
					}
					if got := tree.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
						t.Errorf("sender %d, receiver %d: tree hash after = %x", up.Sender, to, got)
					}
				}
				checkFreshPath(t, g, up.Sender)
			}
		})
	}
	c.detail = fmt.Sprintf("%d update paths, %d receipts, each re-encrypted", paths, receipts)
	c.log(t)
}

// checkFreshPath has the member at sender create a path in g's tree, and
// every other member with private keys process it: they must agree with
// the sender on the commit_secret and the tree, and the tree must be
// valid, with every member's keys matching it.
func checkFreshPath(t *testing.T, g *treeKEMGroup, sender LeafIndex) {
	t.Helper()
	committed := g.tree.Clone()
	cp, err := committed.CreateUpdatePath(sender, PathParams{Signer: g.sigs[sender], Context: g.ctx})
	if err != nil {
		t.Fatalf("sender %d: create path: %v", sender, err)
	}
	defer cp.Erase()
	ctx := g.ctx
	ctx.TreeHash = committed.TreeHash()
	if err := committed.Validate(&ctx); err != nil {
		t.Errorf("sender %d: tree after its own path: %v", sender, err)
	}
	checkKeysMatch(t, committed, cp.Keys())
	for to, k := range g.keys {
		if to == sender {
			continue
		}
		tree, keys := g.tree.Clone(), k.Clone()
		commit, err := tree.ApplyUpdatePath(keys, sender, &cp.Path, g.ctx, nil)
		if err != nil {
			t.Errorf("fresh path from %d, receiver %d: %v", sender, to, err)
			continue
		}
		if !bytes.Equal(commit, cp.CommitSecret()) {
			t.Errorf("fresh path from %d, receiver %d: commit secrets differ", sender, to)
		}
		if !bytes.Equal(tree.Marshal(), committed.Marshal()) {
			t.Errorf("fresh path from %d, receiver %d: trees differ", sender, to)
		}
		checkKeysMatch(t, tree, keys)
		// The path secret a Welcome would carry gives the same keys.
		ps, err := cp.PathSecret(to)
		if err != nil {
			t.Fatal(err)
		}
		leafKey, _ := keys.PrivateKey(to.node())
		joiner, err := NewTreePrivateKeys(tree, to, leafKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := joiner.ImplantPathSecret(tree, sender, ps); err != nil {
			t.Errorf("fresh path from %d, receiver %d: implant: %v", sender, to, err)
		}
		for _, x := range joiner.Nodes() {
			if _, ok := keys.PrivateKey(x); !ok {
				t.Errorf("receiver %d: the Welcome path secret gives node %d, processing the path does not", to, x)
			}
		}
	}
}

// checkKeysMatch checks that keys hold the private key of the leaf and of
// every non-blank ancestor, each matching the tree's public key.
func checkKeysMatch(t *testing.T, tree *Tree, keys *TreePrivateKeys) {
	t.Helper()
	for _, x := range keys.Nodes() {
		k, _ := keys.PrivateKey(x)
		if tree.IsBlank(x) || !bytes.Equal(k.Public(), tree.encryptionKey(x)) {
			t.Errorf("leaf %d: key of node %d does not match the tree", keys.Leaf(), x)
		}
	}
	if _, ok := keys.PrivateKey(keys.Leaf().node()); !ok {
		t.Errorf("leaf %d: no leaf key", keys.Leaf())
	}
}
