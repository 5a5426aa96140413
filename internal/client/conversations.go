package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/conversation"
	"hotline/internal/deliver"
	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/tlog"
)

// Conversations. Each is an MLS group this device is a member of. Its state
// (the group's secrets) and its history live in the profile under
// conversations/, sealed with the device's state key (seal.go):
//
//	conversations/ID.state   the group state and what this device knows of it
//	conversations/ID.E.tree  the group's ratchet tree at epoch E (most of a
//	                         large group's state, and unchanged within an epoch:
//	                         written once per epoch, not with every message)
//	conversations/ID.log     the conversation's messages, one sealed record each
//
// ID is the group ID in unpadded base64url, as the server names it.
//
// The server numbers each conversation's messages; this device handles them
// strictly in that order, once each (a message redelivered after a
// reconnect or a crash is recognised by its number), and acknowledges them
// only after its state is saved. Everything it sends goes through the
// server: its own commits are applied when they come back in order, so a
// message of an old epoch is never left undecryptable behind a commit.
//
// Every leaf that enters a group is checked here, whatever the server
// accepted: a device of the organisation, credentialed by its issuer,
// cleared for the conversation's classification and compartments, and
// active in the transparency log as this device verified it. A commit that
// fails the check is refused, and this device stops following the
// conversation rather than share keys with such a member.

// ConversationDir is the profile directory holding conversations.
const ConversationDir = "conversations"

// DefaultSuite is the cipher suite of new conversations: the post-quantum
// hybrid one.
const DefaultSuite = mls.HotlinePQXWingAES256GCMSHA384Ed25519

// Leaf-update bounds (post-compromise security): before sending, a member
// commits a fresh leaf key if its last one is this old or has sent this
// many messages.
const (
	DefaultUpdateInterval = 24 * time.Hour
	DefaultUpdateMessages = 500
)

// Errors of the conversation layer.
var (
	// ErrNoConversation: this device holds no such conversation.
	ErrNoConversation = errors.New("no such conversation on this device")
	// ErrConversationBroken: this device refused a commit the server
	// accepted, so it no longer follows the group and will not send there.
	ErrConversationBroken = errors.New("conversation refused")
	// ErrRemoved: this device was removed from the conversation.
	ErrRemoved = errors.New("removed from the conversation")
	// ErrArchiveMissing: the conversation requires the organisation's
	// archive member and has none.
	ErrArchiveMissing = errors.New("the conversation requires the archive member, which is not in it")
)

// Member is a conversation member as its leaf's credential says.
type Member struct {
	Leaf         uint32         `json:"leaf"`
	User         string         `json:"user"`
	Org          string         `json:"org"`
	Device       string         `json:"device"`
	Roles        identity.Roles `json:"roles"`
	Clearance    string         `json:"clearance"`
	Compartments []string       `json:"compartments"`
	SigKey       string         `json:"sig_key,omitempty"` // the device's signing key, from its verified credential
	Self         bool           `json:"self,omitempty"`
}

func (m Member) String() string {
	s := m.User
	if len(m.Roles) > 0 {
		s += " (" + m.Roles.String() + ")"
	}
	return s
}

// ConversationInfo is a conversation as this device knows it from its own
// group state.
type ConversationInfo struct {
	ID              string          `json:"id"`
	Title           string          `json:"title,omitempty"`
	Epoch           uint64          `json:"epoch"`
	Seq             int64           `json:"seq"`
	CipherSuite     mls.CipherSuite `json:"cipher_suite"`
	Clearance       string          `json:"clearance"`
	Compartments    []string        `json:"compartments"`
	ArchiveRequired bool            `json:"archive_required,omitempty"`
	Members         []Member        `json:"members"`
	Removed         bool            `json:"removed,omitempty"`
	Broken          string          `json:"broken,omitempty"`
}

// Message is one application message of a conversation's history.
type Message struct {
	Conversation string    `json:"conversation"`
	Seq          int64     `json:"seq"`
	Epoch        uint64    `json:"epoch"`
	Time         time.Time `json:"time"` // when the server accepted it
	User         string    `json:"user"`
	Device       string    `json:"device"`
	Own          bool      `json:"own,omitempty"`
	Kind         string    `json:"kind"` // text, attachment, title, members
	Text         string    `json:"text,omitempty"`
	Data         []byte    `json:"data,omitempty"`
	// Added and Removed are the users a membership change ("members",
	// made by User) added and removed.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Digest is the SHA-256 of the message as the server holds it, the
	// hash its message chain links (set for SetRecords' fn only).
	Digest []byte `json:"-"`
}

func kindName(k conversation.Kind) string {
	switch k {
	case conversation.KindText:
		return "text"
	case conversation.KindAttachment:
		return "attachment"
	case conversation.KindTitle:
		return "title"
	case conversation.KindCheckpoint:
		return "checkpoint"
	case conversation.KindDesk:
		return "desk"
	}
	return "unknown"
}

// UpdateKind says what an Update reports.
type UpdateKind string

// Update kinds.
const (
	UpdateJoined  UpdateKind = "joined"  // this device joined (a Welcome)
	UpdateMessage UpdateKind = "message" // a message arrived
	UpdateMembers UpdateKind = "members" // members were added or removed
	UpdateLeft    UpdateKind = "left"    // this device was removed
	UpdateProblem UpdateKind = "problem" // something was refused or is wrong; Err says what
)

// Update is something this device learnt about a conversation.
type Update struct {
	Conversation string     `json:"conversation"`
	Kind         UpdateKind `json:"kind"`
	Message      *Message   `json:"message,omitempty"`
	By           *Member    `json:"by,omitempty"` // who committed a membership change
	Added        []Member   `json:"added,omitempty"`
	Removed      []Member   `json:"removed,omitempty"`
	Err          error      `json:"-"`
}

// convFile is what conversations/ID.state holds (sealed): stateMagic, the
// length of the JSON of these fields (4 bytes, big-endian), that JSON, then
// the MLS group's state as it is (which can be large: kept out of JSON).
type convFile struct {
	Group   []byte `json:"-"` // mls.Group state; nil once removed or broken
	Title   string `json:"title,omitempty"`
	Removed bool   `json:"removed,omitempty"`
	Broken  string `json:"broken,omitempty"`
	// Seq is the last message of the conversation this device handled.
	Seq int64 `json:"seq"`
	// Own names this device's own application messages sent past Seq, by
	// ownKey: MLS senders cannot decrypt their own, so they are skipped
	// when they come back. A message is listed before it is posted, so
	// the state need not be saved again once the server took it.
	Own []string `json:"own,omitempty"`
	// LastUpdate is when this device last committed a fresh leaf;
	// SentSinceUpdate counts its messages since.
	LastUpdate      time.Time `json:"last_update"`
	SentSinceUpdate int       `json:"sent_since_update"`
	// CheckpointSize is the log size of the last checkpoint this device
	// sent into the conversation.
	CheckpointSize int64 `json:"checkpoint_size"`
	// Chain is the conversation's message chain after message Seq, as
	// this device followed it (conversation.ChainNext).
	Chain []byte `json:"chain,omitempty"`
	// TreeApart: Group was stored without the epoch's ratchet tree, which
	// is in ID.TreeEpoch.tree.
	TreeApart bool   `json:"tree_apart,omitempty"`
	TreeEpoch uint64 `json:"tree_epoch,omitempty"`
}

var convStateMagic = []byte("HCS1")

func (f *convFile) marshal() ([]byte, error) {
	meta, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(convStateMagic)+4+len(meta)+len(f.Group))
	b = append(b, convStateMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(meta)))
	b = append(append(b, meta...), f.Group...)
	return b, nil
}

