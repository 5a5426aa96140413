package workflow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/desk"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Events about commitments; the payload is an api.Commitment.
const (
	EventCommitment = "commitment.update"  // a commitment opened or closed
	EventOverdue    = "commitment.overdue" // a commitment passed its due date open
)

// MemCon statuses.
const (
	MemConDraft       = "draft"
	MemConApproved    = "approved"
	MemConDistributed = "distributed"
)

// Commitment statuses.
const (
	CommitmentDraft     = "draft" // its MemCon is not approved yet
	CommitmentOpen      = "open"
	CommitmentDone      = "done"
	CommitmentCancelled = "cancelled"
)

// Limits on a MemCon's metadata.
const (
	maxRecipients = 100
	sweepBatch    = 100
)

// DraftMemCon records the actor's draft MemCon about a call request, sent
// in the conversation in.Conversation, which must hold the actor's device
// and the approver's and nobody outside the principal's side. The
// commitments are drafts until the approver approves.
func (s *Service) DraftMemCon(ctx context.Context, a org.Actor, in api.MemConDraft) (api.MemCon, error) {
	if err := a.Can(directory.ActMemConWrite); err != nil {
		return api.MemCon{}, err
	}
	approver, err := identity.ParseUserID(in.Approver)
	if err != nil {
		return api.MemCon{}, apierr.New(apierr.BadRequest, "approver: %v", err)
	}
	if approver == a.User.ID {
		return api.MemCon{}, apierr.New(apierr.SelfApproval, "a memorandum is approved by someone other than its drafter")
	}
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.MemCon{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	if len(in.Commitments) > desk.MaxCommitments {
		return api.MemCon{}, apierr.New(apierr.BadRequest, "at most %d commitments", desk.MaxCommitments)
	}
	now := s.cfg.Now()
	var v api.MemCon
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.get(ctx, tx, a, in.Request)
		if err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, approver)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no user %s", approver)
		} else if err != nil {
			return err
		}
		if u.Disabled || u.ID.Org != r.Principal.Org || u.Roles.Has(identity.RoleCounterpart) {
			return apierr.New(apierr.BadRequest, "%s cannot approve a memorandum of %s's side", approver, r.Principal)
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		if err := ownSide(ctx, tx, members, r.Principal, approver); err != nil {
			return err
		}
		m := store.MemCon{ID: newID(), RequestID: r.ID, Drafter: a.User.ID, Approver: approver, Status: MemConDraft, GroupID: group, CreatedAt: now}
		if err := tx.CreateMemCon(ctx, m); err != nil {
			return err
		}
		var made []store.Commitment // in the order given, which the answer keeps
		for i, cd := range in.Commitments {
			owner, err := identity.ParseUserID(cd.Owner)
			if err != nil {
				return apierr.New(apierr.BadRequest, "commitment %d owner: %v", i+1, err)
			}
			ou, err := tx.GetUser(ctx, owner)
			if errors.Is(err, store.ErrNotFound) {
				return apierr.New(apierr.NotFound, "commitment %d: no user %s", i+1, owner)
			} else if err != nil {
				return err
			}
			if ou.Disabled || ou.ID.Org != r.Principal.Org {
				return apierr.New(apierr.BadRequest, "commitment %d: its owner must be an active user of %s", i+1, r.Principal.Org)
			}
			if cd.Due.IsZero() || !cd.Due.After(now) || cd.Due.Sub(now) > desk.MaxAhead {
				return apierr.New(apierr.BadRequest, "commitment %d: due in the future, within %d days", i+1, int(desk.MaxAhead.Hours()/24))
			}
			c := store.Commitment{ID: newID(), MemConID: m.ID, Owner: owner, DueAt: cd.Due.UTC().Truncate(time.Second),
				Status: CommitmentDraft, CreatedAt: now, UpdatedAt: now}
			if err := tx.CreateCommitment(ctx, c); err != nil {
				return err
			}
			made = append(made, c)
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeMemConDraft, Item: m.ID, Ref: r.ID, Target: approver.String(),
			Conversation: in.Conversation, Count: len(in.Commitments)}); err != nil {
			return err
		}
		v, err = memconView(ctx, tx, m)
		v.Commitments = v.Commitments[:0]
		for _, c := range made {
			v.Commitments = append(v.Commitments, commitmentView(c, time.Time{}))
		}
		return err
	})
	return v, err
}

