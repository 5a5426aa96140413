//go:build !js

package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// dialEvents opens the event stream, with the session token in the
// Authorization header.
func (c *Client) dialEvents(ctx context.Context, url, tok string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: c.http.Transport},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
}
