package core

import (
	"context"
	"errors"
	"math"
	"time"

	"hotline/internal/api"
)

// A line check's measurement of the media path (client.Prober) is the
// page's to make: it holds the warm media line, and its SFrame worker
// sends the probes and echoes (internal/voice/probe.go is the headless
// device's, and the reference for what goes on the wire). The core asks
// the page through the function it registered (SetProber) and reports
// what it answers, or why there is no answer.

// ProbeFunc measures the media path for a line check of conversation conv
// as ask says (the page's function). A device that cannot measure says
// why in the answer's Unsupported ("in_call": a call came first).
type ProbeFunc func(ctx context.Context, conv string, ask api.LineProbeAsk) (api.LineMedia, error)

// probeWait bounds how long the core waits for the page's measurement:
// the probes take a second, and a device listens on for at most five
// more; the server gives an end DefaultLineCheckTimeout (10 s) to report.
const probeWait = 8 * time.Second

// SetProber makes fn measure this device's media path when a line check
// asks (nil: nothing does; the device then reports "no_media_line").
func (k *Core) SetProber(fn ProbeFunc) {
	if fn == nil {
		k.c.SetProber(nil)
		return
	}
	k.c.SetProber(pageProber{fn: fn})
}

// pageProber is the client.Prober of a page.
type pageProber struct{ fn ProbeFunc }

// ProbeLine asks the page, for at most probeWait. A page that does not
// answer in time is "no_answer_from_page"; one whose function fails is
// "page_failed"; an answer that cannot be a measurement is "malformed"
// (the server would refuse the whole report for it).
func (p pageProber) ProbeLine(ctx context.Context, conv string, ask api.LineProbeAsk) api.LineMedia {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	m, err := p.fn(ctx, conv, ask)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return api.LineMedia{Unsupported: "no_answer_from_page"}
	case errors.Is(err, context.Canceled):
		return api.LineMedia{Unsupported: "cancelled"}
	case err != nil:
		return api.LineMedia{Unsupported: "page_failed"}
	case m.Unsupported != "":
		if len(m.Unsupported) > 64 {
			m.Unsupported = "page_failed"
		}
		return api.LineMedia{Unsupported: m.Unsupported}
	case !measurement(m):
		return api.LineMedia{Unsupported: "malformed"}
	}
	return m
}

// measurement reports whether m can be a measurement (what the server
// accepts).
func measurement(m api.LineMedia) bool {
	ok := func(f float64) bool { return f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }
	return m.Sent >= 0 && m.Echoes >= 0 && ok(m.RTTMs) && ok(m.RTTMaxMs) && ok(m.Loss) && m.Loss <= 1 && len(m.Worst) <= 64
}
