package server_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/tlog"
)

// requestWatch collects the request.update events a device is sent, and
// the payloads of its other events by type.
type requestWatch struct {
	mu    sync.Mutex
	got   []api.CallRequest
	other map[string][]json.RawMessage
}

func watchRequests(t *testing.T, c *client.Client) *requestWatch {
	t.Helper()
	w := &requestWatch{other: map[string][]json.RawMessage{}}
	ready := make(chan struct{})
	var once sync.Once
	go c.Events(t.Context(), func(m api.StreamMessage) error {
		switch {
		case m.Type == api.StreamReady:
			once.Do(func() { close(ready) })
		case m.Type == api.StreamEvent && m.Event == "request.update":
			var v api.CallRequest
			if err := json.Unmarshal(m.Payload, &v); err != nil {
				t.Errorf("request.update payload: %v", err)
			}
			w.mu.Lock()
			w.got = append(w.got, v)
			w.mu.Unlock()
		case m.Type == api.StreamEvent:
			w.mu.Lock()
			w.other[m.Event] = append(w.other[m.Event], m.Payload)
			w.mu.Unlock()
		}
		return nil
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("event stream did not open")
	}
	return w
}

// statuses returns "id status" for every event seen.
func (w *requestWatch) statuses() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, v := range w.got {
		out = append(out, v.ID[:6]+" "+v.Status)
	}
	return out
}

// commitments returns the commitments of the events of type typ.
func (w *requestWatch) commitments(t *testing.T, typ string) []api.Commitment {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []api.Commitment
	for _, p := range w.other[typ] {
		var c api.Commitment
		if err := json.Unmarshal(p, &c); err != nil {
			t.Fatalf("%s payload: %v", typ, err)
		}
		out = append(out, c)
	}
	return out
}

func (w *requestWatch) saw(id, status string) bool {
	return slices.Contains(w.statuses(), id[:6]+" "+status)
}

// deskOrg is an organisation with a principal, a duty officer, a
// note-taker and a counterpart, each with one device.
type deskOrg struct {
	e                                   *env
	admin                               *client.Client
	principal, duty, notes, counterpart *member
}

func newDeskOrg(t *testing.T, backend string, opts ...envOption) *deskOrg {
	return newDeskOrgAt(t, backend, "", opts...)
}

