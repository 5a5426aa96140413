package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Proposals and commits: validating a commit's proposal list (RFC 9420,
// section 12.2) and applying it to copies of the state, shared by the
// committer (Commit) and the receivers (Process), and making proposals and
// commits.

// stagedProposal is one proposal a commit covers, with its sender: the
// committer for a proposal by value.
type stagedProposal struct {
	sender   Sender
	proposal Proposal
	ref      []byte // nil for a proposal by value
}

// staged is a commit's proposals validated and applied to copies of the
// tree and the private keys.
type staged struct {
	tree         *Tree
	keys         *TreePrivateKeys // nil for an external joiner
	extensions   []Extension
	psks         []PreSharedKeyID
	externalInit *ExternalInitProposal
	fx           commitEffects
	addedKPs     []*KeyPackage
	removedSelf  bool
	pathRequired bool
}

// invalidCommit wraps ErrInvalidCommit.
func invalidCommit(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCommit}, args...)...)
}

// stage validates the proposal list ps of a commit by committer (a member,
// or a new member for an external commit) and applies it to copies of the
// tree and of keys (nil for a joiner). me is the receiver's leaf, or -1.
func (g *Group) stage(committer Sender, ps []stagedProposal, keys *TreePrivateKeys) (*staged, error) {
	external := committer.Type == SenderNewMemberCommit
	if committer.Type != SenderMember && !external {
		return nil, invalidCommit("committer of sender type %d", committer.Type)
	}
	var (
		touched    = map[LeafIndex]bool{}
		pskSeen    = map[string]bool{}
		gce        *GroupContextExtensionsProposal
		st         = &staged{pathRequired: len(ps) == 0}
		nExtInit   int
		nRemove    int
		updates    []stagedProposal
		removes    []*RemoveProposal
		adds       []*AddProposal
		addSigKeys = map[string]bool{}
	)
	for i, p := range ps {
		switch pr := p.proposal.(type) {
		case *AddProposal:
			if p.sender.Type == SenderExternal || p.sender.Type == SenderNewMemberProposal {
				return nil, fmt.Errorf("%w: proposal %d", ErrExternalAdd, i)
			}
			if external {
				return nil, invalidCommit("external commit with an Add")
			}
			k := string(pr.KeyPackage.LeafNode.SignatureKey)
			if addSigKeys[k] {
				return nil, invalidCommit("two Adds of the same signature key")
			}
			addSigKeys[k] = true
			adds = append(adds, pr)
		case *UpdateProposal:
			switch {
			case external:
				return nil, invalidCommit("external commit with an Update")
			case p.sender.Type != SenderMember:
				return nil, invalidCommit("Update proposal from sender type %d", p.sender.Type)
			case p.sender.Leaf == committer.Leaf:
				return nil, invalidCommit("the committer's own Update proposal")
			case touched[p.sender.Leaf]:
				return nil, invalidCommit("leaf %d updated or removed twice", p.sender.Leaf)
			case g.tree.Leaf(p.sender.Leaf) == nil:
				return nil, invalidCommit("Update from blank leaf %d", p.sender.Leaf)
			}
			touched[p.sender.Leaf] = true
			st.pathRequired = true
			updates = append(updates, p)
		case *RemoveProposal:
			switch {
			case g.tree.Leaf(pr.Removed) == nil:
				return nil, invalidCommit("Remove of blank leaf %d", pr.Removed)
			case !external && pr.Removed == committer.Leaf:
				return nil, invalidCommit("the committer removes itself")
			case touched[pr.Removed]:
				return nil, invalidCommit("leaf %d updated or removed twice", pr.Removed)
			}
			nRemove++
			if external && nRemove > 1 {
				return nil, invalidCommit("external commit with more than one Remove")
			}
			touched[pr.Removed] = true
			st.pathRequired = true
			removes = append(removes, pr)
		case *PreSharedKeyProposal:
			if err := g.checkPSKID(&pr.PSK); err != nil {
				return nil, invalidCommit("proposal %d: %v", i, err)
			}
			k := string(marshalWire(&pr.PSK))
			if pskSeen[k] {
				return nil, invalidCommit("PSK proposed twice")
			}
			pskSeen[k] = true
			st.psks = append(st.psks, pr.PSK)
		case *ReInitProposal:
			if len(ps) != 1 || external {
				return nil, invalidCommit("ReInit together with other proposals")
			}
			if pr.Version < MLS10 {
				return nil, invalidCommit("ReInit to version %d", pr.Version)
			}
			st.fx.reinit = pr
		case *ExternalInitProposal:
			if !external {
				return nil, invalidCommit("ExternalInit in a member's commit")
			}
			nExtInit++
			st.externalInit = pr
			st.pathRequired = true
		case *GroupContextExtensionsProposal:
			if external {
				return nil, invalidCommit("external commit with GroupContextExtensions")
			}
			if gce != nil {
				return nil, invalidCommit("two GroupContextExtensions proposals")
			}
			gce = pr
			st.pathRequired = true
		default:
			return nil, invalidCommit("unsupported proposal type %#04x", uint16(p.proposal.Type()))
		}
		if external && p.ref != nil {
			return nil, invalidCommit("external commit with a proposal by reference")
		}
	}
	if external && nExtInit != 1 {
		return nil, invalidCommit("external commit with %d ExternalInit proposals", nExtInit)
	}

	// The provisional GroupContext the new leaves must fit.
	prov := g.ctx
	prov.Epoch++
	prov.Extensions = g.ctx.Extensions
	if gce != nil {
		prov.Extensions = cloneExtensions(gce.Extensions)
		if err := checkContextExtensions(&prov); err != nil {
			return nil, invalidCommit("GroupContextExtensions: %v", err)
		}
	}
	st.extensions = prov.Extensions

	t := g.tree.Clone()
	if keys != nil {
		keys = keys.Clone()
	}
	me := LeafIndex(maxLeaves)
	if keys != nil {
		me = keys.Leaf()
	}
	for _, p := range updates {
		u := p.proposal.(*UpdateProposal)
		l := p.sender.Leaf
		if err := t.VerifyLeafNode(&u.LeafNode, l, LeafNodeSourceUpdate, &prov); err != nil {
			return nil, invalidCommit("Update of leaf %d: %v", l, err)
		}
		ln, err := cloneLeafNode(&u.LeafNode)
		if err != nil {
			return nil, invalidCommit("Update of leaf %d: %v", l, err)
		}
		if err := t.UpdateLeaf(l, ln); err != nil {
			return nil, invalidCommit("%v", err)
		}
		if err := g.opts.validateLeaf(ln, l); err != nil {
			return nil, err
		}
		if l == me {
			priv, ok := g.updateKeys[string(p.ref)]
			if !ok {
				return nil, fmt.Errorf("%w: no private key for this member's Update proposal", ErrPrivateKeyMismatch)
			}
			if err := keys.SetKey(t, l.node(), priv); err != nil {
				return nil, err
			}
		}
		st.fx.updated = append(st.fx.updated, l)
	}
	for _, r := range removes {
		if err := t.RemoveLeaf(r.Removed); err != nil {
			return nil, invalidCommit("%v", err)
		}
		if r.Removed == me {
			st.removedSelf = true
		}
		st.fx.removed = append(st.fx.removed, r.Removed)
	}
	for _, a := range adds {
		kp := &a.KeyPackage
		if err := g.validateKeyPackage(kp); err != nil {
			return nil, invalidCommit("Add: %v", err)
		}
		if err := t.VerifyLeafNode(&kp.LeafNode, LeafIndex(t.Leaves()), LeafNodeSourceKeyPackage, &prov); err != nil {
			return nil, invalidCommit("Add: %v", err)
		}
		ln, err := cloneLeafNode(&kp.LeafNode)
		if err != nil {
			return nil, invalidCommit("Add: %v", err)
		}
		l, err := t.AddLeaf(ln)
		if err != nil {
			return nil, invalidCommit("%v", err)
		}
		if err := g.opts.validateLeaf(ln, l); err != nil {
			return nil, err
		}
		st.fx.added = append(st.fx.added, l)
		st.addedKPs = append(st.addedKPs, kp)
	}
	if gce != nil {
		if err := membersSupport(t, &prov); err != nil {
			return nil, invalidCommit("GroupContextExtensions: %v", err)
		}
	}
	if keys != nil && !st.removedSelf {
		keys.Sync(t)
	}
	st.tree, st.keys = t, keys
	return st, nil
}

