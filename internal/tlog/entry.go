package tlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxEntrySize is the largest encoded entry.
const MaxEntrySize = 16 << 10

// Limits on entry fields.
const (
	sigKeySize    = 32 // Ed25519 public key
	chainSize     = 32 // a conversation's message chain: SHA-256
	maxKEMKeySize = 2048
	maxReasonLen  = 64
)

// Entry types. The comment says which fields each type requires.
const (
	TypeOrgCreate      = "org.create"      // KeySet: the root-signed key set; only the first entry
	TypeKeysRotate     = "keys.rotate"     // KeySet
	TypeUserCreate     = "user.create"     // User, Clearance (Roles, Compartments)
	TypeUserRoles      = "user.roles"      // User (Roles)
	TypeUserClearance  = "user.clearance"  // User, Clearance (Compartments, Approvers)
	TypeUserDisable    = "user.disable"    // User
	TypeDeviceEnrol    = "device.enrol"    // User, Device, SigKey, KEMKey, Reason "active" or "pending"
	TypeDeviceApprove  = "device.approve"  // User, Device, Approvers: all approvers of the device
	TypeDeviceRevoke   = "device.revoke"   // User, Device, Reason
	TypePolicyAdd      = "policy.add"      // Rule
	TypePolicyRemove   = "policy.remove"   // Rule
	TypeContactRefused = "contact.refused" // Actor, Target, Reason (ActorDevice, Count)
	// Conversations: who is in which (never what is said). Conversation is
	// the MLS group ID in unpadded base64url.
	TypeConversationCreate = "conversation.create" // Conversation, Actor, ActorDevice, Clearance (Compartments)
	TypeMemberAdd          = "member.add"          // Conversation, User, Device (Actor, ActorDevice)
	TypeMemberRemove       = "member.remove"       // Conversation, User, Device, Reason (Actor, ActorDevice)
	// TypeConversationChain commits a conversation's message chain (see
	// conversation.ChainNext): Count is the seq of its newest message and
	// Chain the chain after it, so a member can prove it holds every
	// message up to there. Only hashes of ciphertexts, never content.
	TypeConversationChain = "conversation.chain" // Conversation, Count (the head's seq), Chain
	// Calls: who called, joined and left, and how calls ended (no content,
	// no media keys). Call is the call's ID.
	TypeCallStart = "call.start" // Conversation, Call, Actor, ActorDevice
	TypeCallJoin  = "call.join"  // Conversation, Call, User, Device
	TypeCallLeave = "call.leave" // Conversation, Call, User, Device, Reason
	TypeCallEnd   = "call.end"   // Conversation, Call, Reason
	TypeCallHold  = "call.hold"  // Conversation, Call, User, Device, Reason (hold or resume), Actor, ActorDevice
	// The duty desk's workflow: every step, metadata only (purposes,
	// reasons and briefings travel inside MLS groups). Item is the call
	// request's ID.
	TypeRequestCreate   = "request.create"   // Item, Actor, ActorDevice, Target (the principal), Urgency, Conversation
	TypeRequestApprove  = "request.approve"  // Item, Actor, ActorDevice, At (scheduled start)
	TypeRequestPropose  = "request.propose"  // Item, Actor, ActorDevice, Count (windows proposed)
	TypeRequestAccept   = "request.accept"   // Item, Actor, ActorDevice, At (scheduled start)
	TypeRequestDecline  = "request.decline"  // Item, Actor, ActorDevice
	TypeRequestWithdraw = "request.withdraw" // Item, Actor, ActorDevice
	TypeBriefingAttach  = "briefing.attach"  // Item, Actor, ActorDevice, Conversation (where the briefing is), Count (its version)
	TypeBriefingAck     = "briefing.ack"     // Item, Actor, ActorDevice, Count (the version acknowledged)
	// Memoranda of conversation and the commitments in them. Item is the
	// MemCon's or the commitment's ID; Ref the item it is about.
	TypeMemConDraft      = "memcon.draft"       // Item, Ref (the call request), Actor, ActorDevice, Target (the approver), Conversation, Count (commitments)
	TypeMemConApprove    = "memcon.approve"     // Item, Actor, ActorDevice
	TypeMemConDistribute = "memcon.distribute"  // Item, Actor, ActorDevice, Conversation, Recipients (the need-to-know list)
	TypeCommitmentOpen   = "commitment.open"    // Item, Ref (the MemCon), User (the owner), At (due)
	TypeCommitmentClose  = "commitment.close"   // Item, Actor, ActorDevice, Reason (done or cancelled)
	TypeCommitmentDue    = "commitment.overdue" // Item, User (the owner), At (due): the owner and the desk were alerted
	// Ad-hoc calls: a principal's call outside the scheduled path, and the
	// readout it owes the desk.
	TypeCallAdHoc      = "call.adhoc"      // Call, Conversation, User (the principal), At (the readout's deadline) (Target: the designated note-taker, Reason: whether they were rung)
	TypeNoteTakerSet   = "notetaker.set"   // Actor, ActorDevice, User (the principal) (Target: the note-taker designated; none: cleared)
	TypeReadoutFile    = "readout.file"    // Call, Actor, ActorDevice, Conversation (where the readout went)
	TypeReadoutMissing = "readout.missing" // Call, User (the principal), At (the deadline that passed)
	// Hotlines: standing lines between two devices, tested on a schedule.
	// Only changes of state are logged; each test's result is kept by the
	// server.
	TypeHotlineCreate = "hotline.create" // Item, Actor, ActorDevice (the near end), User, Device (the far end), Conversation, Count (interval, seconds)
	TypeHotlineRed    = "hotline.red"    // Item, Reason (timeout)
	TypeHotlineGreen  = "hotline.green"  // Item
	// Line checks before a call.
	TypeLineCheckStart = "linecheck.start" // Item, Ref (the call request), Actor, ActorDevice
	TypeLineCheckDone  = "linecheck.done"  // Item, Ref, Reason (green or red)
	// Records: the retention schedule, legal holds, and the archive's
	// expiries, so that no record goes unseen (the archive acts on these
	// entries, not on the server's word).
	TypeRecordsRetention = "records.retention"  // Actor, ActorDevice, Clearance (the level), Count (days kept; 0: for good)
	TypeRecordsHold      = "records.hold"       // Item (the hold), Actor, ActorDevice, Reason (Conversation: the one held; none: every one)
	TypeRecordsRelease   = "records.release"    // Item (the hold), Actor, ActorDevice
	TypeRecordsExpire    = "records.expire"     // Actor, ActorDevice (the archive), Conversation, Count (the records through this message were let go)
	TypeRecordsGrant     = "records.grant"      // Item (the grant), Actor, ActorDevice (the records officer), Target (the grantee), Conversation, Count (records given)
	TypeRecordsRead      = "records.read"       // Item (the grant), Actor, ActorDevice (the grantee opening it), Conversation
	TypeRecordsExport    = "records.export"     // Item (the export: its manifest's SHA-256, hex), Actor, ActorDevice (the records officer), Conversation, Count (records exported)
	TypeRecordsMove      = "records.move"       // Item (the export moved: its manifest's SHA-256), Actor, ActorDevice, Conversation, Count (its records through this message), Reason (where to, a code): the archive lets its copies go
	TypeRecordsReclass   = "records.reclassify" // Actor, ActorDevice, Conversation, Clearance (the level its records are kept under from now on)
)

