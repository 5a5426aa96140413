package client

import (
	"context"
	"net/url"

	"hotline/internal/api"
)

// SetNoteTaker designates noteTaker as principal's note-taker, rung into
// the principal's ad-hoc calls (admins and the duty desk).
func (c *Client) SetNoteTaker(ctx context.Context, principal, noteTaker string) (api.NoteTaker, error) {
	var v api.NoteTaker
	err := c.Do(ctx, "PUT", "/v1/users/"+url.PathEscape(principal)+"/note-taker", api.NoteTakerSet{NoteTaker: noteTaker}, &v)
	return v, err
}

// ClearNoteTaker removes principal's designated note-taker and returns
// who it was.
func (c *Client) ClearNoteTaker(ctx context.Context, principal string) (api.NoteTaker, error) {
	var v api.NoteTaker
	err := c.Do(ctx, "DELETE", "/v1/users/"+url.PathEscape(principal)+"/note-taker", nil, &v)
	return v, err
}

// NoteTakers lists the designations this user may see: every one for
// admins and the desk, otherwise those naming this user.
func (c *Client) NoteTakers(ctx context.Context) ([]api.NoteTaker, error) {
	var vs []api.NoteTaker
	err := c.Do(ctx, "GET", "/v1/note-takers", nil, &vs)
	return vs, err
}
