package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestConformanceTranscriptHashes checks transcript-hashes.json fully: the
// confirmed and interim transcript hashes after the commit in
// authenticated_content, and its confirmation tag under confirmation_key.
// The X-Wing suites share suite 7's and suite 5's hashes, and so their
// transcript hashes.
func TestConformanceTranscriptHashes(t *testing.T) {
	var vs []transcriptHashVector
	loadVectors(t, "transcript-hashes", &vs)
	c := newVectorCounts("transcript-hashes.json")
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(v.CipherSuite), func(t *testing.T) {
			ac := checkTranscriptVector(t, s, v)
			tag := ac.Auth.ConfirmationTag
			if got := s.ConfirmationTag(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter); !bytes.Equal(got, tag) {
				t.Errorf("confirmation tag = %x, want %x", got, tag)
			}
			if err := s.VerifyConfirmationTag(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, tag); err != nil {
				t.Errorf("confirmation tag: %v", err)
			}
		})
		for _, pq := range pqSharingKDF(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x-with-suite-%d", uint16(pq), v.CipherSuite), func(t *testing.T) {
				checkTranscriptVector(t, mustSuite(t, pq), v)
			})
			c.crossChecked(pq, v.CipherSuite, "transcript hashes")
		}
	}
	c.log(t)
}

func checkTranscriptVector(t *testing.T, s *Suite, v *transcriptHashVector) *AuthenticatedContent {
	t.Helper()
	ac := new(AuthenticatedContent)
	if err := unmarshalWire(v.AuthenticatedContent, ac); err != nil {
		t.Fatalf("authenticated_content: %v", err)
	}
	confirmed, err := s.ConfirmedTranscriptHash(v.InterimTranscriptHashBefore, ac)
	if err != nil || !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
		t.Errorf("confirmed transcript hash = %x, %v, want %x", confirmed, err, []byte(v.ConfirmedTranscriptHashAfter))
	}
	if got := s.InterimTranscriptHash(v.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag); !bytes.Equal(got, v.InterimTranscriptHashAfter) {
		t.Errorf("interim transcript hash = %x, want %x", got, []byte(v.InterimTranscriptHashAfter))
	}
	return ac
}

// TestTranscriptHashCovers: the confirmed transcript hash covers the wire
// format, the content and the signature, and not the confirmation tag;
// only commits have one.
func TestTranscriptHashCovers(t *testing.T) {
	s := mustSuite(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPublicMessage,
		Content: FramedContent{
			GroupID: []byte("g"), Epoch: 3, Sender: Sender{Type: SenderMember, Leaf: 1},
			ContentType: ContentCommit, Commit: &Commit{Proposals: []ProposalOrRef{}},
		},
		Auth: FramedContentAuthData{Signature: []byte("sig"), ConfirmationTag: []byte("tag")},
	}
	interim := []byte("interim before")
	base, err := s.ConfirmedTranscriptHash(interim, ac)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		change  func(a *AuthenticatedContent)
		interim []byte
		same    bool
	}{
		{"confirmation tag", func(a *AuthenticatedContent) { a.Auth.ConfirmationTag = []byte("other") }, interim, true},
		{"interim hash", func(a *AuthenticatedContent) {}, []byte("other"), false},
		{"wire format", func(a *AuthenticatedContent) { a.WireFormat = WireFormatPrivateMessage }, interim, false},
		{"signature", func(a *AuthenticatedContent) { a.Auth.Signature = []byte("other") }, interim, false},
		{"epoch", func(a *AuthenticatedContent) { a.Content.Epoch++ }, interim, false},
		{"authenticated data", func(a *AuthenticatedContent) { a.Content.AuthenticatedData = []byte("x") }, interim, false},
	} {
		c := *ac
		tc.change(&c)
		got, err := s.ConfirmedTranscriptHash(tc.interim, &c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if bytes.Equal(got, base) != tc.same {
			t.Errorf("changing the %s: same hash = %v, want %v", tc.name, !tc.same, tc.same)
		}
	}
	prop := *ac
	prop.Content.ContentType, prop.Content.Commit, prop.Content.Proposal = ContentProposal, nil, &RemoveProposal{Removed: 1}
	if _, err := s.ConfirmedTranscriptHash(interim, &prop); !errors.Is(err, ErrUnexpectedContent) {
		t.Errorf("transcript hash of a proposal: %v", err)
	}
	if bytes.Equal(s.InterimTranscriptHash(base, []byte("a")), s.InterimTranscriptHash(base, []byte("b"))) {
		t.Error("the interim transcript hash does not cover the confirmation tag")
	}
}
