package desk

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Document types.
const (
	DocRequest  = "request"  // Purpose: why the requester wants the call
	DocReason   = "reason"   // Reason: why the desk declined, proposed other times, or the requester withdrew
	DocBriefing = "briefing" // Briefing: for the principal, in the briefing's own conversation
	DocMemCon   = "memcon"   // MemCon: a memorandum of conversation, to its approver and then its need-to-know list
	DocReadout  = "readout"  // Readout: what was said on an ad-hoc call (Call names it), to the duty desk
	DocPing     = "ping"     // a hotline's test (Hotline, Nonce), from its near end
	DocPong     = "pong"     // the far end's answer to a ping, with the same nonce
	// DocMarks: the key that marks each recipient's copy of a distributed
	// MemCon, and who got one, for the drafter and approver alone (in the
	// draft's conversation), so that a leaked copy can be traced.
	DocMarks = "marks"
)

// Limits on documents' text.
const (
	MaxPurpose      = 4 << 10
	MaxReason       = 4 << 10
	MaxPoint        = 2 << 10
	MaxPoints       = 50
	MaxQuestions    = 50
	MaxBackground   = 32 << 10
	MaxSummary      = 48 << 10
	MaxCommitments  = 50
	MaxParticipants = 50
	MaxDoc          = 64 << 10 // an encoded document, as conversation.MaxDesk
	MaxRecipients   = 100      // of a MemCon's copies
	MarkKeySize     = 32
	maxID           = 64
)

