package server_test

import (
	"slices"
	"sync"
	"testing"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/voice"
)

// callEvents records the call events a phone's line handles (callEvent:
// see calls_test.go).
type callEvents struct {
	mu  sync.Mutex
	got []callEvent
}

// option returns a voice option that records every call event, after the
// phone's own recording.
func (ce *callEvents) option(o *voice.Options) {
	prev := o.OnCall
	o.OnCall = func(event string, v api.Call) {
		if prev != nil {
			prev(event, v)
		}
		ce.mu.Lock()
		ce.got = append(ce.got, callEvent{event, v})
		ce.mu.Unlock()
	}
}

// preempted returns, for each event of call id of type event, the users
// its view marks preempted.
func (ce *callEvents) preempted(id, event string) [][]string {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	var out [][]string
	for _, e := range ce.got {
		if e.View.ID != id || e.Type != event {
			continue
		}
		users := []string{}
		for _, p := range e.View.Participants {
			if p.Preempted {
				users = append(users, p.User)
			}
		}
		out = append(out, users)
	}
	return out
}

// sawPreempted reports whether an event of call id of type event marked
// user preempted.
func (ce *callEvents) sawPreempted(id, event, user string) bool {
	return slices.ContainsFunc(ce.preempted(id, event), func(us []string) bool { return slices.Contains(us, user) })
}

// A flash call preempts the principal's routine call of three: the
// principal's device and those left on the routine call are told, in the
// call.update each receives, that the principal was taken out for a call
// of higher precedence (so that they sound the warning); the principal's
// call ends "preempted"; the others talk on, and learn who was taken out.
// It is in the log. Someone who simply hangs up is never marked preempted.
func TestPreemptionWarning(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			o := newDeskOrg(t, b, func(c *server.Config) { c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0" })
			ctx := t.Context()
			aide, aide2 := newMember(t, o.e, o.admin, "aide"), newMember(t, o.e, o.admin, "aide2")
			flash := scheduledCallOf(t, o, "the strait", desk.Flash)
			staff, err := o.principal.CreateConversation(ctx, client.CreateOptions{Members: []string{"aide@state.example", "aide2@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, o.principal, o.counterpart, o.duty, aide, aide2)
			var pe, ne, ae callEvents
			pp, pn, pa := newPhone(t, o.principal, pe.option), newPhone(t, aide2, ne.option), newPhone(t, aide, ae.option)

			// The routine call: the principal and two aides.
			cp, err := pp.line.Place(ctx, staff.ID)
			if err != nil {
				t.Fatal(err)
			}
			pn.ringing(t, cp.ID)
			pa.ringing(t, cp.ID)
			cn, err := pn.line.Answer(ctx, cp.ID)
			if err != nil {
				t.Fatal(err)
			}
			ca, err := pa.line.Answer(ctx, cp.ID)
			if err != nil {
				t.Fatal(err)
			}

			// The flash call: the desk places it and connects the principal, preempting.
			fc, err := o.duty.PlaceRequestCall(ctx, flash.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.duty.RingIntoCall(ctx, fc.ID, "principal@state.example", true); err != nil {
				t.Fatal(err)
			}
			principal := "principal@state.example"
			eventually(t, "the principal's routine call to end, preempted", func() bool {
				select {
				case <-cp.Ended():
					return true
				default:
					return false
				}
			})
			if r := cp.Reason(); r != "preempted" {
				t.Errorf("the principal's call ended %q, want preempted", r)
			}
			if !pe.sawPreempted(cp.ID, client.EventCallUpdate, principal) {
				t.Errorf("the principal's device was not told in a call.update: %v", pe.preempted(cp.ID, client.EventCallUpdate))
			}
			for _, p := range []struct {
				name   string
				events *callEvents
				call   *voice.Call
			}{{"second aide", &ne, cn}, {"aide", &ae, ca}} {
				eventually(t, "the "+p.name+" told of the preemption in a call.update", func() bool {
					return p.events.sawPreempted(cp.ID, client.EventCallUpdate, principal)
				})
				if got := p.call.Preempted(); !slices.Equal(got, []string{principal}) {
					t.Errorf("the %s's call: preempted %v", p.name, got)
				}
				if p.call.Reason() != "" {
					t.Errorf("the %s's call ended (%s): the two talk on", p.name, p.call.Reason())
				}
			}
			pp.ringing(t, fc.ID)

			// The aide hangs up: the call ends for the second aide too, and
			// nobody but the principal was ever preempted.
			if err := ca.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the routine call ending for the second aide", func() bool {
				select {
				case <-cn.Ended():
					return true
				default:
					return false
				}
			})
			if cn.Reason() != "hangup" || ca.Reason() != "hangup" {
				t.Errorf("ended %q and %q, want hangup", cn.Reason(), ca.Reason())
			}
			for name, ev := range map[string]*callEvents{"principal": &pe, "second aide": &ne, "aide": &ae} {
				for _, typ := range []string{client.EventCallUpdate, client.EventCallEnded} {
					for _, us := range ev.preempted(cp.ID, typ) {
						if len(us) > 1 || len(us) == 1 && us[0] != principal {
							t.Errorf("the %s saw %v preempted in a %s", name, us, typ)
						}
					}
				}
			}
			v, err := aide2.GetCall(ctx, cp.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range v.Participants {
				if p.Preempted != (p.User == principal) {
					t.Errorf("ended routine call: %+v", p)
				}
			}

			var leaves []string
			eventually(t, "the preemption and the hangup in the log", func() bool {
				leaves = leaves[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Type == tlog.TypeCallLeave && en.Call == cp.ID {
						leaves = append(leaves, en.User+" "+en.Reason)
					}
				}
				return len(leaves) == 3
			})
			if want := []string{principal + " preempted", "aide@state.example hangup", "aide2@state.example hangup"}; !slices.Equal(leaves, want) {
				t.Errorf("log: %v, want %v", leaves, want)
			}
		})
	}
}
