package mls

import (
	"bytes"
	"fmt"
)

// Receiving messages: application data, proposals and commits, as
// PublicMessage or PrivateMessage (RFC 9420, sections 6, 12.1 and 12.4.2).

// Processed is what Process made of a message.
type Processed struct {
	// Kind is the content type: application data, a proposal or a commit.
	Kind ContentType
	// Sender is the message's sender; for an external commit, Joined is
	// the joiner's new leaf.
	Sender            Sender
	AuthenticatedData []byte

	// ApplicationData is the plaintext of an application message.
	ApplicationData []byte

	// Proposal and ProposalRef are a proposal now cached.
	Proposal    Proposal
	ProposalRef []byte

	// For a commit: the new epoch, the leaves it added (for an external
	// commit, the joiner's), removed and updated, and whether it removed
	// this member (then the group is no longer usable) or re-initialised
	// the group. OwnCommit: the message was this member's pending commit,
	// now merged.
	Epoch                   uint64
	Added, Removed, Updated []LeafIndex
	RemovedSelf             bool
	ReInit                  *ReInitProposal
	OwnCommit               bool
}

// Process handles a message of the group: it authenticates it and, for a
// proposal, validates and caches it; for a commit, validates it in full
// and moves the group to the new epoch; for application data, returns the
// plaintext. On error the group is unchanged (a PrivateMessage that fails
// to authenticate gives its key back; see OpenPrivate).
//
// Messages of another epoch are refused with ErrWrongEpoch, of another
// group with ErrWrongGroup. An Add from an external sender or a new
// member is refused with ErrExternalAdd. A commit received while this
// member's own commit is pending wins the epoch: the pending one is
// discarded. This member's own pending commit, echoed back by the
// delivery service, is merged.
func (g *Group) Process(msg *MLSMessage) (*Processed, error) {
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	if msg == nil || msg.Version != MLS10 {
		return nil, fmt.Errorf("mls: process: %w: not an MLS 1.0 message", ErrUnexpectedContent)
	}
	var ac *AuthenticatedContent
	var err error
	switch msg.WireFormat {
	case WireFormatPublicMessage:
		pm := msg.PublicMessage
		if pm == nil {
			return nil, fmt.Errorf("mls: process: %w: no PublicMessage", ErrUnexpectedContent)
		}
		if g.pending != nil && bytes.Equal(msg.Marshal(), g.pending.message) {
			fx := g.pending.result
			if err := g.MergePending(); err != nil {
				return nil, err
			}
			return &Processed{Kind: ContentCommit, Sender: pm.Content.Sender, Epoch: g.ctx.Epoch, OwnCommit: true,
				Added: fx.added, Removed: fx.removed, Updated: fx.updated, ReInit: fx.reinit}, nil
		}
		if isExternalAdd(&pm.Content) {
			return nil, fmt.Errorf("mls: process: %w", ErrExternalAdd)
		}
		ac, err = g.suite.OpenPublic(pm, &g.ctx, g.secrets.membership.bytes(), g.signatureKey(g.tree))
	case WireFormatPrivateMessage:
		if msg.PrivateMessage == nil {
			return nil, fmt.Errorf("mls: process: %w: no PrivateMessage", ErrUnexpectedContent)
		}
		ac, err = g.suite.OpenPrivate(msg.PrivateMessage, &g.ctx, g.secretTree, g.secrets.senderData.bytes(), g.signatureKey(g.tree))
	default:
		return nil, fmt.Errorf("mls: process: %w: wire format %d", ErrUnexpectedContent, msg.WireFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("mls: process: %w", err)
	}
	c := &ac.Content
	switch c.ContentType {
	case ContentApplication:
		return &Processed{Kind: ContentApplication, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData,
			ApplicationData: c.ApplicationData, Epoch: g.ctx.Epoch}, nil
	case ContentProposal:
		p, err := g.receiveProposal(ac)
		if err != nil {
			return nil, fmt.Errorf("mls: process: proposal from %s: %w", senderString(c.Sender), err)
		}
		return p, nil
	case ContentCommit:
		p, err := g.receiveCommit(ac)
		if err != nil {
			return nil, fmt.Errorf("mls: process: commit from %s: %w", senderString(c.Sender), err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("mls: process: %w: content type %d", ErrUnexpectedContent, c.ContentType)
}

// isExternalAdd reports whether c is an Add proposed by an external
// sender or a new member, which Hotline refuses before authenticating it.
func isExternalAdd(c *FramedContent) bool {
	return c.ContentType == ContentProposal && c.Proposal != nil && c.Proposal.Type() == ProposalAdd &&
		(c.Sender.Type == SenderExternal || c.Sender.Type == SenderNewMemberProposal)
}

func senderString(s Sender) string {
	switch s.Type {
	case SenderMember:
		return fmt.Sprintf("leaf %d", s.Leaf)
	case SenderExternal:
		return fmt.Sprintf("external sender %d", s.ExternalIndex)
	case SenderNewMemberCommit, SenderNewMemberProposal:
		return "a new member"
	}
	return fmt.Sprintf("sender type %d", s.Type)
}

// receiveProposal validates a proposal on its own (RFC 9420, section
// 12.1) and caches it by reference.
func (g *Group) receiveProposal(ac *AuthenticatedContent) (*Processed, error) {
	c := &ac.Content
	invalid := func(format string, args ...any) (*Processed, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidProposal}, args...)...)
	}
	ref := g.suite.MakeProposalRef(ac.Marshal())
	for _, q := range g.proposals {
		if bytes.Equal(q.ref, ref) {
			if c.Sender.Type == SenderMember && c.Sender.Leaf == g.MyLeaf() {
				// This member's own proposal, echoed by the delivery
				// service: already cached.
				return &Processed{Kind: ContentProposal, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData,
					Proposal: q.proposal, ProposalRef: bytes.Clone(ref), Epoch: g.ctx.Epoch}, nil
			}
			return invalid("received twice")
		}
	}
	if c.Sender.Type == SenderMember && c.Sender.Leaf == g.MyLeaf() {
		return invalid("from this member's leaf, but not one it sent")
	}
	if err := g.checkProposal(c.Sender, c.Proposal); err != nil {
		return nil, err
	}
	g.proposals = append(g.proposals, cachedProposal{ref: ref, sender: c.Sender, proposal: c.Proposal})
	return &Processed{Kind: ContentProposal, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData,
		Proposal: c.Proposal, ProposalRef: ref, Epoch: g.ctx.Epoch}, nil
}

// checkProposal validates a received proposal on its own against the
// current epoch (RFC 9420, section 12.1, and Hotline's rules on external
// senders): errors wrap ErrInvalidProposal or are ErrExternalAdd.
func (g *Group) checkProposal(sender Sender, proposal Proposal) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProposal}, args...)...)
	}
	switch sender.Type {
	case SenderMember:
	case SenderExternal:
		switch proposal.(type) {
		case *RemoveProposal:
		case *AddProposal:
			return ErrExternalAdd
		default:
			return invalid("external senders may propose only Remove, not type %#04x", uint16(proposal.Type()))
		}
	default:
		return ErrExternalAdd // a new member's proposal is an Add
	}
	switch p := proposal.(type) {
	case *AddProposal:
		if err := g.validateKeyPackage(&p.KeyPackage); err != nil {
			return invalid("Add: %v", err)
		}
	case *UpdateProposal:
		if err := g.tree.VerifyLeafNode(&p.LeafNode, sender.Leaf, LeafNodeSourceUpdate, &g.ctx); err != nil {
			return invalid("Update: %v", err)
		}
	case *RemoveProposal:
		if g.tree.Leaf(p.Removed) == nil {
			return invalid("Remove of blank leaf %d", p.Removed)
		}
	case *PreSharedKeyProposal:
		if err := g.checkPSKID(&p.PSK); err != nil {
			return invalid("%v", err)
		}
	case *ReInitProposal:
		if p.Version < MLS10 {
			return invalid("ReInit to version %d", p.Version)
		}
	case *GroupContextExtensionsProposal:
		ctx := GroupContext{Extensions: p.Extensions}
		if err := checkContextExtensions(&ctx); err != nil {
			return invalid("GroupContextExtensions: %v", err)
		}
	default:
		return invalid("type %#04x", uint16(proposal.Type()))
	}
	return nil
}

