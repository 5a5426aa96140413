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
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Events about hotlines.
const (
	EventHotlineAsk    = "hotline.test"   // to the near end: test the line now (api.HotlineAsk)
	EventHotlineStatus = "hotline.status" // to the desk: a line turned red or green (api.Hotline)
)

// Hotline statuses.
const (
	HotlineUnknown = "unknown"
	HotlineGreen   = "green"
	HotlineRed     = "red"
)

// Limits on a hotline's schedule.
const (
	DefaultHotlineInterval = time.Hour
	MinHotlineInterval     = 4 * time.Second
	MaxHotlineInterval     = 7 * 24 * time.Hour
	maxHotlineTimeout      = 30 * time.Second
	hotlineHistory         = 50
)

// hotlineTimeout is how long a test may take: a quarter of the interval,
// from 1 to 30 seconds.
func hotlineTimeout(interval time.Duration) time.Duration {
	return max(time.Second, min(maxHotlineTimeout, (interval/4).Truncate(time.Second)))
}

// CreateHotline makes a standing line from the actor's device (the near
// end, which the server asks to run each test) to a device of another user
// of the organisation (the far end, whose client answers by itself), in
// the MLS conversation the two devices hold. Tests start at once and come
// every interval less the test timeout, so a far end that dies turns the
// line red within one interval of its last answer.
func (s *Service) CreateHotline(ctx context.Context, a org.Actor, in api.HotlineCreate) (api.Hotline, error) {
	far, err := identity.ParseUserID(in.FarUser)
	if err != nil {
		return api.Hotline{}, apierr.New(apierr.BadRequest, "far_user: %v", err)
	}
	interval := time.Duration(in.Interval) * time.Second
	if in.Interval == 0 {
		interval = DefaultHotlineInterval
	}
	if interval < MinHotlineInterval || interval > MaxHotlineInterval {
		return api.Hotline{}, apierr.New(apierr.BadRequest, "a hotline is tested every %s to %s", MinHotlineInterval, MaxHotlineInterval)
	}
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.Hotline{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	if far == a.User.ID {
		return api.Hotline{}, apierr.New(apierr.BadRequest, "a hotline joins two people's devices")
	}
	now := s.cfg.Now()
	var v api.Hotline
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		if _, err := s.cfg.Org.CheckContactTx(ctx, tx, a, far); err != nil {
			return err
		}
		if far.Org != a.User.ID.Org {
			return apierr.New(apierr.BadRequest, "a hotline joins two devices of one organisation until federation exists")
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(members, func(m store.ConversationMember) bool { return m.User == far && m.Device == in.FarDevice }) {
			return apierr.New(apierr.BadRequest, "device %.40q of %s is not in the conversation", in.FarDevice, far)
		}
		h := store.Hotline{ID: newID(), GroupID: group, NearUser: a.User.ID, NearDevice: a.Device.ID, FarUser: far, FarDevice: in.FarDevice,
			Interval: interval, Timeout: hotlineTimeout(interval), Status: HotlineUnknown, CreatedBy: a.User.ID, CreatedAt: now, NextAt: now, ChangedAt: now}
		if err := tx.CreateHotline(ctx, h); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeHotlineCreate, Item: h.ID, User: far.String(), Device: in.FarDevice,
			Conversation: in.Conversation, Count: int(interval / time.Second)}); err != nil {
			return err
		}
		v, err = hotlineView(ctx, tx, h)
		return err
	})
	return v, err
}

// ReportHotline records the near end's report that the far end answered
// the test in flight; the line turns (or stays) green.
func (s *Service) ReportHotline(ctx context.Context, a org.Actor, id string, in api.HotlineReport) (api.Hotline, error) {
	if in.LatencyUs < 0 {
		return api.Hotline{}, apierr.New(apierr.BadRequest, "latency_us %d is negative", in.LatencyUs)
	}
	now := s.cfg.Now()
	var v api.Hotline
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		h, err := s.hotline(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if a.Device.ID != h.NearDevice {
			return apierr.New(apierr.Forbidden, "only the line's near end reports its tests")
		}
		if h.PendingNonce == "" || in.Nonce != h.PendingNonce {
			return apierr.New(apierr.Conflict, "no test with that nonce is in flight (it may have timed out)")
		}
		if err := tx.AddHotlineTest(ctx, store.HotlineTest{HotlineID: h.ID, Nonce: h.PendingNonce, IssuedAt: h.PendingAt, Result: "ok",
			Latency: time.Duration(in.LatencyUs) * time.Microsecond}); err != nil {
			return err
		}
		h.PendingNonce, h.PendingAt, h.LastOKAt = "", time.Time{}, now
		if err := s.setHotlineStatus(ctx, tx, woken, &h, HotlineGreen, "", now); err != nil {
			return err
		}
		if err := tx.UpdateHotline(ctx, h); err != nil {
			return err
		}
		v, err = hotlineView(ctx, tx, h)
		return err
	})
	return v, err
}

// Hotlines returns the lines the actor may see with their latest tests:
// every one for the desk, otherwise those the actor is an end of.
func (s *Service) Hotlines(ctx context.Context, a org.Actor) ([]api.Hotline, error) {
	out := []api.Hotline{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		hs, err := tx.ListHotlines(ctx)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if !canSeeHotline(a, h) {
				continue
			}
			v, err := hotlineView(ctx, tx, h)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, wrap(err)
}

// GetHotline returns one line the actor may see.
func (s *Service) GetHotline(ctx context.Context, a org.Actor, id string) (api.Hotline, error) {
	var v api.Hotline
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		h, err := s.hotline(ctx, tx, a, id)
		if err != nil {
			return err
		}
		v, err = hotlineView(ctx, tx, h)
		return err
	})
	return v, wrap(err)
}

// sweepHotlines fails the tests that timed out (the line turns red, the
// desk is alerted) and asks the near ends of lines due a test to run one.
func (s *Service) sweepHotlines(ctx context.Context, tx *store.Tx, woken *[]string, now time.Time) (int, error) {
	hs, err := tx.DueHotlines(ctx, now, sweepBatch)
	if err != nil {
		return 0, err
	}
	alerted := 0
	for _, h := range hs {
		if h.PendingNonce != "" && !now.Before(h.PendingAt.Add(h.Timeout)) {
			if err := tx.AddHotlineTest(ctx, store.HotlineTest{HotlineID: h.ID, Nonce: h.PendingNonce, IssuedAt: h.PendingAt, Result: "timeout"}); err != nil {
				return 0, err
			}
			h.PendingNonce, h.PendingAt = "", time.Time{}
			if h.Status != HotlineRed {
				alerted++
			}
			if err := s.setHotlineStatus(ctx, tx, woken, &h, HotlineRed, "timeout", now); err != nil {
				return 0, err
			}
		}
		if h.PendingNonce == "" && !now.Before(h.NextAt) {
			h.PendingNonce, h.PendingAt = newID(), now
			h.NextAt = now.Add(h.Interval - h.Timeout)
			payload, err := json.Marshal(api.HotlineAsk{Hotline: h.ID, Conversation: base64.RawURLEncoding.EncodeToString(h.GroupID), Nonce: h.PendingNonce})
			if err != nil {
				return 0, err
			}
			if _, err := tx.PushEvent(ctx, store.Event{DeviceID: h.NearDevice, Type: EventHotlineAsk, Payload: payload, CreatedAt: now}); err != nil {
				return 0, err
			}
			*woken = append(*woken, h.NearDevice)
		}
		if err := tx.UpdateHotline(ctx, h); err != nil {
			return 0, err
		}
	}
	return alerted, nil
}

// setHotlineStatus moves a line to status; a change is logged and every
// duty officer's devices are told.
func (s *Service) setHotlineStatus(ctx context.Context, tx *store.Tx, woken *[]string, h *store.Hotline, status, reason string, now time.Time) error {
	if h.Status == status {
		return nil
	}
	h.Status, h.ChangedAt = status, now
	e := tlog.Entry{Type: tlog.TypeHotlineGreen, Item: h.ID}
	if status == HotlineRed {
		e = tlog.Entry{Type: tlog.TypeHotlineRed, Item: h.ID, Reason: reason}
	}
	if err := s.systemLog(ctx, tx, e); err != nil {
		return err
	}
	v, err := hotlineView(ctx, tx, *h)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	staff, err := s.deskUsers(ctx, tx)
	if err != nil {
		return err
	}
	return s.pushTo(ctx, tx, woken, staff, EventHotlineStatus, func(store.User) ([]byte, error) { return payload, nil })
}

func (s *Service) hotline(ctx context.Context, tx *store.Tx, a org.Actor, id string) (store.Hotline, error) {
	h, err := tx.GetHotline(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !canSeeHotline(a, h) {
		return h, apierr.New(apierr.NotFound, "no such hotline")
	}
	return h, err
}

func canSeeHotline(a org.Actor, h store.Hotline) bool {
	return a.User.ID == h.NearUser || a.User.ID == h.FarUser || directory.Allowed(a.User.Roles, directory.ActRequestTriage)
}

func hotlineView(ctx context.Context, tx *store.Tx, h store.Hotline) (api.Hotline, error) {
	v := api.Hotline{ID: h.ID, Conversation: base64.RawURLEncoding.EncodeToString(h.GroupID), NearUser: h.NearUser.String(), NearDevice: h.NearDevice,
		FarUser: h.FarUser.String(), FarDevice: h.FarDevice, Interval: int64(h.Interval / time.Second), Timeout: int64(h.Timeout / time.Second),
		Status: h.Status, Changed: h.ChangedAt}
	if !h.LastOKAt.IsZero() {
		at := h.LastOKAt
		v.LastOK = &at
	}
	tests, err := tx.HotlineTests(ctx, h.ID, hotlineHistory)
	for _, t := range tests {
		v.Tests = append(v.Tests, api.HotlineTest{At: t.IssuedAt, Result: t.Result, LatencyMs: float64(t.Latency.Microseconds()) / 1000})
	}
	return v, err
}
