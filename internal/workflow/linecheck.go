package workflow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/desk"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/sfu"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Events about line checks.
const (
	EventLineCheckRun    = "linecheck.run"    // to an end's device: check your side (api.LineCheckAsk)
	EventLineCheckResult = "linecheck.update" // to the desk: a check finished (api.LineCheck)
)

// Line-check results.
const (
	LineRunning = "running"
	LineGreen   = "green"
	LineRed     = "red"
	probePend   = "pending"
)

// Defaults of a line check.
const (
	// DefaultLineCheckTimeout is how long the ends have to answer.
	DefaultLineCheckTimeout = 10 * time.Second
	// DefaultLineLossMax is the largest fraction of the far end's probes
	// an end may lose and be green: 5 %, where Opus with FEC still
	// carries speech well.
	DefaultLineLossMax = 0.05
	// DefaultLineRTTMax is the longest median round trip that is green:
	// 600 ms, twice ITU-T G.114's 300 ms one-way limit for conversation.
	DefaultLineRTTMax = 600 * time.Millisecond
	// LineProbes probes, one every LineProbeEvery, measure the media path:
	// a second of 20 ms frames, as speech is sent.
	LineProbes     = 50
	LineProbeEvery = 20 * time.Millisecond
)

// probeSession is the forwarder's probe session of a line check.
func probeSession(id string) string { return "linecheck:" + id }

// reportedState is what the server keeps of an end's report until the
// check finishes, to compare the ends' groups.
type reportedState struct {
	Epoch uint64 `json:"epoch"`
	Group string `json:"group"`
}

// lineResults is a line check's stored results.
type lineResults struct {
	Ends     []api.LineEnd            `json:"ends"`
	Reported map[string]reportedState `json:"reported,omitempty"` // by device
	Epoch    uint64                   `json:"epoch"`              // the conversation's, as the server knows it
}

