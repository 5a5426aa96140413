package server_test

import (
	"fmt"
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
			checks, err := s.Verify(hs, nil)
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

// Reclassification and moves. The records officer reclassifies a
// conversation's records, and retention follows the new level (the log
// says so, and the archive acts on it); an export whose records went to
// another system is moved: refused under a hold, then logged, and the
// archive lets its copies go, its store still proven complete. Only the
// records officer does either.
func TestRecordsReclassifyMove(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	newMember(t, e, admin, "bob")
	officer := newMember(t, e, admin, "ro", "records-officer")
	arch := newMember(t, e, admin, "archive", "archive")
	s, _, _ := newRecords(t)
	var events []archive.Event
	runOnce := func() {
		t.Helper()
		if err := e.srv.Log().Sync(ctx); err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		if err := archive.RunOnce(ctx, arch.Client, s, func(ev archive.Event) {
			switch ev.Kind {
			case "expired", "moved":
				events = append(events, ev)
			case "problem":
				t.Logf("archive problem: %v", ev.Err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	runOnce()
	mk := func() string {
		info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"},
			Classification: conversation.Classification{ArchiveRequired: true}})
		if err != nil {
			t.Fatal(err)
		}
		send(t, alice, info.ID, "minutes")
		return info.ID
	}
	kept, moved := mk(), mk()
	runOnce()

	// Secret records are kept a day; unclassified ones for good. Kept's
	// records, reclassified secret, go after a day; the server checks the
	// new level too.
	if err := officer.SetRetention(ctx, "secret", 1); err != nil {
		t.Fatal(err)
	}
	if err := alice.Reclassify(ctx, kept, "secret"); !apierr.Is(err, apierr.Forbidden) {
		t.Errorf("alice reclassified: %v", err)
	}
	if err := officer.Reclassify(ctx, kept, "cosmic"); !apierr.Is(err, apierr.BadRequest) {
		t.Errorf("a reclassification to no level: %v", err)
	}
	if err := officer.Reclassify(ctx, kept, "secret"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(48 * time.Hour)
	runOnce()
	if len(events) != 1 || events[0].Kind != "expired" || events[0].Conversation != kept {
		t.Fatalf("after the reclassification: %+v", events)
	}

	// A move: the officer exported the conversation; a hold keeps it.
	var manifest [32]byte
	manifest[0] = 7
	hs, err := func() (map[string]client.ChainHead, error) {
		if _, err := e.srv.CommitChains(ctx); err != nil {
			return nil, err
		}
		if err := e.srv.Log().Sync(ctx); err != nil {
			return nil, err
		}
		if _, err := officer.VerifyLog(ctx); err != nil {
			return nil, err
		}
		return officer.ChainHeads()
	}()
	if err != nil {
		t.Fatal(err)
	}
	through := hs[moved].Seq
	hold, err := officer.PlaceHold(ctx, moved, "inquiry")
	if err != nil {
		t.Fatal(err)
	}
	if err := officer.MoveRecords(ctx, manifest, moved, through, "national-archives"); !apierr.Is(err, apierr.Conflict) {
		t.Errorf("a move under a hold: %v", err)
	}
	if err := officer.ReleaseHold(ctx, hold); err != nil {
		t.Fatal(err)
	}
	if err := officer.MoveRecords(ctx, manifest, moved, through, "my cousin's attic"); !apierr.Is(err, apierr.BadRequest) {
		t.Errorf("a move to free text: %v", err)
	}
	if err := alice.MoveRecords(ctx, manifest, moved, through, "national-archives"); !apierr.Is(err, apierr.Forbidden) {
		t.Errorf("alice moved records: %v", err)
	}
	if err := officer.MoveRecords(ctx, manifest, moved, through, "national-archives"); err != nil {
		t.Fatal(err)
	}
	runOnce()
	if len(events) != 1 || events[0].Kind != "moved" || events[0].Conversation != moved || events[0].Seq != through {
		t.Fatalf("after the move: %+v", events)
	}
	cs, _ := s.List()
	for _, c := range cs {
		if c.ID == moved && len(c.Seqs) != 0 {
			t.Errorf("records kept after the move: %v", c.Seqs)
		}
	}
	if _, err := officer.VerifyLog(ctx); err != nil {
		t.Fatal(err)
	}
	checks, err := s.Verify(hs, nil)
	if err != nil || len(checks) != 2 || !checks[0].Complete || !checks[1].Complete {
		t.Errorf("verify after the move: %+v %v", checks, err)
	}
	p, err := officer.RecordsPolicy()
	if err != nil || p.Levels[kept] != "secret" || p.Moved[moved] != through {
		t.Errorf("the policy as the log says it: %+v %v", p, err)
	}
	var types []string
	for _, en := range logEntries(t, officer.Client) {
		switch en.Type {
		case tlog.TypeRecordsReclass, tlog.TypeRecordsMove:
			types = append(types, en.Type)
			if en.Type == tlog.TypeRecordsMove && (en.Reason != "national-archives" || en.Item != fmt.Sprintf("%x", manifest) || int64(en.Count) != through) {
				t.Errorf("move entry: %+v", en)
			}
		}
	}
	if !slices.Equal(types, []string{"records.reclassify", "records.move"}) {
		t.Errorf("log: %v", types)
	}
}
