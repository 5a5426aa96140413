// Package workflow is the server's duty desk: call requests, their triage
// and the schedule, and briefings' metadata. It keeps only what the server
// must act on (who, when, how urgent, what status, which conversation);
// every purpose, reason and briefing is an MLS message (desk.Doc) in the
// conversations it names. Every step is a transparency-log entry and an
// event (EventRequest) to the devices concerned: the requester, the
// principal once a call is or was scheduled, and every duty officer.
package workflow

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
	"hotline/internal/desk"
	"hotline/internal/directory"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// EventRequest is the event type whose payload is an api.CallRequest: a
// request was made or changed.
const EventRequest = "request.update"

// Config configures a Service.
type Config struct {
	Store  *store.Store
	Org    *org.Service
	Hub    *events.Hub // nil: devices learn at their next read
	Now    func() time.Time
	Logger *slog.Logger
	// ReadoutWithin is how long after an ad-hoc call its readout is due
	// (0: DefaultReadoutWithin, 4 hours).
	ReadoutWithin time.Duration
	// MediaUp reports whether a device's warm media line to the server's
	// forwarder is connected (nil: never).
	MediaUp func(device string) bool
	// Probe puts the ends of a line check in a probe session of the
	// forwarder, to measure the media path (nil: not measured; the media
	// check is then red, unmeasured).
	Probe ProbeMedia
	// LineCheckTimeout is how long the ends of a line check have to answer
	// (0: DefaultLineCheckTimeout).
	LineCheckTimeout time.Duration
	// LineLossMax is the largest fraction of the far end's probes an end
	// may lose and be green (0: DefaultLineLossMax); LineRTTMax the longest
	// median round trip (0: DefaultLineRTTMax).
	LineLossMax float64
	LineRTTMax  time.Duration
}

// ProbeMedia is the forwarder's side of a line check's measurement
// (sfu.SFU is one).
type ProbeMedia interface {
	JoinProbe(session, device string) error
	Leave(session, device string)
}

// Service runs the duty desk's workflow.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LineCheckTimeout <= 0 {
		cfg.LineCheckTimeout = DefaultLineCheckTimeout
	}
	if cfg.LineLossMax <= 0 {
		cfg.LineLossMax = DefaultLineLossMax
	}
	if cfg.LineRTTMax <= 0 {
		cfg.LineRTTMax = DefaultLineRTTMax
	}
	return &Service{cfg: cfg}
}

// update runs fn in a transaction and wakes the devices it queued events
// for once it commits.
func (s *Service) update(ctx context.Context, fn func(tx *store.Tx, woken *[]string) error) error {
	var woken []string
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		woken = woken[:0]
		return fn(tx, &woken)
	})
	if err != nil {
		return wrap(err)
	}
	if s.cfg.Hub != nil {
		s.cfg.Hub.Wake(woken...)
	}
	return nil
}

// Create records a request from the actor for a call with principal. The
// request's conversation (group) must hold the actor's device and at least
// one duty officer's, so that the desk can read the purpose the requester
// sends there.
func (s *Service) Create(ctx context.Context, a org.Actor, in api.CallRequestCreate) (api.CallRequest, error) {
	principal, err := identity.ParseUserID(in.Principal)
	if err != nil {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "principal: %v", err)
	}
	urgency, err := desk.ParseUrgency(in.Urgency)
	if err != nil {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "%v", err)
	}
	now := s.cfg.Now()
	if err := desk.CheckWindows(in.Windows, now); err != nil {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "%v", err)
	}
	if err := desk.CheckZone(in.Zone); err != nil {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "%v", err)
	}
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	if principal == a.User.ID {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "you cannot request a call with yourself")
	}
	var v api.CallRequest
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		p, err := s.cfg.Org.CheckRequestTx(ctx, tx, a, principal)
		if err != nil {
			return err
		}
		if !p.Roles.Has(identity.RolePrincipal) {
			return apierr.New(apierr.BadRequest, "%s is not a principal; talk to them directly", principal)
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		hasDesk := false
		for _, m := range members {
			if u, err := tx.GetUser(ctx, m.User); err == nil && !u.Disabled && directory.Allowed(u.Roles, directory.ActRequestTriage) {
				hasDesk = true
				break
			}
		}
		if !hasDesk {
			return apierr.New(apierr.BadRequest, "no duty officer is a member of the conversation: the desk could not read the purpose").
				WithHint("create the request's conversation with the duty officers")
		}
		r := store.CallRequest{ID: newID(), Requester: a.User.ID, RequesterDevice: a.Device.ID, Principal: principal,
			Urgency: string(urgency), Status: desk.StatusPending, GroupID: group, Zone: in.Zone, Windows: in.Windows,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateCallRequest(ctx, r); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeRequestCreate, Item: r.ID, Target: principal.String(),
			Urgency: r.Urgency, Conversation: in.Conversation}); err != nil {
			return err
		}
		v = view(a.User, r)
		return s.notify(ctx, tx, woken, r, false)
	})
	return v, err
}

