package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"hotline/internal/archive"
	"hotline/internal/client"
	"hotline/internal/trace"
)

// maxLeak bounds the text hotline trace reads: a memorandum's summary is
// at most 48 KiB, and a leak is a copy of one or part of one.
const maxLeak = 1 << 20

// cmdTrace names the recipient whose marked copy of a memorandum a leaked
// text came from.
func cmdTrace(e *cmdEnv, args []string) error {
	fs := newFlags(e, "trace", "trace FILE --profile DIR [--json]   (FILE: a leaked copy or excerpt; - reads standard input)\n   or: hotline trace FILE --store DIR --identity FILE [--profile DIR] [--json]   (the records officer, from the archive; with a profile, granted copies too)")
	profile := profileFlag(fs)
	store := fs.String("store", "", "trace against the memoranda in the archive's `store` (with --identity) instead of this device's")
	idFile := fs.String("identity", "", "the private records key, with --store")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	var r io.Reader = e.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxLeak+1))
	if err != nil {
		return err
	}
	if len(b) > maxLeak {
		return usagef("%s is over %d bytes: trace a copy or an excerpt of one memorandum", pos[0], maxLeak)
	}
	if !utf8.Valid(b) {
		return usagef("%s is not UTF-8 text", pos[0])
	}
	var ts []client.Tracing
	if *store != "" {
		if err := required(fs, "identity"); err != nil {
			return err
		}
		s, id, err := openStoreKey(*store, *idFile)
		if err != nil {
			return err
		}
		if ts, err = s.TraceLeak(id, string(b)); err != nil {
			return err
		}
		// The granted copies: the grants are the server's to list, so
		// the records officer's device is needed for them.
		if *profile != "" {
			c, err := openProfile(*profile)
			if err != nil {
				return err
			}
			gs, err := c.Grants(e.ctx)
			if err != nil {
				return fmt.Errorf("the grants, to trace granted copies: %w", err)
			}
			var granted []archive.Granted
			for _, g := range gs {
				granted = append(granted, archive.Granted{ID: g.ID, Grantee: g.Grantee, Conversation: g.Conversation})
			}
			more, err := s.TraceGrants(id, granted, string(b))
			if err != nil {
				return err
			}
			ts = append(ts, more...)
			slices.SortStableFunc(ts, func(a, b client.Tracing) int { return cmp.Compare(b.Observed, a.Observed) })
		}
	} else {
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		if ts, err = c.TraceLeak(e.ctx, string(b)); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(e.stdout, ts)
	}
	if len(ts) == 0 {
		fmt.Fprintln(e.stdout, "no marked place of any memorandum this device (or store) can trace is in the text (a device traces the memoranda its user drafted or approved; the records key, those the archive holds, and with a profile the granted copies)")
		return nil
	}
	t := ts[0]
	if t.MemCon != "" {
		fmt.Fprintf(e.stdout, "memcon %s (%s): read %d of its %d marked places\n", short(t.MemCon), t.Subject, t.Observed, t.Slots)
	} else {
		fmt.Fprintf(e.stdout, "%s: read %d of their %d marked places\n", t.Subject, t.Observed, t.Slots)
	}
	switch {
	case t.Accused != "":
		fmt.Fprintf(e.stdout, "the copy of %s, confidence %s (at least %.3f: accused)\n", t.Accused, confidence(t.Suspects[0].Confidence), trace.AccuseAt)
	case t.Likely != "":
		fmt.Fprintf(e.stdout, "most likely the copy of %s, confidence %s (under %.3f: not enough to accuse; a longer excerpt may tell)\n", t.Likely, confidence(t.Suspects[0].Confidence), trace.AccuseAt)
	default:
		fmt.Fprintln(e.stdout, "no recipient's copy matches better than another's")
	}
	for _, s := range t.Suspects {
		inv := ""
		if s.Invisible {
			inv = ", invisible tag found"
		}
		fmt.Fprintf(e.stdout, "  %-32s %d of %d places match, confidence %s%s\n", s.Recipient, s.Matches, s.Observed, confidence(s.Confidence), inv)
	}
	if len(ts) > 1 {
		fmt.Fprintf(e.stdout, "%d other memoranda share some marked places with the text (--json lists them)\n", len(ts)-1)
	}
	return nil
}

// confidence prints a probability near 1 cut (not rounded) after its
// first digit that is not a 9: 0.42, 0.9993, 0.999996; past twelve 9s,
// "> 0.999999999999".
func confidence(p float64) string {
	for d := 2; d <= 12; d++ {
		scale := math.Pow(10, float64(d))
		s := fmt.Sprintf("%.*f", d, math.Floor(p*scale)/scale)
		if !strings.HasSuffix(s, "9") {
			return s
		}
	}
	return "> 0.999999999999"
}
