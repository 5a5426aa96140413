package mls

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Benchmarks of the group state machine: whole commits (add, update,
// remove: proposals, path, signing, framing, key schedule, Welcome) and
// their processing, in groups of 2 to 1,000 members, and application
// messages. Each reports the primitives it uses, to set against
// BenchmarkPrimitives and BenchmarkTreeKEMPrimitives of the same run
// (the target is at most twice their sum). BenchmarkVersusTSMLS times
// the same operations in ts-mls, in the same run.

var groupBenchSuites = []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519}

// groupBench is a group of n members in which every parent above a
// member has a key, as after every member has committed (the shape
// BenchmarkUpdatePath uses): the committer at leaf 0, and the stored state
// of the receiver at leaf 1.
type groupBench struct {
	committer *Group
	receiver  []byte
	recvSig   SignaturePrivateKey
	newcomer  *KeyPackage
}

func newGroupBench(b *testing.B, s *Suite, n int) *groupBench {
	b.Helper()
	rand := testRand(uint64(n) + 1000)
	leaves := uint32(1)
	for leaves < uint32(n) {
		leaves *= 2
	}
	rt := make(RatchetTree, nodeWidth(leaves))
	encs := map[LeafIndex]HPKEPrivateKey{}
	sigs := map[LeafIndex]SignaturePrivateKey{}
	for l := range LeafIndex(n) {
		ln, enc, sig := testLeaf(b, s, rand, fmt.Sprint("member ", l))
		rt[l.node()] = leafNode(ln)
		encs[l], sigs[l] = enc, sig
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
	random := func() []byte {
		r, err := readRandom(rand, s.Nh())
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	ctx := GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: []byte("benchmark group"), Epoch: 7,
		TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: random(), Extensions: []Extension{}}
	initSecret, interim, tag := random(), random(), random()
	member := func(l LeafIndex) *Group {
		t := tree.Clone()
		keys, err := NewTreePrivateKeys(t, l, encs[l])
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range directPath(l.node(), t.Leaves()) {
			if p, ok := parents[x]; ok {
				if err := keys.SetKey(t, x, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		es, err := s.NewEpochSecrets(initSecret, nil, nil, &ctx)
		if err != nil {
			b.Fatal(err)
		}
		st, err := es.SecretTree(t.Leaves())
		if err != nil {
			b.Fatal(err)
		}
		return &Group{suite: s, signer: sigs[l], updateKeys: map[string]HPKEPrivateKey{},
			epochState: epochState{ctx: ctx, tree: t, keys: keys, secrets: es, secretTree: st, interim: interim, confirmationTag: tag}}
	}
	bg := &groupBench{committer: member(0), recvSig: sigs[1]}
	if bg.receiver, err = member(1).MarshalState(); err != nil {
		b.Fatal(err)
	}
	bg.newcomer = newClient(b, s, rand, "newcomer").kp
	return bg
}

// benchClone returns a copy of g that processes a commit independently:
// the tree's nodes are shared (a Tree never changes a node in place), the
// secrets are copied, since moving to the next epoch erases the old ones.
// g must not have used its secret tree.
func benchClone(g *Group) *Group {
	c := *g
	c.tree = g.tree.Clone()
	c.keys = g.keys.Clone()
	es := *g.secrets
	for _, p := range []*secret{&es.joiner, &es.welcome, &es.senderData, &es.encryption, &es.exporter, &es.external,
		&es.confirmation, &es.membership, &es.resumption, &es.authenticator, &es.init} {
		*p = newSecret(p.clone())
	}
	c.secrets = &es
	st := *g.secretTree
	st.nodes = map[NodeIndex]secret{}
	for x, v := range g.secretTree.nodes {
		st.nodes[x] = newSecret(v.clone())
	}
	st.leaves = map[uint32]*leafRatchets{}
	c.secretTree = &st
	c.updateKeys = map[string]HPKEPrivateKey{}
	return &c
}

// receivers returns n copies of the group stored in state.
func receivers(b *testing.B, state []byte, signer SignaturePrivateKey, n int) []*Group {
	b.Helper()
	g, err := UnmarshalGroupState(state, signer, GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	gs := make([]*Group, n)
	for i := range gs {
		gs[i] = benchClone(g)
	}
	return gs
}

// commitOptions returns the options of a commit of kind in a group of n.
func (bg *groupBench) commitOptions(kind string, n int) CommitOptions {
	switch kind {
	case "add":
		return CommitOptions{Adds: []*KeyPackage{bg.newcomer}}
	case "update":
		return CommitOptions{Update: true}
	}
	return CommitOptions{Removes: []LeafIndex{LeafIndex(n - 1)}}
}

// groupOps adds to o the primitives the group layer uses around the
// tree's, which the tree's counter does not see: the content signature
// (or its verification), the membership and confirmation MACs, the two
// transcript hashes, the key schedule (two extracts and twelve
// expansions; MACs are counted as expansions, both being one HMAC);
// for an Add, checking the key package (two signatures, two keys, and
// the leaf's key against the tree), and for the committer the Welcome
// (GroupInfo signature, one HPKE seal, its key and nonce, the key package
// reference).
func groupOps(o *opCounts, kind string, committer bool) {
	o.hash += 2
	o.expand += 14 + 2
	if committer {
		o.sign++
	} else {
		o.verify++
	}
	if kind == "add" {
		o.verify += 2
		o.keyCheck += 3
		if committer {
			o.sign++
			o.seal++
			o.expand += 2
			o.hash++
		}
	}
}

func reportGroupOps(b *testing.B, o *opCounts) {
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

var groupBenchSizes = []int{2, 16, 128, 1000}

// BenchmarkCommit measures a member making a commit in a group of n:
// adding one member (no path, as RFC 9420 allows and ts-mls does; with
// the Welcome), an empty commit with a path (update), and removing the
// member at the last leaf (with a path). Each is discarded after, so
// every run starts from the same state.
func BenchmarkCommit(b *testing.B) {
	for _, cs := range groupBenchSuites {
		s := mustSuite(b, cs)
		for _, n := range groupBenchSizes {
			var bg *groupBench
			for _, kind := range []string{"add", "update", "remove"} {
				b.Run(fmt.Sprintf("%s/%d/%s", suiteNumber(cs), n, kind), func(b *testing.B) {
					if bg == nil {
						bg = newGroupBench(b, s, n)
					}
					g, opts := bg.committer, bg.commitOptions(kind, n)
					commit := func() {
						if _, err := g.Commit(nil, opts); err != nil {
							b.Fatal(err)
						}
						if err := g.DiscardPending(); err != nil {
							b.Fatal(err)
						}
					}
					for b.Loop() {
						commit()
					}
					g.tree.ops = &opCounts{}
					commit()
					o := g.tree.ops
					g.tree.ops = nil
					groupOps(o, kind, true)
					reportGroupOps(b, o)
				})
			}
		}
	}
}

// BenchmarkProcessCommit measures the member at leaf 1 processing the
// commits of BenchmarkCommit (the costliest receiver of a path: it
// decrypts at the lowest node). Its copies, one per run, are made before
// the timer starts. In a group of 2 the remove commit removes the only other
// member, so that case is skipped.
func BenchmarkProcessCommit(b *testing.B) {
	for _, cs := range groupBenchSuites {
		s := mustSuite(b, cs)
		for _, n := range groupBenchSizes {
			var bg *groupBench
			for _, kind := range []string{"add", "update", "remove"} {
				b.Run(fmt.Sprintf("%s/%d/%s", suiteNumber(cs), n, kind), func(b *testing.B) {
					if n == 2 && kind == "remove" {
						b.Skip("the only receiver is the removed member")
					}
					if bg == nil {
						bg = newGroupBench(b, s, n)
					}
					res, err := bg.committer.Commit(nil, bg.commitOptions(kind, n))
					if err != nil {
						b.Fatal(err)
					}
					if err := bg.committer.DiscardPending(); err != nil {
						b.Fatal(err)
					}
					gs := receivers(b, bg.receiver, bg.recvSig, b.N+1)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := gs[i].Process(res.Commit); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					g := gs[b.N]
					g.tree.ops = &opCounts{}
					if _, err := g.Process(res.Commit); err != nil {
						b.Fatal(err)
					}
					o := g.tree.ops
					groupOps(o, kind, false)
					reportGroupOps(b, o)
				})
			}
		}
	}
}

// BenchmarkGroupMessage measures Encrypt and Process of a 100-byte
// application message in a group of 16. Primitives: a signature (or its
// verification), the content and sender-data AEADs, the sender-data key
// and nonce, and one ratchet step (key, nonce, next secret). The messages
// decrypted are made before the timer starts.
func BenchmarkGroupMessage(b *testing.B) {
	for _, cs := range groupBenchSuites {
		s := mustSuite(b, cs)
		bg := newGroupBench(b, s, 16)
		text := make([]byte, 100)
		b.Run(suiteNumber(cs)+"/encrypt", func(b *testing.B) {
			for b.Loop() {
				if _, err := bg.committer.Encrypt(nil, text, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(1, "signs/op")
			b.ReportMetric(5, "expands/op")
			b.ReportMetric(2, "aeads/op")
		})
		b.Run(suiteNumber(cs)+"/decrypt", func(b *testing.B) {
			bg := newGroupBench(b, s, 16) // a sender whose ratchet is where the receiver's is
			recv, err := UnmarshalGroupState(bg.receiver, bg.recvSig, GroupOptions{})
			if err != nil {
				b.Fatal(err)
			}
			msgs := make([]*MLSMessage, b.N)
			for i := range msgs {
				if msgs[i], err = bg.committer.Encrypt(nil, text, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := recv.Process(msgs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(1, "verifies/op")
			b.ReportMetric(5, "expands/op")
			b.ReportMetric(2, "aeads/op")
		})
	}
}

// BenchmarkVersusTSMLS times commits and their processing beside ts-mls,
// in the same run, for suites 1 and 0x0053 and groups of 2, 16 and 128:
// both groups are built the same way (the creator adds everyone in one
// commit without a path, so every parent is blank; leaf 1 joins) and both
// commit from the same state each run. It reports Hotline's ns/op as
// usual, ts-mls's as tsmls-ns/op, and tsmls-ns/op ÷ ns/op as x-faster.
func BenchmarkVersusTSMLS(b *testing.B) {
	results := map[string]map[string]struct {
		Commit  float64 `json:"commit_ns"`
		Process float64 `json:"process_ns"`
	}{}
	ts := startTS(b)
	for _, cs := range interopSuites {
		s := mustSuite(b, cs)
		for _, n := range []int{2, 16, 128} {
			key := fmt.Sprintf("%s/%d", suiteNumber(cs), n)
			var creator *Group
			var joinerState []byte
			var joiner *client
			var newcomer *KeyPackage
			setup := func(b *testing.B) {
				if creator != nil {
					return
				}
				count := 10
				if n == 128 {
					count = 3
				}
				res := ts.call("bench", map[string]any{"suite": int(cs), "n": n, "count": count})
				delete(res, "ok")
				raw, _ := json.Marshal(res)
				var r map[string]struct {
					Commit  float64 `json:"commit_ns"`
					Process float64 `json:"process_ns"`
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					b.Fatal(err)
				}
				results[key] = r
				rand := testRand(uint64(n))
				c := newClient(b, s, rand, "creator")
				g, err := NewGroup(rand, s, []byte("bench group"), c.kp, c.secrets, c.signer, nil, GroupOptions{})
				if err != nil {
					b.Fatal(err)
				}
				joiner = newClient(b, s, rand, "member 1")
				kps := []*KeyPackage{joiner.kp}
				for i := 2; i < n; i++ {
					kps = append(kps, newClient(b, s, rand, fmt.Sprint("member ", i)).kp)
				}
				cr, err := g.Commit(rand, CommitOptions{Adds: kps})
				if err != nil {
					b.Fatal(err)
				}
				if err := g.MergePending(); err != nil {
					b.Fatal(err)
				}
				j, err := JoinFromWelcome(cr.Welcome.Welcome, joiner.kp, joiner.secrets, joiner.signer, g.RatchetTree(), GroupOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if joinerState, err = j.MarshalState(); err != nil {
					b.Fatal(err)
				}
				newcomer = newClient(b, s, rand, "newcomer").kp
				creator = g
			}
			for _, kind := range []string{"add", "update", "remove"} {
				opts := func() CommitOptions {
					switch kind {
					case "add":
						return CommitOptions{Adds: []*KeyPackage{newcomer}}
					case "update":
						return CommitOptions{Update: true}
					}
					return CommitOptions{Removes: []LeafIndex{LeafIndex(n - 1)}}
				}
				b.Run(key+"/"+kind+"/commit", func(b *testing.B) {
					setup(b)
					o := opts()
					for b.Loop() {
						if _, err := creator.Commit(nil, o); err != nil {
							b.Fatal(err)
						}
						if err := creator.DiscardPending(); err != nil {
							b.Fatal(err)
						}
					}
					tsNs := results[key][kind].Commit
					b.ReportMetric(tsNs, "tsmls-ns/op")
					b.ReportMetric(tsNs/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "x-faster")
				})
				b.Run(key+"/"+kind+"/process", func(b *testing.B) {
					setup(b)
					if n == 2 && kind == "remove" {
						b.Skip("the only receiver is the removed member")
					}
					res, err := creator.Commit(nil, opts())
					if err != nil {
						b.Fatal(err)
					}
					if err := creator.DiscardPending(); err != nil {
						b.Fatal(err)
					}
					gs := receivers(b, joinerState, joiner.signer, b.N)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := gs[i].Process(res.Commit); err != nil {
							b.Fatal(err)
						}
					}
					elapsed := b.Elapsed().Nanoseconds()
					tsNs := results[key][kind].Process
					b.ReportMetric(tsNs, "tsmls-ns/op")
					b.ReportMetric(tsNs/(float64(elapsed)/float64(b.N)), "x-faster")
				})
			}
		}
	}
}
