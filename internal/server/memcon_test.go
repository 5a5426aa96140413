package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

// scheduledCall makes a counterpart's request that the desk schedules,
// and returns it.
func scheduledCall(t *testing.T, o *deskOrg, purpose string) api.CallRequest {
	t.Helper()
	return scheduledCallOf(t, o, purpose, desk.Priority)
}

func scheduledCallOf(t *testing.T, o *deskOrg, purpose string, urgency desk.Urgency) api.CallRequest {
	t.Helper()
	ctx := t.Context()
	now := o.e.clock.Now()
	v, err := o.counterpart.RequestCall(ctx, client.RequestOptions{Principal: "principal@state.example", Urgency: urgency,
		Windows: []desk.Window{{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}}, Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, o.duty)
	if v, err = o.duty.DecideRequest(ctx, v.ID, "approve", client.DecideOptions{At: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return v
}

// After a call, a note-taker drafts the MemCon with two commitments; the
// duty officer named as approver reads and approves it, which opens the
// commitments, and distributes it to a need-to-know list, who read it. A
// commitment past its due date alerts its owner and the desk once and is
// logged; its owner closes it. Nobody outside the list, and no
// counterpart, reads the memorandum; its text never reaches the server.
func TestMemConFlow(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY-memcon-51ad"
			o := newDeskOrg(t, b, func(c *server.Config) { c.DeskSweep = 20 * time.Millisecond })
			ctx := t.Context()
			v := scheduledCall(t, o, "fisheries "+canary)
			dutyEvents := watchRequests(t, o.duty.Client)
			now := o.e.clock.Now()

			draft := client.MemConDraft{Request: v.ID, Approver: "duty@state.example", Subject: "Call with the counterpart", HeldAt: now,
				Participants: []string{"principal@state.example", "counterpart@state.example", "notes@state.example"},
				Summary:      "Summary " + canary + ": both sides want the corridor open by spring.",
				Commitments: []desk.Commitment{
					{Owner: "duty@state.example", Due: now.Add(2 * time.Hour), Text: "Send the draft text " + canary},
					{Owner: "principal@state.example", Due: now.Add(48 * time.Hour), Text: "Call back after the vote " + canary},
				}}
			// Refused: approving one's own; an approver from the other side.
			self := draft
			self.Approver = "notes@state.example"
			if _, err := o.notes.DraftMemCon(ctx, self); err == nil {
				t.Fatal("a self-approved draft was accepted")
			}
			if _, err := o.counterpart.DraftMemCon(ctx, draft); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("a counterpart drafting: %v", err)
			}
			m, err := o.notes.DraftMemCon(ctx, draft)
			if err != nil {
				t.Fatal(err)
			}
			if m.Status != "draft" || len(m.Commitments) != 2 || m.Commitments[0].Owner != "duty@state.example" || m.Commitments[0].Status != "draft" {
				t.Fatalf("draft: %+v", m)
			}
			// The draft's commitments alert nobody, and are not listed yet.
			if cs, err := o.duty.Commitments(ctx, false); err != nil || len(cs) != 0 {
				t.Fatalf("draft commitments listed: %v %v", cs, err)
			}
			if _, err := o.notes.ApproveMemCon(ctx, m.ID); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the drafter approving: %v", err)
			}
			if m, err = o.duty.ApproveMemCon(ctx, m.ID); err != nil || m.Status != "approved" {
				t.Fatalf("approve: %+v, %v", m, err)
			}
			if _, err := o.duty.ApproveMemCon(ctx, m.ID); !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("approving twice: %v", err)
			}
			mine, err := o.duty.Commitments(ctx, false)
			if err != nil || len(mine) != 1 || mine[0].Status != "open" || mine[0].Overdue {
				t.Fatalf("duty's commitments: %+v, %v", mine, err)
			}
			if _, err := o.principal.Commitments(ctx, true); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the principal listing everyone's: %v", err)
			}

			// Distribution: not to a counterpart; then to the need-to-know list.
			if _, err := o.duty.DistributeMemCon(ctx, m.ID, []string{"principal@state.example", "counterpart@state.example"}); !apierr.Is(err, apierr.BadRequest) {
				t.Fatalf("distributing to a counterpart: %v", err)
			}
			if m, err = o.duty.DistributeMemCon(ctx, m.ID, []string{"principal@state.example", "notes@state.example"}); err != nil || m.Status != "distributed" {
				t.Fatalf("distribute: %+v, %v", m, err)
			}
			if !slices.Equal(m.Recipients, []string{"notes@state.example", "principal@state.example"}) {
				t.Errorf("recipients %v", m.Recipients)
			}
			sync1(t, o.principal, o.counterpart)
			got, err := o.principal.GetMemCon(ctx, m.ID)
			if err != nil || got.Doc == nil || got.Doc.Commitments[1].Text != draft.Commitments[1].Text ||
				got.Doc.Commitments[1].ID != m.Commitments[1].ID || !strings.HasPrefix(got.Doc.Summary, "Summary "+canary+":") {
				t.Fatalf("the principal's copy: %+v, %v", got.Doc, err)
			}
			// It is their copy, marked for them (leak_test.go tells more).
			if ts, err := o.duty.TraceLeak(ctx, got.Doc.Summary); err != nil || len(ts) != 1 || ts[0].Accused != "principal@state.example" {
				t.Fatalf("tracing the principal's copy: %+v, %v", ts, err)
			}
			if _, err := o.counterpart.GetMemCon(ctx, m.ID); !apierr.Is(err, apierr.NotFound) {
				t.Fatalf("the counterpart reading the memorandum: %v", err)
			}

			// Two hours on, duty's commitment is overdue: duty (owner and
			// desk) is alerted once; the principal's is not due yet.
			o.e.clock.Advance(2*time.Hour + time.Minute)
			eventually(t, "the overdue alert", func() bool { return len(dutyEvents.commitments(t, "commitment.overdue")) > 0 })
			time.Sleep(100 * time.Millisecond) // more sweeps: still one alert
			if over := dutyEvents.commitments(t, "commitment.overdue"); len(over) != 1 || over[0].ID != m.Commitments[0].ID || !over[0].Overdue {
				t.Fatalf("overdue alerts %+v", over)
			}
			all, err := o.duty.Commitments(ctx, true)
			if err != nil || len(all) != 2 || !all[0].Overdue || all[1].Overdue {
				t.Fatalf("all commitments: %+v, %v", all, err)
			}
			if _, err := o.notes.CloseCommitment(ctx, m.Commitments[0].ID, "done"); !apierr.Is(err, apierr.NotFound) {
				t.Fatalf("someone else closing it: %v", err)
			}
			if c, err := o.duty.CloseCommitment(ctx, m.Commitments[0].ID, "done"); err != nil || c.Status != "done" || c.Overdue {
				t.Fatalf("done: %+v, %v", c, err)
			}
			if _, err := o.duty.CloseCommitment(ctx, m.Commitments[0].ID, "done"); !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("closing twice: %v", err)
			}

			var steps []string
			eventually(t, "the log", func() bool {
				steps = steps[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Item == m.ID || en.Ref == m.ID || en.Item == m.Commitments[0].ID {
						steps = append(steps, en.Type)
					}
				}
				return len(steps) == 7
			})
			want := []string{tlog.TypeMemConDraft, tlog.TypeMemConApprove, tlog.TypeCommitmentOpen, tlog.TypeCommitmentOpen,
				tlog.TypeMemConDistribute, tlog.TypeCommitmentDue, tlog.TypeCommitmentClose}
			if !slices.Equal(steps, want) {
				t.Errorf("log steps %v, want %v", steps, want)
			}
			o.e.noCanary(t, canary, "memcons")
		})
	}
}
