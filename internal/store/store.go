// Package store keeps the server's state: the directory (users, devices,
// invites), sessions, workflow metadata, the transparency log's entries,
// hashes and checkpoints, and per-device event queues.
//
// There is one implementation of every query, written in the SQL that SQLite
// and PostgreSQL share; a backend (store/sqlite, store/postgres) supplies the
// connections and a small Dialect for the few places the two differ. The
// conformance suite in store/storetest runs against both, so "the same
// semantics on both" is checked, not hoped for.
//
// All access goes through transactions: Update for read-write, View for
// read-only. Functions passed to them may run more than once (a serialization
// failure is retried), so they must not have side effects outside the Tx.
//
// The store never sees content: message text, briefings and notes travel
// end-to-end encrypted and are not stored here in plaintext.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Errors returned by store operations. Callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict") // a uniqueness or state precondition failed
)

// Dialect is what a backend must supply.
type Dialect interface {
	// Name is "sqlite" or "postgres".
	Name() string
	// Rewrite turns the shared SQL of a migration into the backend's: the
	// tokens BYTES, SERIALPK and CHAINFUNC are replaced (see migrations).
	Rewrite(sql string) string
	// IsUniqueViolation reports whether err is a unique-constraint error.
	IsUniqueViolation(err error) bool
	// IsRetryable reports whether a transaction failed for a reason that a
	// retry can cure (serialization failure, deadlock, busy).
	IsRetryable(err error) bool
	// ForUpdate is appended to SELECTs that must lock the rows they read
	// (" FOR UPDATE" on PostgreSQL, "" on SQLite where writers are serial).
	ForUpdate() string
	// CachesStatements reports whether the driver keeps prepared
	// statements itself (pgx does); otherwise the store does.
	CachesStatements() bool
	// ModifyingCTE reports whether a WITH clause may hold an UPDATE whose
	// RETURNING rows an INSERT uses (PostgreSQL), so that the two are one
	// statement.
	ModifyingCTE() bool
}

// Store is the handle to a database. It is safe for concurrent use.
type Store struct {
	rw      *sql.DB // writers; on SQLite a single connection
	ro      *sql.DB // readers; may equal rw
	dialect Dialect
	log     *slog.Logger
	// Prepared statements of rw and ro, by query text: parsing a query
	// costs more than running most of them.
	rwStmts, roStmts *stmtCache
}

// New wraps open connections. Backends call it after Migrate has run. rw is
// used for Update, ro for View; they may be the same *sql.DB.
func New(rw, ro *sql.DB, d Dialect, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{rw: rw, ro: ro, dialect: d, log: log}
	if d.CachesStatements() {
		return s
	}
	s.rwStmts, s.roStmts = &stmtCache{db: rw}, &stmtCache{db: ro}
	if ro == rw {
		s.roStmts = s.rwStmts
	}
	return s
}

// stmtCache holds statements prepared on one *sql.DB (database/sql
// prepares each on a connection the first time a transaction there uses
// it), for backends whose driver does not cache them itself (SQLite's).
// A query seen for the first time runs unprepared while it is prepared in
// the background: preparing on the DB needs a free connection, which a
// transaction in progress may hold (SQLite's one writer). Queries built
// with a variable number of values are many; past maxStmts they are run
// unprepared.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex // guards m and closed
	m      map[string]*sql.Stmt
	closed bool
	wg     sync.WaitGroup // background preparations
}

const maxStmts = 256

func (c *stmtCache) get(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok || c.closed || len(c.m) >= maxStmts {
		return st // nil while it is being prepared
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = nil
	c.wg.Go(func() {
		st, err := c.db.Prepare(q)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil || c.closed {
			if st != nil {
				st.Close()
			}
			delete(c.m, q) // the query itself reports any error
			return
		}
		c.m[q] = st
	})
	return nil
}

// close waits for preparations in progress, then closes every statement.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		if st != nil {
			st.Close()
		}
	}
	c.m = nil
}

// Dialect returns the backend's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the connections.
func (s *Store) Close() error {
	s.rwStmts.close()
	if s.roStmts != s.rwStmts {
		s.roStmts.close()
	}
	err := s.rw.Close()
	if s.ro != s.rw {
		err = errors.Join(err, s.ro.Close())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.rw.PingContext(ctx) }

// Tx is a transaction. Its methods are the store's queries.
type Tx struct {
	tx    *sql.Tx // nil in UpdateOne and ViewOne
	db    *sql.DB // where statements run outside a transaction
	d     Dialect
	ro    bool
	stmts *stmtCache
}

const maxAttempts = 10

// Update runs fn in a read-write transaction and commits if fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.rw, false, fn)
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	return s.run(ctx, s.ro, true, fn)
}

