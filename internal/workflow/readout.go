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

// Events about ad-hoc calls; the payload is an api.Readout.
const (
	EventAdHoc          = "call.adhoc"      // a principal is on an ad-hoc call: the desk is told at once
	EventReadoutMissing = "readout.missing" // its readout's deadline passed
)

// Readout statuses.
const (
	ReadoutDue     = "due"
	ReadoutFiled   = "filed"
	ReadoutMissing = "missing"
)

// DefaultReadoutWithin is how long after an ad-hoc call its readout is due.
const DefaultReadoutWithin = 4 * time.Hour

// CallPlaced is call.Config.OnPlaced: a call that rings and has a principal
// on one side and, on the other, a counterpart or someone of another
// organisation, and that is not the scheduled call of a request, is
// ad-hoc ("call me on my cell"). The duty desk is told at once, with
// whether the principal's designated note-taker was rung or why they
// could not join; it is logged, and it owes a readout by ReadoutWithin
// either way.
func (s *Service) CallPlaced(ctx context.Context, tx *store.Tx, v api.Call) ([]string, error) {
	var principal identity.UserID
	var others []identity.UserID
	for _, p := range v.Participants {
		u, err := identity.ParseUserID(p.User)
		if err != nil {
			return nil, err
		}
		su, err := tx.GetUser(ctx, u)
		if err != nil {
			return nil, err
		}
		switch {
		case su.Roles.Has(identity.RolePrincipal) && principal.IsZero():
			principal = u
		case su.Roles.Has(identity.RoleCounterpart) || u.Org != s.cfg.Org.Org():
			if !slices.Contains(others, u) {
				others = append(others, u)
			}
		}
	}
	if principal.IsZero() || len(others) == 0 {
		return nil, nil
	}
	group, err := base64.RawURLEncoding.DecodeString(v.Conversation)
	if err != nil {
		return nil, err
	}
	rs, err := tx.ListCallRequests(ctx, store.RequestFilter{Statuses: []string{desk.StatusScheduled}})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if string(r.GroupID) == string(group) {
			return nil, nil // the scheduled path
		}
	}
	now := s.cfg.Now()
	r := store.Readout{CallID: v.ID, GroupID: group, Principal: principal, Others: others, PlacedAt: now,
		DueAt: now.Add(s.readoutWithin()).Truncate(time.Second), Status: ReadoutDue}
	// The principal's designated note-taker: rung with the others if a
	// member of the conversation (see notetaker.go); the desk learns which.
	if n, err := tx.GetNoteTaker(ctx, principal); err == nil {
		r.NoteTaker = n.NoteTaker
		if r.NoteTakerStatus, err = noteTakerStatus(ctx, tx, n.NoteTaker, group, v); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := tx.CreateReadout(ctx, r); err != nil {
		return nil, err
	}
	entry := tlog.Entry{Type: tlog.TypeCallAdHoc, Call: v.ID, Conversation: v.Conversation, User: principal.String(), At: r.DueAt.Unix()}
	if !r.NoteTaker.IsZero() {
		entry.Target, entry.Reason = r.NoteTaker.String(), r.NoteTakerStatus
	}
	if err := s.systemLog(ctx, tx, entry); err != nil {
		return nil, err
	}
	var woken []string
	staff, err := s.deskUsers(ctx, tx)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(readoutView(r))
	if err != nil {
		return nil, err
	}
	err = s.pushTo(ctx, tx, &woken, staff, EventAdHoc, func(store.User) ([]byte, error) { return payload, nil })
	return woken, err
}

func (s *Service) readoutWithin() time.Duration {
	if s.cfg.ReadoutWithin > 0 {
		return s.cfg.ReadoutWithin
	}
	return DefaultReadoutWithin
}

