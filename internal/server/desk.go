package server

import (
	"encoding/base64"
	"net/http"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/desk"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/workflow"
)

// requestID returns the {id} of a call-request route: 32 lowercase hex
// digits, as a call's.
func requestID(r *http.Request) (string, error) {
	id, err := callID(r)
	if err != nil {
		return "", apierr.New(apierr.BadRequest, "a call request ID is 32 hexadecimal digits")
	}
	return id, nil
}

// createRequest serves POST /v1/call-requests.
func (s *Server) createRequest(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var in api.CallRequestCreate
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.Create(r.Context(), a, in)
	if err != nil {
		return err
	}
	s.metrics.callReqs.Inc(v.Urgency)
	return writeJSON(w, http.StatusCreated, v)
}

// decideRequest serves POST /v1/call-requests/{id}/{action}.
func (s *Server) decideRequest(action string) func(http.ResponseWriter, *http.Request, org.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := requestID(r)
		if err != nil {
			return err
		}
		var in api.RequestDecision
		if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
			return err
		}
		if in.Duration < 0 {
			return apierr.New(apierr.BadRequest, "duration %d is negative", in.Duration)
		}
		d := workflow.Decision{Action: action, Duration: time.Duration(in.Duration) * time.Second, Windows: in.Windows}
		if in.At != nil {
			d.At = *in.At
		}
		v, err := s.workflow.Decide(r.Context(), a, id, d)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

