package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"testing/cryptotest"
)

type messageProtectionVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                hexBytes    `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes    `json:"signature_priv"`
	SignaturePub            hexBytes    `json:"signature_pub"`
	EncryptionSecret        hexBytes    `json:"encryption_secret"`
	SenderDataSecret        hexBytes    `json:"sender_data_secret"`
	MembershipKey           hexBytes    `json:"membership_key"`
	Proposal                hexBytes    `json:"proposal"`
	ProposalPub             hexBytes    `json:"proposal_pub"`
	ProposalPriv            hexBytes    `json:"proposal_priv"`
	Commit                  hexBytes    `json:"commit"`
	CommitPub               hexBytes    `json:"commit_pub"`
	CommitPriv              hexBytes    `json:"commit_priv"`
	Application             hexBytes    `json:"application"`
	ApplicationPriv         hexBytes    `json:"application_priv"`
}

func (v *messageProtectionVector) groupContext() *GroupContext {
	return &GroupContext{
		Version:                 MLS10,
		CipherSuite:             v.CipherSuite,
		GroupID:                 v.GroupID,
		Epoch:                   v.Epoch,
		TreeHash:                v.TreeHash,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
		Extensions:              []Extension{},
	}
}

// mpSender is the vectors' sender: the member at leaf 1 of a two-leaf
// secret tree (mlswg test-vectors.md, "Message Protection").
var mpSender = Sender{Type: SenderMember, Leaf: 1}

// mpCase is one of a vector's three messages.
type mpCase struct {
	name      string
	typ       ContentType
	body      []byte // the raw Proposal, Commit or application data
	pub, priv []byte // MLSMessages; pub is nil for application data
}

func (v *messageProtectionVector) cases() []mpCase {
	return []mpCase{
		{"proposal", ContentProposal, v.Proposal, v.ProposalPub, v.ProposalPriv},
		{"commit", ContentCommit, v.Commit, v.CommitPub, v.CommitPriv},
		{"application", ContentApplication, v.Application, nil, v.ApplicationPriv},
	}
}

// contentBody encodes the body of c (the select on content_type), as the
// vectors give it: application data raw, without a length.
func contentBody(c *FramedContent) []byte {
	if c.ContentType == ContentApplication {
		return c.ApplicationData
	}
	var w Writer
	encodeContent(&w, c.ContentType, c.ApplicationData, c.Proposal, c.Commit)
	return w.Bytes()
}

// framedContentOf returns a FramedContent of type t from the raw body.
func framedContentOf(t *testing.T, groupID []byte, epoch uint64, sender Sender, typ ContentType, body []byte) *FramedContent {
	t.Helper()
	c := &FramedContent{GroupID: groupID, Epoch: epoch, Sender: sender, AuthenticatedData: []byte{}, ContentType: typ}
	r := NewReader(bytes.Clone(body))
	switch typ {
	case ContentApplication:
		c.ApplicationData = bytes.Clone(body)
		return c
	case ContentProposal:
		c.Proposal = decodeProposal(r)
	case ContentCommit:
		c.Commit = new(Commit)
		c.Commit.decode(r)
	}
	if err := r.Done(); err != nil {
		t.Fatalf("decode %d body: %v", typ, err)
	}
	return c
}

// staticKey is a SignatureKeyFunc giving pub for the member at leaf.
func staticKey(leaf LeafIndex, pub []byte) SignatureKeyFunc {
	return func(c *FramedContent) ([]byte, error) {
		if c.Sender.Type != SenderMember || c.Sender.Leaf != leaf {
			return nil, fmt.Errorf("%w: sender %+v", ErrUnknownSender, c.Sender)
		}
		return pub, nil
	}
}

func decodeMLSMessage(t *testing.T, b []byte, wf WireFormat) *MLSMessage {
	t.Helper()
	m, err := UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.WireFormat != wf {
		t.Fatalf("wire format %d, want %d", m.WireFormat, wf)
	}
	return m
}

// TestConformanceMessageProtection checks message-protection.json fully,
// as mlswg's test-vectors.md describes: for the proposal, the commit and
// the application data, the given PublicMessage (none for application
// data) opens with membership_key and signature_pub, and the given
// PrivateMessage with a two-leaf secret tree, each to the raw content;
// protecting the raw content again, as a PublicMessage (refused for
// application data) and as a PrivateMessage, gives messages that open to
// it too. The X-Wing suites share the KDF and AEAD of suites 7 and 5, so
// they must decrypt those suites' PrivateMessages to the same content
// (their Ed25519 cannot check the ECDSA signatures).
func TestConformanceMessageProtection(t *testing.T) {
	var vs []messageProtectionVector
	loadVectors(t, "message-protection", &vs)
	c := newVectorCounts("message-protection.json")
	messages := 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(v.CipherSuite), func(t *testing.T) {
			messages += checkMessageProtection(t, s, v)
		})
		for _, pq := range pqSharingKDF(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x-with-suite-%d", uint16(pq), v.CipherSuite), func(t *testing.T) {
				crossCheckPrivate(t, mustSuite(t, pq), v)
			})
			c.crossChecked(pq, v.CipherSuite, "PrivateMessage decryption")
		}
	}
	c.detail = fmt.Sprintf("%d given messages opened, each content protected again both ways", messages)
	c.log(t)
}

func checkMessageProtection(t *testing.T, s *Suite, v *messageProtectionVector) int {
	t.Helper()
	ctx := v.groupContext()
	signer, err := s.ParseSignaturePrivateKey(vectorScalar(s, v.SignaturePriv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.Public(), v.SignaturePub) {
		t.Fatalf("signature_priv's public key %x, want %x", signer.Public(), []byte(v.SignaturePub))
	}
	keyOf := staticKey(mpSender.Leaf, v.SignaturePub)
	newTree := func() *SecretTree {
		tree, err := s.NewSecretTree(v.EncryptionSecret, 2)
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	opened := 0
	var commitTag []byte
	for _, mc := range v.cases() {
		check := func(what string, ac *AuthenticatedContent, err error, wf WireFormat) {
			t.Helper()
			if err != nil {
				t.Errorf("%s %s: %v", mc.name, what, err)
				return
			}
			if ac.WireFormat != wf || ac.Content.Sender != mpSender || ac.Content.ContentType != mc.typ ||
				!bytes.Equal(ac.Content.GroupID, v.GroupID) || ac.Content.Epoch != v.Epoch {
				t.Errorf("%s %s: framing %d %+v %d %x %d", mc.name, what, ac.WireFormat, ac.Content.Sender, ac.Content.ContentType, ac.Content.GroupID, ac.Content.Epoch)
			}
			if got := contentBody(&ac.Content); !bytes.Equal(got, mc.body) {
				t.Errorf("%s %s: content %x, want %x", mc.name, what, got, []byte(mc.body))
			}
		}

		// The given PublicMessage.
		content := framedContentOf(t, v.GroupID, v.Epoch, mpSender, mc.typ, mc.body)
		if mc.pub != nil {
			m := decodeMLSMessage(t, mc.pub, WireFormatPublicMessage)
			ac, err := s.OpenPublic(m.PublicMessage, ctx, v.MembershipKey, keyOf)
			check("given PublicMessage", ac, err, WireFormatPublicMessage)
			opened++
			if mc.typ == ContentCommit {
				commitTag = m.PublicMessage.Auth.ConfirmationTag
			}
			content.AuthenticatedData = m.PublicMessage.Content.AuthenticatedData
		}

		// The given PrivateMessage.
		m := decodeMLSMessage(t, mc.priv, WireFormatPrivateMessage)
		receiver := newTree()
		ac, err := s.OpenPrivate(m.PrivateMessage, ctx, receiver, v.SenderDataSecret, keyOf)
		check("given PrivateMessage", ac, err, WireFormatPrivateMessage)
		opened++
		if _, err := s.OpenPrivate(m.PrivateMessage, ctx, receiver, v.SenderDataSecret, keyOf); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("%s: the given PrivateMessage opened twice: %v", mc.name, err)
		}
		if mc.typ == ContentCommit && ac != nil && !bytes.Equal(ac.Auth.ConfirmationTag, commitTag) {
			t.Errorf("commit: the PrivateMessage's confirmation tag %x is not the PublicMessage's %x", ac.Auth.ConfirmationTag, commitTag)
		}

		// Protect again as a PublicMessage, and open.
		pubAC, err := s.SignContent(WireFormatPublicMessage, content, ctx, signer)
		if mc.typ == ContentApplication {
			if !errors.Is(err, ErrUnexpectedContent) {
				t.Errorf("application data signed for a PublicMessage: %v", err)
			}
			if _, err := s.ProtectPublic(&AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: *content}, ctx, v.MembershipKey); !errors.Is(err, ErrUnexpectedContent) {
				t.Errorf("application data protected as a PublicMessage: %v", err)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			pubAC.Auth.ConfirmationTag = commitTag
			pm, err := s.ProtectPublic(pubAC, ctx, v.MembershipKey)
			if err != nil {
				t.Fatal(err)
			}
			wire := (&MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
			ac, err := s.OpenPublic(decodeMLSMessage(t, wire, WireFormatPublicMessage).PublicMessage, ctx, v.MembershipKey, keyOf)
			check("PublicMessage protected again", ac, err, WireFormatPublicMessage)
		}

		// Protect again as a PrivateMessage, and open.
		privAC, err := s.SignContent(WireFormatPrivateMessage, content, ctx, signer)
		if err != nil {
			t.Fatal(err)
		}
		privAC.Auth.ConfirmationTag = commitTag
		pm, err := s.ProtectPrivate(privAC, newTree(), v.SenderDataSecret, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		wire := (&MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Marshal()
		ac, err = s.OpenPrivate(decodeMLSMessage(t, wire, WireFormatPrivateMessage).PrivateMessage, ctx, newTree(), v.SenderDataSecret, keyOf)
		check("PrivateMessage protected again", ac, err, WireFormatPrivateMessage)
	}
	return opened
}

// vectorScalar returns an ECDSA private key of the vectors in the
// fixed-length encoding test-vectors.md specifies (Field-Element-to-Octet-
// String). The P-521 key of message-protection.json has 65 bytes, its
// leading zero byte dropped (the top byte of a P-521 scalar is 0 half the
// time); the parser is strict, so the test puts it back.
func vectorScalar(s *Suite, priv []byte) []byte {
	curve, _ := s.sig.curve()
	if curve == nil {
		return priv
	}
	return padLeft(priv, (curve.Params().N.BitLen()+7)/8)
}

// vectorHPKEKey does the same for an HPKE private key of a DHKEM suite,
// whose SerializePrivateKey is Nsk bytes: passive-client-welcome.json has
// P-521 init keys of 65 bytes.
func vectorHPKEKey(s *Suite, priv []byte) []byte { return padLeft(priv, s.ikmSize) }

// padLeft left-pads b with zeros to n bytes.
func padLeft(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// crossCheckPrivate decrypts another suite's PrivateMessages with s, which
// shares its KDF and AEAD, and compares the content with the raw values.
func crossCheckPrivate(t *testing.T, s *Suite, v *messageProtectionVector) {
	t.Helper()
	for _, mc := range v.cases() {
		tree, err := s.NewSecretTree(v.EncryptionSecret, 2)
		if err != nil {
			t.Fatal(err)
		}
		m := decodeMLSMessage(t, mc.priv, WireFormatPrivateMessage)
		ac, k, err := s.decryptPrivate(m.PrivateMessage, tree, v.SenderDataSecret)
		if err != nil {
			t.Errorf("%s: %v", mc.name, err)
			continue
		}
		k.Erase()
		if ac.Content.Sender != mpSender || !bytes.Equal(contentBody(&ac.Content), mc.body) {
			t.Errorf("%s: decrypts to %+v %x", mc.name, ac.Content.Sender, contentBody(&ac.Content))
		}
	}
}

// testGroup is the state of one epoch of a small group, for round trips.
type testGroup struct {
	s          *Suite
	ctx        *GroupContext
	epoch      *EpochSecrets
	signers    []SignaturePrivateKey
	senderData []byte
}

func newTestGroup(t testing.TB, cs CipherSuite, members int) *testGroup {
	return newNamedTestGroup(t, cs, members, "hotline test group")
}

// newNamedTestGroup is newTestGroup with another group ID, and so other
// secrets.
func newNamedTestGroup(t testing.TB, cs CipherSuite, members int, groupID string) *testGroup {
	t.Helper()
	s := mustSuite(t, cs)
	ctx := &GroupContext{
		Version: MLS10, CipherSuite: cs, GroupID: []byte(groupID), Epoch: 7,
		TreeHash: bytes.Repeat([]byte{1}, s.Nh()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.Nh()),
		Extensions: []Extension{},
	}
	es, err := s.NewEpochSecrets(bytes.Repeat([]byte{3}, s.Nh()), nil, nil, ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := &testGroup{s: s, ctx: ctx, epoch: es, senderData: es.SenderDataSecret()}
	for i := range members {
		k, err := s.GenerateSignatureKey(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 66)))
		if err != nil {
			t.Fatal(err)
		}
		g.signers = append(g.signers, k)
	}
	return g
}

// tree returns a fresh secret tree of the epoch, as one member holds it.
func (g *testGroup) tree(t testing.TB) *SecretTree {
	t.Helper()
	n := uint32(1)
	for n < uint32(len(g.signers)) {
		n *= 2
	}
	tree, err := g.s.NewSecretTree(g.epoch.EncryptionSecret(), n)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// keys is the group's SignatureKeyFunc.
func (g *testGroup) keys(c *FramedContent) ([]byte, error) {
	if c.Sender.Type != SenderMember || int(c.Sender.Leaf) >= len(g.signers) {
		return nil, ErrUnknownSender
	}
	return g.signers[c.Sender.Leaf].Public(), nil
}

func (g *testGroup) content(leaf LeafIndex, typ ContentType) *FramedContent {
	c := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: Sender{Type: SenderMember, Leaf: leaf},
		AuthenticatedData: []byte("authenticated"), ContentType: typ,
	}
	switch typ {
	case ContentApplication:
		c.ApplicationData = []byte("hello, leaders")
	case ContentProposal:
		c.Proposal = &RemoveProposal{Removed: 2}
	case ContentCommit:
		c.Commit = &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefReference, Reference: []byte("ref")}}}
	}
	return c
}

// sign signs c from its sender, with a confirmation tag if it is a commit.
func (g *testGroup) sign(t testing.TB, wf WireFormat, c *FramedContent) *AuthenticatedContent {
	t.Helper()
	ac, err := g.s.SignContent(wf, c, g.ctx, g.signers[c.Sender.Leaf])
	if err != nil {
		t.Fatal(err)
	}
	if c.ContentType == ContentCommit {
		ac.Auth.ConfirmationTag = g.epoch.ConfirmationTag([]byte("confirmed transcript hash"))
	}
	return ac
}

func (g *testGroup) protectPrivate(t testing.TB, tree *SecretTree, c *FramedContent, padTo int) *PrivateMessage {
	t.Helper()
	m, err := g.s.ProtectPrivate(g.sign(t, WireFormatPrivateMessage, c), tree, g.senderData, padTo, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (g *testGroup) openPrivate(tree *SecretTree, m *PrivateMessage) (*AuthenticatedContent, error) {
	return g.s.OpenPrivate(m, g.ctx, tree, g.senderData, g.keys)
}

func (g *testGroup) protectPublic(t testing.TB, c *FramedContent) *PublicMessage {
	t.Helper()
	m, err := g.s.ProtectPublic(g.sign(t, WireFormatPublicMessage, c), g.ctx, g.epoch.MembershipKey())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (g *testGroup) openPublic(m *PublicMessage) (*AuthenticatedContent, error) {
	return g.s.OpenPublic(m, g.ctx, g.epoch.MembershipKey(), g.keys)
}

// TestProtectRoundTrip: every implemented suite, the post-quantum ones
// among them (no vectors cover them), protects each content type both
// ways and opens it again, through the wire encoding; padding pads to the
// bucket and is stripped.
func TestProtectRoundTrip(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			g := newTestGroup(t, cs, 3)
			sender, receiver := g.tree(t), g.tree(t)
			for _, typ := range []ContentType{ContentApplication, ContentProposal, ContentCommit} {
				for _, padTo := range []int{0, 1, 64, 1000} {
					c := g.content(2, typ)
					pm := g.protectPrivate(t, sender, c, padTo)
					if padTo > 1 && (len(pm.Ciphertext)-aeadOverhead)%padTo != 0 {
						t.Errorf("content type %d padded to %d: ciphertext of %d bytes", typ, padTo, len(pm.Ciphertext))
					}
					wire := (&MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Marshal()
					ac, err := g.openPrivate(receiver, decodeMLSMessage(t, wire, WireFormatPrivateMessage).PrivateMessage)
					if err != nil {
						t.Fatalf("content type %d padded to %d: %v", typ, padTo, err)
					}
					if !bytes.Equal(contentBody(&ac.Content), contentBody(c)) || ac.Content.Sender != c.Sender ||
						!bytes.Equal(ac.Content.AuthenticatedData, c.AuthenticatedData) {
						t.Errorf("content type %d: opens to %+v", typ, ac.Content)
					}
					if typ == ContentCommit && len(ac.Auth.ConfirmationTag) != g.s.Nh() {
						t.Errorf("commit: confirmation tag %x", ac.Auth.ConfirmationTag)
					}
				}
				if typ == ContentApplication {
					continue
				}
				c := g.content(1, typ)
				pm := g.protectPublic(t, c)
				wire := (&MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
				ac, err := g.openPublic(decodeMLSMessage(t, wire, WireFormatPublicMessage).PublicMessage)
				if err != nil || !bytes.Equal(contentBody(&ac.Content), contentBody(c)) {
					t.Errorf("content type %d as a PublicMessage: %v", typ, err)
				}
			}
		})
	}
}

// TestOpenPrivateOrder: messages open in any order within the window,
// each once; each ratchet (handshake, application) counts on its own.
func TestOpenPrivateOrder(t *testing.T) {
	g := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2)
	sender, receiver := g.tree(t), g.tree(t)
	var msgs []*PrivateMessage
	for range 5 {
		msgs = append(msgs, g.protectPrivate(t, sender, g.content(0, ContentApplication), 0))
	}
	handshake := g.protectPrivate(t, sender, g.content(0, ContentProposal), 0)
	for _, i := range []int{3, 0, 4, 1, 2} {
		if _, err := g.openPrivate(receiver, msgs[i]); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	if _, err := g.openPrivate(receiver, handshake); err != nil {
		t.Errorf("handshake message at generation 0: %v", err)
	}
	for i, m := range msgs {
		if _, err := g.openPrivate(receiver, m); !errors.Is(err, ErrKeyConsumed) {
			t.Errorf("message %d replayed: %v", i, err)
		}
	}
}

// TestOpenPrivateFailureKeepsKey: a message that fails to open does not
// use up its generation's key, so the genuine message still opens: one
// whose ciphertext was changed, and one from another member naming the
// sender's leaf and generation with a valid encryption but its own
// signature.
func TestOpenPrivateFailureKeepsKey(t *testing.T) {
	g := newTestGroup(t, HotlinePQXWingAES256GCMSHA384Ed25519, 2)
	sender, receiver := g.tree(t), g.tree(t)
	genuine := g.protectPrivate(t, sender, g.content(0, ContentApplication), 0)

	changed := *genuine
	changed.Ciphertext = bytes.Clone(genuine.Ciphertext)
	changed.Ciphertext[len(changed.Ciphertext)-1] ^= 1
	if _, err := g.openPrivate(receiver, &changed); !errors.Is(err, ErrDecrypt) {
		t.Errorf("changed ciphertext: %v", err)
	}

	// Member 1 derives member 0's first key (every member can) and signs
	// as itself.
	forgerTree := g.tree(t)
	c := g.content(0, ContentApplication)
	c.ApplicationData = []byte("forged")
	ac, err := g.s.SignContent(WireFormatPrivateMessage, c, g.ctx, g.signers[1])
	if err != nil {
		t.Fatal(err)
	}
	forged, err := g.s.ProtectPrivate(ac, forgerTree, g.senderData, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.openPrivate(receiver, forged); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged message: %v", err)
	}

	if ac, err := g.openPrivate(receiver, genuine); err != nil || string(ac.Content.ApplicationData) != "hello, leaders" {
		t.Errorf("genuine message after the failures: %v", err)
	}
	if _, err := g.openPrivate(receiver, genuine); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("genuine message replayed: %v", err)
	}
}

// TestOpenMalformed: each way a message can be wrong gives its stable
// sentinel error.
func TestOpenMalformed(t *testing.T) {
	g := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2)
	other := newNamedTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2, "another group")
	nextEpoch := *g.ctx
	nextEpoch.Epoch++

	t.Run("public", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(m *PublicMessage)
			ctx    *GroupContext
			key    []byte
			keys   SignatureKeyFunc
			want   error
		}{
			{name: "membership tag", change: func(m *PublicMessage) { m.MembershipTag[0] ^= 1 }, want: ErrBadMAC},
			{name: "no membership tag", change: func(m *PublicMessage) { m.MembershipTag = nil }, want: ErrBadMAC},
			{name: "membership key", key: other.epoch.MembershipKey(), want: ErrBadMAC},
			{name: "signature", change: func(m *PublicMessage) { m.Auth.Signature[0] ^= 1 }, want: ErrBadMAC},
			{name: "signer", keys: func(*FramedContent) ([]byte, error) { return g.signers[0].Public(), nil }, want: ErrBadSignature},
			{name: "blank leaf", keys: func(*FramedContent) ([]byte, error) { return nil, ErrUnknownSender }, want: ErrUnknownSender},
			{name: "group", ctx: other.ctx, want: ErrWrongGroup},
			{name: "epoch", ctx: &nextEpoch, want: ErrWrongEpoch},
			{name: "application data", change: func(m *PublicMessage) {
				m.Content.ContentType, m.Content.Proposal, m.Content.ApplicationData = ContentApplication, nil, []byte("x")
			}, want: ErrUnexpectedContent},
			{name: "external commit", change: func(m *PublicMessage) {
				m.Content.Sender = Sender{Type: SenderExternal}
			}, want: ErrUnexpectedContent},
			{name: "tag from a non-member", change: func(m *PublicMessage) {
				m.Content.Sender = Sender{Type: SenderNewMemberProposal}
				m.Content.Proposal = &AddProposal{}
			}, want: ErrUnexpectedContent},
			{name: "signature, membership tag recomputed", change: func(m *PublicMessage) {
				m.Auth.Signature[0] ^= 1
				m.MembershipTag = g.s.MembershipTag(g.epoch.MembershipKey(), m.authenticatedContent().tbm(g.ctx))
			}, want: ErrBadSignature},
		} {
			m := g.protectPublic(t, g.content(1, ContentProposal))
			if tc.change != nil {
				tc.change(m)
			}
			ctx, key, keys := g.ctx, g.epoch.MembershipKey(), SignatureKeyFunc(g.keys)
			if tc.ctx != nil {
				ctx = tc.ctx
			}
			if tc.key != nil {
				key = tc.key
			}
			if tc.keys != nil {
				keys = tc.keys
			}
			if _, err := g.s.OpenPublic(m, ctx, key, keys); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	})

	t.Run("private", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(m *PrivateMessage)
			ctx    *GroupContext
			sds    []byte
			keys   SignatureKeyFunc
			replay bool
			want   error
		}{
			{name: "ciphertext", change: func(m *PrivateMessage) { m.Ciphertext[20] ^= 1 }, want: ErrDecrypt},
			{name: "sender data", change: func(m *PrivateMessage) { m.EncryptedSenderData[0] ^= 1 }, want: ErrDecrypt},
			{name: "authenticated data", change: func(m *PrivateMessage) { m.AuthenticatedData = []byte("other") }, want: ErrDecrypt},
			{name: "content type", change: func(m *PrivateMessage) { m.ContentType = ContentProposal }, want: ErrDecrypt},
			{name: "sender data secret", sds: other.senderData, want: ErrDecrypt},
			{name: "signer", keys: func(*FramedContent) ([]byte, error) { return g.signers[0].Public(), nil }, want: ErrBadSignature},
			{name: "blank leaf", keys: func(*FramedContent) ([]byte, error) { return nil, ErrUnknownSender }, want: ErrUnknownSender},
			{name: "group", ctx: other.ctx, want: ErrWrongGroup},
			{name: "epoch", ctx: &nextEpoch, want: ErrWrongEpoch},
			{name: "replayed generation", replay: true, want: ErrKeyConsumed},
		} {
			sender, receiver := g.tree(t), g.tree(t)
			m := g.protectPrivate(t, sender, g.content(1, ContentApplication), 0)
			if tc.replay {
				if _, err := g.openPrivate(receiver, m); err != nil {
					t.Fatal(err)
				}
			}
			if tc.change != nil {
				tc.change(m)
			}
			ctx, sds, keys := g.ctx, g.senderData, SignatureKeyFunc(g.keys)
			if tc.ctx != nil {
				ctx = tc.ctx
			}
			if tc.sds != nil {
				sds = tc.sds
			}
			if tc.keys != nil {
				keys = tc.keys
			}
			if _, err := g.s.OpenPrivate(m, ctx, receiver, sds, keys); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	})

	// Plaintexts that decrypt but are malformed: a sender who holds the
	// keys encrypts them by hand.
	t.Run("plaintext", func(t *testing.T) {
		ac := g.sign(t, WireFormatPrivateMessage, g.content(1, ContentApplication))
		var w Writer
		(&PrivateMessageContent{ApplicationData: ac.Content.ApplicationData, Auth: ac.Auth}).encodeFor(&w, ContentApplication)
		good := w.Bytes()
		for _, tc := range []struct {
			name      string
			plaintext []byte
			leaf      LeafIndex
			want      error
		}{
			{"non-zero padding", append(bytes.Clone(good), 0, 0, 1, 0), 1, ErrDecode},
			{"truncated", good[:len(good)-1], 1, ErrDecode},
			{"leaf outside the tree", good, 2, ErrUnknownSender},
		} {
			m := sealByHand(t, g, g.tree(t), tc.leaf, ContentApplication, tc.plaintext)
			if _, err := g.openPrivate(g.tree(t), m); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		// Zero padding is fine.
		m := sealByHand(t, g, g.tree(t), 1, ContentApplication, append(bytes.Clone(good), 0, 0, 0))
		if _, err := g.openPrivate(g.tree(t), m); err != nil {
			t.Errorf("zero padding: %v", err)
		}
	})
}

// sealByHand builds a PrivateMessage from leaf around any plaintext.
func sealByHand(t *testing.T, g *testGroup, tree *SecretTree, leaf LeafIndex, typ ContentType, plaintext []byte) *PrivateMessage {
	t.Helper()
	s := g.s
	k, err := tree.Next(uint32(leaf)%tree.Leaves(), ratchetFor(typ))
	if err != nil {
		t.Fatal(err)
	}
	m := &PrivateMessage{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, ContentType: typ, AuthenticatedData: []byte("authenticated")}
	sd := SenderData{Leaf: leaf, Generation: k.Generation, ReuseGuard: [4]byte{1, 2, 3, 4}}
	if m.Ciphertext, err = s.AEADSeal(k.Key(), guardNonce(k.Nonce(), sd.ReuseGuard), m.contentAAD(), plaintext); err != nil {
		t.Fatal(err)
	}
	key, nonce, err := s.SenderDataKeyNonce(g.senderData, m.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	if m.EncryptedSenderData, err = s.AEADSeal(key, nonce, m.senderDataAAD(), marshalWire(&sd)); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProtectMisuse: senders are refused what receivers would refuse.
func TestProtectMisuse(t *testing.T) {
	g := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2)
	signer := g.signers[0]
	for _, tc := range []struct {
		name string
		wf   WireFormat
		c    func(c *FramedContent)
		ctx  *GroupContext
		want error
	}{
		{"application as PublicMessage", WireFormatPublicMessage, func(c *FramedContent) {}, g.ctx, ErrUnexpectedContent},
		{"Welcome wire format", WireFormatWelcome, func(c *FramedContent) {}, g.ctx, ErrUnexpectedContent},
		{"external sender, private", WireFormatPrivateMessage, func(c *FramedContent) {
			c.Sender = Sender{Type: SenderExternal}
			c.ContentType, c.Proposal = ContentProposal, &RemoveProposal{}
		}, g.ctx, ErrUnexpectedContent},
		{"new member proposes a removal", WireFormatPublicMessage, func(c *FramedContent) {
			c.Sender = Sender{Type: SenderNewMemberProposal}
			c.ContentType, c.Proposal = ContentProposal, &RemoveProposal{}
		}, g.ctx, ErrUnexpectedContent},
		{"proposal without a body", WireFormatPublicMessage, func(c *FramedContent) { c.ContentType = ContentProposal }, g.ctx, ErrUnexpectedContent},
		{"sender type 9", WireFormatPrivateMessage, func(c *FramedContent) { c.Sender.Type = 9 }, g.ctx, ErrUnexpectedContent},
		{"other epoch", WireFormatPrivateMessage, func(c *FramedContent) { c.Epoch = 1 }, g.ctx, ErrWrongEpoch},
		{"other group", WireFormatPrivateMessage, func(c *FramedContent) { c.GroupID = []byte("x") }, g.ctx, ErrWrongGroup},
	} {
		c := g.content(0, ContentApplication)
		tc.c(c)
		if _, err := g.s.SignContent(tc.wf, c, tc.ctx, signer); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := g.s.SignContent(WireFormatPrivateMessage, g.content(0, ContentApplication), nil, signer); err == nil {
		t.Error("a member's content signed without a GroupContext")
	}

	commit := g.sign(t, WireFormatPrivateMessage, g.content(0, ContentCommit))
	commit.Auth.ConfirmationTag = nil
	if _, err := g.s.ProtectPrivate(commit, g.tree(t), g.senderData, 0, nil); err == nil {
		t.Error("a commit without a confirmation tag was protected")
	}
	app := g.sign(t, WireFormatPrivateMessage, g.content(0, ContentApplication))
	if _, err := g.s.ProtectPublic(app, g.ctx, g.epoch.MembershipKey()); !errors.Is(err, ErrUnexpectedContent) {
		t.Errorf("content signed for a PrivateMessage sent as a PublicMessage: %v", err)
	}
	if _, err := g.s.ProtectPrivate(app, g.tree(t), g.senderData, -1, nil); err == nil {
		t.Error("negative padding accepted")
	}
	if _, err := g.s.ProtectPrivate(app, g.tree(t), g.senderData, MaxVarint, nil); err == nil {
		t.Error("padding past the largest message accepted")
	}
	if _, err := g.s.ProtectPrivate(app, g.tree(t), g.senderData[1:], 0, nil); err == nil {
		t.Error("a short sender_data_secret accepted")
	}
	tiny, _ := g.s.NewSecretTree(g.epoch.EncryptionSecret(), 1)
	app = g.sign(t, WireFormatPrivateMessage, g.content(1, ContentApplication))
	if _, err := g.s.ProtectPrivate(app, tiny, g.senderData, 0, nil); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("sender outside the secret tree: %v", err)
	}
	p256 := mustSuite(t, MLS128DHKEMP256AES128GCMSHA256P256)
	if _, err := p256.ProtectPrivate(app, g.tree(t), g.senderData, 0, nil); err == nil {
		t.Error("a secret tree of another suite was used")
	}
}

// TestProtectPrivateDeterministic: with the global random source fixed,
// protection is deterministic, so fuzz seeds and interop traces
// reproduce.
func TestProtectPrivateDeterministic(t *testing.T) {
	var out [2][]byte
	for i := range out {
		cryptotest.SetGlobalRandom(t, 1)
		g := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2)
		m := g.protectPrivate(t, g.tree(t), g.content(1, ContentApplication), 32)
		out[i] = marshalWire(m)
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Error("two protections with the same random source differ")
	}
}
