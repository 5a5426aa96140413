package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// Readout is what an ad-hoc call owes the duty desk: a readout from the
// principal's side by DueAt. Status is due, filed or missing (flagged
// when DueAt passed without one; it may still be filed late).
type Readout struct {
	CallID       string
	GroupID      []byte // the call's conversation
	Principal    identity.UserID
	Others       []identity.UserID // who the principal talked to from outside the staff
	PlacedAt     time.Time
	DueAt        time.Time
	Status       string
	FiledBy      identity.UserID
	FiledAt      time.Time
	ReadoutGroup []byte // where the readout's text was sent
	FlaggedAt    time.Time
	// NoteTaker is the principal's designated note-taker when the call
	// was placed (zero: none), and NoteTakerStatus a stable code saying
	// whether they were rung ("rung") or why not ("not_member", …).
	NoteTaker       identity.UserID
	NoteTakerStatus string
}

// CreateReadout records that a call owes a readout.
func (t *Tx) CreateReadout(ctx context.Context, r Readout) error {
	taker := ""
	if !r.NoteTaker.IsZero() {
		taker = r.NoteTaker.String()
	}
	return t.insertNew(ctx, `INSERT INTO readouts (call_id, group_id, principal, others, placed_at, due_at, status, note_taker, note_taker_status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		r.CallID, r.GroupID, r.Principal.String(), joinList(userStrings(r.Others)), unix(r.PlacedAt), unix(r.DueAt), r.Status, taker, r.NoteTakerStatus)
}

// UpdateReadout writes a readout's status, filing and flag.
func (t *Tx) UpdateReadout(ctx context.Context, r Readout) error {
	filedBy := ""
	if !r.FiledBy.IsZero() {
		filedBy = r.FiledBy.String()
	}
	return t.execOne(ctx, `UPDATE readouts SET status = $1, filed_by = $2, filed_at = $3, readout_group = $4, flagged_at = $5 WHERE call_id = $6`,
		r.Status, filedBy, unix(r.FiledAt), r.ReadoutGroup, unix(r.FlaggedAt), r.CallID)
}

// GetReadout returns a call's readout, locked.
func (t *Tx) GetReadout(ctx context.Context, callID string) (Readout, error) {
	rs, err := t.readouts(ctx, `WHERE call_id = $1`+t.forUpdate(), callID)
	if err != nil {
		return Readout{}, err
	}
	if len(rs) == 0 {
		return Readout{}, ErrNotFound
	}
	return rs[0], nil
}

// ListReadouts returns the readouts of principal's calls (every one if
// principal is zero), newest first.
func (t *Tx) ListReadouts(ctx context.Context, principal identity.UserID) ([]Readout, error) {
	if principal.IsZero() {
		return t.readouts(ctx, `ORDER BY placed_at DESC, call_id`)
	}
	return t.readouts(ctx, `WHERE principal = $1 ORDER BY placed_at DESC, call_id`, principal.String())
}

// MissingReadouts returns up to limit readouts still due at now, past
// their deadline, locked (other nodes skip them).
func (t *Tx) MissingReadouts(ctx context.Context, now time.Time, limit int) ([]Readout, error) {
	return t.readouts(ctx, `WHERE status = 'due' AND due_at < $1 ORDER BY due_at, call_id LIMIT $2`+t.forUpdateSkipLocked(), unix(now), limit)
}

func (t *Tx) readouts(ctx context.Context, where string, args ...any) ([]Readout, error) {
	rows, err := t.query(ctx, `SELECT call_id, group_id, principal, others, placed_at, due_at, status, filed_by, filed_at, readout_group, flagged_at,
		note_taker, note_taker_status FROM readouts `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Readout
	for rows.Next() {
		var (
			r                                 Readout
			principal, others, filedBy, taker string
			placed, due, filed, flagged       int64
			group                             sql.RawBytes
		)
		if err := rows.Scan(&r.CallID, &r.GroupID, &principal, &others, &placed, &due, &r.Status, &filedBy, &filed, &group, &flagged,
			&taker, &r.NoteTakerStatus); err != nil {
			return nil, err
		}
		if taker != "" {
			if r.NoteTaker, err = identity.ParseUserID(taker); err != nil {
				return nil, fmt.Errorf("stored readout %s: %w", r.CallID, err)
			}
		}
		if len(group) > 0 {
			r.ReadoutGroup = append([]byte(nil), group...)
		}
		if r.Principal, err = identity.ParseUserID(principal); err != nil {
			return nil, fmt.Errorf("stored readout %s: %w", r.CallID, err)
		}
		if filedBy != "" {
			if r.FiledBy, err = identity.ParseUserID(filedBy); err != nil {
				return nil, fmt.Errorf("stored readout %s: %w", r.CallID, err)
			}
		}
		for _, s := range splitList[string](others) {
			u, err := identity.ParseUserID(s)
			if err != nil {
				return nil, fmt.Errorf("stored readout %s: %w", r.CallID, err)
			}
			r.Others = append(r.Others, u)
		}
		r.PlacedAt, r.DueAt, r.FiledAt, r.FlaggedAt = fromUnix(placed), fromUnix(due), fromUnix(filed), fromUnix(flagged)
		out = append(out, r)
	}
	return out, rows.Err()
}
