package mls

// ProposalType names a kind of proposal (RFC 9420, section 12.1, and the
// IANA "MLS Proposal Types" registry).
type ProposalType uint16

// The proposal types of RFC 9420.
const (
	ProposalAdd                    ProposalType = 0x0001
	ProposalUpdate                 ProposalType = 0x0002
	ProposalRemove                 ProposalType = 0x0003
	ProposalPSK                    ProposalType = 0x0004
	ProposalReInit                 ProposalType = 0x0005
	ProposalExternalInit           ProposalType = 0x0006
	ProposalGroupContextExtensions ProposalType = 0x0007
)

// Proposal is a proposed change to the group (RFC 9420, section 12.1):
// one of *AddProposal, *UpdateProposal, *RemoveProposal,
// *PreSharedKeyProposal, *ReInitProposal, *ExternalInitProposal,
// *GroupContextExtensionsProposal or *CustomProposal.
type Proposal interface {
	// Type returns the proposal type.
	Type() ProposalType
	// encode and decode handle the body after the proposal type.
	encode(w *Writer)
	decode(r *Reader)
}

// encodeProposal writes a Proposal: its type, then its body.
func encodeProposal(w *Writer, p Proposal) {
	t := p.Type()
	if _, ok := p.(*CustomProposal); ok && t <= ProposalGroupContextExtensions {
		badUnion("custom proposal type", t)
	}
	w.U16(uint16(t))
	p.encode(w)
}

// decodeProposal reads a Proposal. A type RFC 9420 does not define
// becomes a *CustomProposal (see there); type 0 is reserved and refused.
func decodeProposal(r *Reader) Proposal {
	var p Proposal
	switch t := ProposalType(r.U16()); t {
	case ProposalAdd:
		p = new(AddProposal)
	case ProposalUpdate:
		p = new(UpdateProposal)
	case ProposalRemove:
		p = new(RemoveProposal)
	case ProposalPSK:
		p = new(PreSharedKeyProposal)
	case ProposalReInit:
		p = new(ReInitProposal)
	case ProposalExternalInit:
		p = new(ExternalInitProposal)
	case ProposalGroupContextExtensions:
		p = new(GroupContextExtensionsProposal)
	case 0:
		r.Fail("proposal type 0 (reserved)")
		return nil
	default:
		p = &CustomProposal{ProposalType: t}
	}
	p.decode(r)
	return p
}

// AddProposal adds a member (RFC 9420, section 12.1.1).
type AddProposal struct {
	KeyPackage KeyPackage
}

func (*AddProposal) Type() ProposalType { return ProposalAdd }
func (p *AddProposal) encode(w *Writer) { p.KeyPackage.encode(w) }
func (p *AddProposal) decode(r *Reader) { p.KeyPackage.decode(r) }

// UpdateProposal replaces the sender's leaf node (RFC 9420, section
// 12.1.2).
type UpdateProposal struct {
	LeafNode LeafNode
}

func (*UpdateProposal) Type() ProposalType { return ProposalUpdate }
func (p *UpdateProposal) encode(w *Writer) { p.LeafNode.encode(w) }
func (p *UpdateProposal) decode(r *Reader) { p.LeafNode.decode(r) }

// RemoveProposal removes the member at a leaf (RFC 9420, section 12.1.3).
type RemoveProposal struct {
	Removed LeafIndex
}

func (*RemoveProposal) Type() ProposalType { return ProposalRemove }
func (p *RemoveProposal) encode(w *Writer) { w.U32(uint32(p.Removed)) }
func (p *RemoveProposal) decode(r *Reader) { p.Removed = LeafIndex(r.U32()) }

// PreSharedKeyProposal injects a pre-shared key into the next epoch's key
// schedule (RFC 9420, section 12.1.4).
type PreSharedKeyProposal struct {
	PSK PreSharedKeyID
}

func (*PreSharedKeyProposal) Type() ProposalType { return ProposalPSK }
func (p *PreSharedKeyProposal) encode(w *Writer) { p.PSK.encode(w) }
func (p *PreSharedKeyProposal) decode(r *Reader) { p.PSK.decode(r) }

// ReInitProposal ends the group in favour of a new one with other
// parameters (RFC 9420, section 12.1.5). Version may name any version:
// the one a reinitialized group is to use.
type ReInitProposal struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  []Extension
}

func (*ReInitProposal) Type() ProposalType { return ProposalReInit }

func (p *ReInitProposal) encode(w *Writer) {
	w.Opaque(p.GroupID)
	w.U16(uint16(p.Version))
	w.U16(uint16(p.CipherSuite))
	encodeExtensions(w, p.Extensions)
}

func (p *ReInitProposal) decode(r *Reader) {
	p.GroupID = r.Opaque()
	p.Version = ProtocolVersion(r.U16())
	p.CipherSuite = CipherSuite(r.U16())
	p.Extensions = decodeExtensions(r)
}

// ExternalInitProposal carries the KEM output an external joiner derives
// the group's init secret from (RFC 9420, section 12.1.6).
type ExternalInitProposal struct {
	KEMOutput []byte
}

func (*ExternalInitProposal) Type() ProposalType { return ProposalExternalInit }
func (p *ExternalInitProposal) encode(w *Writer) { w.Opaque(p.KEMOutput) }
func (p *ExternalInitProposal) decode(r *Reader) { p.KEMOutput = r.Opaque() }

// GroupContextExtensionsProposal replaces the group context's extensions
// (RFC 9420, section 12.1.7).
type GroupContextExtensionsProposal struct {
	Extensions []Extension
}

func (*GroupContextExtensionsProposal) Type() ProposalType {
	return ProposalGroupContextExtensions
}
func (p *GroupContextExtensionsProposal) encode(w *Writer) { encodeExtensions(w, p.Extensions) }
func (p *GroupContextExtensionsProposal) decode(r *Reader) { p.Extensions = decodeExtensions(r) }

// CustomProposal is a proposal of a type RFC 9420 does not define (section
// 13.2), such as an application's own in the private-use range
// 0xF000-0xFFFF. RFC 9420 puts no length prefix around a proposal body, so
// a decoder can only delimit bodies it knows; this package reads a custom
// proposal's body as one opaque<V> vector, as OpenMLS does for its custom
// proposals. Decoding one is not accepting it: a commit may only carry
// proposal types every member supports (section 12.4), which the group
// logic checks.
type CustomProposal struct {
	ProposalType ProposalType
	Data         []byte
}

func (p *CustomProposal) Type() ProposalType { return p.ProposalType }
func (p *CustomProposal) encode(w *Writer)   { w.Opaque(p.Data) }
func (p *CustomProposal) decode(r *Reader)   { p.Data = r.Opaque() }