// ApproveMemCon approves a draft: only its named approver may. Its
// commitments open, and their owners are told.
func (s *Service) ApproveMemCon(ctx context.Context, a org.Actor, id string) (api.MemCon, error) {
	now := s.cfg.Now()
	var v api.MemCon
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		m, err := s.memcon(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if a.User.ID != m.Approver {
			return apierr.New(apierr.Forbidden, "only %s, the named approver, approves this memorandum", m.Approver)
		}
		if m.Status != MemConDraft {
			return apierr.New(apierr.Conflict, "the memorandum is %s already", m.Status)
		}
		m.Status, m.ApprovedAt = MemConApproved, now
		if err := tx.UpdateMemCon(ctx, m); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeMemConApprove, Item: m.ID}); err != nil {
			return err
		}
		cs, err := tx.MemConCommitments(ctx, m.ID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			c.Status, c.UpdatedAt = CommitmentOpen, now
			if err := tx.UpdateCommitment(ctx, c); err != nil {
				return err
			}
			if err := s.systemLog(ctx, tx, tlog.Entry{Type: tlog.TypeCommitmentOpen, Item: c.ID, Ref: m.ID, User: c.Owner.String(), At: c.DueAt.Unix()}); err != nil {
				return err
			}
			if err := s.pushCommitment(ctx, tx, woken, EventCommitment, c, now); err != nil {
				return err
			}
		}
		v, err = memconView(ctx, tx, m)
		return err
	})
	return v, err
}

// DistributeMemCon records that the drafter or approver sent the approved
// MemCon to its need-to-know list, in a conversation of exactly those
// users (and the sender).
func (s *Service) DistributeMemCon(ctx context.Context, a org.Actor, id string, in api.MemConDistribute) (api.MemCon, error) {
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.MemCon{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	if len(in.Recipients) == 0 || len(in.Recipients) > maxRecipients {
		return api.MemCon{}, apierr.New(apierr.BadRequest, "distribute to 1 to %d users", maxRecipients)
	}
	var recipients []identity.UserID
	for _, r := range in.Recipients {
		u, err := identity.ParseUserID(r)
		if err != nil {
			return api.MemCon{}, apierr.New(apierr.BadRequest, "recipient: %v", err)
		}
		if !slices.Contains(recipients, u) {
			recipients = append(recipients, u)
		}
	}
	slices.SortFunc(recipients, func(x, y identity.UserID) int { return compareUsers(x, y) })
	now := s.cfg.Now()
	var v api.MemCon
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		m, err := s.memcon(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if a.User.ID != m.Drafter && a.User.ID != m.Approver {
			return apierr.New(apierr.Forbidden, "the drafter or the approver distributes a memorandum")
		}
		if m.Status != MemConApproved {
			return apierr.New(apierr.Conflict, "the memorandum is %s: only an approved one is distributed, once", m.Status)
		}
		r, err := tx.GetCallRequest(ctx, m.RequestID)
		if err != nil {
			return err
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		if err := ownSide(ctx, tx, members, r.Principal, recipients...); err != nil {
			return err
		}
		for _, mb := range members {
			if mb.User != a.User.ID && !slices.Contains(recipients, mb.User) {
				if u, err := tx.GetUser(ctx, mb.User); err == nil && u.Roles.Has(identity.RoleArchive) && u.ID.Org == r.Principal.Org {
					continue // the organisation's archive keeps the record; it reads nothing to anyone
				}
				return apierr.New(apierr.BadRequest, "%s is in the conversation but not on the need-to-know list", mb.User)
			}
		}
		m.Status, m.DistGroup, m.Recipients, m.DistributedAt = MemConDistributed, group, recipients, now
		if err := tx.UpdateMemCon(ctx, m); err != nil {
			return err
		}
		names := make([]string, len(recipients))
		for i, u := range recipients {
			names[i] = u.String()
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeMemConDistribute, Item: m.ID, Conversation: in.Conversation, Recipients: names}); err != nil {
			return err
		}
		v, err = memconView(ctx, tx, m)
		return err
	})
	return v, err
}

