package core_test

import (
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/demo"
	"hotline/web/core"
)

// heldOf reports whether user's joined device in v is on hold, and whether
// it is joined at all.
func heldOf(v api.Call, user string) (held, joined bool) {
	for _, p := range v.Participants {
		if p.User == user && p.State == "joined" {
			return p.Held, true
		}
	}
	return false, false
}

func stateIn(v api.Call, user string) string {
	for _, p := range v.Participants {
		if p.User == user && (p.State == "joined" || p.State == "ringing") {
			return p.State
		}
	}
	return ""
}

// The desk in a call, as the console drives the core: the desk's browser
// places a scheduled request's call (its own call, ringing the requester
// only), holds and resumes the counterpart, connects the principal and
// leaves; placed again, it hands the call over to the principal. Errors
// carry the server's codes.
func TestWebCoreDeskPlaces(t *testing.T) {
	d, _ := startDemo(t)
	ctx := t.Context()
	cp := enrol(t, d, "counterpart", nil)
	duty := enrol(t, d, "duty", nil)
	pr := enrol(t, d, "principal", nil)
	for _, b := range []*browser{cp, duty, pr} {
		b.followConnected(t)
	}
	const (
		cpUser = "counterpart@" + demo.Org
		prUser = "principal@" + demo.Org
	)
	now := time.Now().UTC()
	v, err := cp.RequestCall(ctx, core.RequestIn{Principal: prUser, Urgency: "routine", Zone: "UTC", Purpose: "the convoy",
		Start: now.Add(time.Hour).Format(time.RFC3339), End: now.Add(2 * time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := duty.PlaceRequestCall(ctx, v.ID); core.UIError(err).Code != "conflict" {
		t.Fatalf("placing a pending request's call: %v, want conflict", err)
	}
	eventually(t, "the request at the desk", func() bool { _, err := duty.Request(ctx, v.ID); return err == nil })
	if _, err := duty.Decide(ctx, v.ID, "approve", core.DecideIn{At: now.Add(90 * time.Minute).Truncate(time.Second).Format(time.RFC3339), Minutes: 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.PlaceRequestCall(ctx, v.ID); core.UIError(err).Code != "forbidden" {
		t.Fatalf("the counterpart placing: %v, want forbidden", err)
	}

	c, err := duty.PlaceRequestCall(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stateIn(c, cpUser) != "ringing" || stateIn(c, prUser) != "" {
		t.Fatalf("placed: %+v", c.Participants)
	}
	if _, err := duty.PlaceRequestCall(ctx, v.ID); core.UIError(err).Code != "conflict" {
		t.Errorf("a second call at once: %v, want conflict", err)
	}
	if _, err := cp.AnswerCall(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if c, err = duty.HoldInCall(ctx, c.ID, cpUser, true); err != nil {
		t.Fatal(err)
	}
	if held, joined := heldOf(c, cpUser); !held || !joined {
		t.Fatalf("held: %+v", c.Participants)
	}
	if _, err := duty.HoldInCall(ctx, c.ID, cpUser, true); core.UIError(err).Code != "conflict" {
		t.Errorf("holding twice: %v, want conflict", err)
	}
	if _, err := cp.HoldInCall(ctx, c.ID, "duty@"+demo.Org, true); core.UIError(err).Code != "forbidden" {
		t.Errorf("the counterpart holding the desk: %v, want forbidden", err)
	}
	if c, err = duty.HoldInCall(ctx, c.ID, cpUser, false); err != nil {
		t.Fatal(err)
	}
	if held, _ := heldOf(c, cpUser); held {
		t.Fatalf("resumed: %+v", c.Participants)
	}
	// A routine request's call does not preempt.
	if _, err := duty.RingIntoCall(ctx, c.ID, prUser, true); core.UIError(err).Code != "forbidden" {
		t.Errorf("preempting from a routine call: %v, want forbidden", err)
	}
	if c, err = duty.RingIntoCall(ctx, c.ID, prUser, false); err != nil || stateIn(c, prUser) != "ringing" {
		t.Fatalf("connecting the principal: %+v, %v", c.Participants, err)
	}
	if _, err := pr.AnswerCall(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := duty.TransferCall(ctx, c.ID, prUser); core.UIError(err).Code != "conflict" {
		t.Errorf("transferring to someone on the call: %v, want conflict", err)
	}
	if c, err = duty.Hangup(ctx, c.ID); err != nil || c.State != "active" || stateIn(c, cpUser) != "joined" || stateIn(c, prUser) != "joined" {
		t.Fatalf("the desk leaving: %+v, %v", c, err)
	}
	if _, err := pr.Hangup(ctx, c.ID); err != nil {
		t.Fatal(err)
	}

	// Placed again, then handed over: the principal rings, the desk is out
	// (and free for another call).
	var c2 api.Call
	eventually(t, "the counterpart free again", func() bool {
		c2, err = duty.PlaceRequestCall(ctx, v.ID)
		return err == nil
	})
	eventually(t, "the counterpart's answer", func() bool { _, err := cp.AnswerCall(ctx, c2.ID); return err == nil })
	if c2, err = duty.TransferCall(ctx, c2.ID, prUser); err != nil {
		t.Fatal(err)
	}
	if stateIn(c2, prUser) != "ringing" || stateIn(c2, "duty@"+demo.Org) != "" || stateIn(c2, cpUser) != "joined" {
		t.Fatalf("transferred: %+v", c2.Participants)
	}
	if _, err := pr.AnswerCall(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
	if err := duty.Client().Do(ctx, "GET", "/v1/calls/"+c2.ID, nil, &c2); err != nil {
		t.Fatal(err)
	}
	if c2.State != "active" || stateIn(c2, prUser) != "joined" || stateIn(c2, cpUser) != "joined" {
		t.Fatalf("after the transfer: %+v", c2)
	}
	if _, err := cp.Hangup(ctx, c2.ID); err != nil {
		t.Fatal(err)
	}
}
