package mls

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Hand-built structures covering every arm of every union, including those
// the official vectors never use (x509 and unknown credentials, update
// leaf nodes, external and new-member senders, custom proposals, absent
// path secrets, PrivateMessageContent).

func bytesOf(s string) []byte { return []byte(s) }

func sampleCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{MLS10, 0x0A0A},
		CipherSuites: []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, 0x1A1A},
		Extensions:   []ExtensionType{0xF000, 0x2A2A},
		Proposals:    []ProposalType{0xF001},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509, 0xF002},
	}
}

func sampleLeafNode(src LeafNodeSource, cred Credential) LeafNode {
	l := LeafNode{
		EncryptionKey: bytesOf("encryption key"),
		SignatureKey:  bytesOf("signature key"),
		Credential:    cred,
		Capabilities:  sampleCapabilities(),
		Source:        src,
		Extensions:    []Extension{{Type: ExtApplicationID, Data: ApplicationID("app").encodeBytes()}, {Type: 0xF000, Data: bytesOf("x")}},
		Signature:     bytesOf("leaf signature"),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		l.Lifetime = Lifetime{NotBefore: 1, NotAfter: 1 << 40}
	case LeafNodeSourceCommit:
		l.ParentHash = bytesOf("parent hash")
	}
	return l
}

func (a ApplicationID) encodeBytes() []byte { return marshalWire(a) }

var sampleCredentials = []Credential{
	{Type: CredentialBasic, Identity: bytesOf("alice")},
	{Type: CredentialX509, Certificates: [][]byte{bytesOf("leaf cert"), bytesOf("intermediate")}},
	{Type: CredentialX509, Certificates: [][]byte{}},
	{Type: 0xF002, Data: bytesOf("hotline credential")},
}

func sampleKeyPackage() KeyPackage {
	return KeyPackage{
		Version:     MLS10,
		CipherSuite: MLS128DHKEMX25519AES128GCMSHA256Ed25519,
		InitKey:     bytesOf("init key"),
		LeafNode:    sampleLeafNode(LeafNodeSourceKeyPackage, sampleCredentials[0]),
		Extensions:  []Extension{{Type: 0x3A3A, Data: bytesOf("grease")}},
		Signature:   bytesOf("kp signature"),
	}
}

func sampleProposals() []Proposal {
	return []Proposal{
		&AddProposal{KeyPackage: sampleKeyPackage()},
		&UpdateProposal{LeafNode: sampleLeafNode(LeafNodeSourceUpdate, sampleCredentials[1])},
		&RemoveProposal{Removed: 7},
		&PreSharedKeyProposal{PSK: PreSharedKeyID{Type: PSKExternal, ID: bytesOf("psk id"), Nonce: bytesOf("nonce")}},
		&PreSharedKeyProposal{PSK: PreSharedKeyID{Type: PSKResumption, Usage: ResumptionBranch, PSKGroupID: bytesOf("g"), PSKEpoch: 9, Nonce: bytesOf("n")}},
		&ReInitProposal{GroupID: bytesOf("new group"), Version: 2, CipherSuite: HotlinePQXWingAES256GCMSHA384Ed25519, Extensions: []Extension{}},
		&ExternalInitProposal{KEMOutput: bytesOf("kem output")},
		&GroupContextExtensionsProposal{Extensions: []Extension{
			makeExtension(ExtRequiredCapabilities, &RequiredCapabilities{Extensions: []ExtensionType{0xF000}, Proposals: []ProposalType{0xF001}, Credentials: []CredentialType{CredentialBasic}}),
			makeExtension(ExtExternalSenders, ExternalSenders{{SignatureKey: bytesOf("ds key"), Credential: sampleCredentials[0]}}),
		}},
		&CustomProposal{ProposalType: 0xF001, Data: bytesOf("custom body")},
	}
}

func sampleUpdatePath() *UpdatePath {
	return &UpdatePath{
		LeafNode: sampleLeafNode(LeafNodeSourceCommit, sampleCredentials[3]),
		Nodes: []UpdatePathNode{
			{EncryptionKey: bytesOf("k1"), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: bytesOf("kem"), Ciphertext: bytesOf("ct")}}},
			{EncryptionKey: bytesOf("k2"), EncryptedPathSecret: []HPKECiphertext{}},
		},
	}
}