// GetMemCon returns a MemCon the actor may see: its drafter, approver,
// recipients, and the duty desk.
func (s *Service) GetMemCon(ctx context.Context, a org.Actor, id string) (api.MemCon, error) {
	var v api.MemCon
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		m, err := s.memcon(ctx, tx, a, id)
		if err != nil {
			return err
		}
		v, err = memconView(ctx, tx, m)
		return err
	})
	return v, wrap(err)
}

// ListMemCons returns the MemCons the actor may see, newest first.
func (s *Service) ListMemCons(ctx context.Context, a org.Actor) ([]api.MemCon, error) {
	out := []api.MemCon{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.ListMemCons(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !canSeeMemCon(a, m) {
				continue
			}
			v, err := memconView(ctx, tx, m)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, wrap(err)
}

// Commitments returns the actor's commitments, or with all every
// commitment (the duty desk only), by due date.
func (s *Service) Commitments(ctx context.Context, a org.Actor, all bool) ([]api.Commitment, error) {
	owner := a.User.ID
	if all {
		if err := a.Can(directory.ActRequestTriage); err != nil {
			return nil, err
		}
		owner = identity.UserID{}
	}
	now := s.cfg.Now()
	out := []api.Commitment{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.ListCommitments(ctx, owner)
		for _, c := range cs {
			out = append(out, commitmentView(c, now))
		}
		return err
	})
	return out, wrap(err)
}

// CloseCommitment marks an open commitment done or cancelled: its owner or
// the duty desk may.
func (s *Service) CloseCommitment(ctx context.Context, a org.Actor, id, status string) (api.Commitment, error) {
	if status != CommitmentDone && status != CommitmentCancelled {
		return api.Commitment{}, apierr.New(apierr.BadRequest, "a commitment closes as done or cancelled")
	}
	now := s.cfg.Now()
	var v api.Commitment
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		c, err := tx.GetCommitment(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such commitment")
		} else if err != nil {
			return err
		}
		if a.User.ID != c.Owner && !directory.Allowed(a.User.Roles, directory.ActRequestTriage) {
			return apierr.New(apierr.NotFound, "no such commitment")
		}
		if c.Status != CommitmentOpen {
			return apierr.New(apierr.Conflict, "the commitment is %s", c.Status)
		}
		c.Status, c.UpdatedAt = status, now
		if err := tx.UpdateCommitment(ctx, c); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeCommitmentClose, Item: c.ID, Reason: status}); err != nil {
			return err
		}
		v = commitmentView(c, now)
		return s.pushCommitment(ctx, tx, woken, EventCommitment, c, now)
	})
	return v, err
}

