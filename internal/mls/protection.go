package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Message protection (RFC 9420, section 6): how a FramedContent is signed,
// then sent either as a PublicMessage (signed and, from a member, MACed
// with the epoch's membership_key) or as a PrivateMessage (signed, then
// encrypted with a key of the sender's ratchet in the secret tree).
//
// A sender calls SignContent, sets the confirmation tag if the content is
// a commit (it depends on the signature, through the confirmed transcript
// hash), then ProtectPublic or ProtectPrivate. A receiver calls OpenPublic
// or OpenPrivate with the state of the epoch the message names, and gets
// back the verified AuthenticatedContent, the input of the transcript hash
// and of proposal references.
//
// The group state machine owns the ratchet tree; these functions learn a
// sender's signature key from it through a SignatureKeyFunc.

// Errors of message protection. Each is wrapped with detail; test with
// errors.Is. Failures of the primitives wrap ErrDecrypt, ErrBadSignature
// and ErrBadMAC; a malformed plaintext (non-zero padding among others)
// wraps ErrDecode; a replayed PrivateMessage wraps ErrKeyConsumed, and one
// outside the out-of-order window ErrGenerationTooOld or
// ErrGenerationTooFarAhead.
var (
	// ErrWrongGroup: the message is for another group than the state it
	// was opened with.
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrWrongEpoch: the message is for another epoch than the state it
	// was opened with.
	ErrWrongEpoch = errors.New("mls: message for another epoch")
	// ErrUnexpectedContent: the content type is not allowed for the sender
	// type or the wire format: application data in a PublicMessage, a
	// commit from an external sender, a PrivateMessage from a non-member,
	// a membership tag from a non-member …
	ErrUnexpectedContent = errors.New("mls: content not allowed for this sender or wire format")
	// ErrUnknownSender: the sender is not a member (a leaf outside the
	// tree). A SignatureKeyFunc should wrap it for a blank leaf.
	ErrUnknownSender = errors.New("mls: unknown sender")
)

// SignatureKeyFunc returns the signature public key of the sender of
// content, as the group knows it: a member's from its leaf in the ratchet
// tree, an external sender's from the external_senders extension, a new
// member's from the content itself (the KeyPackage of an Add, the leaf
// node of a commit's path). It returns an error if the sender may not
// send (a blank leaf, say), wrapping ErrUnknownSender where that fits.
// It is called before the signature is checked, so nothing in content is
// authenticated yet: a new member's key is taken from it because that
// signature is what proves the content is the new member's.
type SignatureKeyFunc func(content *FramedContent) (signatureKey []byte, err error)

// checkFraming checks that content may be sent in wire format wf by its
// sender (RFC 9420, sections 6, 6.2 and 12.1.8): application data only by
// members and only encrypted, proposals by anyone (by a new member only an
// Add), commits by members and new members, and PrivateMessages only by
// members. It also checks that the content type's body is there, so that
// encoding the content cannot panic.
func checkFraming(wf WireFormat, c *FramedContent) error {
	switch wf {
	case WireFormatPublicMessage, WireFormatPrivateMessage:
	default:
		return fmt.Errorf("%w: wire format %d carries no FramedContent", ErrUnexpectedContent, wf)
	}
	switch {
	case c.ContentType == ContentProposal && c.Proposal != nil:
	case c.ContentType == ContentCommit && c.Commit != nil:
	case c.ContentType == ContentApplication:
	default:
		return fmt.Errorf("%w: content type %d without its body", ErrUnexpectedContent, c.ContentType)
	}
	public := wf == WireFormatPublicMessage
	ok := false
	switch c.Sender.Type {
	case SenderMember:
		ok = c.ContentType != ContentApplication || !public
	case SenderExternal:
		ok = public && c.ContentType == ContentProposal
	case SenderNewMemberProposal:
		ok = public && c.ContentType == ContentProposal && c.Proposal.Type() == ProposalAdd
	case SenderNewMemberCommit:
		ok = public && c.ContentType == ContentCommit
	default:
		return fmt.Errorf("%w: sender type %d", ErrUnexpectedContent, c.Sender.Type)
	}
	if !ok {
		return fmt.Errorf("%w: content type %d from sender type %d in wire format %d", ErrUnexpectedContent, c.ContentType, c.Sender.Type, wf)
	}
	return nil
}

