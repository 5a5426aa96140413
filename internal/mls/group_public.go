package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// The delivery service's view of a group: the public part of every epoch,
// followed from the group's PublicMessage handshakes, holding no secret.
//
// A PublicGroup checks what can be checked without the epoch's secrets, as
// a member's Group does: the group and epoch of every message, its framing,
// its sender's signature, every proposal on its own, and every commit's
// proposal list (RFC 9420, section 12.2), update path (its leaf, parent
// hashes, one node per filtered direct path node, one ciphertext per
// copath resolution node) and new leaves (the application's ValidateLeaf).
// It computes the next GroupContext from there: epoch, extensions, tree
// hash and confirmed transcript hash.
//
// What it cannot check, members do:
//
//   - a member's membership tag (it has no membership_key): a message from
//     a member's leaf is authenticated by its signature alone;
//   - a commit's confirmation tag (no confirmation_key): the interim
//     transcript hash is computed from the tag as sent;
//   - an external commit's ExternalInit (no external private key), and
//     whether a path's ciphertexts decrypt;
//   - PSKs' values, and anything inside a PrivateMessage.
//
// A commit valid but for these is accepted here and refused by every
// member, and the two part ways: the members stay in the epoch the
// PublicGroup left, so their next messages are refused here with
// ErrWrongEpoch. Only a member can tell such a commit from a good one;
// the server then follows the group again from a member's GroupInfo
// (NewPublicGroup).

// PublicGroupOptions configure a PublicGroup. They are not part of its
// stored state: pass them again to UnmarshalPublicGroup.
type PublicGroupOptions struct {
	// ValidateLeaf, as GroupOptions.ValidateLeaf: called for every leaf
	// entering the tree (Adds, Updates, the committer's new leaf of every
	// path; for NewPublicGroup every leaf of the tree), idx its index in
	// the new tree. An error refuses the leaf, and with it the commit or
	// the GroupInfo (wrapped in ErrLeafRefused).
	ValidateLeaf func(leaf *LeafNode, idx LeafIndex) error
	// Now is the clock key package lifetimes are checked against, as
	// GroupOptions.Now (nil: time.Now; returning the zero time skips the
	// checks).
	Now func() time.Time
}

func (o PublicGroupOptions) groupOptions() GroupOptions {
	return GroupOptions{ValidateLeaf: o.ValidateLeaf, Now: o.Now}
}

// PublicGroup is the delivery service's view of one group: its
// GroupContext, ratchet tree, interim transcript hash and the proposals of
// the current epoch, moved from epoch to epoch by Process. It holds no
// secret. It is not safe for concurrent use.
type PublicGroup struct {
	// g is the group seen from outside: suite, options, GroupContext,
	// tree, interim transcript hash, cached proposals and, once a commit
	// re-initialised the group, its ReInit. Its keys, secrets and secret
	// tree are nil and stay so.
	g *Group
}

// PublicProcessed is what PublicGroup.Process made of a handshake message.
type PublicProcessed struct {
	// Kind is ContentProposal or ContentCommit.
	Kind ContentType
	// Sender is the message's sender.
	Sender Sender

	// Proposal and ProposalRef are a proposal now cached (read-only).
	Proposal    Proposal
	ProposalRef []byte

	// Epoch is, for a proposal, the current epoch and, for a commit, the
	// new one. For a commit: the leaves it added (for an external commit
	// also the joiner's, last), removed (RemovedLeaves are their leaf
	// nodes before removal, in the same order, read-only) and updated by
	// Update proposals; the committer's leaf in the new tree (for an
	// external commit the joiner's); whether the commit had a path; and
	// the ReInit it applied, after which the PublicGroup refuses further
	// use with ErrInactive.
	Epoch                   uint64
	Added, Removed, Updated []LeafIndex
	RemovedLeaves           []*LeafNode
	Committer               LeafIndex
	HasPath                 bool
	ReInit                  *ReInitProposal
}

