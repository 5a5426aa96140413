package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
