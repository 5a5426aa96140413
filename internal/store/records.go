package store

import (
	"context"
	"time"

	"hotline/internal/identity"
)

// The records policy: how long the archive keeps the records of each
// classification level, the legal holds that suspend every deletion, and
// how far the archive has let each conversation's records go. The
// transparency log has every change; these tables let the server check
// requests against them.

// Retention is one level's retention schedule.
type Retention struct {
	Level string // a classification level's token
	Days  int
	SetBy identity.UserID
	SetAt time.Time
}

// SetRetention sets a level's schedule; days 0 removes it (kept for good).
func (t *Tx) SetRetention(ctx context.Context, r Retention) error {
	if r.Days == 0 {
		_, err := t.exec(ctx, `DELETE FROM records_retention WHERE level = $1`, r.Level)
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO records_retention (level, days, set_by, set_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (level) DO UPDATE SET days = excluded.days, set_by = excluded.set_by, set_at = excluded.set_at`,
		r.Level, r.Days, r.SetBy.String(), unix(r.SetAt))
	return err
}

// Retentions returns every schedule, by level.
func (t *Tx) Retentions(ctx context.Context) ([]Retention, error) {
	rows, err := t.query(ctx, `SELECT level, days, set_by, set_at FROM records_retention ORDER BY level`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Retention
	for rows.Next() {
		var (
			r     Retention
			by    string
			setAt int64
		)
		if err := rows.Scan(&r.Level, &r.Days, &by, &setAt); err != nil {
			return nil, err
		}
		r.SetBy, r.SetAt = parseUserOrZero(by), fromUnix(setAt)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Hold is a legal hold: on one conversation, or on all (GroupID nil).
type Hold struct {
	ID         string
	GroupID    []byte
	Reason     string
	CreatedBy  identity.UserID
	CreatedAt  time.Time
	ReleasedBy identity.UserID // zero while in force
	ReleasedAt time.Time
}

// CreateHold records a hold.
func (t *Tx) CreateHold(ctx context.Context, h Hold) error {
	_, err := t.exec(ctx, `INSERT INTO records_holds (id, group_id, reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5)`,
		h.ID, h.GroupID, h.Reason, h.CreatedBy.String(), unix(h.CreatedAt))
	return err
}

// ReleaseHold releases a hold in force; ErrNotFound if there is none by
// that ID in force.
func (t *Tx) ReleaseHold(ctx context.Context, id string, by identity.UserID, at time.Time) error {
	return t.execOne(ctx, `UPDATE records_holds SET released_by = $1, released_at = $2 WHERE id = $3 AND released_at = 0`,
		by.String(), unix(at), id)
}

// Holds returns the holds, those in force only unless all.
func (t *Tx) Holds(ctx context.Context, all bool) ([]Hold, error) {
	where := `WHERE released_at = 0`
	if all {
		where = ``
	}
	rows, err := t.query(ctx, `SELECT id, group_id, reason, created_by, created_at, released_by, released_at FROM records_holds `+where+` ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var (
			h                Hold
			by, relBy        string
			created, relTime int64
		)
		if err := rows.Scan(&h.ID, &h.GroupID, &h.Reason, &by, &created, &relBy, &relTime); err != nil {
			return nil, err
		}
		h.CreatedBy, h.CreatedAt = parseUserOrZero(by), fromUnix(created)
		if relTime != 0 {
			h.ReleasedBy, h.ReleasedAt = parseUserOrZero(relBy), fromUnix(relTime)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Expired returns through which message a conversation's records were let
// go (0: none).
func (t *Tx) Expired(ctx context.Context, groupID []byte) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `SELECT through FROM records_expiries WHERE group_id = $1`+t.forUpdate(), groupID).Scan(&n)
	if err := notFound(err); err == ErrNotFound {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return n, nil
}

// SetExpired records that a conversation's records were let go through a
// message.
func (t *Tx) SetExpired(ctx context.Context, groupID []byte, through int64, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO records_expiries (group_id, through, expired_at) VALUES ($1, $2, $3)
		ON CONFLICT (group_id) DO UPDATE SET through = excluded.through, expired_at = excluded.expired_at`, groupID, through, unix(at))
	return err
}

// RecordsLevel returns the level a conversation's records were
// reclassified to ("": never reclassified).
func (t *Tx) RecordsLevel(ctx context.Context, groupID []byte) (string, error) {
	var level string
	err := t.queryRow(ctx, `SELECT level FROM records_levels WHERE group_id = $1`, groupID).Scan(&level)
	if err := notFound(err); err == ErrNotFound {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return level, nil
}

// SetRecordsLevel reclassifies a conversation's records.
func (t *Tx) SetRecordsLevel(ctx context.Context, groupID []byte, level string, by identity.UserID, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO records_levels (group_id, level, set_by, set_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (group_id) DO UPDATE SET level = excluded.level, set_by = excluded.set_by, set_at = excluded.set_at`, groupID, level, by.String(), unix(at))
	return err
}

// parseUserOrZero reads a user ID the store wrote; a corrupt one reads as
// the zero ID rather than failing a listing.
func parseUserOrZero(s string) identity.UserID {
	id, err := identity.ParseUserID(s)
	if err != nil {
		return identity.UserID{}
	}
	return id
}
