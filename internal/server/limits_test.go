package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/server"
)

// Enrolment attempts are rate-limited per address: guessing invite codes is
// slow, and a refused attempt changes nothing.
func TestEnrolmentRateLimit(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.EnrolRate, c.EnrolBurst = 0.001, 3 })
	limited := 0
	for range 6 {
		_, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: e.url, Invite: "HL-00000-00000-00000-00000-0000",
			ProfileDir: filepath.Join(t.TempDir(), "p"), Fingerprint: e.fp})
		switch {
		case apierr.Is(err, apierr.RateLimited):
			limited++
		case !apierr.Is(err, apierr.InviteInvalid):
			t.Fatalf("guess: %v", err)
		}
	}
	if limited != 3 {
		t.Errorf("%d of 6 guesses rate-limited with a burst of 3; want 3", limited)
	}
	// The real invite is refused too while the address is limited, and is
	// still unused afterwards.
	_, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: e.url, Invite: e.invite,
		ProfileDir: filepath.Join(t.TempDir(), "p"), Fingerprint: e.fp})
	if !apierr.Is(err, apierr.RateLimited) {
		t.Fatalf("real invite while limited: %v", err)
	}
}

// A device that was away while more events queued than one batch holds
// receives them all, in order, once.
func TestEventBacklog(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	admin2, _ := e.enroll(t, addUser(t, admin, "admin2", "admin"), "admin2")
	// Each raise by admin2 sends admin a request.pending event.
	const n = 250 // the stream reads 100 at a time
	for i := range n {
		var res api.CreateUserResponse
		req := api.CreateUserRequest{User: "u" + itoa(int64(i)) + "@state.example", Roles: []string{}, Clearance: "secret"}
		if err := admin2.Do(ctx, "POST", "/v1/users", req, &res); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var seqs []int64
	err := admin.Events(cctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamEvent && m.Event == "request.pending" {
			seqs = append(seqs, m.Seq)
			if len(seqs) == n {
				return client.ErrStop
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after %d events: %v", len(seqs), err)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("event %d has seq %d after %d", i, seqs[i], seqs[i-1])
		}
	}
}

// Behind a trusted reverse proxy, rate limits apply per forwarded client;
// a client cannot escape its limit by forging X-Forwarded-For, and without
// a trusted proxy the header is ignored.
func TestRateLimitsBehindProxy(t *testing.T) {
	enrolFrom := func(e *env, xff string) apierr.Code {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/v1/enroll", strings.NewReader(`{"invite":"nonsense","sig_key":"","kem_key":"","label":"","proof":""}`))
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := e.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return eb.Error.Code
	}
	limit := func(c *server.Config) { c.EnrolRate, c.EnrolBurst = 0.001, 2 }
	// No trusted proxy: the header is ignored; everyone shares the peer's bucket.
	e := newEnv(t, "sqlite", limit)
	got := []apierr.Code{enrolFrom(e, "198.51.100.1"), enrolFrom(e, "198.51.100.2"), enrolFrom(e, "198.51.100.3")}
	if got[2] != apierr.RateLimited {
		t.Errorf("untrusted peer's forwarded addresses were believed: %v", got)
	}
	// 127.0.0.0/8 is the proxy: each forwarded client has its own bucket.
	e = newEnv(t, "sqlite", limit, func(c *server.Config) {
		_, n, _ := net.ParseCIDR("127.0.0.0/8")
		c.TrustedProxies = []*net.IPNet{n}
	})
	a := []apierr.Code{enrolFrom(e, "198.51.100.1"), enrolFrom(e, "198.51.100.1"), enrolFrom(e, "198.51.100.1")}
	if a[0] == apierr.RateLimited || a[1] == apierr.RateLimited || a[2] != apierr.RateLimited {
		t.Errorf("client A: %v; want two attempts, then rate_limited", a)
	}
	if c := enrolFrom(e, "198.51.100.2"); c == apierr.RateLimited {
		t.Errorf("client B limited by A's attempts")
	}
	// A forged hop to the left does not help A: the proxy appends the real one.
	if c := enrolFrom(e, "203.0.113.9, 198.51.100.1"); c != apierr.RateLimited {
		t.Errorf("A with a forged X-Forwarded-For: %s, want rate_limited", c)
	}
}
