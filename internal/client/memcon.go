package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"hotline/internal/api"
	"hotline/internal/desk"
	"hotline/internal/trace"
)

// MemConDraft is a memorandum of conversation as its drafter writes it.
type MemConDraft struct {
	Request      string // the call request it records
	Approver     string
	Subject      string
	HeldAt       time.Time
	Participants []string
	Summary      string
	Commitments  []desk.Commitment // Owner, Due and Text; the server gives the IDs
}

// MemCon is a memorandum with what this device can read of it.
type MemCon struct {
	api.MemCon
	// Doc is the memorandum's text, if this device holds it (the drafter,
	// the approver, and the recipients once distributed).
	Doc *desk.MemCon `json:"doc,omitempty"`
}

// DraftMemCon registers a draft with its commitments' owners and due dates
// and sends its text to the approver, in a new conversation of the two.
func (c *Client) DraftMemCon(ctx context.Context, d MemConDraft) (api.MemCon, error) {
	doc := desk.MemCon{ID: "0", Subject: d.Subject, HeldAt: d.HeldAt.UTC(), Participants: d.Participants, Summary: d.Summary}
	var in []api.CommitmentDraft
	for _, cm := range d.Commitments {
		cm.ID = "0"
		doc.Commitments = append(doc.Commitments, cm)
		in = append(in, api.CommitmentDraft{Owner: cm.Owner, Due: cm.Due})
	}
	if err := doc.Validate(); err != nil { // before anything is created
		return api.MemCon{}, err
	}
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "MemCon draft: " + d.Subject, Members: []string{d.Approver}})
	if err != nil {
		return api.MemCon{}, fmt.Errorf("the draft's conversation: %w", err)
	}
	var v api.MemCon
	if err := c.Do(ctx, "POST", "/v1/memcons", api.MemConDraft{Request: d.Request, Approver: d.Approver, Conversation: info.ID, Commitments: in}, &v); err != nil {
		return api.MemCon{}, err
	}
	if len(v.Commitments) != len(doc.Commitments) {
		return v, fmt.Errorf("the server returned %d commitments for %d", len(v.Commitments), len(doc.Commitments))
	}
	doc.ID = v.ID
	for i := range doc.Commitments {
		doc.Commitments[i].ID = v.Commitments[i].ID
	}
	if err := c.sendDoc(ctx, info.ID, desk.Doc{Type: desk.DocMemCon, Request: d.Request, MemCon: &doc}); err != nil {
		return v, fmt.Errorf("memorandum %s is registered but its text was not sent: %w", v.ID, err)
	}
	return v, nil
}

// GetMemCon returns a memorandum with the text this device holds of it
// (as far as it has synced): the drafter and the approver read the
// original in the draft's conversation; a recipient reads their own
// marked copy, sent to them alone by whoever distributed it.
func (c *Client) GetMemCon(ctx context.Context, id string) (MemCon, error) {
	var v api.MemCon
	if err := c.Do(ctx, "GET", "/v1/memcons/"+url.PathEscape(id), nil, &v); err != nil {
		return MemCon{}, err
	}
	m := MemCon{MemCon: v}
	if d := c.findDoc(v.Conversation, desk.DocMemCon, id, v.Drafter); d != nil {
		m.Doc = d.MemCon
		return m, nil
	}
	if v.Status != "distributed" {
		return m, nil
	}
	convs, err := c.Conversations()
	if err != nil {
		return m, err
	}
	for _, info := range convs {
		if info.ID == v.Conversation {
			continue
		}
		if d := c.findDoc(info.ID, desk.DocMemCon, id, v.Drafter, v.Approver); d != nil {
			m.Doc = d.MemCon
			if info.ID != v.Distribution {
				break // a copy of one's own; the need-to-know conversation's is older
			}
		}
	}
	return m, nil
}

// findDoc returns the latest document of type typ about memorandum id
// that one of senders sent in a conversation this device holds, or nil.
func (c *Client) findDoc(conv, typ, id string, senders ...string) *desk.Doc {
	if conv == "" || c.Conversation(conv).ID == "" {
		return nil
	}
	ms, err := c.Messages(conv)
	if err != nil {
		return nil
	}
	var found *desk.Doc
	for _, msg := range ms {
		if msg.Kind != "desk" || !slices.Contains(senders, msg.User) {
			continue
		}
		d, err := desk.ParseDoc(msg.Data)
		if err != nil || d.Type != typ {
			continue
		}
		if (typ == desk.DocMemCon && d.MemCon.ID == id) || (typ == desk.DocMarks && d.Marks.MemCon == id) {
			found = &d
		}
	}
	return found
}

// MemCons lists the memoranda this user may see, newest first.
func (c *Client) MemCons(ctx context.Context) ([]api.MemCon, error) {
	var vs []api.MemCon
	err := c.Do(ctx, "GET", "/v1/memcons", nil, &vs)
	return vs, err
}

// ApproveMemCon approves a draft this device has read.
func (c *Client) ApproveMemCon(ctx context.Context, id string) (api.MemCon, error) {
	if err := c.Sync(ctx); err != nil {
		return api.MemCon{}, err
	}
	m, err := c.GetMemCon(ctx, id)
	if err != nil {
		return api.MemCon{}, err
	}
	if m.Doc == nil {
		return m.MemCon, errors.New("the draft's text has not reached this device: nothing to approve yet")
	}
	var v api.MemCon
	err = c.Do(ctx, "POST", "/v1/memcons/"+url.PathEscape(id)+"/approve", struct{}{}, &v)
	return v, err
}

