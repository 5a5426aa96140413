package org

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// NewUser describes a user to create.
type NewUser struct {
	ID           identity.UserID
	Roles        identity.Roles
	Clearance    identity.Clearance
	Compartments identity.Compartments
}

// Invite is a freshly minted enrolment code. The code is shown once; the
// server keeps only its hash.
type Invite struct {
	User    identity.UserID
	Code    string
	Expires time.Time
}

// CreateUserResult is what CreateUser did.
type CreateUserResult struct {
	User   store.User
	Invite Invite
	// ClearanceRequest is the ID of the change request opened when the new
	// user's clearance needs a second approver (0 if none was needed).
	ClearanceRequest int64
}

// CreateUser adds a user and mints an invite for their first device. A user
// is created UNCLASSIFIED without compartments; a higher clearance becomes a
// change request that a second admin must approve, exactly as if it were
// raised later.
func (s *Service) CreateUser(ctx context.Context, a Actor, nu NewUser) (CreateUserResult, error) {
	if err := a.can(directory.ActUserCreate); err != nil {
		return CreateUserResult{}, err
	}
	if nu.ID.Org != s.cfg.Org {
		return CreateUserResult{}, apierr.New(apierr.BadRequest, "user %s is not in organisation %s", nu.ID, s.cfg.Org)
	}
	var res CreateUserResult
	err := s.update(ctx, func(t *txn) error {
		u, err := t.createUser(nu.ID, nu.Roles, a.User.ID.String())
		if err != nil {
			return err
		}
		res.User = u
		if nu.Clearance != identity.Unclassified || len(nu.Compartments) > 0 {
			if res.ClearanceRequest, _, err = t.changeClearance(a, u, nu.Clearance, nu.Compartments); err != nil {
				return err
			}
		}
		res.Invite, err = t.createInvite(u.ID, a.User.ID.String())
		return err
	})
	return res, err
}

// createUser inserts an UNCLASSIFIED user and logs it.
func (t *txn) createUser(id identity.UserID, roles identity.Roles, by string) (store.User, error) {
	u := store.User{ID: id, Roles: roles.Normalize(), Clearance: identity.Unclassified, Compartments: identity.Compartments{},
		CreatedAt: t.s.now(), CreatedBy: by}
	if err := t.CreateUser(t.ctx, u); errors.Is(err, store.ErrConflict) {
		return store.User{}, apierr.New(apierr.Conflict, "user %s already exists", id)
	} else if err != nil {
		return store.User{}, err
	}
	return u, t.logEntry(tlog.Entry{Type: tlog.TypeUserCreate, Actor: by, User: id.String(), Roles: roleStrings(u.Roles),
		Clearance: u.Clearance.Token()})
}

func (t *txn) createInvite(user identity.UserID, by string) (Invite, error) {
	code, err := identity.NewInviteCode(nil)
	if err != nil {
		return Invite{}, err
	}
	hash, err := identity.HashInviteCode(code)
	if err != nil {
		return Invite{}, err
	}
	now := t.s.now()
	inv := Invite{User: user, Code: code, Expires: now.Add(t.s.cfg.InviteTTL)}
	return inv, t.CreateInvite(t.ctx, store.Invite{Hash: hash, User: user, CreatedBy: by, CreatedAt: now, ExpiresAt: inv.Expires})
}

// Bootstrap records the organisation, its key set and default policy,
// creates the first administrator (also security officer) and returns the
// invite for their first device. Only `hotline init` calls it.
func (s *Service) Bootstrap(ctx context.Context, admin identity.UserID, keyset []byte, rules []string) (Invite, error) {
	var inv Invite
	err := s.update(ctx, func(t *txn) error {
		if err := t.SetMeta(ctx, "org", s.cfg.Org); err != nil {
			return err
		}
		if err := t.PutKeySet(ctx, 1, keyset, s.now()); err != nil {
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeOrgCreate, Actor: SystemActor, KeySet: string(keyset)}); err != nil {
			return err
		}
		for _, r := range rules {
			if _, err := t.addRule(r, SystemActor); err != nil {
				return err
			}
		}
		// Someone must hold both roles at first; docs/operator.md says how to
		// split them once a second person is enrolled.
		if _, err := t.createUser(admin, identity.Roles{identity.RoleAdmin, identity.RoleSecurityOfficer}, SystemActor); err != nil {
			return err
		}
		var err error
		inv, err = t.createInvite(admin, SystemActor)
		return err
	})
	return inv, err
}

