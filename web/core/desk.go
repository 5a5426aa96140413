package core

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/desk"
)

// EventRequest is the stream event of a call request's change.
const EventRequest = "request.update"

// DeskRequest is a call request as the UI shows it: the server's metadata
// and what this device can read of it (purpose, notes, brief).
type DeskRequest = client.CallRequest

// Requests returns the call requests this user may see, newest first, with
// what this device can read of each; statuses, if any, filter.
func (k *Core) Requests(ctx context.Context, statuses []string) ([]DeskRequest, error) {
	vs, err := k.c.Requests(ctx, statuses...)
	out := []DeskRequest{}
	for _, v := range vs {
		out = append(out, k.c.ReadRequest(v))
	}
	return out, err
}

// Request returns one request with what this device can read of it.
func (k *Core) Request(ctx context.Context, id string) (DeskRequest, error) {
	return k.c.Request(ctx, id)
}

// RequestIn is a new call request from the page. Times are RFC 3339.
type RequestIn struct {
	Principal string `json:"principal"`
	Urgency   string `json:"urgency"`
	Start     string `json:"start"`
	End       string `json:"end"`
	Zone      string `json:"zone"` // the browser's IANA zone
	Purpose   string `json:"purpose"`
}

// RequestCall asks the duty desk for a call with a principal, in one window.
func (k *Core) RequestCall(ctx context.Context, in RequestIn) (api.CallRequest, error) {
	u, err := desk.ParseUrgency(in.Urgency)
	if err != nil {
		return api.CallRequest{}, err
	}
	w, err := window(in.Start, in.End)
	if err != nil {
		return api.CallRequest{}, err
	}
	return k.c.RequestCall(ctx, client.RequestOptions{Principal: in.Principal, Urgency: u, Windows: []desk.Window{w}, Zone: in.Zone, Purpose: in.Purpose})
}

