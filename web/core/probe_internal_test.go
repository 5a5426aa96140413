package core

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"hotline/internal/api"
)

// The core reports what the page measured, and in place of what the page
// could not give (no answer in time, a failure, a malformed answer) a
// reason: never a report the server would refuse.
func TestPageProber(t *testing.T) {
	good := api.LineMedia{Sent: 50, Echoes: 50, RTTMs: 3.2, RTTMaxMs: 9.8, Loss: 0.02, Worst: "dev1"}
	answer := func(m api.LineMedia, err error) ProbeFunc {
		return func(context.Context, string, api.LineProbeAsk) (api.LineMedia, error) { return m, err }
	}
	blocks := func(ctx context.Context, _ string, _ api.LineProbeAsk) (api.LineMedia, error) {
		<-ctx.Done()
		return api.LineMedia{}, ctx.Err()
	}
	for _, tc := range []struct {
		name    string
		fn      ProbeFunc
		timeout time.Duration // of the caller's context (0: none)
		want    api.LineMedia
	}{
		{"measured", answer(good, nil), 0, good},
		{"in a call", answer(api.LineMedia{Unsupported: "in_call", Sent: 3}, nil), 0, api.LineMedia{Unsupported: "in_call"}},
		{"no answer", blocks, 20 * time.Millisecond, api.LineMedia{Unsupported: "no_answer_from_page"}},
		{"page fails", answer(api.LineMedia{}, errors.New("TypeError: x is undefined")), 0, api.LineMedia{Unsupported: "page_failed"}},
		{"negative", answer(api.LineMedia{Sent: -1}, nil), 0, api.LineMedia{Unsupported: "malformed"}},
		{"NaN", answer(api.LineMedia{Sent: 50, RTTMs: math.NaN()}, nil), 0, api.LineMedia{Unsupported: "malformed"}},
		{"loss over 1", answer(api.LineMedia{Sent: 50, Loss: 1.5}, nil), 0, api.LineMedia{Unsupported: "malformed"}},
		{"long reason", answer(api.LineMedia{Unsupported: string(make([]byte, 65))}, nil), 0, api.LineMedia{Unsupported: "page_failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			got := pageProber{fn: tc.fn}.ProbeLine(ctx, "conv", api.LineProbeAsk{Count: 50, IntervalMs: 20, Peers: []string{"dev1"}})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ProbeLine (-want +got):\n%s", diff)
			}
		})
	}
}
