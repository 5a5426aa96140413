package store

import (
	"context"
	"time"
)

// Passkey is the WebAuthn credential that protects a browser device's keys:
// the device's profile is sealed under the output of the passkey's PRF over
// Salt, which only the authenticator can compute. The store keeps what
// verifying the passkey's assertions needs, never the PRF output.
type Passkey struct {
	DeviceID     string // one passkey per device
	CredentialID []byte // unique
	PublicKey    []byte // COSE_Key
	// SignCount is the authenticator's signature counter at the last
	// verified use; 0 for authenticators that keep none.
	SignCount uint32
	Salt      []byte // the PRF input (eval.first), the same for every unlock
	AAGUID    []byte
	// BackupEligible is the BE flag at registration; it may not change.
	BackupEligible bool
	CreatedAt      time.Time
	LastUsedAt     time.Time // zero until first used
}

const passkeyCols = `device_id, credential_id, public_key, sign_count, salt, aaguid, backup_eligible, created_at, last_used_at`

// PutPasskey stores a device's passkey; ErrConflict if the device has one
// already or the credential ID is taken.
func (t *Tx) PutPasskey(ctx context.Context, p Passkey) error {
	return t.insertNew(ctx, `INSERT INTO passkeys (`+passkeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		p.DeviceID, p.CredentialID, p.PublicKey, int64(p.SignCount), p.Salt, p.AAGUID, boolInt(p.BackupEligible), unix(p.CreatedAt), unix(p.LastUsedAt))
}

// GetPasskey returns a device's passkey, locking it in a read-write
// transaction (its counter is compared and moved on); ErrNotFound if the
// device has none.
func (t *Tx) GetPasskey(ctx context.Context, deviceID string) (Passkey, error) {
	var (
		p             Passkey
		count         int64
		be            int
		created, used int64
	)
	err := t.queryRow(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE device_id = $1`+t.forUpdate(), deviceID).
		Scan(&p.DeviceID, &p.CredentialID, &p.PublicKey, &count, &p.Salt, &p.AAGUID, &be, &created, &used)
	if err != nil {
		return Passkey{}, notFound(err)
	}
	p.SignCount, p.BackupEligible = uint32(count), be != 0
	p.CreatedAt, p.LastUsedAt = fromUnix(created), fromUnix(used)
	return p, nil
}

// UpdatePasskeyUse records a verified use of a device's passkey: the
// authenticator's new signature counter and the time; ErrNotFound if the
// device has no passkey. Deciding whether the counter may move there is
// the caller's (it read the passkey with GetPasskey in this transaction).
func (t *Tx) UpdatePasskeyUse(ctx context.Context, deviceID string, signCount uint32, at time.Time) error {
	return t.execOne(ctx, `UPDATE passkeys SET sign_count = $1, last_used_at = $2 WHERE device_id = $3`, int64(signCount), unix(at), deviceID)
}

// CreatePasskeyUnlock stores the hash of a one-time unlock ticket issued to
// a device after it proved its passkey.
func (t *Tx) CreatePasskeyUnlock(ctx context.Context, hash [32]byte, deviceID string, expires time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO passkey_unlocks (ticket_hash, device_id, expires_at) VALUES ($1, $2, $3)`, hash[:], deviceID, unix(expires))
	return err
}

// UsePasskeyUnlock consumes an unlock ticket issued to deviceID; ErrNotFound
// if it does not exist, belongs to another device or has expired. A ticket
// works once.
func (t *Tx) UsePasskeyUnlock(ctx context.Context, hash [32]byte, deviceID string, now time.Time) error {
	return t.execOne(ctx, `DELETE FROM passkey_unlocks WHERE ticket_hash = $1 AND device_id = $2 AND expires_at > $3`, hash[:], deviceID, unix(now))
}

// ExpirePasskeyUnlocks deletes expired unlock tickets.
func (t *Tx) ExpirePasskeyUnlocks(ctx context.Context, now time.Time) error {
	_, err := t.exec(ctx, `DELETE FROM passkey_unlocks WHERE expires_at <= $1`, unix(now))
	return err
}
