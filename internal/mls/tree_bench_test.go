package mls

import (
	"fmt"
	"testing"
)

// benchTree builds a tree of n members in which every parent above a
// member has a key, as after every member has committed: the case where
// each copath resolution is one node. The parent hashes are not a real
// commit history's: creating and processing a path does not look at them.
// It returns the tree and the private keys of leaves 0 and 1 and of the
// last member.
func benchTree(b *testing.B, s *Suite, n int) (*Tree, map[LeafIndex]*TreePrivateKeys, SignaturePrivateKey) {
	b.Helper()
	rand := testRand(uint64(n))
	leaves := uint32(1)
	for leaves < uint32(n) {
		leaves *= 2
	}
	rt := make(RatchetTree, nodeWidth(leaves))
	encs := map[LeafIndex]HPKEPrivateKey{}
	var sig0 SignaturePrivateKey
	for l := range LeafIndex(n) {
		ln, enc, sig := testLeaf(b, s, rand, fmt.Sprint("member ", l))
		rt[l.node()] = leafNode(ln)
		encs[l] = enc
		if l == 0 {
			sig0 = sig
		}
	}
	parents := map[NodeIndex]HPKEPrivateKey{}
	for x := NodeIndex(1); int(x) < len(rt); x += 2 {
		if lo, _ := leafSpan(x); lo < uint32(n) {
			k, err := s.GenerateHPKEKey(rand)
			if err != nil {
				b.Fatal(err)
			}
			parents[x] = k
			rt[x] = parentNode(&ParentNode{EncryptionKey: k.Public()})
		}
	}
	for len(rt) > 0 && rt[len(rt)-1] == nil {
		rt = rt[:len(rt)-1]
	}
	tree, err := NewTree(s, rt)
	if err != nil {
		b.Fatal(err)
	}
	keys := map[LeafIndex]*TreePrivateKeys{}
	for _, l := range []LeafIndex{0, 1, LeafIndex(n - 1)} {
		k, err := NewTreePrivateKeys(tree, l, encs[l])
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range directPath(l.node(), tree.Leaves()) {
			if p, ok := parents[x]; ok {
				if err := k.SetKey(tree, x, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		keys[l] = k
	}
	tree.TreeHash() // fill the cache, as a member's tree has it
	return tree, keys, sig0
}

// reportOps reports the primitives one run of op uses, counted on a
// clone of tree. Call it after the b.Loop loop, which deletes the metrics
// reported before it.
func reportOps(b *testing.B, tree *Tree, op func(t *Tree)) {
	c := tree.Clone()
	c.ops = &opCounts{}
	op(c)
	o := c.ops
	for _, m := range []struct {
		n    int
		unit string
	}{
		{o.seal, "seals/op"}, {o.open, "opens/op"}, {o.deriveKeyPair, "derivekeypairs/op"},
		{o.sign, "signs/op"}, {o.verify, "verifies/op"}, {o.expand, "expands/op"},
		{o.keyCheck, "keychecks/op"}, {o.hash, "hashes/op"}, {o.hashBytes, "hashed-B/op"},
	} {
		b.ReportMetric(float64(m.n), m.unit)
	}
}

// BenchmarkUpdatePath measures TreeKEM in a full tree of 2 to 1,000
// members: "create" is a commit's UpdatePath from leaf 0 (leaf key, path
// secrets and node keys, parent hashes, leaf signature, tree hash, one
// HPKE encryption per path node); "process" is leaf 1 receiving it, the
// costliest receiver (it decrypts at the lowest node and derives every
// node key above), on a clone of its tree as a member's commit
// processing works on one. Each reports the primitives it uses, to set
// against BenchmarkPrimitives and BenchmarkTreeKEMPrimitives.
func BenchmarkUpdatePath(b *testing.B) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		s := mustSuite(b, cs)
		for _, n := range []int{2, 16, 128, 1000} {
			var (
				tree *Tree
				keys map[LeafIndex]*TreePrivateKeys
				sig  SignaturePrivateKey
			)
			setup := func(b *testing.B) {
				if tree == nil {
					tree, keys, sig = benchTree(b, s, n)
				}
			}
			ctx := GroupContext{Version: MLS10, CipherSuite: cs, GroupID: []byte("benchmark group"), Epoch: 7,
				ConfirmedTranscriptHash: make([]byte, s.Nh())}
			params := PathParams{Signer: sig, Context: ctx}
			name := fmt.Sprintf("%s/%d", suiteNumber(cs), n)
			b.Run(name+"/create", func(b *testing.B) {
				setup(b)
				params.Signer = sig
				create := func(t *Tree) {
					cp, err := t.CreateUpdatePath(0, params)
					if err != nil {
						b.Fatal(err)
					}
					cp.Erase()
				}
				t := tree.Clone()
				for b.Loop() {
					create(t)
				}
				reportOps(b, tree, create)
			})
			b.Run(name+"/process", func(b *testing.B) {
				setup(b)
				params.Signer = sig
				cp, err := tree.Clone().CreateUpdatePath(0, params)
				if err != nil {
					b.Fatal(err)
				}
				process := func(t *Tree) {
					if _, err := t.ApplyUpdatePath(keys[1].Clone(), 0, &cp.Path, ctx, nil); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					process(tree.Clone())
				}
				reportOps(b, tree, process)
			})
		}
	}
}

// BenchmarkTreeKEMPrimitives measures the primitives TreeKEM uses that
// BenchmarkPrimitives does not: checking an HPKE public key, and hashing
// inputs of the size tree and parent hashes take.
func BenchmarkTreeKEMPrimitives(b *testing.B) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		s := mustSuite(b, cs)
		k, err := s.GenerateHPKEKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		pub := k.Public()
		b.Run(suiteNumber(cs)+"/ValidateHPKEPublicKey", func(b *testing.B) {
			for b.Loop() {
				if err := s.ValidateHPKEPublicKey(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, size := range []int{128, 512} {
			in := make([]byte, size)
			b.Run(fmt.Sprintf("%s/Hash%dB", suiteNumber(cs), size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					s.Hash(in)
				}
			})
		}
	}
}

// BenchmarkTreeValidate measures the validation a member joining a group
// of 128 or 1,000 members makes (Tree.Validate), from a cold hash cache
// as a joiner has it: every leaf signature, key and capabilities check,
// every tree hash and parent hash. The tree is built as a group's would
// be: members added, then every other member committing.
func BenchmarkTreeValidate(b *testing.B) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		s := mustSuite(b, cs)
		for _, n := range []int{128, 1000} {
			b.Run(fmt.Sprintf("%s/%d", suiteNumber(cs), n), func(b *testing.B) {
				tree, ctx := committedTree(b, s, n)
				for b.Loop() {
					c := tree.Clone()
					clear(c.hashes)
					if err := c.Validate(ctx); err != nil {
						b.Fatal(err)
					}
				}
				c := tree.Clone()
				clear(c.hashes)
				c.ops = &opCounts{}
				if err := c.Validate(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(c.ops.verify), "verifies/op")
				b.ReportMetric(float64(c.ops.hash), "hashes/op")
			})
		}
	}
}

// committedTree returns a valid tree of n members in which every other
// member has committed, and its GroupContext.
func committedTree(b *testing.B, s *Suite, n int) (*Tree, *GroupContext) {
	b.Helper()
	rand := testRand(uint64(n) + 1)
	ctx := &GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: []byte("benchmark group")}
	ln, _, sig := testLeaf(b, s, rand, "member 0")
	tree, err := NewOneMemberTree(s, ln)
	if err != nil {
		b.Fatal(err)
	}
	sigs := []SignaturePrivateKey{sig}
	for i := 1; i < n; i++ {
		ln, _, sig := testLeaf(b, s, rand, fmt.Sprint("member ", i))
		if _, err := tree.AddLeaf(ln); err != nil {
			b.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	for l := 0; l < n; l += 2 {
		cp, err := tree.CreateUpdatePath(LeafIndex(l), PathParams{Signer: sigs[l], Context: *ctx, Rand: rand})
		if err != nil {
			b.Fatal(err)
		}
		cp.Erase()
	}
	ctx.TreeHash = tree.TreeHash()
	return tree, ctx
}
