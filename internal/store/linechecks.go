package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// LineCheck is a check of both ends of a call request's line: Results is
// the per-device, per-check outcome as JSON (api.LineCheck's ends),
// metadata only. Status is running until every end reported or Deadline
// passed, then done.
type LineCheck struct {
	ID        string
	RequestID string
	CreatedBy identity.UserID
	CreatedAt time.Time
	Deadline  time.Time
	Status    string
	Results   string
}

// CreateLineCheck stores a new line check.
func (t *Tx) CreateLineCheck(ctx context.Context, l LineCheck) error {
	return t.insertNew(ctx, `INSERT INTO linechecks (id, request_id, created_by, created_at, deadline, status, results) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		l.ID, l.RequestID, l.CreatedBy.String(), unix(l.CreatedAt), unix(l.Deadline), l.Status, l.Results)
}

// UpdateLineCheck writes a line check's status and results.
func (t *Tx) UpdateLineCheck(ctx context.Context, l LineCheck) error {
	return t.execOne(ctx, `UPDATE linechecks SET status = $1, results = $2 WHERE id = $3`, l.Status, l.Results, l.ID)
}

// GetLineCheck returns a line check, locked.
func (t *Tx) GetLineCheck(ctx context.Context, id string) (LineCheck, error) {
	ls, err := t.linechecks(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return LineCheck{}, err
	}
	if len(ls) == 0 {
		return LineCheck{}, ErrNotFound
	}
	return ls[0], nil
}

// RequestLineChecks returns a request's line checks, newest first, up to
// limit.
func (t *Tx) RequestLineChecks(ctx context.Context, request string, limit int) ([]LineCheck, error) {
	return t.linechecks(ctx, `WHERE request_id = $1 ORDER BY created_at DESC, id LIMIT $2`, request, limit)
}

// ExpiredLineChecks returns up to limit running checks past their
// deadline, locked (other nodes skip them).
func (t *Tx) ExpiredLineChecks(ctx context.Context, now time.Time, limit int) ([]LineCheck, error) {
	return t.linechecks(ctx, `WHERE status = 'running' AND deadline <= $1 ORDER BY deadline, id LIMIT $2`+t.forUpdateSkipLocked(), unix(now), limit)
}

func (t *Tx) linechecks(ctx context.Context, where string, args ...any) ([]LineCheck, error) {
	rows, err := t.query(ctx, `SELECT id, request_id, created_by, created_at, deadline, status, results FROM linechecks `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LineCheck
	for rows.Next() {
		var (
			l                 LineCheck
			by                string
			created, deadline int64
		)
		if err := rows.Scan(&l.ID, &l.RequestID, &by, &created, &deadline, &l.Status, &l.Results); err != nil {
			return nil, err
		}
		if l.CreatedBy, err = identity.ParseUserID(by); err != nil {
			return nil, fmt.Errorf("stored line check %s: %w", l.ID, err)
		}
		l.CreatedAt, l.Deadline = fromUnix(created), fromUnix(deadline)
		out = append(out, l)
	}
	return out, rows.Err()
}