func (f *convFile) unmarshal(b []byte) error {
	if !bytes.HasPrefix(b, convStateMagic) || len(b) < len(convStateMagic)+4 {
		return errors.New("not a conversation state")
	}
	b = b[len(convStateMagic):]
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return errors.New("conversation state truncated")
	}
	if err := json.Unmarshal(b[4:4+n], f); err != nil {
		return err
	}
	if rest := b[4+n:]; len(rest) > 0 {
		f.Group = bytes.Clone(rest)
	}
	return nil
}

// convEntry is one conversation in memory. mu guards everything in it and
// is held while a message of the conversation is handled or sent, network
// calls included.
type convEntry struct {
	mu    sync.Mutex
	id    string
	gid   []byte
	file  convFile
	group *mls.Group // nil when removed or broken
	// checkAfter: the leaf hook accepts every leaf and the caller checks
	// them afterwards (while the group is being made or joined, when the
	// hook cannot yet read its classification).
	checkAfter bool
	// dirty: state changed since it was saved; unacked: messages handled
	// since the server was told; treeSaved: file.TreeEpoch's tree file is
	// written.
	dirty     bool
	treeSaved bool
	unacked   bool
	updates   []Update // to hand to the update handler once mu is released
	// toldEpoch is the epoch the epoch watchers were last told of.
	toldEpoch uint64
	// recordedSeq is the last message recorded in the history.
	recordedSeq int64
	// digest is the SHA-256 of message digestSeq, the one being handled.
	digest    []byte
	digestSeq int64
	// history: the records of messages handled since the state was last
	// saved, written just before it (after a crash in between, the
	// messages are handled, and recorded, again).
	history [][]byte
}

// conversations is the client's conversation cache and update handler.
type conversations struct {
	mu        sync.Mutex // guards entries, handler and described
	entries   map[string]*convEntry
	handler   func(Update)
	described map[string]Member // by credential (see member)
}

func convID(groupID []byte) string { return base64.RawURLEncoding.EncodeToString(groupID) }

func (c *Client) convPath(id, ext string) (string, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(b) == 0 || len(b) > 255 {
		return "", fmt.Errorf("%q is not a conversation ID", id)
	}
	return path.Join(ConversationDir, id+ext), nil
}

func (c *Client) signer() (mls.SignaturePrivateKey, error) {
	return mls.NewEd25519Signer(c.sig.CryptoSigner())
}

// entry returns a conversation, loading it from the profile. The caller
// locks e.mu.
func (c *Client) entry(id string) (*convEntry, error) {
	c.convs.mu.Lock()
	defer c.convs.mu.Unlock()
	if e, ok := c.convs.entries[id]; ok {
		return e, nil
	}
	path, err := c.convPath(id, ".state")
	if err != nil {
		return nil, err
	}
	sealed, err := c.st.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoConversation, id)
	} else if err != nil {
		return nil, err
	}
	b, err := c.open("conversation", id, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	gid, _ := base64.RawURLEncoding.DecodeString(id)
	e := &convEntry{id: id, gid: gid}
	if err := e.file.unmarshal(b); err != nil {
		return nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	if e.file.Group != nil {
		signer, err := c.signer()
		if err != nil {
			return nil, err
		}
		if e.file.TreeApart {
			tree, err := c.readTree(id, e.file.TreeEpoch)
			if err != nil {
				return nil, err
			}
			e.group, err = mls.UnmarshalGroupStateWithTree(e.file.Group, tree, signer, c.groupOptions(e))
			if err != nil {
				return nil, fmt.Errorf("conversation %s: %w", id, err)
			}
			e.treeSaved = true
		} else if e.group, err = mls.UnmarshalGroupState(e.file.Group, signer, c.groupOptions(e)); err != nil {
			return nil, fmt.Errorf("conversation %s: %w", id, err)
		}
		clear(e.file.Group)
		e.file.Group = nil
	}
	c.addEntryLocked(e)
	return e, nil
}

func (c *Client) addEntryLocked(e *convEntry) {
	if c.convs.entries == nil {
		c.convs.entries = map[string]*convEntry{}
	}
	c.convs.entries[e.id] = e
}

// unlock releases e.mu and hands what was learnt to the update handler.
func (c *Client) unlock(e *convEntry) {
	ups := e.updates
	e.updates = nil
	moved := e.group != nil && e.group.Epoch() != e.toldEpoch
	if moved {
		e.toldEpoch = e.group.Epoch()
	}
	epoch := e.toldEpoch
	e.mu.Unlock()
	if moved {
		c.epochMoved(e.id, epoch)
	}
	c.convs.mu.Lock()
	h := c.convs.handler
	c.convs.mu.Unlock()
	if h != nil {
		for _, u := range ups {
			h(u)
		}
	}
}

// OnUpdate sets the function that receives every Update this client learns
// (nil: none). It is called outside the client's locks, in order for each
// conversation.
func (c *Client) OnUpdate(fn func(Update)) {
	c.convs.mu.Lock()
	c.convs.handler = fn
	c.convs.mu.Unlock()
}

// treePath names the file of a conversation's tree at an epoch.
func (c *Client) treePath(id string, epoch uint64) (string, error) {
	return c.convPath(id, "."+strconv.FormatUint(epoch, 10)+".tree")
}

func (c *Client) readTree(id string, epoch uint64) ([]byte, error) {
	path, err := c.treePath(id, epoch)
	if err != nil {
		return nil, err
	}
	sealed, err := c.st.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conversation %s: the tree of epoch %d: %w", id, epoch, err)
	}
	return c.open("conversation tree", id+"/"+strconv.FormatUint(epoch, 10), sealed)
}

// saveLocked seals and writes a conversation's state: the ratchet tree
// when the epoch changed (before the state that names it), then the rest.
func (c *Client) saveLocked(e *convEntry) error {
	if err := c.writeHistoryLocked(e); err != nil {
		return err
	}
	f := e.file
	newTree := false
	if e.group != nil && !e.group.Removed() {
		epoch := e.group.Epoch()
		if !e.treeSaved || e.file.TreeEpoch != epoch {
			path, err := c.treePath(e.id, epoch)
			if err != nil {
				return err
			}
			sealed, err := c.seal("conversation tree", e.id+"/"+strconv.FormatUint(epoch, 10), e.group.MarshalTree())
			if err != nil {
				return err
			}
			if err := c.st.WriteFile(path, sealed); err != nil {
				return err
			}
			newTree = true
		}
		st, err := e.group.MarshalStateWithoutTree()
		if err != nil {
			return err
		}
		f.Group, f.TreeApart, f.TreeEpoch = st, true, epoch
		defer clear(st)
	}
	b, err := f.marshal()
	if err != nil {
		return err
	}
	defer clear(b)
	sealed, err := c.seal("conversation", e.id, b)
	if err != nil {
		return err
	}
	path, err := c.convPath(e.id, ".state")
	if err != nil {
		return err
	}
	if err := c.st.WriteFile(path, sealed); err != nil {
		return err
	}
	e.dirty = false
	e.file.TreeApart, e.file.TreeEpoch = f.TreeApart, f.TreeEpoch
	if newTree {
		e.treeSaved = true
		c.dropOldTrees(e.id, f.TreeEpoch)
	}
	return nil
}

// dropOldTrees deletes a conversation's trees of epochs other than keep,
// once the state names keep's.
func (c *Client) dropOldTrees(id string, keep uint64) {
	names, err := c.st.List(ConversationDir)
	if err != nil {
		return
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, id+".")
		if !ok {
			continue
		}
		if ep, ok := strings.CutSuffix(rest, ".tree"); ok && ep != strconv.FormatUint(keep, 10) {
			c.st.Remove(path.Join(ConversationDir, n))
		}
	}
}

// groupOptions are the options of every group this device holds.
func (c *Client) groupOptions(e *convEntry) mls.GroupOptions {
	return mls.GroupOptions{
		ValidateLeaf:            func(leaf *mls.LeafNode, _ mls.LeafIndex) error { return c.validateLeaf(e, leaf) },
		UseRatchetTreeExtension: true,
		PaddingBlock:            32,
		Now:                     c.now,
	}
}

