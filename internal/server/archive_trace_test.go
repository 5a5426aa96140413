package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

	// The records officer exports the draft's conversation for an
	// archivist: the memorandum rendered as HTML beside the records, and
	// the log's proof of the conversation's head; it verifies, and a
	// record taken out of it shows.
	officer := newMember(t, o.e, o.admin, "ro", "records-officer")
	if _, err := o.e.srv.CommitChains(ctx); err != nil {
		t.Fatal(err)
	}
	if err := o.e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := officer.VerifyLog(ctx); err != nil {
		t.Fatal(err)
	}
	heads, err := officer.ChainHeads()
	if err != nil {
		t.Fatal(err)
	}
	proof, cp, err := officer.ProveEntry(ctx, heads[m.Conversation].Index)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	key := officer.ExportKey()
	man, mb, err := archive.WriteExport(dir, archive.ExportInput{Store: s, Identity: id, Conversations: []string{m.Conversation},
		Proofs: map[string]client.EntryProof{m.Conversation: proof}, Checkpoint: cp,
		Org: "state.example", By: "ro@state.example", Device: officer.Profile().Device, DeviceKey: key, Made: o.e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(mb)
	sig := officer.SignExport(digest)
	if err := os.WriteFile(filepath.Join(dir, "manifest.sig"), []byte(base64.StdEncoding.EncodeToString(sig)), 0o600); err != nil {
		t.Fatal(err)
	}
	var page []byte
	for _, f := range man.Files {
		if strings.HasPrefix(f.Name, m.Conversation+"/memcons/") {
			if page, err = os.ReadFile(filepath.Join(dir, f.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Contains(page, []byte("<title>Memorandum of conversation: Archived call</title>")) || !bytes.Contains(page, []byte(template.HTMLEscapeString(edit.Paragraphs(summary)[1][:60]))) {
		t.Errorf("the memorandum's page: %.300q", page)
	}
	origin, keys := officer.LogVerifiers()
	rep, err := archive.VerifyExport(dir, origin, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || len(rep.Conversations) != 1 || rep.Conversations[0].Records == 0 || rep.Digest != hex.EncodeToString(digest[:]) {
		t.Fatalf("the export: %+v", rep)
	}
	// A record taken out shows, beside the altered file.
	var recs []archive.Record
	rj := filepath.Join(dir, m.Conversation, "records.json")
	b, err := os.ReadFile(rj)
	if err == nil {
		err = json.Unmarshal(b, &recs)
	}
	if err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(recs[1:]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rj, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err = archive.VerifyExport(dir, origin, keys); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("missing: record #%d is not in the export", recs[0].Seq)
	if rep.Complete() || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], "altered: ") || !slices.Equal(rep.Conversations[0].Problems, []string{want}) {
		t.Errorf("an export with a record taken out: %+v", rep)
	}
}
