package workflow

import (
	"context"
	"encoding/base64"
	"errors"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Grants: the records officer gives a user a conversation's records. The
// server never sees them: the officer's device opens the sealed records
// and sends them to the grantee inside MLS. The server records the grant
// and each time the grantee opens it, both in the log, so that a record
// that moved is visible to reviewers.

// Grant records, and logs, the records officer's grant of a conversation's
// records (Count of them) to a user of the organisation.
func (s *Service) Grant(ctx context.Context, a org.Actor, in api.RecordsGrant) (api.RecordsGrant, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return in, err
	}
	grantee, err := identity.ParseUserID(in.Grantee)
	if err != nil {
		return in, apierr.New(apierr.BadRequest, "grantee: %v", err)
	}
	group, err := base64.RawURLEncoding.DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return in, apierr.New(apierr.BadRequest, "conversation: not a conversation ID")
	}
	if in.Count <= 0 {
		return in, apierr.New(apierr.BadRequest, "count: a grant gives at least one record")
	}
	g := store.Grant{ID: newID(), Grantee: grantee, GroupID: group, Count: in.Count, CreatedBy: a.User.ID, CreatedAt: s.cfg.Now()}
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		u, err := tx.GetUser(ctx, grantee)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such user %s", grantee)
		} else if err != nil {
			return err
		}
		if u.ID.Org != s.cfg.Org.Org() || u.Disabled || u.Roles.Has(identity.RoleCounterpart) {
			return apierr.New(apierr.BadRequest, "%s cannot be granted the organisation's records", grantee)
		}
		if _, err := tx.GetConversation(ctx, group); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such conversation %s", in.Conversation)
		} else if err != nil {
			return err
		}
		if err := tx.CreateGrant(ctx, g); err != nil {
			return err
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsGrant, Item: g.ID, Target: grantee.String(), Conversation: in.Conversation, Count: in.Count})
	})
	in.ID = g.ID
	return in, err
}

// ReadGrant logs that the grantee opens a grant; only the grantee may.
func (s *Service) ReadGrant(ctx context.Context, a org.Actor, id string, _ struct{}) (api.RecordsGrant, error) {
	var v api.RecordsGrant
	err := s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if err := tx.ReadGrant(ctx, id, a.User.ID); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "you hold no grant %s", id)
		} else if err != nil {
			return err
		}
		gs, err := tx.Grants(ctx, a.User.ID)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.ID == id {
				v = grantView(g)
			}
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsRead, Item: id, Conversation: v.Conversation})
	})
	return v, err
}

// Grants lists the grants: all of them to the records officer, one's own
// to anyone else.
func (s *Service) Grants(ctx context.Context, a org.Actor) ([]api.RecordsGrant, error) {
	who := a.User.ID
	if a.Can(directory.ActRecordsManage) == nil {
		who = identity.UserID{}
	}
	out := []api.RecordsGrant{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		gs, err := tx.Grants(ctx, who)
		for _, g := range gs {
			out = append(out, grantView(g))
		}
		return err
	})
	return out, wrap(err)
}

func grantView(g store.Grant) api.RecordsGrant {
	return api.RecordsGrant{ID: g.ID, Grantee: g.Grantee.String(), Conversation: base64.RawURLEncoding.EncodeToString(g.GroupID),
		Count: g.Count, By: g.CreatedBy.String(), At: g.CreatedAt, Reads: g.Reads}
}
