package mls

// WireFormat names the kind of an MLSMessage (RFC 9420, section 6, and the
// IANA "MLS Wire Formats" registry).
type WireFormat uint16

// The wire formats of RFC 9420.
const (
	WireFormatPublicMessage  WireFormat = 0x0001
	WireFormatPrivateMessage WireFormat = 0x0002
	WireFormatWelcome        WireFormat = 0x0003
	WireFormatGroupInfo      WireFormat = 0x0004
	WireFormatKeyPackage     WireFormat = 0x0005
)

// ContentType says what a message carries.
type ContentType uint8

// The content types.
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func (c ContentType) valid() bool { return c >= ContentApplication && c <= ContentCommit }

// SenderType says who sent a message.
type SenderType uint8

// The sender types.
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// Sender identifies a message's sender (RFC 9420, section 6): Leaf for a
// member, ExternalIndex (into the external_senders extension) for an
// external sender, nothing for a new member.
type Sender struct {
	Type          SenderType
	Leaf          LeafIndex
	ExternalIndex uint32
}

func (s *Sender) encode(w *Writer) {
	w.U8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		w.U32(uint32(s.Leaf))
	case SenderExternal:
		w.U32(s.ExternalIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		badUnion("sender type", s.Type)
	}
}

func (s *Sender) decode(r *Reader) {
	s.Type = SenderType(r.U8())
	switch s.Type {
	case SenderMember:
		s.Leaf = LeafIndex(r.U32())
	case SenderExternal:
		s.ExternalIndex = r.U32()
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		r.Fail("sender type %d", s.Type)
	}
}

// encodeContent writes the select (content_type) of FramedContent and
// PrivateMessageContent.
func encodeContent(w *Writer, t ContentType, app []byte, p Proposal, c *Commit) {
	switch {
	case t == ContentApplication:
		w.Opaque(app)
	case t == ContentProposal && p != nil:
		encodeProposal(w, p)
	case t == ContentCommit && c != nil:
		c.encode(w)
	default:
		badUnion("content type", t)
	}
}

// decodeContent reads the select (content_type) of FramedContent and
// PrivateMessageContent.
func decodeContent(r *Reader, t ContentType) (app []byte, p Proposal, c *Commit) {
	switch t {
	case ContentApplication:
		app = r.Opaque()
	case ContentProposal:
		p = decodeProposal(r)
	case ContentCommit:
		c = new(Commit)
		c.decode(r)
	default:
		r.Fail("content type %d", t)
	}
	return app, p, c
}

// FramedContent is a message's content with its group, epoch and sender
// (RFC 9420, section 6). ContentType says which of ApplicationData,
// Proposal and Commit is set.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          Proposal
	Commit            *Commit
}

func (f *FramedContent) encode(w *Writer) {
	w.Opaque(f.GroupID)
	w.U64(f.Epoch)
	f.Sender.encode(w)
	w.Opaque(f.AuthenticatedData)
	w.U8(uint8(f.ContentType))
	encodeContent(w, f.ContentType, f.ApplicationData, f.Proposal, f.Commit)
}

func (f *FramedContent) decode(r *Reader) {
	f.GroupID = r.Opaque()
	f.Epoch = r.U64()
	f.Sender.decode(r)
	f.AuthenticatedData = r.Opaque()
	f.ContentType = ContentType(r.U8())
	f.ApplicationData, f.Proposal, f.Commit = decodeContent(r, f.ContentType)
}

// FramedContentAuthData authenticates a FramedContent (RFC 9420, section
// 6.1): its sender's signature and, for a commit only, the confirmation
// tag. Its encoding depends on the content type, so it is decoded with
// decodeFor.
type FramedContentAuthData struct {
	// Signature is SignWithLabel(., "FramedContentTBS", FramedContentTBS).
	Signature []byte
	// ConfirmationTag is set for commits only.
	ConfirmationTag []byte
}

func (a *FramedContentAuthData) encodeFor(w *Writer, t ContentType) {
	w.Opaque(a.Signature)
	if t == ContentCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) decodeFor(r *Reader, t ContentType) {
	a.Signature = r.Opaque()
	if t == ContentCommit {
		a.ConfirmationTag = r.Opaque()
	}
}

