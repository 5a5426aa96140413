package server_test

import (
	"slices"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/voice"
)

// The desk designates the principal's note-taker. When the principal calls
// a counterpart directly in a conversation the note-taker is in, the
// note-taker's device rings with the others, answers, and is on the
// record, listening, for everyone to see: they hear the principal and the
// counterpart, and nobody hears them. The desk's ad-hoc alert says so. In
// the principal's 1:1 with the counterpart, which the note-taker is not
// in, they cannot listen (the media keys are the group's): the desk is told
// they could not join, and the readout is owed all the same. Only admins
// and the desk designate, and only a listening note-taker for a
// principal; each change is logged.
func TestAdHocCallNoteTaker(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			o := newDeskOrg(t, b, func(c *server.Config) {
				c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0"
				c.ReadoutWithin = time.Hour
			})
			ctx := t.Context()
			const principal, notes, cp = "principal@state.example", "notes@state.example", "counterpart@state.example"
			// The principal and the counterpart may reach each other directly.
			for _, rule := range []string{"user:" + principal + " -> user:" + cp + " : allow", "user:" + cp + " -> user:" + principal + " : allow"} {
				if err := o.admin.Do(ctx, "POST", "/v1/policy", api.AddRuleRequest{Rule: rule}, nil); err != nil {
					t.Fatal(err)
				}
			}
			dutyEvents := watchRequests(t, o.duty.Client)

			// Who may designate whom.
			for _, tt := range []struct {
				name        string
				by          *client.Client
				of, taker   string
				code        apierr.Code
				clearsOther bool
			}{
				{"the counterpart", o.counterpart.Client, principal, notes, apierr.Forbidden, false},
				{"the principal", o.principal.Client, principal, notes, apierr.Forbidden, false},
				{"not a principal", o.duty.Client, notes, "duty@state.example", apierr.BadRequest, false},
				{"a speaking role", o.duty.Client, principal, "duty@state.example", apierr.BadRequest, false},
				{"a counterpart", o.duty.Client, principal, cp, apierr.BadRequest, false},
				{"themself", o.duty.Client, principal, principal, apierr.BadRequest, false},
				{"nobody", o.duty.Client, principal, "nobody@state.example", apierr.NotFound, false},
				{"a malformed ID", o.duty.Client, principal, "not a user", apierr.BadRequest, false},
			} {
				if _, err := tt.by.SetNoteTaker(ctx, tt.of, tt.taker); !apierr.Is(err, tt.code) {
					t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
				}
			}
			if _, err := o.duty.ClearNoteTaker(ctx, principal); !apierr.Is(err, apierr.NotFound) {
				t.Errorf("clearing none: %v", err)
			}
			if _, err := o.admin.SetNoteTaker(ctx, principal, notes); err != nil {
				t.Fatal(err)
			}
			if _, err := o.duty.ClearNoteTaker(ctx, principal); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second changes nothing
				n, err := o.duty.SetNoteTaker(ctx, principal, notes)
				if err != nil || n.Principal != principal || n.NoteTaker != notes || n.SetBy != "duty@state.example" {
					t.Fatalf("designated: %+v, %v", n, err)
				}
			}
			for _, m := range []struct {
				who  *member
				want int
			}{{o.duty, 1}, {o.principal, 1}, {o.notes, 1}, {o.counterpart, 0}} {
				if ns, err := m.who.NoteTakers(ctx); err != nil || len(ns) != m.want {
					t.Errorf("%s sees designations %+v, %v; want %d", m.who.name, ns, err, m.want)
				}
			}

			// The 1:1 with the counterpart: the note-taker is not in it.
			direct, err := o.principal.DirectConversation(ctx, cp)
			if err != nil {
				t.Fatal(err)
			}
			c1, err := o.principal.PlaceCall(ctx, direct.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stateOf(c1, notes) != "" {
				t.Fatalf("the note-taker rung outside the conversation: %+v", c1.Participants)
			}
			eventually(t, "the desk told the note-taker could not join", func() bool { return len(dutyEvents.readouts(t, "call.adhoc")) == 1 })
			if r := dutyEvents.readouts(t, "call.adhoc")[0]; r.Call != c1.ID || r.NoteTaker != notes || r.NoteTakerStatus != "not_member" || r.Status != "due" {
				t.Errorf("ad-hoc alert %+v", r)
			}
			if _, err := o.principal.LeaveCall(ctx, c1.ID); err != nil {
				t.Fatal(err)
			}

			// A conversation with the counterpart and the note-taker.
			conv, err := o.principal.CreateConversation(ctx, client.CreateOptions{Members: []string{cp, notes}})
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, o.counterpart, o.notes)
			pp, pc, pn := newPhone(t, o.principal), newPhone(t, o.counterpart), newPhone(t, o.notes)
			c2, err := pp.line.Place(ctx, conv.ID)
			if err != nil {
				t.Fatal(err)
			}
			pn.ringing(t, c2.ID)
			pc.ringing(t, c2.ID)
			eventually(t, "the desk told the note-taker was rung", func() bool { return len(dutyEvents.readouts(t, "call.adhoc")) == 2 })
			if r := dutyEvents.readouts(t, "call.adhoc")[1]; r.Call != c2.ID || r.NoteTaker != notes || r.NoteTakerStatus != "rung" ||
				r.Principal != principal || !slices.Equal(r.Others, []string{cp}) {
				t.Errorf("ad-hoc alert %+v", r)
			}
			// The note-taker's device answers first: that does not answer
			// the call, which rings on until the counterpart does.
			cn, err := pn.line.Answer(ctx, c2.ID)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := o.principal.GetCall(ctx, c2.ID); err != nil || v.State != "ringing" || v.AnsweredAt != nil || stateOf(v, notes) != "joined" {
				t.Fatalf("with the note-taker listening: %+v, %v", v, err)
			}
			cc, err := pc.line.Answer(ctx, c2.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Everyone sees the note-taker on the record, listening.
			for _, m := range []*member{o.principal, o.counterpart, o.notes} {
				v, err := m.GetCall(ctx, c2.ID)
				if err != nil {
					t.Fatal(err)
				}
				listening := map[string]bool{}
				for _, p := range v.Participants {
					if p.State == "joined" {
						listening[p.User] = p.Listening
					}
				}
				if len(listening) != 3 || !listening[notes] || listening[principal] || listening[cp] {
					t.Errorf("%s sees %v", m.name, listening)
				}
			}
			pp.listen(c2)
			pc.listen(cc)
			pn.listen(cn)
			stops := []func(){talker(t, c2, "principal"), talker(t, cc, "counterpart"), talker(t, cn, "notes")}
			defer func() {
				for _, stop := range stops {
					stop()
				}
			}()
			eventually(t, "the note-taker hearing the principal and the counterpart", func() bool {
				a, _ := pn.heardFrom(principal)
				b, _ := pn.heardFrom(cp)
				c, _ := pc.heardFrom(principal)
				d, _ := pp.heardFrom(cp)
				return len(a) > 25 && len(b) > 25 && len(c) > 25 && len(d) > 25
			})
			for _, p := range []*phone{pp, pc} {
				if fs, _ := p.heardFrom(notes); len(fs) != 0 {
					t.Errorf("%s heard the listening note-taker: %d frames", p.name, len(fs))
				}
			}
			for _, stop := range stops {
				stop()
			}
			stops = nil
			// The principal hangs up: the note-taker is not left on the
			// line with the counterpart.
			if err := c2.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*voice.Call{cc, cn} {
				eventually(t, "the call ending for all", func() bool {
					select {
					case <-c.Ended():
						return true
					default:
						return false
					}
				})
				if c.Reason() != "hangup" {
					t.Errorf("ended %q, want hangup", c.Reason())
				}
			}

			// Both readouts are owed, and the desk's list names the note-taker.
			rs, err := o.duty.Readouts(ctx)
			if err != nil || len(rs) != 2 {
				t.Fatalf("readouts %+v, %v", rs, err)
			}
			for _, r := range rs {
				want := map[string]string{c1.ID: "not_member", c2.ID: "rung"}[r.Call]
				if r.Status != "due" || r.NoteTaker != notes || r.NoteTakerStatus != want {
					t.Errorf("readout %+v, want note-taker %s", r, want)
				}
			}

			if _, err := o.duty.ClearNoteTaker(ctx, principal); err != nil {
				t.Fatal(err)
			}
			var got []string
			eventually(t, "the designations and the ad-hoc calls in the log", func() bool {
				got = got[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					switch {
					case en.Type == tlog.TypeNoteTakerSet:
						got = append(got, en.Type+" "+en.Actor+" "+en.User+" "+en.Target)
					case en.Type == tlog.TypeCallAdHoc:
						got = append(got, en.Type+" "+en.User+" "+en.Target+" "+en.Reason)
					}
				}
				return len(got) == 6
			})
			want := []string{
				"notetaker.set admin@state.example " + principal + " " + notes,
				"notetaker.set duty@state.example " + principal + " ",
				"notetaker.set duty@state.example " + principal + " " + notes,
				"call.adhoc " + principal + " " + notes + " not_member",
				"call.adhoc " + principal + " " + notes + " rung",
				"notetaker.set duty@state.example " + principal + " ",
			}
			if !slices.Equal(got, want) {
				t.Errorf("log:\n%q\nwant\n%q", got, want)
			}
		})
	}
}
