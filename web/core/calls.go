package core

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/identity"
	"hotline/internal/sframe"
)

// Calls in the browser: signalling, keys and the rules of a call here;
// media in the page, which holds one warm RTCPeerConnection to the server's
// forwarder (Media), and applies SFrame to every encoded frame in a worker
// (web/sframe) keyed with what CallKeys gives. The rules are the headless
// client's (internal/voice): a device that answers or joins commits a fresh
// leaf, so media keys move to a new epoch; when someone leaves, the
// remaining participant with the lowest device ID does (client.CallTracker).

// callState is the core's one call.
type callState struct {
	mu    sync.Mutex
	id    string
	conv  string
	track *client.CallTracker
	early []callEvent // events of conv that came before id was known
}

type callEvent struct {
	event string
	view  api.Call
}

// CallKeys is what the page's SFrame worker needs of an epoch (RFC 9605,
// section 5.2): the base key exported from the conversation's MLS group,
// and where this member sits in it.
type CallKeys struct {
	Conversation string `json:"conversation"`
	Suite        uint16 `json:"suite"`
	Epoch        uint64 `json:"epoch"`
	Self         uint32 `json:"self"`
	GroupSize    uint32 `json:"group_size"`
	BaseKey      []byte `json:"base_key"`
}

// CallKeys exports the media keying of conversation conv's current epoch.
// The key is what every member of the epoch can derive; it leaves the
// module only for the page's own worker.
func (k *Core) CallKeys(conv string) (CallKeys, error) {
	ce, err := k.c.CallEpoch(conv)
	if err != nil {
		return CallKeys{}, err
	}
	key, err := ce.Export(sframe.ExporterLabel, []byte{}, ce.Suite.KeySize())
	if err != nil {
		return CallKeys{}, err
	}
	return CallKeys{Conversation: conv, Suite: uint16(ce.Suite), Epoch: ce.Number, Self: ce.Self, GroupSize: ce.GroupSize, BaseKey: key}, nil
}

// Media sends the page's SDP offer for its media line to the forwarder and
// returns the answer.
func (k *Core) Media(ctx context.Context, offer string) (string, error) {
	var ans api.MediaAnswer
	err := k.c.Do(ctx, "POST", "/v1/media", api.MediaOffer{Offer: offer}, &ans)
	return ans.Answer, err
}

// Calls lists the calls of this device's conversations that have not
// ended (to find one ringing after a reload).
func (k *Core) Calls(ctx context.Context) ([]api.Call, error) {
	cs, err := k.c.Calls(ctx)
	if cs == nil {
		cs = []api.Call{}
	}
	return cs, err
}

// begin makes conv the core's call, refusing a second one.
func (k *Core) begin(conv string) error {
	k.call.mu.Lock()
	defer k.call.mu.Unlock()
	if k.call.conv != "" {
		return apierr.New(apierr.Conflict, "already in a call").WithHint("hang up first")
	}
	k.call.conv, k.call.id, k.call.early = conv, "", nil
	k.call.track = client.NewCallTracker(k.c.Profile().Device)
	return nil
}

// started records the call's ID and view, then the events that came early.
func (k *Core) started(v api.Call) {
	k.call.mu.Lock()
	k.call.id = v.ID
	early := k.call.early
	k.call.early = nil
	k.call.mu.Unlock()
	k.take("", v)
	for _, e := range early {
		if e.view.ID == v.ID {
			k.take(e.event, e.view)
		}
	}
}

func (k *Core) finish() {
	k.call.mu.Lock()
	k.call.conv, k.call.id, k.call.early, k.call.track = "", "", nil, nil
	k.call.mu.Unlock()
}

// take applies a view of the core's call: the call ends for this device,
// or this device commits a fresh leaf.
func (k *Core) take(event string, v api.Call) {
	k.call.mu.Lock()
	switch {
	case k.call.conv == "" || k.call.track == nil:
		k.call.mu.Unlock()
		return
	case k.call.id == "":
		if v.Conversation == k.call.conv && len(k.call.early) < 64 {
			k.call.early = append(k.call.early, callEvent{event, v})
		}
		k.call.mu.Unlock()
		return
	case k.call.id != v.ID:
		k.call.mu.Unlock()
		return
	}
	over, _, rotate := k.call.track.Take(event, v)
	conv := k.call.conv
	k.call.mu.Unlock()
	switch {
	case over:
		k.finish()
	case rotate:
		go k.rotate(conv)
	}
}

// rotate commits a fresh leaf: a new epoch, so new media keys for all.
func (k *Core) rotate(conv string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k.c.UpdateLeaf(ctx, conv) // a failure leaves the keys as they were; the call goes on
}

// PlaceCall rings every other member of conversation conv.
func (k *Core) PlaceCall(ctx context.Context, conv string) (api.Call, error) {
	if err := k.begin(conv); err != nil {
		return api.Call{}, err
	}
	v, err := k.c.PlaceCall(ctx, conv)
	if err != nil {
		k.finish()
		return v, err
	}
	k.started(v)
	return v, nil
}

