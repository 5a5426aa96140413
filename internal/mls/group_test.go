package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"testing"
	"testing/cryptotest"
)

// client is a test participant: its key package and keys, and its group
// once it has one.
type client struct {
	name    string
	suite   *Suite
	kp      *KeyPackage
	secrets KeyPackageSecrets
	signer  SignaturePrivateKey
	g       *Group
}

func newClient(t testing.TB, s *Suite, rand io.Reader, name string) *client {
	t.Helper()
	sig, err := s.GenerateSignatureKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{name: name, suite: s, signer: sig}
	c.freshKeyPackage(t, rand)
	return c
}

func (c *client) freshKeyPackage(t testing.TB, rand io.Reader) {
	t.Helper()
	kp, sec, err := c.suite.NewKeyPackage(rand, Credential{Type: CredentialBasic, Identity: []byte(c.name)}, c.signer,
		Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}, DefaultCapabilities(c.suite.ID(), nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	c.kp, c.secrets = kp, sec
}

// sim is a simulated group: clients, and what the delivery service
// fans out.
type sim struct {
	t       testing.TB
	s       *Suite
	rand    io.Reader
	members []*client
	opts    GroupOptions
	// roundTrip marshals and unmarshals every member's state after each
	// step, as a device that stops and resumes does.
	roundTrip bool
	// observe, if set, sees every message deliver fans out, before the
	// members do: the delivery service's view (group_public_test.go).
	observe func(msg *MLSMessage)
}

func newSim(t testing.TB, cs CipherSuite, seed uint64, ctxExts []Extension) *sim {
	t.Helper()
	s := mustSuite(t, cs)
	sm := &sim{t: t, s: s, rand: testRand(seed)}
	a := newClient(t, s, sm.rand, "member 0")
	g, err := NewGroup(sm.rand, s, []byte("simulated group"), a.kp, a.secrets, a.signer, ctxExts, sm.opts)
	if err != nil {
		t.Fatal(err)
	}
	a.g = g
	sm.members = []*client{a}
	return sm
}

// deliver has every member but skip process msg.
func (sm *sim) deliver(msg *MLSMessage, skip *client) []*Processed {
	sm.t.Helper()
	if sm.observe != nil {
		sm.observe(msg)
	}
	var out []*Processed
	wire := msg.Marshal()
	for _, c := range sm.members {
		if c == skip {
			continue
		}
		m, err := UnmarshalMLSMessage(wire)
		if err != nil {
			sm.t.Fatal(err)
		}
		p, err := c.g.Process(m)
		if err != nil {
			sm.t.Fatalf("%s processing: %v", c.name, err)
		}
		out = append(out, p)
	}
	return out
}

// commit has c commit with opts, everyone else process it, new members
// join.
func (sm *sim) commit(c *client, opts CommitOptions, joiners ...*client) *CommitResult {
	sm.t.Helper()
	res, err := c.g.Commit(sm.rand, opts)
	if err != nil {
		sm.t.Fatalf("%s commit: %v", c.name, err)
	}
	sm.deliver(res.Commit, c)
	if err := c.g.MergePending(); err != nil {
		sm.t.Fatal(err)
	}
	// Drop removed members.
	sm.members = slices.DeleteFunc(sm.members, func(m *client) bool { return m.g.Removed() })
	for _, j := range joiners {
		if res.Welcome == nil {
			sm.t.Fatal("no Welcome")
		}
		w, err := UnmarshalMLSMessage(res.Welcome.Marshal())
		if err != nil {
			sm.t.Fatal(err)
		}
		var rt RatchetTree
		if !sm.opts.UseRatchetTreeExtension {
			rt = c.g.RatchetTree()
		}
		g, err := JoinFromWelcome(w.Welcome, j.kp, j.secrets, j.signer, rt, sm.opts)
		if err != nil {
			sm.t.Fatalf("%s join: %v", j.name, err)
		}
		j.g = g
		sm.members = append(sm.members, j)
	}
	sm.check()
	return res
}

// check asserts every member agrees on the epoch, its authenticator and
// the tree hash, and round-trips states if asked.
func (sm *sim) check() {
	sm.t.Helper()
	if sm.roundTrip {
		for _, c := range sm.members {
			b, err := c.g.MarshalState()
			if err != nil {
				sm.t.Fatalf("%s: marshal state: %v", c.name, err)
			}
			g, err := UnmarshalGroupState(b, c.signer, sm.opts)
			if err != nil {
				sm.t.Fatalf("%s: unmarshal state: %v", c.name, err)
			}
			b2, err := g.MarshalState()
			if err != nil || !bytes.Equal(b, b2) {
				sm.t.Fatalf("%s: state does not round-trip (%v)", c.name, err)
			}
			c.g = g
		}
	}
	a := sm.members[0].g
	for _, c := range sm.members[1:] {
		if c.g.Epoch() != a.Epoch() || !bytes.Equal(c.g.EpochAuthenticator(), a.EpochAuthenticator()) || !bytes.Equal(c.g.TreeHash(), a.TreeHash()) {
			sm.t.Fatalf("%s and %s disagree at epoch %d/%d", sm.members[0].name, c.name, a.Epoch(), c.g.Epoch())
		}
	}
}

// chat has every member send a message and every other decrypt it.
func (sm *sim) chat() {
	sm.t.Helper()
	for _, c := range sm.members {
		text := []byte(fmt.Sprintf("%s in epoch %d", c.name, c.g.Epoch()))
		m, err := c.g.Encrypt(sm.rand, text, []byte("ad"))
		if err != nil {
			sm.t.Fatalf("%s encrypt: %v", c.name, err)
		}
		for _, p := range sm.deliver(m, c) {
			if p.Kind != ContentApplication || !bytes.Equal(p.ApplicationData, text) || p.Sender.Leaf != c.g.MyLeaf() {
				sm.t.Fatalf("message from %s: got %q from leaf %d", c.name, p.ApplicationData, p.Sender.Leaf)
			}
		}
	}
}

// setOpts changes the options of the simulation and of every member.
func (sm *sim) setOpts(f func(o *GroupOptions)) {
	f(&sm.opts)
	for _, c := range sm.members {
		c.g.opts = sm.opts
	}
}

func (sm *sim) member(name string) *client {
	for _, c := range sm.members {
		if c.name == name {
			return c
		}
	}
	sm.t.Fatalf("no member %s", name)
	return nil
}

// externalSender is a server that may propose Removes: its key is in the
// group's external_senders extension.
type externalSender struct {
	signer SignaturePrivateKey
	index  uint32
}

func newExternalSender(t testing.TB, s *Suite, rand io.Reader) (*externalSender, Extension) {
	t.Helper()
	sig, err := s.GenerateSignatureKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	ext := makeExtension(ExtExternalSenders, ExternalSenders{{SignatureKey: sig.Public(), Credential: Credential{Type: CredentialBasic, Identity: []byte("server")}}})
	return &externalSender{signer: sig}, ext
}

// propose makes a PublicMessage proposal from the external sender.
func (e *externalSender) propose(t testing.TB, g *Group, p Proposal) *MLSMessage {
	t.Helper()
	content := &FramedContent{GroupID: g.GroupID(), Epoch: g.Epoch(), Sender: Sender{Type: SenderExternal, ExternalIndex: e.index},
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: p}
	ac, err := g.Suite().SignContent(WireFormatPublicMessage, content, nil, e.signer)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := g.Suite().ProtectPublic(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
}

// simLog records what every step of a simulation ended with, to compare
// runs.
type simLog [][]byte

func (sm *sim) record(log *simLog) {
	a := sm.members[0].g
	*log = append(*log, append(a.EpochAuthenticator(), a.TreeHash()...))
}

// runSimulation drives a group through its life in suite cs: growing by
// Adds, updates (by commit and by proposal), removals (by commit, by a
// member's proposal and by the server's), external joins and a resync,
// with every member sending after every step and checking that the
// members agree. With roundTrip, every member's state is stored and
// restored after every step.
func runSimulation(t *testing.T, cs CipherSuite, roundTrip bool) simLog {
	var log simLog
	server, ext := newExternalSender(t, mustSuite(t, cs), testRand(99))
	sm := newSim(t, cs, 7, []Extension{ext})
	sm.roundTrip = roundTrip
	hookCalls := 0
	sm.setOpts(func(o *GroupOptions) {
		o.ValidateLeaf = func(*LeafNode, LeafIndex) error { hookCalls++; return nil }
	})
	step := func() {
		t.Helper()
		sm.check()
		sm.chat()
		sm.record(&log)
	}
	newcomer := func(i int) *client { return newClient(t, sm.s, sm.rand, fmt.Sprint("member ", i)) }

	// Grow: one Add at a time by different members, then three at once.
	next := 1
	for range 3 {
		c := newcomer(next)
		next++
		sm.commit(sm.members[len(sm.members)-1], CommitOptions{Adds: []*KeyPackage{c.kp}}, c)
		step()
	}
	var batch []*client
	var kps []*KeyPackage
	for range 3 {
		c := newcomer(next)
		next++
		batch = append(batch, c)
		kps = append(kps, c.kp)
	}
	sm.setOpts(func(o *GroupOptions) { o.UseRatchetTreeExtension = true })
	sm.commit(sm.members[1], CommitOptions{Adds: kps, Update: true}, batch...)
	step()

	// Updates: by commit, and a proposal committed by another member.
	sm.commit(sm.members[2], CommitOptions{Update: true})
	step()
	u, err := sm.members[3].g.ProposeUpdate(sm.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(u, sm.members[3])
	sm.commit(sm.members[4], CommitOptions{IncludePending: true})
	step()

	// Removals: by commit, and by a member's proposal.
	sm.commit(sm.members[0], CommitOptions{Removes: []LeafIndex{sm.members[5].g.MyLeaf()}})
	step()
	r, err := sm.members[1].g.ProposeRemove(sm.members[2].g.MyLeaf())
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(r, sm.members[1])
	sm.commit(sm.members[3], CommitOptions{IncludePending: true})
	step()

	// The server proposes a Remove: nobody may send until it is
	// committed, and the next sender commits it first. The removed
	// member keeps a copy of its state and tries to read on.
	victim := sm.members[len(sm.members)-1]
	snapshot, err := victim.g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(server.propose(t, sm.members[0].g, &RemoveProposal{Removed: victim.g.MyLeaf()}), nil)
	sender := sm.members[1]
	if _, err := sender.g.Encrypt(sm.rand, []byte("too early"), nil); !errors.Is(err, ErrPendingProposals) {
		t.Fatalf("Encrypt with a pending Remove: %v", err)
	}
	res := sm.commit(sender, CommitOptions{IncludePending: true})
	if len(res.Added) != 0 || slices.Contains(sm.members, victim) {
		t.Fatal("the server's Remove was not committed")
	}
	if !victim.g.Removed() {
		t.Fatal("the removed member does not know")
	}
	step()
	msg, err := sender.g.Encrypt(sm.rand, []byte("after the removal"), nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := UnmarshalGroupState(snapshot, victim.signer, sm.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Process(msg); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("removed member's old state on a new-epoch message: %v", err)
	}
	old.ctx.Epoch = msg.PrivateMessage.Epoch // pretend to be in the new epoch
	if _, err := old.Process(msg); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("removed member's old keys on a new-epoch message: %v", err)
	}
	if _, err := victim.g.Process(msg); !errors.Is(err, ErrInactive) {
		t.Fatalf("removed member's group: %v", err)
	}
	sm.deliver(msg, sender)

	// External joins: a newcomer, then a member that lost its state
	// rejoins with the same signature key (a resync).
	for _, resync := range []bool{false, true} {
		var j *client
		if resync {
			j = sm.members[0]
			j.freshKeyPackage(t, sm.rand)
		} else {
			j = newcomer(next)
			next++
		}
		gi, err := sm.members[1].g.GroupInfo(false)
		if err != nil {
			t.Fatal(err)
		}
		gi, err = UnmarshalGroupInfo(gi.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		g, commit, err := ExternalJoin(sm.rand, gi, sm.members[1].g.RatchetTree(), j.kp, j.signer, sm.opts)
		if err != nil {
			t.Fatalf("external join (resync %v): %v", resync, err)
		}
		if resync {
			sm.members = sm.members[1:] // its old state is lost
			ps := sm.deliver(commit, nil)
			if len(ps[0].Removed) != 1 || len(ps[0].Added) != 1 {
				t.Fatalf("resync removed %v, added %v", ps[0].Removed, ps[0].Added)
			}
		} else {
			sm.deliver(commit, nil)
		}
		j.g = g
		sm.members = append(sm.members, j)
		step()
	}

	// Out of order: five messages read in reverse.
	a, b := sm.members[0], sm.members[1]
	var msgs []*MLSMessage
	for i := range 5 {
		m, err := a.g.Encrypt(sm.rand, []byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for i := 4; i >= 0; i-- {
		p, err := b.g.Process(msgs[i])
		if err != nil || !bytes.Equal(p.ApplicationData, []byte{byte(i)}) {
			t.Fatalf("message %d out of order: %v", i, err)
		}
	}
	if _, err := b.g.Process(msgs[2]); !errors.Is(err, ErrKeyConsumed) {
		t.Fatalf("replay: %v", err)
	}
	if hookCalls == 0 {
		t.Fatal("ValidateLeaf was never called")
	}
	t.Logf("suite %s: %d members at epoch %d, ValidateLeaf called %d times", suiteNumber(cs), len(sm.members), sm.members[0].g.Epoch(), hookCalls)
	return log
}

// TestGroupSimulation runs a group's life in every implemented suite.
func TestGroupSimulation(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		t.Run(suiteNumber(cs), func(t *testing.T) { runSimulation(t, cs, false) })
	}
}

// TestGroupStateRoundTrip runs the simulation twice with the same
// randomness, once storing and restoring every member's state after every
// step: the runs must end every step identically.
func TestGroupStateRoundTrip(t *testing.T) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			var logs [2]simLog
			for i, rt := range []bool{false, true} {
				t.Run(fmt.Sprint("roundtrip=", rt), func(t *testing.T) {
					cryptotest.SetGlobalRandom(t, 42)
					logs[i] = runSimulation(t, cs, rt)
				})
			}
			if len(logs[0]) == 0 || !slices.EqualFunc(logs[0], logs[1], bytes.Equal) {
				t.Fatal("the runs with and without stored states differ")
			}
		})
	}
}
