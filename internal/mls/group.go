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

// The group state machine (RFC 9420, sections 11 and 12): a member's view
// of one group, moved from epoch to epoch by the commits it makes and the
// ones it receives, and the application messages of each epoch.
//
// A Group is created by NewGroup (a new one-member group), JoinFromWelcome
// (added by a member) or ExternalJoin (joining by external commit). It is
// not safe for concurrent use.
//
// Hotline's rules on top of RFC 9420, enforced here:
//
//   - Handshake messages (proposals and commits) are sent as
//     PublicMessage, so the delivery service can check and order them.
//     PrivateMessage handshakes from others are still processed.
//   - A commit is applied by its sender only once the delivery service
//     accepted it: Commit returns a pending state, MergePending applies
//     it, DiscardPending drops it when another commit won the epoch.
//   - External senders (the server) may propose Remove, never Add: an
//     Add by an external sender or a new member is refused with
//     ErrExternalAdd.
//   - A member commits pending proposals before sending application
//     data: Encrypt refuses with ErrPendingProposals while any is cached.
//   - Every leaf that enters the tree (added, updated, a commit's path,
//     the existing members a joiner finds) passes the application's
//     GroupOptions.ValidateLeaf, where Hotline checks the member against
//     the conversation's policy and the transparency log.

// Errors of the group state machine. Each is wrapped with detail; test with
// errors.Is. Messages for another epoch wrap ErrWrongEpoch, for another
// group ErrWrongGroup (protection.go).
var (
	// ErrInvalidProposal: a proposal is malformed or not allowed for its
	// sender or the group (RFC 9420, section 12.1).
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit: a commit breaks RFC 9420, sections 12.2 and 12.4:
	// an invalid proposal list, a path missing where required, an unknown
	// proposal reference, a wrong confirmation tag (which also wraps
	// ErrBadMAC).
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrExternalAdd: an external sender or a new member proposed an Add.
	// Hotline's server may propose Remove, never Add.
	ErrExternalAdd = errors.New("mls: Add proposed from outside the group")
	// ErrLeafRefused: GroupOptions.ValidateLeaf refused a leaf; the
	// hook's error is wrapped too.
	ErrLeafRefused = errors.New("mls: leaf refused by the application")
	// ErrPendingProposals: application data cannot be sent while
	// proposals of the epoch wait to be committed.
	ErrPendingProposals = errors.New("mls: proposals must be committed first")
	// ErrCommitPending: a commit of this member awaits MergePending or
	// DiscardPending.
	ErrCommitPending = errors.New("mls: a commit is pending")
	// ErrNoPendingCommit: MergePending or DiscardPending without a
	// pending commit.
	ErrNoPendingCommit = errors.New("mls: no pending commit")
	// ErrInactive: the group can no longer be used: this member was
	// removed, or the group was re-initialised (see ReInit).
	ErrInactive = errors.New("mls: group no longer active")
	// ErrNotMember: a Welcome's tree does not hold this member's leaf.
	ErrNotMember = errors.New("mls: not a member of the group")
	// ErrInvalidState: a stored group state is malformed, of an unknown
	// version, or inconsistent.
	ErrInvalidState = errors.New("mls: invalid group state")
)

// GroupOptions are a member's settings for a group. They are not part of
// the stored state: pass them again to UnmarshalGroupState.
type GroupOptions struct {
	// ValidateLeaf is the credential-validation hook: it is called for
	// every leaf node entering the tree, added or updated, by commits this
	// member makes and commits it receives, for the committer's new leaf
	// of every update path, and for every member a joiner finds in the
	// tree. idx is the leaf's index in the new tree. An error refuses the
	// leaf, and with it the commit or join (wrapped in ErrLeafRefused).
	// nil accepts every leaf that RFC 9420's own checks accept.
	ValidateLeaf func(leaf *LeafNode, idx LeafIndex) error
	// PaddingBlock pads PrivateMessage plaintexts to a multiple of this
	// many bytes (0 or 1: none).
	PaddingBlock int
	// UseRatchetTreeExtension puts the ratchet tree in the GroupInfo of
	// the Welcomes this member makes, so joiners need no copy out of band.
	UseRatchetTreeExtension bool
	// PSKs looks up external pre-shared keys by ID (nil: none held).
	PSKs PSKFunc
	// Now is the clock key package lifetimes are checked against (nil:
	// time.Now). A Now that returns the zero time skips lifetime checks,
	// for replaying recorded groups.
	Now func() time.Time
	// ResumptionPSKEpochs is how many past epochs' resumption PSKs the
	// group keeps for PSK proposals that name them (0: 8).
	ResumptionPSKEpochs int
}

func (o *GroupOptions) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *GroupOptions) keepEpochs() int {
	if o.ResumptionPSKEpochs <= 0 {
		return 8
	}
	return o.ResumptionPSKEpochs
}

