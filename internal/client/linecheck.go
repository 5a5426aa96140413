package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"

	"hotline/internal/api"
)

// GroupState is this device's view of a conversation's MLS group, to
// compare with the other members': the epoch and a hash of its epoch
// authenticator (RFC 9420 §8.7), which members in the same state share.
func (c *Client) GroupState(id string) (epoch uint64, digest string, err error) {
	e, err := c.entry(id)
	if err != nil {
		return 0, "", err
	}
	e.mu.Lock()
	defer c.unlock(e)
	if err := usable(e); err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(append([]byte("hotline line check\x00"), e.group.EpochAuthenticator()...))
	return e.group.Epoch(), hex.EncodeToString(sum[:16]), nil
}

// A Prober measures the media path of a line check end to end, through
// the server's forwarder: a device's warm media line does (voice.Line).
type Prober interface {
	ProbeLine(ctx context.Context, conv string, ask api.LineProbeAsk) api.LineMedia
}

// SetProber sets what measures this device's media path when a line check
// asks (nil: nothing; the device then reports that it cannot).
func (c *Client) SetProber(p Prober) {
	c.mu.Lock()
	c.prober = p
	c.mu.Unlock()
}

// DropProber unsets p if it is the device's prober.
func (c *Client) DropProber(p Prober) {
	c.mu.Lock()
	if c.prober == p {
		c.prober = nil
	}
	c.mu.Unlock()
}

// AnswerLineCheck runs this device's side of a line check the server asked
// for (linecheck.run) and reports it: whether the transparency log
// verifies, its view of the conversation's group and, when asked, the
// media path measured end to end (see Prober). It is called while the
// device follows its event stream (KeepHotlines, the web core).
func (c *Client) AnswerLineCheck(ctx context.Context, ask api.LineCheckAsk) (api.LineCheck, error) {
	var rep api.LineCheckReport
	var media chan api.LineMedia
	if ask.Probe != nil {
		media = make(chan api.LineMedia, 1)
		c.mu.Lock()
		p := c.prober
		c.mu.Unlock()
		if p == nil {
			media <- api.LineMedia{Unsupported: "no_media_line"}
		} else {
			go func() { media <- p.ProbeLine(ctx, ask.Conversation, *ask.Probe) }()
		}
	}
	if _, err := c.VerifyLog(ctx); errors.Is(err, ErrLogProblem) {
		rep.LogProblem = "log_problem"
	} else if err != nil {
		rep.LogProblem = "unverified"
	}
	// The device's event stream keeps its conversations current: the
	// group state is as it stands now.
	info := c.Conversation(ask.Conversation)
	rep.Member = info.ID != "" && !info.Removed
	rep.Broken = info.Broken != ""
	if rep.Member && !rep.Broken {
		var err error
		if rep.Epoch, rep.Group, err = c.GroupState(ask.Conversation); err != nil {
			rep.Broken = true
		}
	}
	if media != nil {
		m := <-media
		rep.Media = &m
	}
	var v api.LineCheck
	err := c.Do(ctx, "POST", "/v1/linechecks/"+url.PathEscape(ask.LineCheck)+"/report", rep, &v)
	return v, err
}

// StartLineCheck asks the server to check both ends of a request's line.
func (c *Client) StartLineCheck(ctx context.Context, request string) (api.LineCheck, error) {
	var v api.LineCheck
	err := c.Do(ctx, "POST", "/v1/call-requests/"+url.PathEscape(request)+"/linecheck", struct{}{}, &v)
	return v, err
}

// GetLineCheck returns a line check.
func (c *Client) GetLineCheck(ctx context.Context, id string) (api.LineCheck, error) {
	var v api.LineCheck
	err := c.Do(ctx, "GET", "/v1/linechecks/"+url.PathEscape(id), nil, &v)
	return v, err
}

// LineChecks returns a request's latest line checks, newest first.
func (c *Client) LineChecks(ctx context.Context, request string) ([]api.LineCheck, error) {
	var vs []api.LineCheck
	err := c.Do(ctx, "GET", "/v1/call-requests/"+url.PathEscape(request)+"/linechecks", nil, &vs)
	return vs, err
}