// NewPublicGroup starts following a group from a GroupInfo signed by a
// member (say the creator's at epoch 0) and the group's ratchet tree rt
// (nil: take it from gi's ratchet_tree extension). It verifies the
// GroupInfo's signature with the signer leaf's key, validates the tree in
// full against the GroupContext (Tree.Validate: tree hash, parent hashes,
// keys, every leaf), checks the context extensions decode, passes every
// member's leaf to opts.ValidateLeaf (ErrLeafRefused), and derives the
// interim transcript hash from the confirmed transcript hash and the
// GroupInfo's confirmation tag.
func NewPublicGroup(gi *GroupInfo, rt RatchetTree, opts PublicGroupOptions) (*PublicGroup, error) {
	if gi == nil {
		return nil, errors.New("mls: new public group: no GroupInfo")
	}
	s, err := SuiteFor(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("mls: new public group: %w", err)
	}
	if len(gi.ConfirmationTag) != s.nh {
		return nil, fmt.Errorf("mls: new public group: confirmation tag of %d bytes, want %d", len(gi.ConfirmationTag), s.nh)
	}
	g, err := outsideView(s, gi, rt, opts.groupOptions())
	if err != nil {
		return nil, fmt.Errorf("mls: new public group: %w", err)
	}
	return &PublicGroup{g: g}, nil
}

// Suite returns the group's cipher suite.
func (p *PublicGroup) Suite() *Suite { return p.g.suite }

// GroupID returns the group's ID.
func (p *PublicGroup) GroupID() []byte { return p.g.GroupID() }

// Epoch returns the current epoch.
func (p *PublicGroup) Epoch() uint64 { return p.g.ctx.Epoch }

// GroupContext returns a copy of the current GroupContext.
func (p *PublicGroup) GroupContext() GroupContext { return p.g.GroupContext() }

// Members returns the members in leaf order. The leaf nodes are the
// tree's: treat them as read-only.
func (p *PublicGroup) Members() []Member { return p.g.Members() }

// Leaf returns the leaf node at l (read-only), or nil if it is blank or
// outside the tree.
func (p *PublicGroup) Leaf(l LeafIndex) *LeafNode { return p.g.tree.Leaf(l) }

// PendingProposals returns the proposals cached in the current epoch, in
// the order they came (read-only).
func (p *PublicGroup) PendingProposals() []PendingProposal { return p.g.PendingProposals() }

// RatchetTree returns a copy of the ratchet tree, to give to joiners.
func (p *PublicGroup) RatchetTree() RatchetTree { return p.g.RatchetTree() }

// ReInit returns the ReInit proposal a commit applied, after which the
// group carries no more messages, or nil.
func (p *PublicGroup) ReInit() *ReInitProposal { return p.g.reinit }

// Process handles one handshake message of the current epoch, sent as a
// PublicMessage. It checks the group and epoch (ErrWrongGroup,
// ErrWrongEpoch), the framing (ErrUnexpectedContent) and the sender's
// signature (ErrBadSignature; ErrUnknownSender): a member's with its
// leaf's key, an external sender's with the external_senders extension's,
// a new member's commit with its path's leaf. It does not check a member's
// membership tag, which needs the epoch's membership_key.
//
// A proposal is validated as a member's Group validates it (an Add from an
// external sender or a new member is refused with ErrExternalAdd; external
// senders may propose only Remove; ErrInvalidProposal) and cached. A
// commit is validated as a member's Group validates it, without private
// keys: its proposals (by reference, only cached ones), a path where RFC
// 9420 requires one, the path's public part with its parent hashes, and
// every new leaf, the path's included, against ValidateLeaf
// (ErrInvalidCommit, ErrInvalidUpdatePath, ErrLeafRefused). The group then
// moves to the new epoch, whose GroupContext it computes, and drops the
// cached proposals. The commit's confirmation tag is not checked (it
// needs the new epoch's confirmation_key) but goes into the interim
// transcript hash as sent: see the top of this file for what follows.
//
// A PrivateMessage is refused with ErrUnexpectedContent: check those with
// CheckPrivate. After a ReInit, every message is refused with ErrInactive.
// On error the PublicGroup is unchanged.
func (p *PublicGroup) Process(msg *MLSMessage) (*PublicProcessed, error) {
	g := p.g
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: public process: %w", err)
	}
	if msg == nil || msg.Version != MLS10 {
		return nil, fmt.Errorf("mls: public process: %w: not an MLS 1.0 message", ErrUnexpectedContent)
	}
	switch {
	case msg.WireFormat == WireFormatPrivateMessage:
		return nil, fmt.Errorf("mls: public process: %w: a PrivateMessage (see CheckPrivate)", ErrUnexpectedContent)
	case msg.WireFormat != WireFormatPublicMessage:
		return nil, fmt.Errorf("mls: public process: %w: wire format %d", ErrUnexpectedContent, msg.WireFormat)
	case msg.PublicMessage == nil:
		return nil, fmt.Errorf("mls: public process: %w: no PublicMessage", ErrUnexpectedContent)
	}
	pm := msg.PublicMessage
	if isExternalAdd(&pm.Content) {
		return nil, fmt.Errorf("mls: public process: %w", ErrExternalAdd)
	}
	ac, err := g.suite.openPublic(pm, &g.ctx, nil, g.signatureKey(g.tree), false)
	if err != nil {
		return nil, fmt.Errorf("mls: public process: %w", err)
	}
	c := &ac.Content
	switch c.ContentType {
	case ContentProposal:
		res, err := p.receiveProposal(ac)
		if err != nil {
			return nil, fmt.Errorf("mls: public process: proposal from %s: %w", senderString(c.Sender), err)
		}
		return res, nil
	case ContentCommit:
		res, err := p.receiveCommit(ac)
		if err != nil {
			return nil, fmt.Errorf("mls: public process: commit from %s: %w", senderString(c.Sender), err)
		}
		return res, nil
	}
	return nil, fmt.Errorf("mls: public process: %w: content type %d", ErrUnexpectedContent, c.ContentType)
}