// newDeskOrgAt is newDeskOrg with the server listening on addr.
func newDeskOrgAt(t *testing.T, backend, addr string, opts ...envOption) *deskOrg {
	e := newEnvAt(t, backend, addr, opts...)
	admin := e.admin(t)
	sec, _ := e.enroll(t, addUser(t, admin, "sec", "security-officer"), "sec")
	// A principal's and a counterpart's first device need a second
	// approver besides the invite's creator.
	approved := func(name, role string) *member {
		c, res := e.enroll(t, addUser(t, admin, name, role), name)
		if res.Status != "active" {
			if err := sec.Do(t.Context(), "POST", "/v1/devices/"+res.Device+"/approve", nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		m := &member{Client: c, name: name}
		c.OnUpdate(m.record)
		if err := c.EnsureKeyPackages(t.Context(), client.DefaultSuite); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return &deskOrg{e: e, admin: admin,
		principal:   approved("principal", "principal"),
		duty:        approved("duty", "duty-officer"),
		notes:       approved("notes", "note-taker"),
		counterpart: approved("counterpart", "counterpart"),
	}
}

// A counterpart asks for a call; the desk proposes other times; the
// counterpart takes one; a note-taker briefs the principal, who reads and
// acknowledges it. Everyone concerned is told at each step, the principal
// only once a call is scheduled; every step is in the log; purposes,
// reasons and the briefing are read by the members and never reach the
// server's storage, log or metrics.
func TestCallRequestFlow(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY-desk-7c31"
			o := newDeskOrg(t, b)
			ctx := t.Context()
			now := o.e.clock.Now()
			dutyEvents := watchRequests(t, o.duty.Client)
			principalEvents := watchRequests(t, o.principal.Client)

			purpose := "Purpose " + canary + ": the grain corridor before Thursday's vote"
			v, err := o.counterpart.RequestCall(ctx, client.RequestOptions{Principal: "principal@state.example", Urgency: desk.Flash,
				Windows: []desk.Window{{Start: now.Add(time.Hour), End: now.Add(3 * time.Hour)}}, Zone: "Europe/Paris", Purpose: purpose})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != desk.StatusPending || v.Urgency != "flash" || v.Zone != "Europe/Paris" || len(v.Windows) != 1 {
				t.Fatalf("new request %+v", v)
			}
			// The desk is alerted at once; the principal is not bothered yet.
			eventually(t, "the desk's alert", func() bool { return dutyEvents.saw(v.ID, "pending") })
			sync1(t, o.duty)
			r, err := o.duty.Request(ctx, v.ID)
			if err != nil || r.Purpose != purpose {
				t.Fatalf("the desk reads purpose %q, %v", r.Purpose, err)
			}
			if list, err := o.duty.Requests(ctx, "pending"); err != nil || len(list) != 1 || list[0].ID != v.ID {
				t.Fatalf("the desk's pending list: %v %v", list, err)
			}

			// The desk proposes later times, with a note; the principal is
			// added to the request's conversation.
			later := desk.Window{Start: now.Add(5 * time.Hour), End: now.Add(6 * time.Hour)}
			note := "Note " + canary + ": the principal lands at four"
			if v, err = o.duty.DecideRequest(ctx, v.ID, "propose", client.DecideOptions{Windows: []desk.Window{later}, Note: note}); err != nil {
				t.Fatal(err)
			}
			if v.Status != desk.StatusProposed || !v.Windows[0].Start.Equal(later.Start) {
				t.Fatalf("proposed: %+v", v)
			}
			// Outside the proposed windows, or by someone else: refused.
			if _, err := o.counterpart.DecideRequest(ctx, v.ID, "accept", client.DecideOptions{At: now.Add(90 * time.Minute)}); !apierr.Is(err, apierr.BadRequest) {
				t.Fatalf("accepting outside the windows: %v", err)
			}
			if _, err := o.duty.DecideRequest(ctx, v.ID, "accept", client.DecideOptions{At: later.Start}); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the desk accepting for the requester: %v", err)
			}
			if _, err := o.counterpart.DecideRequest(ctx, v.ID, "approve", client.DecideOptions{At: later.Start}); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the requester approving: %v", err)
			}
			at := later.Start.Add(15 * time.Minute)
			if v, err = o.counterpart.DecideRequest(ctx, v.ID, "accept", client.DecideOptions{At: at}); err != nil {
				t.Fatal(err)
			}
			if v.Status != desk.StatusScheduled || !v.ScheduledAt.Equal(at) || v.Duration != 1800 {
				t.Fatalf("accepted: %+v", v)
			}
			if _, err := o.counterpart.DecideRequest(ctx, v.ID, "accept", client.DecideOptions{At: at}); !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("accepting twice: %v", err)
			}
			sync1(t, o.counterpart, o.principal)
			if r, err := o.counterpart.Request(ctx, v.ID); err != nil || len(r.Notes) != 1 || r.Notes[0].Text != note || r.Notes[0].User != "duty@state.example" {
				t.Fatalf("the counterpart reads notes %+v, %v", r.Notes, err)
			}
			eventually(t, "the principal's schedule event", func() bool { return principalEvents.saw(v.ID, "scheduled") })
			if slices.ContainsFunc(principalEvents.statuses(), func(s string) bool { return !strings.HasSuffix(s, "scheduled") }) {
				t.Errorf("the principal was told of a call not yet scheduled: %v", principalEvents.statuses())
			}
			sched, err := o.principal.Schedule(ctx, now, now.Add(24*time.Hour))
			if err != nil || len(sched) != 1 || sched[0].ID != v.ID {
				t.Fatalf("the principal's schedule: %v %v", sched, err)
			}
			if r, err := o.principal.Request(ctx, v.ID); err != nil || r.Purpose != purpose {
				t.Fatalf("the principal reads purpose %q, %v", r.Purpose, err)
			}

			// A note-taker briefs the principal; the counterpart never sees it.
			brief := desk.Briefing{TalkingPoints: []string{"Point " + canary, "Thank them for the convoy"},
				Questions: []desk.QA{{Question: "Will you veto?", Answer: "We have not decided " + canary}}, Background: "Background " + canary}
			if _, err := o.counterpart.Brief(ctx, v.ID, brief); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the counterpart briefing: %v", err)
			}
			if v, err = o.notes.Brief(ctx, v.ID, brief); err != nil {
				t.Fatal(err)
			}
			if v.Briefing == nil || v.Briefing.Version != 1 || v.Briefing.By != "notes@state.example" || v.Briefing.Acked != 0 {
				t.Fatalf("briefed: %+v", v.Briefing)
			}
			sync1(t, o.principal, o.counterpart)
			r, err = o.principal.Request(ctx, v.ID)
			if err != nil || r.Brief == nil || r.Brief.Version != 1 || r.Brief.Background != brief.Background || r.Brief.Questions[0] != brief.Questions[0] {
				t.Fatalf("the principal's brief %+v, %v", r.Brief, err)
			}
			if r, err := o.counterpart.Request(ctx, v.ID); err != nil || r.Brief != nil || r.Briefing != nil {
				t.Fatalf("the counterpart sees the brief (%+v) or its metadata (%+v), %v", r.Brief, r.Briefing, err)
			}
			if _, err := o.duty.AckBriefing(ctx, v.ID); err == nil {
				t.Fatal("the desk acknowledged for the principal")
			}
			if v, err = o.principal.AckBriefing(ctx, v.ID); err != nil || v.Briefing.Acked != 1 || v.Briefing.AckedAt == nil {
				t.Fatalf("acknowledged: %+v, %v", v.Briefing, err)
			}
			// A revised briefing needs acknowledging again.
			brief.TalkingPoints = append(brief.TalkingPoints, "Revised "+canary)
			if v, err = o.duty.Brief(ctx, v.ID, brief); err != nil || v.Briefing.Version != 2 || v.Briefing.Acked != 0 {
				t.Fatalf("revised: %+v, %v", v.Briefing, err)
			}
			eventually(t, "the desk hears of the acknowledgement", func() bool {
				dutyEvents.mu.Lock()
				defer dutyEvents.mu.Unlock()
				return slices.ContainsFunc(dutyEvents.got, func(x api.CallRequest) bool { return x.Briefing != nil && x.Briefing.Acked == 1 })
			})

			// A second request, declined with a reason; then it is closed.
			v2, err := o.counterpart.RequestCall(ctx, client.RequestOptions{Principal: "principal@state.example", Urgency: desk.Routine,
				Windows: []desk.Window{{Start: now.Add(48 * time.Hour), End: now.Add(50 * time.Hour)}}, Zone: "UTC", Purpose: "Second " + canary})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.duty.DecideRequest(ctx, v2.ID, "decline", client.DecideOptions{}); err == nil {
				t.Fatal("declined without a reason")
			}
			reason := "Reason " + canary + ": the minister will call instead"
			if v2, err = o.duty.DecideRequest(ctx, v2.ID, "decline", client.DecideOptions{Note: reason}); err != nil || v2.Status != desk.StatusDeclined {
				t.Fatalf("declined: %+v, %v", v2, err)
			}
			if _, err := o.counterpart.DecideRequest(ctx, v2.ID, "withdraw", client.DecideOptions{}); !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("withdrawing a declined request: %v", err)
			}
			sync1(t, o.counterpart)
			if r, err := o.counterpart.Request(ctx, v2.ID); err != nil || len(r.Notes) != 1 || r.Notes[0].Text != reason {
				t.Fatalf("the counterpart reads the reason %+v, %v", r.Notes, err)
			}
			// Those not concerned see nothing.
			if _, err := o.notes.GetRequest(ctx, v2.ID); !apierr.Is(err, apierr.NotFound) {
				t.Fatalf("a note-taker reading another's request: %v", err)
			}
			if list, err := o.principal.Requests(ctx); err != nil || len(list) != 2 {
				t.Fatalf("the principal's requests: %d, %v", len(list), err)
			}

			// Every step is in the log, as metadata.
			var steps []string
			eventually(t, "the log", func() bool {
				steps = steps[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Item == v.ID {
						steps = append(steps, en.Type)
					}
				}
				return len(steps) == 6
			})
			want := []string{tlog.TypeRequestCreate, tlog.TypeRequestPropose, tlog.TypeRequestAccept, tlog.TypeBriefingAttach, tlog.TypeBriefingAck, tlog.TypeBriefingAttach}
			if !slices.Equal(steps, want) {
				t.Errorf("log steps %v, want %v", steps, want)
			}
			if m := o.e.metricsText(t); !strings.Contains(m, `hotline_call_requests_total{urgency="flash"} 1`) {
				t.Errorf("metrics do not count the flash request")
			}
			o.e.noCanary(t, canary, "call_requests")
		})
	}
}