// validateLeaf is Hotline's credential-validation hook: every leaf entering
// a group must be a device the organisation's issuer credentialed, with
// clearance for the group's classification, active in this device's
// verified transparency log.
func (c *Client) validateLeaf(e *convEntry, leaf *mls.LeafNode) error {
	if e.checkAfter || e.group == nil || c.misbehave.SkipLeafChecks {
		return nil
	}
	class, err := conversation.FromGroupContext(e.group.GroupContext().Extensions)
	if err != nil {
		return err
	}
	return c.checkLeaf(leaf, class, false)
}

func (c *Client) checkLeaf(leaf *mls.LeafNode, class conversation.Classification, existing bool) error {
	st, err := c.loadMonitor()
	if err != nil {
		return err
	}
	var devices *tlog.DeviceSet
	if st != nil {
		devices = st.Devices
	}
	if existing {
		_, err = conversation.CheckExistingMember(leaf, class, c.issuerVerifiers(), devices)
	} else {
		_, err = conversation.CheckMember(leaf, class, c.issuerVerifiers(), devices, c.now())
	}
	return err
}

// checkGroup checks a group this device is about to hold: Hotline's
// extensions, and every member already in it.
func (c *Client) checkGroup(g *mls.Group) error {
	exts := g.GroupContext().Extensions
	class, err := conversation.FromGroupContext(exts)
	if err != nil {
		return err
	}
	if err := conversation.CheckExternalSenders(exts, c.keySets()); err != nil {
		return err
	}
	for _, m := range g.Members() {
		if err := c.checkLeaf(m.Leaf, class, true); err != nil {
			return fmt.Errorf("leaf %d: %w", m.Index, err)
		}
	}
	return nil
}

// member describes a leaf from its credential (checked when it entered).
// Descriptions are cached by credential: every received message names its
// sender, and verifying the credential's signature each time would cost as
// much as the message.
func (c *Client) member(m mls.Member) Member {
	out := Member{Leaf: uint32(m.Index)}
	if m.Leaf == nil {
		return out
	}
	key := string(m.Leaf.Credential.Identity)
	c.convs.mu.Lock()
	d, ok := c.convs.described[key]
	c.convs.mu.Unlock()
	if !ok {
		cr, err := identity.VerifyCredential(m.Leaf.Credential.Identity, c.issuerVerifiers())
		if err != nil {
			out.User = "(unverified)"
			return out
		}
		d.User, d.Org, d.Device, d.Roles = cr.User.String(), cr.User.Org, cr.Device, cr.Roles
		d.Clearance, d.Compartments = cr.Clearance.Token(), cr.Compartments
		d.SigKey = cr.SigKey.String()
		d.Self = cr.Device == c.sig.Public().DeviceID()
		c.convs.mu.Lock()
		if len(c.convs.described) >= 4096 {
			clear(c.convs.described)
		}
		if c.convs.described == nil {
			c.convs.described = map[string]Member{}
		}
		c.convs.described[key] = d
		c.convs.mu.Unlock()
	}
	d.Leaf = out.Leaf
	d.Compartments = append([]string{}, d.Compartments...)
	return d
}

func (c *Client) memberAt(g *mls.Group, l mls.LeafIndex) Member {
	for _, m := range g.Members() {
		if m.Index == l {
			return c.member(m)
		}
	}
	return Member{Leaf: uint32(l)}
}

func (c *Client) infoLocked(e *convEntry) ConversationInfo {
	info := ConversationInfo{ID: e.id, Title: e.file.Title, Seq: e.file.Seq, Removed: e.file.Removed, Broken: e.file.Broken,
		Members: []Member{}, Compartments: []string{}}
	if e.group == nil {
		return info
	}
	info.Epoch, info.CipherSuite = e.group.Epoch(), e.group.Suite().ID()
	if class, err := conversation.FromGroupContext(e.group.GroupContext().Extensions); err == nil {
		info.Clearance, info.ArchiveRequired = class.Level.Token(), class.ArchiveRequired
		info.Compartments = append(info.Compartments, class.Compartments...)
	}
	for _, m := range e.group.Members() {
		info.Members = append(info.Members, c.member(m))
	}
	return info
}

// usable says why a conversation cannot be sent to, if it cannot.
func usable(e *convEntry) error {
	switch {
	case e.file.Removed:
		return fmt.Errorf("%w: %s", ErrRemoved, e.id)
	case e.file.Broken != "":
		return fmt.Errorf("%w: %s: %s", ErrConversationBroken, e.id, e.file.Broken)
	case e.group == nil:
		return fmt.Errorf("%w: %s", ErrNoConversation, e.id)
	}
	return nil
}

// CreateOptions describe a new conversation.
type CreateOptions struct {
	Title          string
	Classification conversation.Classification
	Suite          mls.CipherSuite // 0: DefaultSuite
	// Members are users to add with every device of theirs that has a key
	// package; this user's other devices are always added.
	Members []string
}

// CreateConversation starts a conversation with this device as its only
// member, registers it with the server, adds the members and, once they
// are in, sets the title (inside the group: the server never sees it).
func (c *Client) CreateConversation(ctx context.Context, o CreateOptions) (ConversationInfo, error) {
	if o.Suite == 0 {
		o.Suite = DefaultSuite
	}
	suite, err := mls.SuiteFor(o.Suite)
	if err != nil {
		return ConversationInfo{}, err
	}
	o.Classification.Compartments = o.Classification.Compartments.Normalize()
	if err := o.Classification.Compartments.Validate(); err != nil {
		return ConversationInfo{}, err
	}
	if !o.Classification.Level.Valid() {
		return ConversationInfo{}, fmt.Errorf("classification level %d is not valid", o.Classification.Level)
	}
	if len(o.Title) > conversation.MaxTitle {
		return ConversationInfo{}, fmt.Errorf("a title has at most %d bytes", conversation.MaxTitle)
	}
	if _, err := c.VerifyLog(ctx); err != nil && !errors.Is(err, ErrLogProblem) {
		return ConversationInfo{}, err
	}
	info, err := c.OrgInfo(ctx)
	if err != nil {
		return ConversationInfo{}, err
	}
	if info.RequireArchive {
		o.Classification.ArchiveRequired = true
	}
	if o.Classification.ArchiveRequired {
		// The archive joins with everyone else, so that the conversation
		// is usable at once.
		for _, u := range c.archiveUsers() {
			if !slices.Contains(o.Members, u) {
				o.Members = append(o.Members, u)
			}
		}
	}
	if _, err := c.Me(ctx); err != nil { // a fresh credential for the leaf
		return ConversationInfo{}, err
	}
	c.mu.Lock()
	cred := append([]byte(nil), c.cred...)
	ks := c.keyset
	c.mu.Unlock()
	ds, err := conversation.DeliveryService(ks)
	if err != nil {
		return ConversationInfo{}, err
	}
	signer, err := c.signer()
	if err != nil {
		return ConversationInfo{}, err
	}
	kp, sec, err := suite.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: cred}, signer, mls.Lifetime{}, leafCapabilities(o.Suite))
	if err != nil {
		return ConversationInfo{}, err
	}
	if err := c.checkLeaf(&kp.LeafNode, o.Classification, false); err != nil {
		return ConversationInfo{}, fmt.Errorf("this device may not be in the conversation: %w", err)
	}
	gid := make([]byte, 16)
	rand.Read(gid)
	exts := []mls.Extension{
		{Type: conversation.ExtClassification, Data: o.Classification.Marshal()},
		mls.ExternalSendersExtension(mls.ExternalSenders{ds}),
	}
	e := &convEntry{id: convID(gid), gid: gid, checkAfter: true, file: convFile{LastUpdate: c.now(), Chain: conversation.ChainStart(gid)}}
	g, err := mls.NewGroup(nil, suite, gid, kp, sec, signer, exts, c.groupOptions(e))
	if err != nil {
		return ConversationInfo{}, err
	}
	e.group, e.checkAfter = g, false
	// Claim and check the members' key packages before the server hears of
	// the conversation: a member refused now leaves nothing behind.
	users := append([]string{c.Profile().User}, o.Members...)
	kps, err := c.claim(ctx, o.Suite, o.Classification, []string{c.Profile().Device}, users)
	if err != nil {
		return ConversationInfo{}, err
	}
	gi, err := g.GroupInfo(true)
	if err != nil {
		return ConversationInfo{}, err
	}
	e.mu.Lock()
	c.convs.mu.Lock()
	c.addEntryLocked(e)
	c.convs.mu.Unlock()
	err = c.saveLocked(e)
	if err == nil {
		msg := (&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Marshal()
		var out api.Conversation
		if err = c.Do(ctx, http.MethodPost, "/v1/conversations", api.ConversationCreate{GroupInfo: msg}, &out); err != nil {
			err = fmt.Errorf("register conversation: %w", err)
		}
	}
	if err != nil {
		c.forgetLocked(e)
		c.unlock(e)
		return ConversationInfo{}, err
	}
	e.file.Title = o.Title
	err = c.saveLocked(e)
	if err == nil && len(kps) > 0 {
		_, err = c.addLocked(ctx, e, kps)
	}
	ci := c.infoLocked(e)
	c.unlock(e)
	return ci, err
}

