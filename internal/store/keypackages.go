package store

import (
	"context"
	"errors"
	"time"
)

// KeyPackage is an MLS key package a device uploaded so others can add it
// to groups. Data is the encoded MLSMessage; the store never looks inside.
type KeyPackage struct {
	Ref         []byte // KeyPackageRef, unique
	DeviceID    string
	CipherSuite uint16
	Data        []byte
	LastResort  bool // used when no other package is left, and never consumed
	NotAfter    time.Time
	CreatedAt   time.Time
}

// PutKeyPackage stores a key package; ErrConflict if its ref exists. A new
// last-resort package replaces the device's previous one for the suite.
func (t *Tx) PutKeyPackage(ctx context.Context, kp KeyPackage) error {
	if kp.LastResort {
		if _, err := t.exec(ctx, `DELETE FROM key_packages WHERE device_id = $1 AND cipher_suite = $2 AND last_resort = 1`, kp.DeviceID, int(kp.CipherSuite)); err != nil {
			return err
		}
	}
	return t.insertNew(ctx, `INSERT INTO key_packages (ref, device_id, cipher_suite, data, last_resort, not_after, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		kp.Ref, kp.DeviceID, int(kp.CipherSuite), kp.Data, boolInt(kp.LastResort), unix(kp.NotAfter), unix(kp.CreatedAt))
}

// ClaimKeyPackage hands out one unexpired key package of the device for the
// suite: the oldest ordinary one, which is deleted (each is used once), or
// else the last-resort one, which stays. ErrNotFound if there is neither.
func (t *Tx) ClaimKeyPackage(ctx context.Context, deviceID string, suite uint16, now time.Time) (KeyPackage, error) {
	for _, lastResort := range []int{0, 1} {
		kp := KeyPackage{DeviceID: deviceID, CipherSuite: suite, LastResort: lastResort == 1}
		var notAfter, created int64
		// Ordinary packages are consumed: lock the one taken and let
		// concurrent claimers skip it. The last-resort one is only read.
		lock := t.forUpdateSkipLocked()
		if lastResort == 1 {
			lock = ""
		}
		err := t.queryRow(ctx, `SELECT ref, data, not_after, created_at FROM key_packages
			WHERE device_id = $1 AND cipher_suite = $2 AND last_resort = $3 AND not_after > $4
			ORDER BY created_at, ref LIMIT 1`+lock, deviceID, int(suite), lastResort, unix(now)).
			Scan(&kp.Ref, &kp.Data, &notAfter, &created)
		if errors.Is(notFound(err), ErrNotFound) {
			continue
		} else if err != nil {
			return KeyPackage{}, err
		}
		kp.NotAfter, kp.CreatedAt = fromUnix(notAfter), fromUnix(created)
		if lastResort == 0 {
			if err := t.execOne(ctx, `DELETE FROM key_packages WHERE ref = $1`, kp.Ref); err != nil {
				return KeyPackage{}, err
			}
		}
		return kp, nil
	}
	return KeyPackage{}, ErrNotFound
}

// KeyPackageStock counts a device's unexpired ordinary key packages for a
// suite and says whether it has a last-resort one.
func (t *Tx) KeyPackageStock(ctx context.Context, deviceID string, suite uint16, now time.Time) (ordinary int, lastResort bool, err error) {
	var lr int
	err = t.queryRow(ctx, `SELECT COALESCE(SUM(1 - last_resort), 0), COALESCE(MAX(last_resort), 0) FROM key_packages
		WHERE device_id = $1 AND cipher_suite = $2 AND not_after > $3`, deviceID, int(suite), unix(now)).Scan(&ordinary, &lr)
	return ordinary, lr == 1, err
}

// DeleteKeyPackages removes every key package of a device (on revocation:
// a revoked device must never be added to a group).
func (t *Tx) DeleteKeyPackages(ctx context.Context, deviceID string) error {
	_, err := t.exec(ctx, `DELETE FROM key_packages WHERE device_id = $1`, deviceID)
	return err
}

// ExpireKeyPackages removes key packages past their lifetime.
func (t *Tx) ExpireKeyPackages(ctx context.Context, now time.Time) error {
	_, err := t.exec(ctx, `DELETE FROM key_packages WHERE not_after <= $1`, unix(now))
	return err
}