// CreateInvite mints an invite for another device of user. Users may invite
// their own next device; security officers may invite anyone's.
func (s *Service) CreateInvite(ctx context.Context, a Actor, user identity.UserID) (Invite, error) {
	if user != a.User.ID {
		if err := a.can(directory.ActInviteCreate); err != nil {
			return Invite{}, err
		}
	}
	var inv Invite
	err := s.update(ctx, func(t *txn) error {
		u, err := t.user(user)
		if err != nil {
			return err
		}
		if u.Disabled {
			return apierr.New(apierr.UserDisabled, "user %s is disabled", u.ID)
		}
		inv, err = t.createInvite(user, a.User.ID.String())
		return err
	})
	return inv, err
}

// OperatorInvite mints an invite for a user who has no active device, on
// the authority of whoever holds the server's data directory: the
// break-glass path when the last administrator's device is gone. The device
// it enrols is active at once only for the administrator `hotline init`
// created (the one user the log shows the system vouching for); anyone
// else's waits for a security officer's approval as usual.
func (s *Service) OperatorInvite(ctx context.Context, user identity.UserID) (Invite, error) {
	var inv Invite
	err := s.update(ctx, func(t *txn) error {
		u, err := t.user(user)
		if err != nil {
			return err
		}
		active, err := t.activeDevices(u.ID)
		if err != nil {
			return err
		}
		if len(active) > 0 {
			return apierr.New(apierr.Conflict, "%s has an active device; invite from it instead (hotline invite)", u.ID)
		}
		inv, err = t.createInvite(u.ID, SystemActor)
		return err
	})
	return inv, err
}

// DisableUser removes a person from the organisation: the account is
// disabled, every device of theirs is revoked (sessions end, live streams
// close), and both are logged. Admins may do it, but not to themselves.
func (s *Service) DisableUser(ctx context.Context, a Actor, user identity.UserID, reason string) (store.User, error) {
	if err := a.can(directory.ActUserDisable); err != nil {
		return store.User{}, err
	}
	if reason == "" {
		reason = "disabled"
	}
	if !validReason(reason) {
		return store.User{}, apierr.New(apierr.BadRequest, "reason must be a short code of a-z, 0-9, '-' and '_' (at most 32)")
	}
	if user == a.User.ID {
		return store.User{}, apierr.New(apierr.Conflict, "you cannot disable your own account").WithHint("ask another admin")
	}
	var (
		u       store.User
		revoked []string
	)
	err := s.update(ctx, func(t *txn) error {
		var err error
		if u, err = t.user(user); err != nil {
			return err
		}
		if u.Disabled {
			return apierr.New(apierr.Conflict, "user %s is already disabled", u.ID)
		}
		u.Disabled = true
		if err := t.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeUserDisable, Actor: a.User.ID.String(), ActorDevice: a.Device.ID,
			User: u.ID.String(), Reason: reason}); err != nil {
			return err
		}
		ds, err := t.ListDevices(ctx, u.ID)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Status == store.DeviceRevoked {
				continue
			}
			if err := t.SetDeviceStatus(ctx, d.ID, store.DeviceRevoked, s.now(), store.DeviceActive, store.DevicePending); err != nil {
				return err
			}
			if err := t.DeleteSessions(ctx, d.ID); err != nil {
				return err
			}
			if err := t.DeleteKeyPackages(ctx, d.ID); err != nil {
				return err
			}
			if err := t.logEntry(tlog.Entry{Type: tlog.TypeDeviceRevoke, Actor: a.User.ID.String(), ActorDevice: a.Device.ID,
				User: u.ID.String(), Device: d.ID, Reason: "user-disabled"}); err != nil {
				return err
			}
			revoked = append(revoked, d.ID)
		}
		return nil
	})
	if err == nil && s.cfg.Hub != nil {
		for _, id := range revoked {
			s.cfg.Hub.Close(id, "user disabled")
		}
	}
	return u, err
}