func sampleCommit() *Commit {
	c := &Commit{Path: sampleUpdatePath()}
	for _, p := range sampleProposals() {
		c.Proposals = append(c.Proposals, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
	}
	c.Proposals = append(c.Proposals, ProposalOrRef{Type: ProposalOrRefReference, Reference: bytesOf("proposal ref")})
	return c
}

func sampleGroupContext() GroupContext {
	return GroupContext{
		Version:                 MLS10,
		CipherSuite:             MLS128DHKEMX25519AES128GCMSHA256Ed25519,
		GroupID:                 bytesOf("group"),
		Epoch:                   42,
		TreeHash:                bytesOf("tree hash"),
		ConfirmedTranscriptHash: bytesOf("cth"),
		Extensions:              []Extension{makeExtension(ExtExternalSenders, ExternalSenders{})},
	}
}

func sampleRatchetTree() RatchetTree {
	leaf := sampleLeafNode(LeafNodeSourceCommit, sampleCredentials[0])
	return RatchetTree{
		{Type: NodeTypeLeaf, Leaf: &leaf},
		{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: bytesOf("pk"), ParentHash: bytesOf("ph"), UnmergedLeaves: []LeafIndex{1}}},
		nil,
		nil,
		{Type: NodeTypeLeaf, Leaf: &leaf},
		{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: bytesOf("pk2"), ParentHash: []byte{}, UnmergedLeaves: []LeafIndex{}}},
	}
}

func sampleGroupInfo() *GroupInfo {
	tree := sampleRatchetTree()
	return &GroupInfo{
		GroupContext: sampleGroupContext(),
		Extensions: []Extension{
			makeExtension(ExtRatchetTree, tree),
			makeExtension(ExtExternalPub, &ExternalPub{PublicKey: bytesOf("external pub")}),
			{Type: 0x4A4A, Data: bytesOf("grease")},
		},
		ConfirmationTag: bytesOf("tag"),
		Signer:          3,
		Signature:       bytesOf("gi signature"),
	}
}

func sampleFramedContent(s Sender, ct ContentType) FramedContent {
	f := FramedContent{GroupID: bytesOf("group"), Epoch: 42, Sender: s, AuthenticatedData: bytesOf("aad"), ContentType: ct}
	switch ct {
	case ContentApplication:
		f.ApplicationData = bytesOf("hello")
	case ContentProposal:
		f.Proposal = &RemoveProposal{Removed: 1}
	case ContentCommit:
		f.Commit = sampleCommit()
	}
	return f
}

var sampleSenders = []Sender{
	{Type: SenderMember, Leaf: 5},
	{Type: SenderExternal, ExternalIndex: 2},
	{Type: SenderNewMemberProposal},
	{Type: SenderNewMemberCommit},
}

func sampleAuth(ct ContentType) FramedContentAuthData {
	a := FramedContentAuthData{Signature: bytesOf("sig")}
	if ct == ContentCommit {
		a.ConfirmationTag = bytesOf("confirmation tag")
	}
	return a
}

func samplePublicMessage(s Sender, ct ContentType) *PublicMessage {
	p := &PublicMessage{Content: sampleFramedContent(s, ct), Auth: sampleAuth(ct)}
	if s.Type == SenderMember {
		p.MembershipTag = bytesOf("membership tag")
	}
	return p
}

// sampleMessages returns an MLSMessage of every wire format, and a public
// message of every sender and content type.
func sampleMessages() map[string]*MLSMessage {
	kp := sampleKeyPackage()
	out := map[string]*MLSMessage{
		"private": {Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: &PrivateMessage{
			GroupID: bytesOf("group"), Epoch: 1, ContentType: ContentApplication, AuthenticatedData: []byte{},
			EncryptedSenderData: bytesOf("esd"), Ciphertext: bytesOf("ciphertext"),
		}},
		"welcome": {Version: MLS10, WireFormat: WireFormatWelcome, Welcome: &Welcome{
			CipherSuite: MLS128DHKEMX25519AES128GCMSHA256Ed25519,
			Secrets: []EncryptedGroupSecrets{
				{NewMember: bytesOf("kp ref"), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: bytesOf("kem"), Ciphertext: bytesOf("ct")}},
			},
			EncryptedGroupInfo: bytesOf("encrypted group info"),
		}},
		"group info":  {Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: sampleGroupInfo()},
		"key package": {Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: &kp},
	}
	for _, s := range sampleSenders {
		for ct := ContentApplication; ct <= ContentCommit; ct++ {
			out[fmt.Sprintf("public sender %d content %d", s.Type, ct)] = &MLSMessage{
				Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: samplePublicMessage(s, ct),
			}
		}
	}
	return out
}

