package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// Call states.
const (
	CallRinging = "ringing" // placed, nobody has answered yet
	CallActive  = "active"  // answered
	CallEnded   = "ended"
)

// Call participant states.
const (
	PartRinging   = "ringing"
	PartJoined    = "joined"
	PartDeclined  = "declined"
	PartLeft      = "left"
	PartMissed    = "missed"    // rang until the call was answered elsewhere, cancelled or timed out
	PartElsewhere = "elsewhere" // another device of the same user answered
)

// Call is a call placed in a conversation. Reason says how it ended (a
// stable code such as "hangup", "cancelled", "declined", "busy",
// "no_answer").
type Call struct {
	ID           string
	GroupID      []byte
	Caller       identity.UserID
	CallerDevice string
	State        string
	Reason       string
	CreatedAt    time.Time
	AnsweredAt   time.Time // zero until answered
	EndedAt      time.Time // zero until ended
}

// CallParticipant is one device rung into or joined to a call.
type CallParticipant struct {
	CallID    string
	Device    string
	User      identity.UserID
	Role      string
	State     string
	UpdatedAt time.Time
	Held      bool // joined, on hold: nothing forwarded to or from it
	// Preempted: left (or missed, while ringing) because a call of higher
	// precedence took the device's user out of this one.
	Preempted bool
}

// CreateCall records a new call.
func (t *Tx) CreateCall(ctx context.Context, c Call) error {
	_, err := t.exec(ctx, `INSERT INTO calls (id, group_id, caller, caller_device, state, reason, created_at, answered_at, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.ID, c.GroupID, c.Caller.String(), c.CallerDevice, c.State, c.Reason, unix(c.CreatedAt), unix(c.AnsweredAt), unix(c.EndedAt))
	return err
}

// GetCall returns a call, locking it until the transaction ends.
func (t *Tx) GetCall(ctx context.Context, id string) (Call, error) {
	cs, err := t.calls(ctx, `WHERE id = $1`+t.forUpdate(), id)
	if err != nil {
		return Call{}, err
	}
	if len(cs) == 0 {
		return Call{}, ErrNotFound
	}
	return cs[0], nil
}

// OpenCall returns the conversation's call that has not ended, if any
// (ErrNotFound otherwise), locking it.
func (t *Tx) OpenCall(ctx context.Context, groupID []byte) (Call, error) {
	cs, err := t.calls(ctx, `WHERE group_id = $1 AND state <> 'ended' ORDER BY created_at DESC`+t.forUpdate(), groupID)
	if err != nil {
		return Call{}, err
	}
	if len(cs) == 0 {
		return Call{}, ErrNotFound
	}
	return cs[0], nil
}

// RingingCalls returns the calls still ringing that were placed before
// t, up to limit.
func (t *Tx) RingingCalls(ctx context.Context, before time.Time, limit int) ([]Call, error) {
	return t.calls(ctx, `WHERE state = 'ringing' AND created_at < $1 ORDER BY created_at LIMIT $2`, unix(before), limit)
}

// OpenCalls returns every call that has not ended, oldest first.
func (t *Tx) OpenCalls(ctx context.Context) ([]Call, error) {
	return t.calls(ctx, `WHERE state <> 'ended' ORDER BY created_at, id`)
}

func (t *Tx) calls(ctx context.Context, where string, args ...any) ([]Call, error) {
	rows, err := t.query(ctx, `SELECT id, group_id, caller, caller_device, state, reason, created_at, answered_at, ended_at FROM calls `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		var (
			c                        Call
			caller                   string
			created, answered, ended int64
		)
		if err := rows.Scan(&c.ID, &c.GroupID, &caller, &c.CallerDevice, &c.State, &c.Reason, &created, &answered, &ended); err != nil {
			return nil, err
		}
		if c.Caller, err = identity.ParseUserID(caller); err != nil {
			return nil, fmt.Errorf("stored call %s: %w", c.ID, err)
		}
		c.CreatedAt, c.AnsweredAt, c.EndedAt = fromUnix(created), fromUnix(answered), fromUnix(ended)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetCallState moves a call to state, noting when it was answered or
// ended and why.
func (t *Tx) SetCallState(ctx context.Context, id, state, reason string, at time.Time) error {
	return t.execOne(ctx, `UPDATE calls SET state = $1, reason = $2,
		answered_at = CASE WHEN $1 = 'active' AND answered_at = 0 THEN $3 ELSE answered_at END,
		ended_at = CASE WHEN $1 = 'ended' THEN $3 ELSE ended_at END
		WHERE id = $4`, state, reason, unix(at), id)
}

// PutCallParticipant records a device's part in a call, replacing any
// earlier one.
func (t *Tx) PutCallParticipant(ctx context.Context, p CallParticipant) error {
	held := boolInt(p.Held && p.State == PartJoined)
	preempted := boolInt(p.Preempted && (p.State == PartLeft || p.State == PartMissed))
	_, err := t.exec(ctx, `INSERT INTO call_participants (call_id, device_id, user_id, role, state, updated_at, held, preempted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (call_id, device_id) DO UPDATE SET user_id = excluded.user_id, role = excluded.role, state = excluded.state, updated_at = excluded.updated_at,
		held = excluded.held, preempted = excluded.preempted`,
		p.CallID, p.Device, p.User.String(), p.Role, p.State, unix(p.UpdatedAt), held, preempted)
	return err
}

// CallParticipants returns a call's participants in the order they were
// added.
func (t *Tx) CallParticipants(ctx context.Context, callID string) ([]CallParticipant, error) {
	return t.callParticipants(ctx, `WHERE p.call_id = $1 ORDER BY p.updated_at, p.device_id`, callID)
}

// DeviceCalls returns the device's parts in calls that have not ended
// where it is ringing or joined.
func (t *Tx) DeviceCalls(ctx context.Context, device string) ([]CallParticipant, error) {
	return t.callParticipants(ctx, `JOIN calls c ON c.id = p.call_id
		WHERE p.device_id = $1 AND p.state IN ('ringing', 'joined') AND c.state <> 'ended' ORDER BY p.call_id`, device)
}

// UserInCall reports whether any device of the user is joined to a call
// that has not ended.
func (t *Tx) UserInCall(ctx context.Context, user identity.UserID) (bool, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM call_participants p JOIN calls c ON c.id = p.call_id
		WHERE p.user_id = $1 AND p.state = 'joined' AND c.state <> 'ended'`, user.String()).Scan(&n)
	return n > 0, err
}

func (t *Tx) callParticipants(ctx context.Context, where string, args ...any) ([]CallParticipant, error) {
	rows, err := t.query(ctx, `SELECT p.call_id, p.device_id, p.user_id, p.role, p.state, p.updated_at, p.held, p.preempted FROM call_participants p `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CallParticipant
	for rows.Next() {
		var (
			p               CallParticipant
			user            string
			updated         int64
			held, preempted int
		)
		if err := rows.Scan(&p.CallID, &p.Device, &user, &p.Role, &p.State, &updated, &held, &preempted); err != nil {
			return nil, err
		}
		if p.User, err = identity.ParseUserID(user); err != nil {
			return nil, fmt.Errorf("stored call participant %s: %w", p.Device, err)
		}
		p.UpdatedAt, p.Held, p.Preempted = fromUnix(updated), held != 0, preempted != 0
		out = append(out, p)
	}
	return out, rows.Err()
}