// membersSupport checks that every member supports the extensions and
// required capabilities of ctx (RFC 9420, section 12.1.7).
func membersSupport(t *Tree, ctx *GroupContext) error {
	var req RequiredCapabilities
	if _, err := decodeExtension(ctx.Extensions, ExtRequiredCapabilities, &req); err != nil {
		return err
	}
	for _, l := range t.Members() {
		c := &t.Leaf(l).Capabilities
		for _, e := range ctx.Extensions {
			if !supportsExtension(c, e.Type) {
				return fmt.Errorf("leaf %d does not support extension %#04x", l, uint16(e.Type))
			}
		}
		for _, e := range req.Extensions {
			if !supportsExtension(c, e) {
				return fmt.Errorf("leaf %d does not support the required extension %#04x", l, uint16(e))
			}
		}
		for _, p := range req.Proposals {
			if p > ProposalGroupContextExtensions && !slices.Contains(c.Proposals, p) {
				return fmt.Errorf("leaf %d does not support the required proposal type %#04x", l, uint16(p))
			}
		}
		for _, cr := range req.Credentials {
			if !slices.Contains(c.Credentials, cr) {
				return fmt.Errorf("leaf %d does not support the required credential type %#04x", l, uint16(cr))
			}
		}
	}
	return nil
}

