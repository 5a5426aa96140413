package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// Change-request statuses.
const (
	ChangePending  = "pending"
	ChangeApplied  = "applied"
	ChangeReplaced = "replaced" // a newer request for the same subject and kind took its place
)

// ChangeRequest is a change that needs a second approver before it applies
// (raising a clearance, for one). Payload is metadata the server acts on
// (JSON), never content.
type ChangeRequest struct {
	ID          int64
	Kind        string
	Subject     string
	Payload     string
	RequestedBy identity.UserID
	CreatedAt   time.Time
	Status      string
	ResolvedAt  time.Time
	Approvers   []identity.UserID // the requester first
}

// CreateChangeRequest stores a pending request, replacing any pending one of
// the same kind and subject, and records the requester as first approver.
// It returns the new ID.
func (t *Tx) CreateChangeRequest(ctx context.Context, r ChangeRequest) (int64, error) {
	if _, err := t.exec(ctx, `UPDATE change_requests SET status = $1, resolved_at = $2 WHERE kind = $3 AND subject = $4 AND status = $5`,
		ChangeReplaced, unix(r.CreatedAt), r.Kind, r.Subject, ChangePending); err != nil {
		return 0, err
	}
	var id int64
	err := t.queryRow(ctx, `INSERT INTO change_requests (kind, subject, payload, requested_by, created_at, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		r.Kind, r.Subject, r.Payload, r.RequestedBy.String(), unix(r.CreatedAt), ChangePending).Scan(&id)
	if err != nil {
		return 0, err
	}
	return id, t.ApproveChangeRequest(ctx, id, r.RequestedBy, r.CreatedAt)
}

// ApproveChangeRequest adds an approver; ErrConflict if that user already
// approved.
func (t *Tx) ApproveChangeRequest(ctx context.Context, id int64, approver identity.UserID, at time.Time) error {
	return t.insertNew(ctx, `INSERT INTO change_approvals (request_id, approver, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, approver.String(), unix(at))
}

// ResolveChangeRequest moves a pending request to status.
func (t *Tx) ResolveChangeRequest(ctx context.Context, id int64, status string, at time.Time) error {
	return t.execOne(ctx, `UPDATE change_requests SET status = $1, resolved_at = $2 WHERE id = $3 AND status = $4`, status, unix(at), id, ChangePending)
}

// PendingChangeRequest returns the pending request of this kind and subject.
func (t *Tx) PendingChangeRequest(ctx context.Context, kind, subject string) (ChangeRequest, error) {
	rs, err := t.changeRequests(ctx, `WHERE kind = $1 AND subject = $2 AND status = $3`, kind, subject, ChangePending)
	if err != nil {
		return ChangeRequest{}, err
	}
	if len(rs) == 0 {
		return ChangeRequest{}, ErrNotFound
	}
	return rs[0], nil
}

// ListChangeRequests returns requests with the given status ("" for all),
// newest first.
func (t *Tx) ListChangeRequests(ctx context.Context, status string) ([]ChangeRequest, error) {
	if status == "" {
		return t.changeRequests(ctx, ``)
	}
	return t.changeRequests(ctx, `WHERE status = $1`, status)
}

func (t *Tx) changeRequests(ctx context.Context, where string, args ...any) ([]ChangeRequest, error) {
	rows, err := t.query(ctx, `SELECT id, kind, subject, payload, requested_by, created_at, status, resolved_at FROM change_requests `+where+` ORDER BY id DESC`, args...)
	if err != nil {
		return nil, err
	}
	var rs []ChangeRequest
	for rows.Next() {
		var (
			r                 ChangeRequest
			by                string
			created, resolved int64
		)
		if err := rows.Scan(&r.ID, &r.Kind, &r.Subject, &r.Payload, &by, &created, &r.Status, &resolved); err != nil {
			rows.Close()
			return nil, err
		}
		if r.RequestedBy, err = identity.ParseUserID(by); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stored change request %d: %w", r.ID, err)
		}
		r.CreatedAt, r.ResolvedAt = fromUnix(created), fromUnix(resolved)
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i].Approvers, err = t.changeApprovers(ctx, rs[i].ID, rs[i].RequestedBy); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// changeApprovers returns a request's approvers, the requester first, then
// in the order they approved.
func (t *Tx) changeApprovers(ctx context.Context, id int64, requester identity.UserID) ([]identity.UserID, error) {
	rows, err := t.query(ctx, `SELECT approver FROM change_approvals WHERE request_id = $1
		ORDER BY CASE WHEN approver = $2 THEN 0 ELSE 1 END, at, approver`, id, requester.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var us []identity.UserID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		u, err := identity.ParseUserID(s)
		if err != nil {
			return nil, fmt.Errorf("stored approver of change request %d: %w", id, err)
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

// PolicyRule is a stored contact-policy rule in its text form.
type PolicyRule struct {
	ID        int64
	Rule      string
	CreatedBy string
	CreatedAt time.Time
}

// AddPolicyRule stores a rule and returns its ID; ErrConflict if the same
// rule text exists.
func (t *Tx) AddPolicyRule(ctx context.Context, r PolicyRule) (int64, error) {
	var id int64
	err := t.queryRow(ctx, `INSERT INTO policy_rules (rule, created_by, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id`, r.Rule, r.CreatedBy, unix(r.CreatedAt)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: rule exists", ErrConflict)
	}
	return id, err
}

// RemovePolicyRule deletes a rule and returns its text.
func (t *Tx) RemovePolicyRule(ctx context.Context, id int64) (string, error) {
	var rule string
	if err := t.queryRow(ctx, `SELECT rule FROM policy_rules WHERE id = $1`, id).Scan(&rule); err != nil {
		return "", notFound(err)
	}
	return rule, t.execOne(ctx, `DELETE FROM policy_rules WHERE id = $1`, id)
}

// ListPolicyRules returns every rule ordered by ID.
func (t *Tx) ListPolicyRules(ctx context.Context) ([]PolicyRule, error) {
	rows, err := t.query(ctx, `SELECT id, rule, created_by, created_at FROM policy_rules ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []PolicyRule
	for rows.Next() {
		var (
			r  PolicyRule
			at int64
		)
		if err := rows.Scan(&r.ID, &r.Rule, &r.CreatedBy, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = fromUnix(at)
		rs = append(rs, r)
	}
	return rs, rows.Err()
}
