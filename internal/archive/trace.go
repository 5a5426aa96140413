package archive

import (
	"cmp"
	"slices"

	"filippo.io/age"

	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/trace"
)

// TraceLeak is hotline trace for the records officer: it reads, with the
// records key, every memorandum whose marking key the archive sealed (the
// key goes to the draft's conversation, which is on the record where the
// organisation requires its archive) and traces leaked against each, as
// client.TraceLeak does on the drafter's or approver's device. The most
// telling tracing comes first; none means no marked copy the store holds
// matches.
func (s *Store) TraceLeak(id age.Identity, leaked string) ([]client.Tracing, error) {
	cs, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []client.Tracing
	for _, c := range cs {
		recs, err := s.ReadConversation(id, c.ID)
		if err != nil {
			return nil, err
		}
		// In the draft's conversation: the drafter's original (a revision
		// replaces it), then the marking key sent on distribution. Each
		// recipient's marked copy is in a conversation of its own, with no
		// key beside it.
		originals := map[string]*desk.MemCon{}
		for _, r := range recs {
			if r.Kind != "desk" {
				continue
			}
			d, err := desk.ParseDoc(r.Data)
			if err != nil {
				continue
			}
			switch {
			case d.Type == desk.DocMemCon && d.MemCon != nil:
				originals[d.MemCon.ID] = d.MemCon // the latest before the marks
			case d.Type == desk.DocMarks && d.Marks != nil:
				orig := originals[d.Marks.MemCon]
				if orig == nil {
					continue
				}
				t := trace.Trace(d.Marks.Key, orig.Summary, d.Marks.Recipients, leaked)
				if t.Observed == 0 && t.Likely == "" {
					continue
				}
				out = append(out, client.Tracing{MemCon: orig.ID, Subject: orig.Subject, Result: t})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b client.Tracing) int {
		return cmp.Or(cmp.Compare(b.Observed, a.Observed), cmp.Compare(top(b), top(a)))
	})
	return out, nil
}

func top(t client.Tracing) float64 {
	if len(t.Suspects) == 0 {
		return 0
	}
	return t.Suspects[0].Confidence
}