// checkSender checks that a sender can be encoded.
func checkSender(s *Sender) error {
	if s.Type < SenderMember || s.Type > SenderNewMemberCommit {
		return fmt.Errorf("%w: sender type %d", ErrUnexpectedContent, s.Type)
	}
	return nil
}

// needsContext reports whether the FramedContentTBS of a sender covers the
// GroupContext.
func needsContext(s *Sender) bool {
	return s.Type == SenderMember || s.Type == SenderNewMemberCommit
}

// checkContext checks ctx against the suite and, if given, the content's
// group and epoch.
func (s *Suite) checkContext(ctx *GroupContext, c *FramedContent) error {
	if ctx == nil {
		if needsContext(&c.Sender) {
			return errors.New("mls: a member's or new member's message needs the GroupContext")
		}
		return nil
	}
	if ctx.CipherSuite != s.id {
		return fmt.Errorf("mls: GroupContext of cipher suite %#04x used with suite %#04x", uint16(ctx.CipherSuite), uint16(s.id))
	}
	if !bytes.Equal(c.GroupID, ctx.GroupID) {
		return ErrWrongGroup
	}
	if c.Epoch != ctx.Epoch {
		return fmt.Errorf("%w: epoch %d, group is at %d", ErrWrongEpoch, c.Epoch, ctx.Epoch)
	}
	return nil
}

// SignContent signs content, to be sent in wire format wf, with the
// sender's signature key: SignWithLabel(., "FramedContentTBS",
// FramedContentTBS) (RFC 9420, section 6.1). ctx is the GroupContext of
// the content's epoch; the signature covers it for a member or new-member
// commit sender, and may be nil only for the others. A commit's
// confirmation tag is for the caller to set once the signature is made.
func (s *Suite) SignContent(wf WireFormat, content *FramedContent, ctx *GroupContext, signer SignaturePrivateKey) (*AuthenticatedContent, error) {
	if err := checkFraming(wf, content); err != nil {
		return nil, fmt.Errorf("mls: sign content: %w", err)
	}
	if err := s.checkContext(ctx, content); err != nil {
		return nil, fmt.Errorf("mls: sign content: %w", err)
	}
	ac := &AuthenticatedContent{WireFormat: wf, Content: *content}
	sig, err := s.SignWithLabel(signer, "FramedContentTBS", ac.tbs(ctx))
	if err != nil {
		return nil, err
	}
	ac.Auth.Signature = sig
	return ac, nil
}

// ProtectPublic frames ac, signed for WireFormatPublicMessage, as a
// PublicMessage (RFC 9420, section 6.2). For a member sender it adds the
// membership tag, MAC(membershipKey, AuthenticatedContentTBM), with ctx
// the GroupContext of the content's epoch; other senders have none.
// Application data cannot be sent as a PublicMessage.
func (s *Suite) ProtectPublic(ac *AuthenticatedContent, ctx *GroupContext, membershipKey []byte) (*PublicMessage, error) {
	if ac.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("mls: protect public: %w: content signed for wire format %d", ErrUnexpectedContent, ac.WireFormat)
	}
	if err := checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, fmt.Errorf("mls: protect public: %w", err)
	}
	if err := s.checkContext(ctx, &ac.Content); err != nil {
		return nil, fmt.Errorf("mls: protect public: %w", err)
	}
	if ac.Content.ContentType == ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, errors.New("mls: protect public: commit without a confirmation tag")
	}
	m := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderMember {
		if len(membershipKey) != s.nh {
			return nil, fmt.Errorf("mls: protect public: membership_key of %d bytes, want %d", len(membershipKey), s.nh)
		}
		m.MembershipTag = s.MembershipTag(membershipKey, ac.tbm(ctx))
	}
	return m, nil
}

// OpenPublic authenticates a PublicMessage received in the epoch of ctx
// (RFC 9420, section 6.2): it checks the group and epoch (ErrWrongGroup,
// ErrWrongEpoch), that the sender may send this content as a
// PublicMessage (ErrUnexpectedContent), a member's membership tag under
// membershipKey (ErrBadMAC) and the signature under the key signatureKey
// returns (ErrBadSignature). It returns the authenticated content, which
// aliases msg. What the content asks for (a proposal's validity, a
// commit's confirmation tag) is for the group to check.
func (s *Suite) OpenPublic(msg *PublicMessage, ctx *GroupContext, membershipKey []byte, signatureKey SignatureKeyFunc) (*AuthenticatedContent, error) {
	return s.openPublic(msg, ctx, membershipKey, signatureKey, true)
}