// DistributeMemCon sends the approved memorandum to its need-to-know list,
// after registering the distribution (so no copy goes out unrecorded).
// The list gets a conversation of exactly those users; each recipient gets
// their own copy, sent to them alone, its summary marked for them
// (internal/trace) so that a leaked copy or excerpt names its recipient.
// The marking key goes to the draft's conversation first, where the
// drafter and the approver can trace a leak ([Client.TraceLeak]).
func (c *Client) DistributeMemCon(ctx context.Context, id string, recipients []string) (api.MemCon, error) {
	if err := c.Sync(ctx); err != nil {
		return api.MemCon{}, err
	}
	m, err := c.GetMemCon(ctx, id)
	if err != nil {
		return api.MemCon{}, err
	}
	if m.Doc == nil {
		return m.MemCon, errors.New("this device does not hold the memorandum's text")
	}
	if m.Status != "approved" {
		return m.MemCon, fmt.Errorf("the memorandum is %s: only an approved one is distributed", m.Status)
	}
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "MemCon: " + m.Doc.Subject, Members: recipients})
	if err != nil {
		return m.MemCon, fmt.Errorf("the need-to-know conversation: %w", err)
	}
	var v api.MemCon
	if err := c.Do(ctx, "POST", "/v1/memcons/"+url.PathEscape(id)+"/distribute", api.MemConDistribute{Conversation: info.ID, Recipients: recipients}, &v); err != nil {
		return m.MemCon, err
	}
	me := c.Profile().User
	var to []string
	for _, r := range v.Recipients {
		if r != me && r != m.Drafter && r != m.Approver { // they hold the original
			to = append(to, r)
		}
	}
	if len(to) == 0 {
		return v, nil
	}
	key := make([]byte, desk.MarkKeySize)
	rand.Read(key)
	if err := c.sendDoc(ctx, m.Conversation, desk.Doc{Type: desk.DocMarks, Request: m.Request,
		Marks: &desk.Marks{MemCon: id, Key: key, Recipients: to}}); err != nil {
		return v, fmt.Errorf("the distribution is recorded but no copy was sent (the marking key did not reach the draft's conversation): %w", err)
	}
	var failed []string
	for _, r := range to {
		doc := *m.Doc
		doc.Summary = trace.Mark(key, r, m.Doc.Summary)
		cp, err := c.CreateConversation(ctx, CreateOptions{Title: "MemCon: " + m.Doc.Subject + " (your copy)", Members: []string{r}})
		if err == nil {
			err = c.sendDoc(ctx, cp.ID, desk.Doc{Type: desk.DocMemCon, Request: m.Request, MemCon: &doc})
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", r, err))
		}
	}
	if len(failed) > 0 {
		return v, fmt.Errorf("the distribution is recorded but these copies were not sent: %s", strings.Join(failed, "; "))
	}
	return v, nil
}

// Commitments lists this user's commitments, or with all every one (the
// duty desk), by due date.
func (c *Client) Commitments(ctx context.Context, all bool) ([]api.Commitment, error) {
	path := "/v1/commitments"
	if all {
		path += "?all=true"
	}
	var vs []api.Commitment
	err := c.Do(ctx, "GET", path, nil, &vs)
	return vs, err
}

// CloseCommitment marks a commitment done or cancelled.
func (c *Client) CloseCommitment(ctx context.Context, id, status string) (api.Commitment, error) {
	action := map[string]string{"done": "done", "cancelled": "cancel", "cancel": "cancel"}[status]
	if action == "" {
		return api.Commitment{}, fmt.Errorf("a commitment closes as done or cancelled, not %q", status)
	}
	var v api.Commitment
	err := c.Do(ctx, "POST", "/v1/commitments/"+url.PathEscape(id)+"/"+action, struct{}{}, &v)
	return v, err
}

// FileReadout sends the readout of an ad-hoc call to the duty desk (and the
// principal, if someone else files it), in a new conversation of the
// principal's side, after registering it.
func (c *Client) FileReadout(ctx context.Context, call, principal, text string) (api.Readout, error) {
	doc := desk.Doc{Type: desk.DocReadout, Call: call, Readout: text}
	if _, err := doc.Marshal(); err != nil {
		return api.Readout{}, err
	}
	members, err := c.dutyOfficers(ctx)
	if err != nil {
		return api.Readout{}, err
	}
	if principal != c.Profile().User {
		members = append(members, principal)
	}
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "Readout of call " + call[:min(8, len(call))], Members: members})
	if err != nil {
		return api.Readout{}, fmt.Errorf("the readout's conversation: %w", err)
	}
	var v api.Readout
	if err := c.Do(ctx, "POST", "/v1/readouts/"+url.PathEscape(call), api.ReadoutFile{Conversation: info.ID}, &v); err != nil {
		return api.Readout{}, err
	}
	if err := c.sendDoc(ctx, info.ID, doc); err != nil {
		return v, fmt.Errorf("the readout is recorded but its text was not sent: %w", err)
	}
	return v, nil
}

// Readouts lists the ad-hoc calls' readouts this user may see.
func (c *Client) Readouts(ctx context.Context) ([]api.Readout, error) {
	var vs []api.Readout
	err := c.Do(ctx, "GET", "/v1/readouts", nil, &vs)
	return vs, err
}

// ReadoutText returns the readout of a call this device holds, if any.
func (c *Client) ReadoutText(r api.Readout) string {
	if r.Readout == "" || c.Conversation(r.Readout).ID == "" {
		return ""
	}
	ms, err := c.Messages(r.Readout)
	if err != nil {
		return ""
	}
	for _, m := range ms {
		if m.Kind != "desk" || m.User != r.FiledBy {
			continue
		}
		if d, err := desk.ParseDoc(m.Data); err == nil && d.Type == desk.DocReadout && d.Call == r.Call {
			return d.Readout
		}
	}
	return ""
}