// receiveCommit validates a commit in full and moves the group to the
// epoch it starts (RFC 9420, section 12.4.2).
func (g *Group) receiveCommit(ac *AuthenticatedContent) (*Processed, error) {
	c := &ac.Content
	commit := c.Commit
	committer := c.Sender
	external := committer.Type == SenderNewMemberCommit
	if committer.Type == SenderMember && committer.Leaf == g.MyLeaf() {
		return nil, invalidCommit("a commit from this member's own leaf that is not its pending commit")
	}
	st, err := g.stageCommit(committer, commit, g.keys)
	if err != nil {
		return nil, err
	}
	res := &Processed{Kind: ContentCommit, Sender: committer, AuthenticatedData: c.AuthenticatedData,
		Epoch: g.ctx.Epoch + 1, Added: st.fx.added, Removed: st.fx.removed, Updated: st.fx.updated, ReInit: st.fx.reinit}
	if st.removedSelf {
		// This member cannot follow the group further: it has none of
		// the new epoch's secrets. Erase what it held.
		res.RemovedSelf = true
		g.removed = true
		g.proposals = nil
		clear(g.updateKeys)
		if g.pending != nil {
			g.pending.next.erase()
			g.pending = nil
		}
		g.secretTree.Erase()
		g.secrets.Erase()
		g.keys.Erase()
		return res, nil
	}

	var commitSecret []byte
	initSecret := g.secrets.init.bytes()
	if commit.Path != nil {
		var sender LeafIndex
		if sender, commitSecret, err = g.mergePath(st, committer, commit.Path); err != nil {
			return nil, err
		}
		defer clear(commitSecret)
		if external {
			res.Added = append(res.Added, sender)
		}
	}
	if external {
		priv, err := g.secrets.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		if initSecret, err = g.suite.ExternalInitSecret(priv, st.externalInit.KEMOutput); err != nil {
			return nil, invalidCommit("ExternalInit: %v", err)
		}
		defer clear(initSecret)
	}
	next, err := g.nextEpoch(st, ac, initSecret, commitSecret)
	if err != nil {
		return nil, err
	}
	if err := next.secrets.VerifyConfirmationTag(next.ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag); err != nil {
		next.erase()
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	g.advance(next, st.fx)
	return res, nil
}

// stageCommit resolves a received commit's proposals (by value from the
// committer, or by reference to proposals cached in the epoch), validates
// and applies them with stage, and checks the commit has a path where
// RFC 9420 requires one. keys is the receiver's private view, or nil for
// the delivery service's (PublicGroup). The path is not merged yet: see
// mergePath.
func (g *Group) stageCommit(committer Sender, commit *Commit, keys *TreePrivateKeys) (*staged, error) {
	ps := make([]stagedProposal, len(commit.Proposals))
	for i, por := range commit.Proposals {
		switch por.Type {
		case ProposalOrRefProposal:
			ps[i] = stagedProposal{sender: committer, proposal: por.Proposal}
		case ProposalOrRefReference:
			j := -1
			for k := range g.proposals {
				if bytes.Equal(g.proposals[k].ref, por.Reference) {
					j = k
					break
				}
			}
			if j < 0 {
				return nil, invalidCommit("unknown proposal reference %x", por.Reference)
			}
			cp := &g.proposals[j]
			ps[i] = stagedProposal{sender: cp.sender, proposal: cp.proposal, ref: cp.ref}
		default:
			return nil, invalidCommit("proposal-or-reference type %d", por.Type)
		}
	}
	for i := range ps {
		for j := range i {
			if ps[i].ref != nil && bytes.Equal(ps[i].ref, ps[j].ref) {
				return nil, invalidCommit("proposal reference %x twice", ps[i].ref)
			}
		}
	}
	st, err := g.stage(committer, ps, keys)
	if err != nil {
		return nil, err
	}
	if (st.pathRequired || committer.Type == SenderNewMemberCommit) && commit.Path == nil {
		return nil, invalidCommit("no path where one is required")
	}
	return st, nil
}

// mergePath merges a received commit's path into the staged tree, with the
// receiver's private keys st.keys (nil: the public part only, and no
// commit_secret): from the committer's leaf, or for an external commit
// from the leaf the joiner takes, whose signature key must be that of the
// leaf it removes if it removes one (a resync). The committer's new leaf
// passes GroupOptions.ValidateLeaf. It returns the committer's leaf in
// the new tree and the commit_secret, which the caller clears.
func (g *Group) mergePath(st *staged, committer Sender, path *UpdatePath) (LeafIndex, []byte, error) {
	prov := g.ctx
	prov.Epoch++
	prov.Extensions = st.extensions
	sender := committer.Leaf
	var commitSecret []byte
	var err error
	if committer.Type == SenderNewMemberCommit {
		if sender, commitSecret, err = st.tree.ApplyExternalUpdatePath(st.keys, path, prov); err != nil {
			return 0, nil, err
		}
		if len(st.fx.removed) == 1 {
			// A resync: the joiner replaces its own old leaf, which
			// must have the same signature key.
			old := g.tree.Leaf(st.fx.removed[0])
			if !bytes.Equal(old.SignatureKey, path.LeafNode.SignatureKey) {
				clear(commitSecret)
				return 0, nil, invalidCommit("external commit removes leaf %d, of another signature key", st.fx.removed[0])
			}
		}
	} else if commitSecret, err = st.tree.ApplyUpdatePath(st.keys, sender, path, prov, st.fx.added); err != nil {
		return 0, nil, err
	}
	if err := g.opts.validateLeaf(st.tree.Leaf(sender), sender); err != nil {
		clear(commitSecret)
		return 0, nil, err
	}
	return sender, commitSecret, nil
}