// forgetLocked drops a conversation this device could not register.
func (c *Client) forgetLocked(e *convEntry) {
	c.convs.mu.Lock()
	delete(c.convs.entries, e.id)
	c.convs.mu.Unlock()
	if p, err := c.convPath(e.id, ".state"); err == nil {
		c.st.Remove(p)
	}
	c.dropOldTrees(e.id, math.MaxUint64)
}

// Conversation returns what this device knows of a conversation (its ID
// alone if it holds none).
func (c *Client) Conversation(id string) ConversationInfo {
	e, err := c.entry(id)
	if err != nil {
		return ConversationInfo{ID: id}
	}
	e.mu.Lock()
	defer c.unlock(e)
	return c.infoLocked(e)
}

// Conversations lists the conversations this device holds, from its own
// state.
func (c *Client) Conversations() ([]ConversationInfo, error) {
	names, err := c.st.List(ConversationDir)
	if err != nil {
		return nil, err
	}
	var out []ConversationInfo
	for _, n := range names {
		id, ok := strings.CutSuffix(n, ".state")
		if !ok {
			continue
		}
		e, err := c.entry(id)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		out = append(out, c.infoLocked(e))
		c.unlock(e)
	}
	return out, nil
}

// FindConversation returns the conversation id names: its ID, a unique
// prefix of it, or its exact title.
func (c *Client) FindConversation(name string) (ConversationInfo, error) {
	all, err := c.Conversations()
	if err != nil {
		return ConversationInfo{}, err
	}
	var hits []ConversationInfo
	for _, ci := range all {
		if ci.ID == name {
			return ci, nil
		}
		if strings.HasPrefix(ci.ID, name) || ci.Title == name {
			hits = append(hits, ci)
		}
	}
	switch len(hits) {
	case 0:
		return ConversationInfo{}, fmt.Errorf("%w: %q", ErrNoConversation, name)
	case 1:
		return hits[0], nil
	}
	return ConversationInfo{}, fmt.Errorf("%q names %d conversations; give more of the ID", name, len(hits))
}

