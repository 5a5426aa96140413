package deliver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/conversation"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Conversations. The service keeps each conversation's public MLS state
// (mls.PublicGroup: the ratchet tree and GroupContext, no secret) and
// accepts its messages one at a time, in order:
//
//   - Handshakes (proposals and commits) arrive as PublicMessage, so the
//     service verifies their signatures, applies them to its view of the
//     tree, and checks every leaf that enters the group: a device of this
//     organisation, active, its user enabled, cleared for the
//     conversation's classification and compartments, with a valid
//     credential naming the leaf's key; and the committer may contact the
//     added user under the contact policy. Where the classification
//     requires the organisation's archive device, no member may remove it
//     unless it lapsed (checkArchiveKept). A hand-crafted commit is held
//     to the same rules as one made through the client.
//   - Exactly one commit per epoch is accepted: a message for an epoch the
//     conversation has left gets epoch_moved, and the sender processes
//     what it was sent and tries again.
//   - Application messages arrive as PrivateMessage and are opaque; the
//     service checks only their clear header (group, epoch, content type).
//     While proposals of the epoch wait to be committed (the service's own
//     Removes of lapsed devices among them) they are refused with
//     commit_required.
//
// Accepted messages are numbered and stored once per conversation; every
// member device receives them in order, at least once, until it
// acknowledges them (Messages, Ack, and the event stream), each with the
// conversation's message chain after it. Membership changes are written
// to the transparency log in the transaction that accepts them, and the
// chains' heads periodically (chains.go).

// Limits on conversations.
const (
	// MaxMessage bounds one MLS message (a commit of a large post-quantum
	// group carries a path of ML-KEM ciphertexts) and MaxWelcome a Welcome
	// (its GroupInfo carries the ratchet tree).
	MaxMessage = 1 << 20
	MaxWelcome = 4 << 20
	// maxGroupID bounds a group ID (RFC 9420 allows 255 bytes).
	maxGroupID = 255
	// MaxFetch bounds one page of messages.
	MaxFetch = 500
)

// WelcomeEvent is the event type that carries a Welcome to an added
// device; its payload is a WelcomePayload.
const WelcomeEvent = "conversation.welcome"

// WelcomePayload is a WelcomeEvent's payload.
type WelcomePayload struct {
	Conversation string `json:"conversation"` // group ID, unpadded base64url
	Seq          int64  `json:"seq"`          // the commit that added the device
	Epoch        uint64 `json:"epoch"`        // the epoch the Welcome starts
	Welcome      []byte `json:"welcome"`      // MLSMessage
}

// ConversationID is the name of a group ID on the wire and in the log.
func ConversationID(groupID []byte) string { return base64.RawURLEncoding.EncodeToString(groupID) }

// ParseConversationID parses a conversation ID.
func ParseConversationID(id string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(b) == 0 || len(b) > maxGroupID {
		return nil, apierr.New(apierr.BadRequest, "%.80q is not a conversation ID", id)
	}
	return b, nil
}

func mlsInvalid(format string, args ...any) *apierr.Error {
	return apierr.New(apierr.MLSInvalid, format, args...)
}

// View is a conversation as the service shows it to a member: routing
// metadata and classification, never content.
type View struct {
	store.Conversation
	Members []store.ConversationMember
}

// checkedLeaf is what the leaf check found out about a leaf.
type checkedLeaf struct {
	cred   identity.Credential
	user   store.User
	device store.Device
}

// leafChecker checks leaves entering a group against the directory, and
// remembers what it found for each leaf index.
type leafChecker struct {
	s     *Service
	ctx   context.Context
	tx    *store.Tx
	class conversation.Classification
	now   time.Time
	seen  map[mls.LeafIndex]checkedLeaf
}

func (s *Service) leafChecker(ctx context.Context, tx *store.Tx, class conversation.Classification) *leafChecker {
	return &leafChecker{s: s, ctx: ctx, tx: tx, class: class, now: s.cfg.Now(), seen: map[mls.LeafIndex]checkedLeaf{}}
}

// check is the PublicGroup's ValidateLeaf hook. Its errors are
// *apierr.Error, which the caller finds inside mls.ErrLeafRefused.
func (c *leafChecker) check(leaf *mls.LeafNode, idx mls.LeafIndex) error {
	if c.s.cfg.Misbehave.SkipMemberChecks {
		return nil
	}
	if leaf.Credential.Type != mls.CredentialBasic {
		return mlsInvalid("leaf %d: not a Hotline credential", idx)
	}
	cred, err := identity.OpenCredential(leaf.Credential.Identity, c.s.cfg.Issuers, c.now)
	if err != nil {
		return mlsInvalid("leaf %d: the credential does not verify: %v", idx, err)
	}
	if !bytes.Equal(cred.SigKey[:], leaf.SignatureKey) {
		return mlsInvalid("leaf %d: the credential is for another signature key", idx)
	}
	d, err := c.tx.GetDevice(c.ctx, cred.Device)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.NotFound, "leaf %d: no device %s in this organisation", idx, cred.Device)
	} else if err != nil {
		return err
	}
	if d.User != cred.User || d.SigKey != cred.SigKey {
		return mlsInvalid("leaf %d: device %s is not the credential's", idx, d.ID)
	}
	if d.Status != store.DeviceActive {
		return apierr.New(apierr.DeviceRevoked, "leaf %d: device %s of %s is %s", idx, d.ID, d.User, d.Status)
	}
	u, err := c.tx.GetUser(c.ctx, d.User)
	if err != nil {
		return err
	}
	if u.Disabled {
		return apierr.New(apierr.UserDisabled, "leaf %d: user %s is disabled", idx, u.ID)
	}
	// The directory, not the credential, decides: a credential issued
	// before a clearance was lowered still claims the old one.
	for _, cl := range []struct {
		level identity.Clearance
		comps identity.Compartments
	}{{u.Clearance, u.Compartments}, {cred.Clearance, cred.Compartments}} {
		if cl.level < c.class.Level || !cl.comps.Contains(c.class.Compartments) {
			return apierr.New(apierr.ClearanceInsufficient, "%s (cleared %s, compartments %s) may not be in a %s conversation",
				u.ID, u.Clearance, orNone(u.Compartments), classString(c.class))
		}
	}
	c.seen[idx] = checkedLeaf{cred: cred, user: u, device: d}
	return nil
}