// AnswerCall accepts a call ringing on this device; JoinCall joins one
// going on. Either commits a fresh leaf once in.
func (k *Core) AnswerCall(ctx context.Context, id string) (api.Call, error) {
	return k.enter(ctx, id, k.c.AcceptCall)
}

func (k *Core) JoinCall(ctx context.Context, id string) (api.Call, error) {
	return k.enter(ctx, id, k.c.JoinCall)
}

func (k *Core) enter(ctx context.Context, id string, do func(context.Context, string) (api.Call, error)) (api.Call, error) {
	v, err := k.c.GetCall(ctx, id)
	if err != nil {
		return v, err
	}
	if err := k.begin(v.Conversation); err != nil {
		return v, err
	}
	if v, err = do(ctx, id); err != nil {
		k.finish()
		return v, err
	}
	k.started(v)
	go k.rotate(v.Conversation)
	return v, nil
}

// DeclineCall declines a call ringing on this device.
func (k *Core) DeclineCall(ctx context.Context, id string) (api.Call, error) {
	return k.c.DeclineCall(ctx, id)
}

// Hangup leaves the core's call (or cancels it while it rings).
func (k *Core) Hangup(ctx context.Context, id string) (api.Call, error) {
	v, err := k.c.LeaveCall(ctx, id)
	k.call.mu.Lock()
	mine := k.call.id == id
	k.call.mu.Unlock()
	if mine {
		k.finish()
	}
	return v, err
}

// Participant is a device in a call as the page shows it: its state from
// the server, and who it is from the conversation's group (a member's
// verified credential).
type Participant struct {
	Device   string        `json:"device"`
	State    string        `json:"state"`
	Role     string        `json:"role"`
	Member   client.Member `json:"member"`
	Verified bool          `json:"verified"` // the device is a member of the conversation's group
}

// Participants describes a call's participants, each identified from the
// conversation's group state, not from what the server says.
func (k *Core) Participants(v api.Call) []Participant {
	info := uiConv(k.c.Conversation(v.Conversation))
	out := []Participant{}
	for _, p := range v.Participants {
		q := Participant{Device: p.Device, State: p.State, Role: p.Role}
		for _, m := range info.Members {
			if m.Device == p.Device {
				q.Member, q.Verified = m, true
			}
		}
		if !q.Verified {
			q.Member = client.Member{User: p.User, Roles: identity.Roles{}, Compartments: []string{}}
		}
		out = append(out, q)
	}
	return out
}

// MemberAt describes the member at a leaf of a conversation's current
// epoch (a frame's sender, from its KID).
func (k *Core) MemberAt(conv string, leaf uint32) (client.Member, error) {
	return k.c.MemberAt(conv, leaf)
}

// CallUpdate is a call event as the page gets it: the event, the call, and
// its participants identified from the group.
type CallUpdate struct {
	Event        string        `json:"event"`
	Call         api.Call      `json:"call"`
	Participants []Participant `json:"participants"`
}

// streamMessage handles what the event stream says of calls, for Follow.
func (k *Core) streamMessage(m api.StreamMessage, onUpdate func(Update)) {
	switch {
	case m.Type == api.StreamNotice && m.Kind == api.NoticeCallQuality:
		var q api.CallQuality
		if json.Unmarshal([]byte(m.Data), &q) == nil {
			onUpdate(Update{Kind: "call.quality", Quality: &q})
		}
	case m.Type == api.StreamNotice && m.Kind == api.NoticeCallSlots:
		var s api.CallSlots
		if json.Unmarshal([]byte(m.Data), &s) == nil {
			onUpdate(Update{Kind: "call.slots", Slots: &s})
		}
	case m.Type == api.StreamEvent && m.Event == EventRequest:
		requestEvent(m, onUpdate)
	case m.Type == api.StreamEvent && m.Event == "linecheck.run":
		// The duty desk checks this end of a line: answer at once, in the
		// background (the stream goes on).
		var ask api.LineCheckAsk
		if json.Unmarshal(m.Payload, &ask) == nil {
			go k.c.AnswerLineCheck(context.Background(), ask)
		}
	case m.Type == api.StreamEvent && deskEvents[m.Event]:
		onUpdate(Update{Kind: "desk", DeskEvent: m.Event})
	case m.Type == api.StreamEvent:
		switch m.Event {
		case client.EventCallRing, client.EventCallUpdate, client.EventCallElsewhere, client.EventCallEnded:
		default:
			return
		}
		var v api.Call
		if json.Unmarshal(m.Payload, &v) != nil {
			return
		}
		k.take(m.Event, v)
		onUpdate(Update{Kind: "call", Conversation: v.Conversation, Call: &CallUpdate{Event: m.Event, Call: v, Participants: k.Participants(v)}})
	}
}
