package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

func (w *requestWatch) readouts(t *testing.T, typ string) []api.Readout {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []api.Readout
	for _, p := range w.other[typ] {
		var r api.Readout
		if err := json.Unmarshal(p, &r); err != nil {
			t.Fatalf("%s payload: %v", typ, err)
		}
		out = append(out, r)
	}
	return out
}

// "Call me on my cell", done right: a principal whom the policy lets call
// a counterpart directly does; the desk is told at once; the call owes a
// readout within the configured time and, without one, is flagged to the
// desk and the principal once and logged; a late readout still files,
// marked late, and the desk reads it. A call among staff is not ad-hoc.
func TestAdHocCallReadout(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			const canary = "CANARY-readout-9e0f"
			o := newDeskOrg(t, b, func(c *server.Config) { c.DeskSweep = 20 * time.Millisecond; c.ReadoutWithin = time.Hour })
			ctx := t.Context()
			if err := o.admin.Do(ctx, "POST", "/v1/policy", api.AddRuleRequest{Rule: "user:principal@state.example -> user:counterpart@state.example : allow"}, nil); err != nil {
				t.Fatal(err)
			}
			dutyEvents := watchRequests(t, o.duty.Client)
			principalEvents := watchRequests(t, o.principal.Client)

			// Among staff: not ad-hoc.
			staff, err := o.principal.DirectConversation(ctx, "notes@state.example")
			if err != nil {
				t.Fatal(err)
			}
			c0, err := o.principal.PlaceCall(ctx, staff.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.principal.LeaveCall(ctx, c0.ID); err != nil {
				t.Fatal(err)
			}

			conv, err := o.principal.DirectConversation(ctx, "counterpart@state.example")
			if err != nil {
				t.Fatal(err)
			}
			call, err := o.principal.PlaceCall(ctx, conv.ID)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the desk told of the ad-hoc call", func() bool { return len(dutyEvents.readouts(t, "call.adhoc")) > 0 })
			r := dutyEvents.readouts(t, "call.adhoc")[0]
			if r.Call != call.ID || r.Principal != "principal@state.example" || !slices.Equal(r.Others, []string{"counterpart@state.example"}) ||
				r.Status != "due" || !r.Due.Equal(o.e.clock.Now().Add(time.Hour)) {
				t.Fatalf("ad-hoc event %+v", r)
			}
			if _, err := o.principal.LeaveCall(ctx, call.ID); err != nil {
				t.Fatal(err)
			}
			if rs, err := o.duty.Readouts(ctx); err != nil || len(rs) != 1 {
				t.Fatalf("the desk's readouts: %+v, %v (the staff call owes none)", rs, err)
			}
			if rs, err := o.counterpart.Readouts(ctx); err != nil || len(rs) != 0 {
				t.Fatalf("the counterpart's readouts: %+v, %v", rs, err)
			}

			// No readout within the hour: flagged once, to the desk and the principal.
			o.e.clock.Advance(time.Hour + time.Minute)
			eventually(t, "the missing readout at the desk", func() bool { return len(dutyEvents.readouts(t, "readout.missing")) > 0 })
			eventually(t, "the missing readout at the principal", func() bool { return len(principalEvents.readouts(t, "readout.missing")) > 0 })
			time.Sleep(100 * time.Millisecond)
			if n := len(dutyEvents.readouts(t, "readout.missing")); n != 1 {
				t.Fatalf("flagged %d times", n)
			}
			if _, err := o.counterpart.FileReadout(ctx, call.ID, "principal@state.example", "x"); err == nil {
				t.Fatal("the counterpart filed the readout")
			}
			text := "Readout " + canary + ": they will support the corridor if the vote passes."
			got, err := o.principal.FileReadout(ctx, call.ID, "principal@state.example", text)
			if err != nil || got.Status != "filed" || !got.Late || got.FiledBy != "principal@state.example" {
				t.Fatalf("filed: %+v, %v", got, err)
			}
			if _, err := o.principal.FileReadout(ctx, call.ID, "principal@state.example", text); !apierr.Is(err, apierr.Conflict) {
				t.Fatalf("filing twice: %v", err)
			}
			sync1(t, o.duty)
			rs, err := o.duty.Readouts(ctx)
			if err != nil || len(rs) != 1 || o.duty.ReadoutText(rs[0]) != text {
				t.Fatalf("the desk reads %+v, %v", rs, err)
			}

			// A readout filed in time is never flagged.
			call2, err := o.principal.PlaceCall(ctx, conv.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.principal.LeaveCall(ctx, call2.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := o.notes.FileReadout(ctx, call2.ID, "principal@state.example", "Second readout "+canary); err != nil {
				t.Fatal(err)
			}
			o.e.clock.Advance(2 * time.Hour)
			time.Sleep(100 * time.Millisecond)
			if n := len(dutyEvents.readouts(t, "readout.missing")); n != 1 {
				t.Fatalf("a readout filed in time was flagged (%d flags)", n)
			}

			var steps []string
			eventually(t, "the log", func() bool {
				steps = steps[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Call == call.ID && (en.Type == tlog.TypeCallAdHoc || en.Type == tlog.TypeReadoutMissing || en.Type == tlog.TypeReadoutFile) {
						steps = append(steps, en.Type)
					}
					if en.Call == c0.ID && en.Type == tlog.TypeCallAdHoc {
						t.Error("the staff call was logged as ad-hoc")
					}
				}
				return len(steps) == 3
			})
			if want := []string{tlog.TypeCallAdHoc, tlog.TypeReadoutMissing, tlog.TypeReadoutFile}; !slices.Equal(steps, want) {
				t.Errorf("log steps %v, want %v", steps, want)
			}
			o.e.noCanary(t, canary, "readouts")
		})
	}
}
