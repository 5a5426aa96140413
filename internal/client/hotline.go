package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/desk"
)

// CreateHotline makes a standing line from this device to a device of
// farUser (farDevice, or their only device with a key package), in a new
// conversation of the two, tested every interval (0: an hour). This device
// is the near end: the server asks it to run each test; the far end's
// client answers by itself (KeepHotlines, on both).
func (c *Client) CreateHotline(ctx context.Context, farUser, farDevice string, interval time.Duration) (api.Hotline, error) {
	info, err := c.CreateConversation(ctx, CreateOptions{Title: "Hotline to " + farUser, Members: []string{farUser}})
	if err != nil {
		return api.Hotline{}, fmt.Errorf("the line's conversation: %w", err)
	}
	if farDevice == "" {
		var devices []string
		for _, m := range info.Members {
			if m.User == farUser {
				devices = append(devices, m.Device)
			}
		}
		if len(devices) != 1 {
			return api.Hotline{}, fmt.Errorf("%s has %d devices in the line's conversation: name the far end's device", farUser, len(devices))
		}
		farDevice = devices[0]
	}
	var v api.Hotline
	err = c.Do(ctx, "POST", "/v1/hotlines", api.HotlineCreate{Conversation: info.ID, FarUser: farUser, FarDevice: farDevice, Interval: int64(interval / time.Second)}, &v)
	return v, err
}

// Hotlines lists the lines this user may see, with their latest tests.
func (c *Client) Hotlines(ctx context.Context) ([]api.Hotline, error) {
	var vs []api.Hotline
	err := c.Do(ctx, "GET", "/v1/hotlines", nil, &vs)
	return vs, err
}

// GetHotline returns one line.
func (c *Client) GetHotline(ctx context.Context, id string) (api.Hotline, error) {
	var v api.Hotline
	err := c.Do(ctx, "GET", "/v1/hotlines/"+url.PathEscape(id), nil, &v)
	return v, err
}

// HotlineEvent is what KeepHotlines did: "ready" (its event stream is
// open: it can be asked for tests and line checks), "pinged" (a test the
// server asked for went out), "answered" (this device, the far end,
// answered one), "tested" (the far end answered ours; Latency is the round
// trip), "linecheck" (it answered a line check), or "error".
type HotlineEvent struct {
	Hotline string
	Kind    string
	Latency time.Duration
	Err     error
}

// KeepHotlines keeps this device's end of its hotlines until ctx ends: as
// a near end it sends each test the server asks for (hotline.test) as a
// ping inside the line's MLS group and reports the far end's answer with
// the round trip's latency; as a far end it answers every ping at once.
// The server never sees the ping or pong, only that a test was answered.
// It also answers line checks (linecheck.run, AnswerLineCheck): a device
// kept this way is an end the duty desk can check.
func (c *Client) KeepHotlines(ctx context.Context, report func(HotlineEvent)) error {
	if report == nil {
		report = func(HotlineEvent) {}
	}
	type sent struct {
		hotline string
		at      time.Time
	}
	var (
		mu      sync.Mutex
		pending = map[string]sent{} // by nonce
		work    = make(chan func(), 64)
	)
	// Sending and reporting happen on one worker, never inside the
	// callbacks (which run while the client handles a message).
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-work:
				f()
			}
		}
	}()
	queue := func(f func()) {
		select {
		case work <- f:
		default:
			report(HotlineEvent{Kind: "error", Err: fmt.Errorf("hotline work queue full")})
		}
	}
	c.OnUpdate(func(u Update) {
		if u.Kind != UpdateMessage || u.Message == nil || u.Message.Own || u.Message.Kind != "desk" {
			return
		}
		d, err := desk.ParseDoc(u.Message.Data)
		if err != nil {
			return
		}
		switch d.Type {
		case desk.DocPing:
			conv := u.Conversation
			queue(func() {
				err := c.sendDoc(ctx, conv, desk.Doc{Type: desk.DocPong, Hotline: d.Hotline, Nonce: d.Nonce})
				if err != nil {
					report(HotlineEvent{Hotline: d.Hotline, Kind: "error", Err: fmt.Errorf("answer: %w", err)})
					return
				}
				report(HotlineEvent{Hotline: d.Hotline, Kind: "answered"})
			})
		case desk.DocPong:
			now := time.Now()
			mu.Lock()
			p, ok := pending[d.Nonce]
			delete(pending, d.Nonce)
			mu.Unlock()
			if !ok || p.hotline != d.Hotline {
				return
			}
			latency := now.Sub(p.at)
			queue(func() {
				var v api.Hotline
				err := c.Do(ctx, "POST", "/v1/hotlines/"+url.PathEscape(d.Hotline)+"/tests", api.HotlineReport{Nonce: d.Nonce, LatencyUs: latency.Microseconds()}, &v)
				if err != nil {
					report(HotlineEvent{Hotline: d.Hotline, Kind: "error", Err: fmt.Errorf("report: %w", err)})
					return
				}
				report(HotlineEvent{Hotline: d.Hotline, Kind: "tested", Latency: latency})
			})
		}
	})
	defer c.OnUpdate(nil)
	if err := c.EnsureKeyPackages(ctx, DefaultSuite); err != nil {
		return err
	}
	return c.Events(ctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamReady {
			report(HotlineEvent{Kind: "ready"})
			return nil
		}
		if m.Type == api.StreamEvent && m.Event == "linecheck.run" {
			var ask api.LineCheckAsk
			if json.Unmarshal(m.Payload, &ask) == nil {
				// Not on the worker: measuring the media path takes a
				// second or two, which hotline tests need not wait for.
				go func() {
					if _, err := c.AnswerLineCheck(ctx, ask); err != nil {
						report(HotlineEvent{Kind: "error", Err: fmt.Errorf("line check: %w", err)})
						return
					}
					report(HotlineEvent{Kind: "linecheck"})
				}()
			}
			return nil
		}
		if m.Type != api.StreamEvent || m.Event != "hotline.test" {
			return nil
		}
		var ask api.HotlineAsk
		if err := json.Unmarshal(m.Payload, &ask); err != nil {
			return nil
		}
		queue(func() {
			now := time.Now()
			mu.Lock()
			for n, p := range pending { // tests never answered
				if now.Sub(p.at) > time.Hour {
					delete(pending, n)
				}
			}
			pending[ask.Nonce] = sent{hotline: ask.Hotline, at: now}
			mu.Unlock()
			if err := c.sendDoc(ctx, ask.Conversation, desk.Doc{Type: desk.DocPing, Hotline: ask.Hotline, Nonce: ask.Nonce}); err != nil {
				report(HotlineEvent{Hotline: ask.Hotline, Kind: "error", Err: fmt.Errorf("ping: %w", err)})
				return
			}
			report(HotlineEvent{Hotline: ask.Hotline, Kind: "pinged"})
		})
		return nil
	})
}