// validateKeyPackage checks a key package an Add brings in, with the
// group's clock.
func (g *Group) validateKeyPackage(kp *KeyPackage) error {
	now := g.opts.now()
	if now.IsZero() {
		// Lifetime checks are off: check at a time the package is valid.
		nb := kp.LeafNode.Lifetime.NotBefore
		now = time.Unix(int64(min(nb, 1<<62)), 0)
	}
	return g.suite.ValidateKeyPackage(kp, now)
}

// checkPSKID checks a PSK proposal's ID (RFC 9420, section 12.1.4): a
// nonce of Nh bytes, and a resumption PSK of the application usage.
func (g *Group) checkPSKID(id *PreSharedKeyID) error {
	if len(id.Nonce) != g.suite.nh {
		return fmt.Errorf("PSK nonce of %d bytes, want %d", len(id.Nonce), g.suite.nh)
	}
	switch id.Type {
	case PSKExternal:
	case PSKResumption:
		if id.Usage != ResumptionApplication {
			return fmt.Errorf("resumption PSK of usage %d in a commit", id.Usage)
		}
	default:
		return fmt.Errorf("PSK type %d", id.Type)
	}
	return nil
}

// pskSecret returns the psk_secret of ids, looking up external PSKs with
// GroupOptions.PSKs and resumption PSKs in the group's history.
func (g *Group) pskSecret(ids []PreSharedKeyID) ([]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	psks := make([]PSK, len(ids))
	var owned [][]byte
	defer func() {
		for _, b := range owned {
			clear(b)
		}
	}()
	for i := range ids {
		id := &ids[i]
		var v []byte
		switch id.Type {
		case PSKExternal:
			if g.opts.PSKs == nil {
				return nil, fmt.Errorf("%w: external PSK %x", ErrUnknownPSK, id.ID)
			}
			var err error
			if v, err = g.opts.PSKs(id); err != nil {
				return nil, fmt.Errorf("external PSK %x: %w", id.ID, err)
			}
		case PSKResumption:
			var ok bool
			if bytes.Equal(id.PSKGroupID, g.ctx.GroupID) {
				v, ok = g.ResumptionPSK(id.PSKEpoch)
			}
			if !ok {
				return nil, fmt.Errorf("%w: resumption PSK of epoch %d", ErrUnknownPSK, id.PSKEpoch)
			}
			owned = append(owned, v)
		default:
			return nil, fmt.Errorf("%w: PSK type %d", ErrUnknownPSK, id.Type)
		}
		psks[i] = PSK{ID: *id, Secret: v}
	}
	return g.suite.PSKSecret(psks)
}

