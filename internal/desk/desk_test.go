package desk

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time-zone database here:", err) // Debian's tzdata is on every machine the project runs on
	}
	for in, want := range map[string]string{
		"2026-12-04 14:00/15:30":                         "2026-12-04T13:00:00Z 2026-12-04T14:30:00Z",
		"2026-12-04T14:00/+45m":                          "2026-12-04T13:00:00Z 2026-12-04T13:45:00Z",
		"2026-12-04 23:00/2026-12-05 01:00":              "2026-12-04T22:00:00Z 2026-12-05T00:00:00Z",
		"2026-12-04T14:00:00Z/2026-12-04T15:00:00Z":      "2026-12-04T14:00:00Z 2026-12-04T15:00:00Z",
		"2026-12-04T14:00:00+05:00/16:00":                "2026-12-04T09:00:00Z 2026-12-04T11:00:00Z",
		" 2026-07-01 09:00 / 10:00 ":                     "2026-07-01T07:00:00Z 2026-07-01T08:00:00Z", // summer time
		"2026-03-29 01:30/+2h":                           "2026-03-29T00:30:00Z 2026-03-29T02:30:00Z", // across the change
		"2026-12-04T14:00:00-03:00/2026-12-04T18:00:00Z": "2026-12-04T17:00:00Z 2026-12-04T18:00:00Z",
	} {
		w, err := ParseWindow(in, paris)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := w.Start.Format(time.RFC3339) + " " + w.End.Format(time.RFC3339); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "2026-12-04 14:00", "2026-12-04 14:00/13:00", "2026-12-04 14:00/+0s", "2026-12-04 14:00/+-5m",
		"tomorrow/15:00", "2026-12-04 14:00/25:00", "2026-13-04 14:00/15:00"} {
		if _, err := ParseWindow(in, paris); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want ErrMalformed", in, err)
		}
	}
}

func TestCheckWindows(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return now.Add(time.Duration(n) * time.Hour) }
	if err := CheckWindows([]Window{{h(-1), h(1)}, {h(24), h(26)}}, now); err != nil {
		t.Fatalf("good windows: %v", err)
	}
	many := make([]Window, MaxWindows+1)
	for i := range many {
		many[i] = Window{h(i + 1), h(i + 2)}
	}
	for name, ws := range map[string][]Window{
		"none":         nil,
		"too many":     many,
		"no end":       {{Start: h(1)}},
		"backwards":    {{h(2), h(1)}},
		"empty":        {{h(1), h(1)}},
		"past":         {{h(-3), h(-1)}},
		"ends now":     {{h(-1), now}},
		"too long":     {{h(1), h(1).Add(MaxWindowSpan + time.Second)}},
		"too far away": {{now.Add(MaxAhead + time.Hour), now.Add(MaxAhead + 2*time.Hour)}},
	} {
		if err := CheckWindows(ws, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if !Within([]Window{{h(1), h(2)}}, h(1), time.Hour) || Within([]Window{{h(1), h(2)}}, h(1).Add(time.Minute), time.Hour) {
		t.Error("Within")
	}
	for name, c := range map[string]struct {
		at time.Time
		d  time.Duration
	}{"zero": {time.Time{}, time.Hour}, "no duration": {h(1), 0}, "too long": {h(1), MaxDuration + time.Minute},
		"over": {h(-2), time.Hour}, "far": {now.Add(MaxAhead + time.Hour), time.Hour}} {
		if err := CheckSchedule(c.at, c.d, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("schedule %s: %v", name, err)
		}
	}
	if err := CheckSchedule(h(-1).Add(time.Minute), time.Hour, now); err != nil {
		t.Errorf("a call under way may be scheduled: %v", err)
	}
}

func TestUrgencyAndZone(t *testing.T) {
	if u, err := ParseUrgency(" Flash "); err != nil || u != Flash || u.Rank() != 2 || Routine.Rank() != 0 {
		t.Fatalf("ParseUrgency: %v %v", u, err)
	}
	if _, err := ParseUrgency("urgent"); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	for _, z := range []string{"UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"} {
		if err := CheckZone(z); err != nil {
			t.Errorf("%s: %v", z, err)
		}
	}
	for _, z := range []string{"", "Paris; DROP", "Europe/Par is", strings.Repeat("A", 65), "Éurope/Paris"} {
		if err := CheckZone(z); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", z, err)
		}
	}
}