// Messages returns a conversation's history on this device in the order
// the server accepted the messages.
func (c *Client) Messages(id string) ([]Message, error) {
	path, err := c.convPath(id, ".log")
	if err != nil {
		return nil, err
	}
	c.convs.mu.Lock()
	e := c.convs.entries[id]
	c.convs.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		err := c.writeHistoryLocked(e)
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	recs, err := c.readSealed(path, "history", id)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(recs))
	seen := map[int64]bool{}
	for _, r := range recs {
		var m Message
		if err := json.Unmarshal(r, &m); err != nil {
			return nil, fmt.Errorf("conversation %s history: %w", id, err)
		}
		clear(r)
		if seen[m.Seq] { // handled again after a crash before its state was saved
			continue
		}
		seen[m.Seq] = true
		out = append(out, m)
	}
	// Own messages are recorded when sent, others' when received: order
	// them as the server did.
	slices.SortStableFunc(out, func(a, b Message) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// recordLocked adds a message this device sent to the conversation's
// history at once.
func (c *Client) recordLocked(e *convEntry, m Message) error {
	if err := c.recordLater(e, m); err != nil {
		return err
	}
	return c.writeHistoryLocked(e)
}

// SetRecords makes this device keep no message history: every message it
// handles goes to fn instead, before the device saves its state and
// acknowledges the message (an error from fn stops the handling, to be
// retried). The archive device seals them to the records key this way.
// Set it before the device handles any message.
func (c *Client) SetRecords(fn func(Message) error) {
	c.mu.Lock()
	c.records = fn
	c.mu.Unlock()
}

// recordLater adds a message handled to the history written with the
// conversation's state.
func (c *Client) recordLater(e *convEntry, m Message) error {
	e.recordedSeq = m.Seq
	c.mu.Lock()
	sink := c.records
	c.mu.Unlock()
	if sink != nil {
		if e.digestSeq == m.Seq {
			m.Digest = e.digest
		}
		return sink(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	e.history = append(e.history, b)
	return nil
}

func (c *Client) writeHistoryLocked(e *convEntry) error {
	if len(e.history) == 0 {
		return nil
	}
	path, err := c.convPath(e.id, ".log")
	if err != nil {
		return err
	}
	if err := c.appendSealed(path, "history", e.id, e.history...); err != nil {
		return err
	}
	for _, b := range e.history {
		clear(b)
	}
	e.history = nil
	return nil
}

// ErrNothingToAdd: every device of the users named is in the conversation
// already (or, for this device's own user, there is no other device).
var ErrNothingToAdd = errors.New("every device of theirs is a member already")

// AddMembers adds every device of each user that has a key package and is
// not in the conversation yet. It returns the members added.
func (c *Client) AddMembers(ctx context.Context, id string, users ...string) ([]Member, error) {
	return c.add(ctx, id, func(e *convEntry, class conversation.Classification) ([]*mls.KeyPackage, error) {
		var have []string
		for _, m := range e.group.Members() {
			have = append(have, c.member(m).Device)
		}
		return c.claim(ctx, e.group.Suite().ID(), class, have, users)
	})
}

// AddKeyPackages adds the devices whose key packages are given (obtained
// out of band rather than claimed from the server), after the same checks
// as AddMembers.
func (c *Client) AddKeyPackages(ctx context.Context, id string, kps ...*mls.KeyPackage) ([]Member, error) {
	return c.add(ctx, id, func(_ *convEntry, class conversation.Classification) ([]*mls.KeyPackage, error) {
		for i, kp := range kps {
			if err := c.checkNewLeaf(kp, class); err != nil {
				return nil, fmt.Errorf("key package %d: %w", i, err)
			}
		}
		return kps, nil
	})
}

// add brings this device's view of the conversation up to date, then adds
// the key packages choose returns for it and its classification.
func (c *Client) add(ctx context.Context, id string, choose func(*convEntry, conversation.Classification) ([]*mls.KeyPackage, error)) ([]Member, error) {
	if _, err := c.VerifyLog(ctx); err != nil && !errors.Is(err, ErrLogProblem) {
		return nil, err
	}
	e, err := c.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := c.catchUpLocked(ctx, e, 0); err != nil {
		return nil, err
	}
	if err := usable(e); err != nil {
		return nil, err
	}
	class, err := conversation.FromGroupContext(e.group.GroupContext().Extensions)
	if err != nil {
		return nil, err
	}
	kps, err := choose(e, class)
	if err != nil {
		return nil, err
	}
	return c.addLocked(ctx, e, kps)
}

// checkNewLeaf refuses here a key package every member would refuse,
// before the server or anyone else sees a commit adding it.
func (c *Client) checkNewLeaf(kp *mls.KeyPackage, class conversation.Classification) error {
	if c.misbehave.SkipLeafChecks {
		return nil
	}
	return c.checkLeaf(&kp.LeafNode, class, false)
}

// claim claims a key package of every device of each user but those in
// have, and checks each with checkNewLeaf.
func (c *Client) claim(ctx context.Context, cs mls.CipherSuite, class conversation.Classification, have, users []string) ([]*mls.KeyPackage, error) {
	var kps []*mls.KeyPackage
	seen := map[string]bool{}
	for _, u := range users {
		// A user named twice (or oneself, whom creating a conversation
		// always includes) is claimed once: a second claim would spend a
		// key package of each device and add it twice.
		if seen[u] {
			continue
		}
		seen[u] = true
		claimed, err := c.ClaimKeyPackages(ctx, u, cs, have...)
		if err != nil {
			if u == c.Profile().User && apierr.Is(err, apierr.KeyPackageMissing) {
				continue // this user has no other device to add
			}
			return nil, fmt.Errorf("key packages of %s: %w", u, err)
		}
		for _, cl := range claimed {
			if slices.Contains(have, cl.Device) {
				continue
			}
			m, err := mls.UnmarshalMLSMessage(cl.KeyPackage)
			if err != nil || m.KeyPackage == nil {
				return nil, fmt.Errorf("key package of %s device %s: not a key package", u, cl.Device)
			}
			if err := c.checkNewLeaf(m.KeyPackage, class); err != nil {
				return nil, fmt.Errorf("%s device %s: %w", u, cl.Device, err)
			}
			kps = append(kps, m.KeyPackage)
		}
	}
	return kps, nil
}

// addLocked commits adding kps, then tells the new members the title.
func (c *Client) addLocked(ctx context.Context, e *convEntry, kps []*mls.KeyPackage) ([]Member, error) {
	if len(kps) == 0 {
		return nil, ErrNothingToAdd
	}
	var added []Member
	err := c.commitLocked(ctx, e, func() (mls.CommitOptions, error) {
		return mls.CommitOptions{Adds: kps, IncludePending: true}, nil
	}, func(res *mls.CommitResult) {
		added = added[:0]
		for _, l := range res.Added {
			added = append(added, c.memberAt(e.group, l))
		}
	})
	if err != nil {
		return nil, err
	}
	// The new members cannot read what was said before they joined: tell
	// them the title.
	if e.file.Title != "" {
		if _, err := c.sendLocked(ctx, e, conversation.Content{Kind: conversation.KindTitle, Text: e.file.Title}); err != nil {
			return added, fmt.Errorf("send the title to the new members: %w", err)
		}
	}
	return added, nil
}

// RemoveMembers removes every device of each user from the conversation.
func (c *Client) RemoveMembers(ctx context.Context, id string, users ...string) ([]Member, error) {
	e, err := c.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := c.catchUpLocked(ctx, e, 0); err != nil {
		return nil, err
	}
	var removed []Member
	err = c.commitLocked(ctx, e, func() (mls.CommitOptions, error) {
		removed = removed[:0]
		var leaves []mls.LeafIndex
		for _, m := range e.group.Members() {
			mm := c.member(m)
			if slices.Contains(users, mm.User) && !mm.Self {
				leaves = append(leaves, m.Index)
				removed = append(removed, mm)
			}
		}
		if len(leaves) == 0 {
			return mls.CommitOptions{}, fmt.Errorf("none of %s is in the conversation", strings.Join(users, ", "))
		}
		return mls.CommitOptions{Removes: leaves, IncludePending: true}, nil
	}, nil)
	return removed, err
}

// UpdateLeaf commits a fresh leaf key, with this device's current
// credential, and any pending proposals.
func (c *Client) UpdateLeaf(ctx context.Context, id string) error {
	e, err := c.entry(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := c.catchUpLocked(ctx, e, 0); err != nil {
		return err
	}
	return c.commitLocked(ctx, e, func() (mls.CommitOptions, error) { return c.updateOptions(e), nil }, nil)
}

func (c *Client) updateOptions(e *convEntry) mls.CommitOptions {
	o := mls.CommitOptions{Update: true, IncludePending: true}
	c.mu.Lock()
	cred := append([]byte(nil), c.cred...)
	c.mu.Unlock()
	me := e.group.MyLeaf()
	for _, m := range e.group.Members() {
		if m.Index == me && m.Leaf != nil && cred != nil && !bytes.Equal(m.Leaf.Credential.Identity, cred) {
			ln := *m.Leaf
			ln.Credential = mls.Credential{Type: mls.CredentialBasic, Identity: cred}
			o.LeafNode = &ln
		}
	}
	return o
}

// retryable are the server's answers after which this device handles what
// it was sent and tries again.
func retryable(err error) bool {
	return apierr.Is(err, apierr.EpochMoved) || apierr.Is(err, apierr.CommitRequired)
}

const maxAttempts = 8

// post sends one MLS message of a conversation to the server.
func (c *Client) post(ctx context.Context, id string, msg, welcome []byte) (api.ConversationPosted, error) {
	var out api.ConversationPosted
	err := c.Do(ctx, http.MethodPost, "/v1/conversations/"+id+"/messages", api.ConversationPost{Message: msg, Welcome: welcome}, &out)
	return out, err
}

// commitLocked makes a commit with the options opts gives (asked again on
// each attempt, as the group may have moved), saves the pending state,
// posts it, and handles the conversation's messages up to it, where its
// echo applies it. A commit the server refuses is discarded; one that lost
// the race for its epoch is made again after the winner is handled. done,
// if not nil, sees the commit that was applied.
func (c *Client) commitLocked(ctx context.Context, e *convEntry, opts func() (mls.CommitOptions, error), done func(*mls.CommitResult)) error {
	for attempt := 0; ; attempt++ {
		if err := usable(e); err != nil {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("conversation %s: gave up after %d attempts lost races for the epoch", e.id, maxAttempts)
		}
		if e.group.HasPendingCommit() {
			// An earlier post whose outcome was unknown: had the server
			// taken it, its echo would be among what catching up reads.
			if err := c.catchUpLocked(ctx, e, 0); err != nil {
				return err
			}
			if err := usable(e); err != nil {
				return err
			}
			if e.group.HasPendingCommit() {
				e.group.DiscardPending()
				e.dirty = true
			}
		}
		o, err := opts()
		if err != nil {
			return err
		}
		res, err := e.group.Commit(nil, o)
		if err != nil {
			return err
		}
		// Saved with the pending commit: after a crash, its echo still
		// applies it.
		if err := c.saveLocked(e); err != nil {
			e.group.DiscardPending()
			return err
		}
		var welcome []byte
		if res.Welcome != nil {
			welcome = res.Welcome.Marshal()
		}
		posted, err := c.post(ctx, e.id, res.Commit.Marshal(), welcome)
		var refused *apierr.Error
		if err != nil && !errors.As(err, &refused) {
			// No answer (the connection failed, ctx ended): the server
			// may have taken the commit. It stays pending, as after a
			// crash: its echo applies it, another commit replaces it.
			return fmt.Errorf("conversation %s: commit posted, outcome unknown: %w", e.id, err)
		}
		if err != nil {
			e.group.DiscardPending()
			e.dirty = true
			if retryable(err) {
				if err := c.catchUpLocked(ctx, e, 0); err != nil {
					return err
				}
				continue
			}
			if serr := c.saveLocked(e); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
		if err := c.catchUpLocked(ctx, e, posted.Seq); err != nil {
			return err
		}
		if e.group != nil && e.group.HasPendingCommit() {
			return fmt.Errorf("conversation %s: the server accepted this device's commit as message %d but did not deliver it", e.id, posted.Seq)
		}
		e.file.LastUpdate, e.file.SentSinceUpdate = c.now(), 0
		e.dirty = true
		if err := c.saveLocked(e); err != nil {
			return err
		}
		if done != nil && e.group != nil {
			done(res)
		}
		return nil
	}
}

// Send encrypts content for a conversation and sends it. It commits first
// whatever must be committed (the server's proposals to remove lapsed
// members, a leaf update that is due), and refuses a conversation that
// lacks a required archive member.
func (c *Client) Send(ctx context.Context, id string, content conversation.Content) (Message, error) {
	e, err := c.entry(id)
	if err != nil {
		return Message{}, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	return c.sendLocked(ctx, e, content)
}

func (c *Client) sendLocked(ctx context.Context, e *convEntry, content conversation.Content) (Message, error) {
	for attempt := 0; ; attempt++ {
		if err := usable(e); err != nil {
			return Message{}, err
		}
		if attempt == maxAttempts {
			return Message{}, fmt.Errorf("conversation %s: gave up after %d attempts", e.id, maxAttempts)
		}
		if err := c.checkArchive(e); err != nil {
			return Message{}, err
		}
		interval, count := cmp.Or(c.updateInterval, DefaultUpdateInterval), cmp.Or(c.updateMessages, DefaultUpdateMessages)
		due := c.now().Sub(e.file.LastUpdate) >= interval || e.file.SentSinceUpdate >= count
		if len(e.group.PendingProposals()) > 0 || due {
			if err := c.commitLocked(ctx, e, func() (mls.CommitOptions, error) { return c.updateOptions(e), nil }, nil); err != nil {
				return Message{}, err
			}
			continue
		}
		out := content
		cp, size := c.checkpointToShare(e)
		out.Checkpoint = cp
		pt, err := out.Marshal()
		if err != nil {
			return Message{}, err
		}
		m, err := e.group.Encrypt(nil, pt, nil)
		clear(pt)
		if err != nil {
			return Message{}, err
		}
		raw := m.Marshal()
		// The key this used is gone from the state before the message
		// leaves, so a crash cannot make this device reuse it; the state
		// also knows the message as its own, and counts it.
		own := ownKey(raw)
		e.file.Own = append(e.file.Own, own)
		e.file.SentSinceUpdate++
		if size > 0 {
			e.file.CheckpointSize = size
		}
		if err := c.saveLocked(e); err != nil {
			return Message{}, err
		}
		posted, err := c.post(ctx, e.id, raw, nil)
		if err != nil {
			e.file.Own = slices.DeleteFunc(e.file.Own, func(k string) bool { return k == own })
			e.dirty = true
		}
		if retryable(err) {
			if err := c.catchUpLocked(ctx, e, 0); err != nil {
				return Message{}, err
			}
			continue
		} else if err != nil {
			return Message{}, err
		}
		p := c.Profile()
		msg := Message{Conversation: e.id, Seq: posted.Seq, Epoch: e.group.Epoch(), Time: c.now().UTC(), User: p.User, Device: p.Device,
			Own: true, Kind: kindName(content.Kind), Text: content.Text, Data: content.Data}
		if content.Kind == conversation.KindTitle {
			e.file.Title = content.Text
			if err := c.saveLocked(e); err != nil {
				return msg, err
			}
		}
		if content.Kind != conversation.KindCheckpoint {
			if err := c.recordLocked(e, msg); err != nil {
				return msg, err
			}
		}
		return msg, nil
	}
}

// archiveUsers are the accounts of this organisation that hold the archive
// role, as this device's verified view of the log says.
func (c *Client) archiveUsers() []string {
	b, err := c.st.ReadFile(RolesFile)
	if err != nil {
		return nil
	}
	var ur userRoles
	if json.Unmarshal(b, &ur) != nil {
		return nil
	}
	org := c.Profile().Org
	var out []string
	for u, rs := range ur.Roles {
		if id, err := identity.ParseUserID(u); err == nil && id.Org == org && rs.Has(identity.RoleArchive) && u != c.Profile().User {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// checkArchive refuses to send in a conversation that requires the
// organisation's archive member while none is in it.
func (c *Client) checkArchive(e *convEntry) error {
	class, err := conversation.FromGroupContext(e.group.GroupContext().Extensions)
	if err != nil || !class.ArchiveRequired {
		return err
	}
	org := c.Profile().Org
	for _, m := range e.group.Members() {
		mm := c.member(m)
		if mm.Org == org && mm.Roles.Has(identity.RoleArchive) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrArchiveMissing, e.id)
}

// checkpointToShare returns this device's latest verified checkpoint if it
// is newer than the last it sent in the conversation, and its size.
func (c *Client) checkpointToShare(e *convEntry) ([]byte, int64) {
	st, err := c.loadMonitor()
	if err != nil || st == nil || st.Checkpoint == nil {
		return nil, 0
	}
	size, err := unverifiedSize(st.Checkpoint)
	if err != nil || size <= e.file.CheckpointSize || len(st.Checkpoint) > conversation.MaxCheckpoint {
		return nil, 0
	}
	return st.Checkpoint, size
}

// catchUpLocked fetches and handles the conversation's messages after the
// last one handled, up to upTo (0: all there are).
func (c *Client) catchUpLocked(ctx context.Context, e *convEntry, upTo int64) error {
	for upTo == 0 || e.file.Seq < upTo {
		if e.file.Removed || e.file.Broken != "" {
			return nil
		}
		var page []api.ConversationMessage
		q := fmt.Sprintf("/v1/conversations/%s/messages?after=%d", e.id, e.file.Seq)
		if err := c.Do(ctx, http.MethodGet, q, nil, &page); err != nil {
			return fmt.Errorf("fetch messages of %s: %w", e.id, err)
		}
		for _, m := range page {
			if err := c.handleLocked(ctx, e, m); err != nil {
				return err
			}
		}
		if err := c.flushLocked(ctx, e, nil); err != nil {
			return err
		}
		if len(page) < deliver.MaxFetch {
			break
		}
	}
	return nil
}

// flushLocked saves the state if it changed and acknowledges what was
// handled: on the stream if ack is given, else with a request.
func (c *Client) flushLocked(ctx context.Context, e *convEntry, ack func(id string, seq int64) error) error {
	if e.dirty {
		if err := c.saveLocked(e); err != nil {
			return err
		}
	}
	if !e.unacked {
		return nil
	}
	if err := c.syncStorage(ctx); err != nil {
		return err
	}
	var err error
	if ack != nil {
		err = ack(e.id, e.file.Seq)
	} else {
		err = c.Do(ctx, http.MethodPost, "/v1/conversations/"+e.id+"/ack", api.ConversationAck{Seq: e.file.Seq}, nil)
	}
	if err == nil {
		e.unacked = false
	}
	return err
}

// errGap: a message arrived ahead of one not yet handled.
var errGap = errors.New("message out of order")

// handleLocked handles the next message of a conversation. A message
// already handled is ignored; one further ahead is errGap. It returns an
// error only when the message must be handled again later (this device
// could not save, say); a message this device refuses is reported as an
// UpdateProblem and counts as handled.
func (c *Client) handleLocked(ctx context.Context, e *convEntry, m api.ConversationMessage) error {
	before := e.file.Seq
	if err := c.handleMessageLocked(ctx, e, m); err != nil {
		return err
	}
	if before < m.Seq && e.file.Seq == m.Seq {
		c.mu.Lock()
		fn := c.handled
		c.mu.Unlock()
		if fn != nil {
			return fn(Handled{Conversation: e.id, Seq: m.Seq, Time: m.Time, Chain: bytes.Clone(e.file.Chain), Digest: e.digest, Recorded: e.recordedSeq == m.Seq})
		}
	}
	return nil
}

// Handled is a message this device handled, as SetHandled reports it.
type Handled struct {
	Conversation string
	Seq          int64
	Time         time.Time // when the server accepted it
	Chain        []byte    // the conversation's message chain after it
	Digest       []byte    // the message's SHA-256, which the chain links
	Recorded     bool      // it went to the history (or SetRecords' fn)
}

// SetHandled makes fn hear of every message this device handles, in the
// conversation's order, with the conversation's message chain after it
// and whether it went to the history (or to SetRecords' fn), before the
// device saves its state and acknowledges it; an error from fn stops the
// handling. The archive device keeps its index of the chain this way.
func (c *Client) SetHandled(fn func(Handled) error) {
	c.mu.Lock()
	c.handled = fn
	c.mu.Unlock()
}

// linkChainLocked follows the conversation's message chain over m from
// the chain this device holds. The first message a device that joined
// later handles anchors it at the server's value; from then on the device
// computes each link itself, and reports a server whose chain differs:
// it showed this device other messages than it chained (and commits to
// the log).
func (c *Client) linkChainLocked(e *convEntry, m api.ConversationMessage) {
	if len(e.file.Chain) == 0 {
		e.file.Chain = bytes.Clone(m.Chain)
		return
	}
	next := conversation.ChainNext(e.file.Chain, m.Message)
	if len(m.Chain) > 0 && !bytes.Equal(next, m.Chain) {
		e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateProblem,
			Err: fmt.Errorf("message %d: %w", m.Seq, ErrChainMismatch)})
	}
	e.file.Chain = next
}

// ErrChainMismatch: the server's message chain differs from the one this
// device computed over the messages it was given.
var ErrChainMismatch = errors.New("the server's message chain does not match the messages it delivered")

func (c *Client) handleMessageLocked(ctx context.Context, e *convEntry, m api.ConversationMessage) error {
	if m.Seq <= e.file.Seq {
		e.unacked = true // the server thinks it was lost: tell it again
		return nil
	}
	if m.Seq != e.file.Seq+1 {
		return errGap
	}
	problem := func(err error) {
		e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateProblem, Err: fmt.Errorf("message %d: %w", m.Seq, err)})
	}
	defer func() { e.file.Seq, e.dirty, e.unacked = m.Seq, true, true }()
	d := sha256.Sum256(m.Message)
	e.digest, e.digestSeq = d[:], m.Seq
	c.linkChainLocked(e, m)
	if len(e.file.Own) > 0 && m.Kind == int(mls.ContentApplication) {
		if i := slices.Index(e.file.Own, ownKey(m.Message)); i >= 0 {
			e.file.Own = slices.Delete(e.file.Own, i, i+1)
			return nil
		}
	}
	if usable(e) != nil {
		return nil
	}
	msg, err := mls.UnmarshalMLSMessage(m.Message)
	if err != nil {
		c.refuseLocked(e, m, msg, fmt.Errorf("malformed: %w", err))
		return nil
	}
	if err := c.checkHandshake(e, msg); err != nil {
		c.refuseLocked(e, m, msg, err)
		return nil
	}
	var before map[mls.LeafIndex]*mls.LeafNode // the leaves a commit may remove
	if msg.PublicMessage != nil && msg.PublicMessage.Content.ContentType == mls.ContentCommit {
		before = map[mls.LeafIndex]*mls.LeafNode{}
		for _, mm := range e.group.Members() {
			before[mm.Index] = mm.Leaf
		}
	}
	p, err := e.group.Process(msg)
	if err != nil && errors.Is(err, mls.ErrLeafRefused) {
		// A device approved since this device last verified the log is
		// not in its view yet: verify again, then decide.
		if _, verr := c.VerifyLog(ctx); verr == nil || errors.Is(verr, ErrLogProblem) {
			p, err = e.group.Process(msg)
		}
	}
	if err != nil {
		c.refuseLocked(e, m, msg, err)
		return nil
	}
	switch p.Kind {
	case mls.ContentApplication:
		content, err := conversation.UnmarshalContent(p.ApplicationData)
		clear(p.ApplicationData)
		if err != nil {
			problem(err)
			return nil
		}
		from := c.memberAt(e.group, p.Sender.Leaf)
		if content.Checkpoint != nil {
			if err := c.CompareCheckpoint(ctx, content.Checkpoint); err != nil {
				problem(fmt.Errorf("the transparency-log checkpoint %s sent does not match this device's: %w", from.User, err))
			}
		}
		if content.Kind == conversation.KindCheckpoint {
			return nil
		}
		msg := Message{Conversation: e.id, Seq: m.Seq, Epoch: m.Epoch, Time: m.Time, User: from.User, Device: from.Device,
			Kind: kindName(content.Kind), Text: content.Text, Data: content.Data}
		if content.Kind == conversation.KindTitle {
			e.file.Title = content.Text
		}
		if err := c.recordLater(e, msg); err != nil {
			return err
		}
		e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateMessage, Message: &msg})
	case mls.ContentCommit:
		if p.RemovedSelf {
			e.file.Removed, e.group = true, nil
			e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateLeft})
			return nil
		}
		if len(p.Added) == 0 && len(p.Removed) == 0 {
			return nil
		}
		u := Update{Conversation: e.id, Kind: UpdateMembers}
		if p.Sender.Type == mls.SenderMember {
			by := c.memberAt(e.group, p.Sender.Leaf)
			u.By = &by
		}
		for _, l := range p.Added {
			u.Added = append(u.Added, c.memberAt(e.group, l))
		}
		for _, l := range p.Removed {
			u.Removed = append(u.Removed, c.member(mls.Member{Index: l, Leaf: before[l]}))
		}
		e.updates = append(e.updates, u)
		rec := Message{Conversation: e.id, Seq: m.Seq, Epoch: m.Epoch, Time: m.Time, Kind: "members", Own: p.OwnCommit}
		if u.By != nil {
			rec.User, rec.Device = u.By.User, u.By.Device
		}
		for _, x := range u.Added {
			rec.Added = append(rec.Added, x.User)
		}
		for _, x := range u.Removed {
			rec.Removed = append(rec.Removed, x.User)
		}
		if err := c.recordLater(e, rec); err != nil {
			return err
		}
	}
	return nil
}

// refuseLocked reports a message this device would not take. A refused
// commit means the group moved on without this device: it stops following
// the conversation.
func (c *Client) refuseLocked(e *convEntry, m api.ConversationMessage, msg *mls.MLSMessage, err error) {
	if m.Kind == int(mls.ContentCommit) || msg != nil && msg.PublicMessage != nil && msg.PublicMessage.Content.ContentType == mls.ContentCommit {
		e.file.Broken = fmt.Sprintf("refused commit %d: %v", m.Seq, err)
		if e.group != nil && e.group.HasPendingCommit() {
			e.group.DiscardPending()
		}
		e.group = nil
	}
	e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateProblem, Err: fmt.Errorf("message %d refused: %w", m.Seq, err)})
}