// DecideIn is a decision from the page: approve or accept At (RFC 3339)
// for Minutes, propose one window Start–End, decline or withdraw; Note
// goes to the requester inside the request's conversation.
type DecideIn struct {
	At      string `json:"at,omitempty"`
	Minutes int    `json:"minutes,omitempty"`
	Start   string `json:"start,omitempty"`
	End     string `json:"end,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Decide applies action (approve, propose, accept, decline, withdraw).
func (k *Core) Decide(ctx context.Context, id, action string, in DecideIn) (api.CallRequest, error) {
	o := client.DecideOptions{Note: in.Note, Duration: time.Duration(in.Minutes) * time.Minute}
	if in.At != "" {
		at, err := time.Parse(time.RFC3339, in.At)
		if err != nil {
			return api.CallRequest{}, fmt.Errorf("the time %q is not RFC 3339", in.At)
		}
		o.At = at
	}
	if in.Start != "" || in.End != "" {
		w, err := window(in.Start, in.End)
		if err != nil {
			return api.CallRequest{}, err
		}
		o.Windows = []desk.Window{w}
	}
	return k.c.DecideRequest(ctx, id, action, o)
}

// AckBriefing tells the desk the principal read the current briefing.
func (k *Core) AckBriefing(ctx context.Context, id string) (api.CallRequest, error) {
	return k.c.AckBriefing(ctx, id)
}

// Schedule returns the scheduled calls from from to to (RFC 3339) this user
// may see, in time order, with what this device can read of them.
func (k *Core) Schedule(ctx context.Context, from, to string) ([]DeskRequest, error) {
	f, err1 := time.Parse(time.RFC3339, from)
	t, err2 := time.Parse(time.RFC3339, to)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("the schedule's span %q to %q is not RFC 3339", from, to)
	}
	vs, err := k.c.Schedule(ctx, f, t)
	out := []DeskRequest{}
	for _, v := range vs {
		out = append(out, k.c.ReadRequest(v))
	}
	return out, err
}

// LiveCalls returns every call ringing or under way in the organisation,
// as the server reports it (duty officers only: the desk is not a member
// of these conversations, so it cannot check the participants itself).
func (k *Core) LiveCalls(ctx context.Context) ([]api.Call, error) {
	vs := []api.Call{}
	err := k.c.Do(ctx, "GET", "/v1/calls/live", nil, &vs)
	return vs, err
}

// PlaceRequestCall places a scheduled request's call as the duty desk,
// ringing the requester only ("please hold for the principal"). The call is
// this device's, as with PlaceCall: the page joins it with its own media.
func (k *Core) PlaceRequestCall(ctx context.Context, request string) (api.Call, error) {
	r, err := k.c.GetRequest(ctx, request)
	if err != nil {
		return api.Call{}, err
	}
	if err := k.begin(r.Conversation); err != nil {
		return api.Call{}, err
	}
	v, err := k.c.PlaceRequestCall(ctx, request)
	if err != nil {
		k.finish()
		return v, err
	}
	k.started(v)
	return v, nil
}

// RingIntoCall rings user into call, which this device is in (the desk
// connecting the principal); preempt takes them out of another call first,
// which the server allows only the desk, in a flash request's call.
func (k *Core) RingIntoCall(ctx context.Context, call, user string, preempt bool) (api.Call, error) {
	return k.c.RingIntoCall(ctx, call, user, preempt)
}

// HoldInCall puts user's devices in call on hold, or takes them off it.
func (k *Core) HoldInCall(ctx context.Context, call, user string, hold bool) (api.Call, error) {
	return k.c.HoldInCall(ctx, call, user, hold)
}

// TransferCall rings user into call, then this device leaves it.
func (k *Core) TransferCall(ctx context.Context, call, user string) (api.Call, error) {
	v, err := k.c.TransferCall(ctx, call, user)
	if err != nil {
		return v, err
	}
	k.call.mu.Lock()
	mine := k.call.id == call
	k.call.mu.Unlock()
	if mine {
		k.finish()
	}
	return v, nil
}

func window(start, end string) (desk.Window, error) {
	s, err1 := time.Parse(time.RFC3339, start)
	e, err2 := time.Parse(time.RFC3339, end)
	if err1 != nil || err2 != nil {
		return desk.Window{}, fmt.Errorf("the window %q to %q is not RFC 3339", start, end)
	}
	return desk.Window{Start: s.UTC(), End: e.UTC()}, nil
}

// Commitments returns this user's commitments, or all (the desk).
func (k *Core) Commitments(ctx context.Context, all bool) ([]api.Commitment, error) {
	cs, err := k.c.Commitments(ctx, all)
	if cs == nil {
		cs = []api.Commitment{}
	}
	return cs, err
}

// CloseCommitment marks a commitment done or cancelled.
func (k *Core) CloseCommitment(ctx context.Context, id, status string) (api.Commitment, error) {
	return k.c.CloseCommitment(ctx, id, status)
}

// DeskReadout is an ad-hoc call's readout with its text, if this device
// holds it.
type DeskReadout struct {
	api.Readout
	Text string `json:"text,omitempty"`
}

// Readouts returns the ad-hoc calls' readouts this user may see.
func (k *Core) Readouts(ctx context.Context) ([]DeskReadout, error) {
	rs, err := k.c.Readouts(ctx)
	out := []DeskReadout{}
	for _, r := range rs {
		out = append(out, DeskReadout{Readout: r, Text: k.c.ReadoutText(r)})
	}
	return out, err
}

// FileReadout sends an ad-hoc call's readout to the duty desk.
func (k *Core) FileReadout(ctx context.Context, call, principal, text string) (api.Readout, error) {
	return k.c.FileReadout(ctx, call, principal, text)
}

// deskEvents are the stream events about the duty desk's workflow, which
// reach the page as updates of kind "desk" (or "request", with the
// request, for request.update).
var deskEvents = map[string]bool{"commitment.update": true, "commitment.overdue": true, "call.adhoc": true, "readout.missing": true, "hotline.status": true,
	"linecheck.update": true}

// StartLineCheck checks both ends of a request's line (the desk).
func (k *Core) StartLineCheck(ctx context.Context, request string) (api.LineCheck, error) {
	return k.c.StartLineCheck(ctx, request)
}

// LineChecks returns a request's latest line checks, newest first.
func (k *Core) LineChecks(ctx context.Context, request string) ([]api.LineCheck, error) {
	ls, err := k.c.LineChecks(ctx, request)
	if ls == nil {
		ls = []api.LineCheck{}
	}
	return ls, err
}

// Hotlines returns the standing lines this user may see (every one for the
// desk) with their health and latest tests.
func (k *Core) Hotlines(ctx context.Context) ([]api.Hotline, error) {
	hs, err := k.c.Hotlines(ctx)
	if hs == nil {
		hs = []api.Hotline{}
	}
	return hs, err
}

// requestEvent turns a request.update event into an update for the page.
func requestEvent(m api.StreamMessage, onUpdate func(Update)) {
	var v api.CallRequest
	if json.Unmarshal(m.Payload, &v) == nil {
		onUpdate(Update{Kind: "request", Request: &v})
	}
}