func TestDocs(t *testing.T) {
	good := []Doc{
		{Type: DocRequest, Request: "0a1b", Purpose: "the vote"},
		{Type: DocReason, Request: "0a1b", Reason: "travelling"},
		{Type: DocBriefing, Request: "0a1b", Briefing: &Briefing{Version: 1, TalkingPoints: []string{"thanks"},
			Questions: []QA{{Question: "veto?", Answer: "undecided"}}, Background: "<b>&</b>"}},
		{Type: DocMemCon, Request: "0a1b", MemCon: memcon()},
		{Type: DocReadout, Call: "0c0ffee0", Readout: "We agreed to talk again on Friday."},
		{Type: DocPing, Hotline: "0a", Nonce: "0b"},
		{Type: DocPong, Hotline: "0a", Nonce: "0b"},
		{Type: DocMarks, Request: "0a1b", Marks: marks()},
	}
	for _, d := range good {
		b, err := d.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", d.Type, err)
		}
		got, err := ParseDoc(b)
		if err != nil {
			t.Fatalf("%s: %v", d.Type, err)
		}
		again, _ := got.Marshal()
		if string(again) != string(b) {
			t.Fatalf("%s: round trip %s != %s", d.Type, again, b)
		}
	}
	long := strings.Repeat("x", MaxPurpose+1)
	for name, d := range map[string]Doc{
		"no request":         {Type: DocRequest, Purpose: "p"},
		"request not hex":    {Type: DocRequest, Request: "R1", Purpose: "p"},
		"unknown type":       {Type: "memo", Request: "01"},
		"empty purpose":      {Type: DocRequest, Request: "01", Purpose: "  "},
		"purpose too long":   {Type: DocRequest, Request: "01", Purpose: long},
		"purpose and reason": {Type: DocRequest, Request: "01", Purpose: "p", Reason: "r"},
		"empty reason":       {Type: DocReason, Request: "01"},
		"bad UTF-8":          {Type: DocReason, Request: "01", Reason: "\xff"},
		"no briefing":        {Type: DocBriefing, Request: "01"},
		"briefing version 0": {Type: DocBriefing, Request: "01", Briefing: &Briefing{TalkingPoints: []string{"a"}}},
		"empty briefing":     {Type: DocBriefing, Request: "01", Briefing: &Briefing{Version: 1}},
		"empty point":        {Type: DocBriefing, Request: "01", Briefing: &Briefing{Version: 1, TalkingPoints: []string{""}}},
		"empty question":     {Type: DocBriefing, Request: "01", Briefing: &Briefing{Version: 1, Questions: []QA{{Answer: "a"}}}},
		"too many points":    {Type: DocBriefing, Request: "01", Briefing: &Briefing{Version: 1, TalkingPoints: make([]string, MaxPoints+1)}},
		"too big": {Type: DocBriefing, Request: "01", Briefing: &Briefing{Version: 1, Background: strings.Repeat("y", MaxBackground),
			TalkingPoints: []string{strings.Repeat("z", MaxPoint), strings.Repeat("z", MaxPoint), strings.Repeat("z", MaxPoint)},
			Questions:     fill(MaxQuestions)}},
		"readout without call":     {Type: DocReadout, Readout: "r"},
		"readout without text":     {Type: DocReadout, Call: "0c"},
		"readout naming a request": {Type: DocReadout, Call: "0c", Request: "0d", Readout: "r"},
		"reason naming a call":     {Type: DocReason, Request: "01", Call: "0c", Reason: "r"},
		"memcon on a reason":       {Type: DocReason, Request: "01", Reason: "r", MemCon: memcon()},
		"memcon missing":           {Type: DocMemCon, Request: "01"},
		"memcon without ID":        {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.ID = "" })},
		"memcon no summary":        {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.Summary = " " })},
		"memcon no time":           {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.HeldAt = time.Time{} })},
		"memcon nobody":            {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.Participants = nil })},
		"commitment no ID":         {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.Commitments[0].ID = "x" })},
		"commitment no text":       {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.Commitments[0].Text = "" })},
		"commitment no due":        {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) { m.Commitments[0].Due = time.Time{} })},
		"marks missing":            {Type: DocMarks, Request: "01"},
		"marks on a memcon":        {Type: DocMemCon, Request: "01", MemCon: memcon(), Marks: marks()},
		"marks without memcon":     {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) { m.MemCon = "" })},
		"marks short key":          {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) { m.Key = m.Key[:16] })},
		"marks nobody":             {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) { m.Recipients = nil })},
		"marks recipient twice":    {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) { m.Recipients = []string{"a", "a"} })},
		"marks empty recipient":    {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) { m.Recipients = []string{" "} })},
		"marks with a purpose":     {Type: DocMarks, Request: "01", Purpose: "p", Marks: marks()},
		"marks too many": {Type: DocMarks, Request: "01", Marks: withMarks(func(m *Marks) {
			for i := range MaxRecipients {
				m.Recipients = append(m.Recipients, fmt.Sprint("u", i))
			}
		})},
		"too many commitments": {Type: DocMemCon, Request: "01", MemCon: with(func(m *MemCon) {
			m.Commitments = make([]Commitment, MaxCommitments+1)
		})},
	} {
		if _, err := d.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for name, in := range map[string]string{
		"unknown field": `{"type":"reason","request":"01","reason":"r","secret":1}`,
		"trailing":      `{"type":"reason","request":"01","reason":"r"} {}`,
		"not JSON":      `reason`,
		"wrong type":    `{"type":"reason","request":1}`,
		"oversized":     `{"type":"reason","request":"01","reason":"` + strings.Repeat("r", MaxDoc) + `"}`,
	} {
		if _, err := ParseDoc([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func memcon() *MemCon {
	return &MemCon{ID: "0c", Subject: "Call", HeldAt: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC), Participants: []string{"a@o.example"},
		Summary: "talked", Commitments: []Commitment{{ID: "0d", Owner: "a@o.example", Due: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Text: "send it"}}}
}

func marks() *Marks {
	return &Marks{MemCon: "0c", Key: make([]byte, MarkKeySize), Recipients: []string{"a@o.example", "b@o.example"}}
}

func withMarks(f func(*Marks)) *Marks {
	m := marks()
	f(m)
	return m
}

func with(f func(*MemCon)) *MemCon {
	m := memcon()
	f(m)
	return m
}

func fill(n int) []QA {
	qs := make([]QA, n)
	for i := range qs {
		qs[i] = QA{Question: strings.Repeat("q", MaxPoint), Answer: strings.Repeat("a", MaxPoint)}
	}
	return qs
}

// FuzzParseDoc: whatever the bytes, ParseDoc returns a valid document that
// re-encodes to a form it parses to the same thing, or ErrMalformed.
func FuzzParseDoc(f *testing.F) {
	f.Add([]byte(`{"type":"request","request":"0a","purpose":"p"}`))
	f.Add([]byte(`{"type":"briefing","request":"0a","briefing":{"version":2,"questions":[{"question":"q","answer":""}]}}`))
	f.Add([]byte(`{"type":"reason","request":"0a","reason":"\u00e9"}`))
	f.Add([]byte(`{"type":"memcon","request":"0a","memcon":{"id":"0c","subject":"s","held_at":"2026-12-03T14:00:00Z","participants":["a"],"summary":"x","commitments":[{"id":"0d","owner":"a","due":"2026-12-05T00:00:00Z","text":"t"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDoc(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := d.Marshal()
		if err != nil {
			t.Fatalf("a parsed document does not encode: %v", err)
		}
		d2, err := ParseDoc(enc)
		if err != nil {
			t.Fatalf("re-encoded document does not parse: %v", err)
		}
		if enc2, _ := d2.Marshal(); string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable: %s then %s", enc, enc2)
		}
	})
}

// FuzzParseWindow: a parsed window always starts before it ends, in UTC.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"2026-12-04 14:00/15:30", "2026-12-04T14:00/+45m", "2026-12-04T14:00:00Z/2026-12-05T14:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s, time.UTC)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !w.Start.Before(w.End) || w.Start.Location() != time.UTC || w.End.Location() != time.UTC {
			t.Fatalf("%q parsed to %v", s, w)
		}
	})
}
