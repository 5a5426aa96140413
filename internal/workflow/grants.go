package workflow

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

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

// maxExportConversations bounds one export's log entries.
const maxExportConversations = 1000

// Export logs an export of records by the records officer: one
// records.export entry per conversation, naming the export by its
// manifest's SHA-256, so that records that left for another system are
// visible to reviewers. The records themselves never reach the server.
func (s *Service) Export(ctx context.Context, a org.Actor, in api.RecordsExport) (api.RecordsExport, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return in, err
	}
	if err := checkManifest(in.Manifest); err != nil {
		return in, err
	}
	if len(in.Conversations) == 0 || len(in.Conversations) > maxExportConversations {
		return in, apierr.New(apierr.BadRequest, "conversations: an export holds 1 to %d conversations, not %d", maxExportConversations, len(in.Conversations))
	}
	groups := make([][]byte, len(in.Conversations))
	for i, c := range in.Conversations {
		g, err := base64.RawURLEncoding.DecodeString(c.Conversation)
		if err != nil || len(g) == 0 {
			return in, apierr.New(apierr.BadRequest, "conversation %q: not a conversation ID", c.Conversation)
		}
		if c.Records < 0 {
			return in, apierr.New(apierr.BadRequest, "conversation %s: %d records", c.Conversation, c.Records)
		}
		groups[i] = g
	}
	err := s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		for i, c := range in.Conversations {
			if _, err := tx.GetConversation(ctx, groups[i]); errors.Is(err, store.ErrNotFound) {
				return apierr.New(apierr.NotFound, "no such conversation %s", c.Conversation)
			} else if err != nil {
				return err
			}
			if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsExport, Item: in.Manifest, Conversation: c.Conversation, Count: c.Records}); err != nil {
				return err
			}
		}
		return nil
	})
	return in, wrap(err)
}

// checkManifest checks an export's name: its manifest's SHA-256, in
// lower-case hex, as the log's entries name it.
func checkManifest(m string) error {
	if len(m) != 64 || strings.Trim(m, "0123456789abcdef") != "" {
		return apierr.New(apierr.BadRequest, "manifest: not a SHA-256 in lower-case hex")
	}
	return nil
}
