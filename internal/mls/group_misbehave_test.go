package mls

import (
	"bytes"
	"errors"
	"testing"
)

// threeMembers returns a simulated group of three members.
func threeMembers(t *testing.T, cs CipherSuite, exts []Extension) *sim {
	t.Helper()
	sm := newSim(t, cs, 3, exts)
	b, c := newClient(t, sm.s, sm.rand, "member 1"), newClient(t, sm.s, sm.rand, "member 2")
	sm.commit(sm.members[0], CommitOptions{Adds: []*KeyPackage{b.kp, c.kp}}, b, c)
	return sm
}

// state returns g's stored state, to check that a refused message changed
// nothing.
func state(t testing.TB, g *Group) []byte {
	t.Helper()
	b, err := g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refuse processes msg at c, expects an error wrapping each of want, and
// checks c's state did not change.
func refuse(t *testing.T, c *client, msg *MLSMessage, want ...error) {
	t.Helper()
	before := state(t, c.g)
	m, err := UnmarshalMLSMessage(msg.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.g.Process(m)
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("%s: got %v, want %v", c.name, err, w)
		}
	}
	if !bytes.Equal(before, state(t, c.g)) {
		t.Fatalf("%s: a refused message changed the group state", c.name)
	}
}

// resign re-signs a PublicMessage as its sender (whose key signer is)
// and recomputes the membership tag: a malicious member's forgery.
func resign(t *testing.T, sender *Group, signer SignaturePrivateKey, msg *MLSMessage) {
	t.Helper()
	ac := msg.PublicMessage.authenticatedContent()
	sig, err := sender.suite.SignWithLabel(signer, "FramedContentTBS", ac.tbs(&sender.ctx))
	if err != nil {
		t.Fatal(err)
	}
	msg.PublicMessage.Auth.Signature = sig
	remac(t, sender, msg)
}

// remac recomputes a PublicMessage's membership tag with the sender's
// membership key, as a malicious member could.
func remac(t *testing.T, sender *Group, msg *MLSMessage) {
	t.Helper()
	pm := msg.PublicMessage
	ac := pm.authenticatedContent()
	pm.MembershipTag = sender.suite.MembershipTag(sender.secrets.membership.bytes(), ac.tbm(&sender.ctx))
}

