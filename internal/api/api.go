// Package api is the wire format between Hotline devices and servers: JSON
// bodies over HTTPS, and messages on the WebSocket event stream. Server and
// clients share these types, so there is one definition of the protocol.
// docs/api.md describes the endpoints.
//
// Binary values (keys, signatures, nonces, log entries) are standard base64;
// signed notes (credentials, key sets, checkpoints) travel as their text.
// Times are RFC 3339. Every error response is {"error": {"code", "message",
// "hint"}} with a code from internal/apierr.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/desk"
)

// MaxBody is the largest request body any endpoint accepts.
const MaxBody = 64 << 10

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error *apierr.Error `json:"error"`
}

// Decode reads exactly one JSON value into v, refusing unknown fields,
// trailing data and bodies over limit bytes. Its errors are *apierr.Error.
func Decode(r io.Reader, limit int64, v any) error {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if lr.N <= 0 || errors.As(err, &mbe) {
			return apierr.New(apierr.TooLarge, "request body over %d bytes", limit)
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return apierr.New(apierr.BadRequest, "empty request body")
		case errors.As(err, &se):
			return apierr.New(apierr.BadRequest, "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return apierr.New(apierr.BadRequest, "field %q: want %s", te.Field, te.Type)
		}
		return apierr.New(apierr.BadRequest, "malformed JSON: %s", safeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if lr.N <= 0 || errors.As(err, &mbe) {
			return apierr.New(apierr.TooLarge, "request body over %d bytes", limit)
		}
		return apierr.New(apierr.BadRequest, "trailing data after the JSON value")
	}
	return nil
}

// safeJSONError keeps encoding/json's description of an unknown field or
// similar, which names the field but no value.
func safeJSONError(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return fmt.Sprintf("%q", s)
}

// OrgInfo is GET /v1/org: what a device needs to trust the organisation.
type OrgInfo struct {
	Org       string `json:"org"`
	RootKey   string `json:"root_key"` // note verifier key of the offline root key
	KeySet    string `json:"keyset"`   // the current root-signed key set
	LogOrigin string `json:"log_origin"`
	// RequireArchive: conversations must include the organisation's
	// archive member before anyone sends in them.
	RequireArchive bool `json:"require_archive,omitempty"`
}

// EnrollRequest is POST /v1/enroll.
type EnrollRequest struct {
	Invite string `json:"invite"`
	SigKey string `json:"sig_key"`
	KEMKey string `json:"kem_key"`
	Label  string `json:"label"`
	Proof  string `json:"proof"` // signature by sig_key over identity.EnrolMessage
}

// EnrollResponse answers EnrollRequest.
type EnrollResponse struct {
	User       string `json:"user"`
	Device     string `json:"device"`
	Status     string `json:"status"`
	Credential string `json:"credential,omitempty"`
}

// ChallengeRequest is POST /v1/auth/challenge.
type ChallengeRequest struct {
	Device string `json:"device"`
}

// ChallengeResponse carries a nonce to sign with identity.AuthChallengeMessage.
type ChallengeResponse struct {
	Nonce   string    `json:"nonce"`
	Expires time.Time `json:"expires"`
}

// SessionRequest is POST /v1/auth/session.
type SessionRequest struct {
	Device    string `json:"device"`
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"`
	// Unlock is a ticket from POST /v1/passkeys/unlock/{ceremony}; a
	// device with a passkey gets a session only with one.
	Unlock string `json:"unlock,omitempty"`
}

// SessionResponse carries a short-lived session token for the
// Authorization: Bearer header. It is never stored on disk by clients.
type SessionResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// User is a directory entry.
type User struct {
	ID           string    `json:"id"`
	Roles        []string  `json:"roles"`
	Clearance    string    `json:"clearance"`
	Compartments []string  `json:"compartments"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
}

// Approval is one user's approval of a device.
type Approval struct {
	Approver       string    `json:"approver"`
	ApproverDevice string    `json:"approver_device"`
	At             time.Time `json:"at"`
}

// Device is an enrolled device.
type Device struct {
	ID                string     `json:"id"`
	User              string     `json:"user"`
	Label             string     `json:"label"`
	Status            string     `json:"status"`
	SigKey            string     `json:"sig_key"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	CredentialExpires *time.Time `json:"credential_expires,omitempty"`
	Approvals         []Approval `json:"approvals,omitempty"`
}

// Me is GET /v1/me.
type Me struct {
	User       User   `json:"user"`
	Device     Device `json:"device"`
	Credential string `json:"credential,omitempty"`
}

// Credential is POST /v1/me/credential's answer: a fresh credential.
type Credential struct {
	Credential string `json:"credential"`
}

// Invite is a one-time enrolment code, shown once.
type Invite struct {
	User    string    `json:"user"`
	Code    string    `json:"invite"`
	Expires time.Time `json:"expires"`
}

// CreateUserRequest is POST /v1/users.
type CreateUserRequest struct {
	User         string   `json:"user"`
	Roles        []string `json:"roles"`
	Clearance    string   `json:"clearance,omitempty"`
	Compartments []string `json:"compartments,omitempty"`
}

// CreateUserResponse answers CreateUserRequest.
type CreateUserResponse struct {
	User             User   `json:"user"`
	Invite           Invite `json:"invite"`
	ClearanceRequest int64  `json:"clearance_request,omitempty"`
}

// RolesRequest is PUT /v1/users/{id}/roles.
type RolesRequest struct {
	Roles []string `json:"roles"`
}

// ClearanceRequest is PUT /v1/users/{id}/clearance.
type ClearanceRequest struct {
	Clearance    string   `json:"clearance"`
	Compartments []string `json:"compartments"`
}

// ClearanceResponse says whether the change applied or awaits a second
// approver.
type ClearanceResponse struct {
	User      User     `json:"user"`
	Applied   bool     `json:"applied"`
	RequestID int64    `json:"request_id,omitempty"`
	Approvers []string `json:"approvers"`
}

// ChangeRequest is a change awaiting a second approver.
type ChangeRequest struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Subject     string          `json:"subject"`
	Change      json.RawMessage `json:"change"`
	RequestedBy string          `json:"requested_by"`
	CreatedAt   time.Time       `json:"created_at"`
	Status      string          `json:"status"`
	Approvers   []string        `json:"approvers"`
}

