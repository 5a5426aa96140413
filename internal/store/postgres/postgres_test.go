package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hotline/internal/conversation"
	"hotline/internal/store"
	"hotline/internal/store/postgres"
	"hotline/internal/store/storetest"
)

// Open returns a store in a fresh schema of the database named by
// HOTLINE_TEST_POSTGRES, dropped when the test ends. Without the variable the
// test is skipped, saying so; CI sets it.
func open(t *testing.T) *store.Store {
	t.Helper()
	url := os.Getenv("HOTLINE_TEST_POSTGRES")
	if url == "" {
		t.Skip("HOTLINE_TEST_POSTGRES is not set; .ci/run sets it to the local PostgreSQL")
	}
	schema := fmt.Sprintf("t_%x", rand.Text()[:12])
	s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), url, schema); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

func TestHasPassword(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://u@h/db":                 false,
		"postgres://u:secret@h/db":          true,
		"postgresql://u:@h/db":              true,
		"postgres://u@h/db?password=secret": true,
		"postgres://h/db?sslmode=disable":   false,
		"host=h user=u dbname=d":            false,
		"host=h user=u password=secret":     true,
		"host=h user=u password = secret":   true,
		"host=h user=passwordless":          false,
	} {
		if got := postgres.HasPassword(s); got != want {
			t.Errorf("HasPassword(%q) = %v, want %v", s, got, want)
		}
	}
	if _, err := postgres.Open(t.Context(), "postgres://u:secret@127.0.0.1:1/db", postgres.Options{}, nil); !errors.Is(err, postgres.ErrPasswordInURL) {
		t.Errorf("Open with a password in the URL: %v", err)
	}
}

func TestPasswordFile(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u@127.0.0.1:1/db", postgres.Options{PasswordFile: filepath.Join(t.TempDir(), "missing")}, nil)
	if err == nil || !strings.Contains(err.Error(), "password file") {
		t.Errorf("missing password file: %v", err)
	}
}

// TestChainFromBeforeTheUpgrade: a conversation made before the message
// chain existed has no chain (NULL) until its next message, whose chain
// starts from the empty string, on both paths that append messages.
func TestChainFromBeforeTheUpgrade(t *testing.T) {
	ctx := t.Context()
	url := os.Getenv("HOTLINE_TEST_POSTGRES")
	if url == "" {
		t.Skip("HOTLINE_TEST_POSTGRES is not set; .ci/run sets it to the local PostgreSQL")
	}
	schema := fmt.Sprintf("t_%x", rand.Text()[:12])
	s, err := postgres.Open(ctx, url, postgres.Options{Schema: schema}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), url, schema); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	forget := func() {
		t.Helper()
		if _, err := raw.ExecContext(ctx, `UPDATE `+schema+`.conversations SET chain = NULL`); err != nil {
			t.Fatal(err)
		}
	}
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
	forget()
	var hs []store.ChainHead
	if err := s.View(ctx, func(tx *store.Tx) (err error) { hs, err = tx.UnloggedChains(ctx, nil, 10); return }); err != nil || len(hs) != 0 {
		t.Errorf("a conversation without a chain is to be logged: %+v %v", hs, err)
	}
	_, chain, err := s.AppendApplicationMessage(ctx, msg("after"))
	if want := conversation.ChainNext(nil, []byte("after")); err != nil || !bytes.Equal(chain, want) {
		t.Errorf("first chain after the upgrade, one statement: %x %v, want %x", chain, err, want)
	}
	forget()
	err = s.Update(ctx, func(tx *store.Tx) (err error) {
		_, chain, err = tx.AppendConversationMessage(ctx, msg("again"), 0, nil)
		return err
	})
	if want := conversation.ChainNext(nil, []byte("again")); err != nil || !bytes.Equal(chain, want) {
		t.Errorf("first chain after the upgrade, in a transaction: %x %v, want %x", chain, err, want)
	}
}
