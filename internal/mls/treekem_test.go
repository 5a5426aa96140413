package mls

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
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

// treeKEMVectorGroup loads the first treekem.json vector of suite 1 with
// at least minLeaves members.
func treeKEMVectorGroup(t testing.TB, minLeaves int) (*treeKEMGroup, *treeKEMVector) {
	t.Helper()
	var vs []treeKEMVector
	loadVectors(t, "treekem", &vs)
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	for i := range vs {
		v := &vs[i]
		if v.CipherSuite == s.ID() && len(v.LeavesPrivate) >= minLeaves {
			return loadTreeKEMGroup(t, s, v), v
		}
	}
	t.Fatal("no suitable vector in treekem.json")
	return nil, nil
}

// forgePath returns a copy of cp's path with edit applied to it, then made
// consistent again as a malicious committer would: parent hashes
// recomputed, the leaf re-signed, the path secrets re-encrypted under the
// resulting tree hash.
func forgePath(t *testing.T, g *treeKEMGroup, sender LeafIndex, cp *CommitPath, edit func(p *UpdatePath)) *UpdatePath {
	t.Helper()
	s := g.suite
	p := cp.Path
	p.Nodes = slices.Clone(p.Nodes)
	edit(&p)
	nt := g.tree.Clone()
	nt.blankDirectPath(sender)
	fdp := nt.FilteredDirectPath(sender)
	for i, x := range fdp {
		nt.setNode(x, parentNode(&ParentNode{EncryptionKey: p.Nodes[i].EncryptionKey}))
	}
	p.LeafNode.ParentHash = nt.setParentHashes(sender, fdp)
	if err := p.LeafNode.Sign(s, g.sigs[sender], g.ctx.GroupID, sender); err != nil {
		t.Fatal(err)
	}
	nt.setNode(sender.node(), leafNode(&p.LeafNode))
	ctx := g.ctx
	ctx.TreeHash = nt.TreeHash()
	for i, x := range fdp {
		var cts []HPKECiphertext
		for _, r := range nt.copathResolution(x, sender, nil) {
			kem, ct, err := s.EncryptWithLabel(nt.encryptionKey(r), "UpdatePathNode", ctx.Marshal(), cp.secrets[i].bytes())
			if err != nil {
				t.Fatal(err)
			}
			cts = append(cts, HPKECiphertext{kem, ct})
		}
		p.Nodes[i].EncryptedPathSecret = cts
	}
	return &p
}