// InviteRequest is POST /v1/invites.
type InviteRequest struct {
	User string `json:"user"`
}

// ApproveResponse is POST /v1/devices/{id}/approve's answer.
type ApproveResponse struct {
	Device    Device `json:"device"`
	Activated bool   `json:"activated"`
	Needed    int    `json:"approvals_needed"`
}

// RevokeRequest is POST /v1/devices/{id}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Rule is a contact-policy rule.
type Rule struct {
	ID        int64     `json:"id"`
	Rule      string    `json:"rule"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// AddRuleRequest is POST /v1/policy.
type AddRuleRequest struct {
	Rule string `json:"rule"`
}

// Contact is one entry of GET /v1/contacts: a user the contact policy lets
// the caller reach.
type Contact struct {
	User         string   `json:"user"`
	Org          string   `json:"org"`
	Roles        []string `json:"roles"`
	Clearance    string   `json:"clearance"`
	Compartments []string `json:"compartments"`
	ViaRequest   bool     `json:"via_request,omitempty"` // only through a call request to the duty desk
}

// ContactRequest is POST /v1/contact.
type ContactRequest struct {
	To string `json:"to"`
}

// ContactResponse says a contact is allowed (refusals are errors).
type ContactResponse struct {
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule,omitempty"`
}

// Checkpoint is GET /v1/log/checkpoint: a signed C2SP checkpoint.
type Checkpoint struct {
	Checkpoint string `json:"checkpoint"`
}

// Entries is GET /v1/log/entries?start=&end=.
type Entries struct {
	Start   int64    `json:"start"`
	Entries [][]byte `json:"entries"`
}

// MaxEntriesPerRequest bounds one GET /v1/log/entries.
const MaxEntriesPerRequest = 1000

// InclusionProof is GET /v1/log/proof/inclusion?index=&size=.
type InclusionProof struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

// ConsistencyProof is GET /v1/log/proof/consistency?old=&new=.
type ConsistencyProof struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof []string `json:"proof"`
}

// A browser opens the event stream offering two subprotocols:
// WebSocketProtocol, which the server selects, and WebSocketBearerPrefix
// followed by the session token, since a browser cannot set the
// Authorization header of a WebSocket.
const (
	WebSocketProtocol     = "hotline"
	WebSocketBearerPrefix = "hotline.bearer."
)