// StartLineCheck checks both ends of a request's line (the desk only):
// every device of the principal and the requester in the request's
// conversation. The server checks credentials, that the device is online
// and that its warm media line is up; it then asks each device to check
// the transparency log and its view of the conversation's group, and to
// measure the media path end to end: the ends' warm lines are put in a
// probe session of the forwarder, and each device sends probes and echoes
// the far end's (see api.LineProbeAsk). Each reports within
// Config.LineCheckTimeout; a device that does not answer is red.
func (s *Service) StartLineCheck(ctx context.Context, a org.Actor, requestID string) (api.LineCheck, error) {
	if err := a.Can(directory.ActRequestTriage); err != nil {
		return api.LineCheck{}, err
	}
	now := s.cfg.Now()
	var v api.LineCheck
	var probing map[string]bool
	var checkID string
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		r, err := s.get(ctx, tx, a, requestID)
		if err != nil {
			return err
		}
		if r.Status == desk.StatusDeclined || r.Status == desk.StatusWithdrawn {
			return apierr.New(apierr.Conflict, "the request is %s: there is no line to check", r.Status)
		}
		conv, err := tx.GetConversation(ctx, r.GroupID)
		if err != nil {
			return err
		}
		members, err := tx.ConversationMembers(ctx, r.GroupID)
		if err != nil {
			return err
		}
		res := lineResults{Epoch: conv.Epoch, Reported: map[string]reportedState{}}
		for _, side := range []struct {
			name string
			user identity.UserID
		}{{"principal", r.Principal}, {"requester", r.Requester}} {
			u, err := tx.GetUser(ctx, side.user)
			if err != nil {
				return err
			}
			found := false
			for _, m := range members {
				if m.User != side.user || m.LeftSeq != 0 {
					continue
				}
				found = true
				d, err := tx.GetDevice(ctx, m.Device)
				if err != nil {
					return err
				}
				end := api.LineEnd{Side: side.name, User: side.user.String(), Device: m.Device}
				cred := probe("credential", "")
				switch {
				case u.Disabled:
					cred = probe("credential", "user_disabled")
				case d.Status == store.DeviceRevoked:
					cred = probe("credential", "revoked")
				case d.Status != store.DeviceActive:
					cred = probe("credential", d.Status)
				case !d.CredentialExpires.IsZero() && !now.Before(d.CredentialExpires):
					cred = probe("credential", "expired")
				}
				online := probe("online", "")
				if s.cfg.Hub == nil || !s.cfg.Hub.Online(m.Device) {
					online = probe("online", "offline")
				}
				warm := probe("warm_line", "")
				if s.cfg.MediaUp == nil || !s.cfg.MediaUp(m.Device) {
					warm = probe("warm_line", "no_media")
				}
				media := api.LineProbe{Name: "media", Status: probePend}
				switch {
				case online.Status != LineGreen:
					media = probe("media", "offline")
				case warm.Status != LineGreen:
					media = probe("media", "no_media")
				}
				end.Checks = []api.LineProbe{cred, online, warm, {Name: "log", Status: probePend}, {Name: "group", Status: probePend}, media}
				res.Ends = append(res.Ends, end)
			}
			if !found {
				res.Ends = append(res.Ends, api.LineEnd{Side: side.name, User: side.user.String(),
					Checks: []api.LineProbe{probe("credential", "not_in_conversation")}})
			}
		}
		l := store.LineCheck{ID: newID(), RequestID: r.ID, CreatedBy: a.User.ID, CreatedAt: now, Deadline: now.Add(s.cfg.LineCheckTimeout), Status: LineRunning}
		for i, end := range res.Ends {
			if end.Device == "" || end.Checks[0].Status != LineGreen {
				res.Ends[i] = settle(end, "no_answer")
			}
		}
		checkID = l.ID
		probing = s.joinProbe(l.ID, res.Ends)
		for _, end := range res.Ends {
			if end.Device == "" || end.Checks[0].Status != LineGreen {
				continue
			}
			ask := api.LineCheckAsk{LineCheck: l.ID, Conversation: base64.RawURLEncoding.EncodeToString(r.GroupID)}
			if probing[end.Device] {
				ask.Probe = &api.LineProbeAsk{Count: LineProbes, IntervalMs: int(LineProbeEvery / time.Millisecond), Peers: []string{}}
				for _, o := range res.Ends {
					if o.Side != end.Side && probing[o.Device] {
						ask.Probe.Peers = append(ask.Probe.Peers, o.Device)
					}
				}
			}
			payload, err := json.Marshal(ask)
			if err != nil {
				return err
			}
			if _, err := tx.PushEvent(ctx, store.Event{DeviceID: end.Device, Type: EventLineCheckRun, Payload: payload, CreatedAt: now}); err != nil {
				return err
			}
			*woken = append(*woken, end.Device)
		}
		if err := s.log(ctx, tx, a, tlog.Entry{Type: tlog.TypeLineCheckStart, Item: l.ID, Ref: r.ID}); err != nil {
			return err
		}
		if err := s.finishIfAnswered(ctx, tx, woken, &l, &res, now, false); err != nil {
			return err
		}
		v, err = lineView(l)
		return err
	})
	if err != nil && s.cfg.Probe != nil {
		for d := range probing { // the check never started
			s.cfg.Probe.Leave(probeSession(checkID), d)
		}
	}
	return v, err
}

// ReportLineCheck records an end device's own checks.
func (s *Service) ReportLineCheck(ctx context.Context, a org.Actor, id string, in api.LineCheckReport) (api.LineCheck, error) {
	now := s.cfg.Now()
	var v api.LineCheck
	err := s.update(ctx, func(tx *store.Tx, woken *[]string) error {
		l, err := tx.GetLineCheck(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such line check")
		} else if err != nil {
			return err
		}
		var res lineResults
		if err := json.Unmarshal([]byte(l.Results), &res); err != nil {
			return err
		}
		if res.Reported == nil {
			res.Reported = map[string]reportedState{}
		}
		i := slices.IndexFunc(res.Ends, func(e api.LineEnd) bool { return e.Device == a.Device.ID })
		if i < 0 {
			return apierr.New(apierr.NotFound, "no such line check")
		}
		if l.Status != LineRunning {
			return apierr.New(apierr.Conflict, "the line check is over")
		}
		end := &res.Ends[i]
		for j := range end.Checks {
			switch end.Checks[j].Name {
			case "log":
				end.Checks[j] = probe("log", map[bool]string{true: "", false: "log_inconsistent"}[in.LogProblem == ""])
			case "media":
				if end.Checks[j].Status != probePend {
					continue
				}
				if err := checkMedia(in.Media); err != nil {
					return err
				}
				end.Checks[j] = s.mediaProbe(in.Media)
				end.Media = in.Media
			case "group":
				switch {
				case !in.Member:
					end.Checks[j] = probe("group", "not_member")
				case in.Broken:
					end.Checks[j] = probe("group", "broken")
				case in.Epoch != res.Epoch:
					end.Checks[j] = probe("group", "epoch_differs")
				default:
					end.Checks[j] = api.LineProbe{Name: "group", Status: probePend} // compared once every end answered
					res.Reported[a.Device.ID] = reportedState{Epoch: in.Epoch, Group: in.Group}
				}
			}
		}
		if err := s.finishIfAnswered(ctx, tx, woken, &l, &res, now, false); err != nil {
			return err
		}
		v, err = lineView(l)
		return err
	})
	return v, err
}

