package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/cryptotest"
	"time"
)

// publicSim is a simulated group followed by the delivery service's
// PublicGroup, which sees every message deliver fans out before the
// members do: it processes the handshakes and checks the
// PrivateMessages' headers.
type publicSim struct {
	*sim
	pg      *PublicGroup
	pgOpts  PublicGroupOptions
	server  *externalSender
	own     map[string]bool // messages the PublicGroup made, not processed again
	results []*PublicProcessed
	private int // PrivateMessages checked
	leaves  int // ValidateLeaf calls
}

// newPublicSim starts a one-member group with the server as its external
// sender, and the server's PublicGroup from the creator's GroupInfo of
// epoch 0: with the ratchet_tree extension, or with the tree given apart.
func newPublicSim(t testing.TB, cs CipherSuite, seed uint64, treeInGroupInfo bool) *publicSim {
	t.Helper()
	server, ext := newExternalSender(t, mustSuite(t, cs), testRand(seed+100))
	sm := newSim(t, cs, seed, []Extension{ext})
	ps := &publicSim{sim: sm, server: server, own: map[string]bool{}}
	ps.pgOpts = PublicGroupOptions{ValidateLeaf: func(*LeafNode, LeafIndex) error { ps.leaves++; return nil }}
	gi, err := sm.members[0].g.GroupInfo(treeInGroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	if gi, err = UnmarshalGroupInfo(gi.Marshal()); err != nil {
		t.Fatal(err)
	}
	var rt RatchetTree
	if !treeInGroupInfo {
		rt = sm.members[0].g.RatchetTree()
	}
	if ps.pg, err = NewPublicGroup(gi, rt, ps.pgOpts); err != nil {
		t.Fatal(err)
	}
	sm.observe = ps.observe
	ps.agree()
	return ps
}

// observe is the delivery service receiving msg.
func (ps *publicSim) observe(msg *MLSMessage) {
	t := ps.t
	t.Helper()
	wire := msg.Marshal()
	if ps.own[string(wire)] {
		return
	}
	m, err := UnmarshalMLSMessage(wire)
	if err != nil {
		t.Fatal(err)
	}
	if m.WireFormat == WireFormatPrivateMessage {
		if err := ps.pg.CheckPrivate(m.PrivateMessage); err != nil {
			t.Fatalf("public group: check private message: %v", err)
		}
		ps.private++
		return
	}
	res, err := ps.pg.Process(m)
	if err != nil {
		t.Fatalf("public group: %v", err)
	}
	ps.results = append(ps.results, res)
}

// last returns what the PublicGroup made of the last message it processed.
func (ps *publicSim) last() *PublicProcessed { return ps.results[len(ps.results)-1] }

// proposeRemove has the server propose removing leaf as external sender
// index with signer, and fans the proposal out.
func (ps *publicSim) proposeRemove(index uint32, signer SignaturePrivateKey, leaf LeafIndex) {
	ps.t.Helper()
	m, err := ps.pg.ProposeRemove(signer, index, leaf)
	if err != nil {
		ps.t.Fatalf("public group: propose remove: %v", err)
	}
	ps.own[string(m.Marshal())] = true
	ps.deliver(m, nil)
}

// agree asserts the PublicGroup's GroupContext (epoch, tree hash,
// confirmed transcript hash, extensions) and tree are every member's, and
// that its state round-trips; the restored one goes on.
func (ps *publicSim) agree() {
	t := ps.t
	t.Helper()
	want := ps.pg.GroupContext()
	tree := ps.pg.RatchetTree().Marshal()
	for _, c := range ps.members {
		got := c.g.GroupContext()
		if !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Fatalf("%s at epoch %d and the public group at epoch %d differ: tree hash %x/%x, confirmed transcript hash %x/%x",
				c.name, got.Epoch, want.Epoch, got.TreeHash, want.TreeHash, got.ConfirmedTranscriptHash, want.ConfirmedTranscriptHash)
		}
		if !bytes.Equal(c.g.RatchetTree().Marshal(), tree) {
			t.Fatalf("%s and the public group hold different trees", c.name)
		}
	}
	if n := len(ps.pg.Members()); n != len(ps.members) {
		t.Fatalf("the public group has %d members, the simulation %d", n, len(ps.members))
	}
	ps.pg = roundTripPublic(t, ps.pg, ps.pgOpts)
}

// roundTripPublic stores and restores p, and checks the restored state
// encodes the same.
func roundTripPublic(t testing.TB, p *PublicGroup, opts PublicGroupOptions) *PublicGroup {
	t.Helper()
	b := publicState(t, p)
	q, err := UnmarshalPublicGroup(b, opts)
	if err != nil {
		t.Fatalf("unmarshal public group: %v", err)
	}
	if !bytes.Equal(publicState(t, q), b) {
		t.Fatal("the public group's state does not round-trip")
	}
	return q
}

