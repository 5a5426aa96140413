package conversation

import (
	"fmt"
	"unicode/utf8"

	"hotline/internal/mls"
)

// Kind says what an application message carries. Everything here travels
// only inside the MLS group: the server sees ciphertext.
type Kind uint8

// The kinds.
const (
	KindText       Kind = 1 // Text
	KindAttachment Kind = 2 // Data: an attach.Descriptor, with the file's key
	KindTitle      Kind = 3 // Text: the conversation's title (content, so never on the server)
	KindCheckpoint Kind = 4 // Data: the sender's latest verified transparency-log checkpoint
	KindDesk       Kind = 5 // Data: a duty-desk document (desk.Doc): a call request's purpose, a reason, a briefing
)

// Limits.
const (
	MaxText       = 64 << 10
	MaxTitle      = 200
	MaxData       = 16 << 10
	MaxCheckpoint = 4 << 10
	MaxDesk       = 64 << 10
)

// Content is one application message's payload.
type Content struct {
	Kind Kind
	Text string
	Data []byte
	// Checkpoint, on any kind, is the sender's latest verified
	// transparency-log checkpoint (a signed note), which receivers check
	// against their own view: a server showing members different logs is
	// caught this way. Senders attach it when it is newer than the last
	// one they sent in the conversation.
	Checkpoint []byte
}

// Marshal encodes c (version 1).
func (c Content) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var w mls.Writer
	w.U8(1)
	w.U8(uint8(c.Kind))
	w.Opaque([]byte(c.Text))
	w.Opaque(c.Data)
	w.Opaque(c.Checkpoint)
	return w.Bytes(), nil
}

// UnmarshalContent decodes and validates a payload.
func UnmarshalContent(b []byte) (Content, error) {
	r := mls.NewReader(b)
	if v := r.U8(); v != 1 && r.Err() == nil {
		return Content{}, fmt.Errorf("%w: content version %d", ErrMalformed, v)
	}
	c := Content{Kind: Kind(r.U8()), Text: string(r.Opaque()), Data: append([]byte(nil), r.Opaque()...), Checkpoint: append([]byte(nil), r.Opaque()...)}
	if err := r.Done(); err != nil {
		return Content{}, fmt.Errorf("%w: content: %v", ErrMalformed, err)
	}
	if len(c.Data) == 0 {
		c.Data = nil
	}
	if len(c.Checkpoint) == 0 {
		c.Checkpoint = nil
	}
	return c, c.Validate()
}

// Validate checks the fields a kind uses and nothing else is set.
func (c Content) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: content: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if !utf8.ValidString(c.Text) {
		return bad("text is not UTF-8")
	}
	if len(c.Checkpoint) > MaxCheckpoint {
		return bad("a checkpoint has at most %d bytes", MaxCheckpoint)
	}
	switch c.Kind {
	case KindText:
		if len(c.Text) > MaxText || c.Data != nil {
			return bad("a text message has at most %d bytes of text and no data", MaxText)
		}
	case KindTitle:
		if len(c.Text) > MaxTitle || c.Data != nil {
			return bad("a title has at most %d bytes and no data", MaxTitle)
		}
	case KindDesk:
		if c.Text != "" || len(c.Data) == 0 || len(c.Data) > MaxDesk {
			return bad("a desk document carries 1 to %d bytes of data and no text", MaxDesk)
		}
	case KindAttachment, KindCheckpoint:
		if c.Text != "" || len(c.Data) == 0 || len(c.Data) > MaxData {
			return bad("kind %d carries 1 to %d bytes of data and no text", c.Kind, MaxData)
		}
	default:
		return bad("kind %d unknown", c.Kind)
	}
	return nil
}
