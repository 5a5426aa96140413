package server_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"hotline/internal/client"
	"hotline/internal/datadir"
)

// sqlExec edits the server's SQLite database behind its back, as an attacker
// with the disk (or a malicious operator) would. The server must be stopped.
func sqlExec(t *testing.T, e *env, queries ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, datadir.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A server that rolls its log back, or lists a device its log does not
// hold, fails every client's verification loudly.
func TestLogVerifyDetectsAServerLying(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
	if _, err := bob.VerifyLog(ctx); err != nil {
		t.Fatal(err)
	}
	size, err := bob.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// 1. A device row the log never mentions, for bob.
	e.stop()
	sqlExec(t, e, `INSERT INTO devices (id, user_id, sig_key, kem_key, label, status, created_at, updated_at, credential_expires)
		SELECT 'zzzzzzzzzzzzzzzz', user_id, sig_key, kem_key, 'planted', 'active', created_at, updated_at, 0 FROM devices WHERE user_id = 'bob@state.example'`)
	e.start(t)
	bob = reopenAt(t, bob, e)
	rep, err := bob.VerifyLog(ctx)
	if !errors.Is(err, client.ErrLogProblem) || !strings.Contains(strings.Join(rep.Problems, ";"), "zzzzzzzzzzzzzzzz") {
		t.Fatalf("planted device: %v %+v", err, rep)
	}

	// 2. The log rolled back to fewer entries than bob has verified.
	e.stop()
	n := size.Size - 2
	sqlExec(t, e,
		`DELETE FROM devices WHERE id = 'zzzzzzzzzzzzzzzz'`,
		`DELETE FROM tlog_checkpoints WHERE size > `+itoa(n),
		`UPDATE tlog_head SET size = `+itoa(n),
	)
	e.start(t)
	bob = reopenAt(t, bob, e)
	if _, err := bob.VerifyLog(ctx); !errors.Is(err, client.ErrLogProblem) || !strings.Contains(err.Error(), "fewer") {
		t.Fatalf("rolled-back log: %v", err)
	}
}