func publicState(t testing.TB, p *PublicGroup) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runPublicSimulation drives a group through adds, updates by path and by
// proposal, removals by members and by the server, a change of the
// external senders, PSKs, an external join and a resync, with the
// PublicGroup in step after every one.
func runPublicSimulation(t *testing.T, cs CipherSuite, treeInGroupInfo bool) {
	ps := newPublicSim(t, cs, 31, treeInGroupInfo)
	sm := ps.sim
	step := func(what string) {
		t.Helper()
		ps.agree()
		sm.chat()
		if len(ps.pg.PendingProposals()) != 0 {
			t.Fatalf("%s: proposals still cached after the commit", what)
		}
	}
	wantCommit := func(what string, committer LeafIndex, hasPath bool, added, removed, updated []LeafIndex) *PublicProcessed {
		t.Helper()
		r := ps.last()
		if r.Kind != ContentCommit || r.Epoch != ps.pg.Epoch() || r.Committer != committer || r.HasPath != hasPath ||
			!slices.Equal(r.Added, added) || !slices.Equal(r.Removed, removed) || !slices.Equal(r.Updated, updated) || len(r.RemovedLeaves) != len(r.Removed) {
			t.Fatalf("%s: processed %+v; want committer %d, path %v, added %v, removed %v, updated %v", what, r, committer, hasPath, added, removed, updated)
		}
		return r
	}
	next := 1
	newcomer := func() *client {
		c := newClient(t, sm.s, sm.rand, fmt.Sprint("member ", next))
		next++
		return c
	}

	// Adds: one at a time without a path, then three with one.
	for range 3 {
		c := newcomer()
		committer := sm.members[len(sm.members)-1]
		res := sm.commit(committer, CommitOptions{Adds: []*KeyPackage{c.kp}}, c)
		wantCommit("add", committer.g.MyLeaf(), false, res.Added, nil, nil)
		step("add")
	}
	var batch []*client
	var kps []*KeyPackage
	for range 3 {
		c := newcomer()
		batch = append(batch, c)
		kps = append(kps, c.kp)
	}
	sm.setOpts(func(o *GroupOptions) { o.UseRatchetTreeExtension = true })
	res := sm.commit(sm.members[1], CommitOptions{Adds: kps, Update: true}, batch...)
	wantCommit("three adds", sm.members[1].g.MyLeaf(), true, res.Added, nil, nil)
	step("three adds")

	// Updates: by path, and by proposal.
	sm.commit(sm.members[2], CommitOptions{Update: true})
	wantCommit("update path", sm.members[2].g.MyLeaf(), true, nil, nil, nil)
	step("update path")
	u, err := sm.members[3].g.ProposeUpdate(sm.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(u, sm.members[3])
	if r := ps.last(); r.Kind != ContentProposal || r.Proposal.Type() != ProposalUpdate || len(ps.pg.PendingProposals()) != 1 {
		t.Fatalf("Update proposal: %+v", r)
	}
	sm.commit(sm.members[4], CommitOptions{IncludePending: true})
	wantCommit("update proposal", sm.members[4].g.MyLeaf(), true, nil, nil, []LeafIndex{sm.members[3].g.MyLeaf()})
	step("update proposal")

	// Removals by members: by commit, and by proposal.
	victim := sm.members[5]
	committer := sm.members[0]
	sm.commit(committer, CommitOptions{Removes: []LeafIndex{victim.g.MyLeaf()}})
	r := wantCommit("remove", committer.g.MyLeaf(), true, nil, []LeafIndex{victim.g.MyLeaf()}, nil)
	if !bytes.Equal(r.RemovedLeaves[0].SignatureKey, victim.signer.Public()) {
		t.Fatal("RemovedLeaves is not the removed member's leaf")
	}
	step("remove")
	victim = sm.members[2]
	rp, err := sm.members[1].g.ProposeRemove(victim.g.MyLeaf())
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(rp, sm.members[1])
	committer = sm.members[3]
	sm.commit(committer, CommitOptions{IncludePending: true})
	wantCommit("remove proposal", committer.g.MyLeaf(), true, nil, []LeafIndex{victim.g.MyLeaf()}, nil)
	step("remove proposal")

	// The server's Remove: made by the PublicGroup, accepted by every
	// member, committed by one.
	victim = sm.members[len(sm.members)-1]
	ps.proposeRemove(0, ps.server.signer, victim.g.MyLeaf())
	if pp := ps.pg.PendingProposals(); len(pp) != 1 || pp[0].Sender.Type != SenderExternal {
		t.Fatalf("the server's Remove is not cached: %+v", pp)
	}
	for _, c := range sm.members {
		if pp := c.g.PendingProposals(); len(pp) != 1 || !bytes.Equal(pp[0].Ref, ps.pg.PendingProposals()[0].Ref) {
			t.Fatalf("%s did not cache the server's Remove under the same reference", c.name)
		}
	}
	committer = sm.members[1]
	sm.commit(committer, CommitOptions{IncludePending: true})
	wantCommit("server's remove", committer.g.MyLeaf(), true, nil, []LeafIndex{victim.g.MyLeaf()}, nil)
	step("server's remove")

	// GroupContextExtensions: a second external sender, which then
	// removes someone.
	second, err := sm.s.GenerateSignatureKey(sm.rand)
	if err != nil {
		t.Fatal(err)
	}
	senders := ExternalSenders{
		{SignatureKey: ps.server.signer.Public(), Credential: Credential{Type: CredentialBasic, Identity: []byte("server")}},
		{SignatureKey: second.Public(), Credential: Credential{Type: CredentialBasic, Identity: []byte("second server")}},
	}
	gce, err := sm.members[0].g.ProposeGroupContextExtensions([]Extension{ExternalSendersExtension(senders)})
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(gce, sm.members[0])
	sm.commit(sm.members[2], CommitOptions{IncludePending: true})
	step("group context extensions")
	if _, err := ps.pg.ProposeRemove(ps.server.signer, 1, sm.members[0].g.MyLeaf()); err == nil {
		t.Fatal("ProposeRemove with another sender's key")
	}
	victim = sm.members[0]
	ps.proposeRemove(1, second, victim.g.MyLeaf())
	committer = sm.members[1]
	sm.commit(committer, CommitOptions{IncludePending: true})
	wantCommit("second server's remove", committer.g.MyLeaf(), true, nil, []LeafIndex{victim.g.MyLeaf()}, nil)
	step("second server's remove")

	// PSKs: an external one inline, a resumption one by proposal. The
	// PublicGroup never learns their values.
	sm.setOpts(func(o *GroupOptions) {
		o.PSKs = func(id *PreSharedKeyID) ([]byte, error) {
			if string(id.ID) == "ext" {
				return []byte("shared out of band"), nil
			}
			return nil, ErrUnknownPSK
		}
	})
	sm.commit(sm.members[0], CommitOptions{PSKs: []PreSharedKeyID{{Type: PSKExternal, ID: []byte("ext")}}})
	step("external PSK")
	resumption := PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, PSKGroupID: sm.members[0].g.GroupID(), PSKEpoch: sm.members[0].g.Epoch() - 1}
	pp, err := sm.members[1].g.ProposePSK(sm.rand, resumption)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(pp, sm.members[1])
	sm.commit(sm.members[2], CommitOptions{IncludePending: true})
	step("resumption PSK")

	// External joins: a newcomer, then a member that lost its state (a
	// resync).
	for _, resync := range []bool{false, true} {
		var j *client
		if resync {
			j = sm.members[0]
			j.freshKeyPackage(t, sm.rand)
		} else {
			j = newcomer()
		}
		gi, err := sm.members[1].g.GroupInfo(false)
		if err != nil {
			t.Fatal(err)
		}
		var old LeafIndex
		if resync {
			old = j.g.MyLeaf()
			sm.members = sm.members[1:]
		}
		g, commit, err := ExternalJoin(sm.rand, gi, sm.members[0].g.RatchetTree(), j.kp, j.signer, sm.opts)
		if err != nil {
			t.Fatalf("external join (resync %v): %v", resync, err)
		}
		sm.deliver(commit, nil)
		j.g = g
		sm.members = append(sm.members, j)
		var removed []LeafIndex
		if resync {
			removed = []LeafIndex{old}
		}
		r := wantCommit(fmt.Sprint("external join, resync ", resync), g.MyLeaf(), true, []LeafIndex{g.MyLeaf()}, removed, nil)
		if r.Sender.Type != SenderNewMemberCommit {
			t.Fatalf("external commit from sender type %d", r.Sender.Type)
		}
		step(fmt.Sprint("external join, resync ", resync))
	}
	if ps.leaves == 0 || ps.private == 0 {
		t.Fatalf("ValidateLeaf called %d times, %d PrivateMessages checked", ps.leaves, ps.private)
	}
	t.Logf("suite %s: the public group followed %d members to epoch %d (%d handshakes, %d PrivateMessages checked, ValidateLeaf called %d times)",
		suiteNumber(cs), len(sm.members), ps.pg.Epoch(), len(ps.results), ps.private, ps.leaves)
}

