package store

import (
	"context"
	"time"

	"hotline/internal/identity"
)

// Grant is the records officer's grant of a conversation's records to a
// user: the officer's device opened them and sent them, re-encrypted, to
// the grantee's devices (in an MLS conversation of the two).
type Grant struct {
	ID        string
	Grantee   identity.UserID
	GroupID   []byte // the conversation whose records were granted
	Count     int    // how many records
	CreatedBy identity.UserID
	CreatedAt time.Time
	Reads     int // times the grantee opened it
}

// CreateGrant records a grant.
func (t *Tx) CreateGrant(ctx context.Context, g Grant) error {
	_, err := t.exec(ctx, `INSERT INTO records_grants (id, grantee, group_id, count, created_by, created_at, reads) VALUES ($1, $2, $3, $4, $5, $6, 0)`,
		g.ID, g.Grantee.String(), g.GroupID, g.Count, g.CreatedBy.String(), unix(g.CreatedAt))
	return err
}

// ReadGrant counts one opening of a grant by its grantee; ErrNotFound if
// the user holds no such grant.
func (t *Tx) ReadGrant(ctx context.Context, id string, grantee identity.UserID) error {
	return t.execOne(ctx, `UPDATE records_grants SET reads = reads + 1 WHERE id = $1 AND grantee = $2`, id, grantee.String())
}

// Grants returns the grants to one user, or every grant (grantee zero).
func (t *Tx) Grants(ctx context.Context, grantee identity.UserID) ([]Grant, error) {
	where, args := ``, []any{}
	if !grantee.IsZero() {
		where, args = `WHERE grantee = $1`, []any{grantee.String()}
	}
	rows, err := t.query(ctx, `SELECT id, grantee, group_id, count, created_by, created_at, reads FROM records_grants `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var (
			g       Grant
			to, by  string
			created int64
		)
		if err := rows.Scan(&g.ID, &to, &g.GroupID, &g.Count, &by, &created, &g.Reads); err != nil {
			return nil, err
		}
		g.Grantee, g.CreatedBy, g.CreatedAt = parseUserOrZero(to), parseUserOrZero(by), fromUnix(created)
		out = append(out, g)
	}
	return out, rows.Err()
}