// sampleStructures returns one of each wire structure, by name.
func sampleStructures() map[string]wireCodec {
	out := map[string]wireCodec{}
	for name, m := range sampleMessages() {
		out["message "+name] = m
	}
	for i, c := range sampleCredentials {
		out[fmt.Sprintf("credential %d", i)] = &c
	}
	for src := LeafNodeSourceKeyPackage; src <= LeafNodeSourceCommit; src++ {
		l := sampleLeafNode(src, sampleCredentials[src])
		out[fmt.Sprintf("leaf node source %d", src)] = &l
	}
	for _, p := range sampleProposals() {
		out[fmt.Sprintf("proposal %#04x", uint16(p.Type()))] = &proposalCodec{p}
	}
	tree := sampleRatchetTree()
	out["ratchet tree"] = &tree
	out["commit with path"] = sampleCommit()
	out["commit without path"] = &Commit{Proposals: []ProposalOrRef{}}
	out["group secrets with path secret"] = &GroupSecrets{JoinerSecret: bytesOf("joiner"), PathSecret: bytesOf("path"), PSKs: []PreSharedKeyID{
		{Type: PSKExternal, ID: bytesOf("id"), Nonce: bytesOf("nonce")},
	}}
	out["group secrets with empty path secret"] = &GroupSecrets{JoinerSecret: bytesOf("joiner"), PathSecret: []byte{}, PSKs: []PreSharedKeyID{}}
	out["group secrets without path secret"] = &GroupSecrets{JoinerSecret: bytesOf("joiner"), PSKs: []PreSharedKeyID{}}
	for _, s := range sampleSenders {
		out[fmt.Sprintf("authenticated content sender %d", s.Type)] = &AuthenticatedContent{
			WireFormat: WireFormatPrivateMessage, Content: sampleFramedContent(s, ContentCommit), Auth: sampleAuth(ContentCommit),
		}
	}
	out["sender data"] = &SenderData{Leaf: 3, Generation: 1 << 31, ReuseGuard: [4]byte{1, 2, 3, 4}}
	out["external senders"] = &ExternalSenders{{SignatureKey: bytesOf("k"), Credential: sampleCredentials[1]}}
	out["required capabilities"] = &RequiredCapabilities{Extensions: []ExtensionType{}, Proposals: []ProposalType{}, Credentials: []CredentialType{}}
	out["external pub"] = &ExternalPub{PublicKey: bytesOf("k")}
	app := ApplicationID("app")
	out["application id"] = &app
	return out
}

// equateDecoded compares structures up to nil versus empty slices, which
// an encoding does not distinguish (except for optional values, checked
// by bytes elsewhere).
var equateDecoded = cmp.Options{cmpopts.EquateEmpty(), cmp.AllowUnexported(proposalCodec{})}

func TestWireRoundTripSamples(t *testing.T) {
	for name, v := range sampleStructures() {
		t.Run(name, func(t *testing.T) {
			b := marshalWire(v)
			got := newLike(v)
			if err := unmarshalWire(b, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(v, got, equateDecoded); diff != "" {
				t.Errorf("decoded differs (-built +decoded):\n%s", diff)
			}
			if b2 := marshalWire(got); !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs")
			}
		})
	}
}

// newLike returns a new zero value of v's type.
func newLike(v wireCodec) wireCodec {
	switch v.(type) {
	case *MLSMessage:
		return new(MLSMessage)
	case *Credential:
		return new(Credential)
	case *LeafNode:
		return new(LeafNode)
	case *proposalCodec:
		return new(proposalCodec)
	case *RatchetTree:
		return new(RatchetTree)
	case *Commit:
		return new(Commit)
	case *GroupSecrets:
		return new(GroupSecrets)
	case *AuthenticatedContent:
		return new(AuthenticatedContent)
	case *SenderData:
		return new(SenderData)
	case *ExternalSenders:
		return new(ExternalSenders)
	case *RequiredCapabilities:
		return new(RequiredCapabilities)
	case *ExternalPub:
		return new(ExternalPub)
	case *ApplicationID:
		return new(ApplicationID)
	}
	panic(fmt.Sprintf("newLike: %T", v))
}

func TestGroupSecretsOptionalPathSecret(t *testing.T) {
	for _, ps := range [][]byte{nil, {}, bytesOf("secret")} {
		b := marshalWire(&GroupSecrets{JoinerSecret: bytesOf("j"), PathSecret: ps})
		var g GroupSecrets
		if err := unmarshalWire(b, &g); err != nil {
			t.Fatal(err)
		}
		if (g.PathSecret == nil) != (ps == nil) || !bytes.Equal(g.PathSecret, ps) {
			t.Errorf("path secret %q (nil %t) decoded as %q (nil %t)", ps, ps == nil, g.PathSecret, g.PathSecret == nil)
		}
	}
}