// openPublic is OpenPublic; without checkTag it does not check a member's
// membership tag, which the delivery service, holding no membership_key,
// cannot (PublicGroup).
func (s *Suite) openPublic(msg *PublicMessage, ctx *GroupContext, membershipKey []byte, signatureKey SignatureKeyFunc, checkTag bool) (*AuthenticatedContent, error) {
	if ctx == nil {
		return nil, errors.New("mls: open public message: no GroupContext")
	}
	ac := msg.authenticatedContent()
	if err := s.checkContext(ctx, &ac.Content); err != nil {
		return nil, fmt.Errorf("mls: open public message: %w", err)
	}
	if err := checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, fmt.Errorf("mls: open public message: %w", err)
	}
	switch {
	case ac.Content.Sender.Type == SenderMember:
		if !checkTag {
			break
		}
		if err := s.VerifyMembershipTag(membershipKey, ac.tbm(ctx), msg.MembershipTag); err != nil {
			return nil, fmt.Errorf("mls: open public message: %w", err)
		}
	case msg.MembershipTag != nil:
		return nil, fmt.Errorf("mls: open public message: %w: membership tag from a non-member", ErrUnexpectedContent)
	}
	if err := s.verifySender(ac, ctx, signatureKey); err != nil {
		return nil, fmt.Errorf("mls: open public message: %w", err)
	}
	return ac, nil
}

// verifySender checks ac's signature with the key signatureKey gives.
func (s *Suite) verifySender(ac *AuthenticatedContent, ctx *GroupContext, signatureKey SignatureKeyFunc) error {
	if signatureKey == nil {
		return errors.New("mls: no SignatureKeyFunc")
	}
	pub, err := signatureKey(&ac.Content)
	if err != nil {
		return fmt.Errorf("sender's signature key: %w", err)
	}
	return s.VerifyWithLabel(pub, "FramedContentTBS", ac.tbs(ctx), ac.Auth.Signature)
}

// ratchetFor returns the secret-tree ratchet that protects content type t:
// the handshake ratchet for proposals and commits, the application ratchet
// for application data (RFC 9420, section 9).
func ratchetFor(t ContentType) RatchetType {
	if t == ContentApplication {
		return ApplicationRatchet
	}
	return HandshakeRatchet
}

// reuseGuardLen is the size of a PrivateMessage's reuse guard.
const reuseGuardLen = 4

// aeadOverhead is how much longer than the plaintext an AEAD ciphertext
// is: the tag of AES-GCM, every implemented suite's AEAD.
const aeadOverhead = 16

// guardNonce returns nonce with the reuse guard XORed into its first
// bytes (RFC 9420, section 6.3.1).
func guardNonce(nonce []byte, guard [reuseGuardLen]byte) []byte {
	out := bytes.Clone(nonce)
	for i, g := range guard {
		out[i] ^= g
	}
	return out
}

