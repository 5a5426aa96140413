package server_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hotline/internal/client"
	"hotline/internal/desk"
	"hotline/internal/trace/edit"
)

// corpusDoc reads a document of the leak-tracing evaluation corpus.
func corpusDoc(t *testing.T, i int) string {
	t.Helper()
	files, err := filepath.Glob("../trace/testdata/corpus/*.txt")
	if err != nil || len(files) <= i {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	b, err := os.ReadFile(files[i])
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A distributed MemCon's recipients each get a copy marked for them alone;
// a leaked copy, pasted whole or retyped and excerpted, names its
// recipient to the memorandum's approver, who holds the marking key;
// recipients cannot trace, and a text nobody received accuses nobody.
// The summary and the key never reach the server.
func TestMemConLeakTrace(t *testing.T) {
	o := newDeskOrg(t, "sqlite")
	ctx := t.Context()
	staff := []*member{o.principal}
	for _, name := range []string{"aide1", "aide2", "aide3", "aide4"} {
		c, _ := o.e.enroll(t, addUser(t, o.admin, name, "note-taker"), name)
		if err := c.EnsureKeyPackages(ctx, client.DefaultSuite); err != nil {
			t.Fatal(err)
		}
		m := &member{Client: c, name: name}
		c.OnUpdate(m.record)
		staff = append(staff, m)
	}
	summary := corpusDoc(t, 0)
	v := scheduledCall(t, o, "trade")
	now := o.e.clock.Now()
	m, err := o.notes.DraftMemCon(ctx, client.MemConDraft{Request: v.ID, Approver: "duty@state.example", Subject: "Safeguards call", HeldAt: now,
		Participants: []string{"principal@state.example", "counterpart@state.example"}, Summary: summary})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, o.duty)
	if _, err := o.duty.ApproveMemCon(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	to := []string{"notes@state.example"}
	for _, s := range staff {
		to = append(to, s.name+"@state.example")
	}
	if m, err = o.duty.DistributeMemCon(ctx, m.ID, to); err != nil {
		t.Fatal(err)
	}

	// Each recipient reads a copy of their own; the drafter, also on the
	// list, reads the original.
	copies := map[string]string{}
	seen := map[string]string{}
	for _, s := range staff {
		sync1(t, s)
		got, err := s.GetMemCon(ctx, m.ID)
		if err != nil || got.Doc == nil {
			t.Fatalf("%s's copy: %+v, %v", s.name, got.Doc, err)
		}
		c := got.Doc.Summary
		if c == summary || edit.Retype(c) == edit.Retype(summary) {
			t.Fatalf("%s's copy is not marked in its wording", s.name)
		}
		if len(edit.Paragraphs(c)) != len(edit.Paragraphs(summary)) {
			t.Fatalf("%s's copy has %d paragraphs, the original %d", s.name, len(edit.Paragraphs(c)), len(edit.Paragraphs(summary)))
		}
		if other, ok := seen[edit.Retype(c)]; ok {
			t.Fatalf("%s and %s got the same wording", s.name, other)
		}
		seen[edit.Retype(c)] = s.name
		copies[s.name+"@state.example"] = c
	}
	sync1(t, o.notes)
	if got, err := o.notes.GetMemCon(ctx, m.ID); err != nil || got.Doc == nil || got.Doc.Summary != summary {
		t.Fatalf("the drafter's original: %v", err)
	}

	// The approver traces: a whole pasted copy by its invisible tag; a
	// retyped three-paragraph excerpt by its wording.
	rng := rand.New(rand.NewPCG(7, 7))
	for who, c := range copies {
		ts, err := o.duty.TraceLeak(ctx, c)
		if err != nil || len(ts) == 0 {
			t.Fatalf("tracing %s's copy: %v, %v", who, ts, err)
		}
		if ts[0].MemCon != m.ID || ts[0].Accused != who || !ts[0].Suspects[0].Invisible {
			t.Errorf("%s's whole copy: %+v", who, ts[0])
		}
		leak := edit.Model{Paragraphs: 3}.Leak(c, rng)
		ts, err = o.duty.TraceLeak(ctx, leak)
		if err != nil || len(ts) == 0 {
			t.Fatalf("tracing an excerpt of %s's copy: %v, %v", who, ts, err)
		}
		if ts[0].Likely != who || ts[0].Suspects[0].Invisible {
			t.Errorf("%s's retyped excerpt: likely %q, %d of %d places read", who, ts[0].Likely, ts[0].Observed, ts[0].Slots)
		}
		t.Logf("%s: retyped excerpt, %d places read, confidence %.6f, accused %q", who, ts[0].Observed, ts[0].Suspects[0].Confidence, ts[0].Accused)
	}
	// The drafter holds the key too; a recipient does not.
	if ts, err := o.notes.TraceLeak(ctx, copies["principal@state.example"]); err != nil || len(ts) == 0 || ts[0].Accused != "principal@state.example" {
		t.Errorf("the drafter tracing: %+v, %v", ts, err)
	}
	if ts, err := o.principal.TraceLeak(ctx, copies["aide1@state.example"]); err != nil || len(ts) != 0 {
		t.Errorf("a recipient traced: %+v, %v", ts, err)
	}
	// A document nobody received, retyped and excerpted, accuses nobody.
	for i := 1; i < 6; i++ {
		ts, err := o.duty.TraceLeak(ctx, edit.Evaluation.Leak(corpusDoc(t, i), rng))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			if tr.Accused != "" {
				t.Errorf("document %d, nobody's copy, accuses %s", i, tr.Accused)
			}
		}
	}
	// The marks document carries the key to the draft's conversation only.
	if d := findMarks(t, o.duty.Client, m.Conversation, m.ID); d == nil || len(d.Recipients) != len(staff) {
		t.Fatalf("marks in the draft's conversation: %+v", d)
	}
	o.e.noCanary(t, edit.Paragraphs(summary)[1][20:60], "memcons")
}

func findMarks(t *testing.T, c *client.Client, conv, id string) *desk.Marks {
	t.Helper()
	ms, err := c.Messages(conv)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range ms {
		if msg.Kind != "desk" {
			continue
		}
		if d, err := desk.ParseDoc(msg.Data); err == nil && d.Type == desk.DocMarks && d.Marks.MemCon == id {
			return d.Marks
		}
	}
	return nil
}
