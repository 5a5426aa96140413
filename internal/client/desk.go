package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/conversation"
	"hotline/internal/desk"
	"hotline/internal/directory"
	"hotline/internal/identity"
)

// RequestOptions asks the duty desk for a call with a principal.
type RequestOptions struct {
	Principal string
	Urgency   desk.Urgency
	Windows   []desk.Window
	Zone      string // the requester's IANA time zone ("": UTC)
	Purpose   string // sent only inside the request's conversation
	// Classification of the request's conversation (and so of the call).
	Classification conversation.Classification
}

// CallRequest is a call request with what this device can read of it: the
// server's metadata, and the purpose, reasons and latest briefing found in
// the conversations it names (as far as this device has synced them).
type CallRequest struct {
	api.CallRequest
	Purpose string        `json:"purpose,omitempty"`
	Notes   []RequestNote `json:"notes,omitempty"`
	// Brief is the latest briefing this device holds, if it is in the
	// briefing's conversation.
	Brief *desk.Briefing `json:"brief,omitempty"`
}

// RequestNote is a reason sent in a request's conversation: by whom, when.
type RequestNote struct {
	User string    `json:"user"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// Contacts returns the users the contact policy lets this user reach.
func (c *Client) Contacts(ctx context.Context) ([]api.Contact, error) {
	var cs []api.Contact
	err := c.Do(ctx, "GET", "/v1/contacts", nil, &cs)
	return cs, err
}

// dutyOfficers returns the duty officers this user can reach.
func (c *Client) dutyOfficers(ctx context.Context) ([]string, error) {
	cs, err := c.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ct := range cs {
		if slices.Contains(ct.Roles, string(identity.RoleDutyOfficer)) && !ct.ViaRequest {
			out = append(out, ct.User)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no duty officer is reachable under the contact policy: nobody could triage the request")
	}
	return out, nil
}

// RequestCall asks the duty desk for a call with a principal: it opens the
// request's conversation with every reachable duty officer, registers the
// request's metadata with the server, and sends the purpose inside the
// conversation.
func (c *Client) RequestCall(ctx context.Context, o RequestOptions) (api.CallRequest, error) {
	if strings.TrimSpace(o.Purpose) == "" {
		return api.CallRequest{}, errors.New("a call request needs a purpose")
	}
	if o.Zone == "" {
		o.Zone = "UTC"
	}
	if _, err := time.LoadLocation(o.Zone); err != nil {
		return api.CallRequest{}, fmt.Errorf("time zone %q: %w", o.Zone, err)
	}
	// Check the purpose before anything is created.
	if _, err := (desk.Doc{Type: desk.DocRequest, Request: "0", Purpose: o.Purpose}).Marshal(); err != nil {
		return api.CallRequest{}, err
	}
	duty, err := c.dutyOfficers(ctx)
	if err != nil {
		return api.CallRequest{}, err
	}
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "Call request: " + o.Principal, Classification: o.Classification, Members: duty})
	if err != nil {
		return api.CallRequest{}, fmt.Errorf("the request's conversation: %w", err)
	}
	var v api.CallRequest
	if err := c.Do(ctx, "POST", "/v1/call-requests", api.CallRequestCreate{Principal: o.Principal, Urgency: string(o.Urgency),
		Windows: o.Windows, Zone: o.Zone, Conversation: info.ID}, &v); err != nil {
		return api.CallRequest{}, err
	}
	if err := c.sendDoc(ctx, info.ID, desk.Doc{Type: desk.DocRequest, Request: v.ID, Purpose: o.Purpose}); err != nil {
		return v, fmt.Errorf("request %s is made but its purpose was not sent: %w", v.ID, err)
	}
	return v, nil
}

func (c *Client) sendDoc(ctx context.Context, conv string, d desk.Doc) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	_, err = c.Send(ctx, conv, conversation.Content{Kind: conversation.KindDesk, Data: b})
	return err
}

// DecideOptions says what the desk or the requester decides.
type DecideOptions struct {
	At       time.Time     // approve, accept
	Duration time.Duration // approve, accept (0: 30 minutes)
	Windows  []desk.Window // propose
	// Note is a reason, sent in the request's conversation: required to
	// decline, optional otherwise.
	Note string
}

// DecideRequest applies action (approve, propose, accept, decline,
// withdraw) to a request. When the desk approves or proposes times, it adds
// the principal to the request's conversation, where the call will take
// place, if they are not in it yet.
func (c *Client) DecideRequest(ctx context.Context, id, action string, o DecideOptions) (api.CallRequest, error) {
	if action == "decline" && strings.TrimSpace(o.Note) == "" {
		return api.CallRequest{}, errors.New("declining needs a reason for the requester")
	}
	if o.Note != "" {
		if _, err := (desk.Doc{Type: desk.DocReason, Request: id, Reason: o.Note}).Marshal(); err != nil {
			return api.CallRequest{}, err
		}
	}
	in := api.RequestDecision{Duration: int64(o.Duration / time.Second), Windows: o.Windows}
	if !o.At.IsZero() {
		in.At = &o.At
	}
	var v api.CallRequest
	if err := c.Do(ctx, "POST", "/v1/call-requests/"+url.PathEscape(id)+"/"+action, in, &v); err != nil {
		return api.CallRequest{}, err
	}
	if err := c.Sync(ctx); err != nil {
		return v, err
	}
	if action == "approve" || action == "propose" {
		info := c.Conversation(v.Conversation)
		if !slices.ContainsFunc(info.Members, func(m Member) bool { return m.User == v.Principal }) {
			if _, err := c.AddMembers(ctx, v.Conversation, v.Principal); err != nil {
				return v, fmt.Errorf("request %s is %s, but adding the principal to its conversation failed: %w", id, v.Status, err)
			}
			// A new member cannot read what was sent before they joined:
			// the desk repeats the purpose for the principal.
			r, err := c.Request(ctx, id)
			if err != nil {
				return v, err
			}
			if r.Purpose != "" {
				if err := c.sendDoc(ctx, v.Conversation, desk.Doc{Type: desk.DocRequest, Request: id, Purpose: r.Purpose}); err != nil {
					return v, fmt.Errorf("request %s is %s, but the purpose was not repeated for the principal: %w", id, v.Status, err)
				}
			}
		}
	}
	if o.Note != "" {
		if err := c.sendDoc(ctx, v.Conversation, desk.Doc{Type: desk.DocReason, Request: id, Reason: o.Note}); err != nil {
			return v, fmt.Errorf("request %s is %s, but the note was not sent: %w", id, v.Status, err)
		}
	}
	return v, nil
}

// Brief sends a briefing for a scheduled call to the principal's side: in
// the briefing's conversation (the principal and the duty officers,
// created the first time), as the next version.
func (c *Client) Brief(ctx context.Context, id string, b desk.Briefing) (api.CallRequest, error) {
	// Refuse before creating a conversation the server would not accept.
	cred, err := c.Credential()
	if err != nil {
		return api.CallRequest{}, err
	}
	if !directory.Allowed(cred.Roles, directory.ActBriefingWrite) {
		return api.CallRequest{}, apierr.New(apierr.Forbidden, "your roles do not allow %s", directory.ActBriefingWrite)
	}
	v, err := c.GetRequest(ctx, id)
	if err != nil {
		return v, err
	}
	b.Version = 1
	conv := ""
	if v.Briefing != nil {
		b.Version = v.Briefing.Version + 1
		if c.Conversation(v.Briefing.Conversation).ID != "" {
			conv = v.Briefing.Conversation
		}
	}
	if err := b.Validate(); err != nil {
		return v, err
	}
	if conv == "" {
		duty, err := c.dutyOfficers(ctx)
		if err != nil {
			return v, err
		}
		info, err := c.CreateConversation(ctx, CreateOptions{Title: "Briefing: " + v.Requester + " with " + v.Principal,
			Members: append([]string{v.Principal}, duty...)})
		if err != nil {
			return v, fmt.Errorf("the briefing's conversation: %w", err)
		}
		conv = info.ID
	}
	v = api.CallRequest{} // decode afresh: omitted fields must not keep old values
	if err := c.Do(ctx, "POST", "/v1/call-requests/"+url.PathEscape(id)+"/briefing", api.BriefingAttach{Conversation: conv, Version: b.Version}, &v); err != nil {
		return v, err
	}
	if err := c.sendDoc(ctx, conv, desk.Doc{Type: desk.DocBriefing, Request: id, Briefing: &b}); err != nil {
		return v, fmt.Errorf("briefing version %d is registered but was not sent: %w", b.Version, err)
	}
	return v, nil
}

// AckBriefing tells the desk the principal read the current briefing. It
// refuses unless this device holds that version.
func (c *Client) AckBriefing(ctx context.Context, id string) (api.CallRequest, error) {
	if err := c.Sync(ctx); err != nil {
		return api.CallRequest{}, err
	}
	r, err := c.Request(ctx, id)
	if err != nil {
		return api.CallRequest{}, err
	}
	if r.Briefing == nil {
		return r.CallRequest, errors.New("the call has no briefing yet")
	}
	if r.Brief == nil || r.Brief.Version != r.Briefing.Version {
		return r.CallRequest, fmt.Errorf("briefing version %d has not reached this device yet", r.Briefing.Version)
	}
	var v api.CallRequest
	err = c.Do(ctx, "POST", "/v1/call-requests/"+url.PathEscape(id)+"/briefing/ack", api.BriefingAck{Version: r.Briefing.Version}, &v)
	return v, err
}

// GetRequest returns the server's view of a request.
func (c *Client) GetRequest(ctx context.Context, id string) (api.CallRequest, error) {
	var v api.CallRequest
	err := c.Do(ctx, "GET", "/v1/call-requests/"+url.PathEscape(id), nil, &v)
	return v, err
}

// Request returns a request with what this device can read of it from its
// conversations' history (call Sync first to be current).
func (c *Client) Request(ctx context.Context, id string) (CallRequest, error) {
	v, err := c.GetRequest(ctx, id)
	if err != nil {
		return CallRequest{}, err
	}
	return c.ReadRequest(v), nil
}

// ReadRequest adds to the server's view of a request what this device can
// read of it from its conversations' history, without asking the server.
func (c *Client) ReadRequest(v api.CallRequest) CallRequest {
	id := v.ID
	r := CallRequest{CallRequest: v}
	read := func(conv string) {
		if c.Conversation(conv).ID == "" {
			return
		}
		ms, err := c.Messages(conv)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Kind != "desk" {
				continue
			}
			d, err := desk.ParseDoc(m.Data)
			if err != nil || d.Request != id {
				continue
			}
			switch d.Type {
			case desk.DocRequest:
				// The requester's own words, or, for a principal who
				// joined later, the desk's copy of them.
				switch {
				case m.User == v.Requester:
					r.Purpose = d.Purpose
				case m.User == v.DecidedBy && r.Purpose == "":
					r.Purpose = d.Purpose
				}
			case desk.DocReason:
				r.Notes = append(r.Notes, RequestNote{User: m.User, Time: m.Time, Text: d.Reason})
			case desk.DocBriefing:
				// Only the principal's own side briefs them.
				if orgOf(m.User) != orgOf(v.Principal) {
					continue
				}
				if r.Brief == nil || d.Briefing.Version > r.Brief.Version {
					r.Brief = d.Briefing
				}
			}
		}
	}
	read(v.Conversation)
	if v.Briefing != nil {
		read(v.Briefing.Conversation)
	}
	return r
}

// Requests returns the call requests this user may see, newest first,
// optionally only those with the given statuses.
func (c *Client) Requests(ctx context.Context, statuses ...string) ([]api.CallRequest, error) {
	q := url.Values{"status": statuses}
	var vs []api.CallRequest
	err := c.Do(ctx, "GET", "/v1/call-requests?"+q.Encode(), nil, &vs)
	return vs, err
}

// Schedule returns the scheduled calls from from to to that this user may
// see, in time order.
func (c *Client) Schedule(ctx context.Context, from, to time.Time) ([]api.CallRequest, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	var vs []api.CallRequest
	err := c.Do(ctx, "GET", "/v1/schedule?"+q.Encode(), nil, &vs)
	return vs, err
}

func orgOf(user string) string {
	_, org, _ := strings.Cut(user, "@")
	return org
}
