package server

import (
	"net/http"
	"strconv"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/call"
	"hotline/internal/deliver"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
)

// Body limits of the conversation endpoints: MLS messages in base64, with
// room for the JSON around them.
const (
	maxConversationCreate = deliver.MaxMessage*4/3 + 1<<10
	maxConversationPost   = (deliver.MaxMessage+deliver.MaxWelcome)*4/3 + 1<<10
)

func conversationID(r *http.Request) ([]byte, error) {
	return deliver.ParseConversationID(r.PathValue("id"))
}

func apiConversation(v deliver.View) api.Conversation {
	out := api.Conversation{ID: deliver.ConversationID(v.GroupID), Epoch: v.Epoch, HeadSeq: v.HeadSeq, CipherSuite: v.CipherSuite,
		Clearance: v.Level.Token(), Compartments: append([]string{}, v.Compartments...), CreatedBy: v.CreatedBy, Members: []api.ConversationMember{}}
	for _, m := range v.Members {
		out.Members = append(out.Members, api.ConversationMember{Leaf: m.Leaf, User: m.User.String(), Device: m.Device})
	}
	return out
}

func apiConversationMessage(m store.ConversationMessage) *api.ConversationMessage {
	return &api.ConversationMessage{Conversation: deliver.ConversationID(m.GroupID), Seq: m.Seq, Epoch: m.Epoch, Kind: m.Kind,
		Sender: m.Sender, Message: m.Data, Time: m.CreatedAt.UTC(), Chain: m.Chain}
}

// kindLabel names an MLS content type for metrics.
func kindLabel(k int) string {
	switch k {
	case 1:
		return "application"
	case 2:
		return "proposal"
	case 3:
		return "commit"
	}
	return "other"
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.ConversationCreate
	if err := api.Decode(r.Body, maxConversationCreate, &req); err != nil {
		return err
	}
	v, err := s.deliver.CreateConversation(r.Context(), a, req.GroupInfo)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiConversation(v))
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	rows, err := s.deliver.Conversations(r.Context(), a)
	if err != nil {
		return err
	}
	out := []api.DeviceConversation{}
	for _, m := range rows {
		out = append(out, api.DeviceConversation{ID: deliver.ConversationID(m.GroupID), Leaf: m.Leaf, Epoch: m.Epoch, HeadSeq: m.HeadSeq,
			JoinedSeq: m.JoinedSeq, LeftSeq: m.LeftSeq, Acked: m.Acked})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := conversationID(r)
	if err != nil {
		return err
	}
	v, err := s.deliver.Conversation(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiConversation(v))
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := conversationID(r)
	if err != nil {
		return err
	}
	var req api.ConversationPost
	if err := api.Decode(r.Body, maxConversationPost, &req); err != nil {
		return err
	}
	if len(req.Message) == 0 {
		return apierr.New(apierr.BadRequest, "no message")
	}
	p, err := s.deliver.Post(r.Context(), a, id, req.Message, req.Welcome)
	if err != nil {
		return err
	}
	s.metrics.messages.Inc(kindLabel(p.Kind))
	return writeJSON(w, http.StatusCreated, api.ConversationPosted{Seq: p.Seq, Epoch: p.Epoch})
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := conversationID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil || after < 0 {
		return apierr.New(apierr.BadRequest, "after: want a non-negative integer")
	}
	limit := deliver.MaxFetch
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > deliver.MaxFetch {
			return apierr.New(apierr.BadRequest, "limit: want 1 to %d", deliver.MaxFetch)
		}
	}
	ms, err := s.deliver.Messages(r.Context(), a, id, after, limit)
	if err != nil {
		return err
	}
	out := []*api.ConversationMessage{}
	for _, m := range ms {
		out = append(out, apiConversationMessage(m))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) ackConversation(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := conversationID(r)
	if err != nil {
		return err
	}
	var req api.ConversationAck
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Seq < 0 {
		return apierr.New(apierr.BadRequest, "seq: want a non-negative integer")
	}
	if err := s.deliver.Ack(r.Context(), a, id, req.Seq); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeLapsed has the delivery service propose removing a user's devices
// that lapsed (revoked, or the user disabled) from their conversations, at
// once rather than when someone next posts there, and takes them out of
// their calls. The change that made them lapse stands whatever happens
// here: posting proposes it too.
func (s *Server) removeLapsed(r *http.Request, user identity.UserID, disabled bool) {
	var ids, lapsed []string
	err := s.store.View(r.Context(), func(tx *store.Tx) error {
		ds, err := tx.ListDevices(r.Context(), user)
		ids, lapsed = nil, nil
		for _, d := range ds {
			ids = append(ids, d.ID)
			if disabled || d.Status == store.DeviceRevoked {
				lapsed = append(lapsed, d.ID)
			}
		}
		return err
	})
	if err == nil {
		err = s.deliver.RemoveLapsed(r.Context(), ids...)
	}
	if err != nil {
		s.log.Warn("propose removing lapsed devices from conversations", "user", user.String(), "err", err)
	}
	for _, d := range lapsed {
		s.media.Disconnect(d)
		if err := s.calls.Drop(r.Context(), d, call.ReasonRevoked); err != nil {
			s.log.Warn("take a lapsed device out of its calls", "device", d, "err", err)
		}
	}
}