// TestApplyUpdatePathMalformed checks that each kind of bad UpdatePath is
// refused with an error wrapping a sentinel and saying why, and leaves the
// tree and the receiver's keys as they were.
func TestApplyUpdatePathMalformed(t *testing.T) {
	g, _ := treeKEMVectorGroup(t, 4)
	const sender, receiver = LeafIndex(0), LeafIndex(1)
	committed := g.tree.Clone()
	cp, err := committed.CreateUpdatePath(sender, PathParams{Signer: g.sigs[sender], Context: g.ctx})
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Path.Nodes) < 2 {
		t.Fatalf("path of %d nodes: want a larger tree", len(cp.Path.Nodes))
	}
	top := len(cp.Path.Nodes) - 1
	// far is a member whose common ancestor with the sender is the top of
	// the path: it derives no key below, so those keys are only checked
	// to be valid keys.
	far := slices.Max(g.tree.Members())
	other, err := g.suite.GenerateHPKEKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	var someParentKey []byte
	for _, n := range g.tree.nodes {
		if n != nil && n.Parent != nil {
			someParentKey = n.Parent.EncryptionKey
		}
	}
	tests := []struct {
		name    string
		path    func() *UpdatePath
		sender  LeafIndex
		to      LeafIndex
		exclude []LeafIndex
		keys    func(k *TreePrivateKeys)
		is      []error
		want    string
	}{
		{name: "valid", path: func() *UpdatePath { return &cp.Path }},
		{name: "one path node missing", path: func() *UpdatePath {
			p := cp.Path
			p.Nodes = p.Nodes[:top]
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "path nodes for a filtered direct path"},
		{name: "one path node too many", path: func() *UpdatePath {
			p := cp.Path
			p.Nodes = append(slices.Clone(p.Nodes), UpdatePathNode{EncryptionKey: other.Public()})
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "path nodes for a filtered direct path"},
		{name: "ciphertext missing", path: func() *UpdatePath {
			p := cp.Path
			p.Nodes = slices.Clone(p.Nodes)
			p.Nodes[top].EncryptedPathSecret = p.Nodes[top].EncryptedPathSecret[1:]
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "ciphertexts for a copath resolution"},
		{name: "bad parent hash", path: func() *UpdatePath {
			p := cp.Path
			p.LeafNode.ParentHash = flip(p.LeafNode.ParentHash)
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "parent hash"},
		{name: "changed node key", path: func() *UpdatePath {
			p := cp.Path
			p.Nodes = slices.Clone(p.Nodes)
			p.Nodes[0].EncryptionKey = other.Public()
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "parent hash"},
		{name: "bad leaf signature", path: func() *UpdatePath {
			p := cp.Path
			p.LeafNode.Signature = flip(p.LeafNode.Signature)
			return &p
		}, is: []error{ErrInvalidUpdatePath, ErrBadSignature}, want: "LeafNodeTBS"},
		{name: "leaf from an update", path: func() *UpdatePath {
			p := cp.Path
			p.LeafNode.Source = LeafNodeSourceUpdate
			return &p
		}, is: []error{ErrInvalidUpdatePath}, want: "want commit"},
		{name: "key already in the tree", path: func() *UpdatePath {
			return forgePath(t, g, sender, cp, func(p *UpdatePath) { p.Nodes[0].EncryptionKey = someParentKey })
		}, is: []error{ErrInvalidUpdatePath}, want: "reuses the encryption key"},
		{name: "sender's old leaf key", path: func() *UpdatePath {
			return forgePath(t, g, sender, cp, func(p *UpdatePath) { p.LeafNode.EncryptionKey = g.tree.Leaf(sender).EncryptionKey })
		}, is: []error{ErrInvalidUpdatePath}, want: "reuses the encryption key of node 0"},
		{name: "key twice in the path", path: func() *UpdatePath {
			return forgePath(t, g, sender, cp, func(p *UpdatePath) { p.Nodes[1].EncryptionKey = p.Nodes[0].EncryptionKey })
		}, is: []error{ErrInvalidUpdatePath}, want: "appears twice"},
		{name: "invalid node key", path: func() *UpdatePath {
			return forgePath(t, g, sender, cp, func(p *UpdatePath) { p.Nodes[0].EncryptionKey = []byte("not a key") })
		}, to: far, is: []error{ErrInvalidUpdatePath, ErrMalformedKey}, want: "path node 0"},
		{name: "derived key differs", path: func() *UpdatePath {
			return forgePath(t, g, sender, cp, func(p *UpdatePath) { p.Nodes[top].EncryptionKey = other.Public() })
		}, is: []error{ErrInvalidUpdatePath}, want: "differs from the one derived"},
		{name: "tampered ciphertext", path: func() *UpdatePath {
			p := cp.Path
			p.Nodes = slices.Clone(p.Nodes)
			cts := slices.Clone(p.Nodes[0].EncryptedPathSecret)
			for i := range cts {
				cts[i].Ciphertext = flip(cts[i].Ciphertext)
			}
			p.Nodes[0].EncryptedPathSecret = cts
			return &p
		}, is: []error{ErrInvalidUpdatePath, ErrDecrypt}, want: "path node 0"},
		{name: "other epoch", path: func() *UpdatePath {
			p := cp.Path
			return &p
		}, keys: func(k *TreePrivateKeys) {}, is: []error{ErrInvalidUpdatePath, ErrDecrypt}, want: ""},
		{name: "blank sender", path: func() *UpdatePath { return &cp.Path }, sender: 1 << 20,
			is: []error{ErrInvalidUpdatePath}, want: "blank"},
		{name: "receiver's key missing", path: func() *UpdatePath { return &cp.Path },
			keys: func(k *TreePrivateKeys) { clear(k.keys) }, is: []error{ErrPrivateKeyMismatch}, want: "holds no private key"},
		{name: "receiver added by the commit", path: func() *UpdatePath { return &cp.Path },
			exclude: []LeafIndex{receiver}, want: "joins by its Welcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := receiver
			if tt.to != 0 {
				to = tt.to
			}
			tree, keys := g.tree.Clone(), g.keys[to].Clone()
			if tt.keys != nil {
				tt.keys(keys)
			}
			ctx := g.ctx
			if tt.name == "other epoch" {
				ctx.Epoch++
			}
			from := sender
			if tt.sender != 0 {
				from = tt.sender
			}
			before, nodesBefore := tree.Marshal(), keys.Nodes()
			commit, err := tree.ApplyUpdatePath(keys, from, tt.path(), ctx, tt.exclude)
			if tt.name == "valid" {
				if err != nil || !bytes.Equal(commit, cp.CommitSecret()) {
					t.Fatalf("valid path: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ApplyUpdatePath = %v, want an error saying %q", err, tt.want)
			}
			for _, is := range tt.is {
				if !errors.Is(err, is) {
					t.Errorf("error %q does not wrap %q", err, is)
				}
			}
			if !bytes.Equal(tree.Marshal(), before) || !bytes.Equal(tree.TreeHash(), g.tree.TreeHash()) || !slices.Equal(keys.Nodes(), nodesBefore) {
				t.Error("a failed ApplyUpdatePath changed the tree or the keys")
			}
			t.Log(err)
		})
	}
}

// TestTreePrivateKeysMismatch checks that keys which do not match the
// tree are refused.
func TestTreePrivateKeysMismatch(t *testing.T) {
	g, v := treeKEMVectorGroup(t, 4)
	s := g.suite
	other, _ := s.GenerateHPKEKey(nil)
	if _, err := NewTreePrivateKeys(g.tree, 0, other); !errors.Is(err, ErrPrivateKeyMismatch) {
		t.Errorf("NewTreePrivateKeys with a wrong key = %v", err)
	}
	if _, err := NewTreePrivateKeys(g.tree, LeafIndex(g.tree.Leaves()), other); !errors.Is(err, ErrPrivateKeyMismatch) {
		t.Errorf("NewTreePrivateKeys outside the tree = %v", err)
	}
	k := g.keys[0].Clone()
	if err := k.SetKey(g.tree, g.tree.Root(), other); !errors.Is(err, ErrPrivateKeyMismatch) {
		t.Errorf("SetKey with a wrong key = %v", err)
	}
	if err := k.SetKey(g.tree, 2, other); !errors.Is(err, ErrPrivateKeyMismatch) {
		t.Errorf("SetKey of another leaf = %v", err)
	}
	nodes := k.Nodes()
	if err := k.ImplantPathSecret(g.tree, 1, bytes.Repeat([]byte{1}, s.Nh())); !errors.Is(err, ErrPrivateKeyMismatch) || !slices.Equal(k.Nodes(), nodes) {
		t.Errorf("ImplantPathSecret with a wrong secret = %v", err)
	}
	_ = v
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		if got := fmt.Sprintf(f, k); !strings.Contains(got, "REDACTED") {
			t.Errorf("Sprintf(%q, keys) = %q", f, got)
		}
	}
	cp, err := g.tree.Clone().CreateUpdatePath(0, PathParams{Signer: g.sigs[0], Context: g.ctx})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		if got := fmt.Sprintf(f, cp); !strings.Contains(got, "REDACTED") {
			t.Errorf("Sprintf(%q, commit path) = %q", f, got)
		}
	}
	cp.Erase()
	if !bytes.Equal(cp.CommitSecret(), make([]byte, s.Nh())) {
		t.Error("Erase left the commit secret")
	}
	if _, err := g.tree.Clone().CreateUpdatePath(0, PathParams{Signer: g.sigs[1], Context: g.ctx}); err == nil {
		t.Error("CreateUpdatePath with another member's signature key succeeded")
	}
}

// simMember is one member's state in a simulated group.
type simMember struct {
	tree *Tree
	keys *TreePrivateKeys
	sig  SignaturePrivateKey
}

// TestTreeKEMGroupLifecycle runs a group through random commits, with
// Adds, Updates and Removes, with and without a path, each member keeping
// its own tree and keys and the new members joining from the committer's
// tree with their Welcome's path secret. After each commit every member
// has the same tree, valid, the same commit_secret, and exactly the
// private keys the tree invariant gives it.
func TestTreeKEMGroupLifecycle(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		rounds := 8
		if cs == MLS128DHKEMX25519AES128GCMSHA256Ed25519 {
			rounds = 40
		}
		t.Run(suiteNumber(cs), func(t *testing.T) { runLifecycle(t, mustSuite(t, cs), rounds, uint64(cs)) })
	}
}

func runLifecycle(t *testing.T, s *Suite, rounds int, seed uint64) {
	rng := mrand.New(mrand.NewPCG(seed, 2))
	rand := testRand(seed)
	groupID := []byte("lifecycle")
	ln, enc, sig := testLeaf(t, s, rand, "m0")
	tree, err := NewOneMemberTree(s, ln)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewTreePrivateKeys(tree, 0, enc)
	if err != nil {
		t.Fatal(err)
	}
	members := map[LeafIndex]*simMember{0: {tree, keys, sig}}
	epoch, names := uint64(0), 1
	maxSeen := uint32(0)
	for round := range rounds {
		ids := slices.Sorted(maps.Keys(members))
		committer := ids[rng.IntN(len(ids))]
		c := members[committer]
		ctx := GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: groupID, Epoch: epoch, TreeHash: c.tree.TreeHash()}
		others := slices.DeleteFunc(slices.Clone(ids), func(l LeafIndex) bool { return l == committer })

		var props []CommittedProposal
		updated := map[LeafIndex]HPKEPrivateKey{}
		removed := map[LeafIndex]bool{}
		if len(others) > 0 && rng.IntN(3) == 0 {
			u := others[rng.IntN(len(others))]
			nl := *members[u].tree.Leaf(u)
			k, err := s.GenerateHPKEKey(rand)
			if err != nil {
				t.Fatal(err)
			}
			nl.EncryptionKey, nl.Source, nl.Lifetime, nl.ParentHash = k.Public(), LeafNodeSourceUpdate, Lifetime{}, nil
			if err := nl.Sign(s, members[u].sig, groupID, u); err != nil {
				t.Fatal(err)
			}
			if err := c.tree.VerifyLeafNode(&nl, u, LeafNodeSourceUpdate, &ctx); err != nil {
				t.Fatalf("round %d: update from %d: %v", round, u, err)
			}
			props = append(props, CommittedProposal{Sender: u, Proposal: &UpdateProposal{LeafNode: nl}})
			updated[u] = k
		}
		for range 1 + len(others)/8 {
			if len(others) > 1 && rng.IntN(3) == 0 || round >= rounds/2 && rng.IntN(3) != 0 {
				r := others[rng.IntN(len(others))]
				if _, ok := updated[r]; !ok && !removed[r] && len(removed) < len(others)-1 {
					props = append(props, CommittedProposal{Sender: committer, Proposal: &RemoveProposal{Removed: r}})
					removed[r] = true
				}
			}
		}
		type joiner struct {
			enc HPKEPrivateKey
			sig SignaturePrivateKey
		}
		var joiners []joiner
		// The group grows for the first half of the rounds, then shrinks.
		nAdd := rng.IntN(3)
		if round >= rounds/2 {
			nAdd = rng.IntN(2) * rng.IntN(2)
		}
		if len(ids) < 4 {
			nAdd++
		}
		for range nAdd {
			ln, enc, sig := testLeaf(t, s, rand, fmt.Sprint("m", names))
			names++
			if err := c.tree.VerifyLeafNode(ln, LeafIndex(c.tree.Leaves()), LeafNodeSourceKeyPackage, &ctx); err != nil {
				t.Fatal(err)
			}
			props = append(props, CommittedProposal{Sender: committer, Proposal: &AddProposal{KeyPackage: KeyPackage{LeafNode: *ln}}})
			joiners = append(joiners, joiner{enc, sig})
		}
		withPath := len(props) != nAdd || rng.IntN(2) == 0 // updates and removes need a path
		if len(props) == 0 {
			withPath = true
		}

		epoch++
		ctx.Epoch = epoch
		ctx.ConfirmedTranscriptHash = []byte(fmt.Sprint("transcript ", epoch))
		added, err := c.tree.ApplyProposals(props)
		if err != nil {
			t.Fatalf("round %d: committer: %v", round, err)
		}
		var cp *CommitPath
		commitSecret := make([]byte, s.Nh())
		if withPath {
			if cp, err = c.tree.CreateUpdatePath(committer, PathParams{Signer: c.sig, Context: ctx, Exclude: added, Rand: rand}); err != nil {
				t.Fatalf("round %d: create path: %v", round, err)
			}
			c.keys = cp.Keys()
			commitSecret = cp.CommitSecret()
		} else {
			c.keys.Sync(c.tree)
		}
		for _, id := range others {
			m := members[id]
			if removed[id] {
				delete(members, id)
				continue
			}
			got, err := m.tree.ApplyProposals(props)
			if err != nil || !slices.Equal(got, added) {
				t.Fatalf("round %d: member %d: proposals: %v, %v", round, id, got, err)
			}
			if k, ok := updated[id]; ok {
				if m.keys, err = NewTreePrivateKeys(m.tree, id, k); err != nil {
					t.Fatal(err)
				}
			} else {
				m.keys.Sync(m.tree)
			}
			if withPath {
				secret, err := m.tree.ApplyUpdatePath(m.keys, committer, &cp.Path, ctx, added)
				if err != nil {
					t.Fatalf("round %d: member %d: path from %d: %v", round, id, committer, err)
				}
				if !bytes.Equal(secret, commitSecret) {
					t.Fatalf("round %d: member %d: commit secrets differ", round, id)
				}
			}
		}
		ctx.TreeHash = c.tree.TreeHash()
		for i, l := range added {
			tr := mustTree(t, s, c.tree.Marshal())
			if err := tr.Validate(&ctx); err != nil {
				t.Fatalf("round %d: joiner %d: %v", round, l, err)
			}
			k, err := NewTreePrivateKeys(tr, l, joiners[i].enc)
			if err != nil {
				t.Fatal(err)
			}
			if withPath {
				ps, err := cp.PathSecret(l)
				if err != nil {
					t.Fatal(err)
				}
				if err := k.ImplantPathSecret(tr, committer, ps); err != nil {
					t.Fatalf("round %d: joiner %d: %v", round, l, err)
				}
			}
			members[l] = &simMember{tr, k, joiners[i].sig}
		}
		if cp != nil {
			cp.Erase()
		}
		if err := c.tree.Validate(&ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		maxSeen = max(maxSeen, c.tree.Leaves())
		want := c.tree.Marshal()
		for id, m := range members {
			if !bytes.Equal(m.tree.Marshal(), want) || !bytes.Equal(m.tree.TreeHash(), ctx.TreeHash) {
				t.Fatalf("round %d: member %d's tree differs", round, id)
			}
			checkTreeInvariant(t, m.tree, m.keys)
		}
	}
	t.Logf("%d rounds, %d members at the end in a tree of %d leaves, at most %d leaves", rounds, len(members), members[slices.Min(slices.Collect(maps.Keys(members)))].tree.Leaves(), maxSeen)
}

// checkTreeInvariant checks that keys hold the private key of exactly the
// non-blank nodes above the member's leaf that do not list it as
// unmerged (RFC 9420, section 4.1.1), and its leaf's, all matching.
func checkTreeInvariant(t *testing.T, tree *Tree, keys *TreePrivateKeys) {
	t.Helper()
	checkKeysMatch(t, tree, keys)
	l := keys.Leaf()
	for _, x := range directPath(l.node(), tree.Leaves()) {
		p := tree.ParentNode(x)
		want := p != nil && !slices.Contains(p.UnmergedLeaves, l)
		if _, got := keys.PrivateKey(x); got != want {
			t.Errorf("leaf %d: holds the key of node %d: %v, want %v", l, x, got, want)
		}
	}
}

// TestExternalCommit has a new client join a vector's group by external
// commit: it takes the leftmost blank leaf, or doubles a full tree, and
// every member processes its path to the same commit_secret and tree.
func TestExternalCommit(t *testing.T) {
	var vs []treeKEMVector
	loadVectors(t, "treekem", &vs)
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	full, gaps := false, false
	for i := range vs {
		v := &vs[i]
		if v.CipherSuite != s.ID() {
			continue
		}
		g := loadTreeKEMGroup(t, s, v)
		isFull := len(g.tree.Members()) == int(g.tree.Leaves())
		if isFull && full || !isFull && gaps {
			continue
		}
		full, gaps = full || isFull, gaps || !isFull
		t.Run(fmt.Sprintf("%d-full=%v", i, isFull), func(t *testing.T) {
			ln, _, sig := testLeaf(t, s, testRand(9), "joiner")
			joined := g.tree.Clone()
			l, err := joined.AddLeaf(ln)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := joined.CreateUpdatePath(l, PathParams{Signer: sig, Context: g.ctx})
			if err != nil {
				t.Fatal(err)
			}
			for to, k := range g.keys {
				tree, keys := g.tree.Clone(), k.Clone()
				got, commit, err := tree.ApplyExternalUpdatePath(keys, &cp.Path, g.ctx)
				if err != nil || got != l {
					t.Fatalf("member %d: leaf %d, %v; want leaf %d", to, got, err, l)
				}
				if !bytes.Equal(commit, cp.CommitSecret()) || !bytes.Equal(tree.Marshal(), joined.Marshal()) {
					t.Fatalf("member %d does not agree with the joiner", to)
				}
				checkTreeInvariant(t, tree, keys)
			}
			ctx := g.ctx
			ctx.TreeHash = joined.TreeHash()
			if err := joined.Validate(&ctx); err != nil {
				t.Fatal(err)
			}
			// A forged signature is refused and changes nothing.
			bad := cp.Path
			bad.LeafNode.Signature = bytes.Clone(bad.LeafNode.Signature)
			bad.LeafNode.Signature[0] ^= 1
			tree := g.tree.Clone()
			if _, _, err := tree.ApplyExternalUpdatePath(nil, &bad, g.ctx); !errors.Is(err, ErrBadSignature) || !bytes.Equal(tree.Marshal(), g.tree.Marshal()) {
				t.Errorf("forged external path: %v", err)
			}
		})
	}
	if !full || !gaps {
		t.Fatalf("treekem.json has full trees: %v, trees with blank leaves: %v; want both", full, gaps)
	}
}
