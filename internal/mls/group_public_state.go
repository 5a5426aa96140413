package mls

import (
	"bytes"
	"errors"
	"fmt"
)

// Storing a PublicGroup, so that the delivery service can stop and
// resume, or keep its groups in a database. The encoding uses the
// package's TLS codec:
//
//	struct {
//	  opaque magic[4] = "HMLP";
//	  uint8 version = 1;
//	  CipherSuite suite;
//	  GroupContext context;
//	  RatchetTree tree;
//	  opaque interim_transcript_hash<V>;
//	  CachedProposal proposals<V>;     // ref, sender, proposal
//	  optional<ReInitProposal> reinit;
//	} PublicGroupState;
//
// It holds no secret. The decoder is strict: canonical encodings only,
// the tree hash checked against the context's, the suite against the
// context's and the tree's, and every cached proposal against the tree
// and the external_senders extension as far as that needs no clock or
// signature; errors wrap ErrInvalidState.

var publicStateMagic = []byte("HMLP")

const publicStateVersion = 1

// Marshal returns the PublicGroup's state, for UnmarshalPublicGroup.
func (p *PublicGroup) Marshal() ([]byte, error) {
	g := p.g
	var w Writer
	w.Raw(publicStateMagic)
	w.U8(publicStateVersion)
	w.U16(uint16(g.suite.id))
	g.ctx.encode(&w)
	g.tree.RatchetTree().encode(&w)
	w.Opaque(g.interim)
	w.Vector(func(w *Writer) {
		for _, q := range g.proposals {
			w.Opaque(q.ref)
			q.sender.encode(w)
			encodeProposal(w, q.proposal)
		}
	})
	w.Optional(g.reinit != nil, func(w *Writer) { g.reinit.encode(w) })
	return w.Bytes(), nil
}

// UnmarshalPublicGroup restores a PublicGroup from Marshal's output. opts
// are its options, which are not stored. The leaves are not passed to
// opts.ValidateLeaf again.
func UnmarshalPublicGroup(b []byte, opts PublicGroupOptions) (*PublicGroup, error) {
	p, err := unmarshalPublicGroup(b, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: public group: %w", ErrInvalidState, err)
	}
	return p, nil
}

func unmarshalPublicGroup(b []byte, opts PublicGroupOptions) (*PublicGroup, error) {
	if len(b) < len(publicStateMagic)+3 || !bytes.Equal(b[:len(publicStateMagic)], publicStateMagic) {
		return nil, errors.New("not a public group state")
	}
	b = b[len(publicStateMagic):]
	if b[0] != publicStateVersion {
		return nil, fmt.Errorf("state version %d, want %d", b[0], publicStateVersion)
	}
	r := NewReader(bytes.Clone(b[1:]))
	s, err := SuiteFor(CipherSuite(r.U16()))
	if err != nil {
		return nil, err
	}
	d := &stateDecoder{s: s}
	g := &Group{suite: s, opts: opts.groupOptions(), updateKeys: map[string]HPKEPrivateKey{}}
	g.ctx.decode(r)
	var rt RatchetTree
	rt.decode(r)
	g.interim = r.Opaque()
	if err := r.Err(); err != nil {
		return nil, err
	}
	if g.ctx.Version != MLS10 || g.ctx.CipherSuite != s.id {
		return nil, fmt.Errorf("group context of version %d, suite %#04x", g.ctx.Version, uint16(g.ctx.CipherSuite))
	}
	if err := checkContextExtensions(&g.ctx); err != nil {
		return nil, err
	}
	if g.tree, err = NewTree(s, rt); err != nil {
		return nil, err
	}
	if !bytes.Equal(g.tree.TreeHash(), g.ctx.TreeHash) {
		return nil, errors.New("the tree hash is not the group context's")
	}
	if len(g.interim) != s.nh {
		return nil, fmt.Errorf("interim transcript hash of %d bytes, want %d", len(g.interim), s.nh)
	}
	es, err := g.externalSenders()
	if err != nil {
		return nil, err
	}
	r.Items(func(rr *Reader) {
		var q cachedProposal
		q.ref = rr.Opaque()
		q.sender.decode(rr)
		q.proposal = decodeProposal(rr)
		if rr.Err() != nil {
			return
		}
		if err := checkCachedProposal(g, es, &q); err != nil {
			d.fail(rr, "cached proposal %d: %v", len(g.proposals), err)
			return
		}
		g.proposals = append(g.proposals, q)
	})
	r.Optional(func(rr *Reader) {
		g.reinit = new(ReInitProposal)
		g.reinit.decode(rr)
	})
	if err := r.Done(); err != nil {
		if d.err != nil {
			return nil, d.err
		}
		return nil, err
	}
	return &PublicGroup{g: g}, nil
}

// checkCachedProposal checks a stored proposal is one Process could have
// cached in the stored epoch: a reference of the hash's size, not seen
// before; a member's from a non-blank leaf, an external sender's (a
// Remove only) from a sender the extension lists; of a type a member or
// external sender may propose; a Remove of a non-blank leaf.
func checkCachedProposal(g *Group, es ExternalSenders, q *cachedProposal) error {
	if len(q.ref) != g.suite.nh {
		return fmt.Errorf("reference of %d bytes", len(q.ref))
	}
	for _, o := range g.proposals {
		if bytes.Equal(o.ref, q.ref) {
			return errors.New("reference twice")
		}
	}
	switch q.sender.Type {
	case SenderMember:
		if g.tree.Leaf(q.sender.Leaf) == nil {
			return fmt.Errorf("from blank leaf %d", q.sender.Leaf)
		}
	case SenderExternal:
		if uint64(q.sender.ExternalIndex) >= uint64(len(es)) {
			return fmt.Errorf("from external sender %d of %d", q.sender.ExternalIndex, len(es))
		}
		if _, ok := q.proposal.(*RemoveProposal); !ok {
			return fmt.Errorf("of type %#04x from an external sender", uint16(q.proposal.Type()))
		}
	default:
		return fmt.Errorf("from sender type %d", q.sender.Type)
	}
	switch pr := q.proposal.(type) {
	case *RemoveProposal:
		if g.tree.Leaf(pr.Removed) == nil {
			return fmt.Errorf("Remove of blank leaf %d", pr.Removed)
		}
	case *AddProposal, *UpdateProposal, *PreSharedKeyProposal, *ReInitProposal, *GroupContextExtensionsProposal:
	default:
		return fmt.Errorf("of type %#04x", uint16(q.proposal.Type()))
	}
	return nil
}