// AuthenticatedContent is a message as signed, before or after the
// protection of a PublicMessage or PrivateMessage (RFC 9420, section 6).
// A ProposalRef hashes its encoding. WireFormat is kept as a number: only
// mls_public_message and mls_private_message make sense here, which the
// message protection layer decides.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) encode(w *Writer) {
	w.U16(uint16(a.WireFormat))
	a.Content.encode(w)
	a.Auth.encodeFor(w, a.Content.ContentType)
}

func (a *AuthenticatedContent) decode(r *Reader) {
	a.WireFormat = WireFormat(r.U16())
	a.Content.decode(r)
	a.Auth.decodeFor(r, a.Content.ContentType)
}

// encodeFramedContentTBS writes FramedContentTBS, what the content
// signature covers (RFC 9420, section 6.1). ctx is the group context of
// the message's epoch; it is covered for member and new_member_commit
// senders, and must be non-nil for them.
func encodeFramedContentTBS(w *Writer, wf WireFormat, f *FramedContent, ctx *GroupContext) {
	w.U16(uint16(MLS10))
	w.U16(uint16(wf))
	f.encode(w)
	switch f.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		if ctx == nil {
			panic("mls: FramedContentTBS of a member or new-member commit needs the group context")
		}
		ctx.encode(w)
	}
}

// tbs returns the FramedContentTBS encoding the signature covers; ctx is
// as for encodeFramedContentTBS.
func (a *AuthenticatedContent) tbs(ctx *GroupContext) []byte {
	var w Writer
	encodeFramedContentTBS(&w, a.WireFormat, &a.Content, ctx)
	return w.Bytes()
}

// tbm returns the AuthenticatedContentTBM encoding a PublicMessage's
// membership tag covers (RFC 9420, section 6.2).
func (a *AuthenticatedContent) tbm(ctx *GroupContext) []byte {
	var w Writer
	encodeFramedContentTBS(&w, a.WireFormat, &a.Content, ctx)
	a.Auth.encodeFor(&w, a.Content.ContentType)
	return w.Bytes()
}

// PublicMessage is a signed, unencrypted message (RFC 9420, section 6.2).
// MembershipTag is present exactly when the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

func (p *PublicMessage) encode(w *Writer) {
	p.Content.encode(w)
	p.Auth.encodeFor(w, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		w.Opaque(p.MembershipTag)
	}
}

func (p *PublicMessage) decode(r *Reader) {
	p.Content.decode(r)
	p.Auth.decodeFor(r, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		p.MembershipTag = r.Opaque()
	}
}

// authenticatedContent returns the message's AuthenticatedContent, which
// shares its fields.
func (p *PublicMessage) authenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: p.Content, Auth: p.Auth}
}

// PrivateMessage is a signed and encrypted message (RFC 9420, section 6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (p *PrivateMessage) encode(w *Writer) {
	w.Opaque(p.GroupID)
	w.U64(p.Epoch)
	w.U8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	w.Opaque(p.EncryptedSenderData)
	w.Opaque(p.Ciphertext)
}

// decode refuses an undefined content type even though nothing here
// depends on it: the plaintext cannot be decoded without it.
func (p *PrivateMessage) decode(r *Reader) {
	p.GroupID = r.Opaque()
	p.Epoch = r.U64()
	p.ContentType = ContentType(r.U8())
	if !p.ContentType.valid() {
		r.Fail("content type %d", p.ContentType)
	}
	p.AuthenticatedData = r.Opaque()
	p.EncryptedSenderData = r.Opaque()
	p.Ciphertext = r.Opaque()
}

// PrivateMessageContent is the plaintext of PrivateMessage.Ciphertext (RFC
// 9420, section 6.3.1). Its content type is the PrivateMessage's, so it is
// encoded and decoded with encodeFor and decodeFor. Padding counts the
// zero bytes after the auth data.
type PrivateMessageContent struct {
	ApplicationData []byte
	Proposal        Proposal
	Commit          *Commit
	Auth            FramedContentAuthData
	Padding         int
}

