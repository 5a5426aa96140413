package store

import (
	"context"
	"fmt"
	"time"

	"hotline/internal/identity"
)

// User is a person (or a device role such as the archive) in the directory.
type User struct {
	ID           identity.UserID
	Roles        identity.Roles
	Clearance    identity.Clearance
	Compartments identity.Compartments
	Disabled     bool
	CreatedAt    time.Time
	CreatedBy    string
}

// Device statuses.
const (
	DevicePending = "pending"
	DeviceActive  = "active"
	DeviceRevoked = "revoked"
)

// Device is one enrolled device of a user. Its private keys never leave it;
// the store holds the public keys and the current credential.
type Device struct {
	ID                string
	User              identity.UserID
	SigKey            identity.PublicKey
	KEMKey            []byte
	Label             string
	Status            string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Credential        []byte // signed note; nil until issued
	CredentialExpires time.Time
}

// Approval is one user's approval of a pending device.
type Approval struct {
	DeviceID       string
	Approver       identity.UserID
	ApproverDevice string
	At             time.Time
}

// Invite is a single-use enrolment code for a user's next device. Only the
// code's hash is stored.
type Invite struct {
	Hash      [32]byte
	User      identity.UserID
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	DeviceID  string // the device that used it
}

// GetMeta returns a value from the meta table.
func (t *Tx) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := t.queryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	return v, notFound(err)
}

// SetMeta sets a value in the meta table.
func (t *Tx) SetMeta(ctx context.Context, key, value string) error {
	_, err := t.exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// PutKeySet stores a root-signed key set under its serial.
func (t *Tx) PutKeySet(ctx context.Context, serial int64, note []byte, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO keysets (serial, note, created_at) VALUES ($1, $2, $3)`, serial, note, unix(at))
	return err
}

// LatestKeySet returns the key set with the highest serial.
func (t *Tx) LatestKeySet(ctx context.Context) (serial int64, note []byte, err error) {
	err = t.queryRow(ctx, `SELECT serial, note FROM keysets ORDER BY serial DESC LIMIT 1`).Scan(&serial, &note)
	return serial, note, notFound(err)
}

// CreateUser inserts u; ErrConflict if the ID exists.
func (t *Tx) CreateUser(ctx context.Context, u User) error {
	err := t.insertNew(ctx, `INSERT INTO users (id, roles, clearance, compartments, disabled, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		u.ID.String(), u.Roles.String(), int(u.Clearance), u.Compartments.String(), boolInt(u.Disabled), unix(u.CreatedAt), u.CreatedBy)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	return nil
}

// UpdateUser writes roles, clearance, compartments and disabled of an
// existing user.
func (t *Tx) UpdateUser(ctx context.Context, u User) error {
	return t.execOne(ctx, `UPDATE users SET roles = $1, clearance = $2, compartments = $3, disabled = $4 WHERE id = $5`,
		u.Roles.String(), int(u.Clearance), u.Compartments.String(), boolInt(u.Disabled), u.ID.String())
}

const userCols = `id, roles, clearance, compartments, disabled, created_at, created_by`

// GetUser returns one user.
func (t *Tx) GetUser(ctx context.Context, id identity.UserID) (User, error) {
	u, err := scanUser(t.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`+t.forUpdate(), id.String()))
	return u, notFound(err)
}

// ListUsers returns every user ordered by ID.
func (t *Tx) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := t.query(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

// UsersWithRole returns the users holding role, ordered by ID.
func (t *Tx) UsersWithRole(ctx context.Context, role identity.Role) ([]User, error) {
	all, err := t.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	var out []User
	for _, u := range all {
		if u.Roles.Has(role) && !u.Disabled {
			out = append(out, u)
		}
	}
	return out, nil
}

type scanner interface{ Scan(...any) error }

func scanUser(s scanner) (User, error) {
	var (
		u                  User
		id, roles, comps   string
		clearance, disable int
		created            int64
	)
	if err := s.Scan(&id, &roles, &clearance, &comps, &disable, &created, &u.CreatedBy); err != nil {
		return User{}, err
	}
	var err error
	if u.ID, err = identity.ParseUserID(id); err != nil {
		return User{}, fmt.Errorf("stored user %q: %w", id, err)
	}
	if u.Roles, err = identity.ParseRoles(roles); err != nil {
		return User{}, fmt.Errorf("stored user %q: %w", id, err)
	}
	if u.Compartments, err = identity.ParseCompartments(comps); err != nil {
		return User{}, fmt.Errorf("stored user %q: %w", id, err)
	}
	u.Clearance = identity.Clearance(clearance)
	u.Disabled = disable != 0
	u.CreatedAt = fromUnix(created)
	return u, nil
}

// CreateDevice inserts d; ErrConflict if the ID exists.
func (t *Tx) CreateDevice(ctx context.Context, d Device) error {
	err := t.insertNew(ctx, `INSERT INTO devices (id, user_id, sig_key, kem_key, label, status, created_at, updated_at, credential, credential_expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
		d.ID, d.User.String(), d.SigKey[:], d.KEMKey, d.Label, d.Status, unix(d.CreatedAt), unix(d.UpdatedAt), d.Credential, unix(d.CredentialExpires))
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, err)
	}
	return nil
}