func classString(c conversation.Classification) string {
	if len(c.Compartments) == 0 {
		return c.Level.String()
	}
	return c.Level.String() + " " + c.Compartments.String()
}

func orNone(c identity.Compartments) string {
	if len(c) == 0 {
		return "none"
	}
	return c.String()
}

// leafRefused turns an error of the mls package into the API error inside
// it (the leaf check's), or mls_invalid.
func leafRefused(err error, what string) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, mls.ErrWrongEpoch) {
		return apierr.New(apierr.EpochMoved, "the conversation has moved past that epoch").
			WithHint("process the conversation's messages, then send again")
	}
	return apierr.Wrap(err, apierr.MLSInvalid, "%s: %s", what, publicMLSError(err))
}

// publicMLSError is the mls package's description of what was wrong,
// which names structures and indexes, never content.
func publicMLSError(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// checkGroupExtensions checks a GroupContext's extensions are a Hotline
// conversation's: a valid classification, and the organisation's delivery
// service as the only external sender.
func (s *Service) checkGroupExtensions(exts []mls.Extension) (conversation.Classification, error) {
	class, err := conversation.FromGroupContext(exts)
	if err != nil {
		return class, mlsInvalid("%v", err)
	}
	if err := conversation.CheckExternalSenders(exts, []identity.KeySet{s.cfg.KeySet}); err != nil {
		return class, mlsInvalid("%v", err)
	}
	return class, nil
}

func (s *Service) publicGroupOptions(lc *leafChecker) mls.PublicGroupOptions {
	return mls.PublicGroupOptions{ValidateLeaf: lc.check, Now: s.cfg.Now}
}

// txState is what a transaction did that must be acted on after it
// commits.
type txState struct {
	woken  []string // devices with new events
	pushes []push   // messages for recipients' live connections
	logged bool
}

type push struct {
	m  events.Message
	to []string
}

// push hands a stored message to its recipients' connections once the
// transaction commits.
func (t *txState) push(m store.ConversationMessage, to []string) {
	t.pushes = append(t.pushes, push{to: to, m: pushed(m)})
}

func pushed(m store.ConversationMessage) events.Message {
	return events.Message{Conversation: ConversationID(m.GroupID), Seq: m.Seq, Epoch: m.Epoch,
		Kind: m.Kind, Sender: m.Sender, Data: m.Data, Time: m.CreatedAt, Chain: m.Chain}
}

func (t *txState) logEntry(ctx context.Context, tx *store.Tx, now time.Time, e tlog.Entry) error {
	e.Time = now.Unix()
	data, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("log entry %s: %w", e.Type, err)
	}
	t.logged = true
	return tx.AppendPending(ctx, data)
}

// update runs fn in a transaction, then waits for its log entries to be
// in a signed checkpoint and wakes the devices it queued messages for.
func (s *Service) update(ctx context.Context, fn func(tx *store.Tx, ts *txState) error) error {
	var ts txState
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		ts = txState{}
		return fn(tx, &ts)
	})
	if err != nil {
		return storeErr(err)
	}
	if ts.logged && s.cfg.Log != nil {
		if err := s.cfg.Log.Sync(ctx); err != nil {
			s.cfg.Logger.Warn("log entry committed but not yet checkpointed", "err", err)
		}
	}
	if s.cfg.Hub != nil {
		for _, p := range ts.pushes {
			s.cfg.Hub.Push(p.m, p.to...)
		}
		s.cfg.Hub.Wake(ts.woken...)
	}
	return nil
}

