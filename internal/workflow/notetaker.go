package workflow

import (
	"context"
	"errors"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/call"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// A principal's designated note-taker is the one on the record of the
// principal's ad-hoc calls. An admin or the duty desk designates them
// (directory.ActNoteTakerSet), and every change is logged
// (tlog.TypeNoteTakerSet). The call service rings every member of a call's
// conversation, so a note-taker who is a member is rung with the others
// and joins listen-only, as the role says, visible to all; CallPlaced then
// tells the desk, in the ad-hoc call's readout, whether the designated
// note-taker was rung or why they could not join (NoteTakerStatus). The
// media keys are the conversation's, so nobody outside it can listen: a
// note-taker who is not a member cannot join, and the readout is owed all
// the same.
//
// The recorder account will plug in beside the note-taker: a records
// policy naming the recorder for a principal's calls, checked here the same
// way, once the records issue builds the recorder device.

// Whether a principal's designated note-taker could join an ad-hoc call
// (api.Readout.NoteTakerStatus).
const (
	NoteTakerRung         = "rung"           // rung with the others; they join listening
	NoteTakerJoined       = "joined"         // already in the call (they placed it)
	NoteTakerNotMember    = "not_member"     // no device of theirs is in the call's conversation
	NoteTakerBusy         = "busy"           // in another call
	NoteTakerNotCleared   = "not_cleared"    // not cleared for the conversation's classification
	NoteTakerNotNoteTaker = "not_note_taker" // their roles changed: they would not join listening
	NoteTakerUnavailable  = "unavailable"    // disabled, or no active device
)

// SetNoteTaker designates in.NoteTaker as principal's note-taker, in place
// of any other. The principal must hold the principal role; the note-taker
// must be an enabled user of this organisation who joins calls as a
// listening note-taker.
func (s *Service) SetNoteTaker(ctx context.Context, a org.Actor, principal string, in api.NoteTakerSet) (api.NoteTaker, error) {
	if err := a.Can(directory.ActNoteTakerSet); err != nil {
		return api.NoteTaker{}, err
	}
	pid, err := identity.ParseUserID(principal)
	if err != nil {
		return api.NoteTaker{}, apierr.New(apierr.BadRequest, "principal: %v", err)
	}
	tid, err := identity.ParseUserID(in.NoteTaker)
	if err != nil {
		return api.NoteTaker{}, apierr.New(apierr.BadRequest, "note_taker: %v", err)
	}
	if tid == pid {
		return api.NoteTaker{}, apierr.New(apierr.BadRequest, "a principal is not their own note-taker")
	}
	var v api.NoteTaker
	err = s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if err := s.principal(ctx, tx, pid); err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, tid)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such user %s", tid)
		} else if err != nil {
			return err
		}
		switch {
		case tid.Org != s.cfg.Org.Org():
			return apierr.New(apierr.BadRequest, "%s is not of %s: a note-taker is the principal's own staff", tid, s.cfg.Org.Org())
		case u.Disabled:
			return apierr.New(apierr.Conflict, "%s is disabled", tid)
		case !u.Roles.Has(identity.RoleNoteTaker) || !call.Listens(u):
			return apierr.New(apierr.BadRequest, "%s does not join calls as a listening note-taker (roles %s)", tid, u.Roles).
				WithHint("an admin gives them the note-taker role, and not principal or duty-officer")
		}
		if old, err := tx.GetNoteTaker(ctx, pid); err == nil && old.NoteTaker == tid {
			v = noteTakerView(old) // no change: nothing to log
			return nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		n := store.NoteTaker{Principal: pid, NoteTaker: tid, SetBy: a.User.ID, SetAt: s.cfg.Now()}
		if err := tx.SetNoteTaker(ctx, n); err != nil {
			return err
		}
		v = noteTakerView(n)
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeNoteTakerSet, User: pid.String(), Target: tid.String()})
	})
	return v, err
}

