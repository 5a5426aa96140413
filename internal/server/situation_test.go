package server_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/voice"
)

// The situation room end to end, as the issue tells it: a counterpart's
// request → the desk approves → a note-taker briefs the principal, who
// acknowledges → the line check is green → the desk places the call,
// connects the principal and a listening note-taker → the MemCon, approved
// and distributed → its commitment goes overdue and alerts its owner and
// the desk. Every step is in the log; no purpose, brief, MemCon or
// commitment text reaches the server's storage, log or metrics.
func TestSituationRoom(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY-sitroom-4b2e"
			o := newDeskOrg(t, b, func(c *server.Config) {
				c.DeskSweep = 20 * time.Millisecond
				c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0"
			})
			ctx := t.Context()
			dutyEvents := watchRequests(t, o.duty.Client)
			now := o.e.clock.Now()

			// Request and approval.
			r, err := o.counterpart.RequestCall(ctx, client.RequestOptions{Principal: "principal@state.example", Urgency: desk.Flash,
				Windows: []desk.Window{{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}}, Purpose: "Purpose " + canary})
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, o.duty)
			if r, err = o.duty.DecideRequest(ctx, r.ID, "approve", client.DecideOptions{At: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// The note-taker joins the request's conversation, to be on the call.
			if _, err := o.duty.AddMembers(ctx, r.Conversation, "notes@state.example"); err != nil {
				t.Fatal(err)
			}
			sync1(t, o.principal, o.counterpart, o.notes)

			// Brief, acknowledged.
			if _, err := o.notes.Brief(ctx, r.ID, desk.Briefing{TalkingPoints: []string{"Point " + canary}}); err != nil {
				t.Fatal(err)
			}
			sync1(t, o.principal)
			if r, err = o.principal.AckBriefing(ctx, r.ID); err != nil || r.Briefing.Acked != 1 {
				t.Fatalf("ack: %+v %v", r.Briefing, err)
			}

			// Line check: both ends keep their side, with warm lines.
			for _, m := range []*member{o.principal, o.counterpart} {
				line, err := voice.Dial(ctx, m.Client, voice.Options{IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { line.Close() })
				keep(t, m)
			}
			var lc api.LineCheck
			eventually(t, "a green line check", func() bool {
				if lc, err = o.duty.StartLineCheck(ctx, r.ID); err != nil {
					t.Fatal(err)
				}
				lc = lineResult(t, o, lc.ID, 50*time.Millisecond)
				return lc.Status == "green"
			})

			// The desk places the call, then connects the principal and the note-taker.
			c, err := o.duty.PlaceRequestCall(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.counterpart.AcceptCall(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"principal@state.example", "notes@state.example"} {
				if _, err := o.duty.RingIntoCall(ctx, c.ID, u, false); err != nil {
					t.Fatalf("ring %s: %v", u, err)
				}
			}
			if _, err := o.principal.AcceptCall(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if c, err = o.notes.AcceptCall(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			listening := map[string]bool{}
			for _, p := range c.Participants {
				if p.State == "joined" {
					listening[p.User] = p.Listening
				}
			}
			if len(listening) != 4 || !listening["notes@state.example"] || listening["principal@state.example"] || listening["counterpart@state.example"] {
				t.Fatalf("on the call: %v", listening)
			}
			for _, m := range []*member{o.duty, o.notes, o.counterpart, o.principal} {
				if _, err := m.LeaveCall(ctx, c.ID); err != nil && m != o.principal {
					t.Fatalf("%s leaving: %v", m.name, err)
				}
			}

			// MemCon, approved and distributed; its commitment goes overdue.
			m, err := o.notes.DraftMemCon(ctx, client.MemConDraft{Request: r.ID, Approver: "duty@state.example", Subject: "Call", HeldAt: now,
				Participants: []string{"principal@state.example", "counterpart@state.example"}, Summary: "Summary " + canary,
				Commitments: []desk.Commitment{{Owner: "duty@state.example", Due: now.Add(2 * time.Hour), Text: "Commitment " + canary}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.duty.ApproveMemCon(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := o.duty.DistributeMemCon(ctx, m.ID, []string{"principal@state.example", "notes@state.example"}); err != nil {
				t.Fatal(err)
			}
			o.e.clock.Advance(2*time.Hour + time.Minute)
			eventually(t, "the overdue alert at the desk", func() bool { return len(dutyEvents.commitments(t, "commitment.overdue")) == 1 })

			want := []string{tlog.TypeRequestCreate, tlog.TypeRequestApprove, tlog.TypeBriefingAttach, tlog.TypeBriefingAck,
				tlog.TypeLineCheckStart, tlog.TypeLineCheckDone, tlog.TypeCallStart, tlog.TypeCallJoin, tlog.TypeMemConDraft,
				tlog.TypeMemConApprove, tlog.TypeCommitmentOpen, tlog.TypeMemConDistribute, tlog.TypeCommitmentDue}
			eventually(t, "every step in the log", func() bool {
				var seen []string
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Item == r.ID || en.Ref == r.ID || en.Item == m.ID || en.Ref == m.ID || en.Call == c.ID || en.Item == m.Commitments[0].ID {
						seen = append(seen, en.Type)
					}
				}
				for _, w := range want {
					if !slices.Contains(seen, w) {
						return false
					}
				}
				return true
			})
			o.e.noCanary(t, canary, "memcons")
		})
	}
}
