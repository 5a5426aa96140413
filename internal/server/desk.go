package server

import (
	"context"
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

// handler is a route's function: what handle wraps.
type handler = func(http.ResponseWriter, *http.Request, org.Actor) error

// The duty desk's routes are mostly one service call each, so they are made
// from these: one item's route (its {id} read by idOf) with a JSON body
// (onItem) or without (itemGet), and a route on the collection (create,
// list).

func onItem[In, Out any](idOf func(*http.Request) (string, error), status int, do func(context.Context, org.Actor, string, In) (Out, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := idOf(r)
		if err != nil {
			return err
		}
		var in In
		if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
			return err
		}
		v, err := do(r.Context(), a, id, in)
		if err != nil {
			return err
		}
		return writeJSON(w, status, v)
	}
}

func itemGet[Out any](idOf func(*http.Request) (string, error), do func(context.Context, org.Actor, string) (Out, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := idOf(r)
		if err != nil {
			return err
		}
		v, err := do(r.Context(), a, id)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

func create[In, Out any](do func(context.Context, org.Actor, In) (Out, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		var in In
		if err := api.Decode(r.Body, api.MaxBody, &in); err != nil {
			return err
		}
		v, err := do(r.Context(), a, in)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, v)
	}
}

func list[Out any](do func(context.Context, org.Actor) (Out, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		vs, err := do(r.Context(), a)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, vs)
	}
}

// idOf reads the {id} of a route on one what (a memorandum, a hotline).
func idOf(what string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) { return itemID(r, what) }
}

// itemID returns the {id} of a MemCon's or commitment's route.
func itemID(r *http.Request, what string) (string, error) {
	id, err := callID(r)
	if err != nil {
		return "", apierr.New(apierr.BadRequest, "a %s ID is 32 hexadecimal digits", what)
	}
	return id, nil
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
