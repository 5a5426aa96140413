package server_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/server"
)

// TestProfileInMemory runs a device the way the web client does: its
// profile in a MemStorage rather than a directory, over plain HTTP on
// loopback, and reopened from the files the storage reported.
func TestProfileInMemory(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.InsecureHTTP = true })
	ctx := t.Context()
	admin := e.admin(t)
	bob := newMember(t, e, admin, "bob")

	st := client.NewMemStorage(nil)
	persisted := map[string][]byte{}
	st.OnChange = func(name string, data []byte) {
		if data == nil {
			delete(persisted, name)
		} else {
			persisted[name] = data
		}
	}
	c, _, err := client.Enroll(ctx, client.EnrollOptions{Server: e.url, Invite: addUser(t, admin, "alice"), Storage: st, Label: "browser", Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir() != "" {
		t.Errorf("Dir() = %q for a profile in memory", c.Dir())
	}
	alice := &member{Client: c, name: "alice"}
	if err := c.EnsureKeyPackages(ctx, client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "in memory", Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice, info.ID, "from the browser")
	sync1(t, bob)
	send(t, bob, info.ID, "to the browser")
	sync1(t, alice)
	want := []string{"alice: from the browser", "bob: to the browser"}
	if got := texts(t, alice, info.ID); !slices.Equal(got, want) {
		t.Fatalf("alice's history %q", got)
	}

	// What OnChange reported is the whole profile: a fresh storage made of
	// it opens the same device with the same history.
	if got, want := slices.Sorted(maps.Keys(persisted)), slices.Sorted(maps.Keys(st.Files())); !slices.Equal(got, want) {
		t.Fatalf("persisted %v, storage holds %v", got, want)
	}
	again, err := client.OpenStorage(client.NewMemStorage(persisted), client.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(t, &member{Client: again, name: "alice"}, info.ID); !slices.Equal(got, want) {
		t.Fatalf("reopened history %q", got)
	}
	for name, b := range persisted {
		if strings.Contains(string(b), "from the browser") {
			t.Errorf("%s holds a message in the clear", name)
		}
	}
}

// TestEventStreamSubprotocolToken opens the event stream the way a browser
// must, with the session token offered as a subprotocol.
func TestEventStreamSubprotocolToken(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.InsecureHTTP = true })
	ctx := t.Context()
	admin := e.admin(t)
	tok, err := admin.SessionToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/events"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{api.WebSocketProtocol, api.WebSocketBearerPrefix + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != api.WebSocketProtocol {
		t.Errorf("server selected subprotocol %q", conn.Subprotocol())
	}
	var m api.StreamMessage
	if err := wsjson.Read(ctx, conn, &m); err != nil || m.Type != api.StreamReady {
		t.Fatalf("first message %+v, %v", m, err)
	}

	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{api.WebSocketProtocol, api.WebSocketBearerPrefix + "not-a-token"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %v, %v", resp, err)
	}
}
