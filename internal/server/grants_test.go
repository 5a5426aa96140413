package server_test

import (
	"encoding/json"
	"slices"
	"testing"

	"hotline/internal/apierr"
	"hotline/internal/archive"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/tlog"
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
	b, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GrantRecords(ctx, "carol@state.example", info.ID, b, len(recs)); !apierr.Is(err, apierr.Forbidden) {
		t.Errorf("alice granted records: %v", err)
	}
	g, err := officer.GrantRecords(ctx, "carol@state.example", info.ID, b, len(recs))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.OpenGrant(ctx, g.ID); !apierr.Is(err, apierr.NotFound) {
		t.Errorf("bob opened carol's grant: %v", err)
	}
	got, raw, err := carol.OpenGrant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var opened []archive.Record
	if err := json.Unmarshal(raw, &opened); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(opened, func(r archive.Record) bool { return r.Text == canary }) || got.Grantee != "carol@state.example" || got.Reads != 1 {
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