// propose sends p as a PublicMessage from this member and caches it.
func (g *Group) propose(p Proposal) (*MLSMessage, []byte, error) {
	if err := g.active(); err != nil {
		return nil, nil, err
	}
	if g.pending != nil {
		return nil, nil, ErrCommitPending
	}
	content := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: Sender{Type: SenderMember, Leaf: g.MyLeaf()},
		AuthenticatedData: []byte{}, ContentType: ContentProposal, Proposal: p,
	}
	ac, err := g.suite.SignContent(WireFormatPublicMessage, content, &g.ctx, g.signer)
	if err != nil {
		return nil, nil, err
	}
	pm, err := g.suite.ProtectPublic(ac, &g.ctx, g.secrets.membership.bytes())
	if err != nil {
		return nil, nil, err
	}
	ref := g.suite.MakeProposalRef(ac.Marshal())
	g.proposals = append(g.proposals, cachedProposal{ref: ref, sender: content.Sender, proposal: p})
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}, ref, nil
}

// ProposeAdd proposes adding the owner of kp, which must be valid.
func (g *Group) ProposeAdd(kp *KeyPackage) (*MLSMessage, error) {
	if err := g.validateKeyPackage(kp); err != nil {
		return nil, fmt.Errorf("mls: propose add: %w", err)
	}
	m, _, err := g.propose(&AddProposal{KeyPackage: *kp})
	if err != nil {
		return nil, fmt.Errorf("mls: propose add: %w", err)
	}
	return m, nil
}

// ProposeRemove proposes removing the member at leaf.
func (g *Group) ProposeRemove(leaf LeafIndex) (*MLSMessage, error) {
	if g.tree.Leaf(leaf) == nil {
		return nil, fmt.Errorf("mls: propose remove: %w: leaf %d is blank", ErrInvalidProposal, leaf)
	}
	m, _, err := g.propose(&RemoveProposal{Removed: leaf})
	if err != nil {
		return nil, fmt.Errorf("mls: propose remove: %w", err)
	}
	return m, nil
}

// ProposeUpdate proposes a new leaf node for this member, with a fresh
// encryption key from rand (nil: crypto/rand). template, if not nil,
// gives the new leaf's signature key (which must stay the signer's),
// credential, capabilities and extensions; nil keeps the current ones.
func (g *Group) ProposeUpdate(rand io.Reader, template *LeafNode) (*MLSMessage, error) {
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: propose update: %w", err)
	}
	me := g.MyLeaf()
	src := g.tree.Leaf(me)
	if template != nil {
		src = template
	}
	ln, err := cloneLeafNode(src)
	if err != nil {
		return nil, fmt.Errorf("mls: propose update: %w", err)
	}
	if !bytes.Equal(ln.SignatureKey, g.signer.Public()) {
		return nil, errors.New("mls: propose update: the leaf's signature key is not the signer's")
	}
	key, err := g.suite.GenerateHPKEKey(rand)
	if err != nil {
		return nil, err
	}
	ln.EncryptionKey = key.Public()
	ln.Source = LeafNodeSourceUpdate
	ln.Lifetime = Lifetime{}
	ln.ParentHash = nil
	if err := ln.Sign(g.suite, g.signer, g.ctx.GroupID, me); err != nil {
		return nil, err
	}
	m, ref, err := g.propose(&UpdateProposal{LeafNode: *ln})
	if err != nil {
		return nil, fmt.Errorf("mls: propose update: %w", err)
	}
	g.updateKeys[string(ref)] = key
	return m, nil
}