// CreateConversation registers a new conversation from its creator's
// GroupInfo at epoch 0 (an MLSMessage, with the ratchet tree extension):
// the creator's device must be its only member, the group must carry a
// classification the creator is cleared for and name the organisation's
// delivery service as its only external sender.
func (s *Service) CreateConversation(ctx context.Context, a org.Actor, raw []byte) (View, error) {
	if len(raw) > MaxMessage {
		return View{}, apierr.New(apierr.TooLarge, "a GroupInfo has at most %d bytes", MaxMessage)
	}
	m, err := mls.UnmarshalMLSMessage(raw)
	if err != nil || m.WireFormat != mls.WireFormatGroupInfo || m.GroupInfo == nil {
		return View{}, mlsInvalid("not an MLS GroupInfo message")
	}
	gi := m.GroupInfo
	gc := gi.GroupContext
	if _, err := mls.SuiteFor(gc.CipherSuite); err != nil {
		return View{}, mlsInvalid("cipher suite %#04x is not supported", uint16(gc.CipherSuite))
	}
	if len(gc.GroupID) == 0 || len(gc.GroupID) > maxGroupID {
		return View{}, mlsInvalid("a group ID has 1 to %d bytes", maxGroupID)
	}
	if gc.Epoch != 0 {
		return View{}, mlsInvalid("a new conversation starts at epoch 0, not %d", gc.Epoch)
	}
	class, err := s.checkGroupExtensions(gc.Extensions)
	if err != nil {
		return View{}, err
	}
	if s.cfg.RequireArchive && !class.ArchiveRequired {
		return View{}, mlsInvalid("this organisation requires its archive member in every conversation").
			WithHint("mark the conversation's classification as requiring the archive")
	}
	now := s.cfg.Now()
	var v View
	err = s.update(ctx, func(tx *store.Tx, ts *txState) error {
		lc := s.leafChecker(ctx, tx, class)
		pg, err := mls.NewPublicGroup(gi, nil, s.publicGroupOptions(lc))
		if err != nil {
			return leafRefused(err, "group info")
		}
		ms := pg.Members()
		if len(ms) != 1 || !bytes.Equal(ms[0].Leaf.SignatureKey, a.Device.SigKey[:]) {
			return mlsInvalid("a new conversation has one member, the creating device")
		}
		state, err := pg.Marshal()
		if err != nil {
			return err
		}
		c := store.Conversation{GroupID: gc.GroupID, CipherSuite: uint16(gc.CipherSuite), State: state, Level: class.Level,
			Compartments: class.Compartments, CreatedBy: a.Device.ID, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateConversation(ctx, c); errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.Conflict, "a conversation with that group ID exists")
		} else if err != nil {
			return err
		}
		member := store.ConversationMember{GroupID: c.GroupID, Device: a.Device.ID, User: a.User.ID, Leaf: uint32(ms[0].Index)}
		if err := tx.PutConversationMember(ctx, member); err != nil {
			return err
		}
		id := ConversationID(c.GroupID)
		if err := ts.logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeConversationCreate, Conversation: id, Actor: a.User.ID.String(),
			ActorDevice: a.Device.ID, Clearance: class.Level.Token(), Compartments: class.Compartments}); err != nil {
			return err
		}
		if err := ts.logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeMemberAdd, Conversation: id, User: a.User.ID.String(),
			Device: a.Device.ID, Actor: a.User.ID.String(), ActorDevice: a.Device.ID}); err != nil {
			return err
		}
		v = View{Conversation: c, Members: []store.ConversationMember{member}}
		return nil
	})
	return v, err
}

// memberCache holds the member devices of conversations' current epochs,
// so that an application message, by far the commonest, needs no read of
// them. Membership changes only with a commit, which starts a new epoch,
// so an entry is right for its epoch on every node. A member that lapses
// within an epoch gets a removal proposal, which stops application
// messages until committed whatever the cache says (the pending count is
// in the store).
type memberCache struct {
	mu      sync.Mutex // guards entries
	entries map[string]memberEntry
}

type memberEntry struct {
	epoch   uint64
	devices []string
}

const maxCachedConversations = 10000

func (m *memberCache) get(groupID []byte, epoch uint64) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[string(groupID)]
	return e.devices, ok && e.epoch == epoch
}

func (m *memberCache) put(groupID []byte, epoch uint64, devices []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil || len(m.entries) >= maxCachedConversations {
		m.entries = map[string]memberEntry{}
	}
	m.entries[string(groupID)] = memberEntry{epoch, devices}
}

// forget drops a conversation's entry (a member lapsed).
func (m *memberCache) forget(groupID []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, string(groupID))
}

// Posted says where an accepted message went.
type Posted struct {
	Seq   int64
	Epoch uint64 // the conversation's epoch after the message
	Kind  int    // the MLS content type
}

// errCommitRequired is returned after the transaction that proposed the
// removal of lapsed members commits.
var errCommitRequired = apierr.New(apierr.CommitRequired, "members of the conversation have lapsed (device revoked or user disabled): the server proposed their removal").
	WithHint("process the conversation's messages, commit the pending proposals, then send again")

// Post accepts one MLS message of a member device: an application message
// (PrivateMessage), or a proposal or commit (PublicMessage); a commit that
// adds members comes with their Welcome.
func (s *Service) Post(ctx context.Context, a org.Actor, groupID []byte, raw, welcome []byte) (Posted, error) {
	if len(raw) > MaxMessage {
		return Posted{}, apierr.New(apierr.TooLarge, "an MLS message has at most %d bytes", MaxMessage)
	}
	if len(welcome) > MaxWelcome {
		return Posted{}, apierr.New(apierr.TooLarge, "a Welcome has at most %d bytes", MaxWelcome)
	}
	msg, err := mls.UnmarshalMLSMessage(raw)
	if err != nil {
		return Posted{}, mlsInvalid("not an MLS message: %v", err)
	}
	if out, ok, err := s.postKnown(ctx, a, groupID, msg, raw, welcome); ok || err != nil {
		return out, err
	}
	var (
		out      Posted
		required bool
	)
	err = s.update(ctx, func(tx *store.Tx, ts *txState) error {
		out, required = Posted{}, false
		switch msg.WireFormat {
		case mls.WireFormatPrivateMessage:
			if welcome != nil {
				return mlsInvalid("a Welcome comes only with a commit")
			}
			return s.postApplication(ctx, tx, ts, a, groupID, msg, raw, &out, &required)
		case mls.WireFormatPublicMessage:
			return s.postHandshake(ctx, tx, ts, a, groupID, msg, raw, welcome, &out)
		}
		return mlsInvalid("a conversation accepts PrivateMessage and PublicMessage, not wire format %d", msg.WireFormat)
	})
	if err == nil && required {
		return out, errCommitRequired
	}
	return out, err
}

