package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
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
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{api.WebSocketProtocol}})
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
	case errors.Is(err, errShutdown):
		c.Close(websocket.StatusServiceRestart, "server shutting down")
	case err != nil && ctx.Err() == nil:
		s.log.Debug("event stream ended", "device", a.Device.ID, "err", err)
		c.Close(websocket.StatusInternalError, "stream error")
	default:
		c.Close(websocket.StatusGoingAway, "closing")
	}
	cancel()
	<-readerDone
	// Acknowledgements that arrived as the stream closed (a client that
	// acknowledges, then hangs up) still count, and the device's batched
	// ones are written now: it may reconnect at once.
	actx, acancel := context.WithTimeout(context.WithoutCancel(s.ctx), writeTimeout)
	defer acancel()
	if len(acks) > 0 {
		if err := s.ack(actx, a.Device.ID, <-acks, acks); err != nil {
			s.log.Debug("acknowledgements at the end of a stream", "device", a.Device.ID, "err", err)
		}
	}
	if err := s.flushAcks(actx, a.Device.ID); err != nil {
		s.log.Debug("acknowledgements at the end of a stream", "device", a.Device.ID, "err", err)
	}
	return nil
}

var errRevoked = errors.New("subscription closed")

// errShutdown ends a stream because the server is shutting down: the
// device reconnects (to this server once it is back, or another node).
var errShutdown = errors.New("server shutting down")