// TestPublicGroupSimulation: the delivery service's PublicGroup follows a
// simulated group in suite 1 and Hotline's post-quantum suite, its
// GroupContext equal to every member's after every step.
func TestPublicGroupSimulation(t *testing.T) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		for _, inGI := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/tree-in-groupinfo=%v", suiteNumber(cs), inGI), func(t *testing.T) {
				cryptotest.SetGlobalRandom(t, 43)
				runPublicSimulation(t, cs, inGI)
			})
		}
	}
}

// publicThree is a three-member group with the server as external
// sender, followed by a PublicGroup.
func publicThree(t testing.TB, cs CipherSuite) *publicSim {
	t.Helper()
	ps := newPublicSim(t, cs, 41, true)
	b, c := newClient(t, ps.s, ps.rand, "member 1"), newClient(t, ps.s, ps.rand, "member 2")
	ps.commit(ps.members[0], CommitOptions{Adds: []*KeyPackage{b.kp, c.kp}}, b, c)
	ps.agree()
	return ps
}

// refusePublic processes msg in p, expects an error wrapping each of
// want, and checks p's state did not change.
func refusePublic(t *testing.T, p *PublicGroup, msg *MLSMessage, want ...error) {
	t.Helper()
	before := publicState(t, p)
	m, err := UnmarshalMLSMessage(msg.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Process(m)
	if err == nil {
		t.Fatalf("accepted; want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("got %v, want %v", err, w)
		}
	}
	if !bytes.Equal(before, publicState(t, p)) {
		t.Fatalf("a refused message (%v) changed the public group", err)
	}
}

func TestPublicGroupRefusesTamperedCommit(t *testing.T) {
	ps := publicThree(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	a := ps.members[0]
	prev := ps.commit(a, CommitOptions{Update: true})
	ps.agree()
	refusePublic(t, ps.pg, prev.Commit, ErrWrongEpoch) // a replay

	res, err := a.g.Commit(ps.rand, CommitOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	wire := res.Commit.Marshal()
	fresh := func() *MLSMessage {
		m, err := UnmarshalMLSMessage(wire)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name   string
		tamper func(m *MLSMessage)
		want   []error
	}{
		{"wrong group", func(m *MLSMessage) { m.PublicMessage.Content.GroupID = []byte("another group") }, []error{ErrWrongGroup}},
		{"wrong epoch", func(m *MLSMessage) { m.PublicMessage.Content.Epoch++ }, []error{ErrWrongEpoch}},
		{"bad signature", func(m *MLSMessage) { m.PublicMessage.Auth.Signature[0] ^= 1 }, []error{ErrBadSignature}},
		{"blank sender", func(m *MLSMessage) {
			m.PublicMessage.Content.Sender.Leaf = 3
			resign(t, a.g, a.signer, m)
		}, []error{ErrUnknownSender}},
		{"unknown proposal reference", func(m *MLSMessage) {
			c := m.PublicMessage.Content.Commit
			c.Proposals = append(c.Proposals, ProposalOrRef{Type: ProposalOrRefReference, Reference: bytes.Repeat([]byte{9}, ps.s.Nh())})
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidCommit}},
		{"wrong parent hash", func(m *MLSMessage) {
			m.PublicMessage.Content.Commit.Path.LeafNode.ParentHash[0] ^= 1
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidUpdatePath}},
		{"path node missing", func(m *MLSMessage) {
			p := m.PublicMessage.Content.Commit.Path
			p.Nodes = p.Nodes[:len(p.Nodes)-1]
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidUpdatePath}},
		{"path node too many", func(m *MLSMessage) {
			p := m.PublicMessage.Content.Commit.Path
			p.Nodes = append(p.Nodes, p.Nodes[0])
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidUpdatePath}},
		{"no path where one is required", func(m *MLSMessage) {
			c := m.PublicMessage.Content.Commit
			c.Proposals = []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &RemoveProposal{Removed: 2}}}
			c.Path = nil
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidCommit}},
		{"committer removes itself", func(m *MLSMessage) {
			c := m.PublicMessage.Content.Commit
			c.Proposals = []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &RemoveProposal{Removed: 0}}}
			resign(t, a.g, a.signer, m)
		}, []error{ErrInvalidCommit}},
		{"short confirmation tag", func(m *MLSMessage) {
			m.PublicMessage.Auth.ConfirmationTag = m.PublicMessage.Auth.ConfirmationTag[:4]
		}, []error{ErrInvalidCommit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fresh()
			tt.tamper(m)
			refusePublic(t, ps.pg, m, tt.want...)
		})
	}
	// A wrong confirmation tag of the right size is what the
	// PublicGroup cannot see (the members refuse it).
	if err := a.g.DiscardPending(); err != nil {
		t.Fatal(err)
	}

	// The genuine commit still goes through, and the group goes on.
	ps.commit(a, CommitOptions{Update: true})
	ps.agree()
}