// UpdateOne runs fn, which issues exactly one statement, outside a
// transaction: the statement commits by itself, and is as atomic as it is
// alone in a transaction. On a networked database this saves the round
// trips of BEGIN and COMMIT.
func (s *Store) UpdateOne(ctx context.Context, fn func(*Tx) error) error {
	return s.runOne(ctx, s.rw, false, fn)
}

// ViewOne runs fn, which issues exactly one read, outside a transaction
// (see UpdateOne).
func (s *Store) ViewOne(ctx context.Context, fn func(*Tx) error) error {
	return s.runOne(ctx, s.ro, true, fn)
}

func (s *Store) runOne(ctx context.Context, db *sql.DB, ro bool, fn func(*Tx) error) error {
	stmts := s.rwStmts
	if ro {
		stmts = s.roStmts
	}
	return s.retry(ctx, func() error { return fn(&Tx{db: db, d: s.dialect, ro: ro, stmts: stmts}) })
}

func (s *Store) run(ctx context.Context, db *sql.DB, ro bool, fn func(*Tx) error) error {
	return s.retry(ctx, func() error { return s.once(ctx, db, ro, fn) })
}

func (s *Store) retry(ctx context.Context, once func() error) error {
	var err error
	for attempt := range maxAttempts {
		err = once()
		if err == nil || !s.dialect.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		s.log.Debug("retrying transaction", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return err
}

func (s *Store) once(ctx context.Context, db *sql.DB, ro bool, fn func(*Tx) error) (err error) {
	sqlTx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: ro && s.dialect.Name() == "postgres"})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	stmts := s.rwStmts
	if ro {
		stmts = s.roStmts
	}
	if err = fn(&Tx{tx: sqlTx, d: s.dialect, ro: ro, stmts: stmts}); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	var (
		res sql.Result
		err error
	)
	switch st := t.stmts.get(q); {
	case st != nil && t.tx == nil:
		res, err = st.ExecContext(ctx, args...)
	case st != nil:
		res, err = t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	case t.tx == nil:
		res, err = t.db.ExecContext(ctx, q, args...)
	default:
		res, err = t.tx.ExecContext(ctx, q, args...)
	}
	if err != nil && t.d.IsUniqueViolation(err) {
		return nil, fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return res, err
}

// insertNew runs an INSERT … ON CONFLICT DO NOTHING and returns
// ErrConflict if it inserted nothing. Conflicts are detected this way, not
// by catching a unique violation, because on PostgreSQL a failed statement
// aborts the whole transaction while SQLite carries on.
func (t *Tx) insertNew(ctx context.Context, q string, args ...any) error {
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

// execOne runs a statement that must affect exactly one row; otherwise it
// returns ErrNotFound.
func (t *Tx) execOne(ctx context.Context, q string, args ...any) error {
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrNotFound
	}
	return nil
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	switch st := t.stmts.get(q); {
	case st != nil && t.tx == nil:
		return st.QueryRowContext(ctx, args...)
	case st != nil:
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	case t.tx == nil:
		return t.db.QueryRowContext(ctx, q, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	switch st := t.stmts.get(q); {
	case st != nil && t.tx == nil:
		return st.QueryContext(ctx, args...)
	case st != nil:
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	case t.tx == nil:
		return t.db.QueryContext(ctx, q, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// joinList and splitList store small sets (roles, compartments) as
// comma-separated text; members never contain commas.
func joinList[T ~string](xs []T) string {
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = string(x)
	}
	return strings.Join(ss, ",")
}

func splitList[T ~string](s string) []T {
	if s == "" {
		return []T{}
	}
	parts := strings.Split(s, ",")
	out := make([]T, len(parts))
	for i, p := range parts {
		out[i] = T(p)
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// forUpdate is the lock clause for SELECTs in read-write transactions.
func (t *Tx) forUpdate() string {
	if t.ro {
		return ""
	}
	return t.d.ForUpdate()
}

// forUpdateSkipLocked is the lock clause for taking one item off a queue:
// rows other transactions hold are skipped rather than waited for, so
// concurrent takers get different rows. SQLite's writers are serial and
// need no clause.
func (t *Tx) forUpdateSkipLocked() string {
	if t.ro || t.d.ForUpdate() == "" {
		return ""
	}
	return t.d.ForUpdate() + " SKIP LOCKED"
}
