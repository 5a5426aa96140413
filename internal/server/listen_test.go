package server_test

import (
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/server"
)

// During a call, a note-taker joins listen-only, as their role says: shown
// to everyone as listening, hearing the others, heard by nobody (the
// forwarder sends their audio nowhere); an interpreter speaks. The policy
// caps the listeners: one more than it allows is refused, and may join
// once a listener leaves. The archive listens by rule: it is neither
// refused nor counted.
func TestCallListeners(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) {
		c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0"
		c.MaxListeners = 1
	})
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	interp := newMember(t, e, admin, "interp", "interpreter")
	notes := newMember(t, e, admin, "notes", "note-taker")
	notes2 := newMember(t, e, admin, "notes2", "note-taker")
	arch := newMember(t, e, admin, "archive", "archive")
	conv, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"interp@state.example", "notes@state.example", "notes2@state.example", "archive@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, interp, notes, notes2, arch)
	pa, pi, pn, pn2, parch := newPhone(t, alice), newPhone(t, interp), newPhone(t, notes), newPhone(t, notes2), newPhone(t, arch)
	ca, err := pa.line.Place(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	pi.ringing(t, ca.ID)
	pn.ringing(t, ca.ID)
	pn2.ringing(t, ca.ID)
	ci, err := pi.line.Answer(ctx, ca.ID)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := pn.line.Answer(ctx, ca.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pn2.line.Answer(ctx, ca.ID); !apierr.Is(err, apierr.Forbidden) {
		t.Fatalf("a second listener over the cap: %v", err)
	}
	var v api.Call
	if err := alice.Do(ctx, "GET", "/v1/calls/"+ca.ID, nil, &v); err != nil {
		t.Fatal(err)
	}
	listening := map[string]bool{}
	for _, p := range v.Participants {
		if p.State == "joined" {
			listening[p.User] = p.Listening
		}
	}
	if want := map[string]bool{"alice@state.example": false, "interp@state.example": false, "notes@state.example": true}; len(listening) != 3 ||
		listening["notes@state.example"] != true || listening["interp@state.example"] || listening["alice@state.example"] {
		t.Fatalf("participants listening %v, want %v", listening, want)
	}
	pa.listen(ca)
	pi.listen(ci)
	pn.listen(cn)
	stops := []func(){talker(t, ca, "alice"), talker(t, ci, "interp"), talker(t, cn, "notes")}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	eventually(t, "the note-taker hearing both speakers, and they each other", func() bool {
		a, _ := pn.heardFrom("alice@state.example")
		b, _ := pn.heardFrom("interp@state.example")
		c, _ := pa.heardFrom("interp@state.example")
		d, _ := pi.heardFrom("alice@state.example")
		return len(a) > 25 && len(b) > 25 && len(c) > 25 && len(d) > 25
	})
	for _, p := range []*phone{pa, pi} {
		if fs, _ := p.heardFrom("notes@state.example"); len(fs) != 0 {
			t.Errorf("%s heard the listening note-taker: %d frames", p.name, len(fs))
		}
	}
	// The listener leaves: the other note-taker may now join.
	if err := cn.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	var answerErr error
	eventually(t, "the second note-taker joining once there is room", func() bool {
		_, answerErr = pn2.line.Answer(ctx, ca.ID)
		return !apierr.Is(answerErr, apierr.Forbidden)
	})
	if answerErr != nil {
		t.Fatalf("the second note-taker: %v", answerErr)
	}
	// The cap is reached; the archive joins all the same, listening, and
	// is not counted.
	parch.ringing(t, ca.ID)
	if _, err := parch.line.Answer(ctx, ca.ID); err != nil {
		t.Fatalf("the archive at the listener cap: %v", err)
	}
	if err := alice.Do(ctx, "GET", "/v1/calls/"+ca.ID, nil, &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Participants {
		if p.User == "archive@state.example" && (p.State != "joined" || !p.Listening) {
			t.Errorf("the archive in the call: %+v", p)
		}
	}
}
