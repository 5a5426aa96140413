package org

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// SystemActor is the creator recorded for what `hotline init` sets up.
const SystemActor = "system"

// EnrolRequest is a device's first contact: an invite code and the public
// keys it generated, with a signature by its new key over both.
type EnrolRequest struct {
	Invite string
	SigKey identity.PublicKey
	KEMKey []byte
	Label  string
	Proof  []byte // SigKey's signature over identity.EnrolMessage
}

// EnrolResult tells the device who it is and what state it is in.
type EnrolResult struct {
	User       identity.UserID
	Device     string
	Status     string // active or pending
	Credential []byte // when active
}

const maxLabel = 64

// Enrol consumes an invite and registers a device. A user's first device is
// active at once when the invite's creator is approval enough (one approver
// for most roles; a principal's needs a second, so it waits). A further
// device is pending until the user's own active device or a security officer
// approves it.
func (s *Service) Enrol(ctx context.Context, req EnrolRequest) (EnrolResult, error) {
	code, err := identity.NormalizeInviteCode(req.Invite)
	if err != nil {
		return EnrolResult{}, apierr.New(apierr.InviteInvalid, "the invite code is unknown, already used or expired")
	}
	hash, err := identity.HashInviteCode(code)
	if err != nil {
		return EnrolResult{}, apierr.New(apierr.InviteInvalid, "the invite code is unknown, already used or expired")
	}
	if err := identity.ParseKEMPublicKey(req.KEMKey); err != nil {
		return EnrolResult{}, apierr.Wrap(err, apierr.BadRequest, "kem_key is not a valid ML-KEM-768+X25519 public key")
	}
	label := strings.TrimSpace(req.Label)
	if len(label) > maxLabel || strings.ContainsFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return EnrolResult{}, apierr.New(apierr.BadRequest, "label must be at most %d printable characters", maxLabel)
	}
	if !req.SigKey.Verify(identity.EnrolMessage(s.cfg.Org, hash, req.SigKey, req.KEMKey), req.Proof) {
		return EnrolResult{}, apierr.New(apierr.ProofInvalid, "the enrolment proof does not verify with sig_key")
	}
	id := req.SigKey.DeviceID()
	var res EnrolResult
	err = s.update(ctx, func(t *txn) error {
		inv, err := t.UseInvite(ctx, hash, id, s.now())
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.InviteInvalid, "the invite code is unknown, already used or expired")
		} else if err != nil {
			return err
		}
		u, err := t.user(inv.User)
		if err != nil {
			return err
		}
		if u.Disabled {
			return apierr.New(apierr.UserDisabled, "user %s is disabled", u.ID)
		}
		existing, err := t.ListDevices(ctx, u.ID)
		if err != nil {
			return err
		}
		// With no active device, nobody of the user's own can approve: the
		// invite's creator stands in (below).
		first := true
		for _, d := range existing {
			first = first && d.Status != store.DeviceActive
		}
		now := s.now()
		d := store.Device{ID: id, User: u.ID, SigKey: req.SigKey, KEMKey: req.KEMKey, Label: label,
			Status: store.DevicePending, CreatedAt: now, UpdatedAt: now}
		if err := t.CreateDevice(ctx, d); errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.Conflict, "this device key is already enrolled").WithHint("generate a new profile")
		} else if err != nil {
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeDeviceEnrol, Actor: inv.CreatedBy, User: u.ID.String(), Device: id,
			SigKey: req.SigKey.String(), KEMKey: base64.StdEncoding.EncodeToString(req.KEMKey), Reason: tlog.StatusPending}); err != nil {
			return err
		}
		res = EnrolResult{User: u.ID, Device: id, Status: store.DevicePending}
		if first {
			// The invite's creator vouched for the user's first device; that
			// counts as an approval if they may approve this user's devices.
			approved := inv.CreatedBy == SystemActor && u.CreatedBy == SystemActor
			if by, err := identity.ParseUserID(inv.CreatedBy); err == nil && by != u.ID {
				creator, err := t.GetUser(ctx, by)
				if err != nil {
					return err
				}
				if directory.CanApproveDevice(by, creator.Roles, u.ID) {
					if err := t.AddApproval(ctx, store.Approval{DeviceID: id, Approver: by, ApproverDevice: "invite", At: now}); err != nil {
						return err
					}
					if approved, err = t.approvedEnough(d, u); err != nil {
						return err
					}
				}
			}
			if approved {
				if res.Credential, err = t.activate(d, u); err != nil {
					return err
				}
				res.Status = store.DeviceActive
				return nil
			}
		}
		return t.announcePending(d, u)
	})
	return res, err
}

// announcePending tells everyone who may approve a pending device.
func (t *txn) announcePending(d store.Device, u store.User) error {
	approvers, err := t.holders(identity.RoleSecurityOfficer)
	if err != nil {
		return err
	}
	ids, err := t.activeDevices(append(approvers, u.ID)...)
	if err != nil {
		return err
	}
	return t.notify(ids, "device.pending", map[string]any{
		"user": u.ID.String(), "device": d.ID, "label": d.Label, "sig_key": d.SigKey.String(),
		"approvals_needed": directory.DeviceApprovalsNeeded(u.Roles),
	})
}

// approvedEnough reports whether a pending device's recorded approvals meet
// the two-person rule for its user.
func (t *txn) approvedEnough(d store.Device, u store.User) (bool, error) {
	as, err := t.Approvals(t.ctx, d.ID)
	if err != nil {
		return false, err
	}
	by := map[identity.UserID]identity.Roles{}
	for _, a := range as {
		if a.Approver == u.ID {
			by[a.Approver] = u.Roles
			continue
		}
		au, err := t.GetUser(t.ctx, a.Approver)
		if err != nil {
			return false, err
		}
		by[a.Approver] = au.Roles
	}
	return directory.DeviceApproved(u.ID, u.Roles, by), nil
}

