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
	"hotline/internal/events"
	"hotline/internal/org"
	"hotline/internal/store"
)

const (
	streamBatch   = 100              // events read from the store per round
	streamPing    = 30 * time.Second // keep-alive interval
	writeTimeout  = 10 * time.Second // a client slower than this is dropped; it resumes later
	maxStreamRead = 4 << 10          // acks are tiny
)

// events serves GET /v1/events: a WebSocket carrying the device's durable
// events from ?after=SEQ on, plus notices. The client acknowledges with
// {"type":"ack","seq":N}; acknowledged events are deleted. The store is the
// queue, so a slow client only slows its own stream (back-pressure), and a
// reconnecting client resumes from its last acknowledged event.
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
	acks := make(chan int64, 16)
	readerDone := make(chan struct{})
	go func() { // reader: acks; ends when the connection does
		defer close(readerDone)
		defer cancel()
		for {
			var m api.StreamMessage
			if err := wsjson.Read(ctx, c, &m); err != nil {
				return
			}
			if m.Type != api.StreamAck || m.Seq < 0 {
				c.Close(websocket.StatusPolicyViolation, "unexpected message")
				return
			}
			select {
			case acks <- m.Seq:
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
	return nil
}

var errRevoked = errors.New("subscription closed")

func (s *Server) stream(ctx context.Context, c *websocket.Conn, sub *events.Sub, device string, cursor int64, acks <-chan int64) error {
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
	for {
		// Send everything queued after the cursor, a batch at a time.
		for {
			var es []store.Event
			err := s.store.View(ctx, func(tx *store.Tx) (err error) {
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
			if len(es) < streamBatch {
				break
			}
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
		case seq := <-acks:
			if err := s.store.Update(ctx, func(tx *store.Tx) error { return tx.AckEvents(ctx, device, seq) }); err != nil {
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