// Stream message types on GET /v1/events (a WebSocket).
const (
	StreamReady  = "ready"  // server: the stream is open; LastSeq is the newest seq
	StreamEvent  = "event"  // server: a durable event; acknowledge it
	StreamNotice = "notice" // server: an ephemeral notice (Kind "checkpoint")
	StreamAck    = "ack"    // client: every event up to Seq is handled
	// StreamConv carries a conversation's message (Message); the client
	// acknowledges with StreamConvAck, Conversation and Seq.
	StreamConv    = "message"
	StreamConvAck = "conv_ack"
	// StreamIdle: server: the stream read the device's queue and sent all
	// it held (after each read; messages pushed live come without one).
	StreamIdle = "idle"
)

// StreamMessage is one message on the event stream.
type StreamMessage struct {
	Type         string               `json:"type"`
	Seq          int64                `json:"seq,omitempty"`
	Event        string               `json:"event,omitempty"`
	Payload      json.RawMessage      `json:"payload,omitempty"`
	Kind         string               `json:"kind,omitempty"`
	Data         string               `json:"data,omitempty"`
	LastSeq      int64                `json:"last_seq,omitempty"`
	Conversation string               `json:"conversation,omitempty"`
	Message      *ConversationMessage `json:"message,omitempty"`
}

// KeyPackagesUpload is POST /v1/keypackages: MLSMessage-encoded key
// packages, and optionally a last-resort one that replaces the previous.
type KeyPackagesUpload struct {
	KeyPackages [][]byte `json:"key_packages"`
	LastResort  []byte   `json:"last_resort,omitempty"`
}

// KeyPackageStock is a device's supply of key packages for one suite.
type KeyPackageStock struct {
	CipherSuite uint16 `json:"cipher_suite"`
	Ordinary    int    `json:"ordinary"`
	LastResort  bool   `json:"last_resort"`
}

// KeyPackageClaim is POST /v1/keypackages/claim. Except names devices not
// to claim for (those already in the conversation, say).
type KeyPackageClaim struct {
	User        string   `json:"user"`
	CipherSuite uint16   `json:"cipher_suite"`
	Except      []string `json:"except,omitempty"`
}

// ClaimedKeyPackage is one device's key package, handed out once.
type ClaimedKeyPackage struct {
	Device     string `json:"device"`
	KeyPackage []byte `json:"key_package"`
	LastResort bool   `json:"last_resort"`
}

// BlobCreate is POST /v1/blobs: start uploading an encrypted attachment of
// Size ciphertext bytes.
type BlobCreate struct {
	Size int64 `json:"size"`
}

// Blob describes an upload or a stored blob. IDs are unpadded base64url.
type Blob struct {
	ID        string `json:"id"`
	Size      int64  `json:"size"`
	ChunkSize int    `json:"chunk_size"`
	Chunks    int    `json:"chunks"`
	Present   []int  `json:"present,omitempty"`
	Complete  bool   `json:"complete"`
}

// BlobComplete is POST /v1/blobs/{id}/complete.
type BlobComplete struct {
	SHA256 []byte `json:"sha256"`
}

// ConversationCreate is POST /v1/conversations: the creator's signed
// GroupInfo (an MLSMessage) at epoch 0, with the ratchet tree extension.
type ConversationCreate struct {
	GroupInfo []byte `json:"group_info"`
}

// ConversationMember is which device of which user holds a leaf.
type ConversationMember struct {
	Leaf   uint32 `json:"leaf"`
	User   string `json:"user"`
	Device string `json:"device"`
}

// Conversation is what the server knows of a conversation: routing
// metadata and its classification, never its content (titles included).
// IDs are the MLS group ID in unpadded base64url.
type Conversation struct {
	ID           string               `json:"id"`
	Epoch        uint64               `json:"epoch"`
	HeadSeq      int64                `json:"head_seq"`
	CipherSuite  uint16               `json:"cipher_suite"`
	Clearance    string               `json:"clearance"`
	Compartments []string             `json:"compartments"`
	CreatedBy    string               `json:"created_by"`
	Members      []ConversationMember `json:"members"`
}

// DeviceConversation is one of the calling device's conversations (GET
// /v1/conversations): where its delivery stands. LeftSeq is the commit
// that removed it (0 while a member).
type DeviceConversation struct {
	ID        string `json:"id"`
	Leaf      uint32 `json:"leaf"`
	Epoch     uint64 `json:"epoch"`
	HeadSeq   int64  `json:"head_seq"`
	JoinedSeq int64  `json:"joined_seq"`
	LeftSeq   int64  `json:"left_seq,omitempty"`
	Acked     int64  `json:"acked"`
}