// validateLeaf runs the hook.
func (o *GroupOptions) validateLeaf(ln *LeafNode, l LeafIndex) error {
	if o.ValidateLeaf == nil {
		return nil
	}
	if err := o.ValidateLeaf(ln, l); err != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrLeafRefused, l, err)
	}
	return nil
}

// epochState is everything a member holds of one epoch.
type epochState struct {
	ctx             GroupContext
	tree            *Tree
	keys            *TreePrivateKeys
	secrets         *EpochSecrets
	secretTree      *SecretTree
	interim         []byte // interim transcript hash
	confirmationTag []byte // of the commit that started the epoch

	// treeEnc caches the encoding of tree for MarshalState: an epoch's
	// tree never changes, and a device saves its state after every message
	// it sends or receives, so the tree (the bulk of the state in a large
	// post-quantum group) is encoded once per epoch, not every time.
	treeEnc treeEncoding
}

// treeEncoding is a tree's encoding, valid while tree is the epoch's.
type treeEncoding struct {
	tree *Tree
	b    []byte
}

func (e *epochState) erase() {
	if e.secrets != nil {
		e.secrets.Erase()
	}
	if e.secretTree != nil {
		e.secretTree.Erase()
	}
	if e.keys != nil {
		e.keys.Erase()
	}
}

// cachedProposal is a proposal received (or sent) in the current epoch,
// kept until a commit covers it or the epoch ends.
type cachedProposal struct {
	ref      []byte
	sender   Sender
	proposal Proposal
}

// pendingCommit is a commit this member made, awaiting the delivery
// service's verdict.
type pendingCommit struct {
	next    epochState
	message []byte // the commit's MLSMessage, to recognise an echo
	result  commitEffects
}

// commitEffects is what a commit did, beyond the new epoch.
type commitEffects struct {
	added, removed, updated []LeafIndex
	reinit                  *ReInitProposal
}

// resumptionPSK is a past epoch's resumption_psk.
type resumptionPSK struct {
	epoch  uint64
	secret secret
}

// Group is a member's state of one MLS group. It prints only redacted.
type Group struct {
	suite  *Suite
	signer SignaturePrivateKey
	opts   GroupOptions

	epochState
	proposals []cachedProposal
	// updateKeys holds the private leaf keys of this member's Update
	// proposals of the epoch, by proposal reference.
	updateKeys map[string]HPKEPrivateKey
	pending    *pendingCommit
	resumption []resumptionPSK

	removed bool
	reinit  *ReInitProposal
}

// Member is one member of the group: its leaf index and leaf node (read
// only).
type Member struct {
	Index LeafIndex
	Leaf  *LeafNode
}

// NewGroup creates a group with this member alone at epoch 0 (RFC 9420,
// section 11): myKeyPackage's leaf node becomes leaf 0, secrets.Encryption
// its private key; signer must be the leaf's signature key. ctxExtensions
// are the GroupContext's extensions (such as external_senders and
// Hotline's classification), which the leaf must support. The first
// init_secret comes from rand (nil: crypto/rand).
func NewGroup(rand io.Reader, suite *Suite, groupID []byte, myKeyPackage *KeyPackage, secrets KeyPackageSecrets, signer SignaturePrivateKey, ctxExtensions []Extension, opts GroupOptions) (*Group, error) {
	if suite == nil || myKeyPackage == nil {
		return nil, errors.New("mls: new group: no suite or key package")
	}
	if myKeyPackage.CipherSuite != suite.id {
		return nil, fmt.Errorf("mls: new group: %w: key package of suite %#04x", ErrWrongSuite, uint16(myKeyPackage.CipherSuite))
	}
	if !bytes.Equal(signer.Public(), myKeyPackage.LeafNode.SignatureKey) {
		return nil, errors.New("mls: new group: the signer is not the key package's signature key")
	}
	leaf, err := cloneLeafNode(&myKeyPackage.LeafNode)
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	tree, err := NewOneMemberTree(suite, leaf)
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	ctx := GroupContext{
		Version: MLS10, CipherSuite: suite.id, GroupID: bytes.Clone(groupID), Epoch: 0,
		TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: []byte{}, Extensions: cloneExtensions(ctxExtensions),
	}
	if err := checkContextExtensions(&ctx); err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	g, err := newGroupRequirements(tree, &ctx)
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	if err := g.check(leaf, 0); err != nil {
		return nil, fmt.Errorf("mls: new group: own leaf: %w", err)
	}
	if err := opts.validateLeaf(leaf, 0); err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	keys, err := NewTreePrivateKeys(tree, 0, secrets.Encryption)
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	initSecret, err := readRandom(rand, suite.nh)
	if err != nil {
		return nil, err
	}
	es, err := suite.NewEpochSecrets(initSecret, nil, nil, &ctx)
	clear(initSecret)
	if err != nil {
		return nil, fmt.Errorf("mls: new group: %w", err)
	}
	st, err := es.SecretTree(tree.Leaves())
	if err != nil {
		es.Erase()
		return nil, err
	}
	tag := es.ConfirmationTag(ctx.ConfirmedTranscriptHash)
	return &Group{
		suite: suite, signer: signer, opts: opts,
		epochState: epochState{
			ctx: ctx, tree: tree, keys: keys, secrets: es, secretTree: st,
			interim: suite.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, tag), confirmationTag: tag,
		},
		updateKeys: map[string]HPKEPrivateKey{},
	}, nil
}

