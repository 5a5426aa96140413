// Package sqlite opens the store on an embedded SQLite database
// (modernc.org/sqlite: pure Go, no cgo) in write-ahead-log mode.
//
// Writers share one connection, so transactions that write are serial and
// never see SQLITE_BUSY from each other; readers use a small pool and see a
// consistent snapshot while a write is in progress. synchronous=FULL makes a
// committed transaction survive power loss, not only a killed process.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"hotline/internal/conversation"
	"hotline/internal/store"
)

// The store's SQL computes conversations' message chains with
// hotline_chain(prev, data), which PostgreSQL gets from a migration and
// SQLite from here (the driver's registry is global: every connection
// opened through it has the function).
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("hotline_chain", 2, chainFunc)
}

// chainFunc is conversation.ChainNext. A NULL or TEXT prev is taken as its
// bytes (NULL: empty), as is data.
func chainFunc(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	var b [2][]byte
	for i, a := range args {
		switch v := a.(type) {
		case nil:
		case []byte:
			b[i] = v
		case string:
			b[i] = []byte(v)
		default:
			return nil, fmt.Errorf("hotline_chain: argument %d is %T, not bytes", i+1, a)
		}
	}
	return conversation.ChainNext(b[0], b[1]), nil
}

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string, log *slog.Logger) (*store.Store, error) {
	rw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	rw.SetMaxOpenConns(1)
	if err := store.Migrate(ctx, rw, Dialect{}); err != nil {
		rw.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	ro, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	ro.SetMaxOpenConns(4)
	return store.New(rw, ro, Dialect{}, log), nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Backup writes a consistent snapshot of the database at path to dest
// (which must not exist) while other processes may be writing to it.
func Backup(ctx context.Context, path, dest string) error {
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, dest); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}

// Dialect is SQLite's store.Dialect.
type Dialect struct{}

func (Dialect) Name() string { return "sqlite" }

func (Dialect) Rewrite(s string) string {
	return strings.NewReplacer("BYTES", "BLOB", "SERIALPK", "INTEGER PRIMARY KEY AUTOINCREMENT", "CHAINFUNC", "").Replace(s)
}

func (Dialect) IsUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

func (Dialect) IsRetryable(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff == sqlite3.SQLITE_BUSY || e.Code()&0xff == sqlite3.SQLITE_LOCKED)
}

func (Dialect) ForUpdate() string { return "" }

// CachesStatements is false: the store keeps SQLite's prepared statements.
func (Dialect) CachesStatements() bool { return false }

// ModifyingCTE is false: SQLite's WITH clauses hold only SELECTs.
func (Dialect) ModifyingCTE() bool { return false }
