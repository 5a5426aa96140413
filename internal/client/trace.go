package client

import (
	"cmp"
	"context"
	"slices"

	"hotline/internal/desk"
	"hotline/internal/trace"
)

// Tracing is a leaked text traced against one memorandum's marked copies.
type Tracing struct {
	MemCon string `json:"memcon,omitempty"`
	// Conversation: the conversation whose granted records were traced
	// (a grant's tracing, from the archive; MemCon is then empty).
	Conversation string `json:"conversation,omitempty"`
	Subject      string `json:"subject"`
	trace.Result
}

// TraceLeak reads the marks in leaked, a copy of a distributed
// memorandum or an excerpt of one, against every memorandum whose
// marking key this device holds (its user drafted or approved it), and
// returns the tracings that read any marked place, the most telling
// first. None means leaked matches no marked copy this device can check.
func (c *Client) TraceLeak(ctx context.Context, leaked string) ([]Tracing, error) {
	if err := c.Sync(ctx); err != nil {
		return nil, err
	}
	all, err := c.MemCons(ctx)
	if err != nil {
		return nil, err
	}
	var out []Tracing
	for _, v := range all {
		if v.Status != "distributed" {
			continue
		}
		orig := c.findDoc(v.Conversation, desk.DocMemCon, v.ID, v.Drafter)
		marks := c.findDoc(v.Conversation, desk.DocMarks, v.ID, v.Drafter, v.Approver)
		if orig == nil || marks == nil {
			continue
		}
		r := trace.Trace(marks.Marks.Key, orig.MemCon.Summary, marks.Marks.Recipients, leaked)
		if r.Observed == 0 && r.Likely == "" {
			continue
		}
		out = append(out, Tracing{MemCon: v.ID, Subject: orig.MemCon.Subject, Result: r})
	}
	slices.SortStableFunc(out, func(a, b Tracing) int {
		return cmp.Or(cmp.Compare(b.Observed, a.Observed), cmp.Compare(topConfidence(b), topConfidence(a)))
	})
	return out, nil
}

func topConfidence(t Tracing) float64 {
	if len(t.Suspects) == 0 {
		return 0
	}
	return t.Suspects[0].Confidence
}
