package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"

	"hotline/internal/api"
)

// dialEvents opens the event stream. A browser cannot set a WebSocket's
// headers, so the session token travels as an offered subprotocol, which
// the server reads and does not echo (api.WebSocketBearerPrefix).
func (c *Client) dialEvents(ctx context.Context, url, tok string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{api.WebSocketProtocol, api.WebSocketBearerPrefix + tok},
	})
}