// ClearNoteTaker removes principal's designated note-taker and returns
// who it was.
func (s *Service) ClearNoteTaker(ctx context.Context, a org.Actor, principal string) (api.NoteTaker, error) {
	if err := a.Can(directory.ActNoteTakerSet); err != nil {
		return api.NoteTaker{}, err
	}
	pid, err := identity.ParseUserID(principal)
	if err != nil {
		return api.NoteTaker{}, apierr.New(apierr.BadRequest, "principal: %v", err)
	}
	var v api.NoteTaker
	err = s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		old, err := tx.GetNoteTaker(ctx, pid)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "%s has no designated note-taker", pid)
		} else if err != nil {
			return err
		}
		if err := tx.ClearNoteTaker(ctx, pid); err != nil {
			return err
		}
		v = noteTakerView(old)
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeNoteTakerSet, User: pid.String()})
	})
	return v, err
}

// NoteTakers returns the designations the actor may see, by principal:
// every one to those who may set them, otherwise those naming the actor as
// principal or as note-taker.
func (s *Service) NoteTakers(ctx context.Context, a org.Actor) ([]api.NoteTaker, error) {
	all := a.Can(directory.ActNoteTakerSet) == nil
	out := []api.NoteTaker{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		ns, err := tx.ListNoteTakers(ctx)
		for _, n := range ns {
			if all || n.Principal == a.User.ID || n.NoteTaker == a.User.ID {
				out = append(out, noteTakerView(n))
			}
		}
		return err
	})
	return out, wrap(err)
}

// principal checks that id is a principal of the directory.
func (s *Service) principal(ctx context.Context, tx *store.Tx, id identity.UserID) error {
	u, err := tx.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.NotFound, "no such user %s", id)
	} else if err != nil {
		return err
	}
	if !u.Roles.Has(identity.RolePrincipal) {
		return apierr.New(apierr.BadRequest, "%s is not a principal", id)
	}
	return nil
}

// noteTakerStatus says whether the designated note-taker taker was rung
// into the call v being placed in conversation group, or why not.
func noteTakerStatus(ctx context.Context, tx *store.Tx, taker identity.UserID, group []byte, v api.Call) (string, error) {
	u, err := tx.GetUser(ctx, taker)
	if errors.Is(err, store.ErrNotFound) {
		return NoteTakerUnavailable, nil
	} else if err != nil {
		return "", err
	}
	switch {
	case u.Disabled:
		return NoteTakerUnavailable, nil
	case !u.Roles.Has(identity.RoleNoteTaker) || !call.Listens(u):
		return NoteTakerNotNoteTaker, nil
	}
	for _, p := range v.Participants {
		if p.User == taker.String() && p.State == store.PartJoined {
			return NoteTakerJoined, nil
		}
	}
	for _, p := range v.Participants {
		if p.User == taker.String() && p.State == store.PartRinging {
			return NoteTakerRung, nil
		}
	}
	members, err := tx.ConversationMembers(ctx, group)
	if err != nil {
		return "", err
	}
	member := false
	for _, m := range members {
		member = member || m.User == taker && m.LeftSeq == 0 && !m.Lapsed
	}
	if !member {
		return NoteTakerNotMember, nil
	}
	conv, err := tx.GetConversation(ctx, group)
	if err != nil {
		return "", err
	}
	if u.Clearance < conv.Level || !u.Compartments.Contains(conv.Compartments) {
		return NoteTakerNotCleared, nil
	}
	if busy, err := tx.UserInCall(ctx, taker); err != nil {
		return "", err
	} else if busy {
		return NoteTakerBusy, nil
	}
	return NoteTakerUnavailable, nil
}

func noteTakerView(n store.NoteTaker) api.NoteTaker {
	return api.NoteTaker{Principal: n.Principal.String(), NoteTaker: n.NoteTaker.String(), SetBy: n.SetBy.String(), SetAt: n.SetAt}
}
