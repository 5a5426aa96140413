package sqlite_test

import (
	"path/filepath"
	"testing"

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