// checkContextExtensions checks that the GroupContext extensions this
// package interprets decode.
func checkContextExtensions(ctx *GroupContext) error {
	if _, err := decodeExtension(ctx.Extensions, ExtExternalSenders, new(ExternalSenders)); err != nil {
		return err
	}
	if _, err := decodeExtension(ctx.Extensions, ExtRequiredCapabilities, new(RequiredCapabilities)); err != nil {
		return err
	}
	return nil
}

func cloneExtensions(exts []Extension) []Extension {
	out := make([]Extension, len(exts))
	for i, e := range exts {
		out[i] = Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return out
}

// Suite returns the group's cipher suite.
func (g *Group) Suite() *Suite { return g.suite }

// GroupID returns the group's ID.
func (g *Group) GroupID() []byte { return bytes.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// GroupContext returns a copy of the current GroupContext.
func (g *Group) GroupContext() GroupContext { return g.ctx.clone() }

// clone returns a deep copy of c.
func (c *GroupContext) clone() GroupContext {
	d := *c
	d.GroupID = bytes.Clone(c.GroupID)
	d.TreeHash = bytes.Clone(c.TreeHash)
	d.ConfirmedTranscriptHash = bytes.Clone(c.ConfirmedTranscriptHash)
	d.Extensions = cloneExtensions(c.Extensions)
	return d
}

// TreeHash returns the tree hash of the current ratchet tree.
func (g *Group) TreeHash() []byte { return bytes.Clone(g.ctx.TreeHash) }

// Members returns the members in leaf order. The leaf nodes are the
// tree's: treat them as read-only.
func (g *Group) Members() []Member {
	var ms []Member
	for _, l := range g.tree.Members() {
		ms = append(ms, Member{Index: l, Leaf: g.tree.Leaf(l)})
	}
	return ms
}

// MyLeaf returns this member's leaf index.
func (g *Group) MyLeaf() LeafIndex { return g.keys.Leaf() }

// EpochAuthenticator returns the epoch's epoch_authenticator, which
// members can compare out of band.
func (g *Group) EpochAuthenticator() []byte { return g.secrets.EpochAuthenticator() }

// Export is the MLS exporter (RFC 9420, section 8.5) of the current epoch.
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.secrets.Export(label, context, length)
}

// RatchetTree returns a copy of the ratchet tree, to give to joiners out
// of band.
func (g *Group) RatchetTree() RatchetTree {
	rt, err := UnmarshalRatchetTree(g.tree.Marshal())
	if err != nil {
		panic("mls: own ratchet tree does not re-encode: " + err.Error())
	}
	return rt
}

// PendingProposal is a proposal cached in the current epoch.
type PendingProposal struct {
	Ref      []byte
	Sender   Sender
	Proposal Proposal
}

// PendingProposals returns the proposals received or sent in this epoch
// and not yet committed.
func (g *Group) PendingProposals() []PendingProposal {
	var ps []PendingProposal
	for _, p := range g.proposals {
		ps = append(ps, PendingProposal{Ref: bytes.Clone(p.ref), Sender: p.sender, Proposal: p.proposal})
	}
	return ps
}

// Removed reports whether this member was removed from the group.
func (g *Group) Removed() bool { return g.removed }

// ReInit returns the ReInit proposal a commit applied, after which the
// group carries no more application data, or nil.
func (g *Group) ReInit() *ReInitProposal { return g.reinit }

// ResumptionPSK returns the resumption_psk of epoch, if the group still
// holds it (the current epoch's, and a few past ones'): for a ReInit or a
// branch. The caller owns the copy.
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, bool) {
	if epoch == g.ctx.Epoch {
		return g.secrets.ResumptionPSK(), true
	}
	for _, r := range g.resumption {
		if r.epoch == epoch {
			return r.secret.clone(), true
		}
	}
	return nil, false
}

// active reports ErrInactive.
func (g *Group) active() error {
	switch {
	case g.removed:
		return fmt.Errorf("%w: this member was removed", ErrInactive)
	case g.reinit != nil:
		return fmt.Errorf("%w: the group was re-initialised", ErrInactive)
	}
	return nil
}