// checkHandshake applies Hotline's rules that mls.Group does not know: a
// commit may not change a conversation's classification or external
// senders.
func (c *Client) checkHandshake(e *convEntry, msg *mls.MLSMessage) error {
	if msg.PublicMessage == nil {
		return nil
	}
	content := &msg.PublicMessage.Content
	var exts [][]mls.Extension
	switch content.ContentType {
	case mls.ContentProposal:
		if p, ok := content.Proposal.(*mls.GroupContextExtensionsProposal); ok {
			exts = append(exts, p.Extensions)
		}
	case mls.ContentCommit:
		for _, por := range content.Commit.Proposals {
			if p, ok := por.Proposal.(*mls.GroupContextExtensionsProposal); ok && por.Type == mls.ProposalOrRefProposal {
				exts = append(exts, p.Extensions)
			}
		}
	}
	cur := e.group.GroupContext().Extensions
	for _, x := range exts {
		for _, t := range []mls.ExtensionType{conversation.ExtClassification, mls.ExtExternalSenders} {
			if !bytes.Equal(extData(cur, t), extData(x, t)) {
				return fmt.Errorf("%w: a change of the conversation's classification or external senders", conversation.ErrNotAllowed)
			}
		}
	}
	return nil
}

func extData(exts []mls.Extension, t mls.ExtensionType) []byte {
	for _, x := range exts {
		if x.Type == t {
			return x.Data
		}
	}
	return nil
}