// SetDeviceStatus changes a device's status; from lists the statuses it may
// change from, otherwise ErrConflict.
func (t *Tx) SetDeviceStatus(ctx context.Context, id, status string, at time.Time, from ...string) error {
	d, err := t.GetDevice(ctx, id)
	if err != nil {
		return err
	}
	ok := false
	for _, f := range from {
		ok = ok || d.Status == f
	}
	if !ok {
		return fmt.Errorf("%w: device %s is %s", ErrConflict, id, d.Status)
	}
	return t.execOne(ctx, `UPDATE devices SET status = $1, updated_at = $2 WHERE id = $3`, status, unix(at), id)
}

// SetCredential stores a device's current credential.
func (t *Tx) SetCredential(ctx context.Context, id string, cred []byte, expires time.Time) error {
	return t.execOne(ctx, `UPDATE devices SET credential = $1, credential_expires = $2 WHERE id = $3`, cred, unix(expires), id)
}

const deviceCols = `id, user_id, sig_key, kem_key, label, status, created_at, updated_at, credential, credential_expires`

// GetDevice returns one device.
func (t *Tx) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`+t.forUpdate(), id))
	return d, notFound(err)
}

// ListDevices returns a user's devices, oldest first; the zero user lists
// every device.
func (t *Tx) ListDevices(ctx context.Context, user identity.UserID) ([]Device, error) {
	q, args := `SELECT `+deviceCols+` FROM devices ORDER BY created_at, id`, []any{}
	if !user.IsZero() {
		q, args = `SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY created_at, id`, []any{user.String()}
	}
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

func scanDevice(s scanner) (Device, error) {
	var (
		d                          Device
		user                       string
		sig                        []byte
		created, updated, credExpr int64
	)
	if err := s.Scan(&d.ID, &user, &sig, &d.KEMKey, &d.Label, &d.Status, &created, &updated, &d.Credential, &credExpr); err != nil {
		return Device{}, err
	}
	var err error
	if d.User, err = identity.ParseUserID(user); err != nil {
		return Device{}, fmt.Errorf("stored device %q: %w", d.ID, err)
	}
	if len(sig) != len(d.SigKey) {
		return Device{}, fmt.Errorf("stored device %q: signature key of %d bytes", d.ID, len(sig))
	}
	copy(d.SigKey[:], sig)
	d.CreatedAt, d.UpdatedAt, d.CredentialExpires = fromUnix(created), fromUnix(updated), fromUnix(credExpr)
	return d, nil
}

// AddApproval records a user's approval of a pending device. A user
// approving twice is ErrConflict: approvals count distinct users.
func (t *Tx) AddApproval(ctx context.Context, a Approval) error {
	return t.insertNew(ctx, `INSERT INTO device_approvals (device_id, approver, approver_device, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		a.DeviceID, a.Approver.String(), a.ApproverDevice, unix(a.At))
}