// ConversationPost is POST /v1/conversations/{id}/messages: an MLSMessage
// (a PrivateMessage, or a PublicMessage proposal or commit), and for a
// commit that adds members, their Welcome.
type ConversationPost struct {
	Message []byte `json:"message"`
	Welcome []byte `json:"welcome,omitempty"`
}

// ConversationPosted says where an accepted message went, and the
// conversation's epoch after it.
type ConversationPosted struct {
	Seq   int64  `json:"seq"`
	Epoch uint64 `json:"epoch"`
}

// ConversationMessage is one message of a conversation, as delivered
// (GET /v1/conversations/{id}/messages?after=, and on the event stream).
// Kind is the MLS content type: 1 application, 2 proposal, 3 commit.
// Sender is the sending device, or empty for the delivery service.
type ConversationMessage struct {
	Conversation string    `json:"conversation"`
	Seq          int64     `json:"seq"`
	Epoch        uint64    `json:"epoch"`
	Kind         int       `json:"kind"`
	Sender       string    `json:"sender,omitempty"`
	Message      []byte    `json:"message"`
	Time         time.Time `json:"time"`
	// Chain is the conversation's message chain after this message
	// (conversation.ChainNext), which the server commits to the log.
	Chain []byte `json:"chain,omitempty"`
}

// ConversationAck is POST /v1/conversations/{id}/ack: every message up to
// Seq is handled.
type ConversationAck struct {
	Seq int64 `json:"seq"`
}

// Call is a call as its participants see it: the answer of the call
// endpoints and the payload of every call event (call.ring, call.update,
// call.elsewhere, call.ended).
type Call struct {
	ID           string            `json:"id"`
	Conversation string            `json:"conversation"` // group ID, unpadded base64url
	Caller       string            `json:"caller"`
	CallerDevice string            `json:"caller_device"`
	State        string            `json:"state"`            // ringing, active, ended
	Reason       string            `json:"reason,omitempty"` // how it ended
	Level        string            `json:"level"`            // the conversation's classification, as the server knows it
	Compartments []string          `json:"compartments,omitempty"`
	Participants []CallParticipant `json:"participants"`
	CreatedAt    time.Time         `json:"created_at"`
	AnsweredAt   *time.Time        `json:"answered_at,omitempty"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
}

// CallParticipant is a device rung into or joined to a call, with its user's
// role.
type CallParticipant struct {
	User   string `json:"user"`
	Device string `json:"device"`
	Role   string `json:"role"`
	State  string `json:"state"` // ringing, joined, declined, left, missed, elsewhere
	// Listening: on the record but silent (a note-taker, the archive, the
	// recorder): the forwarder sends nobody their audio.
	Listening bool `json:"listening,omitempty"`
	// Held: joined but on hold (the desk's "please hold"): nothing is
	// forwarded to or from them until they are resumed.
	Held bool `json:"held,omitempty"`
	// Preempted: left (or missed, while ringing) because a call of higher
	// precedence took them: a flash call preempting this one. Clients
	// sound the preemption warning.
	Preempted bool `json:"preempted,omitempty"`
}

// MediaOffer is POST /v1/media: the device's SDP offer for its warm media
// connection to the server's forwarder (one sending Opus section, the
// microphone, and 8 receiving ones, the slots).
type MediaOffer struct {
	Offer string `json:"offer"`
}

// MediaAnswer is the forwarder's SDP answer.
type MediaAnswer struct {
	Answer string `json:"answer"`
}

// NoticeCallSlots is the notice kind whose data is a CallSlots.
const NoticeCallSlots = "call.slots"

// CallSlots says who a device hears on which of its receiving sections, in
// its call (Call "" and every slot empty when it is in none).
type CallSlots struct {
	Call  string `json:"call"`
	Slots []Slot `json:"slots"`
}

// NoticeCallQuality is the notice kind whose data is a CallQuality.
const NoticeCallQuality = "call.quality"

// CallQuality is the media quality of every participant of a call, as the
// server's forwarder measures it from RTP and RTCP, sent to each of them
// every few seconds.
type CallQuality struct {
	Call         string         `json:"call"`
	Participants []MediaQuality `json:"participants"`
}

// MediaQuality is one device's media path over the last interval. "In" is
// what the server receives from the device (its microphone), "out" what the
// device receives (its receiver reports).
type MediaQuality struct {
	Device   string  `json:"device"`
	LossIn   float64 `json:"loss_in"`   // fraction of the microphone's packets lost on the way in
	LossOut  float64 `json:"loss_out"`  // fraction lost on the way to the device, from its reports
	JitterMs float64 `json:"jitter_ms"` // the larger of the two directions' interarrival jitter
	RTTMs    float64 `json:"rtt_ms"`    // round trip between server and device (0: not yet measured)
}

// Slot is one receiving section of a device's media connection: its index
// among them, its a=mid, and the device heard on it ("" for none).
type Slot struct {
	Index  int    `json:"index"`
	Mid    string `json:"mid"`
	Device string `json:"device"`
}

// PasskeyRegisterRequest is POST /v1/passkeys/register (an empty object).
type PasskeyRegisterRequest struct{}

// PasskeyUnlockRequest is POST /v1/passkeys/unlock.
type PasskeyUnlockRequest struct {
	Device string `json:"device"`
}

// PasskeyCeremony starts a WebAuthn ceremony. PublicKey is the options for
// the browser, in the WebAuthn JSON form: PublicKeyCredentialCreationOptionsJSON
// for PublicKeyCredential.parseCreationOptionsFromJSON (registering) or
// PublicKeyCredentialRequestOptionsJSON for parseRequestOptionsFromJSON
// (unlocking). The browser's answer goes to the same path plus /Ceremony.
type PasskeyCeremony struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"public_key"`
}

