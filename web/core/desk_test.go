package core_test

import (
	"slices"
	"testing"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/demo"
	"hotline/web/core"
)

// The duty desk as the page drives it: the counterpart's browser asks for
// a flash call; the desk's browser is told at once, reads the purpose and
// schedules it; the principal's browser has it on the schedule.
func TestWebCoreDesk(t *testing.T) {
	d, _ := startDemo(t)
	ctx := t.Context()
	cp := enrol(t, d, "counterpart", nil)
	duty := enrol(t, d, "duty", nil)
	pr := enrol(t, d, "principal", nil)
	for _, b := range []*browser{cp, duty, pr} {
		b.followConnected(t)
	}
	now := time.Now().UTC()
	in := core.RequestIn{Principal: "principal@" + demo.Org, Urgency: "flash", Zone: "Europe/Paris", Purpose: "the grain corridor",
		Start: now.Add(time.Hour).Format(time.RFC3339), End: now.Add(2 * time.Hour).Format(time.RFC3339)}
	if _, err := cp.RequestCall(ctx, core.RequestIn{Principal: in.Principal, Urgency: "urgent", Start: in.Start, End: in.End, Purpose: "x"}); err == nil {
		t.Fatal("an unknown urgency was accepted")
	}
	v, err := cp.RequestCall(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the desk's request update", func() bool {
		duty.mu.Lock()
		defer duty.mu.Unlock()
		return slices.ContainsFunc(duty.updates, func(u core.Update) bool { return u.Kind == "request" && u.Request.ID == v.ID })
	})
	var pending []core.DeskRequest
	eventually(t, "the purpose at the desk", func() bool {
		pending, err = duty.Requests(ctx, []string{"pending"})
		return err == nil && len(pending) == 1 && pending[0].Purpose == "the grain corridor"
	})
	if pending[0].Urgency != "flash" || pending[0].Zone != "Europe/Paris" {
		t.Fatalf("pending: %+v", pending[0])
	}
	at := now.Add(90 * time.Minute).Truncate(time.Second)
	if _, err := cp.Decide(ctx, v.ID, "approve", core.DecideIn{At: at.Format(time.RFC3339)}); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart approving: %v", err)
	}
	if _, err := duty.Decide(ctx, v.ID, "approve", core.DecideIn{At: "soon"}); err == nil {
		t.Fatal("a bad time was accepted")
	}
	s, err := duty.Decide(ctx, v.ID, "approve", core.DecideIn{At: at.Format(time.RFC3339), Minutes: 20, Note: "confirmed"})
	if err != nil || s.Status != "scheduled" || s.Duration != 1200 {
		t.Fatalf("approved: %+v, %v", s, err)
	}
	var sched []core.DeskRequest
	eventually(t, "the principal's schedule, with the purpose", func() bool {
		sched, err = pr.Schedule(ctx, now.Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
		return err == nil && len(sched) == 1 && sched[0].Purpose == "the grain corridor"
	})
	if _, err := pr.AckBriefing(ctx, v.ID); err == nil {
		t.Fatal("acknowledged a briefing that does not exist")
	}
	eventually(t, "the counterpart reads the note", func() bool {
		r, err := cp.Request(ctx, v.ID)
		return err == nil && len(r.Notes) == 1 && r.Notes[0].Text == "confirmed"
	})
	if live, err := duty.LiveCalls(ctx); err != nil || len(live) != 0 {
		t.Fatalf("live calls: %v, %v", live, err)
	}
	if _, err := cp.LiveCalls(ctx); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart listing live calls: %v", err)
	}
}