// receiveProposal validates a proposal on its own and caches a copy of it.
func (p *PublicGroup) receiveProposal(ac *AuthenticatedContent) (*PublicProcessed, error) {
	g := p.g
	c := &ac.Content
	ref := g.suite.MakeProposalRef(ac.Marshal())
	for _, q := range g.proposals {
		if bytes.Equal(q.ref, ref) {
			return nil, fmt.Errorf("%w: received twice", ErrInvalidProposal)
		}
	}
	if err := g.checkProposal(c.Sender, c.Proposal); err != nil {
		return nil, err
	}
	return p.cache(ref, c.Sender, c.Proposal), nil
}

// cache caches a copy of a validated proposal, which the caller's message
// then no longer shares.
func (p *PublicGroup) cache(ref []byte, sender Sender, proposal Proposal) *PublicProcessed {
	g := p.g
	proposal = cloneProposal(proposal)
	g.proposals = append(g.proposals, cachedProposal{ref: bytes.Clone(ref), sender: sender, proposal: proposal})
	return &PublicProcessed{Kind: ContentProposal, Sender: sender, Proposal: proposal, ProposalRef: bytes.Clone(ref), Epoch: g.ctx.Epoch}
}

// cloneProposal returns a deep copy of a proposal that encodes.
func cloneProposal(p Proposal) Proposal {
	var w Writer
	encodeProposal(&w, p)
	r := NewReader(w.Bytes())
	c := decodeProposal(r)
	if err := r.Done(); err != nil {
		panic("mls: a proposal does not re-encode: " + err.Error())
	}
	return c
}

// receiveCommit validates a commit without private keys and moves the
// group to the public part of the epoch it starts.
func (p *PublicGroup) receiveCommit(ac *AuthenticatedContent) (*PublicProcessed, error) {
	g := p.g
	c := &ac.Content
	commit := c.Commit
	committer := c.Sender
	if len(ac.Auth.ConfirmationTag) != g.suite.nh {
		return nil, invalidCommit("confirmation tag of %d bytes, want %d", len(ac.Auth.ConfirmationTag), g.suite.nh)
	}
	st, err := g.stageCommit(committer, commit, nil)
	if err != nil {
		return nil, err
	}
	res := &PublicProcessed{Kind: ContentCommit, Sender: committer, Epoch: g.ctx.Epoch + 1,
		Added: slices.Clone(st.fx.added), Removed: slices.Clone(st.fx.removed), Updated: slices.Clone(st.fx.updated),
		Committer: committer.Leaf, HasPath: commit.Path != nil}
	for _, l := range st.fx.removed {
		res.RemovedLeaves = append(res.RemovedLeaves, g.tree.Leaf(l))
	}
	if commit.Path != nil {
		// Without keys, there is no commit_secret to clear.
		sender, _, err := g.mergePath(st, committer, commit.Path)
		if err != nil {
			return nil, err
		}
		res.Committer = sender
		if committer.Type == SenderNewMemberCommit {
			res.Added = append(res.Added, sender)
		}
	}
	ctx, err := g.nextContext(st, ac)
	if err != nil {
		return nil, err
	}
	if st.fx.reinit != nil {
		res.ReInit = cloneProposal(st.fx.reinit).(*ReInitProposal)
	}
	g.ctx = ctx
	g.tree = st.tree
	g.interim = g.suite.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	g.proposals = nil
	g.reinit = res.ReInit
	return res, nil
}