func TestPublicGroupRefusesProposals(t *testing.T) {
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	a := ps.members[0]
	mallory := newClient(t, ps.s, ps.rand, "mallory")

	// External Adds, by the external sender and by a new member.
	refusePublic(t, ps.pg, ps.server.propose(t, a.g, &AddProposal{KeyPackage: *mallory.kp}), ErrExternalAdd)
	content := &FramedContent{GroupID: a.g.GroupID(), Epoch: a.g.Epoch(), Sender: Sender{Type: SenderNewMemberProposal},
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: &AddProposal{KeyPackage: *mallory.kp}}
	ac, err := ps.s.SignContent(WireFormatPublicMessage, content, nil, mallory.signer)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := ps.s.ProtectPublic(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	refusePublic(t, ps.pg, &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}, ErrExternalAdd)

	// Other external proposals than Remove; unknown external senders.
	refusePublic(t, ps.pg, ps.server.propose(t, a.g, &GroupContextExtensionsProposal{Extensions: []Extension{}}), ErrInvalidProposal)
	refusePublic(t, ps.pg, ps.server.propose(t, a.g, &RemoveProposal{Removed: 7}), ErrInvalidProposal)
	stranger, _ := newExternalSender(t, ps.s, testRand(6))
	refusePublic(t, ps.pg, stranger.propose(t, a.g, &RemoveProposal{Removed: 1}), ErrBadSignature)
	stranger.index = 1
	refusePublic(t, ps.pg, stranger.propose(t, a.g, &RemoveProposal{Removed: 1}), ErrUnknownSender)

	// A member's proposal received twice.
	u, err := ps.members[1].g.ProposeUpdate(ps.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps.deliver(u, ps.members[1])
	refusePublic(t, ps.pg, u, ErrInvalidProposal)

	// The server's own Removes: of a blank leaf, twice, with the wrong
	// key or an unknown index.
	before := publicState(t, ps.pg)
	if _, err := ps.pg.ProposeRemove(ps.server.signer, 0, 5); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("Remove of a blank leaf: %v", err)
	}
	if _, err := ps.pg.ProposeRemove(stranger.signer, 0, 1); err == nil {
		t.Fatal("Remove signed with another key")
	}
	if _, err := ps.pg.ProposeRemove(ps.server.signer, 1, 1); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("Remove by an unknown external sender: %v", err)
	}
	if !bytes.Equal(before, publicState(t, ps.pg)) {
		t.Fatal("a refused ProposeRemove changed the public group")
	}
	ps.proposeRemove(0, ps.server.signer, 2)
	before = publicState(t, ps.pg)
	if _, err := ps.pg.ProposeRemove(ps.server.signer, 0, 2); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("the same Remove twice: %v", err)
	}
	if !bytes.Equal(before, publicState(t, ps.pg)) {
		t.Fatal("a refused ProposeRemove changed the public group")
	}
	res := ps.commit(a, CommitOptions{IncludePending: true})
	if n := len(res.Commit.PublicMessage.Content.Commit.Proposals); n != 2 {
		t.Fatalf("the commit covers %d proposals, want the Update and the Remove", n)
	}
	ps.agree()
}

