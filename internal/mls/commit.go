package mls

// HPKECiphertext is the output of EncryptWithLabel (RFC 9420, section
// 5.1.3).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) encode(w *Writer) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

func (c *HPKECiphertext) decode(r *Reader) {
	c.KEMOutput = r.Opaque()
	c.Ciphertext = r.Opaque()
}

// UpdatePathNode is one node of an UpdatePath: the node's new public key
// and its path secret encrypted to each node of the copath child's
// resolution (RFC 9420, section 7.6).
type UpdatePathNode struct {
	// EncryptionKey is an HPKEPublicKey.
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) encode(w *Writer) {
	w.Opaque(n.EncryptionKey)
	w.Vector(func(w *Writer) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].encode(w)
		}
	})
}

func (n *UpdatePathNode) decode(r *Reader) {
	n.EncryptionKey = r.Opaque()
	n.EncryptedPathSecret = []HPKECiphertext{}
	r.Items(func(r *Reader) {
		var c HPKECiphertext
		c.decode(r)
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
	})
}

// UpdatePath is the committer's new leaf and the new keys of its filtered
// direct path (RFC 9420, section 7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) encode(w *Writer) {
	p.LeafNode.encode(w)
	w.Vector(func(w *Writer) {
		for i := range p.Nodes {
			p.Nodes[i].encode(w)
		}
	})
}

func (p *UpdatePath) decode(r *Reader) {
	p.LeafNode.decode(r)
	p.Nodes = []UpdatePathNode{}
	r.Items(func(r *Reader) {
		var n UpdatePathNode
		n.decode(r)
		p.Nodes = append(p.Nodes, n)
	})
}

// ProposalOrRefType says whether a commit carries a proposal by value or
// by reference.
type ProposalOrRefType uint8

// The ProposalOrRef types.
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is a proposal a commit covers (RFC 9420, section 12.4):
// Proposal is set when Type is ProposalOrRefProposal, Reference (a
// ProposalRef, section 5.2) when it is ProposalOrRefReference.
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  Proposal
	Reference []byte
}

func (p *ProposalOrRef) encode(w *Writer) {
	w.U8(uint8(p.Type))
	switch {
	case p.Type == ProposalOrRefProposal && p.Proposal != nil:
		encodeProposal(w, p.Proposal)
	case p.Type == ProposalOrRefReference:
		w.Opaque(p.Reference)
	default:
		badUnion("proposal or reference", p.Type)
	}
}

func (p *ProposalOrRef) decode(r *Reader) {
	p.Type = ProposalOrRefType(r.U8())
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = decodeProposal(r)
	case ProposalOrRefReference:
		p.Reference = r.Opaque()
	default:
		r.Fail("proposal-or-reference type %d", p.Type)
	}
}

// Commit applies proposals and, with Path, refreshes the committer's path
// (RFC 9420, section 12.4). Path is nil when absent.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) encode(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range c.Proposals {
			c.Proposals[i].encode(w)
		}
	})
	w.Optional(c.Path != nil, func(w *Writer) { c.Path.encode(w) })
}

func (c *Commit) decode(r *Reader) {
	c.Proposals = []ProposalOrRef{}
	r.Items(func(r *Reader) {
		var p ProposalOrRef
		p.decode(r)
		c.Proposals = append(c.Proposals, p)
	})
	c.Path = nil
	r.Optional(func(r *Reader) {
		c.Path = new(UpdatePath)
		c.Path.decode(r)
	})
}