// Passkey answers a finished registration.
type Passkey struct {
	Device    string    `json:"device"`
	CreatedAt time.Time `json:"created_at"`
}

// PasskeyUnlock answers a verified passkey assertion: a one-time ticket
// for SessionRequest.Unlock, valid until Expires.
type PasskeyUnlock struct {
	Device  string    `json:"device"`
	Unlock  string    `json:"unlock"`
	Expires time.Time `json:"expires"`
}

// CallRequestCreate is POST /v1/call-requests: ask the duty desk for a call
// with a principal. Conversation is the request's conversation (group ID,
// unpadded base64url), holding the requester and the duty officers; the
// purpose is sent there as an MLS message, never here.
type CallRequestCreate struct {
	Principal    string        `json:"principal"`
	Urgency      string        `json:"urgency"` // routine, priority, flash
	Windows      []desk.Window `json:"windows"` // when the requester could talk
	Zone         string        `json:"zone"`    // the requester's time zone (IANA), for display
	Conversation string        `json:"conversation"`
}

// CallRequest is a call request as the server knows it (metadata only): the
// answer of the call-request endpoints and the payload of request.update
// events.
type CallRequest struct {
	ID              string        `json:"id"`
	Requester       string        `json:"requester"`
	RequesterDevice string        `json:"requester_device"`
	Principal       string        `json:"principal"`
	Urgency         string        `json:"urgency"`
	Status          string        `json:"status"` // pending, proposed, scheduled, declined, withdrawn
	Conversation    string        `json:"conversation"`
	Zone            string        `json:"zone"`
	Windows         []desk.Window `json:"windows"` // the requester's, or the desk's once proposed
	ScheduledAt     *time.Time    `json:"scheduled_at,omitempty"`
	Duration        int64         `json:"duration,omitempty"` // seconds, once scheduled
	DecidedBy       string        `json:"decided_by,omitempty"`
	CreatedAt       time.Time     `json:"created_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
	Briefing        *BriefingInfo `json:"briefing,omitempty"`
}

// BriefingInfo is what the server knows of a call's briefing: where it is,
// who sent which version, and which version the principal acknowledged.
type BriefingInfo struct {
	Conversation string     `json:"conversation"`
	By           string     `json:"by"`
	Version      int        `json:"version"`
	At           time.Time  `json:"at"`
	Acked        int        `json:"acked,omitempty"`
	AckedAt      *time.Time `json:"acked_at,omitempty"`
}

// RequestDecision is POST /v1/call-requests/{id}/{action}: approve (At,
// Duration), propose (Windows), accept (At, Duration), decline, withdraw.
// Any reason is an MLS message in the request's conversation.
type RequestDecision struct {
	At       *time.Time    `json:"at,omitempty"`
	Duration int64         `json:"duration,omitempty"` // seconds (0: 30 minutes)
	Windows  []desk.Window `json:"windows,omitempty"`
}

// BriefingAttach is POST /v1/call-requests/{id}/briefing: version Version of
// the briefing was sent in Conversation (staff and the principal only).
type BriefingAttach struct {
	Conversation string `json:"conversation"`
	Version      int    `json:"version"`
}

// BriefingAck is POST /v1/call-requests/{id}/briefing/ack: the principal read
// Version.
type BriefingAck struct {
	Version int `json:"version"`
}

// MemConDraft is POST /v1/memcons: a memorandum of conversation about a
// call request, drafted in Conversation (the drafter and the approver, of
// the principal's side only), with its commitments' owners and due dates.
// The text of all of it is an MLS message there.
type MemConDraft struct {
	Request      string            `json:"request"`
	Approver     string            `json:"approver"`
	Conversation string            `json:"conversation"`
	Commitments  []CommitmentDraft `json:"commitments,omitempty"`
}

// CommitmentDraft is a commitment's metadata in a draft.
type CommitmentDraft struct {
	Owner string    `json:"owner"`
	Due   time.Time `json:"due"`
}

// MemCon is a memorandum of conversation as the server knows it.
type MemCon struct {
	ID            string       `json:"id"`
	Request       string       `json:"request"`
	Drafter       string       `json:"drafter"`
	Approver      string       `json:"approver"`
	Status        string       `json:"status"` // draft, approved, distributed
	Conversation  string       `json:"conversation"`
	CreatedAt     time.Time    `json:"created_at"`
	ApprovedAt    *time.Time   `json:"approved_at,omitempty"`
	Distribution  string       `json:"distribution,omitempty"` // the need-to-know copy's conversation
	Recipients    []string     `json:"recipients,omitempty"`
	DistributedAt *time.Time   `json:"distributed_at,omitempty"`
	Commitments   []Commitment `json:"commitments"`
}

// MemConDistribute is POST /v1/memcons/{id}/distribute: the approved MemCon
// was sent to Recipients (the need-to-know list) in Conversation.
type MemConDistribute struct {
	Conversation string   `json:"conversation"`
	Recipients   []string `json:"recipients"`
}

// Commitment is a promise from a MemCon: the payload of commitment.update
// and commitment.overdue events.
type Commitment struct {
	ID      string    `json:"id"`
	MemCon  string    `json:"memcon"`
	Owner   string    `json:"owner"`
	Due     time.Time `json:"due"`
	Status  string    `json:"status"` // draft, open, done, cancelled
	Overdue bool      `json:"overdue,omitempty"`
}

// Readout is what an ad-hoc call owes the duty desk: the payload of
// call.adhoc and readout.missing events and the answer of the readout
// endpoints. Status is due, filed or missing (past its deadline; it can
// still be filed, late).
type Readout struct {
	Call         string     `json:"call"`
	Conversation string     `json:"conversation"` // the call's
	Principal    string     `json:"principal"`
	Others       []string   `json:"others"` // who the principal talked to from outside the staff
	PlacedAt     time.Time  `json:"placed_at"`
	Due          time.Time  `json:"due"`
	Status       string     `json:"status"`
	FiledBy      string     `json:"filed_by,omitempty"`
	FiledAt      *time.Time `json:"filed_at,omitempty"`
	Readout      string     `json:"readout,omitempty"` // the conversation the readout's text went to
	Late         bool       `json:"late,omitempty"`    // filed after it was flagged missing
	// NoteTaker is the principal's designated note-taker when the call was
	// placed, and NoteTakerStatus whether they were rung with the others
	// ("rung", or "joined" if they placed it) or why they could not join:
	// "not_member" (not in the call's conversation), "busy" (in another
	// call), "not_cleared", "not_note_taker" (no longer a listening
	// note-taker), "unavailable" (disabled, or no active device).
	NoteTaker       string `json:"note_taker,omitempty"`
	NoteTakerStatus string `json:"note_taker_status,omitempty"`
}

// ReadoutFile is POST /v1/readouts/{call}: the readout was sent in
// Conversation (the principal's side, with a duty officer).
type ReadoutFile struct {
	Conversation string `json:"conversation"`
}

// NoteTaker is a principal's designated note-taker, rung into the
// principal's ad-hoc calls: the answer of GET /v1/note-takers and of
// PUT /v1/users/{id}/note-taker.
type NoteTaker struct {
	Principal string    `json:"principal"`
	NoteTaker string    `json:"note_taker"`
	SetBy     string    `json:"set_by"`
	SetAt     time.Time `json:"set_at"`
}

// NoteTakerSet is PUT /v1/users/{id}/note-taker: designate NoteTaker as
// the principal's note-taker.
type NoteTakerSet struct {
	NoteTaker string `json:"note_taker"`
}

// HotlineCreate is POST /v1/hotlines, from the near end's device: a
// standing line to FarDevice of FarUser in Conversation (the two devices'
// MLS group), tested every Interval seconds (0: an hour).
type HotlineCreate struct {
	Conversation string `json:"conversation"`
	FarUser      string `json:"far_user"`
	FarDevice    string `json:"far_device"`
	Interval     int64  `json:"interval,omitempty"`
}

// Hotline is a standing line and its health: green (the last test was
// answered end to end), red (it was not), or unknown (not tested yet).
type Hotline struct {
	ID           string        `json:"id"`
	Conversation string        `json:"conversation"`
	NearUser     string        `json:"near_user"`
	NearDevice   string        `json:"near_device"`
	FarUser      string        `json:"far_user"`
	FarDevice    string        `json:"far_device"`
	Interval     int64         `json:"interval"` // seconds between tests
	Timeout      int64         `json:"timeout"`  // seconds a test may take
	Status       string        `json:"status"`
	LastOK       *time.Time    `json:"last_ok,omitempty"`
	Changed      time.Time     `json:"changed"`
	Tests        []HotlineTest `json:"tests,omitempty"` // the latest, newest first
}

// HotlineTest is one test of a line.
type HotlineTest struct {
	At        time.Time `json:"at"`
	Result    string    `json:"result"` // ok, timeout
	LatencyMs float64   `json:"latency_ms,omitempty"`
}

// HotlineAsk is the payload of the hotline.test event to a line's near
// end: send a ping with Nonce in Conversation.
type HotlineAsk struct {
	Hotline      string `json:"hotline"`
	Conversation string `json:"conversation"`
	Nonce        string `json:"nonce"`
}

// HotlineReport is POST /v1/hotlines/{id}/tests: the far end answered the
// ping with Nonce; the round trip took LatencyUs.
type HotlineReport struct {
	Nonce     string `json:"nonce"`
	LatencyUs int64  `json:"latency_us"`
}

// LineCheck is a check of both ends of a call request's line before the
// call: for each end's device, each check green or red with a stable
// reason. Status is running, then green (every check green) or red.
type LineCheck struct {
	ID        string    `json:"id"`
	Request   string    `json:"request"`
	Status    string    `json:"status"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Deadline  time.Time `json:"deadline"`
	Ends      []LineEnd `json:"ends"`
}

