package server_test

import (
	"slices"
	"testing"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/archive"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/tlog"
)

// The records officer sets a retention schedule and places legal holds; a
// hold suspends every deletion (the archive keeps the records, and the
// server refuses to log an expiry); once released, the archive logs the
// expiry and lets the old records go, and the store still proves complete,
// its expired records counted as such. Only the records officer manages
// the policy, only the archive lets records go, and the log has each step.
func TestRecordsRetention(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			newMember(t, e, admin, "bob")
			officer := newMember(t, e, admin, "ro", "records-officer")
			arch := newMember(t, e, admin, "archive", "archive")
			s, _, _ := newRecords(t)
			var expired []archive.Event
			runOnce := func() {
				t.Helper()
				// The archive acts on the log: let it hold every
				// change made so far.
				if err := e.srv.Log().Sync(ctx); err != nil {
					t.Fatal(err)
				}
				expired = expired[:0]
				err := archive.RunOnce(ctx, arch.Client, s, func(ev archive.Event) {
					switch ev.Kind {
					case "expired":
						expired = append(expired, ev)
					case "problem":
						t.Errorf("archive problem: %v", ev.Err)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			runOnce() // publishes its key packages

			info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"},
				Classification: conversation.Classification{ArchiveRequired: true}})
			if err != nil {
				t.Fatal(err)
			}
			send(t, alice, info.ID, "old news")
			send(t, alice, info.ID, "older news")
			runOnce()
			cs, _ := s.List()
			if len(cs) != 1 || len(cs[0].Seqs) != 2 {
				t.Fatalf("store: %+v", cs)
			}

			// Only the records officer sets the policy.
			if err := alice.SetRetention(ctx, "unclassified", 1); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("alice set a retention: %v", err)
			}
			if err := officer.SetRetention(ctx, "unclassified", 1); err != nil {
				t.Fatal(err)
			}
			hold, err := officer.PlaceHold(ctx, "", "litigation")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := officer.PlaceHold(ctx, "", "the minister's divorce"); !apierr.Is(err, apierr.BadRequest) {
				t.Errorf("a hold for a free-text reason: %v", err)
			}
			e.clock.Advance(48 * time.Hour)

			// Held: nothing goes, and the server will not log an expiry.
			runOnce()
			if len(expired) != 0 {
				t.Errorf("expired under a hold: %+v", expired)
			}
			if err := arch.LogExpiry(ctx, info.ID, 2); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("an expiry under a hold: %v", err)
			}
			if err := alice.LogExpiry(ctx, info.ID, 2); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("alice let records go: %v", err)
			}
			if cs, _ := s.List(); len(cs[0].Seqs) != 2 {
				t.Errorf("records deleted under a hold: %v", cs[0].Seqs)
			}

			// Released: the archive logs the expiry, then deletes.
			if err := officer.ReleaseHold(ctx, hold); err != nil {
				t.Fatal(err)
			}
			if err := officer.ReleaseHold(ctx, hold); !apierr.Is(err, apierr.NotFound) {
				t.Errorf("a hold released twice: %v", err)
			}
			runOnce()
			if len(expired) != 1 || expired[0].Conversation != info.ID {
				t.Fatalf("expired: %+v", expired)
			}
			if cs, _ := s.List(); len(cs[0].Seqs) != 0 {
				t.Errorf("records kept after expiry: %v", cs[0].Seqs)
			}
			var types []string
			if err := e.srv.Log().Sync(ctx); err != nil {
				t.Fatal(err)
			}
			for _, en := range logEntries(t, officer.Client) {
				switch en.Type {
				case tlog.TypeRecordsRetention, tlog.TypeRecordsHold, tlog.TypeRecordsRelease, tlog.TypeRecordsExpire:
					types = append(types, en.Type)
					if en.Type == tlog.TypeRecordsExpire && (en.Conversation != info.ID || en.Actor != "archive@state.example" || int64(en.Count) != expired[0].Seq) {
						t.Errorf("expiry entry: %+v", en)
					}
				}
			}
			if want := []string{"records.retention", "records.hold", "records.release", "records.expire"}; !slices.Equal(types, want) {
				t.Errorf("log: %v, want %v", types, want)
			}
			if _, err := e.srv.CommitChains(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := officer.VerifyLog(ctx); err != nil {
				t.Fatal(err)
			}
			hs, _ := officer.ChainHeads()
			checks, err := s.Verify(hs)
			if err != nil || len(checks) != 1 || !checks[0].Complete || checks[0].Expired != expired[0].Seq {
				t.Errorf("verify after expiry: %+v %v", checks, err)
			}
			p, err := officer.RecordsPolicy()
			if err != nil || p.RetentionDays["unclassified"] != 1 || len(p.Holds) != 0 || p.Expired[info.ID] != expired[0].Seq {
				t.Errorf("the policy as the log says it: %+v %v", p, err)
			}
		})
	}
}