// Entry is one log record. Its encoding is canonical JSON: the fields in
// this order, empty ones omitted, no HTML escaping, no trailing newline.
type Entry struct {
	Type         string   `json:"type"`
	Time         int64    `json:"time"`                   // unix seconds, > 0
	Actor        string   `json:"actor,omitempty"`        // user who caused it; "" for the system
	ActorDevice  string   `json:"actor_device,omitempty"` // the device Actor used
	User         string   `json:"user,omitempty"`         // subject user
	Device       string   `json:"device,omitempty"`       // subject device
	SigKey       string   `json:"sig_key,omitempty"`      // base64 Ed25519 public key
	KEMKey       string   `json:"kem_key,omitempty"`      // base64 HPKE public key
	Roles        []string `json:"roles,omitempty"`
	Clearance    string   `json:"clearance,omitempty"`
	Compartments []string `json:"compartments,omitempty"`
	Rule         string   `json:"rule,omitempty"`   // contact-policy rule text
	Target       string   `json:"target,omitempty"` // e.g. the user a refused contact was aimed at
	Reason       string   `json:"reason,omitempty"` // a stable code such as "lost", never free text
	Approvers    []string `json:"approvers,omitempty"`
	Count        int      `json:"count,omitempty"`        // e.g. suppressed refusals folded into this one
	KeySet       string   `json:"keyset,omitempty"`       // root-signed key set (note text)
	Conversation string   `json:"conversation,omitempty"` // MLS group ID, unpadded base64url
	Call         string   `json:"call,omitempty"`         // a call's ID
	Item         string   `json:"item,omitempty"`         // a workflow item's ID (a call request)
	Urgency      string   `json:"urgency,omitempty"`      // routine, priority or flash
	At           int64    `json:"at,omitempty"`           // a scheduled time, unix seconds
	Ref          string   `json:"ref,omitempty"`          // the workflow item Item is about
	Recipients   []string `json:"recipients,omitempty"`   // users a record was distributed to
	Chain        string   `json:"chain,omitempty"`        // base64 32-byte conversation message chain
}

