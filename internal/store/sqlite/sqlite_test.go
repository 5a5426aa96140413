package sqlite_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"

	"hotline/internal/conversation"
	"hotline/internal/store"
	"hotline/internal/store/sqlite"
	"hotline/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hotline.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hotline.db")
	s, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), func(tx *store.Tx) error { return tx.SetMeta(t.Context(), "k", "v") }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer s.Close()
	var v string
	if err := s.View(t.Context(), func(tx *store.Tx) (err error) { v, err = tx.GetMeta(t.Context(), "k"); return }); err != nil || v != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

func TestBackupIsConsistentSnapshot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hotline.db")
	s, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(t.Context(), func(tx *store.Tx) error { return tx.SetMeta(t.Context(), "org", "state.example") }); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "backup.db")
	if err := sqlite.Backup(t.Context(), path, dest); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.Backup(t.Context(), path, dest); err == nil {
		t.Errorf("backup over an existing file: no error")
	}
	b, err := sqlite.Open(t.Context(), dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v string
	if err := b.View(t.Context(), func(tx *store.Tx) (err error) { v, err = tx.GetMeta(t.Context(), "org"); return }); err != nil || v != "state.example" {
		t.Fatalf("backup holds %q, %v", v, err)
	}
}

// TestChainFromBeforeTheUpgrade: a conversation made before the message
// chain existed has no chain (NULL) until its next message, whose chain
// starts from the empty string; hotline_chain takes a TEXT chain as its
// bytes.
func TestChainFromBeforeTheUpgrade(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hotline.db")
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := store.Conversation{GroupID: []byte("old"), CipherSuite: 1, State: []byte("s0"), CreatedBy: "d"}
	msg := func(data string) store.ConversationMessage {
		return store.ConversationMessage{GroupID: c.GroupID, Kind: 1, Sender: "d", Data: []byte(data)}
	}
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateConversation(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppendApplicationMessage(ctx, msg("before")); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE conversations SET chain = NULL; UPDATE conversation_messages SET chain = NULL`); err != nil {
		t.Fatal(err)
	}
	unlogged := func() []store.ChainHead {
		t.Helper()
		var hs []store.ChainHead
		if err := s.View(ctx, func(tx *store.Tx) (err error) { hs, err = tx.UnloggedChains(ctx, nil, 10); return }); err != nil {
			t.Fatal(err)
		}
		return hs
	}
	if hs := unlogged(); len(hs) != 0 {
		t.Errorf("a conversation without a chain is to be logged: %+v", hs)
	}
	_, chain, err := s.AppendApplicationMessage(ctx, msg("after"))
	if want := conversation.ChainNext(nil, []byte("after")); err != nil || !bytes.Equal(chain, want) {
		t.Errorf("first chain after the upgrade %x %v, want %x", chain, err, want)
	}
	if hs := unlogged(); len(hs) != 1 || hs[0].Seq != 2 || !bytes.Equal(hs[0].Chain, chain) {
		t.Errorf("unlogged chains %+v, want seq 2", hs)
	}
	if err := s.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.ConversationMessages(ctx, c.GroupID, 0, 0, 10)
		if err != nil || len(ms) != 2 || ms[0].Chain != nil || !bytes.Equal(ms[1].Chain, chain) {
			t.Errorf("messages %+v %v", ms, err)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, prev := range []string{"", "text"} {
		if _, err := raw.ExecContext(ctx, `UPDATE conversations SET chain = $1`, prev); err != nil {
			t.Fatal(err)
		}
		var chain []byte
		err := s.Update(ctx, func(tx *store.Tx) (err error) {
			_, chain, err = tx.AppendConversationMessage(ctx, msg("m"), 0, nil)
			return err
		})
		if want := conversation.ChainNext([]byte(prev), []byte("m")); err != nil || !bytes.Equal(chain, want) {
			t.Errorf("after the TEXT chain %q: %x %v, want %x", prev, chain, err, want)
		}
	}
}