// CheckPrivate checks what the delivery service can see of a
// PrivateMessage, its clear header: that it is for this group
// (ErrWrongGroup) and epoch (ErrWrongEpoch), and that it carries
// application data (ErrUnexpectedContent), since Hotline sends handshakes
// as PublicMessage only. After a ReInit it refuses with ErrInactive.
func (p *PublicGroup) CheckPrivate(pm *PrivateMessage) error {
	g := p.g
	if err := g.active(); err != nil {
		return fmt.Errorf("mls: check private message: %w", err)
	}
	switch {
	case pm == nil:
		return fmt.Errorf("mls: check private message: %w: no PrivateMessage", ErrUnexpectedContent)
	case !bytes.Equal(pm.GroupID, g.ctx.GroupID):
		return fmt.Errorf("mls: check private message: %w", ErrWrongGroup)
	case pm.Epoch != g.ctx.Epoch:
		return fmt.Errorf("mls: check private message: %w: epoch %d, group is at %d", ErrWrongEpoch, pm.Epoch, g.ctx.Epoch)
	case pm.ContentType != ContentApplication:
		return fmt.Errorf("mls: check private message: %w: content type %d, handshakes must be PublicMessages", ErrUnexpectedContent, pm.ContentType)
	}
	return nil
}

// ProposeRemove makes a Remove proposal of the member at leaf from the
// external sender senderIndex, whose key in the group's external_senders
// extension signer must be. It is a PublicMessage without membership tag,
// signed as RFC 9420 has an external sender sign (the signature does not
// cover the GroupContext). The proposal is cached as Process would cache
// it; commit it by having a member commit the pending proposals. A blank
// leaf, or a Remove of leaf this sender already proposed in the epoch, is
// refused with ErrInvalidProposal; after a ReInit, every proposal with
// ErrInactive.
func (p *PublicGroup) ProposeRemove(signer SignaturePrivateKey, senderIndex uint32, leaf LeafIndex) (*MLSMessage, error) {
	g := p.g
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	if g.tree.Leaf(leaf) == nil {
		return nil, fmt.Errorf("mls: public propose remove: %w: leaf %d is blank", ErrInvalidProposal, leaf)
	}
	sender := Sender{Type: SenderExternal, ExternalIndex: senderIndex}
	for _, q := range g.proposals {
		if r, ok := q.proposal.(*RemoveProposal); ok && r.Removed == leaf && q.sender == sender {
			return nil, fmt.Errorf("mls: public propose remove: %w: leaf %d's Remove by external sender %d is already pending", ErrInvalidProposal, leaf, senderIndex)
		}
	}
	es, err := g.externalSenders()
	if err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	if uint64(senderIndex) >= uint64(len(es)) {
		return nil, fmt.Errorf("mls: public propose remove: %w: external sender %d of %d", ErrUnknownSender, senderIndex, len(es))
	}
	if !bytes.Equal(signer.Public(), es[senderIndex].SignatureKey) {
		return nil, fmt.Errorf("mls: public propose remove: the signer is not external sender %d's key", senderIndex)
	}
	proposal := &RemoveProposal{Removed: leaf}
	if err := g.checkProposal(sender, proposal); err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	content := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: sender,
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: proposal}
	ac, err := g.suite.SignContent(WireFormatPublicMessage, content, &g.ctx, signer)
	if err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	pm, err := g.suite.ProtectPublic(ac, &g.ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	msg := &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
	// The message must not share memory with the cache or the caller's
	// state: encode it once.
	out, err := UnmarshalMLSMessage(msg.Marshal())
	if err != nil {
		return nil, fmt.Errorf("mls: public propose remove: %w", err)
	}
	p.cache(g.suite.MakeProposalRef(ac.Marshal()), sender, proposal)
	return out, nil
}

// String returns a short description: suite, group, epoch and members.
func (p *PublicGroup) String() string {
	if p == nil || p.g == nil {
		return "mls-public-group(nil)"
	}
	return fmt.Sprintf("mls-public-group(%s, group=%x, epoch=%d, %d members)", p.g.suite.name, p.g.ctx.GroupID, p.g.ctx.Epoch, len(p.g.tree.Members()))
}

// GoString implements fmt.GoStringer with the short description.
func (p *PublicGroup) GoString() string { return p.String() }

// LogValue implements slog.LogValuer with the short description.
func (p *PublicGroup) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Format implements fmt.Formatter with the short description for every
// verb.
func (p *PublicGroup) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }
