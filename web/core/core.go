// Package core is what the web client's WebAssembly module does: the
// project's own client (internal/client) with its profile in memory, every
// file sealed under a wrapping key before the page stores it, and answers
// shaped for the UI (web/src/core.d.ts). It has no syscall/js in it, so its
// tests run natively against a real server; web/wasm binds it to
// JavaScript.
package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/desk"
	"hotline/internal/identity"
)

// Persist receives every change to the profile: a file's name and its
// sealed contents, or nil when the file was removed. Calls come in the
// order of the changes and must be stored in that order. Enroll's and
// Open's flushed, if not nil, waits until all of them so far are stored:
// the core calls it before telling the server it has handled something.
type Persist func(name string, sealed []byte)

// Core is one browser's device.
type Core struct {
	c    *client.Client
	seal *sealer
	st   *client.MemStorage
	call callState // calls.go
}

// sealer seals the profile's files for the page once the wrapping key is
// known; until then (between enrolling and registering the passkey whose
// PRF gives it) files stay in memory only.
type sealer struct {
	mu      sync.Mutex
	wrap    *client.WrapKey
	persist Persist
}

func (s *sealer) changed(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.wrap == nil:
	case data == nil:
		s.persist(name, nil)
	default:
		s.persist(name, s.wrap.Seal(name, data))
	}
}

// syncFunc waits for the page to store what persist was given (flushed);
// while no wrapping key is set nothing is handed out, so nothing is
// durable: the caller learns it.
func (s *sealer) syncFunc(flushed func(context.Context) error) func(context.Context) error {
	if flushed == nil {
		return nil
	}
	return func(ctx context.Context) error {
		s.mu.Lock()
		sealing := s.wrap != nil
		s.mu.Unlock()
		if !sealing {
			return nil // enrolling: the page keeps nothing yet, and says so
		}
		return flushed(ctx)
	}
}

// Enroll makes this browser a device: it generates the keys and enrols them
// at server with an invite code. The profile stays in memory until
// SetWrap gives the key that seals it for the page's storage (a nil
// wrapSecret); with one, it is sealed from the start.
func Enroll(ctx context.Context, server, invite, label string, wrapSecret []byte, persist Persist, flushed func(context.Context) error) (*Core, error) {
	sl := &sealer{persist: persist}
	if wrapSecret != nil {
		w, err := client.NewWrapKey(wrapSecret)
		if err != nil {
			return nil, err
		}
		sl.wrap = w
	}
	st := client.NewMemStorage(nil)
	st.OnChange, st.SyncFunc = sl.changed, sl.syncFunc(flushed)
	c, _, err := client.Enroll(ctx, client.EnrollOptions{Server: server, Invite: invite, Label: label, Storage: st})
	if err != nil {
		return nil, err
	}
	return &Core{c: c, seal: sl, st: st}, nil
}

// Open loads the device from the sealed files persist was given.
func Open(sealed map[string][]byte, wrapSecret []byte, persist Persist, flushed func(context.Context) error) (*Core, error) {
	wrap, err := client.NewWrapKey(wrapSecret)
	if err != nil {
		return nil, err
	}
	files, err := wrap.OpenAll(sealed)
	if err != nil {
		return nil, err
	}
	sl := &sealer{wrap: wrap, persist: persist}
	st := client.NewMemStorage(files)
	st.OnChange, st.SyncFunc = sl.changed, sl.syncFunc(flushed)
	c, err := client.OpenStorage(st, client.Options{})
	if err != nil {
		return nil, err
	}
	return &Core{c: c, seal: sl, st: st}, nil
}

// SetWrap sets the key that seals the profile for the page's storage (the
// passkey's PRF output) and hands every file to persist, sealed.
func (k *Core) SetWrap(secret []byte) error {
	w, err := client.NewWrapKey(secret)
	if err != nil {
		return err
	}
	k.seal.mu.Lock()
	k.seal.wrap = w
	k.seal.mu.Unlock()
	for name, data := range k.st.Files() {
		k.seal.changed(name, data)
		clear(data)
	}
	return nil
}

// SetUnlock gives the function that proves the passkey for each new
// session (client.SetUnlock): the page's WebAuthn assertion. first, if
// not empty, is a ticket the page already has, used for the next session.
func (k *Core) SetUnlock(first string, fn func(ctx context.Context) (string, error)) {
	var mu sync.Mutex
	k.c.SetUnlock(func(ctx context.Context) (string, error) {
		mu.Lock()
		t := first
		first = ""
		mu.Unlock()
		if t != "" {
			return t, nil
		}
		return fn(ctx)
	})
}

// PasskeyRegister starts registering this device's passkey: the creation
// options for navigator.credentials.create, with the PRF extension.
func (k *Core) PasskeyRegister(ctx context.Context) (api.PasskeyCeremony, error) {
	var c api.PasskeyCeremony
	err := k.c.Do(ctx, "POST", "/v1/passkeys/register", api.PasskeyRegisterRequest{}, &c)
	return c, err
}

// PasskeyRegistered finishes it with the browser's credential (toJSON(),
// without the PRF's results, which never leave the page).
func (k *Core) PasskeyRegistered(ctx context.Context, ceremony string, credential json.RawMessage) (api.Passkey, error) {
	var p api.Passkey
	err := k.c.Do(ctx, "POST", "/v1/passkeys/register/"+url.PathEscape(ceremony), credential, &p)
	return p, err
}

// Client returns the device's client, for tests and for calls.
func (k *Core) Client() *client.Client { return k.c }

// Me is who this browser is.
type Me struct {
	User         string   `json:"user"`
	Device       string   `json:"device"`
	Org          string   `json:"org"`
	Label        string   `json:"label"`
	Roles        []string `json:"roles"`
	Clearance    string   `json:"clearance"`
	Compartments []string `json:"compartments"`
	Pending      bool     `json:"pending"`
}

// Me asks the server for the device's user and status.
func (k *Core) Me(ctx context.Context) (Me, error) {
	p := k.c.Profile()
	m, err := k.c.Me(ctx)
	if err != nil {
		return Me{}, err
	}
	return Me{User: m.User.ID, Device: p.Device, Org: p.Org, Label: p.Label, Roles: orEmpty(m.User.Roles),
		Clearance: m.User.Clearance, Compartments: orEmpty(m.User.Compartments), Pending: m.Device.Status != "active"}, nil
}

// Contact is an address-book entry, and whether this user compared safety
// numbers with them (and whether their keys changed since).
type Contact struct {
	api.Contact
	Verified    bool `json:"verified"`
	KeysChanged bool `json:"keys_changed,omitempty"`
}

// Contacts is the address book: whom the policy lets this user reach.
func (k *Core) Contacts(ctx context.Context) ([]Contact, error) {
	var cs []api.Contact
	err := k.c.Do(ctx, "GET", "/v1/contacts", nil, &cs)
	out := make([]Contact, 0, len(cs))
	for _, c := range cs {
		c.Roles, c.Compartments = orEmpty(c.Roles), orEmpty(c.Compartments)
		v, changed, _ := k.c.IdentityVerified(c.User)
		out = append(out, Contact{Contact: c, Verified: v, KeysChanged: changed})
	}
	return out, err
}

// Conversations lists what the device holds.
func (k *Core) Conversations() ([]client.ConversationInfo, error) {
	cs, err := k.c.Conversations()
	out := make([]client.ConversationInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, uiConv(c))
	}
	return out, err
}

// uiConv makes every list a list: the UI is promised arrays, and JSON
// turns a nil slice into null.
func uiConv(c client.ConversationInfo) client.ConversationInfo {
	c.Compartments = orEmpty(c.Compartments)
	ms := make([]client.Member, 0, len(c.Members))
	for _, m := range c.Members {
		if m.Roles == nil {
			m.Roles = identity.Roles{}
		}
		m.Compartments = orEmpty(m.Compartments)
		ms = append(ms, m)
	}
	c.Members = ms
	return c
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Attachment is what the UI shows of a file sent in a conversation.
type Attachment struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// Message is a message as the UI shows it: an attachment's descriptor (its
// key) stays in the core.
type Message struct {
	client.Message
	Data       []byte      `json:"data,omitempty"` // always empty
	Attachment *Attachment `json:"attachment,omitempty"`
}

func uiMessage(m client.Message) Message {
	out := Message{Message: m}
	if m.Kind == "attachment" {
		if d, err := attach.UnmarshalDescriptor(m.Data); err == nil {
			out.Attachment = &Attachment{Name: d.Name, MediaType: d.MediaType, Size: d.Size}
		}
	}
	if m.Kind == "desk" {
		if d, err := desk.ParseDoc(m.Data); err == nil {
			out.Text = deskText(d)
		}
	}
	out.Message.Data = nil
	return out
}

// deskText is a duty-desk document as a conversation shows it.
func deskText(d desk.Doc) string {
	switch d.Type {
	case desk.DocRequest:
		return "Call request: " + d.Purpose
	case desk.DocReason:
		return "Duty desk: " + d.Reason
	case desk.DocMemCon:
		m := d.MemCon
		var s strings.Builder
		fmt.Fprintf(&s, "Memorandum of conversation: %s (%s)\nParticipants: %s\n%s", m.Subject, m.HeldAt.Format(time.RFC1123), strings.Join(m.Participants, ", "), m.Summary)
		for _, c := range m.Commitments {
			fmt.Fprintf(&s, "\nCommitment (%s, due %s): %s", c.Owner, c.Due.Format("2 Jan 2006 15:04 MST"), c.Text)
		}
		return s.String()
	case desk.DocMarks:
		return fmt.Sprintf("Marking key for the %d marked copies of memorandum %s (for tracing a leak)", len(d.Marks.Recipients), d.Marks.MemCon)
	}
	b := d.Briefing
	if b == nil {
		return ""
	}
	var s strings.Builder
	fmt.Fprintf(&s, "Briefing, version %d", b.Version)
	for _, p := range b.TalkingPoints {
		s.WriteString("\n• " + p)
	}
	for _, q := range b.Questions {
		s.WriteString("\nQ: " + q.Question + "\nA: " + q.Answer)
	}
	if b.Background != "" {
		s.WriteString("\n" + b.Background)
	}
	return s.String()
}

// Messages returns a conversation's history.
func (k *Core) Messages(id string) ([]Message, error) {
	ms, err := k.c.Messages(id)
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, uiMessage(m))
	}
	return out, err
}

// Create makes a conversation with a title and members (user IDs).
func (k *Core) Create(ctx context.Context, title string, members []string) (client.ConversationInfo, error) {
	c, err := k.c.CreateConversation(ctx, client.CreateOptions{Title: title, Members: members})
	return uiConv(c), err
}

// Direct returns, or first creates, the 1:1 conversation with user.
func (k *Core) Direct(ctx context.Context, user string) (client.ConversationInfo, error) {
	c, err := k.c.DirectConversation(ctx, user)
	return uiConv(c), err
}

// Send sends a text message.
func (k *Core) Send(ctx context.Context, id, text string) (Message, error) {
	if strings.TrimSpace(text) == "" {
		return Message{}, apierr.New(apierr.BadRequest, "the message is empty")
	}
	m, err := k.c.Send(ctx, id, conversation.Content{Kind: conversation.KindText, Text: text})
	return uiMessage(m), err
}

// SendFile encrypts, uploads and sends a file.
func (k *Core) SendFile(ctx context.Context, id, name, mediaType string, data []byte) (Message, error) {
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	m, err := k.c.SendAttachment(ctx, id, bytes.NewReader(data), name, mediaType)
	return uiMessage(m), err
}

// File is a downloaded, decrypted attachment.
type File struct {
	Name      string
	MediaType string
	Data      []byte
}

// Download fetches and decrypts the attachment of message seq.
func (k *Core) Download(ctx context.Context, id string, seq int64) (File, error) {
	ms, err := k.c.Messages(id)
	if err != nil {
		return File{}, err
	}
	for _, m := range ms {
		if m.Seq != seq || m.Kind != "attachment" {
			continue
		}
		d, err := attach.UnmarshalDescriptor(m.Data)
		if err != nil {
			return File{}, err
		}
		var buf bytes.Buffer
		if err := k.c.DownloadAttachment(ctx, d, &buf); err != nil {
			return File{}, err
		}
		return File{Name: d.Name, MediaType: d.MediaType, Data: buf.Bytes()}, nil
	}
	return File{}, apierr.New(apierr.NotFound, "message %d of %s holds no attachment", seq, id)
}

// Update is what the UI learns from the event stream.
type Update struct {
	Conversation string           `json:"conversation,omitempty"`
	Kind         string           `json:"kind"` // message, members, joined, left, problem, epoch, call, call.quality, call.slots, request, desk
	Message      *Message         `json:"message,omitempty"`
	Problem      string           `json:"problem,omitempty"`
	Epoch        uint64           `json:"epoch,omitempty"` // kind epoch: the conversation's group moved to it
	Call         *CallUpdate      `json:"call,omitempty"`
	Quality      *api.CallQuality `json:"quality,omitempty"`
	Slots        *api.CallSlots   `json:"slots,omitempty"`
	Request      *api.CallRequest `json:"request,omitempty"`    // kind request: a call request changed
	DeskEvent    string           `json:"desk_event,omitempty"` // kind desk: commitment.update, commitment.overdue, call.adhoc, readout.missing, hotline.status
}

// Status is the event stream's state.
type Status struct {
	Connected bool          `json:"connected"`
	Error     *apierr.Error `json:"error,omitempty"`
}

// Follow keeps the device current until ctx ends or the device is revoked:
// it tops up key packages, then follows the event stream, reconnecting on
// its own, and reports updates and the stream's state.
func (k *Core) Follow(ctx context.Context, onUpdate func(Update), onStatus func(Status)) error {
	var mu sync.Mutex
	connected := false
	report := func(up bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if up == connected && err == nil {
			return
		}
		connected = up
		s := Status{Connected: up}
		if err != nil {
			s.Error = UIError(err)
		}
		onStatus(s)
	}
	k.c.OnUpdate(func(u client.Update) {
		out := Update{Conversation: u.Conversation, Kind: string(u.Kind)}
		if u.Message != nil {
			m := uiMessage(*u.Message)
			out.Message = &m
		}
		if u.Err != nil {
			out.Problem = u.Err.Error()
		}
		onUpdate(out)
	})
	defer k.c.OnUpdate(nil)
	k.c.OnStreamDown(func(err error) { report(false, err) })
	defer k.c.OnStreamDown(nil)
	stopWatch := k.c.WatchEpochs(func(conv string, epoch uint64) {
		onUpdate(Update{Conversation: conv, Kind: "epoch", Epoch: epoch})
	})
	defer stopWatch()
	for {
		err := k.c.EnsureKeyPackages(ctx, client.DefaultSuite)
		if err == nil {
			break
		}
		report(false, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	err := k.c.Events(ctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamReady {
			report(true, nil)
		}
		k.streamMessage(m, onUpdate)
		return nil
	})
	report(false, err)
	return err
}

// UIError is what the UI shows of an error: the stable code, a message and
// a hint. Errors from the server keep theirs; a transparency log that does
// not verify is "log_problem"; the device's other failures get the code
// "client" and their text.
func UIError(err error) *apierr.Error {
	var e *apierr.Error
	if errors.As(err, &e) {
		return &apierr.Error{Code: e.Code, Message: e.Message, Hint: e.Hint}
	}
	if errors.Is(err, client.ErrLogProblem) {
		return &apierr.Error{Code: "log_problem", Message: fmt.Sprint(err),
			Hint: "the transparency log did not verify: tell your security officer"}
	}
	return &apierr.Error{Code: "client", Message: fmt.Sprint(err)}
}