// ProposeGroupContextExtensions proposes replacing the GroupContext's
// extensions with exts.
func (g *Group) ProposeGroupContextExtensions(exts []Extension) (*MLSMessage, error) {
	m, _, err := g.propose(&GroupContextExtensionsProposal{Extensions: cloneExtensions(exts)})
	if err != nil {
		return nil, fmt.Errorf("mls: propose group context extensions: %w", err)
	}
	return m, nil
}

// ProposePSK proposes injecting the pre-shared key id; an empty nonce is
// filled with Nh bytes from rand (nil: crypto/rand).
func (g *Group) ProposePSK(rand io.Reader, id PreSharedKeyID) (*MLSMessage, error) {
	if err := g.fillPSKNonce(rand, &id); err != nil {
		return nil, err
	}
	if err := g.checkPSKID(&id); err != nil {
		return nil, fmt.Errorf("mls: propose PSK: %w: %v", ErrInvalidProposal, err)
	}
	m, _, err := g.propose(&PreSharedKeyProposal{PSK: id})
	if err != nil {
		return nil, fmt.Errorf("mls: propose PSK: %w", err)
	}
	return m, nil
}

func (g *Group) fillPSKNonce(rand io.Reader, id *PreSharedKeyID) error {
	if len(id.Nonce) > 0 {
		return nil
	}
	n, err := readRandom(rand, g.suite.nh)
	if err != nil {
		return err
	}
	id.Nonce = n
	return nil
}

// CommitOptions says what a commit does besides committing, if asked,
// the proposals cached in the epoch.
type CommitOptions struct {
	// Adds are key packages of members to add.
	Adds []*KeyPackage
	// Removes are leaves of members to remove.
	Removes []LeafIndex
	// Update forces an update path (a fresh leaf key and path secrets)
	// even when no proposal requires one.
	Update bool
	// LeafNode, with a path, gives the committer's new leaf content (as
	// ProposeUpdate's template); nil keeps the current leaf's.
	LeafNode *LeafNode
	// GroupContextExtensions, if not nil, replaces the GroupContext's
	// extensions (an empty, non-nil slice removes them all).
	GroupContextExtensions []Extension
	// PSKs are pre-shared keys to inject; empty nonces are filled.
	PSKs []PreSharedKeyID
	// ReInit re-initialises the group; it must be the only proposal.
	ReInit *ReInitProposal
	// IncludePending commits the proposals cached in the epoch, by
	// reference: other members' and external senders' (the server's
	// Removes), and this member's own except its Updates, which the
	// commit's path supersedes. Proposals that conflict with others or
	// no longer apply are left out.
	IncludePending bool
}

// CommitResult is a commit this member made, pending until MergePending.
type CommitResult struct {
	// Commit is the commit, as a PublicMessage, for the delivery service.
	Commit *MLSMessage
	// Welcome is for the members the commit adds; nil if it adds none.
	Welcome *MLSMessage
	// Added lists the leaves the commit's Adds filled, in order.
	Added []LeafIndex
}

