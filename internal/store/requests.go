package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"hotline/internal/desk"
	"hotline/internal/identity"
)

// Window is a span of time a call could take place in.
type Window = desk.Window

// CallRequest is a request for a call with a principal, as the server keeps
// it: metadata only. The purpose, any reason and the briefing are MLS
// messages in the conversations GroupID and BriefGroup.
type CallRequest struct {
	ID              string
	Requester       identity.UserID
	RequesterDevice string
	Principal       identity.UserID
	Urgency         string
	Status          string   // see internal/desk
	GroupID         []byte   // the request's conversation: requester and duty desk
	Zone            string   // the requester's time zone (IANA name), for display
	Windows         []Window // proposed: by the requester, then by the desk
	ScheduledAt     time.Time
	Duration        time.Duration
	DecidedBy       identity.UserID // zero until the desk decides
	CreatedAt       time.Time
	UpdatedAt       time.Time
	BriefGroup      []byte // the briefing's conversation: staff and the principal
	BriefBy         identity.UserID
	BriefVersion    int
	BriefAt         time.Time
	BriefAcked      int // the version the principal acknowledged (0: none)
	BriefAckedAt    time.Time
}

// CreateCallRequest stores a new request.
func (t *Tx) CreateCallRequest(ctx context.Context, r CallRequest) error {
	ws, err := windowsJSON(r.Windows)
	if err != nil {
		return err
	}
	return t.insertNew(ctx, `INSERT INTO call_requests (id, requester, requester_device, principal, urgency, status, group_id, zone, windows, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
		r.ID, r.Requester.String(), r.RequesterDevice, r.Principal.String(), r.Urgency, r.Status, r.GroupID, r.Zone, ws, unix(r.CreatedAt), unix(r.UpdatedAt))
}

// UpdateCallRequest writes a request's mutable fields: status, windows,
// schedule, decision and briefing.
func (t *Tx) UpdateCallRequest(ctx context.Context, r CallRequest) error {
	ws, err := windowsJSON(r.Windows)
	if err != nil {
		return err
	}
	decided := ""
	if !r.DecidedBy.IsZero() {
		decided = r.DecidedBy.String()
	}
	briefBy := ""
	if !r.BriefBy.IsZero() {
		briefBy = r.BriefBy.String()
	}
	return t.execOne(ctx, `UPDATE call_requests SET status = $1, windows = $2, scheduled_at = $3, duration = $4, decided_by = $5, updated_at = $6,
		brief_group = $7, brief_by = $8, brief_version = $9, brief_at = $10, brief_acked = $11, brief_acked_at = $12 WHERE id = $13`,
		r.Status, ws, unix(r.ScheduledAt), int64(r.Duration/time.Second), decided, unix(r.UpdatedAt),
		r.BriefGroup, briefBy, r.BriefVersion, unix(r.BriefAt), r.BriefAcked, unix(r.BriefAckedAt), r.ID)
}

// GetCallRequest returns a request, locking it until the transaction ends.
func (t *Tx) GetCallRequest(ctx context.Context, id string) (CallRequest, error) {
	rs, err := t.callRequests(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return CallRequest{}, err
	}
	if len(rs) == 0 {
		return CallRequest{}, ErrNotFound
	}
	return rs[0], nil
}

// RequestFilter selects call requests. Zero fields select everything.
type RequestFilter struct {
	// Involving selects requests the user made or that name them as the
	// principal.
	Involving identity.UserID
	Statuses  []string
	// From and To bound ScheduledAt (From inclusive, To exclusive); either
	// set selects scheduled requests only.
	From, To time.Time
}

// ListCallRequests returns the requests f selects: by ScheduledAt when it
// bounds the schedule, newest first otherwise.
func (t *Tx) ListCallRequests(ctx context.Context, f RequestFilter) ([]CallRequest, error) {
	where, args := "WHERE 1 = 1", []any{}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.Involving.IsZero() {
		u := f.Involving.String()
		where += " AND (requester = " + arg(u) + " OR principal = " + arg(u) + ")"
	}
	if len(f.Statuses) > 0 {
		where += " AND status IN ("
		for i, s := range f.Statuses {
			if i > 0 {
				where += ", "
			}
			where += arg(s)
		}
		where += ")"
	}
	order := " ORDER BY created_at DESC, id"
	if !f.From.IsZero() || !f.To.IsZero() {
		where += " AND scheduled_at > 0"
		if !f.From.IsZero() {
			where += " AND scheduled_at >= " + arg(unix(f.From))
		}
		if !f.To.IsZero() {
			where += " AND scheduled_at < " + arg(unix(f.To))
		}
		order = " ORDER BY scheduled_at, id"
	}
	return t.callRequests(ctx, where+order, args...)
}

func (t *Tx) callRequests(ctx context.Context, where string, args ...any) ([]CallRequest, error) {
	rows, err := t.query(ctx, `SELECT id, requester, requester_device, principal, urgency, status, group_id, zone, windows, scheduled_at, duration,
		decided_by, created_at, updated_at, brief_group, brief_by, brief_version, brief_at, brief_acked, brief_acked_at FROM call_requests `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []CallRequest
	for rows.Next() {
		var (
			r                                           CallRequest
			requester, principal, decided, briefBy, ws  string
			scheduled, dur, created, updated, bat, back int64
			briefGroup                                  sql.RawBytes
		)
		if err := rows.Scan(&r.ID, &requester, &r.RequesterDevice, &principal, &r.Urgency, &r.Status, &r.GroupID, &r.Zone, &ws, &scheduled, &dur,
			&decided, &created, &updated, &briefGroup, &briefBy, &r.BriefVersion, &bat, &r.BriefAcked, &back); err != nil {
			return nil, err
		}
		if len(briefGroup) > 0 {
			r.BriefGroup = append([]byte(nil), briefGroup...)
		}
		for _, u := range []struct {
			s   string
			dst *identity.UserID
		}{{requester, &r.Requester}, {principal, &r.Principal}, {decided, &r.DecidedBy}, {briefBy, &r.BriefBy}} {
			if u.s == "" {
				continue
			}
			if *u.dst, err = identity.ParseUserID(u.s); err != nil {
				return nil, fmt.Errorf("stored call request %s: %w", r.ID, err)
			}
		}
		var pairs [][2]int64
		if err := json.Unmarshal([]byte(ws), &pairs); err != nil {
			return nil, fmt.Errorf("stored call request %s windows: %w", r.ID, err)
		}
		for _, p := range pairs {
			r.Windows = append(r.Windows, Window{Start: fromUnix(p[0]), End: fromUnix(p[1])})
		}
		r.ScheduledAt, r.Duration = fromUnix(scheduled), time.Duration(dur)*time.Second
		r.CreatedAt, r.UpdatedAt, r.BriefAt, r.BriefAckedAt = fromUnix(created), fromUnix(updated), fromUnix(bat), fromUnix(back)
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// windowsJSON encodes windows as [[start, end], ...] in unix seconds.
func windowsJSON(ws []Window) (string, error) {
	pairs := make([][2]int64, 0, len(ws))
	for _, w := range ws {
		pairs = append(pairs, [2]int64{unix(w.Start), unix(w.End)})
	}
	b, err := json.Marshal(pairs)
	return string(b), err
}