// activate makes a pending device active, logs who approved it, issues its
// credential and tells the user's devices.
func (t *txn) activate(d store.Device, u store.User) ([]byte, error) {
	now := t.s.now()
	if err := t.SetDeviceStatus(t.ctx, d.ID, store.DeviceActive, now, store.DevicePending); err != nil {
		return nil, err
	}
	as, err := t.Approvals(t.ctx, d.ID)
	if err != nil {
		return nil, err
	}
	approvers := []string{}
	for _, a := range as {
		approvers = append(approvers, a.Approver.String())
	}
	if len(approvers) == 0 {
		approvers = []string{SystemActor}
	}
	if err := t.logEntry(tlog.Entry{Type: tlog.TypeDeviceApprove, User: u.ID.String(), Device: d.ID, Approvers: approvers}); err != nil {
		return nil, err
	}
	d.Status = store.DeviceActive
	cred, err := t.issueCredential(d, u)
	if err != nil {
		return nil, err
	}
	ids, err := t.activeDevices(u.ID)
	if err != nil {
		return nil, err
	}
	return cred, t.notify(ids, "device.approved", map[string]any{"user": u.ID.String(), "device": d.ID, "approvers": approvers})
}

// Challenge returns a fresh nonce for a device to sign. Unknown devices get
// a nonce too, so the endpoint does not reveal which devices exist.
func (s *Service) Challenge(ctx context.Context, deviceID string) ([]byte, time.Time, error) {
	if !identity.ValidDeviceID(deviceID) {
		return nil, time.Time{}, apierr.New(apierr.BadRequest, "device is not a valid device ID")
	}
	nonce := randomBytes(32)
	exp := s.now().Add(time.Minute)
	err := s.update(ctx, func(t *txn) error { return t.CreateChallenge(ctx, nonce, deviceID, exp) })
	return nonce, exp, err
}

// Login checks a device's signature over a challenge and opens a session.
// The token is returned once and stored only as a hash; it expires after
// SessionTTL. Pending devices get a session too (to learn when they are
// approved); revoked devices never do. A device with a passkey must also
// present an unlock ticket (Unlock), which the session consumes; unlock is
// ignored for devices without one.
func (s *Service) Login(ctx context.Context, deviceID string, nonce, sig []byte, unlock string) (token string, expires time.Time, err error) {
	err = s.update(ctx, func(t *txn) error {
		if err := t.UseChallenge(ctx, nonce, deviceID, s.now()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return apierr.New(apierr.ProofInvalid, "unknown or expired challenge").WithHint("request a new challenge")
			}
			return err
		}
		d, err := t.GetDevice(ctx, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.ProofInvalid, "the challenge signature does not verify")
		} else if err != nil {
			return err
		}
		if !d.SigKey.Verify(identity.AuthChallengeMessage(s.cfg.Org, deviceID, nonce), sig) {
			return apierr.New(apierr.ProofInvalid, "the challenge signature does not verify")
		}
		if d.Status == store.DeviceRevoked {
			return apierr.New(apierr.DeviceRevoked, "device %s has been revoked", d.ID)
		}
		if err := t.usePasskeyUnlock(d.ID, unlock); err != nil {
			return err
		}
		raw := randomBytes(32)
		token = base64.RawURLEncoding.EncodeToString(raw)
		expires = s.now().Add(s.cfg.SessionTTL)
		return t.CreateSession(ctx, store.Session{TokenHash: sha256.Sum256([]byte(token)), DeviceID: d.ID, ExpiresAt: expires})
	})
	return token, expires, err
}

// Authenticate resolves a session token to its actor, in one read (every
// request makes it).
func (s *Service) Authenticate(ctx context.Context, token string) (Actor, error) {
	var a Actor
	err := s.viewOne(ctx, func(tx *store.Tx) error {
		var err error
		a.Device, a.User, err = tx.SessionActor(ctx, sha256.Sum256([]byte(token)), s.now())
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.Unauthenticated, "no valid session").WithHint("authenticate again with the device key")
		} else if err != nil {
			return err
		}
		if a.Device.Status == store.DeviceRevoked {
			return apierr.New(apierr.DeviceRevoked, "device %s has been revoked", a.Device.ID)
		}
		if a.User.Disabled {
			return apierr.New(apierr.UserDisabled, "user %s is disabled", a.User.ID)
		}
		return nil
	})
	return a, err
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, a Actor) error {
	return s.update(ctx, func(t *txn) error { return t.DeleteSessions(ctx, a.Device.ID) })
}

// Renew issues a fresh credential to an active device.
func (s *Service) Renew(ctx context.Context, a Actor) ([]byte, error) {
	if a.Device.Status != store.DeviceActive {
		return nil, apierr.New(apierr.DevicePending, "device %s is not approved yet", a.Device.ID)
	}
	var cred []byte
	err := s.update(ctx, func(t *txn) error {
		var err error
		cred, err = t.issueCredential(a.Device, a.User)
		return err
	})
	return cred, err
}

// Expire deletes expired sessions, challenges and unlock tickets; the
// server calls it periodically.
func (s *Service) Expire(ctx context.Context) error {
	return s.update(ctx, func(t *txn) error {
		if err := t.Tx.Expire(ctx, s.now()); err != nil {
			return err
		}
		return t.ExpirePasskeyUnlocks(ctx, s.now())
	})
}