// member returns the actor's device's current membership.
func member(ctx context.Context, tx *store.Tx, a org.Actor, groupID []byte) (store.ConversationMember, error) {
	m, err := tx.ConversationMember(ctx, groupID, a.Device.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.LeftSeq != 0 {
		return m, apierr.New(apierr.NotMember, "this device is not a member of the conversation")
	}
	return m, err
}

func lockConversation(ctx context.Context, tx *store.Tx, groupID []byte, withState bool) (store.Conversation, error) {
	var (
		c   store.Conversation
		err error
	)
	if withState {
		c, err = tx.GetConversation(ctx, groupID)
	} else {
		c, err = tx.LockConversation(ctx, groupID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return c, apierr.New(apierr.NotFound, "no such conversation")
	}
	return c, err
}

// postKnown accepts an application message in the common case, without a
// transaction of its own: the members of its epoch are known (cached), and
// the conversation is still at that epoch with nothing pending, which the
// store checks as it appends. ok is false where the full path must decide.
func (s *Service) postKnown(ctx context.Context, a org.Actor, groupID []byte, msg *mls.MLSMessage, raw, welcome []byte) (out Posted, ok bool, err error) {
	pm := msg.PrivateMessage
	if msg.WireFormat != mls.WireFormatPrivateMessage || welcome != nil ||
		!bytes.Equal(pm.GroupID, groupID) || pm.ContentType != mls.ContentApplication {
		return Posted{}, false, nil
	}
	devices, known := s.members.get(groupID, pm.Epoch)
	if !known || !slices.Contains(devices, a.Device.ID) {
		return Posted{}, false, nil
	}
	m := store.ConversationMessage{GroupID: groupID, Epoch: pm.Epoch, Kind: int(mls.ContentApplication),
		Sender: a.Device.ID, Data: raw, CreatedAt: s.cfg.Now()}
	m.Seq, m.Chain, err = s.cfg.Store.AppendApplicationMessage(ctx, m)
	if errors.Is(err, store.ErrConflict) {
		return Posted{}, false, nil
	} else if err != nil {
		return Posted{}, false, storeErr(err)
	}
	if s.cfg.Hub != nil {
		s.cfg.Hub.Push(pushed(m), devices...)
	}
	return Posted{Seq: m.Seq, Epoch: pm.Epoch, Kind: m.Kind}, true, nil
}

func (s *Service) postApplication(ctx context.Context, tx *store.Tx, ts *txState, a org.Actor, groupID []byte, msg *mls.MLSMessage, raw []byte, out *Posted, required *bool) error {
	pm := msg.PrivateMessage
	c, err := lockConversation(ctx, tx, groupID, false)
	if err != nil {
		return err
	}
	switch {
	case !bytes.Equal(pm.GroupID, groupID):
		return mlsInvalid("the message is for another conversation")
	case pm.Epoch < c.Epoch:
		return apierr.New(apierr.EpochMoved, "the conversation has moved to epoch %d", c.Epoch).
			WithHint("process the conversation's messages, then send again")
	case pm.Epoch > c.Epoch:
		return mlsInvalid("the message is for epoch %d; the conversation is at %d", pm.Epoch, c.Epoch)
	case pm.ContentType != mls.ContentApplication:
		return mlsInvalid("proposals and commits are sent as PublicMessage")
	}
	members, err := tx.ConversationMembers(ctx, groupID)
	if err != nil {
		return err
	}
	if !isMember(members, a.Device.ID) {
		return apierr.New(apierr.NotMember, "this device is not a member of the conversation")
	}
	lapsed := lapsedOf(members)
	if len(lapsed) == 0 {
		s.members.put(groupID, c.Epoch, deviceIDs(members))
	} else {
		c, err = lockConversation(ctx, tx, groupID, true)
		if err != nil {
			return err
		}
		n, err := s.proposeRemovals(ctx, tx, ts, c, lapsed)
		if err != nil {
			return err
		}
		if n > 0 || c.Pending > 0 {
			*required = true
			return nil
		}
	}
	if c.Pending > 0 {
		return apierr.New(apierr.CommitRequired, "proposals of this epoch wait to be committed").
			WithHint("process the conversation's messages, commit the pending proposals, then send again")
	}
	m := store.ConversationMessage{GroupID: groupID, Epoch: c.Epoch, Kind: int(mls.ContentApplication),
		Sender: a.Device.ID, Data: raw, CreatedAt: s.cfg.Now()}
	if m.Seq, m.Chain, err = tx.AppendConversationMessage(ctx, m, c.Epoch, nil); err != nil {
		return err
	}
	*out = Posted{Seq: m.Seq, Epoch: c.Epoch, Kind: int(mls.ContentApplication)}
	ts.push(m, deviceIDs(members))
	return nil
}

func isMember(ms []store.ConversationMember, device string) bool {
	for _, m := range ms {
		if m.Device == device {
			return true
		}
	}
	return false
}

func lapsedOf(ms []store.ConversationMember) []store.ConversationMember {
	var out []store.ConversationMember
	for _, m := range ms {
		if m.Lapsed {
			out = append(out, m)
		}
	}
	return out
}

func deviceIDs(ms []store.ConversationMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Device
	}
	return out
}

// proposeRemovals has the delivery service propose removing each lapsed
// member that no pending proposal removes yet, as the group's external
// sender. c must hold the state; it returns how many it proposed.
func (s *Service) proposeRemovals(ctx context.Context, tx *store.Tx, ts *txState, c store.Conversation, lapsed []store.ConversationMember) (int, error) {
	if s.cfg.DeliverySigner.IsZero() {
		return 0, nil
	}
	class := conversation.Classification{Level: c.Level, Compartments: c.Compartments}
	pg, err := mls.UnmarshalPublicGroup(c.State, s.publicGroupOptions(s.leafChecker(ctx, tx, class)))
	if err != nil {
		return 0, fmt.Errorf("conversation %s state: %w", ConversationID(c.GroupID), err)
	}
	removing := map[mls.LeafIndex]bool{}
	for _, p := range pg.PendingProposals() {
		if r, ok := p.Proposal.(*mls.RemoveProposal); ok {
			removing[r.Removed] = true
		}
	}
	var msgs [][]byte
	for _, m := range lapsed {
		l := mls.LeafIndex(m.Leaf)
		if removing[l] || pg.Leaf(l) == nil {
			continue
		}
		p, err := pg.ProposeRemove(s.cfg.DeliverySigner, 0, l)
		if err != nil {
			return 0, fmt.Errorf("propose removing leaf %d: %w", l, err)
		}
		msgs = append(msgs, p.Marshal())
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	state, err := pg.Marshal()
	if err != nil {
		return 0, err
	}
	now := s.cfg.Now()
	members, err := tx.ConversationMembers(ctx, c.GroupID)
	if err != nil {
		return 0, err
	}
	for i, raw := range msgs {
		var st []byte
		if i == len(msgs)-1 {
			st = state
		}
		m := store.ConversationMessage{GroupID: c.GroupID, Epoch: c.Epoch, Kind: int(mls.ContentProposal), Data: raw, CreatedAt: now}
		if m.Seq, m.Chain, err = tx.AppendConversationMessage(ctx, m, c.Epoch, st); err != nil {
			return 0, err
		}
		ts.push(m, deviceIDs(members))
	}
	return len(msgs), nil
}

func (s *Service) postHandshake(ctx context.Context, tx *store.Tx, ts *txState, a org.Actor, groupID []byte, msg *mls.MLSMessage, raw, welcome []byte, out *Posted) error {
	pub := msg.PublicMessage
	content := &pub.Content
	if !bytes.Equal(content.GroupID, groupID) {
		return mlsInvalid("the message is for another conversation")
	}
	c, err := lockConversation(ctx, tx, groupID, true)
	if err != nil {
		return err
	}
	if content.Epoch != c.Epoch {
		if content.Epoch < c.Epoch {
			return apierr.New(apierr.EpochMoved, "another commit took epoch %d; the conversation is at %d", content.Epoch, c.Epoch).
				WithHint("process the conversation's messages, then make your commit again")
		}
		return mlsInvalid("the message is for epoch %d; the conversation is at %d", content.Epoch, c.Epoch)
	}
	me, err := member(ctx, tx, a, groupID)
	if err != nil {
		return err
	}
	if content.Sender.Type != mls.SenderMember || uint32(content.Sender.Leaf) != me.Leaf {
		return apierr.New(apierr.NotMember, "this device holds leaf %d and may send only as that member", me.Leaf)
	}
	class := conversation.Classification{Level: c.Level, Compartments: c.Compartments}
	lc := s.leafChecker(ctx, tx, class)
	pg, err := mls.UnmarshalPublicGroup(c.State, s.publicGroupOptions(lc))
	if err != nil {
		return fmt.Errorf("conversation %s state: %w", ConversationID(groupID), err)
	}
	if content.ContentType == mls.ContentProposal {
		if welcome != nil {
			return mlsInvalid("a Welcome comes only with a commit")
		}
		if _, ok := content.Proposal.(*mls.AddProposal); ok {
			return mlsInvalid("members are added by commit, not by Add proposal")
		}
		if _, ok := content.Proposal.(*mls.ReInitProposal); ok {
			return mlsInvalid("conversations are not re-initialised")
		}
		switch p := content.Proposal.(type) {
		case *mls.GroupContextExtensionsProposal:
			if err := s.checkExtensionChange(pg, p.Extensions); err != nil {
				return err
			}
		case *mls.RemoveProposal:
			// Refused now, or it would wait in the epoch, holding up
			// application messages, and every commit would have to carry it.
			if err := s.checkArchiveKept(ctx, tx, groupID, pg.GroupContext().Extensions,
				[]mls.LeafIndex{p.Removed}, []*mls.LeafNode{pg.Leaf(p.Removed)}); err != nil {
				return err
			}
		}
		if _, err := pg.Process(msg); err != nil {
			return leafRefused(err, "proposal")
		}
		state, err := pg.Marshal()
		if err != nil {
			return err
		}
		m := store.ConversationMessage{GroupID: groupID, Epoch: c.Epoch, Kind: int(mls.ContentProposal),
			Sender: a.Device.ID, Data: raw, CreatedAt: s.cfg.Now()}
		if m.Seq, m.Chain, err = tx.AppendConversationMessage(ctx, m, c.Epoch, state); err != nil {
			return err
		}
		*out = Posted{Seq: m.Seq, Epoch: c.Epoch, Kind: int(mls.ContentProposal)}
		members, err := tx.ConversationMembers(ctx, groupID)
		ts.push(m, deviceIDs(members))
		return err
	}
	if content.ContentType != mls.ContentCommit {
		return mlsInvalid("application data is sent as PrivateMessage")
	}
	if err := s.checkCommitProposals(pg, content.Commit); err != nil {
		return err
	}
	exts := pg.GroupContext().Extensions // the epoch's, before the commit
	pp, err := pg.Process(msg)
	if err != nil {
		return leafRefused(err, "commit")
	}
	if err := s.checkArchiveKept(ctx, tx, groupID, exts, pp.Removed, pp.RemovedLeaves); err != nil {
		return err
	}
	return s.acceptCommit(ctx, tx, ts, a, c, pg, pp, lc, raw, welcome, out)
}

// checkExtensionChange refuses a GroupContextExtensions proposal that
// changes a conversation's classification or external senders: those are
// fixed for its life (a different classification is a new conversation).
func (s *Service) checkExtensionChange(pg *mls.PublicGroup, exts []mls.Extension) error {
	cur := pg.GroupContext().Extensions
	for _, t := range []mls.ExtensionType{conversation.ExtClassification, mls.ExtExternalSenders} {
		a, b := findExt(cur, t), findExt(exts, t)
		if (a == nil) != (b == nil) || a != nil && !bytes.Equal(a.Data, b.Data) {
			return mlsInvalid("a conversation's classification and external senders cannot change")
		}
	}
	return nil
}

func findExt(exts []mls.Extension, t mls.ExtensionType) *mls.Extension {
	for i := range exts {
		if exts[i].Type == t {
			return &exts[i]
		}
	}
	return nil
}

// checkCommitProposals refuses what Hotline does not do in a commit: a
// ReInit, a change of classification or external senders, Add proposals by
// reference (members add by value, as the committer).
func (s *Service) checkCommitProposals(pg *mls.PublicGroup, commit *mls.Commit) error {
	for _, por := range commit.Proposals {
		if por.Type != mls.ProposalOrRefProposal {
			continue
		}
		switch p := por.Proposal.(type) {
		case *mls.ReInitProposal:
			return mlsInvalid("conversations are not re-initialised")
		case *mls.GroupContextExtensionsProposal:
			if err := s.checkExtensionChange(pg, p.Extensions); err != nil {
				return err
			}
		case *mls.ExternalInitProposal:
			return mlsInvalid("external joins are not accepted")
		}
	}
	return nil
}

// checkArchiveKept refuses a proposal or commit that removes the
// organisation's archive device from a conversation whose classification
// requires it (exts: the GroupContext's extensions before the removal;
// removed: the leaves removed, leaves: their leaf nodes, in the same
// order). A lapsed archive device (revoked, or its user disabled) may go:
// the delivery service proposes its removal itself, and members add its
// replacement.
func (s *Service) checkArchiveKept(ctx context.Context, tx *store.Tx, groupID []byte, exts []mls.Extension, removed []mls.LeafIndex, leaves []*mls.LeafNode) error {
	if len(removed) == 0 {
		return nil
	}
	class, err := conversation.FromGroupContext(exts)
	if err != nil {
		return mlsInvalid("%v", err)
	}
	if !class.ArchiveRequired {
		return nil
	}
	members, err := tx.ConversationMembers(ctx, groupID)
	if err != nil {
		return err
	}
	byLeaf := map[uint32]store.ConversationMember{}
	for _, m := range members {
		byLeaf[m.Leaf] = m
	}
	for i, l := range removed {
		m, known := byLeaf[uint32(l)]
		if known && m.Lapsed {
			continue
		}
		var leaf *mls.LeafNode
		if i < len(leaves) {
			leaf = leaves[i]
		}
		archive, err := s.isArchive(ctx, tx, leaf, m, known)
		if err != nil {
			return err
		}
		if archive {
			return mlsInvalid("the archive member cannot be removed from a conversation that requires it (leaf %d)", l).
				WithHint("the organisation's archive device stays in such a conversation; only a revoked one is removed, on the server's proposal, and its replacement added")
		}
	}
	return nil
}

// isArchive reports whether a member is the organisation's archive device:
// its leaf's credential (issued by the organisation) or, in the directory,
// its user holds the archive role. m is the member's row, if known.
func (s *Service) isArchive(ctx context.Context, tx *store.Tx, leaf *mls.LeafNode, m store.ConversationMember, known bool) (bool, error) {
	if leaf != nil && leaf.Credential.Type == mls.CredentialBasic {
		// Not OpenCredential: a member's leaf keeps the credential of its
		// last commit, which may have expired since.
		cred, err := identity.VerifyCredential(leaf.Credential.Identity, s.cfg.Issuers)
		if err == nil && cred.Roles.Has(identity.RoleArchive) {
			return true, nil
		}
	}
	if !known {
		return false, nil
	}
	u, err := tx.GetUser(ctx, m.User)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return u.Roles.Has(identity.RoleArchive), nil
}

func (s *Service) acceptCommit(ctx context.Context, tx *store.Tx, ts *txState, a org.Actor, c store.Conversation, pg *mls.PublicGroup, pp *mls.PublicProcessed,
	lc *leafChecker, raw, welcome []byte, out *Posted) error {
	groupID := c.GroupID
	if pp.Sender.Type != mls.SenderMember {
		return mlsInvalid("external joins are not accepted")
	}
	if len(pp.Added) > 0 {
		w, err := mls.UnmarshalMLSMessage(welcome)
		if welcome == nil || err != nil || w.WireFormat != mls.WireFormatWelcome || w.Welcome == nil {
			return mlsInvalid("a commit that adds members comes with their Welcome")
		}
		if w.Welcome.CipherSuite != pg.Suite().ID() || len(w.Welcome.Secrets) != len(pp.Added) {
			return mlsInvalid("the Welcome is not for the %d members the commit adds", len(pp.Added))
		}
	} else if welcome != nil {
		return mlsInvalid("a Welcome comes only with a commit that adds members")
	}
	members, err := tx.ConversationMembers(ctx, groupID)
	if err != nil {
		return err
	}
	byLeaf := map[uint32]store.ConversationMember{}
	for _, m := range members {
		byLeaf[m.Leaf] = m
	}
	// Leaves that changed hands keep their device: an Update or a path
	// renews a member's keys and credential, never makes it someone else.
	for _, l := range append(append([]mls.LeafIndex{}, pp.Updated...), pp.Committer) {
		if l == pp.Committer && !pp.HasPath {
			continue
		}
		got, ok := lc.seen[l]
		if s.cfg.Misbehave.SkipMemberChecks {
			continue
		}
		if !ok || got.device.ID != byLeaf[uint32(l)].Device {
			return mlsInvalid("leaf %d's new credential is not its device's", l)
		}
	}
	// The committer may contact everyone it adds.
	if !s.cfg.Misbehave.SkipMemberChecks {
		for _, l := range pp.Added {
			got := lc.seen[l]
			if got.user.ID != a.User.ID {
				if _, err := s.cfg.Org.CheckContactTx(ctx, tx, a, got.user.ID); err != nil {
					return err
				}
			}
		}
	}
	lapsed := map[uint32]bool{}
	for _, m := range lapsedOf(members) {
		lapsed[m.Leaf] = true
	}
	state, err := pg.Marshal()
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	cm := store.ConversationMessage{GroupID: groupID, Epoch: c.Epoch, Kind: int(mls.ContentCommit), Sender: a.Device.ID, Data: raw, CreatedAt: now}
	seq, chain, err := tx.AppendConversationMessage(ctx, cm, pp.Epoch, state)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.EpochMoved, "another commit took the epoch").WithHint("process the conversation's messages, then make your commit again")
		}
		return err
	}
	*out = Posted{Seq: seq, Epoch: pp.Epoch, Kind: int(mls.ContentCommit)}
	id := ConversationID(groupID)
	woken := deviceIDs(members)
	for _, l := range pp.Removed {
		m, ok := byLeaf[uint32(l)]
		if !ok {
			return fmt.Errorf("conversation %s: removed leaf %d has no device", id, l)
		}
		if err := tx.LeaveConversation(ctx, groupID, m.Device, seq); err != nil {
			return err
		}
		reason := "removed"
		if lapsed[m.Leaf] {
			reason = "lapsed"
		}
		if err := ts.logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeMemberRemove, Conversation: id, User: m.User.String(), Device: m.Device,
			Reason: reason, Actor: a.User.ID.String(), ActorDevice: a.Device.ID}); err != nil {
			return err
		}
	}
	var added []string
	for _, l := range pp.Added {
		leaf := pg.Leaf(l)
		got, ok := lc.seen[l]
		if !ok { // only when member checks are off: trust the leaf's own credential
			cred, err := identity.VerifyCredential(leaf.Credential.Identity, s.cfg.Issuers)
			if err != nil {
				return mlsInvalid("leaf %d: the credential does not verify", l)
			}
			got.cred, got.user.ID, got.device.ID = cred, cred.User, cred.Device
		}
		if err := tx.PutConversationMember(ctx, store.ConversationMember{GroupID: groupID, Device: got.device.ID, User: got.user.ID,
			Leaf: uint32(l), JoinedSeq: seq}); err != nil {
			return err
		}
		if err := ts.logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeMemberAdd, Conversation: id, User: got.user.ID.String(), Device: got.device.ID,
			Actor: a.User.ID.String(), ActorDevice: a.Device.ID}); err != nil {
			return err
		}
		added = append(added, got.device.ID)
	}
	if len(added) > 0 {
		payload, err := json.Marshal(WelcomePayload{Conversation: id, Seq: seq, Epoch: pp.Epoch, Welcome: welcome})
		if err != nil {
			return err
		}
		for _, d := range added {
			if _, err := tx.PushEvent(ctx, store.Event{DeviceID: d, Type: WelcomeEvent, Payload: payload, CreatedAt: now}); err != nil {
				return err
			}
		}
	}
	cm.Seq, cm.Chain = seq, chain
	ts.push(cm, woken) // the members before the commit, those it removes included
	ts.woken = append(ts.woken, added...)
	// Members who lapsed and are still in the group: propose their removal
	// in the new epoch at once.
	var still []store.ConversationMember
	for _, m := range members {
		if m.Lapsed && !containsLeaf(pp.Removed, m.Leaf) {
			still = append(still, m)
		}
	}
	if len(still) > 0 {
		c.State, c.Epoch = state, pp.Epoch
		if _, err := s.proposeRemovals(ctx, tx, ts, c, still); err != nil {
			return err
		}
	}
	return nil
}