// SetRoles replaces a user's roles.
func (s *Service) SetRoles(ctx context.Context, a Actor, user identity.UserID, roles identity.Roles) (store.User, error) {
	if err := a.can(directory.ActUserRoles); err != nil {
		return store.User{}, err
	}
	var u store.User
	err := s.update(ctx, func(t *txn) error {
		var err error
		if u, err = t.user(user); err != nil {
			return err
		}
		roles = roles.Normalize()
		if slices.Equal(u.Roles, roles) {
			return nil
		}
		u.Roles = roles
		if err := t.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeUserRoles, Actor: a.User.ID.String(), ActorDevice: a.Device.ID,
			User: u.ID.String(), Roles: roleStrings(roles)}); err != nil {
			return err
		}
		return t.reissueCredentials(u)
	})
	return u, err
}

// ClearanceResult says whether a clearance change applied or awaits a
// second approver.
type ClearanceResult struct {
	User      store.User
	Applied   bool
	RequestID int64             // the pending change request when not applied
	Approvers []identity.UserID // who approved the change so far
}

const kindClearance = "clearance"

type clearancePayload struct {
	Clearance    identity.Clearance    `json:"clearance"`
	Compartments identity.Compartments `json:"compartments"`
}

// SetClearance changes a user's clearance and compartments. Lowering applies
// at once. Raising the level or adding a compartment needs two different
// admins: the first call opens a change request, and the same call by a
// second admin (not the subject) approves and applies it.
func (s *Service) SetClearance(ctx context.Context, a Actor, user identity.UserID, c identity.Clearance, comps identity.Compartments) (ClearanceResult, error) {
	if err := a.can(directory.ActUserClearance); err != nil {
		return ClearanceResult{}, err
	}
	if !c.Valid() {
		return ClearanceResult{}, apierr.New(apierr.BadRequest, "unknown clearance level")
	}
	if err := comps.Validate(); err != nil {
		return ClearanceResult{}, apierr.Wrap(err, apierr.BadRequest, "%v", err)
	}
	var res ClearanceResult
	err := s.update(ctx, func(t *txn) error {
		u, err := t.user(user)
		if err != nil {
			return err
		}
		res.RequestID, res.Approvers, err = t.changeClearance(a, u, c, comps.Normalize())
		if err != nil {
			return err
		}
		res.Applied = res.RequestID == 0
		res.User, err = t.GetUser(ctx, user)
		return err
	})
	return res, err
}

