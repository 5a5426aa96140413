package mls

import (
	"bytes"
	"errors"
	"testing"
)

// The message protection fuzzers change valid messages (see mangle) and
// check that opening never panics, fails only with one of the package's
// sentinel errors, and never succeeds with content other than what was
// sent.

// isSentinel reports whether err wraps one of the stable errors a peer's
// message can cause.
func isSentinel(err error) bool {
	for _, e := range []error{
		ErrDecode, ErrDecrypt, ErrBadSignature, ErrBadMAC, ErrMalformedKey,
		ErrWrongGroup, ErrWrongEpoch, ErrUnexpectedContent, ErrUnknownSender,
		ErrKeyConsumed, ErrGenerationTooOld, ErrGenerationTooFarAhead,
		ErrNotInWelcome, ErrUnknownPSK, ErrWrongSuite,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// fuzzPrivate is one suite's group and a PrivateMessage from it, with the
// content it carries.
type fuzzPrivate struct {
	g         *testGroup
	wire      []byte // the MLSMessage
	plaintext []byte // its PrivateMessageContent
	content   []byte // the AuthenticatedContent it opens to
	// confirmationTag is the commit's.
	confirmationTag []byte
}

func newFuzzPrivate(f *testing.F) []fuzzPrivate {
	f.Helper()
	var out []fuzzPrivate
	for _, cs := range ImplementedSuites() {
		g := newTestGroup(f, cs, 2)
		ac := g.sign(f, WireFormatPrivateMessage, g.content(1, ContentCommit))
		m, err := g.s.ProtectPrivate(ac, g.tree(f), g.senderData, 0, nil)
		if err != nil {
			f.Fatal(err)
		}
		var w Writer
		(&PrivateMessageContent{Commit: ac.Content.Commit, Auth: ac.Auth}).encodeFor(&w, ContentCommit)
		out = append(out, fuzzPrivate{
			g:         g,
			wire:      (&MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: m}).Marshal(),
			plaintext: w.Bytes(),
			content:   ac.Marshal(),

			confirmationTag: ac.Auth.ConfirmationTag,
		})
	}
	return out
}

// FuzzOpenPrivate: a changed PrivateMessage never opens to other content.
// With plain set the change goes to the plaintext, which is then
// encrypted properly, as a member holding the keys could: what decrypts
// must still be well formed and carry the sender's signature.
func FuzzOpenPrivate(f *testing.F) {
	cases := newFuzzPrivate(f)
	for i := range cases {
		w := uint8(i)
		f.Add(w, false, []byte{}, uint16(0))
		f.Add(w, false, []byte{0, 0, 0, 0, 0, 1}, uint16(0)) // wire format
		f.Add(w, false, []byte{}, uint16(1))
		f.Add(w, false, append(make([]byte, 40), 1), uint16(0))
		f.Add(w, true, []byte{}, uint16(0))
		f.Add(w, true, []byte{1}, uint16(0))
		f.Add(w, true, append(make([]byte, len(cases[i].plaintext)), 0), uint16(0)) // zero padding
		f.Add(w, true, append(make([]byte, len(cases[i].plaintext)), 1), uint16(0)) // non-zero padding
		f.Add(w, true, []byte{}, uint16(3))
	}
	f.Fuzz(func(t *testing.T, which uint8, plain bool, delta []byte, cut uint16) {
		fc := cases[int(which)%len(cases)]
		g := fc.g
		var m *PrivateMessage
		if plain {
			m = sealByHand(t, g, g.tree(t), 1, ContentCommit, mangle(fc.plaintext, delta, cut))
		} else {
			msg, err := UnmarshalMLSMessage(mangle(fc.wire, delta, cut))
			if err != nil {
				if !errors.Is(err, ErrDecode) {
					t.Fatalf("decode error %v does not wrap ErrDecode", err)
				}
				return
			}
			if msg.PrivateMessage == nil {
				return
			}
			m = msg.PrivateMessage
		}
		ac, err := g.openPrivate(g.tree(t), m)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("%v: error %v wraps no sentinel", g.s, err)
			}
			if !plain && len(delta) == 0 && cut == 0 {
				t.Fatalf("%v: the original message does not open: %v", g.s, err)
			}
			return
		}
		// In a PrivateMessage only the AEAD protects the confirmation tag:
		// the signature does not cover it. A member can change it; the
		// group layer checks it with the confirmation key.
		ac.Auth.ConfirmationTag = fc.confirmationTag
		if got := ac.Marshal(); !bytes.Equal(got, fc.content) {
			t.Fatalf("%v: a changed message opens to other content:\n got  %x\n want %x", g.s, got, fc.content)
		}
	})
}