// Decision is what the desk or the requester decides about a request.
type Decision struct {
	Action   string // approve, propose, accept, decline, withdraw
	At       time.Time
	Duration time.Duration
	Windows  []desk.Window
}

// The actions of Decide.
const (
	ActApprove  = "approve"  // the desk schedules the call At, for Duration
	ActPropose  = "propose"  // the desk proposes other Windows
	ActAccept   = "accept"   // the requester takes a time At within the proposed windows
	ActDecline  = "decline"  // the desk declines (the reason goes in the request's conversation)
	ActWithdraw = "withdraw" // the requester withdraws
)

// Decide applies a decision to a request.
func (s *Service) Decide(ctx context.Context, a org.Actor, id string, d Decision) (api.CallRequest, error) {
	now := s.cfg.Now()
	if d.Duration == 0 {
		d.Duration = desk.DefaultDuration
	}
	var v api.CallRequest
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.get(ctx, tx, a, id)
		if err != nil {
			return err
		}
		open := []string{desk.StatusPending, desk.StatusProposed, desk.StatusScheduled}
		var allowed []string
		e := tlog.Entry{Item: r.ID}
		prev := r.Status
		wasScheduled := prev == desk.StatusScheduled
		switch d.Action {
		case ActApprove:
			if err := a.Can(directory.ActRequestTriage); err != nil {
				return err
			}
			if err := desk.CheckSchedule(d.At, d.Duration, now); err != nil {
				return apierr.New(apierr.BadRequest, "%v", err)
			}
			allowed, e.Type, e.At = open, tlog.TypeRequestApprove, d.At.Unix()
			r.Status, r.ScheduledAt, r.Duration, r.DecidedBy = desk.StatusScheduled, d.At.UTC().Truncate(time.Second), d.Duration, a.User.ID
		case ActPropose:
			if err := a.Can(directory.ActRequestTriage); err != nil {
				return err
			}
			if err := desk.CheckWindows(d.Windows, now); err != nil {
				return apierr.New(apierr.BadRequest, "%v", err)
			}
			allowed, e.Type, e.Count = open, tlog.TypeRequestPropose, len(d.Windows)
			r.Status, r.Windows, r.ScheduledAt, r.Duration, r.DecidedBy = desk.StatusProposed, d.Windows, time.Time{}, 0, a.User.ID
		case ActAccept:
			if a.User.ID != r.Requester {
				return apierr.New(apierr.Forbidden, "only the requester accepts a proposed time")
			}
			if err := desk.CheckSchedule(d.At, d.Duration, now); err != nil {
				return apierr.New(apierr.BadRequest, "%v", err)
			}
			if r.Status == desk.StatusProposed && !desk.Within(r.Windows, d.At, d.Duration) {
				return apierr.New(apierr.BadRequest, "%s for %s is not within the proposed windows", d.At.UTC().Format(time.RFC3339), d.Duration)
			}
			allowed, e.Type, e.At = []string{desk.StatusProposed}, tlog.TypeRequestAccept, d.At.Unix()
			r.Status, r.ScheduledAt, r.Duration = desk.StatusScheduled, d.At.UTC().Truncate(time.Second), d.Duration
		case ActDecline:
			if err := a.Can(directory.ActRequestTriage); err != nil {
				return err
			}
			allowed, e.Type = open, tlog.TypeRequestDecline
			r.Status, r.DecidedBy = desk.StatusDeclined, a.User.ID
		case ActWithdraw:
			if a.User.ID != r.Requester {
				return apierr.New(apierr.Forbidden, "only the requester withdraws a request")
			}
			allowed, e.Type = open, tlog.TypeRequestWithdraw
			r.Status = desk.StatusWithdrawn
		default:
			return apierr.New(apierr.BadRequest, "action %.40q: want approve, propose, accept, decline or withdraw", d.Action)
		}
		if !slices.Contains(allowed, prev) {
			return apierr.New(apierr.Conflict, "the request is %s: it cannot be %s", prev, pastTense(d.Action))
		}
		r.UpdatedAt = now
		if err := tx.UpdateCallRequest(ctx, r); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, e); err != nil {
			return err
		}
		v = view(a.User, r)
		return s.notify(ctx, tx, woken, r, wasScheduled)
	})
	return v, err
}

