package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/deliver"
	"hotline/internal/events"
	"hotline/internal/org"
	"hotline/internal/store"
)

const (
	streamBatch   = 100              // events read from the store per round
	streamPing    = 30 * time.Second // keep-alive interval
	writeTimeout  = 10 * time.Second // a client slower than this is dropped; it resumes later
	maxStreamRead = 4 << 10          // acks are tiny
	convBatch     = 200              // conversation messages read per round
)

// events serves GET /v1/events: a WebSocket carrying the device's durable
// events from ?after=SEQ on, its conversations' messages from where it last
// acknowledged each, and notices. The client acknowledges events with
// {"type":"ack","seq":N}, which deletes them, and a conversation's messages
// with {"type":"conv_ack","conversation":ID,"seq":N}. The store is the
// queue, so a slow client only slows its own stream (back-pressure), and a
// reconnecting client resumes from what it last acknowledged.
func (s *Server) events(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	after := int64(0)
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return apierr.New(apierr.BadRequest, "after: want a non-negative integer")
		}
		after = n
	}
	if !s.streamStart() {
		return apierr.New(apierr.Unavailable, "server shutting down")
	}
	defer s.streams.Done()
	sub := s.hub.Subscribe(a.Device.ID)
	if sub == nil {
		return apierr.New(apierr.Unavailable, "server shutting down")
	}
	defer s.hub.Unsubscribe(sub)
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{})
	if err != nil {
		return nil // Accept wrote the HTTP error
	}
	c.SetReadLimit(maxStreamRead)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	acks := make(chan api.StreamMessage, 16)
	readerDone := make(chan struct{})
	go func() { // reader: acks; ends when the connection does
		defer close(readerDone)
		defer cancel()
		for {
			var m api.StreamMessage
			if err := wsjson.Read(ctx, c, &m); err != nil {
				return
			}
			ok := m.Seq >= 0 && (m.Type == api.StreamAck && m.Conversation == "" ||
				m.Type == api.StreamConvAck && validConversationID(m.Conversation))
			if !ok {
				c.Close(websocket.StatusPolicyViolation, "unexpected message")
				return
			}
			select {
			case acks <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	err = s.stream(ctx, c, sub, a.Device.ID, after, acks)
	switch {
	case errors.Is(err, errRevoked):
		c.Close(websocket.StatusPolicyViolation, "device revoked")
	case err != nil && ctx.Err() == nil:
		s.log.Debug("event stream ended", "device", a.Device.ID, "err", err)
		c.Close(websocket.StatusInternalError, "stream error")
	default:
		c.Close(websocket.StatusGoingAway, "closing")
	}
	cancel()
	<-readerDone
	// Acknowledgements that arrived as the stream closed (a client that
	// acknowledges, then hangs up) still count.
	if len(acks) > 0 {
		actx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), writeTimeout)
		if err := s.ack(actx, a.Device.ID, <-acks, acks); err != nil {
			s.log.Debug("acknowledgements at the end of a stream", "device", a.Device.ID, "err", err)
		}
		cancel()
	}
	return nil
}

var errRevoked = errors.New("subscription closed")

func validConversationID(id string) bool {
	_, err := deliver.ParseConversationID(id)
	return err == nil
}