// TestPrivateMessageContent round-trips the plaintext of a private message
// of each content type with and without padding, and refuses non-zero
// padding.
func TestPrivateMessageContent(t *testing.T) {
	for ct := ContentApplication; ct <= ContentCommit; ct++ {
		f := sampleFramedContent(sampleSenders[0], ct)
		for _, pad := range []int{0, 1, 100} {
			p := PrivateMessageContent{ApplicationData: f.ApplicationData, Proposal: f.Proposal, Commit: f.Commit, Auth: sampleAuth(ct), Padding: pad}
			var w Writer
			p.encodeFor(&w, ct)
			b := w.Bytes()
			var got PrivateMessageContent
			r := NewReader(b)
			got.decodeFor(r, ct)
			if err := r.Done(); err != nil {
				t.Fatalf("content type %d, padding %d: %v", ct, pad, err)
			}
			if diff := cmp.Diff(p, got, equateDecoded); diff != "" {
				t.Errorf("content type %d, padding %d (-want +got):\n%s", ct, pad, diff)
			}
			if pad > 0 {
				bad := bytes.Clone(b)
				bad[len(bad)-1] = 1
				r := NewReader(bad)
				new(PrivateMessageContent).decodeFor(r, ct)
				if err := r.Done(); !errors.Is(err, ErrDecode) {
					t.Errorf("content type %d: non-zero padding gave %v", ct, err)
				}
			}
		}
	}
}

// TestTBS checks the to-be-signed encodings against their definitions.
func TestTBS(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	enc := func(fn func(w *Writer)) []byte {
		var w Writer
		fn(&w)
		return w.Bytes()
	}
	groupBinding := enc(func(w *Writer) { w.Opaque(bytesOf("gid")); w.U32(9) })

	for src := LeafNodeSourceKeyPackage; src <= LeafNodeSourceCommit; src++ {
		l := sampleLeafNode(src, sampleCredentials[0])
		full := marshalWire(&l)
		content := full[:len(full)-len(enc(func(w *Writer) { w.Opaque(l.Signature) }))]
		want := content
		if src != LeafNodeSourceKeyPackage {
			want = cat(content, groupBinding)
		}
		if got := l.tbs(bytesOf("gid"), 9); !bytes.Equal(got, want) {
			t.Errorf("LeafNodeTBS for source %d:\n got %x\nwant %x", src, got, want)
		}
	}

	kp := sampleKeyPackage()
	full := kp.Marshal()
	if got, want := kp.tbs(), full[:len(full)-1-len(kp.Signature)]; !bytes.Equal(got, want) {
		t.Errorf("KeyPackageTBS:\n got %x\nwant %x", got, want)
	}
	gi := sampleGroupInfo()
	full = gi.Marshal()
	if got, want := gi.tbs(), full[:len(full)-1-len(gi.Signature)]; !bytes.Equal(got, want) {
		t.Errorf("GroupInfoTBS:\n got %x\nwant %x", got, want)
	}

	ctx := sampleGroupContext()
	for _, s := range sampleSenders {
		for ct := ContentApplication; ct <= ContentCommit; ct++ {
			ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: sampleFramedContent(s, ct), Auth: sampleAuth(ct)}
			want := cat([]byte{0, 1, 0, 1}, marshalWire(&ac.Content))
			if s.Type == SenderMember || s.Type == SenderNewMemberCommit {
				want = cat(want, ctx.Marshal())
			}
			if got := ac.tbs(&ctx); !bytes.Equal(got, want) {
				t.Errorf("FramedContentTBS, sender %d, content %d:\n got %x\nwant %x", s.Type, ct, got, want)
			}
			acBytes := marshalWire(ac)
			auth := acBytes[2+len(marshalWire(&ac.Content)):]
			if got := ac.tbm(&ctx); !bytes.Equal(got, cat(want, auth)) {
				t.Errorf("AuthenticatedContentTBM, sender %d, content %d", s.Type, ct)
			}
			pm := samplePublicMessage(s, ct)
			if diff := cmp.Diff(pm.authenticatedContent(), ac, equateDecoded); diff != "" {
				t.Errorf("PublicMessage.authenticatedContent (-got +want):\n%s", diff)
			}
		}
	}

	pm := &PrivateMessage{GroupID: bytesOf("g"), Epoch: 0x0102, ContentType: ContentCommit, AuthenticatedData: bytesOf("ad")}
	if got, want := pm.senderDataAAD(), []byte{1, 'g', 0, 0, 0, 0, 0, 0, 1, 2, 3}; !bytes.Equal(got, want) {
		t.Errorf("SenderDataAAD = %x, want %x", got, want)
	}
	if got, want := pm.contentAAD(), []byte{1, 'g', 0, 0, 0, 0, 0, 0, 1, 2, 3, 2, 'a', 'd'}; !bytes.Equal(got, want) {
		t.Errorf("PrivateContentAAD = %x, want %x", got, want)
	}
}