// LineEnd is one device at one end of the line and its checks.
type LineEnd struct {
	Side   string      `json:"side"` // principal or requester
	User   string      `json:"user"`
	Device string      `json:"device"`
	Checks []LineProbe `json:"checks"`
	// Media is what the device measured of the media path end to end,
	// through the forwarder (the media check), once it reported.
	Media *LineMedia `json:"media,omitempty"`
}

// LineMedia is a device's measurement of the media path of a line check:
// it sent Sent probes and heard Echoes of them back from the other ends,
// with a median round trip of RTTMs (device to forwarder to far end and
// back, the far end's holding time taken out); Loss is the largest
// fraction of any other end's probes that never reached it or came too late
// to be played, over 200 ms behind that end's quickest (Worst is that end's
// device). Unsupported says why a device could not measure.
type LineMedia struct {
	Sent        int     `json:"sent"`
	Echoes      int     `json:"echoes"`
	RTTMs       float64 `json:"rtt_ms"`
	RTTMaxMs    float64 `json:"rtt_max_ms"`
	Loss        float64 `json:"loss"`
	Worst       string  `json:"worst,omitempty"`
	Unsupported string  `json:"unsupported,omitempty"`
}

// LineProbe is one check: credential, online, warm_line (checked by the
// server), log and group (answered by the device itself). Status is green,
// red or pending; Reason a stable code when red.
type LineProbe struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// LineCheckAsk is the payload of the linecheck.run event to an end's
// device: check your side of Conversation and report.
type LineCheckAsk struct {
	LineCheck    string `json:"linecheck"`
	Conversation string `json:"conversation"`
	// Probe, when set, asks the device to measure the media path: the
	// server has put the ends' warm lines in a probe session of its
	// forwarder, where each hears the others.
	Probe *LineProbeAsk `json:"probe,omitempty"`
}

