package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/call"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/identity"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

// callEvent is a call event a device received.
type callEvent struct {
	Type string
	View call.View
}

// callWatch follows a device's event stream and keeps the call events.
type callWatch struct {
	name   string
	mu     sync.Mutex
	events []callEvent
}

func watchCalls(t *testing.T, name string, c *client.Client) *callWatch {
	t.Helper()
	w := &callWatch{name: name}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		c.Events(ctx, func(m api.StreamMessage) error {
			if m.Type == api.StreamIdle {
				once.Do(func() { close(ready) })
			}
			if m.Type != api.StreamEvent || !strings.HasPrefix(m.Event, "call.") {
				return nil
			}
			var v call.View
			if err := json.Unmarshal(m.Payload, &v); err != nil {
				t.Errorf("%s: %s payload: %v", name, m.Event, err)
			}
			w.mu.Lock()
			w.events = append(w.events, callEvent{m.Event, v})
			w.mu.Unlock()
			return nil
		})
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s's stream did not open", name)
	}
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// wait returns the first event of type typ for call id not yet taken,
// waiting up to 10 seconds.
func (w *callWatch) wait(t *testing.T, typ, id string) call.View {
	t.Helper()
	return w.waitFor(t, typ, id, func(call.View) bool { return true })
}

// waitFor is wait for an event whose view satisfies ok.
func (w *callWatch) waitFor(t *testing.T, typ, id string, ok func(call.View) bool) call.View {
	t.Helper()
	var got call.View
	eventually(t, fmt.Sprintf("%s to get %s", w.name, typ), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for i, e := range w.events {
			if e.Type == typ && e.View.ID == id && ok(e.View) {
				got = e.View
				w.events = append(w.events[:i:i], w.events[i+1:]...)
				return true
			}
		}
		return false
	})
	return got
}

// none fails if w holds an event of type typ for call id.
func (w *callWatch) none(t *testing.T, typ, id string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.Type == typ && e.View.ID == id {
			t.Errorf("%s got %s for call %s", w.name, typ, id)
		}
	}
}

func states(v call.View) map[string]string {
	out := map[string]string{}
	for _, p := range v.Participants {
		out[p.Device] = p.State
	}
	return out
}

func callDo(t *testing.T, c *client.Client, verb, id string) call.View {
	t.Helper()
	var v call.View
	if err := c.Do(t.Context(), "POST", "/v1/calls/"+id+"/"+verb, nil, &v); err != nil {
		t.Fatalf("%s %s: %v", verb, id, err)
	}
	return v
}

func placeCall(t *testing.T, c *client.Client, conv string) (call.View, error) {
	var v call.View
	err := c.Do(t.Context(), "POST", "/v1/conversations/"+conv+"/calls", nil, &v)
	return v, err
}