func TestFramedContentTBSNeedsContext(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: sampleFramedContent(sampleSenders[0], ContentApplication)}
	ac.tbs(nil)
}

// TestUnmarshalCopies: what the exported Unmarshal functions return does
// not change when the caller reuses its buffer.
func TestUnmarshalCopies(t *testing.T) {
	kp := sampleKeyPackage()
	gi := sampleGroupInfo()
	tree := sampleRatchetTree()
	wl := sampleMessages()["welcome"]
	tests := []struct {
		name  string
		b     []byte
		parse func(b []byte) (any, error)
	}{
		{"MLSMessage", sampleMessages()["key package"].Marshal(), func(b []byte) (any, error) { return UnmarshalMLSMessage(b) }},
		{"KeyPackage", kp.Marshal(), func(b []byte) (any, error) { return UnmarshalKeyPackage(b) }},
		{"GroupInfo", gi.Marshal(), func(b []byte) (any, error) { return UnmarshalGroupInfo(b) }},
		{"Welcome", wl.Welcome.Marshal(), func(b []byte) (any, error) { return UnmarshalWelcome(b) }},
		{"RatchetTree", tree.Marshal(), func(b []byte) (any, error) { return UnmarshalRatchetTree(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(tt.b)
			v, err := tt.parse(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range b {
				b[i] = 0xee
			}
			if got := marshalWire(v.(wireEncoder)); !bytes.Equal(got, tt.b) {
				t.Error("the decoded structure changed with the caller's buffer")
			}
			if _, err := tt.parse(append(bytes.Clone(tt.b), 0)); !errors.Is(err, ErrDecode) {
				t.Errorf("trailing byte: got %v, want ErrDecode", err)
			}
		})
	}
}

func TestExtensionHelpers(t *testing.T) {
	gi := sampleGroupInfo()
	var tree RatchetTree
	if ok, err := decodeExtension(gi.Extensions, ExtRatchetTree, &tree); !ok || err != nil {
		t.Fatalf("ratchet tree: %t, %v", ok, err)
	}
	if diff := cmp.Diff(sampleRatchetTree(), tree, equateDecoded); diff != "" {
		t.Errorf("ratchet tree (-want +got):\n%s", diff)
	}
	var pub ExternalPub
	if ok, err := decodeExtension(gi.Extensions, ExtExternalPub, &pub); !ok || err != nil || string(pub.PublicKey) != "external pub" {
		t.Fatalf("external pub: %t, %v, %q", ok, err, pub.PublicKey)
	}
	var senders ExternalSenders
	if ok, err := decodeExtension(gi.Extensions, ExtExternalSenders, &senders); ok || err != nil {
		t.Fatalf("absent extension: %t, %v", ok, err)
	}
	bad := []Extension{{Type: ExtExternalPub, Data: []byte{5, 1}}}
	if ok, err := decodeExtension(bad, ExtExternalPub, &pub); !ok || !errors.Is(err, ErrDecode) {
		t.Fatalf("malformed extension: %t, %v", ok, err)
	}
	trailing := []Extension{{Type: ExtExternalPub, Data: []byte{1, 1, 0}}}
	if _, err := decodeExtension(trailing, ExtExternalPub, &pub); !errors.Is(err, ErrDecode) {
		t.Fatalf("extension with trailing bytes: %v", err)
	}
}

func TestEncodePanicsOnBadUnion(t *testing.T) {
	tests := []struct {
		name string
		v    wireEncoder
	}{
		{"credential type 0", &Credential{}},
		{"leaf node source 0", &LeafNode{Credential: sampleCredentials[0]}},
		{"node without leaf", &Node{Type: NodeTypeLeaf}},
		{"node type 0", &Node{}},
		{"empty ratchet tree", &RatchetTree{}},
		{"ratchet tree ending blank", &RatchetTree{sampleRatchetTree()[0], nil}},
		{"custom proposal of a known type", &proposalCodec{&CustomProposal{ProposalType: ProposalAdd}}},
		{"custom proposal type 0", &proposalCodec{&CustomProposal{}}},
		{"proposal-or-ref without proposal", &ProposalOrRef{Type: ProposalOrRefProposal}},
		{"proposal-or-ref type 0", &ProposalOrRef{}},
		{"sender type 0", &Sender{}},
		{"proposal content without proposal", &FramedContent{ContentType: ContentProposal, Sender: sampleSenders[0]}},
		{"content type 0", &FramedContent{Sender: sampleSenders[0]}},
		{"wire format without body", &MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome}},
		{"wire format 0", &MLSMessage{Version: MLS10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			marshalWire(tt.v)
		})
	}
}

// TestWireTruncations: every proper prefix of a valid encoding is an
// error wrapping ErrDecode, and never a panic; so is a trailing byte.
func TestWireTruncations(t *testing.T) {
	inputs := map[string][]byte{}
	for name, v := range sampleStructures() {
		inputs[name] = marshalWire(v)
	}
	var vs []map[string]hexBytes
	loadVectors(t, "messages", &vs)
	for field, b := range vs[0] {
		inputs["messages.json "+field] = b
	}
	checked := 0
	for name, b := range inputs {
		newV := func() wireCodec { return newLikeName(name) }
		for i := range len(b) {
			if err := unmarshalWire(b[:i], newV()); !errors.Is(err, ErrDecode) {
				t.Errorf("%s truncated to %d of %d bytes: got %v, want ErrDecode", name, i, len(b), err)
			}
			checked++
		}
		if err := unmarshalWire(append(bytes.Clone(b), 0), newV()); !errors.Is(err, ErrDecode) {
			t.Errorf("%s with a trailing byte: got %v, want ErrDecode", name, err)
		}
	}
	t.Logf("%d truncations of %d encodings", checked, len(inputs))
}

// newLikeName returns a new zero structure of the kind the input of
// TestWireTruncations with that name encodes.
func newLikeName(name string) wireCodec {
	if v, ok := sampleStructures()[name]; ok {
		return newLike(v)
	}
	field := name[len("messages.json "):]
	return messageFields[field].new()
}

// TestWireMalformed checks inputs that are wrong in one place each.
func TestWireMalformed(t *testing.T) {
	enc := func(fn func(w *Writer)) []byte {
		var w Writer
		fn(&w)
		return w.Bytes()
	}
	leaf := sampleLeafNode(LeafNodeSourceKeyPackage, sampleCredentials[0])
	leafPrefix := enc(func(w *Writer) { // a leaf node up to its source
		w.Opaque(leaf.EncryptionKey)
		w.Opaque(leaf.SignatureKey)
		leaf.Credential.encode(w)
		leaf.Capabilities.encode(w)
	})
	leafWithSource := func(src uint8) []byte {
		return enc(func(w *Writer) {
			w.Raw(leafPrefix)
			w.U8(src)
			w.U64(0)
			w.U64(0)
			w.Vector(func(*Writer) {})
			w.Opaque(nil)
		})
	}
	content := func(sender, ct []byte) []byte { // a FramedContent
		return enc(func(w *Writer) {
			w.Opaque(bytesOf("g"))
			w.U64(0)
			w.Raw(sender)
			w.Opaque(nil)
			w.Raw(ct)
		})
	}
	member := []byte{1, 0, 0, 0, 0}
	public := func(body []byte) []byte { return append([]byte{0, 1, 0, 1}, body...) }
	private := func(ct uint8) []byte {
		return enc(func(w *Writer) {
			w.U16(uint16(MLS10))
			w.U16(uint16(WireFormatPrivateMessage))
			w.Opaque(bytesOf("g"))
			w.U64(0)
			w.U8(ct)
			w.Opaque(nil)
			w.Opaque(nil)
			w.Opaque(nil)
		})
	}
	leafWithCapabilities := func(caps []byte) []byte {
		return enc(func(w *Writer) {
			w.Opaque(leaf.EncryptionKey)
			w.Opaque(leaf.SignatureKey)
			leaf.Credential.encode(w)
			w.Raw(caps)
		})
	}
	tree := func(nodes ...[]byte) []byte {
		return enc(func(w *Writer) { w.Vector(func(w *Writer) { w.Raw(bytes.Join(nodes, nil)) }) })
	}
	leafNode := append([]byte{1, 1}, marshalWire(&leaf)...)           // present, leaf
	parentNode := append([]byte{1, 2}, marshalWire(&ParentNode{})...) // present, parent
	validMsg := func(v *MLSMessage) []byte { return marshalWire(v) }
	kpMsg := validMsg(sampleMessages()["key package"])

	tests := []struct {
		name string
		in   []byte
		v    wireCodec
		want string // in the error
	}{
		{"empty", nil, new(MLSMessage), "need 2 bytes"},
		{"version 0", append([]byte{0, 0}, kpMsg[2:]...), new(MLSMessage), "protocol version 0"},
		{"version 2", append([]byte{0, 2}, kpMsg[2:]...), new(MLSMessage), "protocol version 2"},
		{"wire format 0", append([]byte{0, 1, 0, 0}, kpMsg[4:]...), new(MLSMessage), "wire format 0"},
		{"wire format 6", append([]byte{0, 1, 0, 6}, kpMsg[4:]...), new(MLSMessage), "wire format 6"},
		{"wire format 0xffff", append([]byte{0, 1, 0xff, 0xff}, kpMsg[4:]...), new(MLSMessage), "wire format 65535"},
		{"sender type 0", public(content([]byte{0}, []byte{1, 0})), new(MLSMessage), "sender type 0"},
		{"sender type 5", public(content([]byte{5}, []byte{1, 0})), new(MLSMessage), "sender type 5"},
		{"content type 0", public(content(member, []byte{0, 0})), new(MLSMessage), "content type 0"},
		{"content type 4", public(content(member, []byte{4, 0})), new(MLSMessage), "content type 4"},
		{"member without membership tag", public(append(content(member, []byte{1, 0}), 0)), new(MLSMessage), "need a varint"},
		{"commit without confirmation tag", public(append(content([]byte{4}, []byte{3, 0, 0}), 0)), new(MLSMessage), "need a varint"},
		{"private message content type 0", private(0), new(MLSMessage), "content type 0"},
		{"private message content type 4", private(4), new(MLSMessage), "content type 4"},
		{"leaf node source 0", leafWithSource(0), new(LeafNode), "leaf node source 0"},
		{"leaf node source 4", leafWithSource(4), new(LeafNode), "leaf node source 4"},
		{"credential type 0", []byte{0, 0, 0}, new(Credential), "credential type 0"},
		{"x509 certificate overruns", []byte{0, 2, 2, 5, 0}, new(Credential), "vector of 5 bytes"},
		{"capabilities odd vector", leafWithCapabilities([]byte{3, 0, 1, 0, 0, 0, 0, 0}), new(LeafNode), "need 2 bytes, have 1"},
		{"proposal type 0", []byte{0, 0}, new(proposalCodec), "proposal type 0"},
		{"proposal-or-ref type 0", []byte{1, 0, 0}, new(Commit), "proposal-or-reference type 0"},
		{"proposal-or-ref type 3", []byte{1, 3, 0}, new(Commit), "proposal-or-reference type 3"},
		{"commit path presence 2", []byte{0, 2}, new(Commit), "boolean byte 2"},
		{"psk type 0", []byte{0, 4, 0, 0}, new(proposalCodec), "PSK type 0"},
		{"psk type 3", []byte{0, 4, 3, 0}, new(proposalCodec), "PSK type 3"},
		{"resumption usage 0", []byte{0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, new(proposalCodec), "resumption PSK usage 0"},
		{"resumption usage 4", []byte{0, 4, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, new(proposalCodec), "resumption PSK usage 4"},
		{"repeated extension", []byte{0, 7, 6, 0, 1, 0, 0, 1, 0}, new(proposalCodec), "extension type 1 repeated"},
		{"non-minimal varint", []byte{0, 6, 0x40, 0x01, 0}, new(proposalCodec), "shortest form"},
		{"varint prefix 11", []byte{0, 6, 0xc0, 0, 0, 0, 0, 0, 0, 1, 0}, new(proposalCodec), "invalid prefix"},
		{"group secrets path secret presence 2", []byte{0, 2, 0}, new(GroupSecrets), "boolean byte 2"},
		{"empty ratchet tree", tree(), new(RatchetTree), "ratchet tree is empty"},
		{"ratchet tree ending blank", tree(leafNode, []byte{0}), new(RatchetTree), "ends in a blank node"},
		{"ratchet tree of one blank", tree([]byte{0}), new(RatchetTree), "ends in a blank node"},
		{"ratchet tree presence 2", tree([]byte{2}), new(RatchetTree), "boolean byte 2"},
		{"node type 0", tree([]byte{1, 0}), new(RatchetTree), "node type 0"},
		{"node type 3", tree([]byte{1, 3}), new(RatchetTree), "node type 3"},
		{"parent at a leaf position", tree(parentNode), new(RatchetTree), "node 0 has type 2"},
		{"leaf at a parent position", tree(leafNode, leafNode), new(RatchetTree), "node 1 has type 1"},
		{"unmerged leaves not a multiple of 4", tree(leafNode, []byte{1, 2, 0, 0, 3, 0, 0, 0}), new(RatchetTree), "need 4 bytes, have 3"},
		{"sender data short", []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}, new(SenderData), "need 4 bytes, have 3"},
		{"vector longer than its container", []byte{0, 1, 0, 3, 0, 1, 0x40, 0xff}, new(MLSMessage), "vector of 255 bytes, have 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unmarshalWire(tt.in, tt.v)
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrDecode with %q", err, tt.want)
			}
		})
	}
	// The cases build on valid encodings; check the controls decode.
	for name, b := range map[string][]byte{
		"leaf node":  leafWithSource(1),
		"tree":       tree(leafNode, []byte{0}, leafNode),
		"tree pair":  tree(leafNode, parentNode),
		"public app": public(append(content(member, []byte{1, 0}), 0, 0)),
		"private":    private(1),
	} {
		v := wireCodec(new(RatchetTree))
		switch name {
		case "leaf node":
			v = new(LeafNode)
		case "public app", "private":
			v = new(MLSMessage)
		}
		if err := unmarshalWire(b, v); err != nil {
			t.Errorf("control %s: %v", name, err)
		}
	}
}

