package client

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"sync"

	"hotline/internal/api"
	"hotline/internal/mls"
	"hotline/internal/sframe"
)

// Call event types on the event stream; each payload is an api.Call.
const (
	EventCallRing      = "call.ring"
	EventCallUpdate    = "call.update"
	EventCallElsewhere = "call.elsewhere"
	EventCallEnded     = "call.ended"
)

// PlaceCall rings the other members of a conversation (every device of
// each) and returns the call, ringing.
func (c *Client) PlaceCall(ctx context.Context, conv string) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/conversations/"+conv+"/calls", struct{}{}, &v)
	return v, err
}

// AcceptCall answers a call ringing on this device; it stops ringing on the
// user's other devices.
func (c *Client) AcceptCall(ctx context.Context, id string) (api.Call, error) {
	return c.callAction(ctx, id, "accept")
}

// DeclineCall refuses a call ringing on this device.
func (c *Client) DeclineCall(ctx context.Context, id string) (api.Call, error) {
	return c.callAction(ctx, id, "decline")
}

// JoinCall joins a call already going on in one of this device's
// conversations.
func (c *Client) JoinCall(ctx context.Context, id string) (api.Call, error) {
	return c.callAction(ctx, id, "join")
}

// LeaveCall hangs up (or, while the call still rings, cancels it).
func (c *Client) LeaveCall(ctx context.Context, id string) (api.Call, error) {
	return c.callAction(ctx, id, "leave")
}

// GetCall returns a call of one of this device's conversations.
func (c *Client) GetCall(ctx context.Context, id string) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "GET", "/v1/calls/"+id, nil, &v)
	return v, err
}

// Calls returns the calls ringing on this device or that it is joined to,
// oldest first.
func (c *Client) Calls(ctx context.Context) ([]api.Call, error) {
	var vs []api.Call
	err := c.Do(ctx, "GET", "/v1/calls", nil, &vs)
	return vs, err
}

func (c *Client) callAction(ctx context.Context, id, action string) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/calls/"+id+"/"+action, struct{}{}, &v)
	return v, err
}

// DirectConversation returns this device's 1:1 conversation with user,
// creating it (at the lowest classification both may hold, by default) if
// there is none.
func (c *Client) DirectConversation(ctx context.Context, user string) (ConversationInfo, error) {
	all, err := c.Conversations()
	if err != nil {
		return ConversationInfo{}, err
	}
	for _, conv := range all {
		if conv.Removed || conv.Broken != "" {
			continue
		}
		users := map[string]bool{}
		for _, m := range conv.Members {
			if !m.Self {
				users[m.User] = true
			}
		}
		if len(users) == 1 && users[user] && conv.Title == "" && !conv.ArchiveRequired {
			return conv, nil
		}
	}
	return c.CreateConversation(ctx, CreateOptions{Members: []string{user}})
}

// MediaSuite is the SFrame cipher suite of calls in a conversation of MLS
// cipher suite cs: AES-128-GCM for the classical suite, AES-256-GCM for the
// post-quantum ones, whose AEADs are AES-256.
func MediaSuite(cs mls.CipherSuite) sframe.CipherSuite {
	if cs == mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519 {
		return sframe.AES128GCMSHA256_128
	}
	return sframe.AES256GCMSHA512_128
}

// CallEpoch is what SFrame needs of a conversation's current MLS epoch to
// key a call's media (RFC 9605, section 5.2). Its Export gives the SFrame
// base key, exported as the epoch was read: the group may move on before
// it is asked for.
type CallEpoch struct {
	Suite sframe.CipherSuite
	sframe.MLSEpoch
}

// CallEpoch returns the keying of a call in conversation id, as of the
// group's current epoch.
func (c *Client) CallEpoch(id string) (CallEpoch, error) {
	e, err := c.entry(id)
	if err != nil {
		return CallEpoch{}, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := usable(e); err != nil {
		return CallEpoch{}, err
	}
	g := e.group
	var width uint32
	for _, m := range g.Members() {
		width = max(width, uint32(m.Index)+1)
	}
	suite := MediaSuite(g.Suite().ID())
	// Exported now, with the epoch read: a commit processed before the
	// call asks for it would leave nothing to export it from.
	key, err := g.Export(sframe.ExporterLabel, []byte{}, suite.KeySize())
	if err != nil {
		return CallEpoch{}, err
	}
	epoch := g.Epoch()
	return CallEpoch{
		Suite: suite,
		MLSEpoch: sframe.MLSEpoch{
			Number: epoch, Self: uint32(g.MyLeaf()), GroupSize: width,
			Export: func(label string, context []byte, n int) ([]byte, error) {
				if label != sframe.ExporterLabel || len(context) != 0 || n != len(key) {
					return nil, fmt.Errorf("conversation %s, epoch %d: only the SFrame base key is exported for a call", id, epoch)
				}
				return bytes.Clone(key), nil
			},
		},
	}, nil
}

// MemberAt describes the member at a leaf of a conversation's current
// epoch, from its verified credential.
func (c *Client) MemberAt(id string, leaf uint32) (Member, error) {
	e, err := c.entry(id)
	if err != nil {
		return Member{}, err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := usable(e); err != nil {
		return Member{}, err
	}
	m := c.memberAt(e.group, mls.LeafIndex(leaf))
	if m.User == "" {
		return m, fmt.Errorf("conversation %s has no member at leaf %d", id, leaf)
	}
	return m, nil
}

// epochWatchers are the functions told when a conversation's epoch moves.
type epochWatchers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(conv string, epoch uint64)
}

// WatchEpochs calls fn, outside the client's locks, whenever this device's
// state of a conversation moves to a new epoch (its own commits, others'
// it processed, joining). Calling stop ends it.
func (c *Client) WatchEpochs(fn func(conv string, epoch uint64)) (stop func()) {
	w := &c.epochs
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(string, uint64){}
	}
	w.next++
	k := w.next
	w.fns[k] = fn
	return func() {
		w.mu.Lock()
		delete(w.fns, k)
		w.mu.Unlock()
	}
}