// ProtectPrivate encrypts ac, signed by a member for
// WireFormatPrivateMessage (and, if a commit, with its confirmation tag),
// as a PrivateMessage (RFC 9420, section 6.3). It takes the next key of
// the sender's ratchet in tree (handshake or application, by content
// type) and erases it once used, draws the reuse guard from rand (nil
// means crypto/rand), pads the plaintext with zeros to a multiple of
// padTo bytes (0 or 1: no padding), so that lengths reveal only a bucket,
// and encrypts the sender data with a key and nonce from
// senderDataSecret and the start of the ciphertext.
func (s *Suite) ProtectPrivate(ac *AuthenticatedContent, tree *SecretTree, senderDataSecret []byte, padTo int, rand io.Reader) (*PrivateMessage, error) {
	if ac.WireFormat != WireFormatPrivateMessage {
		return nil, fmt.Errorf("mls: protect private: %w: content signed for wire format %d", ErrUnexpectedContent, ac.WireFormat)
	}
	c := &ac.Content
	if err := checkFraming(ac.WireFormat, c); err != nil {
		return nil, fmt.Errorf("mls: protect private: %w", err)
	}
	if c.ContentType == ContentCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, errors.New("mls: protect private: commit without a confirmation tag")
	}
	if padTo < 0 {
		return nil, fmt.Errorf("mls: protect private: padding to a multiple of %d bytes", padTo)
	}
	if tree == nil || tree.suite.id != s.id {
		return nil, errors.New("mls: protect private: no secret tree of this suite")
	}
	if len(senderDataSecret) != s.nh {
		return nil, fmt.Errorf("mls: protect private: sender_data_secret of %d bytes, want %d", len(senderDataSecret), s.nh)
	}
	if uint32(c.Sender.Leaf) >= tree.Leaves() {
		return nil, fmt.Errorf("mls: protect private: %w: leaf %d of %d", ErrUnknownSender, c.Sender.Leaf, tree.Leaves())
	}
	g, err := readRandom(rand, reuseGuardLen)
	if err != nil {
		return nil, err
	}
	sd := SenderData{Leaf: c.Sender.Leaf, ReuseGuard: [reuseGuardLen]byte(g)}

	var w Writer
	pmc := PrivateMessageContent{ApplicationData: c.ApplicationData, Proposal: c.Proposal, Commit: c.Commit, Auth: ac.Auth}
	pmc.encodeFor(&w, c.ContentType)
	if padTo > 1 {
		pad := (padTo - len(w.Bytes())%padTo) % padTo
		if len(w.Bytes())+pad > MaxVarint-aeadOverhead {
			clear(w.Bytes())
			return nil, fmt.Errorf("mls: protect private: plaintext of %d bytes padded to a multiple of %d does not fit a message", len(w.Bytes()), padTo)
		}
		w.Raw(make([]byte, pad))
	}
	plaintext := w.Bytes()
	defer clear(plaintext)

	k, err := tree.Next(uint32(c.Sender.Leaf), ratchetFor(c.ContentType))
	if err != nil {
		return nil, fmt.Errorf("mls: protect private: %w", err)
	}
	defer k.Erase()
	sd.Generation = k.Generation
	m := &PrivateMessage{
		GroupID:           c.GroupID,
		Epoch:             c.Epoch,
		ContentType:       c.ContentType,
		AuthenticatedData: c.AuthenticatedData,
	}
	nonce := guardNonce(k.Nonce(), sd.ReuseGuard)
	defer clear(nonce)
	if m.Ciphertext, err = s.AEADSeal(k.Key(), nonce, m.contentAAD(), plaintext); err != nil {
		return nil, fmt.Errorf("mls: protect private: %w", err)
	}
	sdKey, sdNonce, err := s.SenderDataKeyNonce(senderDataSecret, m.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(sdKey)
	defer clear(sdNonce)
	if m.EncryptedSenderData, err = s.AEADSeal(sdKey, sdNonce, m.senderDataAAD(), marshalWire(&sd)); err != nil {
		return nil, fmt.Errorf("mls: protect private: sender data: %w", err)
	}
	return m, nil
}

// OpenPrivate decrypts and authenticates a PrivateMessage received in the
// epoch of ctx (RFC 9420, section 6.3). It checks the group and epoch
// (ErrWrongGroup, ErrWrongEpoch); decrypts the sender data with
// senderDataSecret (ErrDecrypt; ErrUnknownSender for a leaf outside the
// tree); takes the key of the sender's generation from tree, which keeps
// keys of skipped generations for late messages (ErrKeyConsumed for a
// replay, ErrGenerationTooOld, ErrGenerationTooFarAhead); decrypts the
// content (ErrDecrypt; ErrDecode for a malformed plaintext or non-zero
// padding) and checks the signature under the key signatureKey returns
// (ErrBadSignature).
//
// The key is erased only once the message is authenticated. A message
// that fails gives its key back to the tree, so that a forgery naming
// another member's generation (any member can encrypt sender data, and
// derive every leaf's keys) does not make the genuine message
// undecryptable. Stepping a ratchet forward to a forged generation still
// costs the work and may push old skipped keys out of the window.
//
// The result does not alias msg.
func (s *Suite) OpenPrivate(msg *PrivateMessage, ctx *GroupContext, tree *SecretTree, senderDataSecret []byte, signatureKey SignatureKeyFunc) (*AuthenticatedContent, error) {
	if ctx == nil {
		return nil, errors.New("mls: open private message: no GroupContext")
	}
	if err := s.checkContext(ctx, &FramedContent{GroupID: msg.GroupID, Epoch: msg.Epoch}); err != nil {
		return nil, fmt.Errorf("mls: open private message: %w", err)
	}
	ac, k, err := s.decryptPrivate(msg, tree, senderDataSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: open private message: %w", err)
	}
	if err := s.verifySender(ac, ctx, signatureKey); err != nil {
		tree.putBack(uint32(ac.Content.Sender.Leaf), ratchetFor(ac.Content.ContentType), k)
		return nil, fmt.Errorf("mls: open private message from leaf %d: %w", ac.Content.Sender.Leaf, err)
	}
	k.Erase()
	return ac, nil
}