// Bad requests get a stable code and change nothing.
func TestCallRequestRefusals(t *testing.T) {
	o := newDeskOrg(t, "sqlite")
	ctx := t.Context()
	now := o.e.clock.Now()
	win := []desk.Window{{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}}
	// A conversation without the desk, for a request the desk could not read.
	solo, err := o.counterpart.CreateConversation(ctx, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withDesk, err := o.counterpart.CreateConversation(ctx, client.CreateOptions{Members: []string{"duty@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	good := api.CallRequestCreate{Principal: "principal@state.example", Urgency: "routine", Windows: win, Zone: "UTC", Conversation: withDesk.ID}
	for name, tc := range map[string]struct {
		mut  func(*api.CallRequestCreate)
		code apierr.Code
	}{
		"unknown urgency": {func(r *api.CallRequestCreate) { r.Urgency = "urgent" }, apierr.BadRequest},
		"no windows":      {func(r *api.CallRequestCreate) { r.Windows = nil }, apierr.BadRequest},
		"window in the past": {func(r *api.CallRequestCreate) {
			r.Windows = []desk.Window{{Start: now.Add(-3 * time.Hour), End: now.Add(-time.Hour)}}
		}, apierr.BadRequest},
		"window backwards": {func(r *api.CallRequestCreate) {
			r.Windows = []desk.Window{{Start: now.Add(2 * time.Hour), End: now.Add(time.Hour)}}
		}, apierr.BadRequest},
		"bad zone":            {func(r *api.CallRequestCreate) { r.Zone = "Paris; DROP" }, apierr.BadRequest},
		"not a principal":     {func(r *api.CallRequestCreate) { r.Principal = "duty@state.example" }, apierr.BadRequest},
		"unknown principal":   {func(r *api.CallRequestCreate) { r.Principal = "nobody@state.example" }, apierr.NotFound},
		"bad conversation":    {func(r *api.CallRequestCreate) { r.Conversation = "%%%" }, apierr.BadRequest},
		"unknown group":       {func(r *api.CallRequestCreate) { r.Conversation = "AAEC" }, apierr.NotFound},
		"no desk in the conv": {func(r *api.CallRequestCreate) { r.Conversation = solo.ID }, apierr.BadRequest},
	} {
		in := good
		tc.mut(&in)
		if err := o.counterpart.Do(ctx, "POST", "/v1/call-requests", in, nil); !apierr.Is(err, tc.code) {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	// The note-taker is not in the conversation; nobody may request a call
	// with themselves.
	if err := o.notes.Do(ctx, "POST", "/v1/call-requests", good, nil); !apierr.Is(err, apierr.NotMember) {
		t.Errorf("from outside the conversation: %v", err)
	}
	// A counterpart may not ask for a call with a counterpart (the policy
	// refuses the contact).
	in := good
	in.Principal = "counterpart@state.example"
	if err := o.principal.Do(ctx, "POST", "/v1/call-requests", in, nil); !apierr.Is(err, apierr.ContactRefused) {
		t.Errorf("to a counterpart: %v", err)
	}
	if list, err := o.duty.Requests(ctx); err != nil || len(list) != 0 {
		t.Fatalf("refused requests were stored: %v %v", list, err)
	}
	for _, path := range []string{"/v1/call-requests/xyz", "/v1/call-requests/" + strings.Repeat("0", 32)} {
		if err := o.duty.Do(ctx, "GET", path, nil, nil); !apierr.Is(err, apierr.BadRequest) && !apierr.Is(err, apierr.NotFound) {
			t.Errorf("GET %s: %v", path, err)
		}
	}
	if err := o.duty.Do(ctx, "GET", "/v1/call-requests?status=lost", nil, nil); !apierr.Is(err, apierr.BadRequest) {
		t.Errorf("unknown status: %v", err)
	}
	if err := o.duty.Do(ctx, "GET", "/v1/schedule?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", nil, nil); !apierr.Is(err, apierr.BadRequest) {
		t.Errorf("backwards schedule: %v", err)
	}
	// Decisions on a real request: bad times and unknown actions.
	var v api.CallRequest
	if err := o.counterpart.Do(ctx, "POST", "/v1/call-requests", good, &v); err != nil {
		t.Fatal(err)
	}
	past := now.Add(-2 * time.Hour)
	for name, tc := range map[string]struct {
		action string
		in     api.RequestDecision
	}{
		"approve without time": {"approve", api.RequestDecision{}},
		"approve in the past":  {"approve", api.RequestDecision{At: &past}},
		"approve for a day":    {"approve", api.RequestDecision{At: &win[0].Start, Duration: 86400}},
		"negative duration":    {"approve", api.RequestDecision{At: &win[0].Start, Duration: -1}},
		"propose nothing":      {"propose", api.RequestDecision{}},
	} {
		if err := o.duty.Do(ctx, "POST", "/v1/call-requests/"+v.ID+"/"+tc.action, tc.in, nil); !apierr.Is(err, apierr.BadRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := o.duty.Do(ctx, "POST", "/v1/call-requests/"+v.ID+"/briefing", api.BriefingAttach{Conversation: withDesk.ID, Version: 1}, nil); !apierr.Is(err, apierr.Conflict) {
		t.Errorf("briefing a pending request: %v", err)
	}
	if got, err := o.duty.GetRequest(ctx, v.ID); err != nil || got.Status != desk.StatusPending || !got.UpdatedAt.Equal(v.UpdatedAt) {
		t.Errorf("after refusals the request is %+v, %v", got, err)
	}
}

// The desk sees every call ringing or under way, with its participants and
// level; nobody else may list them.
func TestLiveCallsForTheDesk(t *testing.T) {
	o := newDeskOrg(t, "sqlite")
	ctx := t.Context()
	conv, err := o.principal.DirectConversation(ctx, "notes@state.example")
	if err != nil {
		t.Fatal(err)
	}
	placed, err := o.principal.PlaceCall(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var live []api.Call
	if err := o.duty.Do(ctx, "GET", "/v1/calls/live", nil, &live); err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0].ID != placed.ID || live[0].State != "ringing" || live[0].Caller != "principal@state.example" {
		t.Fatalf("live calls: %+v", live)
	}
	var who []string
	for _, p := range live[0].Participants {
		who = append(who, p.User+" "+p.Role+" "+p.State)
	}
	slices.Sort(who)
	if want := []string{"notes@state.example note-taker ringing", "principal@state.example principal joined"}; !slices.Equal(who, want) {
		t.Errorf("participants %v, want %v", who, want)
	}
	for _, m := range []*member{o.notes, o.principal, o.counterpart} {
		if err := m.Do(ctx, "GET", "/v1/calls/live", nil, nil); !apierr.Is(err, apierr.Forbidden) {
			t.Errorf("%s lists live calls: %v", m.name, err)
		}
	}
	if _, err := o.principal.LeaveCall(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	if err := o.duty.Do(ctx, "GET", "/v1/calls/live", nil, &live); err != nil || len(live) != 0 {
		t.Fatalf("after the call: %+v, %v", live, err)
	}
}