// Commit makes a commit (RFC 9420, section 12.4) and holds the epoch it
// starts as pending: apply it with MergePending once the delivery service
// accepted the commit, or drop it with DiscardPending. rand (nil:
// crypto/rand) gives the path's secrets and PSK nonces; HPKE encryption
// draws on crypto/rand.
func (g *Group) Commit(rand io.Reader, opts CommitOptions) (*CommitResult, error) {
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	if g.pending != nil {
		return nil, fmt.Errorf("mls: commit: %w", ErrCommitPending)
	}
	me := g.MyLeaf()
	committer := Sender{Type: SenderMember, Leaf: me}
	var ps []stagedProposal
	touched := map[LeafIndex]bool{}
	for _, l := range opts.Removes {
		touched[l] = true
	}
	if opts.IncludePending {
		// Removes first, so that an Update of a leaf being removed goes
		// and not the Remove.
		keep := map[int]bool{}
		for i, p := range g.proposals {
			if r, ok := p.proposal.(*RemoveProposal); ok && r.Removed != me && !touched[r.Removed] && g.tree.Leaf(r.Removed) != nil {
				touched[r.Removed] = true
				keep[i] = true
			}
		}
		for i, p := range g.proposals {
			switch p.proposal.(type) {
			case *RemoveProposal:
				if !keep[i] {
					continue
				}
			case *UpdateProposal:
				if p.sender.Leaf == me || touched[p.sender.Leaf] {
					continue
				}
				touched[p.sender.Leaf] = true
			case *ReInitProposal:
				continue // only by itself, through CommitOptions.ReInit
			}
			ps = append(ps, stagedProposal{sender: p.sender, proposal: p.proposal, ref: p.ref})
		}
	}
	inline := func(p Proposal) { ps = append(ps, stagedProposal{sender: committer, proposal: p}) }
	for _, l := range opts.Removes {
		inline(&RemoveProposal{Removed: l})
	}
	for _, kp := range opts.Adds {
		inline(&AddProposal{KeyPackage: *kp})
	}
	if opts.GroupContextExtensions != nil {
		inline(&GroupContextExtensionsProposal{Extensions: cloneExtensions(opts.GroupContextExtensions)})
	}
	for _, id := range opts.PSKs {
		if err := g.fillPSKNonce(rand, &id); err != nil {
			return nil, err
		}
		inline(&PreSharedKeyProposal{PSK: id})
	}
	if opts.ReInit != nil {
		inline(opts.ReInit)
	}

	st, err := g.stage(committer, ps, g.keys)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	prov := g.ctx
	prov.Epoch++
	prov.Extensions = st.extensions
	var cp *CommitPath
	if st.pathRequired || opts.Update || opts.LeafNode != nil {
		if cp, err = st.tree.CreateUpdatePath(me, PathParams{Signer: g.signer, LeafNode: opts.LeafNode, Context: prov, Exclude: st.fx.added, Rand: rand}); err != nil {
			return nil, fmt.Errorf("mls: commit: %w", err)
		}
		defer cp.Erase()
		if err := g.opts.validateLeaf(st.tree.Leaf(me), me); err != nil {
			return nil, fmt.Errorf("mls: commit: %w", err)
		}
		st.keys = cp.Keys()
	}

	commit := &Commit{Proposals: make([]ProposalOrRef, len(ps))}
	for i, p := range ps {
		if p.ref != nil {
			commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefReference, Reference: p.ref}
		} else {
			commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p.proposal}
		}
	}
	var commitSecret []byte
	if cp != nil {
		commit.Path = &cp.Path
		commitSecret = cp.CommitSecret()
		defer clear(commitSecret)
	}
	content := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: committer,
		AuthenticatedData: []byte{}, ContentType: ContentCommit, Commit: commit,
	}
	ac, err := g.suite.SignContent(WireFormatPublicMessage, content, &g.ctx, g.signer)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	next, err := g.nextEpoch(st, ac, g.secrets.init.bytes(), commitSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	ac.Auth.ConfirmationTag = next.confirmationTag
	pm, err := g.suite.ProtectPublic(ac, &g.ctx, g.secrets.membership.bytes())
	if err != nil {
		next.erase()
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	res := &CommitResult{
		Commit: &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm},
		Added:  slices.Clone(st.fx.added),
	}
	if len(st.fx.added) > 0 {
		w, err := g.welcome(&next, st, cp)
		if err != nil {
			next.erase()
			return nil, fmt.Errorf("mls: commit: %w", err)
		}
		res.Welcome = &MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: w}
	}
	g.pending = &pendingCommit{next: next, message: res.Commit.Marshal(), result: st.fx}
	return res, nil
}

