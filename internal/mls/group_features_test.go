package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestGroupPSKs: commits injecting an external PSK and a resumption PSK
// of an earlier epoch, inline and by proposal; a member lacking the
// external PSK cannot follow.
func TestGroupPSKs(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	psk := []byte("shared out of band")
	sm.setOpts(func(o *GroupOptions) {
		o.PSKs = func(id *PreSharedKeyID) ([]byte, error) {
			if string(id.ID) == "ext" {
				return psk, nil
			}
			return nil, ErrUnknownPSK
		}
	})
	sm.commit(sm.members[0], CommitOptions{PSKs: []PreSharedKeyID{{Type: PSKExternal, ID: []byte("ext")}}})
	sm.chat()
	resumption := PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, PSKGroupID: sm.members[0].g.GroupID(), PSKEpoch: sm.members[0].g.Epoch() - 1}
	p, err := sm.members[1].g.ProposePSK(sm.rand, resumption)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(p, sm.members[1])
	sm.commit(sm.members[2], CommitOptions{IncludePending: true})
	sm.chat()

	// A member without the external PSK refuses the commit, unchanged.
	sm.members[1].g.opts.PSKs = nil
	res, err := sm.members[0].g.Commit(sm.rand, CommitOptions{PSKs: []PreSharedKeyID{{Type: PSKExternal, ID: []byte("ext")}}})
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, sm.members[1], res.Commit, ErrUnknownPSK)
	// A resumption PSK of an epoch the group no longer keeps.
	if err := sm.members[0].g.DiscardPending(); err != nil {
		t.Fatal(err)
	}
	old := resumption
	old.PSKEpoch = 0
	old.Nonce = nil
	sm.members[1].g.opts.PSKs = sm.members[0].g.opts.PSKs
	sm.members[0].g.opts.ResumptionPSKEpochs = 1
	sm.commit(sm.members[0], CommitOptions{Update: true}) // forgets all but the last epoch
	if _, err := sm.members[0].g.Commit(sm.rand, CommitOptions{PSKs: []PreSharedKeyID{old}}); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("resumption PSK of a forgotten epoch: %v", err)
	}
}

// TestGroupContextExtensions: changing the GroupContext's extensions by
// proposal and inline; an extension a member does not support is refused.
func TestGroupContextExtensions(t *testing.T) {
	sm := threeMembers(t, HotlinePQXWingAES256GCMSHA384Ed25519, nil)
	_, ext := newExternalSender(t, sm.s, testRand(8))
	p, err := sm.members[1].g.ProposeGroupContextExtensions([]Extension{ext})
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(p, sm.members[1])
	sm.commit(sm.members[0], CommitOptions{IncludePending: true})
	for _, c := range sm.members {
		if gc := c.g.GroupContext(); len(gc.Extensions) != 1 || gc.Extensions[0].Type != ExtExternalSenders {
			t.Fatalf("%s: extensions %v", c.name, gc.Extensions)
		}
	}
	sm.chat()
	unsupported := Extension{Type: 0xF0F0, Data: []byte{}}
	if _, err := sm.members[2].g.Commit(sm.rand, CommitOptions{GroupContextExtensions: []Extension{unsupported}}); !errors.Is(err, ErrInvalidCommit) {
		t.Fatalf("an extension no member supports: %v", err)
	}
	sm.commit(sm.members[2], CommitOptions{GroupContextExtensions: []Extension{}})
	if len(sm.members[0].g.GroupContext().Extensions) != 0 {
		t.Fatal("extensions not removed")
	}
	sm.chat()
}

// TestGroupPrivateHandshake: a proposal sent as a PrivateMessage (which
// Hotline's clients do not send, but other clients may) is processed and
// committed by reference; an echoed own proposal is accepted once.
func TestGroupPrivateHandshake(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	a := sm.members[0].g
	content := &FramedContent{GroupID: a.GroupID(), Epoch: a.Epoch(), Sender: Sender{Type: SenderMember, Leaf: a.MyLeaf()},
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: &RemoveProposal{Removed: 2}}
	ac, err := a.suite.SignContent(WireFormatPrivateMessage, content, &a.ctx, a.signer)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := a.suite.ProtectPrivate(ac, a.secretTree, a.secrets.senderData.bytes(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.proposals = append(a.proposals, cachedProposal{ref: a.suite.MakeProposalRef(ac.Marshal()), sender: content.Sender, proposal: content.Proposal})
	sm.deliver(&MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}, sm.members[0])

	u, err := sm.members[1].g.ProposeUpdate(sm.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(u, nil) // echoed to its sender too
	if n := len(sm.members[1].g.PendingProposals()); n != 2 {
		t.Fatalf("%d pending proposals after the echo, want 2", n)
	}
	res := sm.commit(sm.members[0], CommitOptions{IncludePending: true})
	if n := len(res.Commit.PublicMessage.Content.Commit.Proposals); n != 2 {
		t.Fatalf("commit covers %d proposals, want 2", n)
	}
	if len(sm.members) != 2 {
		t.Fatalf("%d members after the Remove", len(sm.members))
	}
	sm.chat()
}

// TestGroupExporterAndPadding: members export the same secrets; padded
// messages still decrypt; the group prints redacted.
func TestGroupExporterAndPadding(t *testing.T) {
	sm := threeMembers(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, nil)
	var first []byte
	for _, c := range sm.members {
		e, err := c.g.Export("sframe", []byte("call 1"), 32)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = e
		} else if !bytes.Equal(e, first) {
			t.Fatal("exported secrets differ")
		}
	}
	sm.setOpts(func(o *GroupOptions) { o.PaddingBlock = 256 })
	m, err := sm.members[0].g.Encrypt(sm.rand, []byte("short"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PrivateMessage.Ciphertext) < 256 {
		t.Fatalf("ciphertext of %d bytes: not padded", len(m.PrivateMessage.Ciphertext))
	}
	sm.deliver(m, sm.members[0])
	exp := sm.members[0].g.secrets.ExporterSecret()
	checkRedacted(t, map[string][]byte{"exporter secret": exp, "exported": first}, sm.members[0].g)
}