// attachBriefing serves POST /v1/call-requests/{id}/briefing.
func (s *Server) attachBriefing(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in api.BriefingAttach
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.AttachBriefing(r.Context(), a, id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// ackBriefing serves POST /v1/call-requests/{id}/briefing/ack.
func (s *Server) ackBriefing(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in api.BriefingAck
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.AckBriefing(r.Context(), a, id, in.Version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	v, err := s.workflow.Get(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// listCallRequests serves GET /v1/call-requests?status=…: the requests the
// device's user may see, newest first.
func (s *Server) listCallRequests(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.workflow.List(r.Context(), a, r.URL.Query()["status"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// schedule serves GET /v1/schedule?from=&to= (RFC 3339): the scheduled calls
// in that span the device's user may see, in time order.
func (s *Server) schedule(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	q := r.URL.Query()
	from, err := time.Parse(time.RFC3339, q.Get("from"))
	if err != nil {
		return apierr.New(apierr.BadRequest, "from: want an RFC 3339 time")
	}
	to, err := time.Parse(time.RFC3339, q.Get("to"))
	if err != nil {
		return apierr.New(apierr.BadRequest, "to: want an RFC 3339 time")
	}
	vs, err := s.workflow.Schedule(r.Context(), a, from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// itemID returns the {id} of a MemCon's or commitment's route.
func itemID(r *http.Request, what string) (string, error) {
	id, err := callID(r)
	if err != nil {
		return "", apierr.New(apierr.BadRequest, "a %s ID is 32 hexadecimal digits", what)
	}
	return id, nil
}

// draftMemCon serves POST /v1/memcons.
func (s *Server) draftMemCon(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var in api.MemConDraft
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.DraftMemCon(r.Context(), a, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

// memconAction serves POST /v1/memcons/{id}/approve and /distribute.
func (s *Server) memconAction(action string) func(http.ResponseWriter, *http.Request, org.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := itemID(r, "memorandum")
		if err != nil {
			return err
		}
		var v api.MemCon
		if action == "approve" {
			var in struct{}
			if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
				return err
			}
			v, err = s.workflow.ApproveMemCon(r.Context(), a, id)
		} else {
			var in api.MemConDistribute
			if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
				return err
			}
			v, err = s.workflow.DistributeMemCon(r.Context(), a, id, in)
		}
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) getMemCon(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "memorandum")
	if err != nil {
		return err
	}
	v, err := s.workflow.GetMemCon(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) listMemCons(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.workflow.ListMemCons(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// listCommitments serves GET /v1/commitments[?all=true].
func (s *Server) listCommitments(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	all := false
	switch r.URL.Query().Get("all") {
	case "", "false":
	case "true":
		all = true
	default:
		return apierr.New(apierr.BadRequest, "all: want true or false")
	}
	vs, err := s.workflow.Commitments(r.Context(), a, all)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// closeCommitment serves POST /v1/commitments/{id}/done and /cancel.
func (s *Server) closeCommitment(status string) func(http.ResponseWriter, *http.Request, org.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := itemID(r, "commitment")
		if err != nil {
			return err
		}
		var in struct{}
		if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
			return err
		}
		v, err := s.workflow.CloseCommitment(r.Context(), a, id, status)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

// listReadouts serves GET /v1/readouts: ad-hoc calls' readouts.
func (s *Server) listReadouts(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.workflow.Readouts(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// fileReadout serves POST /v1/readouts/{id}: the call's readout was sent.
func (s *Server) fileReadout(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "call")
	if err != nil {
		return err
	}
	var in api.ReadoutFile
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.FileReadout(r.Context(), a, id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// createHotline serves POST /v1/hotlines.
func (s *Server) createHotline(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var in api.HotlineCreate
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.CreateHotline(r.Context(), a, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listHotlines(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.workflow.Hotlines(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

func (s *Server) getHotline(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "hotline")
	if err != nil {
		return err
	}
	v, err := s.workflow.GetHotline(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// reportHotline serves POST /v1/hotlines/{id}/tests: the near end's report
// of an answered test.
func (s *Server) reportHotline(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "hotline")
	if err != nil {
		return err
	}
	var in api.HotlineReport
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.ReportHotline(r.Context(), a, id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// startLineCheck serves POST /v1/call-requests/{id}/linecheck.
func (s *Server) startLineCheck(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in struct{}
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.StartLineCheck(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listLineChecks(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	vs, err := s.workflow.LineChecks(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

func (s *Server) getLineCheck(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "line check")
	if err != nil {
		return err
	}
	v, err := s.workflow.GetLineCheck(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// reportLineCheck serves POST /v1/linechecks/{id}/report: an end device's
// own checks.
func (s *Server) reportLineCheck(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := itemID(r, "line check")
	if err != nil {
		return err
	}
	var in api.LineCheckReport
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	v, err := s.workflow.ReportLineCheck(r.Context(), a, id, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// placeRequestCall serves POST /v1/call-requests/{id}/call: the desk places
// a scheduled request's call, ringing the requester only; it connects the
// principal once the requester is on the line (POST /v1/calls/{id}/ring).
func (s *Server) placeRequestCall(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in struct{}
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	if err := a.Can(directory.ActRequestTriage); err != nil {
		return err
	}
	req, err := s.workflow.Get(r.Context(), a, id)
	if err != nil {
		return err
	}
	if req.Status != desk.StatusScheduled {
		return apierr.New(apierr.Conflict, "the request is %s: only a scheduled call is placed", req.Status)
	}
	group, err := base64.RawURLEncoding.DecodeString(req.Conversation)
	if err != nil {
		return err
	}
	requester, err := identity.ParseUserID(req.Requester)
	if err != nil {
		return err
	}
	v, err := s.calls.PlaceRinging(r.Context(), a, group, []identity.UserID{requester})
	if err != nil {
		return err
	}
	s.metrics.calls.Inc("placed")
	return writeJSON(w, http.StatusCreated, v)
}

// ringCall serves POST /v1/calls/{id}/ring. Preempting is for the desk, in
// the call of a flash request.
func (s *Server) ringCall(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := callID(r)
	if err != nil {
		return err
	}
	var in api.CallRing
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	user, err := identity.ParseUserID(in.User)
	if err != nil {
		return apierr.New(apierr.BadRequest, "user: %v", err)
	}
	if in.Preempt {
		if err := a.Can(directory.ActRequestTriage); err != nil {
			return err
		}
		v, err := s.calls.Get(r.Context(), a, id)
		if err != nil {
			return err
		}
		flash, err := s.workflow.Flash(r.Context(), v.Conversation)
		if err != nil {
			return err
		}
		if !flash {
			return apierr.New(apierr.Forbidden, "only the call of a flash request preempts another call")
		}
	}
	v, err := s.calls.Ring(r.Context(), a, id, user, in.Preempt)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// holdCall serves POST /v1/calls/{id}/hold and /resume.
func (s *Server) holdCall(hold bool) func(http.ResponseWriter, *http.Request, org.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := callID(r)
		if err != nil {
			return err
		}
		var in api.CallHold
		if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
			return err
		}
		user, err := identity.ParseUserID(in.User)
		if err != nil {
			return apierr.New(apierr.BadRequest, "user: %v", err)
		}
		v, err := s.calls.Hold(r.Context(), a, id, user, hold, a.Can(directory.ActRequestTriage) == nil)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

// transferCall serves POST /v1/calls/{id}/transfer: ring user into the
// call, then this device leaves it (a blind transfer).
func (s *Server) transferCall(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := callID(r)
	if err != nil {
		return err
	}
	var in api.CallHold
	if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
		return err
	}
	user, err := identity.ParseUserID(in.User)
	if err != nil {
		return apierr.New(apierr.BadRequest, "user: %v", err)
	}
	if _, err := s.calls.Ring(r.Context(), a, id, user, false); err != nil {
		return err
	}
	v, err := s.calls.Leave(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}
