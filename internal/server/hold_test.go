package server_test

import (
	"slices"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/desk"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

func heardOn(p *phone) []string {
	var out []string
	for _, s := range p.line.Slots().Slots {
		if s.Device != "" {
			out = append(out, s.Device)
		}
	}
	slices.Sort(out)
	return out
}

func heldOf(v api.Call, user string) bool {
	for _, p := range v.Participants {
		if p.User == user && p.State == "joined" {
			return p.Held
		}
	}
	return false
}

// "Please hold for the principal": the desk puts the counterpart on hold —
// still in the call, but the forwarder sends them nothing and nobody hears
// them — and takes them off it; then transfers the call to the principal
// and leaves. Only the caller or the desk may hold someone.
func TestHoldAndTransfer(t *testing.T) {
	o := newDeskOrg(t, "sqlite", func(c *server.Config) { c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0" })
	ctx := t.Context()
	r := scheduledCallOf(t, o, "hold", desk.Routine)
	sync1(t, o.principal, o.counterpart, o.duty)
	pd, pc, pp := newPhone(t, o.duty), newPhone(t, o.counterpart), newPhone(t, o.principal)
	c, err := o.duty.PlaceRequestCall(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	pc.ringing(t, c.ID)
	if _, err := pc.line.Answer(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	dutyDev, cpDev := o.duty.Profile().Device, o.counterpart.Profile().Device
	eventually(t, "the two hearing each other", func() bool {
		return slices.Equal(heardOn(pd), []string{cpDev}) && slices.Equal(heardOn(pc), []string{dutyDev})
	})

	if _, err := o.counterpart.HoldInCall(ctx, c.ID, "duty@state.example", true); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("the counterpart holding the desk: %v", err)
	}
	v, err := o.duty.HoldInCall(ctx, c.ID, "counterpart@state.example", true)
	if err != nil || !heldOf(v, "counterpart@state.example") || v.State != "active" {
		t.Fatalf("hold: %+v, %v", v, err)
	}
	eventually(t, "nothing forwarded to or from the held counterpart", func() bool {
		return len(heardOn(pd)) == 0 && len(heardOn(pc)) == 0
	})
	if _, err := o.duty.HoldInCall(ctx, c.ID, "counterpart@state.example", true); !apierr.Is(err, apierr.Conflict) {
		t.Fatalf("holding twice: %v", err)
	}
	if v, err = o.duty.HoldInCall(ctx, c.ID, "counterpart@state.example", false); err != nil || heldOf(v, "counterpart@state.example") {
		t.Fatalf("resume: %+v, %v", v, err)
	}
	eventually(t, "the two hearing each other again", func() bool {
		return slices.Equal(heardOn(pd), []string{cpDev}) && slices.Equal(heardOn(pc), []string{dutyDev})
	})

	// Transfer to the principal: rung in, and the desk is gone.
	if v, err = o.duty.TransferCall(ctx, c.ID, "principal@state.example"); err != nil {
		t.Fatal(err)
	}
	pp.ringing(t, c.ID)
	if _, err := pp.line.Answer(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	princDev := o.principal.Profile().Device
	eventually(t, "the principal and the counterpart on the line", func() bool {
		return slices.Equal(heardOn(pp), []string{cpDev}) && slices.Equal(heardOn(pc), []string{princDev})
	})
	var holds []string
	eventually(t, "the hold in the log", func() bool {
		holds = holds[:0]
		for _, en := range logEntries(t, o.duty.Client) {
			if en.Type == tlog.TypeCallHold && en.Call == c.ID {
				holds = append(holds, en.Reason)
			}
		}
		return len(holds) == 2
	})
	if !slices.Equal(holds, []string{"hold", "resume"}) {
		t.Errorf("log %v", holds)
	}
}
