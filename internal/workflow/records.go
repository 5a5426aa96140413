package workflow

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// The records policy (the records officer's): retention by classification
// level, and legal holds. The archive lets records go under it and says so
// first (Expire). Every change is a log entry, which is what the archive
// acts on.

// HoldReasons are the stable codes a hold is placed for (the case itself
// is the records officer's, never the server's).
var HoldReasons = []string{"litigation", "investigation", "inquiry", "audit", "request"}

// MaxRetentionDays bounds a retention schedule (a century).
const MaxRetentionDays = 36500

// SetRetention sets how many days records of a level are kept (0: for good).
func (s *Service) SetRetention(ctx context.Context, a org.Actor, in api.RecordsRetention) (api.RecordsPolicy, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return api.RecordsPolicy{}, err
	}
	level, err := identity.ParseClearance(in.Level)
	if err != nil {
		return api.RecordsPolicy{}, apierr.New(apierr.BadRequest, "level: %v", err)
	}
	if in.Days < 0 || in.Days > MaxRetentionDays {
		return api.RecordsPolicy{}, apierr.New(apierr.BadRequest, "days: %d is not between 0 (kept for good) and %d", in.Days, MaxRetentionDays)
	}
	err = s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if err := tx.SetRetention(ctx, store.Retention{Level: level.Token(), Days: in.Days, SetBy: a.User.ID, SetAt: s.cfg.Now()}); err != nil {
			return err
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsRetention, Clearance: level.Token(), Count: in.Days})
	})
	if err != nil {
		return api.RecordsPolicy{}, err
	}
	return s.RecordsPolicy(ctx, a)
}

// PlaceHold places a legal hold on a conversation, or on every one.
func (s *Service) PlaceHold(ctx context.Context, a org.Actor, in api.RecordsHold) (api.RecordsHold, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return api.RecordsHold{}, err
	}
	if !slices.Contains(HoldReasons, in.Reason) {
		return api.RecordsHold{}, apierr.New(apierr.BadRequest, "reason %q: want one of %v (the case itself stays with the records officer)", in.Reason, HoldReasons)
	}
	var group []byte
	if in.Conversation != "" {
		g, err := base64.RawURLEncoding.DecodeString(in.Conversation)
		if err != nil || len(g) == 0 {
			return api.RecordsHold{}, apierr.New(apierr.BadRequest, "conversation: not a conversation ID")
		}
		group = g
	}
	h := store.Hold{ID: newID(), GroupID: group, Reason: in.Reason, CreatedBy: a.User.ID, CreatedAt: s.cfg.Now()}
	err := s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if group != nil {
			if _, err := tx.GetConversation(ctx, group); errors.Is(err, store.ErrNotFound) {
				return apierr.New(apierr.NotFound, "no such conversation %s", in.Conversation)
			} else if err != nil {
				return err
			}
		}
		if err := tx.CreateHold(ctx, h); err != nil {
			return err
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsHold, Item: h.ID, Reason: h.Reason, Conversation: in.Conversation})
	})
	return api.RecordsHold{ID: h.ID, Conversation: in.Conversation, Reason: in.Reason}, err
}

// ReleaseHold releases a hold in force.
func (s *Service) ReleaseHold(ctx context.Context, a org.Actor, id string, _ struct{}) (api.RecordsPolicy, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return api.RecordsPolicy{}, err
	}
	err := s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if err := tx.ReleaseHold(ctx, id, a.User.ID, s.cfg.Now()); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no hold %s in force", id)
		} else if err != nil {
			return err
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsRelease, Item: id})
	})
	if err != nil {
		return api.RecordsPolicy{}, err
	}
	return s.RecordsPolicy(ctx, a)
}

// RecordsPolicy returns the schedule and the holds in force, to the
// records officer and the archive.
func (s *Service) RecordsPolicy(ctx context.Context, a org.Actor) (api.RecordsPolicy, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil && !a.User.Roles.Has(identity.RoleArchive) {
		return api.RecordsPolicy{}, err
	}
	v := api.RecordsPolicy{Retention: []api.RecordsRetention{}, Holds: []api.RecordsHoldView{}}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		rs, err := tx.Retentions(ctx)
		if err != nil {
			return err
		}
		for _, r := range rs {
			v.Retention = append(v.Retention, api.RecordsRetention{Level: r.Level, Days: r.Days})
		}
		hs, err := tx.Holds(ctx, false)
		if err != nil {
			return err
		}
		for _, h := range hs {
			hv := api.RecordsHoldView{ID: h.ID, Reason: h.Reason, By: h.CreatedBy.String(), At: h.CreatedAt}
			if h.GroupID != nil {
				hv.Conversation = base64.RawURLEncoding.EncodeToString(h.GroupID)
			}
			v.Holds = append(v.Holds, hv)
		}
		return nil
	})
	return v, wrap(err)
}

// Expire records, and logs, that the archive lets a conversation's records
// go through a message, as the retention schedule for its level allows;
// refused while a hold covers the conversation. Asking again for a message
// already let go changes nothing.
func (s *Service) Expire(ctx context.Context, a org.Actor, in api.RecordsExpire) (api.RecordsExpire, error) {
	if !a.User.Roles.Has(identity.RoleArchive) {
		return in, apierr.New(apierr.Forbidden, "only the archive device lets records go")
	}
	err := s.letGo(ctx, a, in.Conversation, in.Through, func(tx *store.Tx, group []byte, c store.Conversation) error {
		rs, err := tx.Retentions(ctx)
		if err != nil {
			return err
		}
		level, err := tx.RecordsLevel(ctx, group)
		if err != nil {
			return err
		}
		if level == "" {
			level = c.Level.Token()
		}
		if !slices.ContainsFunc(rs, func(r store.Retention) bool { return r.Level == level }) {
			return apierr.New(apierr.Conflict, "no retention schedule for %s records: they are kept for good", level)
		}
		return nil
	}, false, tlog.Entry{Type: tlog.TypeRecordsExpire, Conversation: in.Conversation, Count: int(in.Through)})
	return in, err
}

// letGo records, and logs as entry, that a conversation's records go
// through a message: the conversation must have that message, no hold may
// cover it, and check (if not nil) may refuse. Records already let go
// through it are not let go again, and logged again only if always.
func (s *Service) letGo(ctx context.Context, a org.Actor, conv string, through int64, check func(tx *store.Tx, group []byte, c store.Conversation) error, always bool, entry tlog.Entry) error {
	group, err := base64.RawURLEncoding.DecodeString(conv)
	if err != nil || len(group) == 0 {
		return apierr.New(apierr.BadRequest, "conversation: not a conversation ID")
	}
	if through <= 0 {
		return apierr.New(apierr.BadRequest, "through: %d is not a message", through)
	}
	return s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		c, err := tx.GetConversation(ctx, group)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such conversation %s", conv)
		} else if err != nil {
			return err
		}
		if through > c.HeadSeq {
			return apierr.New(apierr.BadRequest, "through: the conversation has %d messages", c.HeadSeq)
		}
		if err := noHold(ctx, tx, group); err != nil {
			return err
		}
		if check != nil {
			if err := check(tx, group, c); err != nil {
				return err
			}
		}
		done, err := tx.Expired(ctx, group)
		if err != nil {
			return err
		}
		if through > done {
			if err := tx.SetExpired(ctx, group, through, s.cfg.Now()); err != nil {
				return err
			}
		} else if !always {
			return nil
		}
		return s.log(ctx, tx, a, entry)
	})
}

// MoveDestinations are the stable codes of where records move to (the
// system itself is the records officer's to note, never the server's).
var MoveDestinations = []string{"national-archives", "records-centre", "successor", "court", "inquiry"}

// Move records, and logs, that a conversation's records through a message
// went to another system as an export (named by its manifest's SHA-256),
// so that the archive lets its copies go (it acts on the records.move
// entry). Refused while a hold covers the conversation: held records stay.
func (s *Service) Move(ctx context.Context, a org.Actor, in api.RecordsMove) (api.RecordsMove, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return in, err
	}
	if err := checkManifest(in.Manifest); err != nil {
		return in, err
	}
	if !slices.Contains(MoveDestinations, in.To) {
		return in, apierr.New(apierr.BadRequest, "to %q: want one of %v (the system itself stays with the records officer)", in.To, MoveDestinations)
	}
	err := s.letGo(ctx, a, in.Conversation, in.Through, nil, true,
		tlog.Entry{Type: tlog.TypeRecordsMove, Item: in.Manifest, Conversation: in.Conversation, Count: int(in.Through), Reason: in.To})
	return in, err
}

// noHold refuses when a hold in force covers the conversation.
func noHold(ctx context.Context, tx *store.Tx, group []byte) error {
	hs, err := tx.Holds(ctx, false)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.GroupID == nil || string(h.GroupID) == string(group) {
			return apierr.New(apierr.Conflict, "hold %s (%s) is in force on the conversation: its records stay", h.ID, h.Reason)
		}
	}
	return nil
}

// Reclassify keeps a conversation's records under another level from now
// on (retention follows it), and logs it.
func (s *Service) Reclassify(ctx context.Context, a org.Actor, in api.RecordsReclassify) (api.RecordsReclassify, error) {
	if err := a.Can(directory.ActRecordsManage); err != nil {
		return in, err
	}
	level, err := identity.ParseClearance(in.Level)
	if err != nil {
		return in, apierr.New(apierr.BadRequest, "level: %v", err)
	}
	group, err := base64.RawURLEncoding.DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return in, apierr.New(apierr.BadRequest, "conversation: not a conversation ID")
	}
	in.Level = level.Token()
	err = s.update(ctx, func(tx *store.Tx, _ *[]string) error {
		if _, err := tx.GetConversation(ctx, group); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such conversation %s", in.Conversation)
		} else if err != nil {
			return err
		}
		if err := tx.SetRecordsLevel(ctx, group, in.Level, a.User.ID, s.cfg.Now()); err != nil {
			return err
		}
		return s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRecordsReclass, Conversation: in.Conversation, Clearance: in.Level})
	})
	return in, err
}