// String returns a redacted form.
func (g *Group) String() string {
	if g == nil || g.suite == nil {
		return "mls-group(nil)"
	}
	return fmt.Sprintf("mls-group(REDACTED, %s, group=%x, epoch=%d, leaf=%d)", g.suite.name, g.ctx.GroupID, g.ctx.Epoch, g.keys.Leaf())
}

// GoString implements fmt.GoStringer with the redacted form.
func (g *Group) GoString() string { return g.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (g *Group) LogValue() slog.Value { return slog.StringValue(g.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (g *Group) Format(f fmt.State, _ rune) { io.WriteString(f, g.String()) }

// Encrypt protects application data as a PrivateMessage of the current
// epoch (RFC 9420, section 6.3), padded per GroupOptions.PaddingBlock. It
// refuses with ErrPendingProposals while proposals wait to be committed,
// ErrCommitPending while this member's commit awaits its verdict, and
// ErrInactive once the group is no longer usable.
func (g *Group) Encrypt(rand io.Reader, plaintext, authenticatedData []byte) (*MLSMessage, error) {
	if err := g.active(); err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	if g.pending != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", ErrCommitPending)
	}
	if len(g.proposals) > 0 {
		return nil, fmt.Errorf("mls: encrypt: %w: %d", ErrPendingProposals, len(g.proposals))
	}
	content := &FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: Sender{Type: SenderMember, Leaf: g.MyLeaf()},
		AuthenticatedData: authenticatedData, ContentType: ContentApplication, ApplicationData: plaintext,
	}
	ac, err := g.suite.SignContent(WireFormatPrivateMessage, content, &g.ctx, g.signer)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	pm, err := g.suite.ProtectPrivate(ac, g.secretTree, g.secrets.senderData.bytes(), g.opts.PaddingBlock, rand)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}, nil
}

// externalSenders returns the group's external_senders extension.
func (g *Group) externalSenders() (ExternalSenders, error) {
	var es ExternalSenders
	if _, err := decodeExtension(g.ctx.Extensions, ExtExternalSenders, &es); err != nil {
		return nil, err
	}
	return es, nil
}

// signatureKey is the group's SignatureKeyFunc (see protection.go).
func (g *Group) signatureKey(tree *Tree) SignatureKeyFunc {
	return func(c *FramedContent) ([]byte, error) {
		switch c.Sender.Type {
		case SenderMember:
			ln := tree.Leaf(c.Sender.Leaf)
			if ln == nil {
				return nil, fmt.Errorf("%w: leaf %d is blank or outside the tree", ErrUnknownSender, c.Sender.Leaf)
			}
			return ln.SignatureKey, nil
		case SenderExternal:
			es, err := g.externalSenders()
			if err != nil {
				return nil, err
			}
			if uint64(c.Sender.ExternalIndex) >= uint64(len(es)) {
				return nil, fmt.Errorf("%w: external sender %d of %d", ErrUnknownSender, c.Sender.ExternalIndex, len(es))
			}
			return es[c.Sender.ExternalIndex].SignatureKey, nil
		case SenderNewMemberCommit:
			if c.Commit == nil || c.Commit.Path == nil {
				return nil, fmt.Errorf("%w: external commit without a path", ErrInvalidCommit)
			}
			return c.Commit.Path.LeafNode.SignatureKey, nil
		case SenderNewMemberProposal:
			if a, ok := c.Proposal.(*AddProposal); ok {
				return a.KeyPackage.LeafNode.SignatureKey, nil
			}
		}
		return nil, fmt.Errorf("%w: sender type %d", ErrUnknownSender, c.Sender.Type)
	}
}

// keepResumption records the current epoch's resumption PSK before the
// group leaves it, keeping the last few.
func (g *Group) keepResumption() {
	g.resumption = append(g.resumption, resumptionPSK{epoch: g.ctx.Epoch, secret: newSecret(g.secrets.ResumptionPSK())})
	if n := len(g.resumption) - g.opts.keepEpochs(); n > 0 {
		for _, r := range g.resumption[:n] {
			r.secret.erase()
		}
		g.resumption = slices.Delete(g.resumption, 0, n)
	}
}

// advance moves the group to next, erasing the epoch it leaves and any
// pending commit of this member.
func (g *Group) advance(next epochState, fx commitEffects) {
	g.keepResumption()
	// next holds copies of everything it shares with the old epoch (the
	// private keys are a clone), so the old one can be erased whole.
	g.epochState.erase()
	g.epochState = next
	g.proposals = nil
	clear(g.updateKeys)
	if g.pending != nil {
		// A commit of this member that lost the epoch (MergePending
		// clears pending before calling advance).
		g.pending.next.erase()
		g.pending = nil
	}
	if fx.reinit != nil {
		g.reinit = fx.reinit
	}
}
