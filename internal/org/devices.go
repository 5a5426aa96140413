package org

import (
	"context"
	"errors"

	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// DeviceInfo is a device with the approvals it has collected.
type DeviceInfo struct {
	store.Device
	Approvals []store.Approval
}

// ApproveResult says what an approval did.
type ApproveResult struct {
	Device    store.Device
	Activated bool
	Approvals []store.Approval
	Needed    int // distinct approvers the user's roles require
}

// ApproveDevice records the actor's approval of a pending device and
// activates it once enough different people have approved (two for a
// principal). The user's own active devices and security officers may
// approve.
func (s *Service) ApproveDevice(ctx context.Context, a Actor, deviceID string) (ApproveResult, error) {
	var res ApproveResult
	err := s.update(ctx, func(t *txn) error {
		d, err := t.device(deviceID)
		if err != nil {
			return err
		}
		if d.Status != store.DevicePending {
			return apierr.New(apierr.Conflict, "device %s is %s, not pending", d.ID, d.Status)
		}
		if !directory.CanApproveDevice(a.User.ID, a.User.Roles, d.User) {
			return apierr.New(apierr.Forbidden, "only %s's own devices or a security officer may approve this device", d.User)
		}
		u, err := t.user(d.User)
		if err != nil {
			return err
		}
		err = t.AddApproval(ctx, store.Approval{DeviceID: d.ID, Approver: a.User.ID, ApproverDevice: a.Device.ID, At: s.now()})
		if errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.SelfApproval, "you already approved device %s", d.ID).
				WithHint("a principal's device needs a second, different approver")
		} else if err != nil {
			return err
		}
		ok, err := t.approvedEnough(d, u)
		if err != nil {
			return err
		}
		if ok {
			if _, err := t.activate(d, u); err != nil {
				return err
			}
			res.Activated = true
		}
		if res.Device, err = t.GetDevice(ctx, d.ID); err != nil {
			return err
		}
		res.Approvals, err = t.Approvals(ctx, d.ID)
		res.Needed = directory.DeviceApprovalsNeeded(u.Roles)
		return err
	})
	return res, err
}

// RevokeDevice revokes a device for good: its sessions end, its live
// connections close, and it can never authenticate again. Users may revoke
// their own devices; security officers may revoke anyone's.
func (s *Service) RevokeDevice(ctx context.Context, a Actor, deviceID, reason string) (store.Device, error) {
	if reason == "" {
		reason = "revoked"
	}
	if !validReason(reason) {
		return store.Device{}, apierr.New(apierr.BadRequest, "reason must be a short code of a-z, 0-9, '-' and '_' (at most 32)")
	}
	var d store.Device
	err := s.update(ctx, func(t *txn) error {
		var err error
		if d, err = t.device(deviceID); err != nil {
			return err
		}
		if d.User != a.User.ID {
			if err := a.can(directory.ActDeviceRevoke); err != nil {
				return err
			}
		}
		if err := t.SetDeviceStatus(ctx, d.ID, store.DeviceRevoked, s.now(), store.DeviceActive, store.DevicePending); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return apierr.New(apierr.Conflict, "device %s is already revoked", d.ID)
			}
			return err
		}
		if err := t.DeleteSessions(ctx, d.ID); err != nil {
			return err
		}
		if err := t.DeleteKeyPackages(ctx, d.ID); err != nil { // it must never be added to a group again
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeDeviceRevoke, Actor: a.User.ID.String(), ActorDevice: a.Device.ID,
			User: d.User.String(), Device: d.ID, Reason: reason}); err != nil {
			return err
		}
		ids, err := t.activeDevices(d.User)
		if err != nil {
			return err
		}
		d.Status = store.DeviceRevoked
		return t.notify(ids, "device.revoked", map[string]any{"user": d.User.String(), "device": d.ID, "by": a.User.ID.String(), "reason": reason})
	})
	if err == nil && s.cfg.Hub != nil {
		s.cfg.Hub.Close(deviceID, "device revoked")
	}
	return d, err
}

// ListDevices returns a user's devices with their approvals. Users may list
// their own; others need device.list.
func (s *Service) ListDevices(ctx context.Context, a Actor, user identity.UserID) ([]DeviceInfo, error) {
	if user != a.User.ID {
		if err := a.can(directory.ActDeviceList); err != nil {
			return nil, err
		}
	}
	var out []DeviceInfo
	err := s.view(ctx, func(tx *store.Tx) error {
		ds, err := tx.ListDevices(ctx, user)
		if err != nil {
			return err
		}
		for _, d := range ds {
			as, err := tx.Approvals(ctx, d.ID)
			if err != nil {
				return err
			}
			out = append(out, DeviceInfo{Device: d, Approvals: as})
		}
		return nil
	})
	return out, err
}

func validReason(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