// TestDecodeMemoryBounded: decoding allocates in proportion to the input,
// however large the lengths it claims. The worst shapes are vectors of
// tiny items that decode into larger structs: a 2-byte proposal reference
// becomes a 48-byte ProposalOrRef, so the result can be some 30 times the
// input (35 times for pre-shared key IDs), and appending to a growing
// slice allocates about 5 times the final slice in all.
func TestDecodeMemoryBounded(t *testing.T) {
	const n = 1 << 20
	many := func(prefix []byte, item []byte, count int, suffix []byte) []byte {
		var w Writer
		w.Raw(prefix)
		w.Vector(func(w *Writer) {
			for range count {
				w.Raw(item)
			}
			w.Raw(suffix)
		})
		return w.Bytes()
	}
	leaf := sampleLeafNode(LeafNodeSourceKeyPackage, sampleCredentials[0])
	leafNode := append([]byte{1, 1}, marshalWire(&leaf)...)
	var allExtensionTypes []byte
	for i := range 1 << 16 {
		allExtensionTypes = append(allExtensionTypes, byte(i>>8), byte(i), 0)
	}
	tests := []struct {
		name string
		in   []byte
		v    wireCodec
	}{
		{"claims 1 GiB", []byte{0, 1, 0, 3, 0, 1, 0xbf, 0xff, 0xff, 0xff}, new(MLSMessage)},
		{"many blank nodes", many(nil, []byte{0}, n, leafNode), new(RatchetTree)},
		{"many proposal references", append(many(nil, []byte{2, 0}, n/2, nil), 0), new(Commit)},
		{"many empty path nodes", many(marshalWire(&leaf), []byte{0, 0}, n/2, nil), new(UpdatePath)},
		{"many capabilities", append(many(nil, []byte{0, 1}, n/2, nil), 0, 0), new(RequiredCapabilities)},
		{"many certificates", many([]byte{0, 2}, []byte{0}, n, nil), new(Credential)},
		{"many PSKs", many([]byte{0, 0}, []byte{1, 0, 0}, n/3, nil), new(GroupSecrets)},
		{"many external senders", many(nil, []byte{0, 0, 1, 0}, n/4, nil), new(ExternalSenders)},
		{"many parent nodes", many(nil, []byte{0, 1, 2, 0, 0, 0}, n/6, leafNode), new(RatchetTree)},
		{"every extension type", many(nil, nil, 0, allExtensionTypes), new(GroupContextExtensionsProposal)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := unmarshalWire(tt.in, tt.v)
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(tt.v)
			if wantErr := tt.name == "claims 1 GiB"; (err != nil) != wantErr {
				t.Fatalf("decode: %v", err)
			}
			in := uint64(len(tt.in))
			t.Logf("live %.1fx, total %.1fx", float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(tt.in)), float64(after.TotalAlloc-before.TotalAlloc)/float64(len(tt.in)))
			if live := int64(after.HeapAlloc) - int64(before.HeapAlloc); live > int64(48*in+1<<16) {
				t.Errorf("decoding %d bytes left %d bytes of structures", in, live)
			}
			if total := after.TotalAlloc - before.TotalAlloc; total > 256*in+1<<16 {
				t.Errorf("decoding %d bytes allocated %d bytes in all", in, total)
			}
		})
	}
}