// Marshal validates e and returns its canonical encoding.
func (e Entry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, malformed("entry: %v", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxEntrySize {
		return nil, malformed("entry is %d bytes, limit %d", len(b), MaxEntrySize)
	}
	return b, nil
}

// ParseEntry parses an entry, accepting only the canonical encoding that
// [Entry.Marshal] produces for a valid entry.
func ParseEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, malformed("entry is %d bytes, limit %d", len(b), MaxEntrySize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return Entry{}, malformed("entry: %v", err)
	}
	if dec.InputOffset() != int64(len(b)) {
		return Entry{}, malformed("entry has trailing data")
	}
	canon, err := e.Marshal()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(canon, b) {
		return Entry{}, malformed("entry is not in canonical form")
	}
	return e, nil
}

// Validate checks that e has a known type, a positive time, the fields its
// type requires, and well-formed values. Errors wrap [ErrMalformed].
func (e Entry) Validate() error {
	var missing []string
	need := func(field string, ok bool) {
		if !ok {
			missing = append(missing, field)
		}
	}
	switch e.Type {
	case TypeOrgCreate, TypeKeysRotate:
		need("keyset", e.KeySet != "")
	case TypeUserCreate, TypeUserClearance:
		need("user", e.User != "")
		need("clearance", e.Clearance != "")
	case TypeUserRoles, TypeUserDisable:
		need("user", e.User != "")
	case TypeDeviceEnrol:
		need("user", e.User != "")
		need("device", e.Device != "")
		need("sig_key", e.SigKey != "")
		need("kem_key", e.KEMKey != "")
		need(`reason "active" or "pending"`, e.Reason == "active" || e.Reason == "pending")
	case TypeDeviceApprove:
		need("user", e.User != "")
		need("device", e.Device != "")
		need("approvers", len(e.Approvers) > 0)
	case TypeDeviceRevoke:
		need("user", e.User != "")
		need("device", e.Device != "")
		need("reason", e.Reason != "")
	case TypePolicyAdd, TypePolicyRemove:
		need("rule", e.Rule != "")
	case TypeContactRefused:
		need("actor", e.Actor != "")
		need("target", e.Target != "")
		need("reason", e.Reason != "")
	case TypeConversationCreate:
		need("conversation", e.Conversation != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("clearance", e.Clearance != "")
	case TypeMemberAdd:
		need("conversation", e.Conversation != "")
		need("user", e.User != "")
		need("device", e.Device != "")
	case TypeMemberRemove:
		need("conversation", e.Conversation != "")
		need("user", e.User != "")
		need("device", e.Device != "")
		need("reason", e.Reason != "")
	case TypeConversationChain:
		need("conversation", e.Conversation != "")
		need("count", e.Count > 0)
		need("chain", e.Chain != "")
	case TypeCallStart:
		need("conversation", e.Conversation != "")
		need("call", e.Call != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
	case TypeCallJoin, TypeCallLeave:
		need("conversation", e.Conversation != "")
		need("call", e.Call != "")
		need("user", e.User != "")
		need("device", e.Device != "")
		need("reason", e.Type == TypeCallJoin || e.Reason != "")
	case TypeCallHold:
		need("conversation", e.Conversation != "")
		need("call", e.Call != "")
		need("user", e.User != "")
		need("device", e.Device != "")
		need("actor", e.Actor != "")
		need(`reason "hold" or "resume"`, e.Reason == "hold" || e.Reason == "resume")
	case TypeCallEnd:
		need("conversation", e.Conversation != "")
		need("call", e.Call != "")
		need("reason", e.Reason != "")
	case TypeRequestCreate, TypeRequestApprove, TypeRequestPropose, TypeRequestAccept,
		TypeRequestDecline, TypeRequestWithdraw, TypeBriefingAttach, TypeBriefingAck:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		switch e.Type {
		case TypeRequestCreate:
			need("target", e.Target != "")
			need("urgency", e.Urgency != "")
			need("conversation", e.Conversation != "")
		case TypeRequestApprove, TypeRequestAccept:
			need("at", e.At > 0)
		case TypeRequestPropose:
			need("count", e.Count > 0)
		case TypeBriefingAttach:
			need("conversation", e.Conversation != "")
			need("count", e.Count > 0)
		case TypeBriefingAck:
			need("count", e.Count > 0)
		}
	case TypeMemConDraft, TypeMemConApprove, TypeMemConDistribute, TypeCommitmentClose:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		switch e.Type {
		case TypeMemConDraft:
			need("ref", e.Ref != "")
			need("target", e.Target != "")
			need("conversation", e.Conversation != "")
		case TypeMemConDistribute:
			need("conversation", e.Conversation != "")
			need("recipients", len(e.Recipients) > 0)
		case TypeCommitmentClose:
			need(`reason "done" or "cancelled"`, e.Reason == "done" || e.Reason == "cancelled")
		}
	case TypeCallAdHoc, TypeReadoutMissing:
		need("call", e.Call != "")
		need("user", e.User != "")
		need("at", e.At > 0)
		need("conversation", e.Type == TypeReadoutMissing || e.Conversation != "")
	case TypeNoteTakerSet:
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("user", e.User != "")
	case TypeReadoutFile:
		need("call", e.Call != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
	case TypeHotlineCreate:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("user", e.User != "")
		need("device", e.Device != "")
		need("conversation", e.Conversation != "")
		need("count", e.Count > 0)
	case TypeLineCheckStart:
		need("item", e.Item != "")
		need("ref", e.Ref != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
	case TypeLineCheckDone:
		need("item", e.Item != "")
		need("ref", e.Ref != "")
		need(`reason "green" or "red"`, e.Reason == "green" || e.Reason == "red")
	case TypeHotlineRed, TypeHotlineGreen:
		need("item", e.Item != "")
		need("reason", e.Type == TypeHotlineGreen || e.Reason != "")
	case TypeRecordsRetention:
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("clearance", e.Clearance != "")
	case TypeRecordsHold:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("reason", e.Reason != "")
	case TypeRecordsRelease:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
	case TypeRecordsExpire:
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
		need("count", e.Count > 0)
	case TypeRecordsGrant:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("target", e.Target != "")
		need("conversation", e.Conversation != "")
		need("count", e.Count > 0)
	case TypeRecordsExport:
		need("item", len(e.Item) == 64 && strings.Trim(e.Item, "0123456789abcdef") == "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
	case TypeRecordsMove:
		need("item", len(e.Item) == 64 && strings.Trim(e.Item, "0123456789abcdef") == "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
		need("count", e.Count > 0)
		need("reason", e.Reason != "")
	case TypeRecordsReclass:
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
		need("clearance", e.Clearance != "")
	case TypeRecordsRead:
		need("item", e.Item != "")
		need("actor", e.Actor != "")
		need("actor_device", e.ActorDevice != "")
		need("conversation", e.Conversation != "")
	case TypeCommitmentOpen, TypeCommitmentDue:
		need("item", e.Item != "")
		need("user", e.User != "")
		need("at", e.At > 0)
		need("ref", e.Type == TypeCommitmentDue || e.Ref != "")
	default:
		return malformed("entry type %.40q unknown", e.Type)
	}
	if missing != nil {
		return malformed("%s entry lacks %s", e.Type, strings.Join(missing, ", "))
	}
	if e.Time <= 0 {
		return malformed("%s entry time %d is not positive", e.Type, e.Time)
	}
	if e.Count < 0 {
		return malformed("%s entry count %d is negative", e.Type, e.Count)
	}
	if e.Call != "" && !isCode(e.Call) {
		return malformed("%s entry call %.40q is not an ID", e.Type, e.Call)
	}
	if e.Ref != "" && !isCode(e.Ref) {
		return malformed("%s entry ref %.40q is not an ID", e.Type, e.Ref)
	}
	if e.Item != "" && !isCode(e.Item) {
		return malformed("%s entry item %.40q is not an ID", e.Type, e.Item)
	}
	if e.Urgency != "" && e.Urgency != "routine" && e.Urgency != "priority" && e.Urgency != "flash" {
		return malformed("%s entry urgency %.40q: want routine, priority or flash", e.Type, e.Urgency)
	}
	if e.At < 0 {
		return malformed("%s entry at %d is negative", e.Type, e.At)
	}
	for _, s := range []string{e.Actor, e.ActorDevice, e.User, e.Device, e.Clearance, e.Rule, e.Target, e.KeySet} {
		if !utf8.ValidString(s) {
			return malformed("%s entry has invalid UTF-8", e.Type)
		}
	}
	for _, l := range []struct {
		field string
		names []string
	}{{"roles", e.Roles}, {"compartments", e.Compartments}, {"approvers", e.Approvers}, {"recipients", e.Recipients}} {
		if err := checkList(l.names); err != nil {
			return malformed("%s entry %s: %v", e.Type, l.field, err)
		}
	}
	if e.SigKey != "" {
		if k, err := decodeBase64(e.SigKey); err != nil || len(k) != sigKeySize {
			return malformed("%s entry sig_key is not a base64 %d-byte key", e.Type, sigKeySize)
		}
	}
	if e.KEMKey != "" {
		if k, err := decodeBase64(e.KEMKey); err != nil || len(k) > maxKEMKeySize {
			return malformed("%s entry kem_key is not base64 of at most %d bytes", e.Type, maxKEMKeySize)
		}
	}
	if e.Chain != "" {
		if c, err := decodeBase64(e.Chain); err != nil || len(c) != chainSize {
			return malformed("%s entry chain is not a base64 %d-byte hash", e.Type, chainSize)
		}
	}
	if !isCode(e.Reason) {
		return malformed("%s entry reason %.40q is not a code", e.Type, e.Reason)
	}
	if e.Conversation != "" {
		if id, err := base64.RawURLEncoding.Strict().DecodeString(e.Conversation); err != nil || len(id) == 0 || len(id) > 255 ||
			base64.RawURLEncoding.EncodeToString(id) != e.Conversation {
			return malformed("%s entry conversation is not a canonical base64url group ID", e.Type)
		}
	}
	return nil
}

// checkList checks a list of names: each non-empty, valid UTF-8, unique.
func checkList(list []string) error {
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		switch {
		case s == "":
			return errors.New("empty name")
		case !utf8.ValidString(s):
			return errors.New("invalid UTF-8")
		case seen[s]:
			return fmt.Errorf("%.40q listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

// isCode reports whether s is empty or a stable code: at most 64 bytes of
// lower-case ASCII letters, digits, '.', '_' and '-'.
func isCode(s string) bool {
	if len(s) > maxReasonLen {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