// AttachBriefing records that the actor sent version of a briefing for a
// scheduled call in the conversation group, which must hold the actor's
// device and the principal's and nobody from outside the principal's
// organisation or holding the counterpart role: the brief is for the
// principal's side only.
func (s *Service) AttachBriefing(ctx context.Context, a org.Actor, id string, in api.BriefingAttach) (api.CallRequest, error) {
	if err := a.Can(directory.ActBriefingWrite); err != nil {
		return api.CallRequest{}, err
	}
	group, err := base64.RawURLEncoding.Strict().DecodeString(in.Conversation)
	if err != nil || len(group) == 0 {
		return api.CallRequest{}, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	now := s.cfg.Now()
	var v api.CallRequest
	err = s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.get(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if r.Status != desk.StatusScheduled {
			return apierr.New(apierr.Conflict, "the request is %s: a briefing goes with a scheduled call", r.Status)
		}
		if in.Version != r.BriefVersion+1 {
			return apierr.New(apierr.Conflict, "briefing version %d: the next is %d", in.Version, r.BriefVersion+1)
		}
		members, err := s.membersOf(ctx, tx, a, group)
		if err != nil {
			return err
		}
		principalIn := false
		for _, m := range members {
			u, err := tx.GetUser(ctx, m.User)
			if err != nil {
				return err
			}
			if u.ID.Org != r.Principal.Org || u.Roles.Has(identity.RoleCounterpart) {
				return apierr.New(apierr.BadRequest, "%s is a member of the briefing's conversation: a briefing is for the principal's side only", u.ID)
			}
			principalIn = principalIn || m.User == r.Principal
		}
		if !principalIn {
			return apierr.New(apierr.BadRequest, "the principal %s is not a member of the briefing's conversation", r.Principal)
		}
		r.BriefGroup, r.BriefBy, r.BriefVersion, r.BriefAt, r.BriefAcked, r.BriefAckedAt = group, a.User.ID, in.Version, now, 0, time.Time{}
		r.UpdatedAt = now
		if err := tx.UpdateCallRequest(ctx, r); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeBriefingAttach, Item: r.ID, Conversation: in.Conversation, Count: in.Version}); err != nil {
			return err
		}
		v = view(a.User, r)
		return s.notify(ctx, tx, woken, r, true)
	})
	return v, err
}

// AckBriefing records that the principal read version of the briefing.
func (s *Service) AckBriefing(ctx context.Context, a org.Actor, id string, version int) (api.CallRequest, error) {
	now := s.cfg.Now()
	var v api.CallRequest
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.get(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if a.User.ID != r.Principal {
			return apierr.New(apierr.Forbidden, "only the principal acknowledges the briefing")
		}
		if r.BriefVersion == 0 || version != r.BriefVersion {
			return apierr.New(apierr.Conflict, "briefing version %d: the current one is %d", version, r.BriefVersion)
		}
		r.BriefAcked, r.BriefAckedAt, r.UpdatedAt = version, now, now
		if err := tx.UpdateCallRequest(ctx, r); err != nil {
			return err
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeBriefingAck, Item: r.ID, Count: version}); err != nil {
			return err
		}
		v = view(a.User, r)
		return s.notify(ctx, tx, woken, r, true)
	})
	return v, err
}

// Flash reports whether conversation (a group ID, base64url) is the
// conversation of a scheduled flash request: whose call may preempt
// another.
func (s *Service) Flash(ctx context.Context, conversation string) (bool, error) {
	group, err := base64.RawURLEncoding.DecodeString(conversation)
	if err != nil {
		return false, apierr.New(apierr.BadRequest, "conversation: want a group ID in unpadded base64url")
	}
	flash := false
	err = s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		rs, err := tx.ListCallRequests(ctx, store.RequestFilter{Statuses: []string{desk.StatusScheduled}})
		for _, r := range rs {
			if string(r.GroupID) == string(group) && r.Urgency == string(desk.Flash) {
				flash = true
			}
		}
		return err
	})
	return flash, wrap(err)
}