func TestPublicGroupRefusesLeafTheHookRefuses(t *testing.T) {
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	a := ps.members[0]
	mallory := newClient(t, ps.s, ps.rand, "mallory")
	refuseMallory := PublicGroupOptions{ValidateLeaf: func(ln *LeafNode, _ LeafIndex) error {
		if string(ln.Credential.Identity) == "mallory" {
			return errors.New("not cleared")
		}
		return nil
	}}
	pg, err := UnmarshalPublicGroup(publicState(t, ps.pg), refuseMallory)
	if err != nil {
		t.Fatal(err)
	}
	// An Add, by value and by reference.
	res, err := a.g.Commit(ps.rand, CommitOptions{Adds: []*KeyPackage{mallory.kp}})
	if err != nil {
		t.Fatal(err)
	}
	refusePublic(t, pg, res.Commit, ErrLeafRefused)
	if err := a.g.DiscardPending(); err != nil {
		t.Fatal(err)
	}
	add, err := a.g.ProposeAdd(mallory.kp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Process(add); err != nil {
		t.Fatal(err) // proposals are checked by the hook when committed, as members do
	}
	if _, err := ps.members[1].g.Process(add); err != nil {
		t.Fatal(err)
	}
	res, err = ps.members[1].g.Commit(ps.rand, CommitOptions{IncludePending: true})
	if err != nil {
		t.Fatal(err)
	}
	refusePublic(t, pg, res.Commit, ErrLeafRefused)
	if err := ps.members[1].g.DiscardPending(); err != nil {
		t.Fatal(err)
	}
	// A path's new leaf: mallory joining by external commit.
	gi, err := a.g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	_, ec, err := ExternalJoin(ps.rand, gi, nil, mallory.kp, mallory.signer, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refusePublic(t, pg, ec, ErrLeafRefused)
	if _, err := ps.pg.Process(ec); err != nil {
		t.Fatalf("the external commit, without the hook: %v", err)
	}

	// A GroupInfo of a group holding mallory.
	sm2 := newSim(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 4, nil)
	sm2.commit(sm2.members[0], CommitOptions{Adds: []*KeyPackage{mallory.kp}}, mallory)
	gi, err = sm2.members[0].g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPublicGroup(gi, nil, refuseMallory); !errors.Is(err, ErrLeafRefused) {
		t.Fatalf("a GroupInfo with mallory: %v", err)
	}
}

func TestPublicGroupRefusesPrivateMessages(t *testing.T) {
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	a := ps.members[0]
	old, err := a.g.Encrypt(ps.rand, []byte("epoch 1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.pg.CheckPrivate(old.PrivateMessage); err != nil {
		t.Fatal(err)
	}
	refusePublic(t, ps.pg, old, ErrUnexpectedContent)
	ps.commit(a, CommitOptions{Update: true})
	ps.agree()
	if err := ps.pg.CheckPrivate(old.PrivateMessage); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("a PrivateMessage of the last epoch: %v", err)
	}
	m, err := a.g.Encrypt(ps.rand, []byte("epoch 2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	handshake := *m.PrivateMessage
	handshake.ContentType = ContentCommit
	if err := ps.pg.CheckPrivate(&handshake); !errors.Is(err, ErrUnexpectedContent) {
		t.Fatalf("a PrivateMessage handshake: %v", err)
	}
	other := *m.PrivateMessage
	other.GroupID = []byte("another group")
	if err := ps.pg.CheckPrivate(&other); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("a PrivateMessage of another group: %v", err)
	}
	if err := ps.pg.CheckPrivate(nil); !errors.Is(err, ErrUnexpectedContent) {
		t.Fatalf("no PrivateMessage: %v", err)
	}
	for _, msg := range []*MLSMessage{
		nil,
		{Version: MLS10, WireFormat: WireFormatPublicMessage},
		{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: &Welcome{}},
	} {
		if _, err := ps.pg.Process(msg); !errors.Is(err, ErrUnexpectedContent) {
			t.Fatalf("Process(%+v): %v", msg, err)
		}
	}
}

// TestPublicGroupReInit: after a ReInit commit the PublicGroup refuses
// further use, stored and restored too.
func TestPublicGroupReInit(t *testing.T) {
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	ri := &ReInitProposal{GroupID: []byte("next group"), Version: MLS10, CipherSuite: HotlinePQXWingAES256GCMSHA384Ed25519, Extensions: []Extension{}}
	ps.commit(ps.members[0], CommitOptions{ReInit: ri})
	if r := ps.last(); r.ReInit == nil || !bytes.Equal(r.ReInit.GroupID, ri.GroupID) {
		t.Fatalf("ReInit commit: %+v", r)
	}
	ps.agree()
	if got := ps.pg.ReInit(); got == nil || got.CipherSuite != ri.CipherSuite {
		t.Fatalf("ReInit after a round trip: %+v", got)
	}
	if _, err := ps.pg.ProposeRemove(ps.server.signer, 0, 1); !errors.Is(err, ErrInactive) {
		t.Fatalf("ProposeRemove after ReInit: %v", err)
	}
	if err := ps.pg.CheckPrivate(&PrivateMessage{GroupID: ps.pg.GroupID(), Epoch: ps.pg.Epoch(), ContentType: ContentApplication}); !errors.Is(err, ErrInactive) {
		t.Fatalf("CheckPrivate after ReInit: %v", err)
	}
	refusePublic(t, ps.pg, ps.server.propose(t, ps.members[0].g, &RemoveProposal{Removed: 1}), ErrInactive)
}

// TestNewPublicGroupRefuses: a GroupInfo with a bad signature, without a
// tree, with another group's tree, or a short confirmation tag.
func TestNewPublicGroupRefuses(t *testing.T) {
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	gi, err := ps.members[1].g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	rt := ps.members[1].g.RatchetTree()
	if _, err := NewPublicGroup(gi, rt, PublicGroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPublicGroup(gi, nil, PublicGroupOptions{}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("no tree: %v", err)
	}
	other := newSim(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 5, nil)
	if _, err := NewPublicGroup(gi, other.members[0].g.RatchetTree(), PublicGroupOptions{}); err == nil {
		t.Fatal("another group's tree accepted")
	}
	bad := *gi
	bad.Signature = bytes.Clone(gi.Signature)
	bad.Signature[0] ^= 1
	if _, err := NewPublicGroup(&bad, rt, PublicGroupOptions{}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature: %v", err)
	}
	bad = *gi
	bad.GroupContext.TreeHash = bytes.Repeat([]byte{1}, ps.s.Nh())
	if err := ps.s.SignGroupInfo(&bad, ps.members[1].signer); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPublicGroup(&bad, rt, PublicGroupOptions{}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("wrong tree hash: %v", err)
	}
	bad = *gi
	bad.ConfirmationTag = gi.ConfirmationTag[:3]
	if _, err := NewPublicGroup(&bad, rt, PublicGroupOptions{}); err == nil {
		t.Fatal("short confirmation tag accepted")
	}
	if _, err := NewPublicGroup(nil, nil, PublicGroupOptions{}); err == nil {
		t.Fatal("nil GroupInfo accepted")
	}
}

// publicFixture is a PublicGroup with cached proposals: a member's
// Update, the server's Remove, a PSK.
func publicFixture(t testing.TB) (*publicSim, []*MLSMessage) {
	t.Helper()
	ps := publicThree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	ps.setOpts(func(o *GroupOptions) {
		o.PSKs = func(*PreSharedKeyID) ([]byte, error) { return []byte("shared out of band"), nil }
	})
	var msgs []*MLSMessage
	u, err := ps.members[1].g.ProposeUpdate(ps.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps.deliver(u, ps.members[1])
	msgs = append(msgs, u)
	psk, err := ps.members[2].g.ProposePSK(ps.rand, PreSharedKeyID{Type: PSKExternal, ID: []byte("ext")})
	if err != nil {
		t.Fatal(err)
	}
	ps.deliver(psk, ps.members[2])
	msgs = append(msgs, psk)
	ps.proposeRemove(0, ps.server.signer, 2)
	res, err := ps.members[0].g.Commit(ps.rand, CommitOptions{IncludePending: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, res.Commit)
	gi, err := ps.members[0].g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	out := newClient(t, ps.s, ps.rand, "outsider")
	_, ec, err := ExternalJoin(ps.rand, gi, nil, out.kp, out.signer, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, ec)
	return ps, msgs
}

// TestPublicGroupStateStrict: every truncation of a stored state is
// refused, and so are an unknown version, trailing bytes and
// inconsistent states; flipping any byte never panics, and whatever still
// decodes re-encodes to itself.
func TestPublicGroupStateStrict(t *testing.T) {
	ps, _ := publicFixture(t)
	st := publicState(t, ps.pg)
	if n := len(ps.pg.PendingProposals()); n != 3 {
		t.Fatalf("%d cached proposals in the fixture", n)
	}
	for n := range len(st) {
		if _, err := UnmarshalPublicGroup(st[:n], PublicGroupOptions{}); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(st), err)
		}
	}
	if _, err := UnmarshalPublicGroup(append(bytes.Clone(st), 0), PublicGroupOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("trailing byte: %v", err)
	}
	v := bytes.Clone(st)
	v[len(publicStateMagic)]++
	if _, err := UnmarshalPublicGroup(v, PublicGroupOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("version %d: %v", v[len(publicStateMagic)], err)
	}
	// Inconsistent states, re-encoded from a modified group.
	inconsistent := map[string]func(g *Group){
		"tree hash":          func(g *Group) { g.ctx.TreeHash = bytes.Repeat([]byte{1}, len(g.ctx.TreeHash)) },
		"context suite":      func(g *Group) { g.ctx.CipherSuite = HotlinePQXWingAES256GCMSHA384Ed25519 },
		"interim hash":       func(g *Group) { g.interim = g.interim[:4] },
		"proposal reference": func(g *Group) { g.proposals[0].ref = g.proposals[0].ref[:4] },
		"reference twice":    func(g *Group) { g.proposals[1].ref = g.proposals[0].ref },
		"blank sender":       func(g *Group) { g.proposals[0].sender.Leaf = 3 },
		"new member sender":  func(g *Group) { g.proposals[0].sender = Sender{Type: SenderNewMemberCommit} },
		"external Update":    func(g *Group) { g.proposals[0].sender = Sender{Type: SenderExternal} },
		"unknown external":   func(g *Group) { g.proposals[2].sender.ExternalIndex = 1 },
		"blank Remove":       func(g *Group) { g.proposals[2].proposal = &RemoveProposal{Removed: 3} },
		"ExternalInit": func(g *Group) {
			g.proposals[0].proposal = &ExternalInitProposal{KEMOutput: []byte{1}}
		},
	}
	for name, f := range inconsistent {
		q, err := UnmarshalPublicGroup(st, PublicGroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f(q.g)
		b := publicState(t, q)
		if _, err := UnmarshalPublicGroup(b, PublicGroupOptions{}); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	decoded := 0
	for i := range st {
		m := bytes.Clone(st)
		m[i] ^= 0x41
		q, err := UnmarshalPublicGroup(m, PublicGroupOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("byte %d flipped: error not wrapping ErrInvalidState: %v", i, err)
			}
			continue
		}
		decoded++
		if again := publicState(t, q); !bytes.Equal(again, m) {
			t.Fatalf("byte %d flipped: decodes but re-encodes differently", i)
		}
	}
	t.Logf("%d-byte state: %d single-byte manglings still decode (signatures, keys, hashes the decoder cannot check)", len(st), decoded)
}

// TestPublicGroupPassiveClientVectors: a PublicGroup built from the
// GroupInfo of each passive-client vector's Welcome keeps in step with the
// passive member through every epoch's proposals and commit.
func TestPublicGroupPassiveClientVectors(t *testing.T) {
	for _, file := range []string{"passive-client-welcome", "passive-client-handling-commit", "passive-client-random"} {
		t.Run(file, func(t *testing.T) {
			var vs []passiveClientVector
			loadVectors(t, file, &vs)
			c := newVectorCounts(file + ".json (public group)")
			epochs, proposals, private := 0, 0, 0
			for i := range vs {
				v := &vs[i]
				s := c.suite(t, v.CipherSuite)
				if s == nil {
					continue
				}
				t.Run(fmt.Sprintf("%d/%d", i, v.CipherSuite), func(t *testing.T) {
					g := joinPassiveClient(t, s, v)
					gi, rt := passiveGroupInfo(t, s, v)
					opts := PublicGroupOptions{Now: func() time.Time { return time.Time{} }}
					pg, err := NewPublicGroup(gi, rt, opts)
					if err != nil {
						t.Fatal(err)
					}
					inStep := func(e int) {
						t.Helper()
						want, got := g.GroupContext(), pg.GroupContext()
						if !bytes.Equal(want.Marshal(), got.Marshal()) || !bytes.Equal(g.TreeHash(), got.TreeHash) {
							t.Fatalf("epoch %d: the public group's GroupContext differs from the passive member's", e)
						}
					}
					inStep(-1)
					for e, ep := range v.Epochs {
						for _, p := range ep.Proposals {
							m := decodeMLSMessage(t, p, WireFormatPublicMessage)
							if _, err := g.Process(m); err != nil {
								t.Fatal(err)
							}
							if _, err := pg.Process(decodeMLSMessage(t, p, WireFormatPublicMessage)); err != nil {
								t.Fatalf("epoch %d: proposal: %v", e, err)
							}
							proposals++
						}
						m, err := UnmarshalMLSMessage(ep.Commit)
						if err != nil {
							t.Fatal(err)
						}
						if m.WireFormat != WireFormatPublicMessage {
							// Not seen in the published vectors, but counted if it is.
							private++
							t.Logf("epoch %d: a %d commit: the public group cannot follow further", e, m.WireFormat)
							return
						}
						if _, err := g.Process(m); err != nil {
							t.Fatal(err)
						}
						m, _ = UnmarshalMLSMessage(ep.Commit)
						if _, err := pg.Process(m); err != nil {
							t.Fatalf("epoch %d: commit: %v", e, err)
						}
						inStep(e)
						epochs++
					}
					pg = roundTripPublic(t, pg, opts)
					inStep(len(v.Epochs))
				})
			}
			c.detail = fmt.Sprintf("%d epochs, %d proposals followed; %d vectors stopped at a PrivateMessage handshake", epochs, proposals, private)
			c.log(t)
		})
	}
}

// passiveGroupInfo decrypts a passive-client vector's Welcome for its
// GroupInfo, and returns it with the vector's tree (nil: in the
// GroupInfo).
func passiveGroupInfo(t *testing.T, s *Suite, v *passiveClientVector) (*GroupInfo, RatchetTree) {
	t.Helper()
	kp := decodeMLSMessage(t, v.KeyPackage, WireFormatKeyPackage).KeyPackage
	w := decodeMLSMessage(t, v.Welcome, WireFormatWelcome).Welcome
	initKey, err := s.ParseHPKEPrivateKey(vectorHPKEKey(s, v.InitPriv))
	if err != nil {
		t.Fatal(err)
	}
	var rt RatchetTree
	if v.RatchetTree != nil {
		if rt, err = UnmarshalRatchetTree(*v.RatchetTree); err != nil {
			t.Fatal(err)
		}
	}
	psks := func(id *PreSharedKeyID) ([]byte, error) {
		for _, p := range v.ExternalPSKs {
			if bytes.Equal(id.ID, p.PSKID) {
				return p.PSK, nil
			}
		}
		return nil, ErrUnknownPSK
	}
	signerKey := func(gi *GroupInfo) ([]byte, error) {
		tree, err := treeFor(s, gi, rt)
		if err != nil {
			return nil, err
		}
		if ln := tree.Leaf(gi.Signer); ln != nil {
			return ln.SignatureKey, nil
		}
		return nil, ErrUnknownSender
	}
	j, err := s.ProcessWelcome(w, kp, initKey, psks, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Erase()
	return j.GroupInfo, rt
}

// TestPublicGroupProcessMangled flips every byte of the fixture's
// messages in turn: the PublicGroup never panics, a refused message leaves
// it unchanged, and what it still accepts is only what it cannot check
// (the membership tag, and the confirmation tag's bytes).
func TestPublicGroupProcessMangled(t *testing.T) {
	ps, msgs := publicFixture(t)
	st := publicState(t, ps.pg)
	refused, accepted := 0, 0
	for k, msg := range msgs {
		wire := msg.Marshal()
		for i := range wire {
			b := bytes.Clone(wire)
			b[i] ^= 0x41
			m, err := UnmarshalMLSMessage(b)
			if err != nil {
				continue
			}
			p, err := UnmarshalPublicGroup(st, PublicGroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Process(m); err != nil {
				if !bytes.Equal(publicState(t, p), st) {
					t.Fatalf("message %d, byte %d flipped: refused (%v) but the public group changed", k, i, err)
				}
				refused++
				continue
			}
			pm := m.PublicMessage
			orig := msg.PublicMessage
			if !bytes.Equal(marshalWire(&pm.Content), marshalWire(&orig.Content)) || !bytes.Equal(pm.Auth.Signature, orig.Auth.Signature) {
				t.Fatalf("message %d, byte %d flipped: accepted with another content or signature", k, i)
			}
			accepted++
		}
	}
	t.Logf("%d manglings refused, %d accepted (in the membership and confirmation tags)", refused, accepted)
}

func FuzzPublicGroupState(f *testing.F) {
	ps, _ := publicFixture(f)
	f.Add(publicState(f, ps.pg))
	f.Add([]byte("HMLP\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalPublicGroup(data, PublicGroupOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error not wrapping ErrInvalidState: %v", err)
			}
			return
		}
		if again := publicState(t, p); !bytes.Equal(again, data) {
			t.Fatal("decodes but re-encodes differently")
		}
	})
}

// FuzzPublicGroupProcess feeds random messages to a PublicGroup with
// cached proposals: it never panics, and a refused message leaves it
// unchanged. The seeds are the fixture's proposals (received twice), a
// commit of them and an external commit.
func FuzzPublicGroupProcess(f *testing.F) {
	ps, msgs := publicFixture(f)
	st := publicState(f, ps.pg)
	for _, m := range msgs {
		f.Add(m.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := UnmarshalMLSMessage(data)
		if err != nil {
			return
		}
		p, err := UnmarshalPublicGroup(st, PublicGroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Process(m); err != nil {
			if !bytes.Equal(publicState(t, p), st) {
				t.Fatalf("a refused message (%v) changed the public group", err)
			}
			return
		}
		roundTripPublic(t, p, PublicGroupOptions{})
	})
}

// BenchmarkPublicGroupProcessCommit measures the delivery service
// processing a member's commit in a group of n: adding one member (no
// path), and an empty commit with a path (update). The PublicGroup
// verifies the signature, checks the key package of an Add, merges and
// checks the path's public part, and hashes the new tree and transcript;
// it decrypts nothing. Its copies, one per run, are made before the timer
// starts.
func BenchmarkPublicGroupProcessCommit(b *testing.B) {
	for _, cs := range groupBenchSuites {
		s := mustSuite(b, cs)
		for _, n := range []int{16, 1000} {
			var bg *groupBench
			for _, kind := range []string{"add", "update"} {
				b.Run(fmt.Sprintf("%s/%d/%s", suiteNumber(cs), n, kind), func(b *testing.B) {
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
					c := bg.committer
					view := func() *PublicGroup {
						return &PublicGroup{g: &Group{suite: s, updateKeys: map[string]HPKEPrivateKey{},
							epochState: epochState{ctx: c.ctx, tree: c.tree.Clone(), interim: c.interim}}}
					}
					ps := make([]*PublicGroup, b.N+1)
					for i := range ps {
						ps[i] = view()
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := ps[i].Process(res.Commit); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					p := ps[b.N]
					p.g.tree.ops = &opCounts{}
					if _, err := p.Process(res.Commit); err != nil {
						b.Fatal(err)
					}
					o := p.g.tree.ops
					o.verify++ // the content signature
					o.hash += 2
					if kind == "add" {
						o.verify += 2 // the key package and its leaf
						o.keyCheck += 3
					}
					reportGroupOps(b, o)
				})
			}
		}
	}
}
