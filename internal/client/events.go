package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"hotline/internal/api"
	"hotline/internal/apierr"
)

// ErrStop, returned by an Events handler, ends the stream: the event it was
// given counts as handled, and Events returns nil.
var ErrStop = errors.New("stop the event stream")

// ErrStreamRevoked is returned by Events when the server ended the stream
// because the device was revoked.
var ErrStreamRevoked = errors.New("event stream closed: device revoked")

// Events follows the device's event stream until ctx ends, calling fn for
// every message in order. After fn returns nil for a durable event, the
// event is acknowledged and the position saved in the profile, so a restart
// resumes after it; an event fn fails on is delivered again. Lost
// connections are retried with backoff; a revoked device gets
// ErrStreamRevoked.
func (c *Client) Events(ctx context.Context, fn func(api.StreamMessage) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.streamOnce(ctx, fn)
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
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: c.http.Transport},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
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
	conn.SetReadLimit(1 << 20)
	for {
		var m api.StreamMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
				return ErrStreamRevoked
			}
			return err
		}
		if m.Type == api.StreamEvent && m.Seq <= after {
			continue // already handled before a reconnect
		}
		stop := false
		if err := fn(m); errors.Is(err, ErrStop) {
			stop = true
		} else if err != nil {
			return fmt.Errorf("handle %s event %d: %w", m.Event, m.Seq, err)
		}
		if m.Type != api.StreamEvent {
			if stop {
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
		if err := wsjson.Write(ctx, conn, api.StreamMessage{Type: api.StreamAck, Seq: m.Seq}); err != nil {
			return err
		}
		if stop {
			conn.Close(websocket.StatusNormalClosure, "done")
			return ErrStop
		}
	}
}