// Doc is a duty-desk document: what travels inside an MLS group about a call
// request (conversation.KindDesk). The server never sees it.
type Doc struct {
	Type     string    `json:"type"`
	Request  string    `json:"request,omitempty"` // the call request's ID (every type but readout)
	Call     string    `json:"call,omitempty"`    // the ad-hoc call's ID (readout)
	Readout  string    `json:"readout,omitempty"`
	Hotline  string    `json:"hotline,omitempty"` // ping, pong: the line
	Nonce    string    `json:"nonce,omitempty"`   // ping, pong: the test
	Purpose  string    `json:"purpose,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Briefing *Briefing `json:"briefing,omitempty"`
	MemCon   *MemCon   `json:"memcon,omitempty"`
	Marks    *Marks    `json:"marks,omitempty"`
}

// Marks is how a MemCon's copies were marked: the marking key (see
// internal/trace) and the recipients, as the copies name them.
type Marks struct {
	MemCon     string   `json:"memcon"`
	Key        []byte   `json:"key"`
	Recipients []string `json:"recipients"`
}

// MemCon is a memorandum of conversation: who talked, when, what was said
// in summary, and what was promised.
type MemCon struct {
	ID           string       `json:"id"` // the server's ID for it
	Subject      string       `json:"subject"`
	HeldAt       time.Time    `json:"held_at"`
	Participants []string     `json:"participants"`
	Summary      string       `json:"summary"`
	Commitments  []Commitment `json:"commitments,omitempty"`
}

// Commitment is a promise made on a call: who owns it, by when, and what
// it is. ID is the server's, which tracks its owner, due date and status.
type Commitment struct {
	ID    string    `json:"id"`
	Owner string    `json:"owner"`
	Due   time.Time `json:"due"`
	Text  string    `json:"text"`
}

// Briefing prepares the principal for a call.
type Briefing struct {
	Version       int      `json:"version"` // 1, 2, … as it is revised
	TalkingPoints []string `json:"talking_points,omitempty"`
	Questions     []QA     `json:"questions,omitempty"`
	Background    string   `json:"background,omitempty"`
}

// QA is an anticipated question with a suggested answer.
type QA struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// Marshal validates d and encodes it.
func (d Doc) Marshal() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, bad("document: %v", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxDoc {
		return nil, bad("the document is %d bytes encoded, limit %d", len(b), MaxDoc)
	}
	return b, nil
}

// ParseDoc decodes and validates a document, refusing unknown fields and
// trailing data.
func ParseDoc(b []byte) (Doc, error) {
	if len(b) > MaxDoc {
		return Doc{}, bad("the document is %d bytes, limit %d", len(b), MaxDoc)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Doc
	if err := dec.Decode(&d); err != nil {
		return Doc{}, bad("document: %v", err)
	}
	if dec.More() {
		return Doc{}, bad("document has trailing data")
	}
	return d, d.Validate()
}

// Validate checks d's type, that it names a request, and that it sets the
// fields its type uses, within limits, and no others.
func (d Doc) Validate() error {
	if d.Type == DocPing || d.Type == DocPong {
		if !isID(d.Hotline) || !isID(d.Nonce) || d.Request != "" || d.Call != "" || d.Readout != "" || d.Purpose != "" || d.Reason != "" || d.Briefing != nil || d.MemCon != nil {
			return bad("a %s names its hotline and nonce and nothing else", d.Type)
		}
		return nil
	}
	if d.Hotline != "" || d.Nonce != "" {
		return bad("a %s document names no hotline", d.Type)
	}
	if d.Type == DocReadout {
		if !isID(d.Call) || d.Request != "" || d.Purpose != "" || d.Reason != "" || d.Briefing != nil || d.MemCon != nil || strings.TrimSpace(d.Readout) == "" {
			return bad("a readout document names its call and carries a readout and nothing else")
		}
		return checkText("the readout", d.Readout, MaxSummary)
	}
	if !isID(d.Request) || d.Call != "" || d.Readout != "" {
		return bad("document names no valid request ID")
	}
	if d.MemCon != nil && d.Type != DocMemCon {
		return bad("a %s document carries no memorandum", d.Type)
	}
	if d.Marks != nil && d.Type != DocMarks {
		return bad("a %s document carries no marks", d.Type)
	}
	switch d.Type {
	case DocRequest:
		if d.Reason != "" || d.Briefing != nil || strings.TrimSpace(d.Purpose) == "" {
			return bad("a request document carries a purpose and nothing else")
		}
		return checkText("purpose", d.Purpose, MaxPurpose)
	case DocReason:
		if d.Purpose != "" || d.Briefing != nil || strings.TrimSpace(d.Reason) == "" {
			return bad("a reason document carries a reason and nothing else")
		}
		return checkText("reason", d.Reason, MaxReason)
	case DocBriefing:
		if d.Purpose != "" || d.Reason != "" || d.Briefing == nil {
			return bad("a briefing document carries a briefing and nothing else")
		}
		return d.Briefing.Validate()
	case DocMemCon:
		if d.Purpose != "" || d.Reason != "" || d.Briefing != nil || d.MemCon == nil {
			return bad("a memcon document carries a memorandum and nothing else")
		}
		return d.MemCon.Validate()
	case DocMarks:
		if d.Purpose != "" || d.Reason != "" || d.Briefing != nil || d.Marks == nil {
			return bad("a marks document carries marks and nothing else")
		}
		return d.Marks.Validate()
	}
	return bad("document type %.40q unknown", d.Type)
}

// isID reports whether s is a server-made ID: 1 to 64 lower-case hex digits.
func isID(s string) bool {
	return s != "" && len(s) <= maxID && strings.TrimLeft(s, "0123456789abcdef") == ""
}

// Validate checks a memorandum: its ID, a subject, when, who, a summary,
// and its commitments, within limits.
func (m *MemCon) Validate() error {
	if !isID(m.ID) {
		return bad("the memorandum names no valid ID")
	}
	if strings.TrimSpace(m.Subject) == "" || strings.TrimSpace(m.Summary) == "" || m.HeldAt.IsZero() {
		return bad("a memorandum has a subject, a time and a summary")
	}
	if len(m.Participants) == 0 || len(m.Participants) > MaxParticipants || len(m.Commitments) > MaxCommitments {
		return bad("a memorandum lists 1 to %d participants and at most %d commitments", MaxParticipants, MaxCommitments)
	}
	if err := checkText("the subject", m.Subject, MaxPoint); err != nil {
		return err
	}
	if err := checkText("the summary", m.Summary, MaxSummary); err != nil {
		return err
	}
	for _, p := range m.Participants {
		if strings.TrimSpace(p) == "" {
			return bad("an empty participant")
		}
		if err := checkText("a participant", p, 256); err != nil {
			return err
		}
	}
	for _, c := range m.Commitments {
		if !isID(c.ID) || c.Owner == "" || c.Due.IsZero() || strings.TrimSpace(c.Text) == "" {
			return bad("a commitment has an ID, an owner, a due date and text")
		}
		if err := checkText("a commitment", c.Text, MaxPoint); err != nil {
			return err
		}
		if err := checkText("an owner", c.Owner, 256); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks marks: the memorandum's ID, a key of MarkKeySize bytes,
// and 1 to MaxRecipients distinct recipients.
func (m *Marks) Validate() error {
	if !isID(m.MemCon) {
		return bad("the marks name no valid memorandum ID")
	}
	if len(m.Key) != MarkKeySize {
		return bad("a marking key has %d bytes, not %d", MarkKeySize, len(m.Key))
	}
	if len(m.Recipients) == 0 || len(m.Recipients) > MaxRecipients {
		return bad("marks list 1 to %d recipients", MaxRecipients)
	}
	for i, r := range m.Recipients {
		if strings.TrimSpace(r) == "" {
			return bad("an empty recipient")
		}
		if err := checkText("a recipient", r, 256); err != nil {
			return err
		}
		for _, o := range m.Recipients[:i] {
			if o == r {
				return bad("recipient %.60q twice", r)
			}
		}
	}
	return nil
}

// Validate checks a briefing: a version, something in it, and limits.
func (b *Briefing) Validate() error {
	if b.Version < 1 {
		return bad("briefing version %d: want 1 or more", b.Version)
	}
	if len(b.TalkingPoints) == 0 && len(b.Questions) == 0 && strings.TrimSpace(b.Background) == "" {
		return bad("the briefing is empty")
	}
	if len(b.TalkingPoints) > MaxPoints || len(b.Questions) > MaxQuestions {
		return bad("a briefing has at most %d talking points and %d questions", MaxPoints, MaxQuestions)
	}
	for _, p := range b.TalkingPoints {
		if strings.TrimSpace(p) == "" {
			return bad("an empty talking point")
		}
		if err := checkText("a talking point", p, MaxPoint); err != nil {
			return err
		}
	}
	for _, q := range b.Questions {
		if strings.TrimSpace(q.Question) == "" {
			return bad("an empty question")
		}
		if err := checkText("a question", q.Question, MaxPoint); err != nil {
			return err
		}
		if err := checkText("an answer", q.Answer, MaxPoint); err != nil {
			return err
		}
	}
	return checkText("the background", b.Background, MaxBackground)
}
