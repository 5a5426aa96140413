// Package desk is the duty desk's vocabulary, shared by server and clients:
// call requests' urgencies, statuses and proposed windows, which are
// metadata the server acts on, and the documents that travel only inside
// MLS groups (conversation.KindDesk): a request's purpose, the reason for a
// decision, a briefing. It does no I/O and builds for WebAssembly.
package desk

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every validation error here.
var ErrMalformed = errors.New("malformed")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Urgency is how soon a requested call must happen.
type Urgency string

// The urgencies, least urgent first.
const (
	Routine  Urgency = "routine"
	Priority Urgency = "priority"
	Flash    Urgency = "flash" // now: the desk is alerted at once
)

// Urgencies lists the urgencies, least urgent first.
var Urgencies = []Urgency{Routine, Priority, Flash}

// ParseUrgency parses an urgency name.
func ParseUrgency(s string) (Urgency, error) {
	u := Urgency(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Urgencies, u) {
		return "", bad("urgency %.40q: want routine, priority or flash", s)
	}
	return u, nil
}

// Rank orders urgencies: routine 0, priority 1, flash 2 (-1 if unknown).
func (u Urgency) Rank() int { return slices.Index(Urgencies, u) }

// Call-request statuses.
const (
	StatusPending   = "pending"   // awaiting the duty desk
	StatusProposed  = "proposed"  // the desk proposed other windows; awaiting the requester
	StatusScheduled = "scheduled" // approved for a time
	StatusDeclined  = "declined"
	StatusWithdrawn = "withdrawn"
)

// Limits on what a request may ask for.
const (
	MaxWindows      = 8
	MaxWindowSpan   = 7 * 24 * time.Hour
	MaxAhead        = 400 * 24 * time.Hour // how far ahead a window or a schedule may lie
	DefaultDuration = 30 * time.Minute
	MaxDuration     = 8 * time.Hour
	maxZone         = 64
)

// Window is a span of time in which a call could take place.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// CheckWindows validates proposed windows at time now: one to MaxWindows,
// each starting before it ends, spanning at most MaxWindowSpan, ending in
// the future and starting within MaxAhead.
func CheckWindows(ws []Window, now time.Time) error {
	if len(ws) == 0 || len(ws) > MaxWindows {
		return bad("propose 1 to %d windows, not %d", MaxWindows, len(ws))
	}
	for i, w := range ws {
		switch {
		case w.Start.IsZero() || w.End.IsZero():
			return bad("window %d lacks a start or an end", i+1)
		case !w.Start.Before(w.End):
			return bad("window %d ends before it starts", i+1)
		case w.End.Sub(w.Start) > MaxWindowSpan:
			return bad("window %d spans more than %s", i+1, MaxWindowSpan)
		case !w.End.After(now):
			return bad("window %d is in the past", i+1)
		case w.Start.Sub(now) > MaxAhead:
			return bad("window %d starts more than %d days ahead", i+1, int(MaxAhead.Hours()/24))
		}
	}
	return nil
}

// CheckSchedule validates a scheduled start and duration at time now.
func CheckSchedule(at time.Time, d time.Duration, now time.Time) error {
	switch {
	case at.IsZero():
		return bad("no time to schedule the call at")
	case d <= 0 || d > MaxDuration:
		return bad("a call lasts from a minute to %s, not %s", MaxDuration, d)
	case !at.Add(d).After(now):
		return bad("the call would be over before now")
	case at.Sub(now) > MaxAhead:
		return bad("the call is more than %d days ahead", int(MaxAhead.Hours()/24))
	}
	return nil
}

// Within reports whether a call at at lasting d fits inside one of ws.
func Within(ws []Window, at time.Time, d time.Duration) bool {
	for _, w := range ws {
		if !at.Before(w.Start) && !at.Add(d).After(w.End) {
			return true
		}
	}
	return false
}

// CheckZone checks that s looks like an IANA time-zone name ("UTC",
// "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"). The
// server only keeps it for display; clients load it.
func CheckZone(s string) error {
	if s == "" || len(s) > maxZone {
		return bad("time zone %.40q: want an IANA name such as Europe/Paris", s)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/_+-", c) >= 0) {
			return bad("time zone %.40q: want an IANA name such as Europe/Paris", s)
		}
	}
	return nil
}

// ParseWindow parses a window as the CLI takes it, in loc unless a time
// says otherwise: "START/END" where START is "2006-01-02 15:04" or RFC 3339
// and END is a time of day ("16:00", the same day as START), a full time
// in either form, or a duration ("+45m").
func ParseWindow(s string, loc *time.Location) (Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Window{}, bad("window %.60q: want START/END, such as \"2026-12-04 14:00/15:30\"", s)
	}
	start, err := ParseTime(a, loc)
	if err != nil {
		return Window{}, err
	}
	b = strings.TrimSpace(b)
	var end time.Time
	if d, ok := strings.CutPrefix(b, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return Window{}, bad("window %.60q: %q is not a positive duration", s, b)
		}
		end = start.Add(dur)
	} else if t, err := time.ParseInLocation("15:04", b, start.Location()); err == nil {
		end = time.Date(start.Year(), start.Month(), start.Day(), t.Hour(), t.Minute(), 0, 0, start.Location())
	} else if end, err = ParseTime(b, loc); err != nil {
		return Window{}, err
	}
	if !start.Before(end) {
		return Window{}, bad("window %.60q ends before it starts", s)
	}
	return Window{Start: start.UTC(), End: end.UTC()}, nil
}

// ParseTime parses "2006-01-02 15:04" in loc, or RFC 3339.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, bad("time %.40q: want \"2006-01-02 15:04\" (local) or RFC 3339", s)
}

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return bad("%s is not UTF-8", field)
	}
	if len(s) > max {
		return bad("%s has %d bytes, limit %d", field, len(s), max)
	}
	return nil
}