// receive handles a message the event stream delivered: in order, filling
// any gap from the server first.
func (c *Client) receive(ctx context.Context, m *api.ConversationMessage) (*convEntry, error) {
	e, err := c.entry(m.Conversation)
	if errors.Is(err, ErrNoConversation) {
		return nil, nil // a conversation this device did not join: nothing to do
	} else if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	err = c.handleLocked(ctx, e, *m)
	if errors.Is(err, errGap) {
		if err = c.catchUpLocked(ctx, e, m.Seq-1); err == nil {
			err = c.handleLocked(ctx, e, *m)
		}
	}
	return e, err
}

// join handles a Welcome: it finds the key package it is for, joins,
// checks the group and every member, and keeps the conversation.
func (c *Client) join(ctx context.Context, payload []byte) error {
	var w deliver.WelcomePayload
	if err := json.Unmarshal(payload, &w); err != nil {
		return c.reportJoin("", fmt.Errorf("malformed Welcome event: %w", err))
	}
	gid, err := base64.RawURLEncoding.Strict().DecodeString(w.Conversation)
	if err != nil || len(gid) == 0 {
		return c.reportJoin(w.Conversation, errors.New("malformed conversation ID"))
	}
	if e, err := c.entry(w.Conversation); err == nil {
		e.mu.Lock()
		have := e.group != nil && e.file.Seq >= w.Seq
		c.unlock(e)
		if have {
			return nil // joined already (the event came again)
		}
	}
	msg, err := mls.UnmarshalMLSMessage(w.Welcome)
	if err != nil || msg.Welcome == nil {
		return c.reportJoin(w.Conversation, errors.New("not a Welcome"))
	}
	var (
		kp   *mls.KeyPackage
		sec  mls.KeyPackageSecrets
		ref  []byte
		kerr error
	)
	for _, s := range msg.Welcome.Secrets {
		if kp, sec, kerr = c.keyPackage(s.NewMember); kerr == nil {
			ref = s.NewMember
			break
		}
	}
	if kp == nil {
		return c.reportJoin(w.Conversation, errors.New("the Welcome is for none of this device's key packages"))
	}
	signer, err := c.signer()
	if err != nil {
		return err
	}
	e := &convEntry{id: w.Conversation, gid: gid, checkAfter: true, file: convFile{Seq: w.Seq, LastUpdate: c.now()}}
	g, err := mls.JoinFromWelcome(msg.Welcome, kp, sec, signer, nil, c.groupOptions(e))
	if err != nil {
		return c.reportJoin(w.Conversation, err)
	}
	e.group = g
	if !bytes.Equal(g.GroupID(), gid) || g.Epoch() != w.Epoch {
		return c.reportJoin(w.Conversation, errors.New("the Welcome is for another conversation or epoch than the server says"))
	}
	err = c.checkGroup(g)
	if err != nil && errors.Is(err, conversation.ErrNotAllowed) {
		if _, verr := c.VerifyLog(ctx); verr == nil || errors.Is(verr, ErrLogProblem) {
			err = c.checkGroup(g)
		}
	}
	if err != nil {
		return c.reportJoin(w.Conversation, fmt.Errorf("refused to join: %w", err))
	}
	e.checkAfter = false
	e.mu.Lock()
	c.convs.mu.Lock()
	c.addEntryLocked(e)
	c.convs.mu.Unlock()
	err = c.saveLocked(e)
	if err == nil {
		c.dropKeyPackage(ref)
		e.updates = append(e.updates, Update{Conversation: e.id, Kind: UpdateJoined})
	}
	c.unlock(e)
	return err
}

