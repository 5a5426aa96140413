package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/conversation"
)

// routes the fuzzer aims at; PARAM is replaced by fuzzed text.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/enroll"},
	{"POST", "/v1/auth/challenge"},
	{"POST", "/v1/auth/session"},
	{"POST", "/v1/users"},
	{"GET", "/v1/users/PARAM"},
	{"PUT", "/v1/users/PARAM/roles"},
	{"PUT", "/v1/users/PARAM/clearance"},
	{"POST", "/v1/invites"},
	{"GET", "/v1/devices?user=PARAM"},
	{"POST", "/v1/devices/PARAM/approve"},
	{"POST", "/v1/devices/PARAM/revoke"},
	{"POST", "/v1/policy"},
	{"DELETE", "/v1/policy/PARAM"},
	{"POST", "/v1/contact"},
	{"GET", "/v1/log/entries?start=PARAM&end=PARAM"},
	{"GET", "/v1/log/proof/inclusion?index=PARAM&size=PARAM"},
	{"GET", "/v1/log/proof/consistency?old=PARAM&new=PARAM"},
	{"GET", "/v1/requests?all=PARAM"},
	{"POST", "/v1/keypackages"},
	{"POST", "/v1/keypackages/claim"},
	{"GET", "/v1/keypackages?cipher_suite=PARAM"},
	{"POST", "/v1/blobs"},
	{"PUT", "/v1/blobs/PARAM/chunks/PARAM"},
	{"GET", "/v1/blobs/PARAM"},
	{"POST", "/v1/blobs/PARAM/complete"},
	{"GET", "/v1/blobs/PARAM/chunks/PARAM"},
	{"POST", "/v1/conversations"},
	{"GET", "/v1/conversations/PARAM"},
	{"POST", "/v1/conversations/PARAM/messages"},
	{"GET", "/v1/conversations/PARAM/messages?after=PARAM"},
	{"POST", "/v1/conversations/PARAM/ack"},
	{"POST", "/v1/conversations/PARAM/calls"},
	{"GET", "/v1/calls"},
	{"GET", "/v1/calls/PARAM"},
	{"POST", "/v1/calls/PARAM/accept"},
	{"POST", "/v1/calls/PARAM/decline"},
	{"POST", "/v1/calls/PARAM/join"},
	{"POST", "/v1/calls/PARAM/leave"},
	{"POST", "/v1/media"},
	{"POST", "/v1/call-requests"},
	{"GET", "/v1/call-requests?status=PARAM"},
	{"GET", "/v1/call-requests/PARAM"},
	{"POST", "/v1/call-requests/PARAM/approve"},
	{"POST", "/v1/call-requests/PARAM/propose"},
	{"POST", "/v1/call-requests/PARAM/accept"},
	{"POST", "/v1/call-requests/PARAM/decline"},
	{"POST", "/v1/call-requests/PARAM/withdraw"},
	{"POST", "/v1/call-requests/PARAM/briefing"},
	{"POST", "/v1/call-requests/PARAM/briefing/ack"},
	{"GET", "/v1/schedule?from=PARAM&to=PARAM"},
	{"POST", "/v1/memcons"},
	{"GET", "/v1/memcons/PARAM"},
	{"POST", "/v1/memcons/PARAM/approve"},
	{"POST", "/v1/memcons/PARAM/distribute"},
	{"GET", "/v1/commitments?all=PARAM"},
	{"POST", "/v1/commitments/PARAM/done"},
	{"GET", "/v1/readouts"},
	{"POST", "/v1/readouts/PARAM"},
	{"POST", "/v1/hotlines"},
	{"GET", "/v1/hotlines/PARAM"},
	{"POST", "/v1/hotlines/PARAM/tests"},
	{"POST", "/v1/call-requests/PARAM/linecheck"},
	{"GET", "/v1/call-requests/PARAM/linechecks"},
	{"GET", "/v1/linechecks/PARAM"},
	{"POST", "/v1/linechecks/PARAM/report"},
	{"POST", "/v1/call-requests/PARAM/call"},
	{"POST", "/v1/calls/PARAM/ring"},
	{"POST", "/v1/calls/PARAM/hold"},
	{"POST", "/v1/calls/PARAM/transfer"},
	{"PUT", "/v1/users/PARAM/note-taker"},
	{"DELETE", "/v1/users/PARAM/note-taker"},
	{"GET", "/v1/note-takers"},
}

// FuzzEndpoints sends arbitrary bodies and parameters to a live server as an
// authenticated admin. Whatever it sends, the server answers with a known
// error code or success, never a 5xx, and stays healthy.
func FuzzEndpoints(f *testing.F) {
	e := newEnv(f, "sqlite")
	admin := e.admin(f)
	tok := token(f, e, admin)
	hc := e.httpClient()
	known := map[apierr.Code]bool{}
	for _, c := range apierr.Codes {
		known[c.Code] = true
	}
	// A conversation of the admin's alone, and one of its messages, so
	// the fuzzer starts from bodies the conversation endpoints parse.
	if err := admin.EnsureKeyPackages(f.Context(), client.DefaultSuite); err != nil {
		f.Fatal(err)
	}
	conv, err := admin.CreateConversation(f.Context(), client.CreateOptions{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := admin.Send(f.Context(), conv.ID, conversation.Content{Kind: conversation.KindText, Text: "seed"}); err != nil {
		f.Fatal(err)
	}
	var page []api.ConversationMessage
	if err := admin.Do(f.Context(), "GET", "/v1/conversations/"+conv.ID+"/messages", nil, &page); err != nil || len(page) == 0 {
		f.Fatalf("seed messages: %v", err)
	}
	seedPost, _ := json.Marshal(api.ConversationPost{Message: page[len(page)-1].Message})
	for i := range fuzzRoutes {
		f.Add(uint8(i), "admin@state.example", []byte(`{"user":"x@state.example","roles":["admin"]}`))
		f.Add(uint8(i), "1", []byte(`{}`))
		f.Add(uint8(i), "aaaaaaaaaaaaaaaa", []byte(`{"rule":"any -> any : deny","reason":"lost"}`))
		f.Add(uint8(i), conv.ID, seedPost)
		f.Add(uint8(i), conv.ID, []byte(`{"seq":1}`))
	}
	f.Fuzz(func(t *testing.T, route uint8, param string, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.ReplaceAll(r.path, "PARAM", url.PathEscape(param))
		req, err := http.NewRequestWithContext(t.Context(), r.method, e.url+path, bytes.NewReader(body))
		if err != nil {
			return // not a valid URL: never reaches the server
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: HTTP %d %s", r.method, path, body, resp.StatusCode, b)
		}
		if resp.StatusCode >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil || !known[eb.Error.Code] {
				t.Fatalf("%s %s: HTTP %d with body %s", r.method, path, resp.StatusCode, b)
			}
		}
	})
}
