package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Joining a group: by Welcome (RFC 9420, section 12.4.3.1) or by external
// commit (section 12.4.3.2).

// treeFor returns the ratchet tree for a group: rt if given (copied), or
// the GroupInfo's ratchet_tree extension.
func treeFor(s *Suite, gi *GroupInfo, rt RatchetTree) (*Tree, error) {
	if rt != nil {
		var err error
		if rt, err = UnmarshalRatchetTree(rt.Marshal()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
	} else {
		ok, err := decodeExtension(gi.Extensions, ExtRatchetTree, &rt)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: no ratchet tree given and none in the GroupInfo", ErrInvalidTree)
		}
	}
	return NewTree(s, rt)
}

// JoinFromWelcome joins a group as the member a Welcome adds (RFC 9420,
// section 12.4.3.1): myKP is the key package the Add carried, secrets its
// private keys, signer its leaf's signature key. ratchetTree is the
// group's tree given out of band, or nil to take it from the GroupInfo's
// ratchet_tree extension. The tree is validated in full (Tree.Validate),
// and every member's leaf passes opts.ValidateLeaf.
func JoinFromWelcome(welcome *Welcome, myKP *KeyPackage, secrets KeyPackageSecrets, signer SignaturePrivateKey, ratchetTree RatchetTree, opts GroupOptions) (*Group, error) {
	if welcome == nil || myKP == nil {
		return nil, errors.New("mls: join: no Welcome or key package")
	}
	s, err := SuiteFor(welcome.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	if !bytes.Equal(signer.Public(), myKP.LeafNode.SignatureKey) {
		return nil, errors.New("mls: join: the signer is not the key package's signature key")
	}
	var tree *Tree
	signerKey := func(gi *GroupInfo) ([]byte, error) {
		var err error
		if tree, err = treeFor(s, gi, ratchetTree); err != nil {
			return nil, err
		}
		ln := tree.Leaf(gi.Signer)
		if ln == nil {
			return nil, fmt.Errorf("%w: GroupInfo signer %d is a blank leaf", ErrUnknownSender, gi.Signer)
		}
		return ln.SignatureKey, nil
	}
	psks := func(id *PreSharedKeyID) ([]byte, error) {
		if id.Type != PSKExternal || opts.PSKs == nil {
			return nil, fmt.Errorf("%w: PSK of type %d", ErrUnknownPSK, id.Type)
		}
		return opts.PSKs(id)
	}
	j, err := s.ProcessWelcome(welcome, myKP, secrets.Init, psks, signerKey)
	if err != nil {
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	g, err := finishJoin(s, j, tree, myKP, secrets, signer, opts)
	if err != nil {
		j.Erase()
		return nil, fmt.Errorf("mls: join: %w", err)
	}
	return g, nil
}

func finishJoin(s *Suite, j *Joined, tree *Tree, myKP *KeyPackage, secrets KeyPackageSecrets, signer SignaturePrivateKey, opts GroupOptions) (*Group, error) {
	defer j.pathSecret.erase()
	gi := j.GroupInfo
	ctx := gi.GroupContext
	if err := checkContextExtensions(&ctx); err != nil {
		return nil, err
	}
	if err := tree.Validate(&ctx); err != nil {
		return nil, err
	}
	mine := marshalWire(&myKP.LeafNode)
	me, found := LeafIndex(0), false
	for _, l := range tree.Members() {
		if bytes.Equal(tree.Leaf(l).EncryptionKey, myKP.LeafNode.EncryptionKey) && bytes.Equal(marshalWire(tree.Leaf(l)), mine) {
			me, found = l, true
			break
		}
	}
	if !found {
		return nil, ErrNotMember
	}
	for _, l := range tree.Members() {
		if err := opts.validateLeaf(tree.Leaf(l), l); err != nil {
			return nil, err
		}
	}
	keys, err := NewTreePrivateKeys(tree, me, secrets.Encryption)
	if err != nil {
		return nil, err
	}
	if ps := j.PathSecret(); ps != nil {
		err := keys.ImplantPathSecret(tree, gi.Signer, ps)
		clear(ps)
		if err != nil {
			return nil, err
		}
	}
	st, err := j.Epoch.SecretTree(tree.Leaves())
	if err != nil {
		return nil, err
	}
	return &Group{
		suite: s, signer: signer, opts: opts,
		epochState: epochState{
			ctx: ctx, tree: tree, keys: keys, secrets: j.Epoch, secretTree: st,
			interim: j.InterimTranscriptHash, confirmationTag: bytes.Clone(gi.ConfirmationTag),
		},
		updateKeys: map[string]HPKEPrivateKey{},
	}, nil
}

// ExternalJoin joins a group by external commit (RFC 9420, section
// 12.4.3.2): gi is a GroupInfo of the group with the external_pub
// extension (see Group.GroupInfo), ratchetTree the group's tree or nil
// to take it from gi. myKP's leaf node is the template of the joiner's
// leaf (its credential, capabilities, signature key, which must be
// signer's); the path gives it a fresh encryption key, so the key
// package's private keys are not needed. If a member's leaf already has
// signer's key (this client lost its state and rejoins), the commit
// removes it: a resync.
//
// It returns the group at the new epoch and the external commit, as a
// PublicMessage, for the delivery service; if the service refuses the
// commit, drop the group. The ExternalInit and the path's encryptions draw
// on crypto/rand; rand (nil: crypto/rand) gives the path's secrets.
func ExternalJoin(rand io.Reader, gi *GroupInfo, ratchetTree RatchetTree, myKP *KeyPackage, signer SignaturePrivateKey, opts GroupOptions) (*Group, *MLSMessage, error) {
	if gi == nil || myKP == nil {
		return nil, nil, errors.New("mls: external join: no GroupInfo or key package")
	}
	s, err := SuiteFor(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	g, msg, err := externalJoin(s, rand, gi, ratchetTree, myKP, signer, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	return g, msg, nil
}

func externalJoin(s *Suite, rand io.Reader, gi *GroupInfo, ratchetTree RatchetTree, myKP *KeyPackage, signer SignaturePrivateKey, opts GroupOptions) (*Group, *MLSMessage, error) {
	if myKP.CipherSuite != s.id {
		return nil, nil, fmt.Errorf("%w: key package of suite %#04x", ErrWrongSuite, uint16(myKP.CipherSuite))
	}
	if !bytes.Equal(signer.Public(), myKP.LeafNode.SignatureKey) {
		return nil, nil, errors.New("the signer is not the key package's signature key")
	}
	var ep ExternalPub
	if ok, err := decodeExtension(gi.Extensions, ExtExternalPub, &ep); err != nil || !ok {
		return nil, nil, fmt.Errorf("GroupInfo without a valid external_pub extension (%v)", err)
	}
	// The group as it is, seen from outside: enough to stage the
	// proposals and compute the transcript.
	outside, err := outsideView(s, gi, ratchetTree, opts)
	if err != nil {
		return nil, nil, err
	}
	outside.signer = signer
	ctx, tree := outside.ctx, outside.tree

	kemOutput, initSecret, err := s.ExternalInit(ep.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	defer clear(initSecret)
	ps := []stagedProposal{}
	committer := Sender{Type: SenderNewMemberCommit}
	for _, l := range tree.Members() {
		if bytes.Equal(tree.Leaf(l).SignatureKey, signer.Public()) {
			ps = append(ps, stagedProposal{sender: committer, proposal: &RemoveProposal{Removed: l}})
		}
	}
	ps = append(ps, stagedProposal{sender: committer, proposal: &ExternalInitProposal{KEMOutput: kemOutput}})
	st, err := outside.stage(committer, ps, nil)
	if err != nil {
		return nil, nil, err
	}
	template, err := cloneLeafNode(&myKP.LeafNode)
	if err != nil {
		return nil, nil, err
	}
	me, err := st.tree.AddLeaf(template)
	if err != nil {
		return nil, nil, err
	}
	prov := ctx
	prov.Epoch++
	cp, err := st.tree.CreateUpdatePath(me, PathParams{Signer: signer, LeafNode: template, Context: prov, Rand: rand})
	if err != nil {
		return nil, nil, err
	}
	defer cp.Erase()
	if err := opts.validateLeaf(st.tree.Leaf(me), me); err != nil {
		return nil, nil, err
	}
	st.keys = cp.Keys()
	commit := &Commit{Proposals: make([]ProposalOrRef, len(ps)), Path: &cp.Path}
	for i, p := range ps {
		commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p.proposal}
	}
	content := &FramedContent{GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: committer,
		AuthenticatedData: []byte{}, ContentType: ContentCommit, Commit: commit}
	ac, err := s.SignContent(WireFormatPublicMessage, content, &ctx, signer)
	if err != nil {
		return nil, nil, err
	}
	commitSecret := cp.CommitSecret()
	defer clear(commitSecret)
	next, err := outside.nextEpoch(st, ac, initSecret, commitSecret)
	if err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = next.confirmationTag
	pm, err := s.ProtectPublic(ac, &ctx, nil)
	if err != nil {
		next.erase()
		return nil, nil, err
	}
	g := &Group{suite: s, signer: signer, opts: opts, epochState: next, updateKeys: map[string]HPKEPrivateKey{}}
	return g, &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}, nil
}

// outsideView checks a GroupInfo and the group's ratchet tree (rt, or
// gi's ratchet_tree extension) as one who follows or joins the group from
// outside must (RFC 9420, section 12.4.3.2): the version, the context
// extensions, the signature by the signer's leaf, the tree in full
// (Tree.Validate, the tree hash included) and every member's leaf
// against opts.ValidateLeaf. It returns the group as it is seen from
// outside, without keys or secrets: suite, options, a copy of the
// GroupContext, the tree and the interim transcript hash, enough to stage
// a commit's proposals and compute the transcript.
func outsideView(s *Suite, gi *GroupInfo, rt RatchetTree, opts GroupOptions) (*Group, error) {
	tree, err := treeFor(s, gi, rt)
	if err != nil {
		return nil, err
	}
	ctx := gi.GroupContext.clone()
	if ctx.Version != MLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrWrongSuite, ctx.Version)
	}
	if err := checkContextExtensions(&ctx); err != nil {
		return nil, err
	}
	signerLeaf := tree.Leaf(gi.Signer)
	if signerLeaf == nil {
		return nil, fmt.Errorf("%w: GroupInfo signer %d is a blank leaf", ErrUnknownSender, gi.Signer)
	}
	if err := s.VerifyGroupInfo(gi, signerLeaf.SignatureKey); err != nil {
		return nil, err
	}
	if err := tree.Validate(&ctx); err != nil {
		return nil, err
	}
	for _, l := range tree.Members() {
		if err := opts.validateLeaf(tree.Leaf(l), l); err != nil {
			return nil, err
		}
	}
	return &Group{
		suite: s, opts: opts,
		epochState: epochState{ctx: ctx, tree: tree,
			interim: s.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)},
		updateKeys: map[string]HPKEPrivateKey{},
	}, nil
}