// FileReadout records that the readout of an ad-hoc call was sent in the
// conversation in.Conversation: by the principal or staff who write
// memoranda, to a conversation of the principal's side that holds a duty
// officer, so the desk reads it. A readout flagged missing may still be
// filed; it is marked late.
func (s *Service) FileReadout(ctx context.Context, a org.Actor, callID string, in api.ReadoutFile) (api.Readout, error) {
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.Readout{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	now := s.cfg.Now()
	var v api.Readout
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.readout(ctx, tx, a, callID)
		if err != nil {
			return err
		}
		if a.User.ID != r.Principal && !directory.Allowed(a.User.Roles, directory.ActMemConWrite) {
			return apierr.New(apierr.Forbidden, "the principal, or staff who write memoranda, file a readout")
		}
		if r.Status == ReadoutFiled {
			return apierr.New(apierr.Conflict, "the readout was filed already")
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		if err := ownSide(ctx, tx, members, r.Principal); err != nil {
			return err
		}
		hasDesk := false
		for _, m := range members {
			if u, err := tx.GetUser(ctx, m.User); err == nil && directory.Allowed(u.Roles, directory.ActRequestTriage) {
				hasDesk = true
			}
		}
		if !hasDesk {
			return apierr.New(apierr.BadRequest, "no duty officer is in the conversation: the desk could not read the readout")
		}
		r.Status, r.FiledBy, r.FiledAt, r.ReadoutGroup = ReadoutFiled, a.User.ID, now, group
		if err := tx.UpdateReadout(ctx, r); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeReadoutFile, Call: r.CallID, Conversation: in.Conversation}); err != nil {
			return err
		}
		v = readoutView(r)
		return nil
	})
	return v, err
}

// Readouts returns the ad-hoc calls' readouts the actor may see, newest
// first: every one for the desk, the principal's own otherwise.
func (s *Service) Readouts(ctx context.Context, a org.Actor) ([]api.Readout, error) {
	principal := a.User.ID
	if directory.Allowed(a.User.Roles, directory.ActRequestTriage) {
		principal = identity.UserID{}
	}
	out := []api.Readout{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		rs, err := tx.ListReadouts(ctx, principal)
		for _, r := range rs {
			out = append(out, readoutView(r))
		}
		return err
	})
	return out, wrap(err)
}

// readout returns a call's readout the actor may see (the principal, staff
// who write memoranda, the desk), locked.
func (s *Service) readout(ctx context.Context, tx *store.Tx, a org.Actor, callID string) (store.Readout, error) {
	r, err := tx.GetReadout(ctx, callID)
	if errors.Is(err, store.ErrNotFound) || err == nil && a.User.ID != r.Principal &&
		!directory.Allowed(a.User.Roles, directory.ActMemConWrite) && !directory.Allowed(a.User.Roles, directory.ActRequestTriage) {
		return r, apierr.New(apierr.NotFound, "no readout is owed for that call")
	}
	return r, err
}

// sweepReadouts flags the readouts past their deadline, once each: the
// desk and the principal are told, and it is logged.
func (s *Service) sweepReadouts(ctx context.Context, tx *store.Tx, woken *[]string, now time.Time) (int, error) {
	rs, err := tx.MissingReadouts(ctx, now, sweepBatch)
	if err != nil {
		return 0, err
	}
	staff, err := s.deskUsers(ctx, tx)
	if err != nil {
		return 0, err
	}
	for _, r := range rs {
		r.Status, r.FlaggedAt = ReadoutMissing, now
		if err := tx.UpdateReadout(ctx, r); err != nil {
			return 0, err
		}
		if err := s.systemLog(ctx, tx, tlog.Entry{Type: tlog.TypeReadoutMissing, Call: r.CallID, User: r.Principal.String(), At: r.DueAt.Unix()}); err != nil {
			return 0, err
		}
		payload, err := json.Marshal(readoutView(r))
		if err != nil {
			return 0, err
		}
		users := append([]identity.UserID{r.Principal}, staff...)
		slices.SortFunc(users, compareUsers)
		users = slices.Compact(users)
		if err := s.pushTo(ctx, tx, woken, users, EventReadoutMissing, func(store.User) ([]byte, error) { return payload, nil }); err != nil {
			return 0, err
		}
	}
	return len(rs), nil
}

func readoutView(r store.Readout) api.Readout {
	v := api.Readout{Call: r.CallID, Conversation: base64.RawURLEncoding.EncodeToString(r.GroupID), Principal: r.Principal.String(),
		Others: []string{}, PlacedAt: r.PlacedAt, Due: r.DueAt, Status: r.Status, Late: r.Status == ReadoutFiled && !r.FlaggedAt.IsZero()}
	for _, u := range r.Others {
		v.Others = append(v.Others, u.String())
	}
	if !r.FiledBy.IsZero() {
		at := r.FiledAt
		v.FiledBy, v.FiledAt = r.FiledBy.String(), &at
		v.Readout = base64.RawURLEncoding.EncodeToString(r.ReadoutGroup)
	}
	if !r.NoteTaker.IsZero() {
		v.NoteTaker, v.NoteTakerStatus = r.NoteTaker.String(), r.NoteTakerStatus
	}
	return v
}