// fuzzPublic is one suite's group and a member's PublicMessage from it.
type fuzzPublic struct {
	g       *testGroup
	wire    []byte
	content []byte
}

// FuzzOpenPublic: a changed PublicMessage never authenticates as other
// content. The sender is a member, so the membership tag covers the
// signature too, and ECDSA's malleability cannot pass either.
func FuzzOpenPublic(f *testing.F) {
	var cases []fuzzPublic
	for _, cs := range ImplementedSuites() {
		g := newTestGroup(f, cs, 2)
		c := g.content(1, ContentCommit)
		ac := g.sign(f, WireFormatPublicMessage, c)
		m, err := g.s.ProtectPublic(ac, g.ctx, g.epoch.MembershipKey())
		if err != nil {
			f.Fatal(err)
		}
		cases = append(cases, fuzzPublic{g, (&MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: m}).Marshal(), ac.Marshal()})
	}
	for i := range cases {
		w := uint8(i)
		f.Add(w, []byte{}, uint16(0))
		f.Add(w, []byte{0, 0, 0, 0, 0, 1}, uint16(0))
		f.Add(w, []byte{}, uint16(1))
		f.Add(w, append(make([]byte, 30), 4), uint16(0))
		f.Add(w, append(make([]byte, len(cases[i].wire)-3), 1), uint16(0))
	}
	f.Fuzz(func(t *testing.T, which uint8, delta []byte, cut uint16) {
		fc := cases[int(which)%len(cases)]
		g := fc.g
		msg, err := UnmarshalMLSMessage(mangle(fc.wire, delta, cut))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("decode error %v does not wrap ErrDecode", err)
			}
			return
		}
		if msg.PublicMessage == nil {
			return
		}
		ac, err := g.openPublic(msg.PublicMessage)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("%v: error %v wraps no sentinel", g.s, err)
			}
			if len(delta) == 0 && cut == 0 {
				t.Fatalf("%v: the original message does not open: %v", g.s, err)
			}
			return
		}
		if got := ac.Marshal(); !bytes.Equal(got, fc.content) {
			t.Fatalf("%v: a changed message authenticates as other content:\n got  %x\n want %x", g.s, got, fc.content)
		}
	})
}

// FuzzProcessWelcome: a changed Welcome either fails, with a sentinel, or
// joins the very epoch it was made for (a change to another member's
// entry does not concern this one).
func FuzzProcessWelcome(f *testing.F) {
	psks := []PSK{{ID: PreSharedKeyID{Type: PSKExternal, ID: []byte("k"), Nonce: []byte("n")}, Secret: []byte("v")}}
	var cases []*welcomeFixture
	for _, cs := range ImplementedSuites() {
		cases = append(cases, newWelcomeFixture(f, cs, 2, psks))
	}
	for i, fc := range cases {
		w := uint8(i)
		wire := fc.welcome.Marshal()
		f.Add(w, []byte{}, uint16(0))
		f.Add(w, []byte{0, 1}, uint16(0)) // suite
		f.Add(w, []byte{}, uint16(1))
		f.Add(w, append(make([]byte, 8), 1), uint16(0))               // first reference
		f.Add(w, append(make([]byte, len(wire)/2), 1), uint16(0))     // the other member's entry
		f.Add(w, append(make([]byte, len(wire)-20), 1), uint16(0))    // encrypted GroupInfo
		f.Add(w, append(make([]byte, len(wire)), 1, 2, 3), uint16(0)) // trailing bytes
	}
	f.Fuzz(func(t *testing.T, which uint8, delta []byte, cut uint16) {
		fc := cases[int(which)%len(cases)]
		w, err := UnmarshalWelcome(mangle(fc.welcome.Marshal(), delta, cut))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("decode error %v does not wrap ErrDecode", err)
			}
			return
		}
		j, err := fc.s.ProcessWelcome(w, fc.members[0].KeyPackage, fc.initKeys[0], fc.pskLookup, signerKeyIs(fc.signer.Public()))
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("%v: error %v wraps no sentinel", fc.s, err)
			}
			if len(delta) == 0 && cut == 0 {
				t.Fatalf("%v: the original Welcome does not apply: %v", fc.s, err)
			}
			return
		}
		if !bytes.Equal(j.GroupInfo.Marshal(), fc.gi.Marshal()) ||
			!bytes.Equal(j.Epoch.EpochAuthenticator(), fc.epoch.EpochAuthenticator()) ||
			!bytes.Equal(j.PathSecret(), fc.members[0].PathSecret) {
			t.Fatalf("%v: a changed Welcome joins another epoch", fc.s)
		}
	})
}