// Sweep alerts the owner and the duty desk of every open commitment past
// its due date, the desk and the principal of every ad-hoc call whose
// readout is past its deadline, and the desk of every hotline whose test
// went unanswered, once each, and logs it; and asks hotlines' near ends to
// run the tests now due. The server runs it periodically; it returns how
// many it alerted.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	n := 0
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		var err error
		if n, err = s.sweepReadouts(ctx, tx, woken, now); err != nil {
			return err
		}
		red, err := s.sweepHotlines(ctx, tx, woken, now)
		if err != nil {
			return err
		}
		n += red
		if err := s.sweepLineChecks(ctx, tx, woken, now); err != nil {
			return err
		}
		cs, err := tx.OverdueCommitments(ctx, now, sweepBatch)
		if err != nil {
			return err
		}
		for _, c := range cs {
			c.AlertedAt = now
			if err := tx.UpdateCommitment(ctx, c); err != nil {
				return err
			}
			if err := s.systemLog(ctx, tx, tlog.Entry{Type: tlog.TypeCommitmentDue, Item: c.ID, User: c.Owner.String(), At: c.DueAt.Unix()}); err != nil {
				return err
			}
			if err := s.pushCommitment(ctx, tx, woken, EventOverdue, c, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// pushCommitment queues an event about c for its owner's and every duty
// officer's active devices.
func (s *Service) pushCommitment(ctx context.Context, tx *store.Tx, woken *[]string, typ string, c store.Commitment, now time.Time) error {
	payload, err := json.Marshal(commitmentView(c, now))
	if err != nil {
		return err
	}
	users := []identity.UserID{c.Owner}
	staff, err := s.deskUsers(ctx, tx)
	if err != nil {
		return err
	}
	for _, u := range staff {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	return s.pushTo(ctx, tx, woken, users, typ, func(store.User) ([]byte, error) { return payload, nil })
}

// memcon returns a MemCon the actor may see, locked.
func (s *Service) memcon(ctx context.Context, tx *store.Tx, a org.Actor, id string) (store.MemCon, error) {
	m, err := tx.GetMemCon(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !canSeeMemCon(a, m) {
		return m, apierr.New(apierr.NotFound, "no such memorandum")
	}
	return m, err
}

func canSeeMemCon(a org.Actor, m store.MemCon) bool {
	return a.User.ID == m.Drafter || a.User.ID == m.Approver || slices.Contains(m.Recipients, a.User.ID) ||
		directory.Allowed(a.User.Roles, directory.ActRequestTriage)
}

// ownSide checks that every member of a conversation is of the principal's
// organisation and not a counterpart, and that each of need has a device
// in it.
func ownSide(ctx context.Context, tx *store.Tx, members []store.ConversationMember, principal identity.UserID, need ...identity.UserID) error {
	have := map[identity.UserID]bool{}
	for _, mb := range members {
		u, err := tx.GetUser(ctx, mb.User)
		if err != nil {
			return err
		}
		if u.ID.Org != principal.Org || u.Roles.Has(identity.RoleCounterpart) {
			return apierr.New(apierr.BadRequest, "%s is in the conversation: a memorandum stays on %s's side", u.ID, principal)
		}
		have[u.ID] = true
	}
	for _, u := range need {
		if !have[u] {
			return apierr.New(apierr.BadRequest, "%s has no device in the conversation", u)
		}
	}
	return nil
}

func memconView(ctx context.Context, tx *store.Tx, m store.MemCon) (api.MemCon, error) {
	v := api.MemCon{ID: m.ID, Request: m.RequestID, Drafter: m.Drafter.String(), Approver: m.Approver.String(), Status: m.Status,
		Conversation: base64.RawURLEncoding.EncodeToString(m.GroupID), CreatedAt: m.CreatedAt, Commitments: []api.Commitment{}}
	if !m.ApprovedAt.IsZero() {
		at := m.ApprovedAt
		v.ApprovedAt = &at
	}
	if !m.DistributedAt.IsZero() {
		at := m.DistributedAt
		v.DistributedAt, v.Distribution = &at, base64.RawURLEncoding.EncodeToString(m.DistGroup)
		for _, u := range m.Recipients {
			v.Recipients = append(v.Recipients, u.String())
		}
	}
	cs, err := tx.MemConCommitments(ctx, m.ID)
	for _, c := range cs {
		v.Commitments = append(v.Commitments, commitmentView(c, time.Time{}))
	}
	return v, err
}

// commitmentView shows c; at now (if not zero) an open commitment past its
// due date is marked overdue.
func commitmentView(c store.Commitment, now time.Time) api.Commitment {
	return api.Commitment{ID: c.ID, MemCon: c.MemConID, Owner: c.Owner.String(), Due: c.DueAt, Status: c.Status,
		Overdue: c.Status == CommitmentOpen && (!c.AlertedAt.IsZero() || !now.IsZero() && now.After(c.DueAt))}
}

func compareUsers(x, y identity.UserID) int {
	switch xs, ys := x.String(), y.String(); {
	case xs < ys:
		return -1
	case xs > ys:
		return 1
	}
	return 0
}
