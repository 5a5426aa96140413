package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// MemCon is a memorandum of conversation as the server keeps it: metadata
// only. Its text is MLS messages in GroupID (the draft, to the approver)
// and DistGroup (the copy, to the need-to-know list).
type MemCon struct {
	ID            string
	RequestID     string
	Drafter       identity.UserID
	Approver      identity.UserID
	Status        string // draft, approved, distributed
	GroupID       []byte
	CreatedAt     time.Time
	ApprovedAt    time.Time
	DistGroup     []byte
	Recipients    []identity.UserID
	DistributedAt time.Time
}

// Commitment is a promise recorded in a MemCon: its owner, due date and
// status (open, done, cancelled; draft until its MemCon is approved).
type Commitment struct {
	ID        string
	MemConID  string
	Owner     identity.UserID
	DueAt     time.Time
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
	AlertedAt time.Time // when its owner and the desk were told it is overdue
}

// CreateMemCon stores a new MemCon.
func (t *Tx) CreateMemCon(ctx context.Context, m MemCon) error {
	return t.insertNew(ctx, `INSERT INTO memcons (id, request_id, drafter, approver, status, group_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		m.ID, m.RequestID, m.Drafter.String(), m.Approver.String(), m.Status, m.GroupID, unix(m.CreatedAt))
}

// UpdateMemCon writes a MemCon's status, approval and distribution.
func (t *Tx) UpdateMemCon(ctx context.Context, m MemCon) error {
	return t.execOne(ctx, `UPDATE memcons SET status = $1, approved_at = $2, dist_group = $3, recipients = $4, distributed_at = $5 WHERE id = $6`,
		m.Status, unix(m.ApprovedAt), m.DistGroup, joinList(userStrings(m.Recipients)), unix(m.DistributedAt), m.ID)
}

// GetMemCon returns a MemCon, locking it until the transaction ends.
func (t *Tx) GetMemCon(ctx context.Context, id string) (MemCon, error) {
	ms, err := t.memcons(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return MemCon{}, err
	}
	if len(ms) == 0 {
		return MemCon{}, ErrNotFound
	}
	return ms[0], nil
}

// ListMemCons returns every MemCon, newest first.
func (t *Tx) ListMemCons(ctx context.Context) ([]MemCon, error) {
	return t.memcons(ctx, `ORDER BY created_at DESC, id`)
}

func (t *Tx) memcons(ctx context.Context, where string, args ...any) ([]MemCon, error) {
	rows, err := t.query(ctx, `SELECT id, request_id, drafter, approver, status, group_id, created_at, approved_at, dist_group, recipients, distributed_at FROM memcons `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MemCon
	for rows.Next() {
		var (
			m                       MemCon
			drafter, approver, recs string
			created, approved, dist int64
			distGroup               sql.RawBytes
		)
		if err := rows.Scan(&m.ID, &m.RequestID, &drafter, &approver, &m.Status, &m.GroupID, &created, &approved, &distGroup, &recs, &dist); err != nil {
			return nil, err
		}
		if len(distGroup) > 0 {
			m.DistGroup = append([]byte(nil), distGroup...)
		}
		if m.Drafter, err = identity.ParseUserID(drafter); err != nil {
			return nil, fmt.Errorf("stored memcon %s: %w", m.ID, err)
		}
		if m.Approver, err = identity.ParseUserID(approver); err != nil {
			return nil, fmt.Errorf("stored memcon %s: %w", m.ID, err)
		}
		for _, s := range splitList[string](recs) {
			u, err := identity.ParseUserID(s)
			if err != nil {
				return nil, fmt.Errorf("stored memcon %s recipient: %w", m.ID, err)
			}
			m.Recipients = append(m.Recipients, u)
		}
		m.CreatedAt, m.ApprovedAt, m.DistributedAt = fromUnix(created), fromUnix(approved), fromUnix(dist)
		out = append(out, m)
	}
	return out, rows.Err()
}

// CreateCommitment stores a commitment.
func (t *Tx) CreateCommitment(ctx context.Context, c Commitment) error {
	return t.insertNew(ctx, `INSERT INTO commitments (id, memcon_id, owner, due_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		c.ID, c.MemConID, c.Owner.String(), unix(c.DueAt), c.Status, unix(c.CreatedAt), unix(c.UpdatedAt))
}

// UpdateCommitment writes a commitment's status and alert time.
func (t *Tx) UpdateCommitment(ctx context.Context, c Commitment) error {
	return t.execOne(ctx, `UPDATE commitments SET status = $1, updated_at = $2, alerted_at = $3 WHERE id = $4`,
		c.Status, unix(c.UpdatedAt), unix(c.AlertedAt), c.ID)
}

// GetCommitment returns a commitment, locking it.
func (t *Tx) GetCommitment(ctx context.Context, id string) (Commitment, error) {
	cs, err := t.commitments(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return Commitment{}, err
	}
	if len(cs) == 0 {
		return Commitment{}, ErrNotFound
	}
	return cs[0], nil
}

// MemConCommitments returns a MemCon's commitments by due date.
func (t *Tx) MemConCommitments(ctx context.Context, memcon string) ([]Commitment, error) {
	return t.commitments(ctx, `WHERE memcon_id = $1 ORDER BY due_at, id`, memcon)
}

// ListCommitments returns the commitments owned by owner (every one if
// owner is zero) that are not drafts, by due date.
func (t *Tx) ListCommitments(ctx context.Context, owner identity.UserID) ([]Commitment, error) {
	if owner.IsZero() {
		return t.commitments(ctx, `WHERE status <> 'draft' ORDER BY due_at, id`)
	}
	return t.commitments(ctx, `WHERE owner = $1 AND status <> 'draft' ORDER BY due_at, id`, owner.String())
}

// OverdueCommitments returns up to limit open commitments due before now
// whose owner has not been alerted yet, locked (other nodes skip them).
func (t *Tx) OverdueCommitments(ctx context.Context, now time.Time, limit int) ([]Commitment, error) {
	return t.commitments(ctx, `WHERE status = 'open' AND due_at < $1 AND alerted_at = 0 ORDER BY due_at, id LIMIT $2`+t.forUpdateSkipLocked(), unix(now), limit)
}

func (t *Tx) commitments(ctx context.Context, where string, args ...any) ([]Commitment, error) {
	rows, err := t.query(ctx, `SELECT id, memcon_id, owner, due_at, status, created_at, updated_at, alerted_at FROM commitments `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Commitment
	for rows.Next() {
		var (
			c                              Commitment
			owner                          string
			due, created, updated, alerted int64
		)
		if err := rows.Scan(&c.ID, &c.MemConID, &owner, &due, &c.Status, &created, &updated, &alerted); err != nil {
			return nil, err
		}
		if c.Owner, err = identity.ParseUserID(owner); err != nil {
			return nil, fmt.Errorf("stored commitment %s: %w", c.ID, err)
		}
		c.DueAt, c.CreatedAt, c.UpdatedAt, c.AlertedAt = fromUnix(due), fromUnix(created), fromUnix(updated), fromUnix(alerted)
		out = append(out, c)
	}
	return out, rows.Err()
}

func userStrings(us []identity.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
