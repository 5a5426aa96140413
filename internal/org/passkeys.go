package org

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/store"
)

// UnlockTTL is how long an unlock ticket is valid.
const UnlockTTL = 2 * time.Minute

// A browser device's keys are sealed under the PRF output of a passkey (see
// internal/client/wrap.go). The server cannot check that output, and never
// sees it; what it checks is the passkey's signature. A device with a
// passkey gets a session only by presenting a ticket it earned by a
// verified assertion moments before (Unlock), so its session proves both
// the device key and the authenticator. The WebAuthn ceremonies themselves
// are internal/server's; the decisions about the passkey records are here.

// errNoPasskey is the one answer for an unknown device, a revoked one and
// one without a passkey, so that unlocking does not reveal which.
func errNoPasskey() error {
	return apierr.New(apierr.NotFound, "no passkey for this device")
}

// HasPasskey reports whether the device has registered a passkey.
func (s *Service) HasPasskey(ctx context.Context, deviceID string) (bool, error) {
	found := false
	err := s.viewOne(ctx, func(tx *store.Tx) error {
		_, err := tx.GetPasskey(ctx, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// AddPasskey stores the actor's device's passkey, which a registration
// ceremony verified. A device has at most one (Conflict). Nothing is
// appended to the transparency log: the passkey protects keys the log
// already shows, and is no key of the device's identity.
func (s *Service) AddPasskey(ctx context.Context, a Actor, p store.Passkey) (store.Passkey, error) {
	p.DeviceID, p.CreatedAt, p.LastUsedAt = a.Device.ID, s.now(), time.Time{}
	err := s.update(ctx, func(t *txn) error {
		d, err := t.device(a.Device.ID)
		if err != nil {
			return err
		}
		if d.Status == store.DeviceRevoked {
			return apierr.New(apierr.DeviceRevoked, "device %s has been revoked", d.ID)
		}
		if err := t.PutPasskey(ctx, p); errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.Conflict, "device %s already has a passkey, or this passkey is registered already", d.ID)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return store.Passkey{}, err
	}
	s.log.Info("passkey registered", "device", p.DeviceID)
	return p, nil
}

// PasskeyForUnlock returns the passkey of a device that may unlock with
// it: an enrolled device, not revoked, with a passkey. Anything else is
// NotFound, the same for each case.
func (s *Service) PasskeyForUnlock(ctx context.Context, deviceID string) (store.Passkey, error) {
	var p store.Passkey
	err := s.view(ctx, func(tx *store.Tx) error {
		var err error
		p, err = unlockable(ctx, tx, deviceID)
		return err
	})
	return p, err
}

func unlockable(ctx context.Context, tx *store.Tx, deviceID string) (store.Passkey, error) {
	d, err := tx.GetDevice(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Passkey{}, errNoPasskey()
	} else if err != nil {
		return store.Passkey{}, err
	}
	if d.Status == store.DeviceRevoked {
		return store.Passkey{}, errNoPasskey()
	}
	p, err := tx.GetPasskey(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Passkey{}, errNoPasskey()
	}
	return p, err
}

// Unlock records a verified assertion by the device's passkey and issues a
// one-time unlock ticket for a session (valid UnlockTTL; stored only as a
// hash). credentialID is the credential that signed and signCount the
// authenticator's counter in the signed data. An authenticator that keeps
// a counter must move it forward: a counter that does not increase means
// a second copy of the credential may exist, and the assertion is refused.
func (s *Service) Unlock(ctx context.Context, deviceID string, credentialID []byte, signCount uint32) (ticket string, expires time.Time, err error) {
	var stale uint32
	err = s.update(ctx, func(t *txn) error {
		stale = 0
		p, err := unlockable(ctx, t.Tx, deviceID)
		if err != nil {
			return err
		}
		if !bytes.Equal(p.CredentialID, credentialID) {
			return errNoPasskey()
		}
		if (signCount != 0 || p.SignCount != 0) && signCount <= p.SignCount {
			stale = p.SignCount
			return apierr.New(apierr.PasskeyInvalid, "the passkey's signature counter did not increase").
				WithHint("the authenticator may have been cloned; ask a security officer to look at this device")
		}
		now := s.now()
		if err := t.UpdatePasskeyUse(ctx, deviceID, signCount, now); err != nil {
			return err
		}
		ticket = base64.RawURLEncoding.EncodeToString(randomBytes(32))
		expires = now.Add(UnlockTTL)
		return t.CreatePasskeyUnlock(ctx, sha256.Sum256([]byte(ticket)), deviceID, expires)
	})
	if apierr.Is(err, apierr.PasskeyInvalid) {
		s.log.Warn("passkey signature counter did not increase: the authenticator may be cloned",
			"device", deviceID, "stored_count", stale, "count", signCount)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return ticket, expires, nil
}

// usePasskeyUnlock enforces, inside Login's transaction, that a device with
// a passkey presents an unused unlock ticket of its own, and consumes it.
// Devices without a passkey (headless clients) need none.
func (t *txn) usePasskeyUnlock(deviceID, ticket string) error {
	if _, err := t.GetPasskey(t.ctx, deviceID); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if ticket == "" {
		return apierr.New(apierr.PasskeyRequired, "device %s is protected by a passkey", deviceID).WithHint("unlock with the passkey first (POST /v1/passkeys/unlock) and send its ticket as \"unlock\"")
	}
	err := t.UsePasskeyUnlock(t.ctx, sha256.Sum256([]byte(ticket)), deviceID, t.s.now())
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.PasskeyRequired, "the unlock ticket is unknown, used, expired or another device's").
			WithHint("unlock with the passkey again (POST /v1/passkeys/unlock)")
	}
	return err
}