// finishIfAnswered compares the ends' groups and finishes the check when
// nothing is pending (or, with expired, marks what is still pending as
// unanswered), then saves it.
func (s *Service) finishIfAnswered(ctx context.Context, tx *store.Tx, woken *[]string, l *store.LineCheck, res *lineResults, now time.Time, expired bool) error {
	pending := false
	for _, e := range res.Ends {
		for _, p := range e.Checks {
			if p.Status == probePend && (p.Name != "group" || res.Reported[e.Device] == (reportedState{})) {
				pending = true
			}
		}
	}
	if pending && !expired {
		return s.saveLine(ctx, tx, l, res)
	}
	// Compare the groups of the ends that reported one.
	groups := map[string]int{}
	for _, st := range res.Reported {
		groups[st.Group]++
	}
	for i, e := range res.Ends {
		for j, p := range e.Checks {
			if p.Status != probePend {
				continue
			}
			switch _, ok := res.Reported[e.Device]; {
			case p.Name == "group" && ok && len(groups) == 1:
				res.Ends[i].Checks[j] = probe("group", "")
			case p.Name == "group" && ok:
				res.Ends[i].Checks[j] = probe("group", "group_disagrees")
			default:
				res.Ends[i].Checks[j] = probe(p.Name, "no_answer")
			}
		}
	}
	if s.cfg.Probe != nil {
		for _, e := range res.Ends {
			if e.Device != "" {
				s.cfg.Probe.Leave(probeSession(l.ID), e.Device)
			}
		}
	}
	l.Status = LineGreen
	for _, e := range res.Ends {
		for _, p := range e.Checks {
			if p.Status != LineGreen {
				l.Status = LineRed
			}
		}
	}
	if err := s.saveLine(ctx, tx, l, res); err != nil {
		return err
	}
	if err := s.systemLog(ctx, tx, tlog.Entry{Type: tlog.TypeLineCheckDone, Item: l.ID, Ref: l.RequestID, Reason: l.Status}); err != nil {
		return err
	}
	v, err := lineView(*l)
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
	return s.pushTo(ctx, tx, woken, staff, EventLineCheckResult, func(store.User) ([]byte, error) { return payload, nil })
}

func (s *Service) saveLine(ctx context.Context, tx *store.Tx, l *store.LineCheck, res *lineResults) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	l.Results = string(b)
	if _, err := tx.GetLineCheck(ctx, l.ID); errors.Is(err, store.ErrNotFound) {
		return tx.CreateLineCheck(ctx, *l)
	} else if err != nil {
		return err
	}
	return tx.UpdateLineCheck(ctx, *l)
}

// sweepLineChecks finishes the checks whose ends did not all answer in
// time.
func (s *Service) sweepLineChecks(ctx context.Context, tx *store.Tx, woken *[]string, now time.Time) error {
	ls, err := tx.ExpiredLineChecks(ctx, now, sweepBatch)
	if err != nil {
		return err
	}
	for _, l := range ls {
		var res lineResults
		if err := json.Unmarshal([]byte(l.Results), &res); err != nil {
			return err
		}
		if err := s.finishIfAnswered(ctx, tx, woken, &l, &res, now, true); err != nil {
			return err
		}
	}
	return nil
}

// LineChecks returns a request's latest line checks (the desk, the
// principal and the requester may see them).
func (s *Service) LineChecks(ctx context.Context, a org.Actor, requestID string) ([]api.LineCheck, error) {
	out := []api.LineCheck{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		if _, err := s.get(ctx, tx, a, requestID); err != nil {
			return err
		}
		ls, err := tx.RequestLineChecks(ctx, requestID, 20)
		for _, l := range ls {
			v, err := lineView(l)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return err
	})
	return out, wrap(err)
}