func (s *Server) stream(ctx context.Context, c *websocket.Conn, sub *events.Sub, device string, cursor int64, acks <-chan api.StreamMessage) error {
	write := func(m api.StreamMessage) error {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return wsjson.Write(wctx, c, m)
	}
	var last int64
	if err := s.store.View(ctx, func(tx *store.Tx) (err error) { last, err = tx.LastEventSeq(ctx, device); return }); err != nil {
		return err
	}
	if err := write(api.StreamMessage{Type: api.StreamReady, LastSeq: last}); err != nil {
		return err
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	// sent is how far each conversation's messages went out on this
	// connection, by group ID.
	sent := map[string]int64{}
	// busy: something was sent since the last idle message (and at the
	// start, so a client catching up learns it has caught up).
	busy := true
	for {
		// Send everything queued after the cursors, a batch at a time.
		// Conversation messages are read before events and sent after
		// them: a device added to a conversation gets the Welcome (an
		// event, written in the transaction that added it) before the
		// conversation's messages.
		for {
			msgs, err := s.conversationMessages(ctx, device, sent)
			if err != nil {
				return err
			}
			var es []store.Event
			err = s.store.View(ctx, func(tx *store.Tx) (err error) {
				es, err = tx.EventsAfter(ctx, device, cursor, streamBatch)
				return err
			})
			if err != nil {
				return err
			}
			for _, e := range es {
				if err := write(api.StreamMessage{Type: api.StreamEvent, Seq: e.Seq, Event: e.Type, Payload: json.RawMessage(e.Payload)}); err != nil {
					return err
				}
				cursor = e.Seq
			}
			busy = busy || len(es) > 0 || len(msgs) > 0
			for _, m := range msgs {
				if err := write(api.StreamMessage{Type: api.StreamConv, Conversation: m.Conversation, Seq: m.Seq, Message: m}); err != nil {
					return err
				}
				sent[m.Conversation] = m.Seq
				s.metrics.delivered.Inc(kindLabel(m.Kind))
			}
			if len(es) < streamBatch && len(msgs) < convBatch {
				break
			}
		}
		if busy {
			if err := write(api.StreamMessage{Type: api.StreamIdle}); err != nil {
				return err
			}
			busy = false
		}
		for _, n := range sub.TakeNotices() {
			if err := write(api.StreamMessage{Type: api.StreamNotice, Kind: n.Kind, Data: string(n.Data)}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Done:
			return errRevoked
		case <-sub.Wake:
		case ack := <-acks:
			if err := s.ack(ctx, device, ack, acks); err != nil {
				return err
			}
		case <-ping.C:
			// Another node may have revoked the device: look, so its stream
			// ends within one keep-alive interval wherever it is served.
			var d store.Device
			if err := s.store.View(ctx, func(tx *store.Tx) (err error) { d, err = tx.GetDevice(ctx, device); return }); err != nil {
				return err
			}
			if d.Status == store.DeviceRevoked {
				return errRevoked
			}
			pctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		}
	}
}

// conversationMessages reads the messages of the device's conversations
// that this connection has not sent yet, up to convBatch in all.
func (s *Server) conversationMessages(ctx context.Context, device string, sent map[string]int64) ([]*api.ConversationMessage, error) {
	var out []*api.ConversationMessage
	err := s.store.View(ctx, func(tx *store.Tx) error {
		out = nil
		rows, err := tx.DeviceConversations(ctx, device)
		if err != nil {
			return err
		}
		for _, r := range rows {
			id := deliver.ConversationID(r.GroupID)
			from := max(r.Acked, sent[id])
			if r.HeadSeq <= from || r.LeftSeq != 0 && from >= r.LeftSeq {
				continue
			}
			ms, err := tx.ConversationMessages(ctx, r.GroupID, from, r.LeftSeq, convBatch-len(out))
			if err != nil {
				return err
			}
			for _, m := range ms {
				out = append(out, apiConversationMessage(m))
			}
			if len(out) >= convBatch {
				break
			}
		}
		return nil
	})
	return out, err
}

// ack records acknowledgements: first, and whatever more are already
// waiting, in one transaction, keeping only the highest per conversation.
func (s *Server) ack(ctx context.Context, device string, first api.StreamMessage, more <-chan api.StreamMessage) error {
	var (
		events int64 = -1
		convs        = map[string]int64{}
	)
	take := func(m api.StreamMessage) {
		if m.Type == api.StreamAck {
			events = max(events, m.Seq)
		} else {
			convs[m.Conversation] = max(convs[m.Conversation], m.Seq)
		}
	}
	take(first)
	for len(more) > 0 {
		take(<-more)
	}
	return s.store.Update(ctx, func(tx *store.Tx) error {
		if events >= 0 {
			if err := tx.AckEvents(ctx, device, events); err != nil {
				return err
			}
		}
		for id, seq := range convs {
			gid, err := deliver.ParseConversationID(id)
			if err != nil {
				continue
			}
			if err := tx.AckConversation(ctx, gid, device, seq); err != nil {
				return err
			}
		}
		return nil
	})
}
