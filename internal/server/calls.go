package server

import (
	"context"
	"net/http"

	"hotline/internal/apierr"
	"hotline/internal/call"
	"hotline/internal/org"
)

// callID returns the {id} of a call route: 32 lowercase hex digits.
func callID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if len(id) != 32 {
		return "", apierr.New(apierr.BadRequest, "a call ID is 32 hexadecimal digits")
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", apierr.New(apierr.BadRequest, "a call ID is 32 hexadecimal digits")
		}
	}
	return id, nil
}

func (s *Server) placeCall(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := conversationID(r)
	if err != nil {
		return err
	}
	v, err := s.calls.Place(r.Context(), a, id)
	if err != nil {
		return err
	}
	s.metrics.calls.Inc("placed")
	return writeJSON(w, http.StatusCreated, v)
}

// callAction serves POST /v1/calls/{id}/accept, decline, join and leave.
func callAction(do func(context.Context, org.Actor, string) (call.View, error)) func(http.ResponseWriter, *http.Request, org.Actor) error {
	return func(w http.ResponseWriter, r *http.Request, a org.Actor) error {
		id, err := callID(r)
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

func (s *Server) getCall(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := callID(r)
	if err != nil {
		return err
	}
	v, err := s.calls.Get(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// listCalls serves GET /v1/calls: the calls ringing on the device or that
// it is joined to.
func (s *Server) listCalls(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.calls.Mine(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}

// liveCalls serves GET /v1/calls/live: every call ringing or under way, for
// the duty desk.
func (s *Server) liveCalls(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	vs, err := s.calls.Live(r.Context(), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vs)
}