// GetLineCheck returns one line check.
func (s *Service) GetLineCheck(ctx context.Context, a org.Actor, id string) (api.LineCheck, error) {
	var v api.LineCheck
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		l, err := tx.GetLineCheck(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no such line check")
		} else if err != nil {
			return err
		}
		if _, err := s.get(ctx, tx, a, l.RequestID); err != nil {
			return apierr.New(apierr.NotFound, "no such line check")
		}
		v, err = lineView(l)
		return err
	})
	return v, wrap(err)
}

// joinProbe puts the ends whose media checks are pending in the line
// check's probe session, where a device hears the far end's, and returns
// those that joined. A media check that cannot be made is settled here:
// unmeasured without a forwarder, in_call for a device in a call (calls
// come first), no_far_end when no device of the other side joined.
func (s *Service) joinProbe(id string, ends []api.LineEnd) map[string]bool {
	joined := map[string]bool{}
	media := func(e *api.LineEnd) *api.LineProbe {
		for j := range e.Checks {
			if e.Checks[j].Name == "media" && e.Checks[j].Status == probePend {
				return &e.Checks[j]
			}
		}
		return nil
	}
	for i := range ends {
		p := media(&ends[i])
		switch {
		case p == nil:
		case s.cfg.Probe == nil:
			*p = probe("media", "unmeasured")
		default:
			err := s.cfg.Probe.JoinProbe(probeSession(id), ends[i].Device)
			switch {
			case err == nil:
				joined[ends[i].Device] = true
			case errors.Is(err, sfu.ErrInCall):
				*p = probe("media", "in_call")
			default:
				s.cfg.Logger.Warn("line check: probe session", "linecheck", id, "device", ends[i].Device, "err", err)
				*p = probe("media", "no_media")
			}
		}
	}
	for i := range ends {
		far := slices.ContainsFunc(ends, func(o api.LineEnd) bool { return o.Side != ends[i].Side && joined[o.Device] })
		if p := media(&ends[i]); p != nil && !far {
			*p = probe("media", "no_far_end")
			if joined[ends[i].Device] {
				s.cfg.Probe.Leave(probeSession(id), ends[i].Device)
				delete(joined, ends[i].Device)
			}
		}
	}
	return joined
}

// checkMedia refuses a media report that cannot be a measurement.
func checkMedia(m *api.LineMedia) error {
	if m == nil {
		return nil
	}
	ok := func(f float64) bool { return f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }
	if m.Sent < 0 || m.Echoes < 0 || !ok(m.RTTMs) || !ok(m.RTTMaxMs) || !ok(m.Loss) || m.Loss > 1 ||
		len(m.Worst) > 64 || len(m.Unsupported) > 64 {
		return apierr.New(apierr.BadRequest, "malformed media measurement")
	}
	return nil
}

// mediaProbe judges an end's measurement of the media path.
func (s *Service) mediaProbe(m *api.LineMedia) api.LineProbe {
	switch {
	case m == nil:
		return probe("media", "unmeasured")
	case m.Unsupported == "in_call":
		return probe("media", "in_call")
	case m.Unsupported != "":
		return probe("media", "unmeasured")
	case m.Loss >= 1:
		return probe("media", "no_media")
	case m.Loss > s.cfg.LineLossMax:
		return probe("media", "packet_loss")
	case m.Echoes == 0:
		return probe("media", "no_echo")
	case time.Duration(m.RTTMs*float64(time.Millisecond)) > s.cfg.LineRTTMax:
		return probe("media", "high_rtt")
	}
	return probe("media", "")
}

// settle marks an end's pending checks unanswered.
func settle(e api.LineEnd, reason string) api.LineEnd {
	for j, p := range e.Checks {
		if p.Status == probePend {
			e.Checks[j] = probe(p.Name, reason)
		}
	}
	return e
}

func probe(name, reason string) api.LineProbe {
	if reason == "" {
		return api.LineProbe{Name: name, Status: LineGreen}
	}
	return api.LineProbe{Name: name, Status: LineRed, Reason: reason}
}

func lineView(l store.LineCheck) (api.LineCheck, error) {
	v := api.LineCheck{ID: l.ID, Request: l.RequestID, Status: l.Status, CreatedBy: l.CreatedBy.String(), CreatedAt: l.CreatedAt, Deadline: l.Deadline, Ends: []api.LineEnd{}}
	var res lineResults
	if err := json.Unmarshal([]byte(l.Results), &res); err != nil {
		return v, err
	}
	v.Ends = append(v.Ends, res.Ends...)
	return v, nil
}
