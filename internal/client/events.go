package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/deliver"
	"hotline/internal/mls"
)

// ErrStop, returned by an Events handler, ends the stream: the event it was
// given counts as handled, and Events returns nil.
var ErrStop = errors.New("stop the event stream")

// ErrStreamRevoked is returned by Events when the server ended the stream
// because the device was revoked.
var ErrStreamRevoked = errors.New("event stream closed: device revoked")

// OnStreamDown sets a function told each time the event stream ends with
// an error, before Events retries or gives up (nil: none), so a UI can show
// that the device is offline.
func (c *Client) OnStreamDown(fn func(error)) {
	c.mu.Lock()
	c.onStreamDown = fn
	c.mu.Unlock()
}

func (c *Client) streamDown(err error) {
	c.mu.Lock()
	fn := c.onStreamDown
	c.mu.Unlock()
	if fn != nil {
		fn(err)
	}
}

// Events follows the device's event stream until ctx ends, calling fn for
// every message in order. After fn returns nil for a durable event, the
// event is acknowledged and the position saved in the profile, so a restart
// resumes after it; an event fn fails on is delivered again. Lost
// connections are retried with backoff; a revoked device gets
// ErrStreamRevoked.
//
// Whatever fn does, the stream keeps the device's conversations current:
// Welcomes join them, their messages are handled (see OnUpdate), and key
// packages are replenished when the server says they run low.
func (c *Client) Events(ctx context.Context, fn func(api.StreamMessage) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.streamOnce(ctx, fn)
		if err != nil && !errors.Is(err, ErrStop) && ctx.Err() == nil {
			c.streamDown(err)
		}
		switch {
		case errors.Is(err, ErrStop):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrStreamRevoked), apierr.Is(err, apierr.DeviceRevoked), apierr.Is(err, apierr.UserDisabled):
			return err
		case err == nil:
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (c *Client) streamOnce(ctx context.Context, fn func(api.StreamMessage) error) error {
	tok, err := c.session(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	after := c.prof.EventsAfter
	c.mu.Unlock()
	u := *c.base
	u.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
	u.Path = "/v1/events"
	u.RawQuery = fmt.Sprintf("after=%d", after)
	conn, resp, err := c.dialEvents(ctx, u.String(), tok)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
		}
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			return apierr.New(apierr.DeviceRevoked, "the server refused the event stream")
		}
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxStreamMessage)

	// A reader goroutine, so that conversation messages that arrive
	// together are handled together: the state is saved and the server
	// told once for the lot (flush), not once per message.
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	in := make(chan api.StreamMessage, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(in)
		for {
			var m api.StreamMessage
			if err := wsjson.Read(rctx, conn, &m); err != nil {
				readErr <- err
				return
			}
			select {
			case in <- m:
			case <-rctx.Done():
				readErr <- rctx.Err()
				return
			}
		}
	}()
	unflushed := map[*convEntry]bool{}
	streamAck := func(id string, seq int64) error {
		return wsjson.Write(ctx, conn, api.StreamMessage{Type: api.StreamConvAck, Conversation: id, Seq: seq})
	}
	// flush saves and acknowledges what was handled: on the stream, or,
	// when the stream is about to close, with requests that are answered
	// before this returns (a stream acknowledgement still in flight when
	// the connection closes may arrive after the caller's next request).
	flush := func(closing bool) error {
		ack := streamAck
		if closing {
			ack = nil
		}
		for e := range unflushed {
			e.mu.Lock()
			err := c.flushLocked(ctx, e, ack)
			c.unlock(e)
			if err != nil {
				return err
			}
			delete(unflushed, e)
		}
		return nil
	}
	// Handled conversation messages are saved and acknowledged within
	// flushDelay, and at once when the stream is about to close.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	timing := false
	for {
		var (
			m  api.StreamMessage
			ok bool
		)
		select {
		case m, ok = <-in:
		case <-timer.C:
			timing = false
			if err := flush(false); err != nil {
				return err
			}
			continue
		}
		if !ok {
			if err := flush(true); err != nil {
				return err
			}
			err := <-readErr
			if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
				return ErrStreamRevoked
			}
			return err
		}
		switch {
		case m.Type == api.StreamEvent && m.Seq <= after:
			continue // already handled before a reconnect
		case m.Type == api.StreamConv:
			if m.Message == nil || m.Message.Conversation != m.Conversation {
				return errors.New("malformed conversation message on the event stream")
			}
			e, err := c.receive(ctx, m.Message)
			if err != nil {
				return fmt.Errorf("conversation %s message %d: %w", m.Conversation, m.Seq, err)
			}
			if e != nil {
				unflushed[e] = true
				if !timing {
					timer.Reset(flushDelay)
					timing = true
				}
			}
		case m.Type == api.StreamEvent && m.Event == deliver.WelcomeEvent:
			if err := c.join(ctx, m.Payload); err != nil {
				return fmt.Errorf("handle Welcome event %d: %w", m.Seq, err)
			}
		case m.Type == api.StreamEvent && m.Event == "keypackages.low":
			c.replenish(ctx, m.Payload)
		case m.Type == api.StreamEvent && m.Event == "credential.updated":
			// New roles or clearance: the server withdrew this device's
			// key packages, which carried the old credential.
			if _, err := c.Me(ctx); err == nil {
				c.EnsureKeyPackages(ctx, DefaultSuite)
			}
		}
		stop := false
		if err := fn(m); errors.Is(err, ErrStop) {
			stop = true
		} else if err != nil {
			return fmt.Errorf("handle %s event %d: %w", m.Event, m.Seq, err)
		}
		if stop || len(unflushed) > 0 && m.Type == api.StreamEvent {
			// Stopping, or an event (a Welcome, say) that must not be
			// acknowledged before the messages handled before it are saved.
			if err := flush(stop); err != nil {
				return err
			}
		}
		if m.Type != api.StreamEvent {
			if stop {
				conn.Close(websocket.StatusNormalClosure, "done")
				return ErrStop
			}
			continue
		}
		after = m.Seq
		c.mu.Lock()
		c.prof.EventsAfter = m.Seq
		err := c.saveProfileLocked()
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if err := c.syncStorage(ctx); err != nil {
			return err
		}
		if err := wsjson.Write(ctx, conn, api.StreamMessage{Type: api.StreamAck, Seq: m.Seq}); err != nil {
			return err
		}
		if stop {
			conn.Close(websocket.StatusNormalClosure, "done")
			return ErrStop
		}
	}
}

// flushDelay bounds how long handled conversation messages wait to be
// saved and acknowledged: the state is written once for all that arrive
// together, not once per message. Until then a crash only means the
// server delivers them again (the application may see them twice; their
// numbers tell).
const flushDelay = 250 * time.Millisecond

// maxStreamMessage bounds one message on the event stream: a Welcome to a
// large post-quantum group carries its whole ratchet tree.
const maxStreamMessage = 8 << 20

// replenish uploads key packages when the server says this device is
// running low, so others can still add it to conversations. Failure is
// only logged in the next attempt: the last-resort package still works.
func (c *Client) replenish(ctx context.Context, payload []byte) {
	var low struct {
		CipherSuite uint16 `json:"cipher_suite"`
		Ordinary    int    `json:"ordinary"`
	}
	if json.Unmarshal(payload, &low) != nil || low.Ordinary >= KeyPackageTarget {
		return
	}
	c.UploadKeyPackages(ctx, mls.CipherSuite(low.CipherSuite), KeyPackageTarget-low.Ordinary, false)
}