// Approvals returns a device's approvals, oldest first.
func (t *Tx) Approvals(ctx context.Context, deviceID string) ([]Approval, error) {
	rows, err := t.query(ctx, `SELECT device_id, approver, approver_device, at FROM device_approvals WHERE device_id = $1 ORDER BY at, approver`, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var as []Approval
	for rows.Next() {
		var (
			a        Approval
			approver string
			at       int64
		)
		if err := rows.Scan(&a.DeviceID, &approver, &a.ApproverDevice, &at); err != nil {
			return nil, err
		}
		if a.Approver, err = identity.ParseUserID(approver); err != nil {
			return nil, fmt.Errorf("stored approval of %s: %w", a.DeviceID, err)
		}
		a.At = fromUnix(at)
		as = append(as, a)
	}
	return as, rows.Err()
}

// CreateInvite stores an invite.
func (t *Tx) CreateInvite(ctx context.Context, inv Invite) error {
	_, err := t.exec(ctx, `INSERT INTO invites (hash, user_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		inv.Hash[:], inv.User.String(), inv.CreatedBy, unix(inv.CreatedAt), unix(inv.ExpiresAt))
	return err
}

// UseInvite marks the invite with this hash used by device at time now, if
// it exists, is unused and has not expired; otherwise ErrNotFound (the
// caller must not tell which). It returns the invite as it was.
func (t *Tx) UseInvite(ctx context.Context, hash [32]byte, deviceID string, now time.Time) (Invite, error) {
	var (
		inv                        Invite
		user                       string
		created, expires, usedAtDB int64
	)
	err := t.queryRow(ctx, `SELECT user_id, created_by, created_at, expires_at, used_at FROM invites WHERE hash = $1`+t.forUpdate(), hash[:]).
		Scan(&user, &inv.CreatedBy, &created, &expires, &usedAtDB)
	if err != nil {
		return Invite{}, notFound(err)
	}
	if usedAtDB != 0 || expires <= now.Unix() {
		return Invite{}, ErrNotFound
	}
	if err := t.execOne(ctx, `UPDATE invites SET used_at = $1, device_id = $2 WHERE hash = $3 AND used_at = 0`, unix(now), deviceID, hash[:]); err != nil {
		return Invite{}, err
	}
	inv.Hash = hash
	if inv.User, err = identity.ParseUserID(user); err != nil {
		return Invite{}, fmt.Errorf("stored invite: %w", err)
	}
	inv.CreatedAt, inv.ExpiresAt = fromUnix(created), fromUnix(expires)
	return inv, nil
}

// Session is a short-lived authenticated session of a device; only the
// token's hash is stored.
type Session struct {
	TokenHash [32]byte
	DeviceID  string
	ExpiresAt time.Time
}

// CreateSession stores a session.
func (t *Tx) CreateSession(ctx context.Context, s Session) error {
	_, err := t.exec(ctx, `INSERT INTO sessions (token_hash, device_id, expires_at) VALUES ($1, $2, $3)`, s.TokenHash[:], s.DeviceID, unix(s.ExpiresAt))
	return err
}

// DeleteSessions ends every session of a device.
func (t *Tx) DeleteSessions(ctx context.Context, deviceID string) error {
	_, err := t.exec(ctx, `DELETE FROM sessions WHERE device_id = $1`, deviceID)
	return err
}

// CreateChallenge stores a fresh authentication nonce for a device.
func (t *Tx) CreateChallenge(ctx context.Context, nonce []byte, deviceID string, expires time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO challenges (nonce, device_id, expires_at) VALUES ($1, $2, $3)`, nonce, deviceID, unix(expires))
	return err
}

// UseChallenge consumes a nonce issued to deviceID; ErrNotFound if it does
// not exist, belongs to another device or has expired. A nonce works once.
func (t *Tx) UseChallenge(ctx context.Context, nonce []byte, deviceID string, now time.Time) error {
	res, err := t.exec(ctx, `DELETE FROM challenges WHERE nonce = $1 AND device_id = $2 AND expires_at > $3`, nonce, deviceID, unix(now))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrNotFound
	}
	return nil
}

// Expire deletes expired sessions and challenges.
func (t *Tx) Expire(ctx context.Context, now time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, unix(now)); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM challenges WHERE expires_at <= $1`, unix(now))
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// KeySet returns the signed key set with this serial.
func (t *Tx) KeySet(ctx context.Context, serial int64) ([]byte, error) {
	var note []byte
	err := t.queryRow(ctx, `SELECT note FROM keysets WHERE serial = $1`, serial).Scan(&note)
	return note, notFound(err)
}

// SessionActor returns the unexpired session with this token hash together
// with its device and the device's user, in one query: it runs on every
// authenticated request.
func (t *Tx) SessionActor(ctx context.Context, hash [32]byte, now time.Time) (Device, User, error) {
	var (
		sessionDevice, userID string
		created, updated, exp int64
		d                     Device
		u                     User
		sig                   []byte
		roles, comps          string
		clearance, disabled   int
		ucreated              int64
	)
	err := t.queryRow(ctx, `SELECT s.device_id,
			d.user_id, d.sig_key, d.kem_key, d.label, d.status, d.created_at, d.updated_at, d.credential, d.credential_expires,
			u.roles, u.clearance, u.compartments, u.disabled, u.created_at, u.created_by
		FROM sessions s JOIN devices d ON d.id = s.device_id JOIN users u ON u.id = d.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2`, hash[:], unix(now)).
		Scan(&sessionDevice, &userID, &sig, &d.KEMKey, &d.Label, &d.Status, &created, &updated, &d.Credential, &exp,
			&roles, &clearance, &comps, &disabled, &ucreated, &u.CreatedBy)
	if err != nil {
		return Device{}, User{}, notFound(err)
	}
	d.ID = sessionDevice
	if d.User, err = identity.ParseUserID(userID); err != nil {
		return Device{}, User{}, fmt.Errorf("stored device %q: %w", d.ID, err)
	}
	if len(sig) != len(d.SigKey) {
		return Device{}, User{}, fmt.Errorf("stored device %q: signature key of %d bytes", d.ID, len(sig))
	}
	copy(d.SigKey[:], sig)
	d.CreatedAt, d.UpdatedAt, d.CredentialExpires = fromUnix(created), fromUnix(updated), fromUnix(exp)
	u.ID = d.User
	if u.Roles, err = identity.ParseRoles(roles); err != nil {
		return Device{}, User{}, fmt.Errorf("stored user %q: %w", userID, err)
	}
	if u.Compartments, err = identity.ParseCompartments(comps); err != nil {
		return Device{}, User{}, fmt.Errorf("stored user %q: %w", userID, err)
	}
	u.Clearance, u.Disabled, u.CreatedAt = identity.Clearance(clearance), disabled != 0, fromUnix(ucreated)
	return d, u, nil
}