// The signalling of a call: ring on every device of the callee, answered
// elsewhere, hang up, decline, cancel, busy, no answer, one call per
// conversation, members only; every step in the transparency log.
func TestCallSignalling(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b, func(c *server.Config) { c.RingTimeout = 30 * time.Second })
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			carol := newMember(t, e, admin, "carol")
			dave := newMember(t, e, admin, "dave")
			var inv api.Invite
			if err := bob.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "bob@state.example"}, &inv); err != nil {
				t.Fatal(err)
			}
			bobPhone, res := e.enroll(t, inv.Code, "bob phone")
			var ar api.ApproveResponse
			if err := bob.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); err != nil {
				t.Fatal(err)
			}
			if err := bobPhone.EnsureKeyPackages(ctx, client.DefaultSuite); err != nil {
				t.Fatal(err)
			}
			ab, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			cd, err := carol.CreateConversation(ctx, client.CreateOptions{Members: []string{"dave@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			bc, err := bob.CreateConversation(ctx, client.CreateOptions{Members: []string{"carol@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, bob, carol, dave)
			if err := bobPhone.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			wa, wb, wp := watchCalls(t, "alice", alice.Client), watchCalls(t, "bob", bob.Client), watchCalls(t, "bob phone", bobPhone)
			wc := watchCalls(t, "carol", carol.Client)
			bobDev, phoneDev, aliceDev := bob.Profile().Device, bobPhone.Profile().Device, alice.Profile().Device

			// Ring both of bob's devices; the phone answers, the other
			// stops ringing.
			v, err := placeCall(t, alice.Client, ab.ID)
			if err != nil {
				t.Fatal(err)
			}
			if v.State != "ringing" || v.Caller != "alice@state.example" || states(v)[bobDev] != "ringing" || states(v)[phoneDev] != "ringing" || states(v)[aliceDev] != "joined" {
				t.Fatalf("placed: %+v", v)
			}
			if _, err := placeCall(t, alice.Client, ab.ID); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("second call in the conversation: %v, want conflict", err)
			}
			ring := wb.wait(t, call.EventRing, v.ID)
			wp.wait(t, call.EventRing, v.ID)
			if ring.Caller != "alice@state.example" || ring.Level == "" {
				t.Errorf("ring: %+v", ring)
			}
			var got call.View
			if err := carol.Do(ctx, "GET", "/v1/calls/"+v.ID, nil, &got); !apierr.Is(err, apierr.NotMember) {
				t.Errorf("an outsider reads the call: %v, want not_member", err)
			}
			if err := carol.Do(ctx, "POST", "/v1/calls/"+v.ID+"/join", nil, &got); !apierr.Is(err, apierr.NotMember) {
				t.Errorf("an outsider joins the call: %v, want not_member", err)
			}
			v = callDo(t, bobPhone, "accept", v.ID)
			if v.State != "active" || states(v)[phoneDev] != "joined" || states(v)[bobDev] != "elsewhere" {
				t.Fatalf("accepted: %+v", v)
			}
			wb.wait(t, call.EventElsewhere, v.ID)
			wa.waitFor(t, call.EventUpdate, v.ID, func(u call.View) bool { return states(u)[phoneDev] == "joined" })
			var dv call.View
			if err := bob.Do(ctx, "POST", "/v1/calls/"+v.ID+"/accept", nil, &dv); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("accepting on a device that stopped ringing: %v, want conflict", err)
			}
			// Carol calls bob while he is in a call: busy.
			busy, err := placeCall(t, carol.Client, bc.ID)
			if err != nil || busy.State != "ended" || busy.Reason != call.ReasonBusy {
				t.Errorf("calling a busy user: %+v %v", busy, err)
			}
			// Bob hangs up: a two-party call ends.
			v = callDo(t, bobPhone, "leave", v.ID)
			if v.State != "ended" || v.Reason != call.ReasonHangup {
				t.Fatalf("after hang-up: %+v", v)
			}
			if end := wa.wait(t, call.EventEnded, v.ID); end.Reason != call.ReasonHangup {
				t.Errorf("alice's end: %+v", end)
			}
			first := v.ID

			// Declined on one device: declined for the user.
			v, err = placeCall(t, alice.Client, ab.ID)
			if err != nil {
				t.Fatal(err)
			}
			wb.wait(t, call.EventRing, v.ID)
			v = callDo(t, bob.Client, "decline", v.ID)
			if v.State != "ended" || v.Reason != call.ReasonDeclined {
				t.Errorf("declined: %+v", v)
			}
			wp.wait(t, call.EventElsewhere, v.ID)
			wa.wait(t, call.EventEnded, v.ID)

			// Cancelled by the caller before anyone answers.
			v, err = placeCall(t, alice.Client, ab.ID)
			if err != nil {
				t.Fatal(err)
			}
			wp.wait(t, call.EventRing, v.ID)
			v = callDo(t, alice.Client, "leave", v.ID)
			if v.Reason != call.ReasonCancelled {
				t.Errorf("cancelled: %+v", v)
			}
			if end := wp.wait(t, call.EventEnded, v.ID); states(end)[phoneDev] != "missed" {
				t.Errorf("the phone after the cancel: %+v", end)
			}

			// Nobody answers: the call ends when the ring timeout passes.
			v, err = placeCall(t, carol.Client, cd.ID)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(31 * time.Second)
			if end := wc.wait(t, call.EventEnded, v.ID); end.Reason != call.ReasonNoAnswer {
				t.Errorf("unanswered: %+v", end)
			}
			wc.none(t, call.EventRing, v.ID) // the caller is not rung

			// Every step is in the transparency log, without content.
			var types []string
			eventually(t, "the first call's end in the log", func() bool {
				types = nil
				for _, en := range logEntries(t, admin) {
					if en.Call == first {
						types = append(types, en.Type+" "+strings.TrimSuffix(en.User+en.Actor, "@state.example")+" "+en.Reason)
					}
				}
				return len(types) >= 5
			})
			want := []string{tlog.TypeCallStart + " alice ", tlog.TypeCallJoin + " bob ", tlog.TypeCallLeave + " bob hangup",
				tlog.TypeCallLeave + " alice hangup", tlog.TypeCallEnd + "  hangup"}
			if strings.Join(types, "\n") != strings.Join(want, "\n") {
				t.Errorf("log entries of the first call:\n%s\nwant:\n%s", strings.Join(types, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// Every call attempt meets the contact policy and the conversation's
// classification, and a revoked device is taken out of a live call.
func TestCallRefusalsAndRevocation(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			admin2, _ := e.enroll(t, addUser(t, admin, "admin2", "admin"), "admin2")
			pm := newMember(t, e, admin, "pm")
			staff := newMember(t, e, admin, "staff")
			aide := newMember(t, e, admin, "aide")
			for _, u := range []string{"pm", "staff", "aide"} {
				setClearance(t, admin, admin2, u, "secret")
			}
			sync1(t, pm, staff, aide)
			secret, err := pm.CreateConversation(ctx, client.CreateOptions{Classification: conversation.Classification{Level: identity.Secret},
				Members: []string{"staff@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := pm.CreateConversation(ctx, client.CreateOptions{Members: []string{"aide@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, staff, aide)
			wp := watchCalls(t, "pm", pm.Client)

			// Staff's clearance drops below the conversation's: nobody in it
			// may be rung, and staff may not join.
			setClearance(t, admin, admin2, "staff", "confidential")
			if _, err := placeCall(t, pm.Client, secret.ID); !apierr.Is(err, apierr.ClearanceInsufficient) {
				t.Errorf("calling an uncleared member: %v, want clearance_insufficient", err)
			}
			v, err := placeCall(t, staff.Client, secret.ID)
			if !apierr.Is(err, apierr.ClearanceInsufficient) {
				t.Errorf("an uncleared member places a call: %+v %v, want clearance_insufficient", v, err)
			}

			// The policy stops allowing pm to reach aide: no call.
			var rules []api.Rule
			if err := admin.Do(ctx, "GET", "/v1/policy", nil, &rules); err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				if err := admin.Do(ctx, "DELETE", fmt.Sprintf("/v1/policy/%d", r.ID), nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := placeCall(t, pm.Client, plain.ID); !apierr.Is(err, apierr.ContactRefused) {
				t.Errorf("calling without the policy's leave: %v, want contact_refused", err)
			}
			if err := admin.Do(ctx, "POST", "/v1/policy", api.AddRuleRequest{Rule: "org:state.example -> org:state.example : allow"}, nil); err != nil {
				t.Fatal(err)
			}

			// A live call; aide's device is revoked: it is out of the call
			// at once, and the call ends.
			v, err = placeCall(t, pm.Client, plain.ID)
			if err != nil {
				t.Fatal(err)
			}
			callDo(t, aide.Client, "accept", v.ID)
			wp.waitFor(t, call.EventUpdate, v.ID, func(u call.View) bool { return states(u)[aide.Profile().Device] == "joined" })
			if err := admin.Do(ctx, "POST", "/v1/devices/"+aide.Profile().Device+"/revoke", api.RevokeRequest{Reason: "lost"}, nil); err != nil {
				t.Fatal(err)
			}
			end := wp.wait(t, call.EventEnded, v.ID)
			if states(end)[aide.Profile().Device] != "left" || end.Reason != call.ReasonHangup {
				t.Errorf("after the revocation: %+v", end)
			}
			// Call entries are checkpointed with the next batch, not
			// waited for.
			var reasons []string
			eventually(t, "the call's end in the log", func() bool {
				reasons = nil
				for _, en := range logEntries(t, admin) {
					if en.Call == v.ID && en.Type == tlog.TypeCallLeave {
						reasons = append(reasons, en.Reason)
					}
				}
				return len(reasons) == 2
			})
			if strings.Join(reasons, ",") != call.ReasonRevoked+","+call.ReasonHangup {
				t.Errorf("leave reasons in the log: %v", reasons)
			}
		})
	}
}