func TestGroupRefusesLeafTheHookRefuses(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	a, b := sm.members[0], sm.members[1]
	mallory := newClient(t, sm.s, sm.rand, "mallory")
	refuseMallory := func(ln *LeafNode, _ LeafIndex) error {
		if string(ln.Credential.Identity) == "mallory" {
			return errors.New("not cleared")
		}
		return nil
	}
	b.g.opts.ValidateLeaf = refuseMallory
	res, err := a.g.Commit(sm.rand, CommitOptions{Adds: []*KeyPackage{mallory.kp}})
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, b, res.Commit, ErrLeafRefused)

	// The committer's own hook refuses too, before anything is sent.
	if err := a.g.DiscardPending(); err != nil {
		t.Fatal(err)
	}
	a.g.opts.ValidateLeaf = refuseMallory
	if _, err := a.g.Commit(sm.rand, CommitOptions{Adds: []*KeyPackage{mallory.kp}}); !errors.Is(err, ErrLeafRefused) {
		t.Fatalf("own commit adding a refused leaf: %v", err)
	}
	if a.g.HasPendingCommit() {
		t.Fatal("a refused commit is pending")
	}

	// A joiner refuses a group holding a refused member.
	sm2 := newSim(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 4, nil)
	res, err = sm2.members[0].g.Commit(sm2.rand, CommitOptions{Adds: []*KeyPackage{mallory.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm2.members[0].g.MergePending(); err != nil {
		t.Fatal(err)
	}
	carol := newClient(t, sm2.s, sm2.rand, "carol")
	res, err = sm2.members[0].g.Commit(sm2.rand, CommitOptions{Adds: []*KeyPackage{carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm2.members[0].g.MergePending(); err != nil {
		t.Fatal(err)
	}
	_, err = JoinFromWelcome(res.Welcome.Welcome, carol.kp, carol.secrets, carol.signer, sm2.members[0].g.RatchetTree(), GroupOptions{ValidateLeaf: refuseMallory})
	if !errors.Is(err, ErrLeafRefused) {
		t.Fatalf("joining a group with a refused member: %v", err)
	}
}

func TestGroupRefusesExternalAdd(t *testing.T) {
	server, ext := newExternalSender(t, mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519), testRand(5))
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, []Extension{ext})
	a := sm.members[0]
	mallory := newClient(t, sm.s, sm.rand, "mallory")
	refuse(t, a, server.propose(t, a.g, &AddProposal{KeyPackage: *mallory.kp}), ErrExternalAdd)

	// A new member proposing its own Add.
	content := &FramedContent{GroupID: a.g.GroupID(), Epoch: a.g.Epoch(), Sender: Sender{Type: SenderNewMemberProposal},
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: &AddProposal{KeyPackage: *mallory.kp}}
	ac, err := sm.s.SignContent(WireFormatPublicMessage, content, nil, mallory.signer)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := sm.s.ProtectPublic(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, a, &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}, ErrExternalAdd)

	// Other external proposals than Remove are refused; a Remove by an
	// unknown external sender does not authenticate.
	refuse(t, a, server.propose(t, a.g, &GroupContextExtensionsProposal{Extensions: []Extension{}}), ErrInvalidProposal)
	stranger, _ := newExternalSender(t, sm.s, testRand(6))
	refuse(t, a, stranger.propose(t, a.g, &RemoveProposal{Removed: 1}), ErrBadSignature)
	stranger.index = 1
	refuse(t, a, stranger.propose(t, a.g, &RemoveProposal{Removed: 1}), ErrUnknownSender)
}

func TestGroupRefusesOldEpochAndSecondCommit(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	a, b, c := sm.members[0], sm.members[1], sm.members[2]
	// a and b commit in the same epoch; the delivery service takes a's.
	ra, err := a.g.Commit(sm.rand, CommitOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.g.Commit(sm.rand, CommitOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.g.Encrypt(sm.rand, []byte("x"), nil); !errors.Is(err, ErrCommitPending) {
		t.Fatalf("Encrypt with a pending commit: %v", err)
	}
	if _, err := b.g.Commit(sm.rand, CommitOptions{}); !errors.Is(err, ErrCommitPending) {
		t.Fatalf("second Commit with one pending: %v", err)
	}
	if err := a.g.MergePending(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.g.Process(ra.Commit); err != nil {
		t.Fatal(err)
	}
	// b learns the epoch moved: processing a's commit drops its own.
	if _, err := b.g.Process(ra.Commit); err != nil {
		t.Fatal(err)
	}
	if b.g.HasPendingCommit() {
		t.Fatal("b's losing commit still pending")
	}
	if err := b.g.MergePending(); !errors.Is(err, ErrNoPendingCommit) {
		t.Fatalf("MergePending after losing: %v", err)
	}
	// b's commit, for the epoch that is gone, is refused everywhere.
	refuse(t, c, rb.Commit, ErrWrongEpoch)
	refuse(t, a, rb.Commit, ErrWrongEpoch)
	refuse(t, c, ra.Commit, ErrWrongEpoch) // a replay of the winning one
	sm.check()
	sm.chat()
}

func TestGroupRefusesTamperedCommit(t *testing.T) {
	sm := threeMembers(t, HotlinePQXWingAES256GCMSHA384Ed25519, nil)
	a, b := sm.members[0], sm.members[1]
	res, err := a.g.Commit(sm.rand, CommitOptions{Update: true})
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

	// A wrong confirmation tag (and a membership tag made to match, as
	// only a member could).
	m := fresh()
	m.PublicMessage.Auth.ConfirmationTag[0] ^= 1
	remac(t, a.g, m)
	refuse(t, b, m, ErrInvalidCommit, ErrBadMAC)

	// A wrong membership tag.
	m = fresh()
	m.PublicMessage.MembershipTag[0] ^= 1
	refuse(t, b, m, ErrBadMAC)

	// A flipped signature.
	m = fresh()
	m.PublicMessage.Auth.Signature[0] ^= 1
	remac(t, a.g, m)
	refuse(t, b, m, ErrBadSignature)

	// An unknown proposal reference.
	m = fresh()
	m.PublicMessage.Content.Commit.Proposals = append(m.PublicMessage.Content.Commit.Proposals,
		ProposalOrRef{Type: ProposalOrRefReference, Reference: bytes.Repeat([]byte{9}, sm.s.Nh())})
	resign(t, a.g, a.signer, m)
	refuse(t, b, m, ErrInvalidCommit)

	// A commit removing a member without a path.
	m = fresh()
	m.PublicMessage.Content.Commit.Proposals = []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &RemoveProposal{Removed: 2}}}
	m.PublicMessage.Content.Commit.Path = nil
	resign(t, a.g, a.signer, m)
	refuse(t, b, m, ErrInvalidCommit)

	// The committer removing itself.
	m = fresh()
	m.PublicMessage.Content.Commit.Proposals = []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &RemoveProposal{Removed: 0}}}
	resign(t, a.g, a.signer, m)
	refuse(t, b, m, ErrInvalidCommit)

	// The genuine commit still goes through.
	if _, err := b.g.Process(fresh()); err != nil {
		t.Fatal(err)
	}
}

func TestGroupRefusesNonMemberCommit(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	a, b := sm.members[0], sm.members[1]

	// An outsider with a group of the same ID at the same epoch: it has
	// no membership key of the real group.
	out := newClient(t, sm.s, sm.rand, "outsider")
	og, err := NewGroup(sm.rand, sm.s, a.g.GroupID(), out.kp, out.secrets, out.signer, nil, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for og.Epoch() < a.g.Epoch() {
		if _, err := og.Commit(sm.rand, CommitOptions{Update: true}); err != nil {
			t.Fatal(err)
		}
		if err := og.MergePending(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := og.Commit(sm.rand, CommitOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, b, res.Commit, ErrBadMAC)

	// A member forging a commit from a blank leaf.
	r, err := a.g.Commit(sm.rand, CommitOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Commit.PublicMessage.Content.Sender.Leaf = 3
	remac(t, a.g, r.Commit)
	refuse(t, b, r.Commit, ErrUnknownSender)

	// An external commit without ExternalInit, and one whose GroupInfo's
	// external key is not the group's.
	gi, err := a.g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	_, ec, err := ExternalJoin(sm.rand, gi, nil, out.kp, out.signer, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := UnmarshalMLSMessage(ec.Marshal())
	bad.PublicMessage.Content.Commit.Proposals = nil
	refuse(t, b, bad, ErrBadSignature) // the signature covers the proposals
	other, err := og.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	gi2 := *gi
	gi2.Extensions = []Extension{gi.Extensions[0], other.Extensions[1]}
	if err := sm.s.SignGroupInfo(&gi2, a.signer); err != nil {
		t.Fatal(err)
	}
	_, ec2, err := ExternalJoin(sm.rand, &gi2, nil, out.kp, out.signer, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, b, ec2, ErrInvalidCommit)
	// The genuine external commit is accepted.
	if _, err := b.g.Process(ec); err != nil {
		t.Fatalf("genuine external commit: %v", err)
	}
}

// TestGroupInactive: a removed member and a re-initialised group refuse
// further use; the ReInit parameters are exposed.
func TestGroupInactive(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	a, b := sm.members[0], sm.members[1]
	ri := &ReInitProposal{GroupID: []byte("next group"), Version: MLS10, CipherSuite: HotlinePQXWingAES256GCMSHA384Ed25519, Extensions: []Extension{}}
	sm.commit(a, CommitOptions{ReInit: ri})
	for _, c := range sm.members {
		if got := c.g.ReInit(); got == nil || !bytes.Equal(got.GroupID, ri.GroupID) || got.CipherSuite != ri.CipherSuite {
			t.Fatalf("%s: ReInit %+v", c.name, got)
		}
		if _, err := c.g.Encrypt(sm.rand, []byte("x"), nil); !errors.Is(err, ErrInactive) {
			t.Fatalf("%s: Encrypt after ReInit: %v", c.name, err)
		}
		if _, ok := c.g.ResumptionPSK(c.g.Epoch()); !ok {
			t.Fatalf("%s: no resumption PSK for the re-initialised group", c.name)
		}
	}
	if _, err := b.g.Commit(sm.rand, CommitOptions{Update: true}); !errors.Is(err, ErrInactive) {
		t.Fatalf("Commit after ReInit: %v", err)
	}
	// A ReInit with other proposals is refused.
	sm2 := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	if _, err := sm2.members[0].g.Commit(sm2.rand, CommitOptions{ReInit: ri, Update: true, Removes: []LeafIndex{1}}); !errors.Is(err, ErrInvalidCommit) {
		t.Fatalf("ReInit with a Remove: %v", err)
	}
}
