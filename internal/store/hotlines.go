package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// Hotline is a standing line between two devices: the near end, which the
// server asks to test the line, and the far end, which answers. A test in
// flight has a PendingNonce; NextAt is when the next one is asked for.
type Hotline struct {
	ID           string
	GroupID      []byte
	NearUser     identity.UserID
	NearDevice   string
	FarUser      identity.UserID
	FarDevice    string
	Interval     time.Duration
	Timeout      time.Duration
	Status       string // unknown, green, red
	CreatedBy    identity.UserID
	CreatedAt    time.Time
	NextAt       time.Time
	PendingNonce string
	PendingAt    time.Time
	LastOKAt     time.Time
	ChangedAt    time.Time
}

// HotlineTest is one test of a line: ok with its round-trip latency, or
// timeout.
type HotlineTest struct {
	HotlineID string
	Nonce     string
	IssuedAt  time.Time
	Result    string
	Latency   time.Duration
}

// CreateHotline stores a new line.
func (t *Tx) CreateHotline(ctx context.Context, h Hotline) error {
	return t.insertNew(ctx, `INSERT INTO hotlines (id, group_id, near_user, near_device, far_user, far_device, interval_s, timeout_s, status, created_by, created_at, next_at, changed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
		h.ID, h.GroupID, h.NearUser.String(), h.NearDevice, h.FarUser.String(), h.FarDevice, int64(h.Interval/time.Second), int64(h.Timeout/time.Second),
		h.Status, h.CreatedBy.String(), unix(h.CreatedAt), unix(h.NextAt), unix(h.ChangedAt))
}

// UpdateHotline writes a line's status and test state.
func (t *Tx) UpdateHotline(ctx context.Context, h Hotline) error {
	return t.execOne(ctx, `UPDATE hotlines SET status = $1, next_at = $2, pending_nonce = $3, pending_at = $4, last_ok_at = $5, changed_at = $6 WHERE id = $7`,
		h.Status, unix(h.NextAt), h.PendingNonce, unix(h.PendingAt), unix(h.LastOKAt), unix(h.ChangedAt), h.ID)
}

// GetHotline returns a line, locked.
func (t *Tx) GetHotline(ctx context.Context, id string) (Hotline, error) {
	hs, err := t.hotlines(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return Hotline{}, err
	}
	if len(hs) == 0 {
		return Hotline{}, ErrNotFound
	}
	return hs[0], nil
}

// ListHotlines returns every line, oldest first.
func (t *Tx) ListHotlines(ctx context.Context) ([]Hotline, error) {
	return t.hotlines(ctx, `ORDER BY created_at, id`)
}

// DueHotlines returns up to limit lines with a test to ask for or one
// overdue at now, locked (other nodes skip them).
func (t *Tx) DueHotlines(ctx context.Context, now time.Time, limit int) ([]Hotline, error) {
	return t.hotlines(ctx, `WHERE (pending_nonce = '' AND next_at <= $1) OR (pending_nonce <> '' AND pending_at + timeout_s <= $1)
		ORDER BY next_at, id LIMIT $2`+t.forUpdateSkipLocked(), unix(now), limit)
}

func (t *Tx) hotlines(ctx context.Context, where string, args ...any) ([]Hotline, error) {
	rows, err := t.query(ctx, `SELECT id, group_id, near_user, near_device, far_user, far_device, interval_s, timeout_s, status, created_by, created_at,
		next_at, pending_nonce, pending_at, last_ok_at, changed_at FROM hotlines `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Hotline
	for rows.Next() {
		var (
			h                                              Hotline
			near, far, by                                  string
			interval, timeout, created, next, pend, ok, ch int64
		)
		if err := rows.Scan(&h.ID, &h.GroupID, &near, &h.NearDevice, &far, &h.FarDevice, &interval, &timeout, &h.Status, &by, &created,
			&next, &h.PendingNonce, &pend, &ok, &ch); err != nil {
			return nil, err
		}
		for _, u := range []struct {
			s   string
			dst *identity.UserID
		}{{near, &h.NearUser}, {far, &h.FarUser}, {by, &h.CreatedBy}} {
			if *u.dst, err = identity.ParseUserID(u.s); err != nil {
				return nil, fmt.Errorf("stored hotline %s: %w", h.ID, err)
			}
		}
		h.Interval, h.Timeout = time.Duration(interval)*time.Second, time.Duration(timeout)*time.Second
		h.CreatedAt, h.NextAt, h.PendingAt, h.LastOKAt, h.ChangedAt = fromUnix(created), fromUnix(next), fromUnix(pend), fromUnix(ok), fromUnix(ch)
		out = append(out, h)
	}
	return out, rows.Err()
}

// AddHotlineTest records a test's outcome.
func (t *Tx) AddHotlineTest(ctx context.Context, h HotlineTest) error {
	return t.insertNew(ctx, `INSERT INTO hotline_tests (hotline_id, nonce, issued_at, result, latency_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		h.HotlineID, h.Nonce, unix(h.IssuedAt), h.Result, h.Latency.Microseconds())
}

// HotlineTests returns a line's latest tests, newest first, up to limit.
func (t *Tx) HotlineTests(ctx context.Context, id string, limit int) ([]HotlineTest, error) {
	rows, err := t.query(ctx, `SELECT nonce, issued_at, result, latency_us FROM hotline_tests WHERE hotline_id = $1 ORDER BY issued_at DESC, nonce LIMIT $2`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HotlineTest
	for rows.Next() {
		x := HotlineTest{HotlineID: id}
		var at, us int64
		if err := rows.Scan(&x.Nonce, &at, &x.Result, &us); err != nil {
			return nil, err
		}
		x.IssuedAt, x.Latency = fromUnix(at), time.Duration(us)*time.Microsecond
		out = append(out, x)
	}
	return out, rows.Err()
}