// shutdownReason is the hub's reason for closing every subscription at
// shutdown, which a stream tells apart from a revocation.
const shutdownReason = "server shutting down"

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
	writeWire := func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return c.Write(wctx, websocket.MessageText, b)
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
	// busy: the store was read since the last idle message (and at the
	// start, so a client catching up learns it has caught up).
	busy := true
	// more: the last read of the store filled a batch; read again.
	more := false
	for {
		// Messages pushed as they were accepted go out as they are when
		// they continue what this connection sent; otherwise (a gap, a
		// conversation it has not read yet, pushes dropped, a Wake) it
		// reads the store from where it stands.
		pushed, stale := sub.Take()
		stale = stale || more
		var msgs []outgoing
		for _, m := range pushed {
			last, known := sent[m.Conversation]
			switch {
			case stale:
			case known && m.Seq <= last:
			case known && m.Seq == last+1:
				msgs = append(msgs, outgoing{m: pushedMessage(m), wire: m.Wire})
				sent[m.Conversation] = m.Seq
			default:
				stale = true
			}
		}
		more = false
		var es []store.Event
		if stale {
			// Conversation messages are read before events and sent after
			// them: a device added to a conversation gets the Welcome (an
			// event, written in the transaction that added it) before the
			// conversation's messages.
			read, err := s.conversationMessages(ctx, device, sent)
			if err != nil {
				return err
			}
			err = s.store.View(ctx, func(tx *store.Tx) (err error) {
				es, err = tx.EventsAfter(ctx, device, cursor, streamBatch)
				return err
			})
			if err != nil {
				return err
			}
			for _, m := range read {
				msgs = append(msgs, outgoing{m: m})
			}
			more = len(read) == convBatch || len(es) == streamBatch
			// What a read of the store sent ends with an idle message;
			// messages pushed live do not need one.
			busy = true
		}
		for _, e := range es {
			if err := write(api.StreamMessage{Type: api.StreamEvent, Seq: e.Seq, Event: e.Type, Payload: json.RawMessage(e.Payload)}); err != nil {
				return err
			}
			cursor = e.Seq
		}
		for _, o := range msgs {
			m := o.m
			var err error
			if o.wire != nil {
				err = writeWire(o.wire)
			} else {
				err = write(api.StreamMessage{Type: api.StreamConv, Conversation: m.Conversation, Seq: m.Seq, Message: m})
			}
			if err != nil {
				return err
			}
			sent[m.Conversation] = max(sent[m.Conversation], m.Seq)
			s.metrics.delivered.Inc(kindLabel(m.Kind))
		}
		if more {
			continue
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
			if sub.Reason() == shutdownReason {
				return errShutdown
			}
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

// pushedMessage is a pushed message as the stream carries it.
// outgoing is a conversation message to send on a stream, with its
// encoding when it was pushed live (the same for every recipient).
type outgoing struct {
	m    *api.ConversationMessage
	wire []byte
}

// pushedWire encodes a pushed message as streams send it, once for all
// the devices it goes to.
func pushedWire(m events.Message) []byte {
	cm := pushedMessage(m)
	b, err := json.Marshal(api.StreamMessage{Type: api.StreamConv, Conversation: cm.Conversation, Seq: cm.Seq, Message: cm})
	if err != nil {
		return nil // the stream encodes it itself
	}
	return b
}

func pushedMessage(m events.Message) *api.ConversationMessage {
	return &api.ConversationMessage{Conversation: m.Conversation, Seq: m.Seq, Epoch: m.Epoch, Kind: m.Kind, Sender: m.Sender,
		Message: m.Data, Time: m.Time.UTC(), Chain: m.Chain}
}

// conversationMessages reads the messages of the device's conversations
// that this connection has not sent yet, up to convBatch in all. It notes
// in sent where each conversation stands, so that pushes can continue it.
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
			sent[id] = from // pushes continue from here
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
// waiting. Events are deleted at once; conversation acknowledgements are
// batched (see acker).
func (s *Server) ack(ctx context.Context, device string, first api.StreamMessage, more <-chan api.StreamMessage) error {
	events := int64(-1)
	take := func(m api.StreamMessage) {
		if m.Type == api.StreamAck {
			events = max(events, m.Seq)
		} else {
			s.acks.add(device, m.Conversation, m.Seq)
		}
	}
	take(first)
	for len(more) > 0 {
		take(<-more)
	}
	if events < 0 {
		return nil
	}
	return s.store.Update(ctx, func(tx *store.Tx) error { return tx.AckEvents(ctx, device, events) })
}

// ackFlush is how often batched conversation acknowledgements are written.
const ackFlush = time.Second

// acker batches devices' acknowledgements of conversation messages, which
// arrive for nearly every message delivered: they are written every
// ackFlush, and for a device when its stream ends, so that a write per
// delivery does not take the database's time from the messages
// themselves. An acknowledgement lost in a crash only means the messages
// are delivered again, which devices recognise by their numbers.
type acker struct {
	mu      sync.Mutex // guards pending
	pending map[ackKey]int64
}

type ackKey struct{ device, conversation string }

func (a *acker) add(device, conversation string, seq int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[ackKey]int64{}
	}
	k := ackKey{device, conversation}
	a.pending[k] = max(a.pending[k], seq)
}

// take removes and returns the pending acknowledgements of device ("": of
// every device).
func (a *acker) take(device string) map[ackKey]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if device == "" {
		out := a.pending
		a.pending = nil
		return out
	}
	out := map[ackKey]int64{}
	for k, v := range a.pending {
		if k.device == device {
			out[k] = v
			delete(a.pending, k)
		}
	}
	return out
}

// flushAcks writes the pending acknowledgements of device ("": all).
func (s *Server) flushAcks(ctx context.Context, device string) error {
	pending := s.acks.take(device)
	if len(pending) == 0 {
		return nil
	}
	return s.store.Update(ctx, func(tx *store.Tx) error {
		for k, seq := range pending {
			gid, err := deliver.ParseConversationID(k.conversation)
			if err != nil {
				continue
			}
			if err := tx.AckConversation(ctx, gid, k.device, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// ackLoop writes batched acknowledgements until the server stops, then
// writes the last of them.
func (s *Server) ackLoop() {
	t := time.NewTicker(ackFlush)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			if err := s.flushAcks(ctx, ""); err != nil {
				s.log.Warn("write acknowledgements at shutdown", "err", err)
			}
			return
		case <-t.C:
			if err := s.flushAcks(s.ctx, ""); err != nil && s.ctx.Err() == nil {
				s.log.Warn("write acknowledgements", "err", err)
			}
		}
	}
}
