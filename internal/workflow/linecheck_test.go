package workflow

import (
	"math"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
)

// An end's media measurement is judged against the service's thresholds;
// a report whose figures cannot be a measurement is refused.
func TestMediaProbe(t *testing.T) {
	s := New(Config{LineLossMax: 0.05, LineRTTMax: 300 * time.Millisecond})
	for _, c := range []struct {
		m    *api.LineMedia
		want string // red reason, "" for green
	}{
		{&api.LineMedia{Sent: 50, Echoes: 50, RTTMs: 12, Loss: 0}, ""},
		{&api.LineMedia{Sent: 50, Echoes: 48, RTTMs: 12, Loss: 0.04}, ""},
		{&api.LineMedia{Sent: 50, Echoes: 40, RTTMs: 12, Loss: 0.06}, "packet_loss"},
		{&api.LineMedia{Sent: 50, Echoes: 50, RTTMs: 301, Loss: 0}, "high_rtt"},
		{&api.LineMedia{Sent: 50, Echoes: 0, Loss: 1}, "no_media"},
		{&api.LineMedia{Sent: 50, Echoes: 0, Loss: 0}, "no_echo"},
		{&api.LineMedia{Unsupported: "in_call"}, "in_call"},
		{&api.LineMedia{Unsupported: "no_media_line"}, "unmeasured"},
		{nil, "unmeasured"},
	} {
		p := s.mediaProbe(c.m)
		if (c.want == "") != (p.Status == LineGreen) || p.Reason != c.want {
			t.Errorf("%+v: %+v, want %q", c.m, p, c.want)
		}
	}
	for _, m := range []api.LineMedia{
		{Loss: 1.5}, {Loss: -0.1}, {RTTMs: -1}, {RTTMs: math.Inf(1)}, {RTTMaxMs: math.NaN()}, {Sent: -1}, {Echoes: -3},
		{Unsupported: string(make([]byte, 65))},
	} {
		if err := checkMedia(&m); !apierr.Is(err, apierr.BadRequest) {
			t.Errorf("%+v: %v, want bad_request", m, err)
		}
	}
	if err := checkMedia(&api.LineMedia{Sent: 50, Echoes: 50, RTTMs: 1, RTTMaxMs: 2, Loss: 0.5, Worst: "abc"}); err != nil {
		t.Errorf("a measurement refused: %v", err)
	}
}