// LineProbeAsk is how a device measures the media path of a line check:
// it sends Count probes, one every IntervalMs, encrypted with SFrame under
// the conversation's current epoch; answers every probe of Peers (the
// other devices probing) with an echo at once; and counts what it hears.
type LineProbeAsk struct {
	Count      int      `json:"count"`
	IntervalMs int      `json:"interval_ms"`
	Peers      []string `json:"peers"`
}

// LineCheckReport is POST /v1/linechecks/{id}/report: the device's own
// checks. LogProblem is empty when the transparency log verified; Group is
// a hash of the conversation's MLS epoch authenticator at Epoch, which the
// ends must agree on.
type LineCheckReport struct {
	LogProblem string `json:"log_problem,omitempty"`
	Member     bool   `json:"member"`
	Broken     bool   `json:"broken,omitempty"`
	Epoch      uint64 `json:"epoch"`
	Group      string `json:"group"`
	// Media is the device's measurement, when the server asked for one.
	Media *LineMedia `json:"media,omitempty"`
}

// CallHold is POST /v1/calls/{id}/hold, /resume and /transfer: the user
// to put on hold or take off it (every device of theirs joined), or to
// ring in before this device leaves.
type CallHold struct {
	User string `json:"user"`
}

// CallRing is POST /v1/calls/{id}/ring: ring another member user of the
// call's conversation into it (the desk connecting the principal); with
// Preempt (the desk, in a flash request's call) even if they are in
// another call, which they are taken out of.
type CallRing struct {
	User    string `json:"user"`
	Preempt bool   `json:"preempt,omitempty"`
}