// nextEpoch derives the epoch a commit ac starts from the staged
// proposals, the commit_secret and the init_secret it starts from, and
// returns it with the confirmation tag (RFC 9420, section 12.4). st.tree
// must hold the path already.
func (g *Group) nextEpoch(st *staged, ac *AuthenticatedContent, initSecret, commitSecret []byte) (epochState, error) {
	ctx, err := g.nextContext(st, ac)
	if err != nil {
		return epochState{}, err
	}
	confirmed := ctx.ConfirmedTranscriptHash
	pskSecret, err := g.pskSecret(st.psks)
	if err != nil {
		return epochState{}, err
	}
	es, err := g.suite.NewEpochSecrets(initSecret, commitSecret, pskSecret, &ctx)
	clear(pskSecret)
	if err != nil {
		return epochState{}, err
	}
	sec, err := es.SecretTree(st.tree.Leaves())
	if err != nil {
		es.Erase()
		return epochState{}, err
	}
	tag := es.ConfirmationTag(confirmed)
	return epochState{
		ctx: ctx, tree: st.tree, keys: st.keys, secrets: es, secretTree: sec,
		interim: g.suite.InterimTranscriptHash(confirmed, tag), confirmationTag: tag,
	}, nil
}

// nextContext returns the GroupContext of the epoch the commit ac starts,
// the public part of nextEpoch: the next epoch, the staged extensions, the
// hash of the staged tree (holding the path already) and the confirmed
// transcript hash.
func (g *Group) nextContext(st *staged, ac *AuthenticatedContent) (GroupContext, error) {
	ctx := g.ctx
	ctx.Epoch++
	ctx.Extensions = st.extensions
	ctx.TreeHash = st.tree.TreeHash()
	confirmed, err := g.suite.ConfirmedTranscriptHash(g.interim, ac)
	if err != nil {
		return GroupContext{}, err
	}
	ctx.ConfirmedTranscriptHash = confirmed
	return ctx, nil
}

// welcome builds the Welcome of a commit that adds members.
func (g *Group) welcome(next *epochState, st *staged, cp *CommitPath) (*Welcome, error) {
	gi, err := g.groupInfo(next, g.opts.UseRatchetTreeExtension, false)
	if err != nil {
		return nil, err
	}
	members := make([]NewMember, len(st.addedKPs))
	for i, kp := range st.addedKPs {
		members[i] = NewMember{KeyPackage: kp}
		if cp != nil {
			ps, err := cp.PathSecret(st.fx.added[i])
			if err != nil {
				return nil, err
			}
			defer clear(ps)
			members[i].PathSecret = ps
		}
	}
	return g.suite.NewWelcome(gi, next.secrets, st.psks, members)
}

// groupInfo returns the signed GroupInfo of epoch e, with the ratchet
// tree and the external public key if asked.
func (g *Group) groupInfo(e *epochState, withTree, withExternalPub bool) (*GroupInfo, error) {
	gi := &GroupInfo{GroupContext: e.ctx, Extensions: []Extension{}, ConfirmationTag: e.confirmationTag, Signer: e.keys.Leaf()}
	if withTree {
		gi.Extensions = append(gi.Extensions, makeExtension(ExtRatchetTree, e.tree.RatchetTree()))
	}
	if withExternalPub {
		k, err := e.secrets.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, makeExtension(ExtExternalPub, &ExternalPub{PublicKey: k.Public()}))
	}
	if err := g.suite.SignGroupInfo(gi, g.signer); err != nil {
		return nil, err
	}
	return gi, nil
}

// GroupInfo returns the current epoch's GroupInfo, signed by this member,
// with the external_pub extension that external joiners need and, if
// withTree, the ratchet tree.
func (g *Group) GroupInfo(withTree bool) (*GroupInfo, error) {
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	gi, err := g.groupInfo(&g.epochState, withTree, true)
	if err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	return gi, nil
}

// MergePending applies this member's pending commit, once the delivery
// service accepted it: the group moves to the new epoch.
func (g *Group) MergePending() error {
	if g.pending == nil {
		return ErrNoPendingCommit
	}
	p := g.pending
	g.pending = nil
	g.advance(p.next, p.result)
	return nil
}

// DiscardPending drops this member's pending commit, when the delivery
// service refused it (another commit took the epoch). Process the winning
// commit next.
func (g *Group) DiscardPending() error {
	if g.pending == nil {
		return ErrNoPendingCommit
	}
	g.pending.next.erase()
	g.pending = nil
	return nil
}

// HasPendingCommit reports whether a commit of this member awaits
// MergePending or DiscardPending.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }
