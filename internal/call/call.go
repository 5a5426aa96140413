// Package call is the signalling of Hotline's voice calls: placing a call
// in a conversation, ringing the other members' devices, answering,
// declining, joining and leaving, and ending calls that nobody answers.
//
// A call always belongs to a conversation (an MLS group): its members are
// who may be rung or join, its classification is the call's, and its
// group's exporter keys the media end to end (SFrame, in the clients), so
// the server holds no media key. This package holds only metadata: who was
// called, by whom, who joined and left, when, and how the call ended. It
// tells devices over their durable event queues (the events it pushes
// carry a [View]) and records every start, join, leave and end in the
// transparency log.
//
// Every attempt is checked as it is made: the caller and every device that
// answers or joins must be a current member of the conversation, an active
// device of an enabled user cleared for the conversation's classification,
// and the organisation's contact policy must allow the caller to reach each
// user rung.
//
// The media path (the SFU) is told through [Media] whom to forward to; a
// device that answers on one device stops the ringing on the user's other
// devices ("answered elsewhere").
package call

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Event types pushed to devices; each payload is a View.
const (
	EventRing      = "call.ring"      // this device is rung
	EventUpdate    = "call.update"    // someone joined, left or declined
	EventElsewhere = "call.elsewhere" // another device of this user answered or declined: stop ringing
	EventEnded     = "call.ended"     // the call is over (View.Reason says why)
)

// Reasons a call ends or a participant leaves.
const (
	ReasonHangup    = "hangup"    // the last but one participant left
	ReasonCancelled = "cancelled" // the caller hung up before anyone answered
	ReasonDeclined  = "declined"  // everyone rung declined
	ReasonBusy      = "busy"      // everyone rung was in another call
	ReasonNoAnswer  = "no_answer" // nobody answered within the ring timeout
	ReasonDropped   = "dropped"   // the device's media transport went away
	ReasonRevoked   = "revoked"   // the device was revoked or its user disabled
	ReasonPreempted = "preempted" // a participant was taken out for a call of higher precedence
)

// DefaultRingTimeout is how long a call rings unanswered before it ends.
const DefaultRingTimeout = 45 * time.Second

// Media is the media path: it forwards a call's audio among the devices
// joined to it.
type Media interface {
	Join(call, device string) error
	Leave(call, device string)
}

// ListeningMedia is a media path that can join a device as a listener:
// it hears the others, nobody hears it.
type ListeningMedia interface {
	JoinListening(call, device string) error
}

// JoinMedia joins a device to a call's media, as a listener if listen and
// the media path can.
func JoinMedia(m Media, call, device string, listen bool) error {
	if lm, ok := m.(ListeningMedia); ok && listen {
		return lm.JoinListening(call, device)
	}
	return m.Join(call, device)
}

// Listening reports whether a participant with role, who did not place
// the call, joins listen-only: note-takers, and the archive and recorder
// accounts, are on the record but do not speak. Interpreters speak.
func Listening(role string) bool {
	return role == string(identity.RoleNoteTaker) || role == string(identity.RoleArchive) || role == string(identity.RoleRecorder)
}

// Listens reports whether u, rung into a call someone else placed, joins it
// listen-only: whether the role u is shown with (their first) listens.
func Listens(u store.User) bool { return Listening(roleOf(u)) }

// DefaultMaxListeners is how many listeners a call takes at most unless
// configured.
const DefaultMaxListeners = 2

// Config configures a Service.
type Config struct {
	Store       *store.Store
	Org         *org.Service
	Hub         *events.Hub // nil: devices learn at their next read
	Media       Media       // nil: signalling only
	Now         func() time.Time
	RingTimeout time.Duration // 0: DefaultRingTimeout
	Logger      *slog.Logger  // nil: discard
	// MaxListeners caps the listeners (see Listening) joined to one call at
	// once (0: DefaultMaxListeners; negative: none may listen).
	MaxListeners int
	// OnPlaced, if set, sees every call that rings, in the transaction
	// that places it, and returns devices to wake (the duty desk's
	// workflow: ad-hoc calls).
	OnPlaced func(ctx context.Context, tx *store.Tx, v View) ([]string, error)
}

// Service places and tracks calls.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxListeners == 0 {
		cfg.MaxListeners = DefaultMaxListeners
	}
	return &Service{cfg: cfg}
}

// View is a call as its participants see it, and every event's payload
// (the wire type api.Call).
type View = api.Call

// Participant is a device rung into or joined to a call.
type Participant = api.CallParticipant

// txState collects what a transaction does beyond the database: devices to
// wake, and media to start and stop, once it commits.
type txState struct {
	woken []string
	join  []mediaJoin
	leave [][2]string
}

// mediaJoin is a device to join to a call's media, as a listener or not.
type mediaJoin struct {
	call, device string
	listen       bool
}

func (s *Service) update(ctx context.Context, fn func(tx *store.Tx, ts *txState) error) error {
	var ts txState
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		ts = txState{}
		return fn(tx, &ts)
	})
	if err != nil {
		return wrap(err)
	}
	for _, l := range ts.leave {
		if s.cfg.Media != nil {
			s.cfg.Media.Leave(l[0], l[1])
		}
	}
	for _, j := range ts.join {
		if s.cfg.Media != nil {
			if err := JoinMedia(s.cfg.Media, j.call, j.device, j.listen); err != nil {
				// The device has no media connection yet: it joins the
				// media when it connects (see Joined).
				s.cfg.Logger.Debug("media join", "call", j.call, "device", j.device, "err", err)
			}
		}
	}
	if s.cfg.Hub != nil {
		s.cfg.Hub.Wake(ts.woken...)
	}
	return nil
}

// Place calls the other members of a conversation from the actor's device:
// every device of every other member user that is cleared for it is rung.
// A conversation has at most one call at a time: placing a call where one
// is open is a Conflict that names it (join it instead).
func (s *Service) Place(ctx context.Context, a org.Actor, groupID []byte) (View, error) {
	return s.PlaceRinging(ctx, a, groupID, nil)
}

// PlaceRinging is Place ringing only the member users in only (all of them
// if only is nil): how the duty desk places a call to the counterpart
// first, and connects the principal once they are on the line (Ring).
func (s *Service) PlaceRinging(ctx context.Context, a org.Actor, groupID []byte, only []identity.UserID) (View, error) {
	var v View
	err := s.update(ctx, func(tx *store.Tx, ts *txState) error {
		conv, members, err := s.memberOf(ctx, tx, a, groupID)
		if err != nil {
			return err
		}
		if err := clearanceShort(a.User, conv); err != nil {
			return err
		}
		if open, err := tx.OpenCall(ctx, groupID); err == nil {
			return apierr.New(apierr.Conflict, "the conversation already has call %s", open.ID).
				WithHint("join that call instead")
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		now := s.cfg.Now()
		c := store.Call{ID: newID(), GroupID: groupID, Caller: a.User.ID, CallerDevice: a.Device.ID, State: store.CallRinging, CreatedAt: now}
		if err := tx.CreateCall(ctx, c); err != nil {
			return err
		}
		if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: c.ID, Device: a.Device.ID, User: a.User.ID,
			Role: roleOf(a.User), State: store.PartJoined, UpdatedAt: now}); err != nil {
			return err
		}
		// Ring every other user's devices that may take the call; the
		// contact policy decides for each user once.
		checked := map[identity.UserID]bool{}
		var rung, busy int
		var short error
		users := map[identity.UserID]bool{}
		for _, m := range members {
			if m.User == a.User.ID || only != nil && !slices.Contains(only, m.User) {
				continue
			}
			users[m.User] = true
			if !checked[m.User] {
				if _, err := s.cfg.Org.CheckContactTx(ctx, tx, a, m.User); err != nil {
					return err
				}
				checked[m.User] = true
			}
		}
		if len(users) == 0 {
			return apierr.New(apierr.BadRequest, "nobody else is in this conversation to call")
		}
		for u := range users {
			if in, err := tx.UserInCall(ctx, u); err != nil {
				return err
			} else if in {
				busy++
				delete(users, u)
			}
		}
		for _, m := range members {
			if !users[m.User] {
				continue
			}
			u, d, err := s.directoryOf(ctx, tx, m.User, m.Device)
			if err != nil {
				return err
			}
			if err := clearanceShort(u, conv); err != nil {
				short = err
				continue // not rung: it could not join
			}
			if d.Status != store.DeviceActive || u.Disabled {
				continue
			}
			if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: c.ID, Device: m.Device, User: m.User,
				Role: roleOf(u), State: store.PartRinging, UpdatedAt: now}); err != nil {
				return err
			}
			rung++
		}
		if err := logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeCallStart, Conversation: convID(groupID), Call: c.ID,
			Actor: a.User.ID.String(), ActorDevice: a.Device.ID}); err != nil {
			return err
		}
		ts.join = append(ts.join, mediaJoin{call: c.ID, device: a.Device.ID})
		if rung == 0 && busy == 0 && short != nil {
			return short
		}
		if rung == 0 {
			reason := ReasonNoAnswer
			if busy > 0 {
				reason = ReasonBusy
			}
			if err := s.endLocked(ctx, tx, ts, c, conv, reason); err != nil {
				return err
			}
			v, err = s.view(ctx, tx, c.ID, conv)
			return err
		}
		if v, err = s.view(ctx, tx, c.ID, conv); err != nil {
			return err
		}
		if s.cfg.OnPlaced != nil {
			woken, err := s.cfg.OnPlaced(ctx, tx, v)
			if err != nil {
				return err
			}
			ts.woken = append(ts.woken, woken...)
		}
		return s.notify(ctx, tx, ts, v, EventRing, EventUpdate)
	})
	return v, err
}

// Accept answers a call ringing on the actor's device; the user's other
// devices stop ringing.
func (s *Service) Accept(ctx context.Context, a org.Actor, callID string) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State != store.PartRinging {
			return apierr.New(apierr.Conflict, "this device is %s, not ringing", me.State)
		}
		if err := s.joinLocked(ctx, tx, ts, a, c, conv); err != nil {
			return err
		}
		return s.stopOthers(ctx, tx, ts, c, conv, a, parts, store.PartElsewhere)
	})
}

// Decline refuses a call ringing on the actor's device, for all the
// user's devices.
func (s *Service) Decline(ctx context.Context, a org.Actor, callID string) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State != store.PartRinging {
			return apierr.New(apierr.Conflict, "this device is %s, not ringing", me.State)
		}
		now := s.cfg.Now()
		me.State, me.UpdatedAt = store.PartDeclined, now
		if err := tx.PutCallParticipant(ctx, me); err != nil {
			return err
		}
		if err := s.stopOthers(ctx, tx, ts, c, conv, a, parts, store.PartElsewhere); err != nil {
			return err
		}
		return s.settle(ctx, tx, ts, c, conv, ReasonDeclined)
	})
}

// Join joins the actor's device to a call of a conversation it is a
// member of: one that is ringing it, one it left, or one it was not rung
// for (added to the conversation since).
func (s *Service) Join(ctx context.Context, a org.Actor, callID string) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State == store.PartJoined {
			return nil
		}
		if err := s.joinLocked(ctx, tx, ts, a, c, conv); err != nil {
			return err
		}
		return s.stopOthers(ctx, tx, ts, c, conv, a, parts, store.PartElsewhere)
	})
}

// Leave takes the actor's device out of a call (hang up). The caller
// leaving a call nobody answered cancels it; a call with fewer than two
// devices joined that speak (listeners do not count) and none ringing
// ends.
func (s *Service) Leave(ctx context.Context, a org.Actor, callID string) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State != store.PartJoined {
			return apierr.New(apierr.Conflict, "this device is %s, not in the call", me.State)
		}
		if c.State == store.CallRinging && a.Device.ID == c.CallerDevice {
			return s.endLocked(ctx, tx, ts, c, conv, ReasonCancelled)
		}
		if err := s.leaveLocked(ctx, tx, ts, c, me, ReasonHangup); err != nil {
			return err
		}
		return s.settle(ctx, tx, ts, c, conv, ReasonHangup)
	})
}

// Ring rings another member user of the call's conversation into the call,
// from a device joined to it: the duty desk connecting the principal once
// the counterpart is on the line. A user busy in another call is refused
// (conflict), unless preempt: then they are taken out of that call
// (reason preempted, in the log) and rung at once — a flash call
// preempting a routine one. Every view of the other call then marks them
// Preempted, so that their device and those left on it know why (and
// sound the preemption warning).
func (s *Service) Ring(ctx context.Context, a org.Actor, callID string, user identity.UserID, preempt bool) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State != store.PartJoined {
			return apierr.New(apierr.Conflict, "this device is %s, not in the call", me.State)
		}
		members, err := tx.ConversationMembers(ctx, c.GroupID)
		if err != nil {
			return err
		}
		var devices []store.ConversationMember
		for _, m := range members {
			if m.User == user && m.LeftSeq == 0 && !m.Lapsed {
				devices = append(devices, m)
			}
		}
		if len(devices) == 0 {
			return apierr.New(apierr.NotMember, "%s has no device in the call's conversation", user)
		}
		if _, err := s.cfg.Org.CheckContactTx(ctx, tx, a, user); err != nil {
			return err
		}
		for _, p := range parts {
			if p.User == user && (p.State == store.PartJoined || p.State == store.PartRinging) {
				return apierr.New(apierr.Conflict, "%s is already %s in this call", user, p.State)
			}
		}
		// Busy elsewhere: refused, or taken out of that call.
		for _, d := range devices {
			others, err := tx.DeviceCalls(ctx, d.Device)
			if err != nil {
				return err
			}
			for _, p := range others {
				if p.CallID == c.ID || p.State != store.PartJoined && p.State != store.PartRinging {
					continue
				}
				if !preempt {
					return apierr.New(apierr.Conflict, "%s is in another call", user).WithHint("a flash call may preempt it")
				}
				oc, err := tx.GetCall(ctx, p.CallID)
				if err != nil {
					return err
				}
				oconv, err := tx.GetConversation(ctx, oc.GroupID)
				if err != nil {
					return err
				}
				// Every view of that call from now on says why they
				// left, so that its devices sound the preemption warning.
				p.Preempted = true
				if err := s.leaveLocked(ctx, tx, ts, oc, p, ReasonPreempted); err != nil {
					return err
				}
				ov, err := s.view(ctx, tx, oc.ID, oconv)
				if err != nil {
					return err
				}
				if err := s.push(ctx, tx, ts, ov, EventUpdate, []string{p.Device}); err != nil {
					return err
				}
				if err := s.settle(ctx, tx, ts, oc, oconv, ReasonPreempted); err != nil {
					return err
				}
			}
		}
		now := s.cfg.Now()
		rung := 0
		for _, d := range devices {
			u, dev, err := s.directoryOf(ctx, tx, d.User, d.Device)
			if err != nil {
				return err
			}
			if err := clearanceShort(u, conv); err != nil {
				return err
			}
			if dev.Status != store.DeviceActive || u.Disabled {
				continue
			}
			if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: c.ID, Device: d.Device, User: d.User,
				Role: roleOf(u), State: store.PartRinging, UpdatedAt: now}); err != nil {
				return err
			}
			rung++
		}
		if rung == 0 {
			return apierr.New(apierr.Conflict, "%s has no active device to ring", user)
		}
		v, err := s.view(ctx, tx, c.ID, conv)
		if err != nil {
			return err
		}
		return s.notify(ctx, tx, ts, v, EventRing, EventUpdate)
	})
}

// Hold puts every joined device of user on hold (hold true) or takes
// them off it: on hold, a device stays in the call but the forwarder sends
// it nothing and nobody hears it — the desk's "please hold for the
// principal". The call's caller, or the duty desk (canHold), may.
func (s *Service) Hold(ctx context.Context, a org.Actor, callID string, user identity.UserID, hold, canHold bool) (View, error) {
	return s.change(ctx, a, callID, func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error {
		if me.State != store.PartJoined {
			return apierr.New(apierr.Conflict, "this device is %s, not in the call", me.State)
		}
		if a.User.ID != c.Caller && !canHold {
			return apierr.New(apierr.Forbidden, "the caller or the duty desk holds participants")
		}
		now := s.cfg.Now()
		changed := 0
		reason := "hold"
		if !hold {
			reason = "resume"
		}
		for _, p := range parts {
			if p.User != user || p.State != store.PartJoined || p.Held == hold {
				continue
			}
			p.Held, p.UpdatedAt = hold, now
			if err := tx.PutCallParticipant(ctx, p); err != nil {
				return err
			}
			if hold {
				ts.leave = append(ts.leave, [2]string{c.ID, p.Device})
			} else {
				ts.join = append(ts.join, mediaJoin{call: c.ID, device: p.Device, listen: p.User != c.Caller && Listening(p.Role)})
			}
			if err := logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeCallHold, Conversation: convID(c.GroupID), Call: c.ID,
				User: p.User.String(), Device: p.Device, Reason: reason, Actor: a.User.ID.String(), ActorDevice: a.Device.ID}); err != nil {
				return err
			}
			changed++
		}
		if changed == 0 {
			return apierr.New(apierr.Conflict, "%s has no device in the call to %s", user, reason)
		}
		v, err := s.view(ctx, tx, c.ID, conv)
		if err != nil {
			return err
		}
		return s.notify(ctx, tx, ts, v, "", EventUpdate)
	})
}

// Get returns a call to a member of its conversation.
func (s *Service) Get(ctx context.Context, a org.Actor, callID string) (View, error) {
	var v View
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		c, conv, err := s.callOf(ctx, tx, a, callID)
		if err != nil {
			return err
		}
		v, err = s.view(ctx, tx, c.ID, conv)
		return err
	})
	return v, wrap(err)
}

// Mine returns the calls that ring on the actor's device or that it is
// joined to, oldest first: what a device that was not listening when it
// was rung (or that restarted) needs to know.
func (s *Service) Mine(ctx context.Context, a org.Actor) ([]View, error) {
	out := []View{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		out = out[:0]
		ps, err := tx.DeviceCalls(ctx, a.Device.ID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			c, conv, err := s.callOf(ctx, tx, a, p.CallID)
			if err != nil {
				continue // no longer a member: not the device's call
			}
			v, err := s.view(ctx, tx, c.ID, conv)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	slices.SortFunc(out, func(x, y View) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return out, wrap(err)
}

// Live returns every call under way or ringing in the organisation, oldest
// first, for the duty desk (directory.ActCallsWatch): who talks to whom,
// at what level; never content.
func (s *Service) Live(ctx context.Context, a org.Actor) ([]View, error) {
	if err := a.Can(directory.ActCallsWatch); err != nil {
		return nil, err
	}
	out := []View{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.OpenCalls(ctx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			conv, err := tx.GetConversation(ctx, c.GroupID)
			if err != nil {
				return err
			}
			v, err := s.view(ctx, tx, c.ID, conv)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, wrap(err)
}

// Drop takes a device out of every call it rings in or is joined to: its
// media transport went away (ReasonDropped) or it was revoked
// (ReasonRevoked).
func (s *Service) Drop(ctx context.Context, device, reason string) error {
	return s.update(ctx, func(tx *store.Tx, ts *txState) error {
		mine, err := tx.DeviceCalls(ctx, device)
		if err != nil {
			return err
		}
		for _, p := range mine {
			c, err := tx.GetCall(ctx, p.CallID)
			if err != nil {
				return err
			}
			conv, err := tx.GetConversation(ctx, c.GroupID)
			if err != nil {
				return err
			}
			if p.Device == c.CallerDevice && c.State == store.CallRinging {
				if err := s.endLocked(ctx, tx, ts, c, conv, ReasonCancelled); err != nil {
					return err
				}
				continue
			}
			if err := s.leaveLocked(ctx, tx, ts, c, p, reason); err != nil {
				return err
			}
			if err := s.settle(ctx, tx, ts, c, conv, ReasonHangup); err != nil {
				return err
			}
		}
		return nil
	})
}

// Expire ends the calls that rang past the ring timeout unanswered; the
// server calls it every second or so.
func (s *Service) Expire(ctx context.Context) error {
	return s.update(ctx, func(tx *store.Tx, ts *txState) error {
		cs, err := tx.RingingCalls(ctx, s.cfg.Now().Add(-s.cfg.RingTimeout), 100)
		if err != nil {
			return err
		}
		for _, c := range cs {
			conv, err := tx.GetConversation(ctx, c.GroupID)
			if err != nil {
				return err
			}
			if err := s.endLocked(ctx, tx, ts, c, conv, ReasonNoAnswer); err != nil {
				return err
			}
		}
		return nil
	})
}

// JoinedCall is a call a device is joined to, and whether as a listener.
type JoinedCall struct {
	Call   string
	Listen bool
}

// Joined returns the calls a device is joined to, for the media path to
// rejoin it when its transport (re)connects.
func (s *Service) Joined(ctx context.Context, device string) ([]JoinedCall, error) {
	var out []JoinedCall
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		ps, err := tx.DeviceCalls(ctx, device)
		out = nil
		for _, p := range ps {
			if p.State != store.PartJoined || p.Held {
				continue // on hold: no media until resumed
			}
			c, err := tx.GetCall(ctx, p.CallID)
			if err != nil {
				return err
			}
			out = append(out, JoinedCall{Call: p.CallID, Listen: p.User != c.Caller && Listening(p.Role)})
		}
		return err
	})
	return out, wrap(err)
}

// change runs fn on a call that has not ended, for a device that is a
// member of its conversation.
func (s *Service) change(ctx context.Context, a org.Actor, callID string,
	fn func(tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, me store.CallParticipant, parts []store.CallParticipant) error) (View, error) {
	var v View
	err := s.update(ctx, func(tx *store.Tx, ts *txState) error {
		c, conv, err := s.callOf(ctx, tx, a, callID)
		if err != nil {
			return err
		}
		if c.State == store.CallEnded {
			return apierr.New(apierr.Conflict, "the call has ended (%s)", c.Reason)
		}
		parts, err := tx.CallParticipants(ctx, c.ID)
		if err != nil {
			return err
		}
		me := store.CallParticipant{CallID: c.ID, Device: a.Device.ID, User: a.User.ID, Role: roleOf(a.User), State: store.PartLeft}
		for _, p := range parts {
			if p.Device == a.Device.ID {
				me = p
			}
		}
		if err := fn(tx, ts, c, conv, me, parts); err != nil {
			return err
		}
		v, err = s.view(ctx, tx, c.ID, conv)
		return err
	})
	return v, err
}

// callOf returns a call, and its conversation, to a device that is a
// current member of that conversation.
func (s *Service) callOf(ctx context.Context, tx *store.Tx, a org.Actor, callID string) (store.Call, store.Conversation, error) {
	c, err := tx.GetCall(ctx, callID)
	if errors.Is(err, store.ErrNotFound) {
		return c, store.Conversation{}, apierr.New(apierr.NotFound, "no such call")
	} else if err != nil {
		return c, store.Conversation{}, err
	}
	conv, _, err := s.memberOf(ctx, tx, a, c.GroupID)
	return c, conv, err
}

// memberOf checks that the actor's device is a current member of the
// conversation and returns it with its members.
func (s *Service) memberOf(ctx context.Context, tx *store.Tx, a org.Actor, groupID []byte) (store.Conversation, []store.ConversationMember, error) {
	conv, err := tx.GetConversation(ctx, groupID)
	if errors.Is(err, store.ErrNotFound) {
		return conv, nil, apierr.New(apierr.NotFound, "no such conversation")
	} else if err != nil {
		return conv, nil, err
	}
	members, err := tx.ConversationMembers(ctx, groupID)
	if err != nil {
		return conv, nil, err
	}
	if !slices.ContainsFunc(members, func(m store.ConversationMember) bool { return m.Device == a.Device.ID && !m.Lapsed }) {
		return conv, nil, apierr.New(apierr.NotMember, "this device is not a member of the conversation")
	}
	return conv, members, nil
}

func (s *Service) directoryOf(ctx context.Context, tx *store.Tx, user identity.UserID, device string) (store.User, store.Device, error) {
	u, err := tx.GetUser(ctx, user)
	if err != nil {
		return u, store.Device{}, err
	}
	d, err := tx.GetDevice(ctx, device)
	return u, d, err
}

// clearanceShort says why a user may not be in a conversation's call.
func clearanceShort(u store.User, conv store.Conversation) error {
	if u.Clearance < conv.Level || !u.Compartments.Contains(conv.Compartments) {
		return apierr.New(apierr.ClearanceInsufficient, "%s (cleared %s) may not be in a call classified %s", u.ID, u.Clearance, conv.Level)
	}
	return nil
}

func (s *Service) joinLocked(ctx context.Context, tx *store.Tx, ts *txState, a org.Actor, c store.Call, conv store.Conversation) error {
	if err := clearanceShort(a.User, conv); err != nil {
		return err
	}
	if a.User.ID != c.Caller {
		if _, err := s.cfg.Org.CheckContactTx(ctx, tx, a, c.Caller); err != nil {
			return err
		}
	}
	now := s.cfg.Now()
	listen := a.User.ID != c.Caller && Listening(roleOf(a.User))
	answers := true
	// The archive listens by rule (in conversations on the record), in
	// view of all: it neither counts against the cap nor is held to it, so
	// no call on the record goes unrecorded for want of room.
	archive := roleOf(a.User) == string(identity.RoleArchive)
	if listen {
		parts, err := tx.CallParticipants(ctx, c.ID)
		if err != nil {
			return err
		}
		n := 0
		for _, p := range parts {
			if p.State == store.PartJoined && p.User != c.Caller && Listening(p.Role) && p.Role != string(identity.RoleArchive) && p.Device != a.Device.ID {
				n++
			}
			if p.State == store.PartRinging && p.User != a.User.ID && !Listening(p.Role) {
				answers = false // someone who would speak is still rung: theirs to answer
			}
		}
		if !archive && n >= max(0, s.cfg.MaxListeners) {
			return apierr.New(apierr.Forbidden, "this call has %d listeners, the most the organisation's policy allows", n).
				WithHint("a listener must leave first, or an operator raises --max-listeners")
		}
	}
	if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: c.ID, Device: a.Device.ID, User: a.User.ID,
		Role: roleOf(a.User), State: store.PartJoined, UpdatedAt: now}); err != nil {
		return err
	}
	// A listener joining does not answer the call for someone who would
	// speak: it rings on (and ends as no_answer) until they answer.
	if c.State == store.CallRinging && answers {
		if err := tx.SetCallState(ctx, c.ID, store.CallActive, "", now); err != nil {
			return err
		}
	}
	if err := logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeCallJoin, Conversation: convID(c.GroupID), Call: c.ID,
		User: a.User.ID.String(), Device: a.Device.ID}); err != nil {
		return err
	}
	ts.join = append(ts.join, mediaJoin{call: c.ID, device: a.Device.ID, listen: listen})
	v, err := s.view(ctx, tx, c.ID, conv)
	if err != nil {
		return err
	}
	return s.notify(ctx, tx, ts, v, "", EventUpdate)
}

func (s *Service) leaveLocked(ctx context.Context, tx *store.Tx, ts *txState, c store.Call, p store.CallParticipant, reason string) error {
	now := s.cfg.Now()
	wasJoined := p.State == store.PartJoined
	p.State, p.UpdatedAt = store.PartLeft, now
	if !wasJoined {
		p.State = store.PartMissed
	}
	if err := tx.PutCallParticipant(ctx, p); err != nil {
		return err
	}
	if wasJoined {
		if err := logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeCallLeave, Conversation: convID(c.GroupID), Call: c.ID,
			User: p.User.String(), Device: p.Device, Reason: reason}); err != nil {
			return err
		}
		ts.leave = append(ts.leave, [2]string{c.ID, p.Device})
	}
	ts.woken = append(ts.woken, p.Device)
	return nil
}

// stopOthers stops the ringing on the actor's user's other devices.
func (s *Service) stopOthers(ctx context.Context, tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, a org.Actor, parts []store.CallParticipant, state string) error {
	now := s.cfg.Now()
	var stopped []string
	for _, p := range parts {
		if p.User != a.User.ID || p.Device == a.Device.ID || p.State != store.PartRinging {
			continue
		}
		p.State, p.UpdatedAt = state, now
		if err := tx.PutCallParticipant(ctx, p); err != nil {
			return err
		}
		stopped = append(stopped, p.Device)
	}
	if len(stopped) == 0 {
		return nil
	}
	v, err := s.view(ctx, tx, c.ID, conv)
	if err != nil {
		return err
	}
	return s.push(ctx, tx, ts, v, EventElsewhere, stopped)
}

// settle ends a call that has nobody left to talk to: fewer than two
// devices joined that speak and none ringing (reason), or, unanswered,
// nobody ringing any more (declined). Listeners do not count: a
// note-taker is not left on the line with one speaker.
func (s *Service) settle(ctx context.Context, tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, reason string) error {
	v, err := s.view(ctx, tx, c.ID, conv)
	if err != nil {
		return err
	}
	var joined, ringing int
	for _, p := range v.Participants {
		switch {
		case p.State == store.PartJoined && !p.Listening:
			joined++
		case p.State == store.PartRinging:
			ringing++
		}
	}
	if joined >= 2 || joined > 0 && ringing > 0 {
		return s.notify(ctx, tx, ts, v, "", EventUpdate)
	}
	return s.endLocked(ctx, tx, ts, c, conv, reason)
}

// endLocked ends a call: everyone still joined leaves, everyone ringing
// missed it, and every participant is told.
func (s *Service) endLocked(ctx context.Context, tx *store.Tx, ts *txState, c store.Call, conv store.Conversation, reason string) error {
	parts, err := tx.CallParticipants(ctx, c.ID)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if p.State == store.PartJoined || p.State == store.PartRinging {
			if err := s.leaveLocked(ctx, tx, ts, c, p, reason); err != nil {
				return err
			}
		}
	}
	now := s.cfg.Now()
	if err := tx.SetCallState(ctx, c.ID, store.CallEnded, reason, now); err != nil {
		return err
	}
	if err := logEntry(ctx, tx, now, tlog.Entry{Type: tlog.TypeCallEnd, Conversation: convID(c.GroupID), Call: c.ID, Reason: reason}); err != nil {
		return err
	}
	v, err := s.view(ctx, tx, c.ID, conv)
	if err != nil {
		return err
	}
	var all []string
	for _, p := range v.Participants {
		all = append(all, p.Device)
	}
	return s.push(ctx, tx, ts, v, EventEnded, all)
}

// notify tells every participant device of the call v what changed:
// ringing devices get ring (if not empty), the others update (if not
// empty), except devices that left, declined or stopped ringing.
func (s *Service) notify(ctx context.Context, tx *store.Tx, ts *txState, v View, ring, update string) error {
	var ringing, others []string
	for _, p := range v.Participants {
		switch p.State {
		case store.PartRinging:
			ringing = append(ringing, p.Device)
		case store.PartJoined:
			others = append(others, p.Device)
		}
	}
	if ring != "" {
		if err := s.push(ctx, tx, ts, v, ring, ringing); err != nil {
			return err
		}
	} else {
		others = append(others, ringing...)
	}
	if update != "" {
		return s.push(ctx, tx, ts, v, update, others)
	}
	return nil
}

// push queues an event carrying the call's view v for devices.
func (s *Service) push(ctx context.Context, tx *store.Tx, ts *txState, v View, typ string, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for _, d := range devices {
		if _, err := tx.PushEvent(ctx, store.Event{DeviceID: d, Type: typ, Payload: payload, CreatedAt: now}); err != nil {
			return err
		}
	}
	ts.woken = append(ts.woken, devices...)
	return nil
}

func (s *Service) view(ctx context.Context, tx *store.Tx, callID string, conv store.Conversation) (View, error) {
	c, err := tx.GetCall(ctx, callID)
	if err != nil {
		return View{}, err
	}
	parts, err := tx.CallParticipants(ctx, callID)
	if err != nil {
		return View{}, err
	}
	v := View{ID: c.ID, Conversation: convID(c.GroupID), Caller: c.Caller.String(), CallerDevice: c.CallerDevice,
		State: c.State, Reason: c.Reason, Level: conv.Level.Token(), CreatedAt: c.CreatedAt, Participants: []Participant{}}
	for _, comp := range conv.Compartments {
		v.Compartments = append(v.Compartments, string(comp))
	}
	if !c.AnsweredAt.IsZero() {
		v.AnsweredAt = &c.AnsweredAt
	}
	if !c.EndedAt.IsZero() {
		v.EndedAt = &c.EndedAt
	}
	for _, p := range parts {
		v.Participants = append(v.Participants, Participant{User: p.User.String(), Device: p.Device, Role: p.Role, State: p.State,
			Listening: p.User != c.Caller && Listening(p.Role), Held: p.Held && p.State == store.PartJoined,
			Preempted: p.Preempted && (p.State == store.PartLeft || p.State == store.PartMissed)})
	}
	return v, nil
}

func logEntry(ctx context.Context, tx *store.Tx, now time.Time, e tlog.Entry) error {
	e.Time = now.Unix()
	data, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("log entry %s: %w", e.Type, err)
	}
	return tx.AppendPending(ctx, data)
}

// roleOf is the role a participant is shown with: the user's first role
// in the order of identity.AllRoles ("member" without one).
func roleOf(u store.User) string {
	if len(u.Roles) == 0 {
		return "member"
	}
	return string(u.Roles[0])
}

func convID(groupID []byte) string { return base64.RawURLEncoding.EncodeToString(groupID) }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func wrap(err error) error {
	var ae *apierr.Error
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return apierr.Wrap(err, apierr.Internal, "internal error")
}