// decryptPrivate decrypts msg's sender data and content, and returns the
// content, unauthenticated, with the key that decrypted it, which the
// caller must erase or put back.
func (s *Suite) decryptPrivate(msg *PrivateMessage, tree *SecretTree, senderDataSecret []byte) (*AuthenticatedContent, RatchetKey, error) {
	if tree == nil || tree.suite.id != s.id {
		return nil, RatchetKey{}, errors.New("no secret tree of this suite")
	}
	if len(senderDataSecret) != s.nh {
		return nil, RatchetKey{}, fmt.Errorf("sender_data_secret of %d bytes, want %d", len(senderDataSecret), s.nh)
	}
	if !msg.ContentType.valid() {
		return nil, RatchetKey{}, fmt.Errorf("%w: content type %d", ErrDecode, msg.ContentType)
	}
	sdKey, sdNonce, err := s.SenderDataKeyNonce(senderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, RatchetKey{}, err
	}
	sdPlain, err := s.AEADOpen(sdKey, sdNonce, msg.senderDataAAD(), msg.EncryptedSenderData)
	clear(sdKey)
	clear(sdNonce)
	if err != nil {
		return nil, RatchetKey{}, fmt.Errorf("sender data: %w", err)
	}
	var sd SenderData
	if err := unmarshalWire(sdPlain, &sd); err != nil {
		return nil, RatchetKey{}, fmt.Errorf("sender data: %w", err)
	}
	if uint32(sd.Leaf) >= tree.Leaves() {
		return nil, RatchetKey{}, fmt.Errorf("%w: leaf %d of %d", ErrUnknownSender, sd.Leaf, tree.Leaves())
	}
	typ := ratchetFor(msg.ContentType)
	k, err := tree.Key(uint32(sd.Leaf), typ, sd.Generation)
	if err != nil {
		return nil, RatchetKey{}, err
	}
	nonce := guardNonce(k.Nonce(), sd.ReuseGuard)
	plaintext, err := s.AEADOpen(k.Key(), nonce, msg.contentAAD(), msg.Ciphertext)
	clear(nonce)
	if err != nil {
		tree.putBack(uint32(sd.Leaf), typ, k)
		return nil, RatchetKey{}, fmt.Errorf("leaf %d generation %d: %w", sd.Leaf, sd.Generation, err)
	}
	var pmc PrivateMessageContent
	r := NewReader(plaintext)
	pmc.decodeFor(r, msg.ContentType)
	if err := r.Done(); err != nil {
		tree.putBack(uint32(sd.Leaf), typ, k)
		return nil, RatchetKey{}, fmt.Errorf("leaf %d generation %d: %w", sd.Leaf, sd.Generation, err)
	}
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           bytes.Clone(msg.GroupID),
			Epoch:             msg.Epoch,
			Sender:            Sender{Type: SenderMember, Leaf: sd.Leaf},
			AuthenticatedData: bytes.Clone(msg.AuthenticatedData),
			ContentType:       msg.ContentType,
			ApplicationData:   pmc.ApplicationData,
			Proposal:          pmc.Proposal,
			Commit:            pmc.Commit,
		},
		Auth: pmc.Auth,
	}
	return ac, k, nil
}

// putBack returns k, handed out by Key but not used up, to leaf's ratchet
// typ, so that Key gives it again. A key the ratchet could not have kept
// (outside the out-of-order window) is erased instead.
func (t *SecretTree) putBack(leaf uint32, typ RatchetType, k RatchetKey) {
	r, err := t.ratchet(leaf, typ)
	g := uint64(k.Generation)
	if err != nil || g >= r.next || r.next-1-g > OutOfOrderWindow {
		k.Erase()
		return
	}
	if old, ok := r.skipped[k.Generation]; ok {
		old.Erase()
	}
	if r.skipped == nil {
		r.skipped = map[uint32]RatchetKey{}
	}
	r.skipped[k.Generation] = k
}

// Marshal returns the encoded AuthenticatedContent, the input of a
// ProposalRef (MakeProposalRef).
func (a *AuthenticatedContent) Marshal() []byte { return marshalWire(a) }
