package server_test

import (
	"slices"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/desk"
	"hotline/internal/tlog"
)

func stateOf(v api.Call, user string) string {
	for _, p := range v.Participants {
		if p.User == user && (p.State == "joined" || p.State == "ringing") {
			return p.State
		}
	}
	return ""
}

// The situation room's way: the desk places the scheduled call, which
// rings the counterpart only; once they are on the line, the desk connects
// the principal. A flash call preempts the principal's routine call: they
// are taken out of it (logged as preempted) and rung at once; without
// precedence, a busy principal is not rung.
func TestStaffPlacedCallAndPrecedence(t *testing.T) {
	o := newDeskOrg(t, "sqlite")
	ctx := t.Context()
	routine := scheduledCallOf(t, o, "routine matters", desk.Routine)
	flash := scheduledCallOf(t, o, "the strait", desk.Flash)
	sync1(t, o.principal, o.counterpart, o.duty)

	// Only the desk places a request's call.
	if _, err := o.counterpart.PlaceRequestCall(ctx, flash.ID); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart placing: %v", err)
	}
	// The principal is on a routine call with the note-taker.
	staff, err := o.principal.DirectConversation(ctx, "notes@state.example")
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, o.notes)
	busy, err := o.principal.PlaceCall(ctx, staff.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.notes.AcceptCall(ctx, busy.ID); err != nil {
		t.Fatal(err)
	}

	// The desk places the flash call: the counterpart rings, the principal does not.
	c, err := o.duty.PlaceRequestCall(ctx, flash.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stateOf(c, "counterpart@state.example") != "ringing" || stateOf(c, "principal@state.example") != "" {
		t.Fatalf("placed: %+v", c.Participants)
	}
	if _, err := o.counterpart.AcceptCall(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// "Please hold for the principal": busy, so not rung without precedence.
	if _, err := o.duty.RingIntoCall(ctx, c.ID, "principal@state.example", false); !apierr.Is(err, apierr.Conflict) {
		t.Fatalf("ringing a busy principal: %v", err)
	}
	if _, err := o.counterpart.RingIntoCall(ctx, c.ID, "principal@state.example", true); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart preempting: %v", err)
	}
	if c, err = o.duty.RingIntoCall(ctx, c.ID, "principal@state.example", true); err != nil {
		t.Fatal(err)
	}
	if stateOf(c, "principal@state.example") != "ringing" {
		t.Fatalf("the principal not rung: %+v", c.Participants)
	}
	old, err := o.notes.GetCall(ctx, busy.ID)
	if err != nil || old.State != "ended" || old.Reason != "preempted" {
		t.Fatalf("the routine call: %+v, %v", old, err)
	}
	// Only the principal was taken out; the note-taker's call ended with it.
	for _, p := range old.Participants {
		if p.Preempted != (p.User == "principal@state.example") {
			t.Errorf("the routine call's participant %+v", p)
		}
	}
	if c, err = o.principal.AcceptCall(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if stateOf(c, "principal@state.example") != "joined" || stateOf(c, "counterpart@state.example") != "joined" {
		t.Fatalf("connected: %+v", c.Participants)
	}
	// The desk leaves; the principal and the counterpart talk on.
	if c, err = o.duty.LeaveCall(ctx, c.ID); err != nil || c.State != "active" {
		t.Fatalf("the desk leaving: %+v, %v", c, err)
	}

	// A routine request's call cannot preempt.
	c2, err := o.duty.PlaceRequestCall(ctx, routine.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.counterpart.AcceptCall(ctx, c2.ID); err == nil {
		t.Fatal("the counterpart, in the flash call, answered another")
	}
	if _, err := o.duty.RingIntoCall(ctx, c2.ID, "principal@state.example", true); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("a routine call preempting: %v", err)
	}

	var leaves []string
	eventually(t, "the preemption in the log", func() bool {
		leaves = leaves[:0]
		for _, en := range logEntries(t, o.duty.Client) {
			if en.Type == tlog.TypeCallLeave && en.Call == busy.ID {
				leaves = append(leaves, en.User+" "+en.Reason)
			}
		}
		return slices.Contains(leaves, "principal@state.example preempted")
	})
}
