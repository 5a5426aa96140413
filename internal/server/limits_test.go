package server_test

import (
	"context"
	"path/filepath"
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