// changeClearance applies or requests a clearance change; it returns the
// pending request's ID (0 once applied) and its approvers.
func (t *txn) changeClearance(a Actor, u store.User, c identity.Clearance, comps identity.Compartments) (int64, []identity.UserID, error) {
	ctx := t.ctx
	if c == u.Clearance && slices.Equal(comps, u.Compartments) {
		return 0, nil, nil
	}
	apply := func(approvers []identity.UserID) error {
		u.Clearance, u.Compartments = c, comps
		if err := t.UpdateUser(ctx, u); err != nil {
			return err
		}
		if err := t.logEntry(tlog.Entry{Type: tlog.TypeUserClearance, Actor: a.User.ID.String(), ActorDevice: a.Device.ID,
			User: u.ID.String(), Clearance: c.Token(), Compartments: comps, Approvers: userStrings(approvers)}); err != nil {
			return err
		}
		return t.reissueCredentials(u)
	}
	if !directory.ClearanceChangeNeedsTwo(u.Clearance, c, u.Compartments, comps) {
		// A pending raise was asked of the old clearance; this change
		// replaces it, so a second admin cannot later approve a stale request.
		if req, err := t.PendingChangeRequest(ctx, kindClearance, u.ID.String()); err == nil {
			if err := t.ResolveChangeRequest(ctx, req.ID, store.ChangeReplaced, t.s.now()); err != nil {
				return 0, nil, err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, nil, err
		}
		return 0, []identity.UserID{a.User.ID}, apply([]identity.UserID{a.User.ID})
	}
	payload, err := json.Marshal(clearancePayload{Clearance: c, Compartments: comps})
	if err != nil {
		return 0, nil, err
	}
	subject := u.ID.String()
	req, err := t.PendingChangeRequest(ctx, kindClearance, subject)
	if err == nil && req.Payload == string(payload) {
		if slices.Contains(req.Approvers, a.User.ID) {
			return 0, nil, apierr.New(apierr.SelfApproval, "you already approved this clearance change").
				WithHint("a second admin must run the same command")
		}
		if a.User.ID == u.ID {
			return 0, nil, apierr.New(apierr.SelfApproval, "you cannot approve a raise of your own clearance")
		}
		now := t.s.now()
		if err := t.ApproveChangeRequest(ctx, req.ID, a.User.ID, now); err != nil {
			return 0, nil, err
		}
		if err := t.ResolveChangeRequest(ctx, req.ID, store.ChangeApplied, now); err != nil {
			return 0, nil, err
		}
		approvers := append(req.Approvers, a.User.ID)
		return 0, approvers, apply(approvers)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, nil, err
	}
	id, err := t.CreateChangeRequest(ctx, store.ChangeRequest{Kind: kindClearance, Subject: subject, Payload: string(payload),
		RequestedBy: a.User.ID, CreatedAt: t.s.now()})
	if err != nil {
		return 0, nil, err
	}
	admins, err := t.holders(identity.RoleAdmin)
	if err != nil {
		return 0, nil, err
	}
	ids, err := t.activeDevices(admins...)
	if err != nil {
		return 0, nil, err
	}
	return id, []identity.UserID{a.User.ID}, t.notify(ids, "request.pending", map[string]any{
		"id": id, "kind": kindClearance, "subject": subject, "requested_by": a.User.ID.String(),
		"clearance": c.Token(), "compartments": comps,
	})
}

// GetUser returns one user. Everyone may look themselves up; others need
// user.list.
func (s *Service) GetUser(ctx context.Context, a Actor, id identity.UserID) (store.User, error) {
	if id != a.User.ID {
		if err := a.can(directory.ActUserList); err != nil {
			return store.User{}, err
		}
	}
	var u store.User
	err := s.view(ctx, func(tx *store.Tx) error {
		var err error
		u, err = (&txn{Tx: tx, s: s, ctx: ctx}).user(id)
		return err
	})
	return u, err
}

// ListUsers returns every user.
func (s *Service) ListUsers(ctx context.Context, a Actor) ([]store.User, error) {
	if err := a.can(directory.ActUserList); err != nil {
		return nil, err
	}
	var us []store.User
	err := s.view(ctx, func(tx *store.Tx) (err error) { us, err = tx.ListUsers(ctx); return })
	return us, err
}

// ListChangeRequests returns pending change requests (all if all is set).
func (s *Service) ListChangeRequests(ctx context.Context, a Actor, all bool) ([]store.ChangeRequest, error) {
	if err := a.can(directory.ActUserClearance); err != nil {
		return nil, err
	}
	status := store.ChangePending
	if all {
		status = ""
	}
	var rs []store.ChangeRequest
	err := s.view(ctx, func(tx *store.Tx) (err error) { rs, err = tx.ListChangeRequests(ctx, status); return })
	return rs, err
}

func roleStrings(rs identity.Roles) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}