// Get returns a request the actor may see (see canSee).
func (s *Service) Get(ctx context.Context, a org.Actor, id string) (api.CallRequest, error) {
	var v api.CallRequest
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		r, err := s.get(ctx, tx, a, id)
		v = view(a.User, r)
		return err
	})
	return v, wrap(err)
}

// List returns the requests the actor may see (see canSee), newest first.
// Statuses, if any, filter.
func (s *Service) List(ctx context.Context, a org.Actor, statuses []string) ([]api.CallRequest, error) {
	return s.list(ctx, a, store.RequestFilter{Statuses: statuses})
}

// Schedule returns the scheduled calls from from to to (exclusive) that the
// actor may see, in time order.
func (s *Service) Schedule(ctx context.Context, a org.Actor, from, to time.Time) ([]api.CallRequest, error) {
	if from.IsZero() || to.IsZero() || !from.Before(to) || to.Sub(from) > desk.MaxAhead {
		return nil, apierr.New(apierr.BadRequest, "from and to: want from before to, at most %d days apart", int(desk.MaxAhead.Hours()/24))
	}
	return s.list(ctx, a, store.RequestFilter{Statuses: []string{desk.StatusScheduled}, From: from, To: to})
}

func (s *Service) list(ctx context.Context, a org.Actor, f store.RequestFilter) ([]api.CallRequest, error) {
	for _, st := range f.Statuses {
		if !slices.Contains([]string{desk.StatusPending, desk.StatusProposed, desk.StatusScheduled, desk.StatusDeclined, desk.StatusWithdrawn}, st) {
			return nil, apierr.New(apierr.BadRequest, "status %.40q unknown", st)
		}
	}
	if !directory.Allowed(a.User.Roles, directory.ActRequestTriage) && !directory.Allowed(a.User.Roles, directory.ActBriefingWrite) {
		f.Involving = a.User.ID
	}
	out := []api.CallRequest{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		rs, err := tx.ListCallRequests(ctx, f)
		for _, r := range rs {
			if canSee(a, r) {
				out = append(out, view(a.User, r))
			}
		}
		return err
	})
	return out, wrap(err)
}

// get returns a request the actor may see, locked for update.
func (s *Service) get(ctx context.Context, tx *store.Tx, a org.Actor, id string) (store.CallRequest, error) {
	r, err := tx.GetCallRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, apierr.New(apierr.NotFound, "no such call request")
	} else if err != nil {
		return r, err
	}
	if !canSee(a, r) {
		return r, apierr.New(apierr.NotFound, "no such call request")
	}
	return r, nil
}

// canSee reports whether the actor may see a request: the requester, the
// principal and the duty desk always; staff who write briefings once the
// call is scheduled or briefed.
func canSee(a org.Actor, r store.CallRequest) bool {
	switch {
	case a.User.ID == r.Requester || a.User.ID == r.Principal || directory.Allowed(a.User.Roles, directory.ActRequestTriage):
		return true
	case directory.Allowed(a.User.Roles, directory.ActBriefingWrite):
		return r.Status == desk.StatusScheduled || r.BriefVersion > 0
	}
	return false
}

// membersOf returns the current members of a conversation the actor's
// device is in.
func (s *Service) membersOf(ctx context.Context, tx *store.Tx, a org.Actor, group []byte) ([]store.ConversationMember, error) {
	if _, err := tx.GetConversation(ctx, group); errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(apierr.NotFound, "no such conversation")
	} else if err != nil {
		return nil, err
	}
	all, err := tx.ConversationMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	var members []store.ConversationMember
	for _, m := range all {
		if m.LeftSeq == 0 && !m.Lapsed {
			members = append(members, m)
		}
	}
	if !slices.ContainsFunc(members, func(m store.ConversationMember) bool { return m.Device == a.Device.ID }) {
		return nil, apierr.New(apierr.NotMember, "this device is not a member of the conversation")
	}
	return members, nil
}

