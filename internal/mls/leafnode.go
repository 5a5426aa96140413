package mls

// Capabilities lists what a client supports (RFC 9420, section 7.2). The
// lists may hold values this package does not know, GREASE values among
// them (section 13.5); they are kept as sent, and whoever compares
// capabilities ignores what it does not support.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func (c *Capabilities) encode(w *Writer) {
	encodeU16s(w, c.Versions)
	encodeU16s(w, c.CipherSuites)
	encodeU16s(w, c.Extensions)
	encodeU16s(w, c.Proposals)
	encodeU16s(w, c.Credentials)
}

func (c *Capabilities) decode(r *Reader) {
	c.Versions = decodeU16s[ProtocolVersion](r)
	c.CipherSuites = decodeU16s[CipherSuite](r)
	c.Extensions = decodeU16s[ExtensionType](r)
	c.Proposals = decodeU16s[ProposalType](r)
	c.Credentials = decodeU16s[CredentialType](r)
}

// Lifetime bounds when a key package's leaf node may be used, in seconds
// since the Unix epoch, both inclusive (RFC 9420, section 7.2).
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

func (l *Lifetime) encode(w *Writer) {
	w.U64(l.NotBefore)
	w.U64(l.NotAfter)
}

func (l *Lifetime) decode(r *Reader) {
	l.NotBefore = r.U64()
	l.NotAfter = r.U64()
}

// LeafNodeSource says how a leaf node came to be (RFC 9420, section 7.2),
// which decides the fields it carries and what its signature covers.
type LeafNodeSource uint8

// The leaf node sources.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// LeafNode is a member's leaf in the ratchet tree (RFC 9420, section 7.2).
type LeafNode struct {
	// EncryptionKey is an HPKEPublicKey; SignatureKey a SignaturePublicKey.
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	// Lifetime is set for the source key_package only.
	Lifetime Lifetime
	// ParentHash is set for the source commit only.
	ParentHash []byte
	Extensions []Extension
	// Signature is SignWithLabel(., "LeafNodeTBS", tbs(...)).
	Signature []byte
}

// encodeContent writes the fields the signature covers.
func (l *LeafNode) encodeContent(w *Writer) {
	w.Opaque(l.EncryptionKey)
	w.Opaque(l.SignatureKey)
	l.Credential.encode(w)
	l.Capabilities.encode(w)
	w.U8(uint8(l.Source))
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		l.Lifetime.encode(w)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		w.Opaque(l.ParentHash)
	default:
		badUnion("leaf node source", l.Source)
	}
	encodeExtensions(w, l.Extensions)
}

func (l *LeafNode) encode(w *Writer) {
	l.encodeContent(w)
	w.Opaque(l.Signature)
}

func (l *LeafNode) decode(r *Reader) {
	l.EncryptionKey = r.Opaque()
	l.SignatureKey = r.Opaque()
	l.Credential.decode(r)
	l.Capabilities.decode(r)
	l.Source = LeafNodeSource(r.U8())
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		l.Lifetime.decode(r)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		l.ParentHash = r.Opaque()
	default:
		r.Fail("leaf node source %d", l.Source)
	}
	l.Extensions = decodeExtensions(r)
	l.Signature = r.Opaque()
}

// tbs returns the LeafNodeTBS encoding the signature covers (RFC 9420,
// section 7.2). A leaf node from an update or a commit is bound to its
// group and position, which the caller passes; for one from a key package
// they are ignored.
func (l *LeafNode) tbs(groupID []byte, leaf LeafIndex) []byte {
	var w Writer
	l.encodeContent(&w)
	switch l.Source {
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
		w.Opaque(groupID)
		w.U32(uint32(leaf))
	}
	return w.Bytes()
}
