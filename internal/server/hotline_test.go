package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

// keep runs a device's end of its hotlines until the returned stop is
// called (its process dying, as far as the line can tell).
func keep(t *testing.T, m *member) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.KeepHotlines(ctx, func(ev client.HotlineEvent) {
			if ev.Kind == "error" && ctx.Err() == nil {
				t.Logf("%s: %v", m.name, ev.Err)
			}
		})
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func hotlineStatus(t *testing.T, c *member, id string) api.Hotline {
	t.Helper()
	v, err := c.GetHotline(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A hotline between two devices turns green once its far end answers the
// first test; when the far end stops answering, it turns red exactly one
// interval after the last answered test, the desk is told and the log says
// so; when the far end is back, the next test turns it green again. The
// history keeps every test.
func TestHotlineHealth(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			o := newDeskOrg(t, b, func(c *server.Config) { c.DeskSweep = 20 * time.Millisecond })
			ctx := t.Context()
			dutyEvents := watchRequests(t, o.duty.Client)
			if _, err := o.principal.CreateHotline(ctx, "notes@state.example", "", time.Second); !apierr.Is(err, apierr.BadRequest) {
				t.Fatalf("a 1 s interval: %v", err)
			}
			h, err := o.principal.CreateHotline(ctx, "notes@state.example", "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != "unknown" || h.Interval != 3600 || h.Timeout != 30 {
				t.Fatalf("new hotline %+v", h)
			}
			sync1(t, o.notes)
			keep(t, o.principal)
			stopFar := keep(t, o.notes)
			eventually(t, "green", func() bool { return hotlineStatus(t, o.duty, h.ID).Status == "green" })

			// The far end dies. The next test goes out at interval less
			// timeout after the last; it times out at one interval.
			stopFar()
			o.e.clock.Advance(time.Hour - 30*time.Second)
			time.Sleep(200 * time.Millisecond) // the test is asked for, and goes unanswered
			if st := hotlineStatus(t, o.duty, h.ID).Status; st != "green" {
				t.Fatalf("red before the interval was up: %s", st)
			}
			o.e.clock.Advance(30 * time.Second)
			eventually(t, "red", func() bool { return hotlineStatus(t, o.duty, h.ID).Status == "red" })
			eventually(t, "the desk alerted", func() bool {
				dutyEvents.mu.Lock()
				defer dutyEvents.mu.Unlock()
				for _, p := range dutyEvents.other["hotline.status"] {
					var v api.Hotline
					if json.Unmarshal(p, &v) == nil && v.Status == "red" {
						return true
					}
				}
				return false
			})

			// Back: the next test (issued interval less timeout after the
			// last) turns it green.
			keep(t, o.notes)
			o.e.clock.Advance(time.Hour - 30*time.Second)
			eventually(t, "green again", func() bool { return hotlineStatus(t, o.duty, h.ID).Status == "green" })
			v := hotlineStatus(t, o.principal, h.ID)
			var results []string
			for _, x := range v.Tests {
				results = append(results, x.Result)
			}
			if !slices.Equal(results, []string{"ok", "timeout", "ok"}) || v.Tests[0].LatencyMs <= 0 {
				t.Fatalf("history %+v", v.Tests)
			}
			if _, err := o.counterpart.GetHotline(ctx, h.ID); !apierr.Is(err, apierr.NotFound) {
				t.Fatalf("a stranger reading the line: %v", err)
			}
			if err := o.notes.Do(ctx, "POST", "/v1/hotlines/"+h.ID+"/tests", api.HotlineReport{Nonce: "00", LatencyUs: 5}, nil); !apierr.Is(err, apierr.Forbidden) {
				t.Fatalf("the far end reporting: %v", err)
			}
			var steps []string
			eventually(t, "the log", func() bool {
				steps = steps[:0]
				for _, en := range logEntries(t, o.duty.Client) {
					if en.Item == h.ID {
						steps = append(steps, en.Type)
					}
				}
				return len(steps) == 4
			})
			if want := []string{tlog.TypeHotlineCreate, tlog.TypeHotlineGreen, tlog.TypeHotlineRed, tlog.TypeHotlineGreen}; !slices.Equal(steps, want) {
				t.Errorf("log %v, want %v", steps, want)
			}
		})
	}
}
