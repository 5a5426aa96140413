package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// NoteTaker is a principal's designated note-taker: the one rung into the
// principal's ad-hoc calls, and who designated them.
type NoteTaker struct {
	Principal identity.UserID
	NoteTaker identity.UserID
	SetBy     identity.UserID
	SetAt     time.Time
}

// SetNoteTaker designates a principal's note-taker, replacing any other.
func (t *Tx) SetNoteTaker(ctx context.Context, n NoteTaker) error {
	_, err := t.exec(ctx, `INSERT INTO note_takers (principal, note_taker, set_by, set_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (principal) DO UPDATE SET note_taker = excluded.note_taker, set_by = excluded.set_by, set_at = excluded.set_at`,
		n.Principal.String(), n.NoteTaker.String(), n.SetBy.String(), unix(n.SetAt))
	return err
}

// ClearNoteTaker removes a principal's designated note-taker; ErrNotFound
// if there is none.
func (t *Tx) ClearNoteTaker(ctx context.Context, principal identity.UserID) error {
	return t.execOne(ctx, `DELETE FROM note_takers WHERE principal = $1`, principal.String())
}

// GetNoteTaker returns a principal's designated note-taker, locked;
// ErrNotFound if there is none.
func (t *Tx) GetNoteTaker(ctx context.Context, principal identity.UserID) (NoteTaker, error) {
	ns, err := t.noteTakers(ctx, `WHERE principal = $1`+t.forUpdate(), principal.String())
	if err != nil {
		return NoteTaker{}, err
	}
	if len(ns) == 0 {
		return NoteTaker{}, ErrNotFound
	}
	return ns[0], nil
}

// ListNoteTakers returns every designation, by principal.
func (t *Tx) ListNoteTakers(ctx context.Context) ([]NoteTaker, error) {
	return t.noteTakers(ctx, `ORDER BY principal`)
}

func (t *Tx) noteTakers(ctx context.Context, where string, args ...any) ([]NoteTaker, error) {
	rows, err := t.query(ctx, `SELECT principal, note_taker, set_by, set_at FROM note_takers `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []NoteTaker
	for rows.Next() {
		var (
			n                       NoteTaker
			principal, taker, setBy string
			at                      int64
		)
		if err := rows.Scan(&principal, &taker, &setBy, &at); err != nil {
			return nil, err
		}
		for _, f := range []struct {
			s  string
			to *identity.UserID
		}{{principal, &n.Principal}, {taker, &n.NoteTaker}, {setBy, &n.SetBy}} {
			if *f.to, err = identity.ParseUserID(f.s); err != nil {
				return nil, fmt.Errorf("stored note-taker of %s: %w", principal, err)
			}
		}
		n.SetAt = fromUnix(at)
		out = append(out, n)
	}
	return out, rows.Err()
}