// RecordsRetention is POST /v1/records/retention (the records officer):
// records of classification Level are kept Days days (0: for good).
type RecordsRetention struct {
	Level string `json:"level"`
	Days  int    `json:"days"`
}

// RecordsHold is POST /v1/records/holds (the records officer) and its
// answer: a legal hold on Conversation ("": on every conversation), for
// Reason (a stable code: litigation, investigation, inquiry, audit,
// request).
type RecordsHold struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Reason       string `json:"reason"`
}

// RecordsExpire is POST /v1/records/expire (the archive device): it lets
// Conversation's records go through message Through, as the retention
// schedule says.
type RecordsExpire struct {
	Conversation string `json:"conversation"`
	Through      int64  `json:"through"`
}

// RecordsPolicy is GET /v1/records/policy: the retention schedule by level
// and the legal holds in force (the records officer and the archive). The
// archive acts on the log's entries, not on this.
type RecordsPolicy struct {
	Retention []RecordsRetention `json:"retention"`
	Holds     []RecordsHoldView  `json:"holds"`
}

// RecordsHoldView is a hold as GET /v1/records/policy lists it.
type RecordsHoldView struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conversation,omitempty"`
	Reason       string    `json:"reason"`
	By           string    `json:"by"`
	At           time.Time `json:"at"`
}

// RecordsExport is POST /v1/records/exports (the records officer): an
// export of the records of some conversations, named by the SHA-256 of
// its manifest (hex), logged (records.export, one entry per conversation)
// before the export is signed and handed over. The records never reach
// the server: only this.
type RecordsExport struct {
	Manifest      string                      `json:"manifest"`
	Conversations []RecordsExportConversation `json:"conversations"`
}

// RecordsExportConversation is one conversation of an export.
type RecordsExportConversation struct {
	Conversation string `json:"conversation"`
	Records      int    `json:"records"`
}

// RecordsMove is POST /v1/records/moves (the records officer): the
// records of a conversation through message Through, exported (Manifest:
// the export's manifest SHA-256, hex), went to another system (To, one of
// a fixed set of codes), so the archive lets its copies go. Refused while
// a hold covers the conversation.
type RecordsMove struct {
	Manifest     string `json:"manifest"`
	Conversation string `json:"conversation"`
	Through      int64  `json:"through"`
	To           string `json:"to"`
}

// RecordsReclassify is POST /v1/records/reclassify (the records officer):
// a conversation's records are kept under Level from now on (its
// retention follows; the conversation's own classification is unchanged).
type RecordsReclassify struct {
	Conversation string `json:"conversation"`
	Level        string `json:"level"`
}

// RecordsGrant is POST /v1/records/grants (the records officer: Grantee,
// Conversation, Count) and how grants are listed (GET /v1/records/grants)
// and opened (POST /v1/records/grants/{id}/read, the grantee). The records
// go from the officer's device to the grantee's inside MLS.
type RecordsGrant struct {
	ID           string    `json:"id,omitempty"`
	Grantee      string    `json:"grantee"`
	Conversation string    `json:"conversation"`
	Count        int       `json:"count"`
	By           string    `json:"by,omitempty"`
	At           time.Time `json:"at,omitzero"`
	Reads        int       `json:"reads"`
}
