package server_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"hotline/internal/apierr"
	"hotline/internal/archive"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/tlog"
	"hotline/internal/trace/edit"
)

// The records officer grants a user a conversation's records: the officer's
// device opens them from the store and sends them to the grantee inside
// MLS. The grant and each opening are in the log; a user without the grant
// gets nothing; the server never holds the records' text.
func TestRecordsGrant(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) { testRecordsGrant(t, b) })
	}
}

func testRecordsGrant(t *testing.T, backend string) {
	const canary = "CANARY 2b7e the convoy crosses at dawn"
	e := newEnv(t, backend)
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	carol := newMember(t, e, admin, "carol")
	officer := newMember(t, e, admin, "ro", "records-officer")
	arch := newMember(t, e, admin, "archive", "archive")
	s, _, id := newRecords(t)
	if err := archive.RunOnce(ctx, arch.Client, s, nil); err != nil {
		t.Fatal(err)
	}
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"},
		Classification: conversation.Classification{ArchiveRequired: true}})
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice, info.ID, canary)
	if err := archive.RunOnce(ctx, arch.Client, s, nil); err != nil {
		t.Fatal(err)
	}

	recs, err := s.ReadConversation(id, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	copyFor := func(grantee string) func(string) ([]byte, []client.GrantFile, error) {
		return func(grant string) ([]byte, []client.GrantFile, error) {
			b, err := json.Marshal(archive.MarkGrant(archive.GrantKey(id, grant), grantee, recs))
			return b, nil, err
		}
	}
	if _, err := alice.GrantRecords(ctx, "carol@state.example", info.ID, len(recs), copyFor("carol@state.example")); !apierr.Is(err, apierr.Forbidden) {
		t.Errorf("alice granted records: %v", err)
	}
	g, err := officer.GrantRecords(ctx, "carol@state.example", info.ID, len(recs), copyFor("carol@state.example"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := bob.OpenGrant(ctx, g.ID); !apierr.Is(err, apierr.NotFound) {
		t.Errorf("bob opened carol's grant: %v", err)
	}
	got, raw, _, err := carol.OpenGrant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var opened []archive.Record
	if err := json.Unmarshal(raw, &opened); err != nil {
		t.Fatal(err)
	}
	// Carol's copy is marked for her: the text reads the same, retyped.
	if !slices.ContainsFunc(opened, func(r archive.Record) bool { return edit.Retype(r.Text) == canary && r.Text != canary }) || got.Grantee != "carol@state.example" || got.Reads != 1 {
		t.Errorf("carol's grant: %+v, %d records", got, len(opened))
	}
	if gs, err := carol.Grants(ctx); err != nil || len(gs) != 1 {
		t.Errorf("carol's grants: %+v %v", gs, err)
	}
	if gs, err := bob.Grants(ctx); err != nil || len(gs) != 0 {
		t.Errorf("bob's grants: %+v %v", gs, err)
	}
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, en := range logEntries(t, officer.Client) {
		switch en.Type {
		case tlog.TypeRecordsGrant:
			if en.Item != g.ID || en.Target != "carol@state.example" || en.Conversation != info.ID || en.Actor != "ro@state.example" {
				t.Errorf("grant entry: %+v", en)
			}
			seen = append(seen, en.Type)
		case tlog.TypeRecordsRead:
			if en.Item != g.ID || en.Actor != "carol@state.example" {
				t.Errorf("read entry: %+v", en)
			}
			seen = append(seen, en.Type)
		}
	}
	if !slices.Equal(seen, []string{"records.grant", "records.read"}) {
		t.Errorf("log: %v", seen)
	}
	e.noCanary(t, canary, "records_grants")
}

// A grantee's copy is marked for them: the records officer traces a
// retyped excerpt of three messages of it to that grantee, among two
// grants of the conversation; a pasted copy by its invisible tag too; the
// records as the archive holds them accuse nobody. A memorandum's marking
// key is not granted.
func TestGrantLeakTrace(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	newMember(t, e, admin, "bob")
	carol := newMember(t, e, admin, "carol")
	officer := newMember(t, e, admin, "ro", "records-officer")
	arch := newMember(t, e, admin, "archive", "archive")
	s, _, id := newRecords(t)
	if err := archive.RunOnce(ctx, arch.Client, s, nil); err != nil {
		t.Fatal(err)
	}
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"},
		Classification: conversation.Classification{ArchiveRequired: true}})
	if err != nil {
		t.Fatal(err)
	}
	paras := edit.Paragraphs(corpusDoc(t, 4))
	if len(paras) < 8 {
		t.Fatalf("the corpus document has %d paragraphs", len(paras))
	}
	paras = paras[:8]
	for _, p := range paras {
		send(t, alice, info.ID, p)
	}
	if err := archive.RunOnce(ctx, arch.Client, s, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ReadConversation(id, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	grant := func(grantee string) string {
		g, err := officer.GrantRecords(ctx, grantee, info.ID, len(recs), func(grant string) ([]byte, []client.GrantFile, error) {
			b, err := json.Marshal(archive.MarkGrant(archive.GrantKey(id, grant), grantee, archive.Grantable(recs)))
			return b, nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	gb, gc := grant("bob@state.example"), grant("carol@state.example")
	_, raw, _, err := carol.OpenGrant(ctx, gc)
	if err != nil {
		t.Fatal(err)
	}
	var copy []archive.Record
	if err := json.Unmarshal(raw, &copy); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, r := range copy {
		if r.Kind == "text" {
			texts = append(texts, r.Text)
		}
	}
	if len(texts) != len(paras) || texts[2] == paras[2] {
		t.Fatalf("carol's copy: %d texts", len(texts))
	}
	granted := []archive.Granted{{ID: gb, Grantee: "bob@state.example", Conversation: info.ID}, {ID: gc, Grantee: "carol@state.example", Conversation: info.ID}}
	trace := func(leaked string) client.Tracing {
		t.Helper()
		ts, err := s.TraceGrants(id, granted, leaked)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 0 {
			return client.Tracing{}
		}
		return ts[0]
	}
	want := "carol@state.example (grant " + gc + ")"
	excerpt := edit.Retype(strings.Join(texts[3:6], "\n\n"))
	tr := trace(excerpt)
	if tr.Likely != want || tr.Conversation != info.ID {
		t.Fatalf("a retyped excerpt of carol's copy: %+v", tr)
	}
	t.Logf("a retyped excerpt of three messages: %d of %d marked places read; %s at %.6f (accused: %q)", tr.Observed, tr.Slots, tr.Likely, tr.Suspects[0].Confidence, tr.Accused)
	if tr := trace(strings.Join(texts, "\n\n")); tr.Accused != want || !tr.Suspects[0].Invisible {
		t.Errorf("carol's pasted copy: %+v", tr)
	}
	if tr := trace(strings.Join(paras, "\n\n")); tr.Accused != "" {
		t.Errorf("the unmarked records accuse %s", tr.Accused)
	}
}