func (c *Client) epochMoved(conv string, epoch uint64) {
	w := &c.epochs
	w.mu.Lock()
	fns := make([]func(string, uint64), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(conv, epoch)
	}
}

// CallTracker follows one call as a device in it sees it, from the views
// the server gives in answers and events. Those may cross: a view older
// than one already taken can arrive last. So only what a stale view cannot
// show is acted on: a device that has left (the state "left" is final for
// that participation), or the call's end. Voice calls (internal/voice)
// and the web client use it, so both rotate keys by the same rule.
type CallTracker struct {
	self   string
	view   api.Call
	joined map[string]bool // devices joined, as the views said
}

// NewCallTracker returns a tracker for a call of device self.
func NewCallTracker(self string) *CallTracker {
	return &CallTracker{self: self, joined: map[string]bool{}}
}

// View returns the most advanced view taken.
func (t *CallTracker) View() api.Call { return t.view }

// Take takes a view of the call, from an answer (event "") or an event
// (EventCallUpdate, EventCallEnded, …). It reports whether the call is over
// for this device, and why ("preempted" if a call of higher precedence took
// it out, whatever the call's own end); or whether this device must commit a fresh
// leaf to the conversation, because someone left and this device is the
// remaining participant with the lowest device ID, so that the one who
// left cannot follow the new epoch's media from a key it kept.
func (t *CallTracker) Take(event string, v api.Call) (over bool, reason string, rotate bool) {
	if CallProgress(v) >= CallProgress(t.view) || t.view.ID == "" {
		t.view = v
	}
	left, selfLeft, selfPreempted := false, false, false
	for _, p := range v.Participants {
		if p.Device == t.self && p.Preempted {
			selfPreempted = true
		}
		switch p.State {
		case "joined":
			t.joined[p.Device] = true
		case "left":
			if t.joined[p.Device] {
				left = true
				delete(t.joined, p.Device)
			}
			if p.Device == t.self {
				selfLeft = true
			}
		}
	}
	switch {
	case selfPreempted:
		return true, "preempted", false // a call of higher precedence took this device
	case event == EventCallEnded || v.State == "ended":
		return true, v.Reason, false
	case selfLeft:
		return true, "dropped", false
	}
	if left && len(t.joined) > 0 {
		low := ""
		for d := range t.joined {
			if low == "" || d < low {
				low = d
			}
		}
		return false, "", low == t.self
	}
	return false, "", false
}

// callRank orders the states of a call and of a participant; any other
// participant state (declined, left, missed, elsewhere) ranks 2.
var callRank = map[string]int{"ringing": 0, "active": 1, "joined": 1, "ended": 2}

// CallProgress ranks views of one call: a later view never ranks lower
// (participants only move on from ringing, and from joined to gone; the
// call from ringing to active to ended), except for a device that joins
// again after leaving, which the call's end settles anyway.
func CallProgress(v api.Call) int {
	n := callRank[v.State] * 1000
	for _, p := range v.Participants {
		if r, ok := callRank[p.State]; ok {
			n += r
		} else {
			n += 2 // declined, left, missed, elsewhere
		}
	}
	return n
}

// PlaceRequestCall places a scheduled request's call as the duty desk,
// ringing the requester only ("please hold for the principal").
func (c *Client) PlaceRequestCall(ctx context.Context, request string) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/call-requests/"+url.PathEscape(request)+"/call", struct{}{}, &v)
	return v, err
}

// RingIntoCall rings a member user of a call's conversation into the call
// this device is in (connecting the principal); preempt takes them out of
// another call first (the desk, in a flash request's call).
func (c *Client) RingIntoCall(ctx context.Context, call, user string, preempt bool) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/calls/"+url.PathEscape(call)+"/ring", api.CallRing{User: user, Preempt: preempt}, &v)
	return v, err
}

// HoldInCall puts a user's devices in the call on hold (hold true) or
// takes them off it (the caller, or the duty desk).
func (c *Client) HoldInCall(ctx context.Context, call, user string, hold bool) (api.Call, error) {
	action := "resume"
	if hold {
		action = "hold"
	}
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/calls/"+url.PathEscape(call)+"/"+action, api.CallHold{User: user}, &v)
	return v, err
}

// TransferCall rings user into the call and then leaves it.
func (c *Client) TransferCall(ctx context.Context, call, user string) (api.Call, error) {
	var v api.Call
	err := c.Do(ctx, "POST", "/v1/calls/"+url.PathEscape(call)+"/transfer", api.CallHold{User: user}, &v)
	return v, err
}