// reportJoin hands a refused Welcome to the update handler; the event counts
// as handled.
func (c *Client) reportJoin(id string, err error) error {
	c.convs.mu.Lock()
	h := c.convs.handler
	c.convs.mu.Unlock()
	if h != nil {
		h(Update{Conversation: id, Kind: UpdateProblem, Err: fmt.Errorf("Welcome: %w", err)})
	}
	return nil
}

// dropKeyPackage deletes a used key package's private keys, unless it is
// the last-resort one, which may be used again.
func (c *Client) dropKeyPackage(ref []byte) {
	name := path.Join(KeyPackageDir, hex.EncodeToString(ref))
	b, err := c.st.ReadFile(name)
	if err != nil {
		return
	}
	defer clear(b)
	var f keyPackageSecretsFile
	if json.Unmarshal(b, &f) == nil && !f.LastResort {
		c.st.Remove(name)
	}
	clear(f.Init)
	clear(f.Encryption)
}

// ErrSyncTimeout is returned by Sync when the server did not finish
// sending what it had queued in time.
var ErrSyncTimeout = errors.New("sync did not finish")

// Sync handles everything the server has queued for this device (Welcomes,
// conversation messages, events) and returns when it has caught up.
func (c *Client) Sync(ctx context.Context) error {
	if err := c.EnsureKeyPackages(ctx, DefaultSuite); err != nil {
		return err
	}
	return c.Events(ctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamIdle {
			return ErrStop
		}
		return nil
	})
}

// Follow handles this device's stream until ctx ends, handing every Update
// to fn (as OnUpdate does).
func (c *Client) Follow(ctx context.Context, fn func(Update)) error {
	if err := c.EnsureKeyPackages(ctx, DefaultSuite); err != nil {
		return err
	}
	c.OnUpdate(fn)
	defer c.OnUpdate(nil)
	return c.Events(ctx, func(api.StreamMessage) error { return nil })
}

// OpenMessage decrypts one application message (an MLSMessage) of a
// conversation with a copy of this device's current state, changing
// nothing: for audits, and for tests that show who can read what.
func (c *Client) OpenMessage(id string, raw []byte) (conversation.Content, error) {
	e, err := c.entry(id)
	if err != nil {
		return conversation.Content{}, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := usable(e); err != nil {
		return conversation.Content{}, err
	}
	st, err := e.group.MarshalState()
	if err != nil {
		return conversation.Content{}, err
	}
	defer clear(st)
	signer, err := c.signer()
	if err != nil {
		return conversation.Content{}, err
	}
	g, err := mls.UnmarshalGroupState(st, signer, mls.GroupOptions{Now: c.now})
	if err != nil {
		return conversation.Content{}, err
	}
	msg, err := mls.UnmarshalMLSMessage(raw)
	if err != nil {
		return conversation.Content{}, err
	}
	p, err := g.Process(msg)
	if err != nil {
		return conversation.Content{}, err
	}
	if p.Kind != mls.ContentApplication {
		return conversation.Content{}, errors.New("not an application message")
	}
	return conversation.UnmarshalContent(p.ApplicationData)
}

// SendAttachment encrypts and uploads r, then sends its descriptor (which
// holds the file's key) in the conversation.
func (c *Client) SendAttachment(ctx context.Context, id string, r io.Reader, name, mediaType string) (Message, error) {
	d, err := c.UploadAttachment(ctx, r, name, mediaType)
	if err != nil {
		return Message{}, err
	}
	return c.Send(ctx, id, conversation.Content{Kind: conversation.KindAttachment, Data: d.Marshal()})
}

// ownKey names one of this device's own messages: a hash of its bytes.
func ownKey(msg []byte) string {
	h := sha256.Sum256(msg)
	return hex.EncodeToString(h[:16])
}