func containsLeaf(ls []mls.LeafIndex, l uint32) bool {
	for _, x := range ls {
		if uint32(x) == l {
			return true
		}
	}
	return false
}

// RemoveLapsed proposes removing a device from every conversation it is in,
// once it was revoked or its user disabled. Posting to those conversations
// would propose it too; this is so members see the proposal at once.
func (s *Service) RemoveLapsed(ctx context.Context, devices ...string) error {
	for _, d := range devices {
		var rows []store.ConversationMember
		if err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) { rows, err = tx.DeviceConversations(ctx, d); return }); err != nil {
			return storeErr(err)
		}
		for _, r := range rows {
			if r.LeftSeq != 0 {
				continue
			}
			s.members.forget(r.GroupID)
			err := s.update(ctx, func(tx *store.Tx, ts *txState) error {
				c, err := lockConversation(ctx, tx, r.GroupID, true)
				if err != nil {
					return err
				}
				ms, err := tx.ConversationMembers(ctx, r.GroupID)
				if err != nil {
					return err
				}
				_, err = s.proposeRemovals(ctx, tx, ts, c, lapsedOf(ms))
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// SweepLapsed proposes the removal of lapsed members wherever no proposal
// does yet (the server calls it periodically, behind RemoveLapsed and the
// check when someone posts).
func (s *Service) SweepLapsed(ctx context.Context) error {
	var groups [][]byte
	if err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		groups, err = tx.ConversationsWithLapsedMembers(ctx, 1000)
		return err
	}); err != nil {
		return err
	}
	for _, g := range groups {
		s.members.forget(g)
		err := s.update(ctx, func(tx *store.Tx, ts *txState) error {
			c, err := lockConversation(ctx, tx, g, true)
			if err != nil {
				return err
			}
			ms, err := tx.ConversationMembers(ctx, g)
			if err != nil {
				return err
			}
			_, err = s.proposeRemovals(ctx, tx, ts, c, lapsedOf(ms))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Conversation returns a conversation to one of its member devices.
func (s *Service) Conversation(ctx context.Context, a org.Actor, groupID []byte) (View, error) {
	var v View
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		if _, err := member(ctx, tx, a, groupID); err != nil {
			return err
		}
		c, err := tx.LockConversation(ctx, groupID)
		if err != nil {
			return err
		}
		ms, err := tx.ConversationMembers(ctx, groupID)
		v = View{Conversation: c, Members: ms}
		return err
	})
	return v, storeErr(err)
}

// Conversations returns the device's conversations: where it is a member,
// or has messages left to receive (up to the commit that removed it).
func (s *Service) Conversations(ctx context.Context, a org.Actor) ([]store.ConversationMember, error) {
	var out []store.ConversationMember
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		out, err = tx.DeviceConversations(ctx, a.Device.ID)
		return err
	})
	return out, storeErr(err)
}

// Messages returns up to limit of a conversation's messages after seq
// after, as the device may receive them: from the commit that added it to
// the one that removed it.
func (s *Service) Messages(ctx context.Context, a org.Actor, groupID []byte, after int64, limit int) ([]store.ConversationMessage, error) {
	if limit <= 0 || limit > MaxFetch {
		limit = MaxFetch
	}
	var out []store.ConversationMessage
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		m, err := tx.ConversationMember(ctx, groupID, a.Device.ID)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotMember, "this device is not a member of the conversation")
		} else if err != nil {
			return err
		}
		out, err = tx.ConversationMessages(ctx, groupID, max(after, m.JoinedSeq), m.LeftSeq, limit)
		return err
	})
	return out, storeErr(err)
}

// Ack records that the device has handled a conversation's messages up to
// seq.
func (s *Service) Ack(ctx context.Context, a org.Actor, groupID []byte, seq int64) error {
	return storeErr(s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.ConversationMember(ctx, groupID, a.Device.ID); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotMember, "this device is not a member of the conversation")
		} else if err != nil {
			return err
		}
		return tx.AckConversation(ctx, groupID, a.Device.ID, seq)
	}))
}

// Prune deletes messages every device has acknowledged; the server calls it
// periodically.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	var n int64
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) (err error) { n, err = tx.PruneConversations(ctx); return })
	return n, err
}