func (p *PrivateMessageContent) encodeFor(w *Writer, t ContentType) {
	encodeContent(w, t, p.ApplicationData, p.Proposal, p.Commit)
	p.Auth.encodeFor(w, t)
	w.Raw(make([]byte, p.Padding))
}

// decodeFor reads the whole plaintext: the padding is what follows the
// auth data, and a non-zero byte in it makes the message malformed.
func (p *PrivateMessageContent) decodeFor(r *Reader, t ContentType) {
	p.ApplicationData, p.Proposal, p.Commit = decodeContent(r, t)
	p.Auth.decodeFor(r, t)
	pad := r.Raw(r.Len())
	if r.Err() != nil {
		return
	}
	for _, c := range pad {
		if c != 0 {
			r.Fail("non-zero padding")
			return
		}
	}
	p.Padding = len(pad)
}

// SenderData is the plaintext of PrivateMessage.EncryptedSenderData (RFC
// 9420, section 6.3.2).
type SenderData struct {
	Leaf       LeafIndex
	Generation uint32
	ReuseGuard [4]byte
}

func (s *SenderData) encode(w *Writer) {
	w.U32(uint32(s.Leaf))
	w.U32(s.Generation)
	w.Raw(s.ReuseGuard[:])
}

func (s *SenderData) decode(r *Reader) {
	s.Leaf = LeafIndex(r.U32())
	s.Generation = r.U32()
	copy(s.ReuseGuard[:], r.Raw(4))
}

// senderDataAAD returns SenderDataAAD, the additional data of the sender
// data encryption (RFC 9420, section 6.3.2).
func (p *PrivateMessage) senderDataAAD() []byte {
	var w Writer
	w.Opaque(p.GroupID)
	w.U64(p.Epoch)
	w.U8(uint8(p.ContentType))
	return w.Bytes()
}

// contentAAD returns PrivateContentAAD, the additional data of the content
// encryption (RFC 9420, section 6.3.1).
func (p *PrivateMessage) contentAAD() []byte {
	var w Writer
	w.Opaque(p.GroupID)
	w.U64(p.Epoch)
	w.U8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	return w.Bytes()
}

// MLSMessage is the envelope of everything MLS sends (RFC 9420, section
// 6): WireFormat says which one of the pointers is set.
type MLSMessage struct {
	// Version is always MLS10: decoding refuses others, since another
	// version's body need not look like this one's.
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

func (m *MLSMessage) encode(w *Writer) {
	w.U16(uint16(m.Version))
	w.U16(uint16(m.WireFormat))
	switch {
	case m.WireFormat == WireFormatPublicMessage && m.PublicMessage != nil:
		m.PublicMessage.encode(w)
	case m.WireFormat == WireFormatPrivateMessage && m.PrivateMessage != nil:
		m.PrivateMessage.encode(w)
	case m.WireFormat == WireFormatWelcome && m.Welcome != nil:
		m.Welcome.encode(w)
	case m.WireFormat == WireFormatGroupInfo && m.GroupInfo != nil:
		m.GroupInfo.encode(w)
	case m.WireFormat == WireFormatKeyPackage && m.KeyPackage != nil:
		m.KeyPackage.encode(w)
	default:
		badUnion("wire format", m.WireFormat)
	}
}

func (m *MLSMessage) decode(r *Reader) {
	m.Version = ProtocolVersion(r.U16())
	if r.Err() == nil && m.Version != MLS10 {
		r.Fail("protocol version %d", m.Version)
		return
	}
	m.WireFormat = WireFormat(r.U16())
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.decode(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.decode(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.decode(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.decode(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.decode(r)
	default:
		r.Fail("wire format %d", m.WireFormat)
	}
}

// Marshal returns the encoded message.
func (m *MLSMessage) Marshal() []byte { return marshalWire(m) }

// UnmarshalMLSMessage decodes an MLSMessage. It checks the encoding only,
// strictly: bytes left over, a non-canonical length, an undefined
// discriminator or a version other than MLS 1.0 are errors wrapping
// ErrDecode. Authenticating the message is the caller's next step.
func UnmarshalMLSMessage(b []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := unmarshalCopy(b, m); err != nil {
		return nil, err
	}
	return m, nil
}
