package server_test

import (
	"path/filepath"
	"testing"

	"hotline/internal/archive"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/trace/edit"
)

// Where the organisation requires its archive, the draft's conversation is
// on the record, so the archive seals the memorandum's original and its
// marking key: the records officer, holding only the records key, traces a
// leaked retyped excerpt of a recipient's copy to that recipient.
func TestArchiveTracesLeak(t *testing.T) {
	o := newDeskOrg(t, "sqlite")
	ctx := t.Context()
	arch := newMember(t, o.e, o.admin, "archive", "archive")
	d, err := datadir.Open(o.e.dir)
	if err != nil {
		t.Fatal(err)
	}
	d.Config.RequireArchive = true
	writeJSON(t, filepath.Join(o.e.dir, "config.json"), d.Config)
	o.e.restart(t)

	s, _, id := newRecords(t)
	runOnce := func() {
		t.Helper()
		if err := archive.RunOnce(ctx, arch.Client, s, func(ev archive.Event) {
			if ev.Kind == "problem" {
				t.Errorf("archive problem: %v", ev.Err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	runOnce()

	summary := corpusDoc(t, 3)
	v := scheduledCall(t, o, "trade")
	m, err := o.notes.DraftMemCon(ctx, client.MemConDraft{Request: v.ID, Approver: "duty@state.example", Subject: "Archived call", HeldAt: o.e.clock.Now(),
		Participants: []string{"principal@state.example", "counterpart@state.example"}, Summary: summary})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, o.duty)
	if _, err := o.duty.ApproveMemCon(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := o.duty.DistributeMemCon(ctx, m.ID, []string{"principal@state.example", "notes@state.example"}); err != nil {
		t.Fatal(err)
	}
	sync1(t, o.principal)
	got, err := o.principal.GetMemCon(ctx, m.ID)
	if err != nil || got.Doc == nil {
		t.Fatalf("the principal's copy: %v", err)
	}
	runOnce()

	ps := edit.Paragraphs(got.Doc.Summary)
	if len(ps) < 4 {
		t.Fatalf("the corpus document has %d paragraphs", len(ps))
	}
	excerpt := edit.Retype(ps[1] + "\n\n" + ps[2] + "\n\n" + ps[3])
	ts, err := s.TraceLeak(id, excerpt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) == 0 || ts[0].MemCon != m.ID || ts[0].Likely != "principal@state.example" {
		t.Fatalf("the records officer's tracing: %+v", ts)
	}
	t.Logf("read %d of %d marked places; accused %q at %.6f", ts[0].Observed, ts[0].Slots, ts[0].Accused, ts[0].Suspects[0].Confidence)
	// A text nobody received traces to nobody.
	if ts, err := s.TraceLeak(id, corpusDoc(t, 9)); err != nil || (len(ts) > 0 && ts[0].Accused != "") {
		t.Errorf("an outsider's text: %+v %v", ts, err)
	}
}
