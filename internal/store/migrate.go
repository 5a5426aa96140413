package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, inside a transaction. Never
// edit a released migration: append a new one. The SQL is shared by both
// backends; Dialect.Rewrite replaces BYTES (BLOB | BYTEA), SERIALPK (an
// auto-increment primary key) and CHAINFUNC (the SQL function
// hotline_chain(prev, data) = SHA-256(prev || SHA-256(data)), with a NULL
// prev taken as empty: created in PostgreSQL, nothing in SQLite, where the
// backend registers it with the driver).
//
// Times are unix seconds in BIGINT columns so both backends compare them the
// same way.
var migrations = []string{
	// 1: the directory, sessions, policy, transparency log and events.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE keysets (
	serial     BIGINT PRIMARY KEY,
	note       BYTES NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE users (
	id           TEXT PRIMARY KEY,
	roles        TEXT NOT NULL,
	clearance    INTEGER NOT NULL,
	compartments TEXT NOT NULL,
	disabled     INTEGER NOT NULL DEFAULT 0,
	created_at   BIGINT NOT NULL,
	created_by   TEXT NOT NULL
);
CREATE TABLE devices (
	id                 TEXT PRIMARY KEY,
	user_id            TEXT NOT NULL REFERENCES users(id),
	sig_key            BYTES NOT NULL,
	kem_key            BYTES NOT NULL,
	label              TEXT NOT NULL,
	status             TEXT NOT NULL,
	created_at         BIGINT NOT NULL,
	updated_at         BIGINT NOT NULL,
	credential         BYTES,
	credential_expires BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX devices_user ON devices(user_id);
CREATE TABLE device_approvals (
	device_id       TEXT NOT NULL REFERENCES devices(id),
	approver        TEXT NOT NULL,
	approver_device TEXT NOT NULL,
	at              BIGINT NOT NULL,
	PRIMARY KEY (device_id, approver)
);
CREATE TABLE invites (
	hash       BYTES PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users(id),
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0,
	device_id  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sessions (
	token_hash BYTES PRIMARY KEY,
	device_id  TEXT NOT NULL REFERENCES devices(id),
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_device ON sessions(device_id);
CREATE TABLE challenges (
	nonce      BYTES PRIMARY KEY,
	device_id  TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE change_requests (
	id           SERIALPK,
	kind         TEXT NOT NULL,
	subject      TEXT NOT NULL,
	payload      TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	status       TEXT NOT NULL,
	resolved_at  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE change_approvals (
	request_id BIGINT NOT NULL REFERENCES change_requests(id),
	approver   TEXT NOT NULL,
	at         BIGINT NOT NULL,
	PRIMARY KEY (request_id, approver)
);
CREATE TABLE policy_rules (
	id         SERIALPK,
	rule       TEXT NOT NULL UNIQUE,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE tlog_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size BIGINT NOT NULL
);
INSERT INTO tlog_head (id, size) VALUES (1, 0);
CREATE TABLE tlog_pending (
	id   SERIALPK,
	data BYTES NOT NULL
);
CREATE TABLE tlog_entries (
	idx  BIGINT PRIMARY KEY,
	data BYTES NOT NULL
);
CREATE TABLE tlog_hashes (
	idx  BIGINT PRIMARY KEY,
	hash BYTES NOT NULL
);
CREATE TABLE tlog_checkpoints (
	size       BIGINT PRIMARY KEY,
	note       BYTES NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE event_heads (
	device_id TEXT PRIMARY KEY,
	next_seq  BIGINT NOT NULL
);
CREATE TABLE events (
	device_id  TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	type       TEXT NOT NULL,
	payload    BYTES NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (device_id, seq)
);
`,
	// 2: MLS key packages, per device and cipher suite.
	`
CREATE TABLE key_packages (
	ref          BYTES PRIMARY KEY,
	device_id    TEXT NOT NULL REFERENCES devices(id),
	cipher_suite INTEGER NOT NULL,
	data         BYTES NOT NULL,
	last_resort  INTEGER NOT NULL,
	not_after    BIGINT NOT NULL,
	created_at   BIGINT NOT NULL
);
CREATE INDEX key_packages_device ON key_packages(device_id, cipher_suite, last_resort, created_at);
`,
	// 3: encrypted attachment blobs, uploaded in chunks.
	`
CREATE TABLE blobs (
	id           BYTES PRIMARY KEY,
	owner_device TEXT NOT NULL REFERENCES devices(id),
	size         BIGINT NOT NULL,
	chunk_size   INTEGER NOT NULL,
	sha256       BYTES,
	complete     INTEGER NOT NULL DEFAULT 0,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE TABLE blob_chunks (
	blob_id BYTES NOT NULL REFERENCES blobs(id),
	idx     INTEGER NOT NULL,
	data    BYTES NOT NULL,
	PRIMARY KEY (blob_id, idx)
);
`,
	// 4: conversations: the delivery service's public view of each MLS group
	// (no secret, no content), which device holds which leaf and how far
	// each has acknowledged, and each conversation's ordered messages
	// (MLS ciphertext and signed handshakes) kept until every member's
	// device has acknowledged them.
	`
CREATE TABLE conversations (
	group_id     BYTES PRIMARY KEY,
	cipher_suite INTEGER NOT NULL,
	epoch        BIGINT NOT NULL,
	head_seq     BIGINT NOT NULL,
	pending      INTEGER NOT NULL,
	state        BYTES NOT NULL,
	level        INTEGER NOT NULL,
	compartments TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE TABLE conversation_members (
	group_id   BYTES NOT NULL REFERENCES conversations(group_id),
	device_id  TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	leaf       INTEGER NOT NULL,
	joined_seq BIGINT NOT NULL,
	left_seq   BIGINT NOT NULL,
	acked      BIGINT NOT NULL,
	PRIMARY KEY (group_id, device_id)
);
CREATE INDEX conversation_members_device ON conversation_members(device_id);
CREATE TABLE conversation_messages (
	group_id   BYTES NOT NULL REFERENCES conversations(group_id),
	seq        BIGINT NOT NULL,
	epoch      BIGINT NOT NULL,
	kind       INTEGER NOT NULL,
	sender     TEXT NOT NULL,
	data       BYTES NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (group_id, seq)
);
`,
	// 5: calls: who was called in which conversation, who joined and left,
	// and how each call ended (metadata only: media never touches the
	// database, and its keys never reach the server).
	`
CREATE TABLE calls (
	id            TEXT PRIMARY KEY,
	group_id      BYTES NOT NULL REFERENCES conversations(group_id),
	caller        TEXT NOT NULL,
	caller_device TEXT NOT NULL,
	state         TEXT NOT NULL,
	reason        TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	answered_at   BIGINT NOT NULL,
	ended_at      BIGINT NOT NULL
);
CREATE INDEX calls_group ON calls(group_id, state);
CREATE TABLE call_participants (
	call_id    TEXT NOT NULL REFERENCES calls(id),
	device_id  TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	role       TEXT NOT NULL,
	state      TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (call_id, device_id)
);
CREATE INDEX call_participants_device ON call_participants(device_id, state);
`,
	// 6: passkeys: the WebAuthn credential that protects a browser device's
	// keys (one per device), the PRF salt its wrapping secret is derived
	// with, and the one-time unlock tickets a passkey device needs for a
	// session. Only public keys, salts, counters and ticket hashes: the PRF
	// output never reaches the server.
	`
CREATE TABLE passkeys (
	device_id       TEXT PRIMARY KEY REFERENCES devices(id),
	credential_id   BYTES NOT NULL UNIQUE,
	public_key      BYTES NOT NULL,
	sign_count      BIGINT NOT NULL,
	salt            BYTES NOT NULL,
	aaguid          BYTES NOT NULL,
	backup_eligible INTEGER NOT NULL,
	created_at      BIGINT NOT NULL,
	last_used_at    BIGINT NOT NULL
);
CREATE TABLE passkey_unlocks (
	ticket_hash BYTES PRIMARY KEY,
	device_id   TEXT NOT NULL REFERENCES devices(id),
	expires_at  BIGINT NOT NULL
);
`,
	// 7: the duty desk's call requests: who asked to talk to which
	// principal, how urgently, in which windows, and what was decided;
	// with the briefing's metadata. The purpose, reasons and the briefing
	// itself are MLS messages in the conversations named here.
	`
CREATE TABLE call_requests (
	id               TEXT PRIMARY KEY,
	requester        TEXT NOT NULL,
	requester_device TEXT NOT NULL,
	principal        TEXT NOT NULL,
	urgency          TEXT NOT NULL,
	status           TEXT NOT NULL,
	group_id         BYTES NOT NULL,
	zone             TEXT NOT NULL,
	windows          TEXT NOT NULL,
	scheduled_at     BIGINT NOT NULL DEFAULT 0,
	duration         BIGINT NOT NULL DEFAULT 0,
	decided_by       TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	brief_group      BYTES,
	brief_by         TEXT NOT NULL DEFAULT '',
	brief_version    INTEGER NOT NULL DEFAULT 0,
	brief_at         BIGINT NOT NULL DEFAULT 0,
	brief_acked      INTEGER NOT NULL DEFAULT 0,
	brief_acked_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX call_requests_principal ON call_requests(principal, scheduled_at);
CREATE INDEX call_requests_requester ON call_requests(requester);
CREATE INDEX call_requests_status ON call_requests(status, scheduled_at);
`,
	// 8: memoranda of conversation and their commitments: who drafted,
	// who approves, who received a copy, and each promise's owner, due
	// date and status. The memoranda's text is MLS messages in the
	// conversations named here.
	`
CREATE TABLE memcons (
	id             TEXT PRIMARY KEY,
	request_id     TEXT NOT NULL REFERENCES call_requests(id),
	drafter        TEXT NOT NULL,
	approver       TEXT NOT NULL,
	status         TEXT NOT NULL,
	group_id       BYTES NOT NULL,
	created_at     BIGINT NOT NULL,
	approved_at    BIGINT NOT NULL DEFAULT 0,
	dist_group     BYTES,
	recipients     TEXT NOT NULL DEFAULT '',
	distributed_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX memcons_request ON memcons(request_id);
CREATE TABLE commitments (
	id         TEXT PRIMARY KEY,
	memcon_id  TEXT NOT NULL REFERENCES memcons(id),
	owner      TEXT NOT NULL,
	due_at     BIGINT NOT NULL,
	status     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	alerted_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX commitments_memcon ON commitments(memcon_id);
CREATE INDEX commitments_due ON commitments(status, due_at);
`,
	// 9: ad-hoc calls: a principal's call with someone outside the
	// organisation's staff that no scheduled request covers, and the
	// readout it owes the duty desk by a deadline. The readout's text is
	// an MLS message in readout_group.
	`
CREATE TABLE readouts (
	call_id       TEXT PRIMARY KEY,
	group_id      BYTES NOT NULL,
	principal     TEXT NOT NULL,
	others        TEXT NOT NULL,
	placed_at     BIGINT NOT NULL,
	due_at        BIGINT NOT NULL,
	status        TEXT NOT NULL,
	filed_by      TEXT NOT NULL DEFAULT '',
	filed_at      BIGINT NOT NULL DEFAULT 0,
	readout_group BYTES,
	flagged_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX readouts_due ON readouts(status, due_at);
`,
	// 10: hotlines: standing lines between two devices, tested end to end
	// on a schedule, and the history of the tests.
	`
CREATE TABLE hotlines (
	id            TEXT PRIMARY KEY,
	group_id      BYTES NOT NULL,
	near_user     TEXT NOT NULL,
	near_device   TEXT NOT NULL,
	far_user      TEXT NOT NULL,
	far_device    TEXT NOT NULL,
	interval_s    BIGINT NOT NULL,
	timeout_s     BIGINT NOT NULL,
	status        TEXT NOT NULL,
	created_by    TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	next_at       BIGINT NOT NULL,
	pending_nonce TEXT NOT NULL DEFAULT '',
	pending_at    BIGINT NOT NULL DEFAULT 0,
	last_ok_at    BIGINT NOT NULL DEFAULT 0,
	changed_at    BIGINT NOT NULL
);
CREATE TABLE hotline_tests (
	hotline_id TEXT NOT NULL REFERENCES hotlines(id),
	nonce      TEXT NOT NULL,
	issued_at  BIGINT NOT NULL,
	result     TEXT NOT NULL,
	latency_us BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (hotline_id, nonce)
);
CREATE INDEX hotline_tests_time ON hotline_tests(hotline_id, issued_at);
`,
	// 11: line checks: each end's checks before a call, green or red with
	// a reason (JSON metadata: no content).
	`
CREATE TABLE linechecks (
	id         TEXT PRIMARY KEY,
	request_id TEXT NOT NULL REFERENCES call_requests(id),
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	deadline   BIGINT NOT NULL,
	status     TEXT NOT NULL,
	results    TEXT NOT NULL
);
CREATE INDEX linechecks_request ON linechecks(request_id, created_at);
CREATE INDEX linechecks_status ON linechecks(status, deadline);
`,
	// 12: a participant on hold stays in the call with nothing forwarded
	// to or from them.
	`
ALTER TABLE call_participants ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
`,
	// 13: a participant taken out of a call for one of higher precedence
	// (a flash call preempting a routine one), so that every view of the
	// call says why they left.
	`
ALTER TABLE call_participants ADD COLUMN preempted INTEGER NOT NULL DEFAULT 0;
`,
	// 14: each principal's designated note-taker, rung into the
	// principal's ad-hoc calls; and, on each ad-hoc call's readout, who
	// that was and whether they could be rung.
	`
CREATE TABLE note_takers (
	principal  TEXT PRIMARY KEY,
	note_taker TEXT NOT NULL,
	set_by     TEXT NOT NULL,
	set_at     BIGINT NOT NULL
);
ALTER TABLE readouts ADD COLUMN note_taker TEXT NOT NULL DEFAULT '';
ALTER TABLE readouts ADD COLUMN note_taker_status TEXT NOT NULL DEFAULT '';
`,
	// 15: the message chain (conversation.ChainNext): each message's row
	// holds the conversation's chain after it, and the conversation's row
	// the chain after its head and the head last committed to the
	// transparency log. Rows from before are NULL (no default: '' is TEXT
	// in SQLite and X'' a bit string in PostgreSQL), and hotline_chain
	// takes a NULL chain as empty, so such a conversation's chain starts
	// from the empty string at its first message after the upgrade.
	`
ALTER TABLE conversations ADD COLUMN chain BYTES;
ALTER TABLE conversations ADD COLUMN chain_logged BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversation_messages ADD COLUMN chain BYTES;
CHAINFUNC
`,
	// 16: the records policy: retention by classification level, legal
	// holds (kept after release, for the record), and through which
	// message the archive let each conversation's records go.
	`
CREATE TABLE records_retention (
	level  TEXT PRIMARY KEY,
	days   INTEGER NOT NULL,
	set_by TEXT NOT NULL,
	set_at BIGINT NOT NULL
);
CREATE TABLE records_holds (
	id           TEXT PRIMARY KEY,
	group_id     BYTES,
	reason       TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	released_by  TEXT NOT NULL DEFAULT '',
	released_at  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE records_expiries (
	group_id   BYTES PRIMARY KEY,
	through    BIGINT NOT NULL,
	expired_at BIGINT NOT NULL
);
`,
	// 17: need-to-know grants of records: who was given which
	// conversation's records, by whom, and how often they opened them
	// (the records themselves never reach the server).
	`
CREATE TABLE records_grants (
	id         TEXT PRIMARY KEY,
	grantee    TEXT NOT NULL,
	group_id   BYTES NOT NULL,
	count      INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	reads      INTEGER NOT NULL
);
CREATE INDEX records_grants_grantee ON records_grants(grantee, created_at);
`,
	// 18: records reclassified: the level a conversation's records are
	// kept under, where the records officer changed it (retention follows
	// it; the conversation's own classification does not change).
	`
CREATE TABLE records_levels (
	group_id BYTES PRIMARY KEY,
	level    TEXT NOT NULL,
	set_by   TEXT NOT NULL,
	set_at   BIGINT NOT NULL
);
`,
}

// SchemaVersion is the number of migrations this build knows.
var SchemaVersion = len(migrations)

// Migrate brings the database up to SchemaVersion. It refuses a database
// newer than this build. Backends call it before New; it is safe to run
// concurrently from several nodes on PostgreSQL because each migration
// inserts its version row under a primary key.
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this build's %d", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if err := applyMigration(ctx, db, d, v); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, d Dialect, v int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Claim the version first: a second node migrating at the same time
	// fails here on the primary key (PostgreSQL) and leaves the work to us.
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, time.Now().Unix()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.Rewrite(migrations[v-1])); err != nil {
		return err
	}
	return tx.Commit()
}