// notify queues EventRequest for every active device of the requester,
// every duty officer, and the principal if the call is or was scheduled;
// each sees the request as view shows it to them.
func (s *Service) notify(ctx context.Context, tx *store.Tx, woken *[]string, r store.CallRequest, wasScheduled bool) error {
	users := []identity.UserID{r.Requester}
	if wasScheduled || r.Status == desk.StatusScheduled {
		users = append(users, r.Principal)
	}
	deskUsers, err := s.deskUsers(ctx, tx)
	if err != nil {
		return err
	}
	for _, u := range deskUsers {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	return s.pushTo(ctx, tx, woken, users, EventRequest, func(u store.User) ([]byte, error) { return json.Marshal(view(u, r)) })
}

// deskUsers returns the enabled users who triage requests: the duty desk.
func (s *Service) deskUsers(ctx context.Context, tx *store.Tx) ([]identity.UserID, error) {
	all, err := tx.ListUsers(ctx)
	var out []identity.UserID
	for _, u := range all {
		if !u.Disabled && directory.Allowed(u.Roles, directory.ActRequestTriage) {
			out = append(out, u.ID)
		}
	}
	return out, err
}

// pushTo queues an event of type typ for every active device of users,
// with the payload each user is to see.
func (s *Service) pushTo(ctx context.Context, tx *store.Tx, woken *[]string, users []identity.UserID, typ string, payload func(store.User) ([]byte, error)) error {
	now := s.cfg.Now()
	for _, u := range users {
		su, err := tx.GetUser(ctx, u)
		if err != nil {
			return err
		}
		p, err := payload(su)
		if err != nil {
			return err
		}
		ds, err := tx.ListDevices(ctx, u)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Status != store.DeviceActive {
				continue
			}
			if _, err := tx.PushEvent(ctx, store.Event{DeviceID: d.ID, Type: typ, Payload: p, CreatedAt: now}); err != nil {
				return err
			}
			*woken = append(*woken, d.ID)
		}
	}
	return nil
}

// systemLog appends a log entry with no actor: a step the server took on
// its own (an overdue alert) or that follows from another (commitments
// opening with their MemCon's approval).
func (s *Service) systemLog(ctx context.Context, tx *store.Tx, e tlog.Entry) error {
	e.Time = s.cfg.Now().Unix()
	data, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("log entry %s: %w", e.Type, err)
	}
	return tx.AppendPending(ctx, data)
}

func (s *Service) log(ctx context.Context, tx *store.Tx, a org.Actor, e tlog.Entry) error {
	e.Time, e.Actor, e.ActorDevice = s.cfg.Now().Unix(), a.User.ID.String(), a.Device.ID
	data, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("log entry %s: %w", e.Type, err)
	}
	return tx.AppendPending(ctx, data)
}

// view is a request as the API shows it to user: the briefing's metadata
// only to the principal's own side (their organisation, not counterparts).
func view(user store.User, r store.CallRequest) api.CallRequest {
	v := api.CallRequest{ID: r.ID, Requester: r.Requester.String(), RequesterDevice: r.RequesterDevice, Principal: r.Principal.String(),
		Urgency: r.Urgency, Status: r.Status, Conversation: base64.RawURLEncoding.EncodeToString(r.GroupID), Zone: r.Zone,
		Windows: r.Windows, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if v.Windows == nil {
		v.Windows = []desk.Window{}
	}
	if !r.ScheduledAt.IsZero() {
		at := r.ScheduledAt
		v.ScheduledAt, v.Duration = &at, int64(r.Duration/time.Second)
	}
	if !r.DecidedBy.IsZero() {
		v.DecidedBy = r.DecidedBy.String()
	}
	if r.BriefVersion > 0 && user.ID.Org == r.Principal.Org && !user.Roles.Has(identity.RoleCounterpart) {
		b := &api.BriefingInfo{Conversation: base64.RawURLEncoding.EncodeToString(r.BriefGroup), By: r.BriefBy.String(),
			Version: r.BriefVersion, At: r.BriefAt, Acked: r.BriefAcked}
		if !r.BriefAckedAt.IsZero() {
			at := r.BriefAckedAt
			b.AckedAt = &at
		}
		v.Briefing = b
	}
	return v
}

func pastTense(action string) string {
	switch action {
	case ActApprove:
		return "approved"
	case ActPropose:
		return "given other times"
	case ActAccept:
		return "accepted"
	case ActDecline:
		return "declined"
	}
	return "withdrawn"
}

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
	if errors.Is(err, store.ErrNotFound) {
		return apierr.Wrap(err, apierr.NotFound, "not found")
	}
	return apierr.Wrap(err, apierr.Internal, "internal error")
}
