package server_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/identity"
)

// member is one test user's device, with the updates it has seen.
type member struct {
	*client.Client
	name string
	mu   sync.Mutex
	ups  []client.Update
}

func (m *member) record(u client.Update) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ups = append(m.ups, u)
}

// problems returns the problems m was told of.
func (m *member) problems() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.ups {
		if u.Kind == client.UpdateProblem {
			out = append(out, u.Err.Error())
		}
	}
	return out
}

// newMember adds a user with roles through admin and enrols their device.
func newMember(t *testing.T, e *env, admin *client.Client, name string, roles ...string) *member {
	t.Helper()
	c, _ := e.enroll(t, addUser(t, admin, name, roles...), name)
	m := &member{Client: c, name: name}
	c.OnUpdate(m.record)
	if err := c.EnsureKeyPackages(t.Context(), client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	return m
}

func sync1(t *testing.T, ms ...*member) {
	t.Helper()
	for _, m := range ms {
		if err := m.Sync(t.Context()); err != nil {
			t.Fatalf("%s sync: %v", m.name, err)
		}
	}
}

// texts returns the text messages of a conversation as "user: text".
func texts(t *testing.T, m *member, id string) []string {
	t.Helper()
	ms, err := m.Messages(id)
	if err != nil {
		t.Fatalf("%s messages: %v", m.name, err)
	}
	var out []string
	for _, x := range ms {
		if x.Kind == "text" {
			out = append(out, strings.TrimSuffix(x.User, "@state.example")+": "+x.Text)
		}
	}
	return out
}

func text(s string) conversation.Content {
	return conversation.Content{Kind: conversation.KindText, Text: s}
}

func send(t *testing.T, m *member, id, s string) {
	t.Helper()
	if _, err := m.Send(t.Context(), id, text(s)); err != nil {
		t.Fatalf("%s send %q: %v", m.name, s, err)
	}
}

func memberNames(info client.ConversationInfo) []string {
	var out []string
	for _, m := range info.Members {
		out = append(out, strings.TrimSuffix(m.User, "@state.example"))
	}
	slices.Sort(out)
	return out
}

func TestConversationMessaging(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			carol := newMember(t, e, admin, "carol")

			info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "Summit logistics", Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			if got := memberNames(info); !slices.Equal(got, []string{"alice", "bob"}) {
				t.Fatalf("members %v", got)
			}
			sync1(t, bob)
			if got := bob.Conversation(id); got.Title != "Summit logistics" || got.Epoch != info.Epoch || !slices.Equal(memberNames(got), []string{"alice", "bob"}) {
				t.Fatalf("bob's view: %+v", got)
			}
			send(t, bob, id, "arriving Tuesday")
			send(t, alice, id, "good")
			sync1(t, alice, bob)
			want := []string{"bob: arriving Tuesday", "alice: good"}
			for _, m := range []*member{alice, bob} {
				if got := texts(t, m, id); !slices.Equal(got, want) {
					t.Errorf("%s's history %q, want %q", m.name, got, want)
				}
			}

			// Carol joins, sees what follows and not what came before.
			if _, err := bob.AddMembers(ctx, id, "carol@state.example"); err != nil {
				t.Fatal(err)
			}
			send(t, carol0(t, carol, id), id, "hello all")
			sync1(t, alice, bob)
			if got := texts(t, alice, id); !slices.Equal(got, append(want, "carol: hello all")) {
				t.Errorf("alice after carol joined: %q", got)
			}
			if got := texts(t, carol, id); !slices.Equal(got, []string{"carol: hello all"}) {
				t.Errorf("carol's history %q", got)
			}
			if got := carol.Conversation(id).Title; got != "Summit logistics" {
				t.Errorf("carol's title %q", got)
			}

			// Racing commits: both succeed, one after the other.
			epoch := alice.Conversation(id).Epoch
			var wg sync.WaitGroup
			for _, m := range []*member{alice, bob} {
				wg.Go(func() {
					if err := m.UpdateLeaf(ctx, id); err != nil {
						t.Errorf("%s update: %v", m.name, err)
					}
				})
			}
			wg.Wait()
			sync1(t, alice, bob, carol)
			for _, m := range []*member{alice, bob, carol} {
				if got := m.Conversation(id).Epoch; got != epoch+2 {
					t.Errorf("%s at epoch %d, want %d", m.name, got, epoch+2)
				}
			}

			// Removal: carol can no longer send, and learns it.
			if _, err := alice.RemoveMembers(ctx, id, "carol@state.example"); err != nil {
				t.Fatal(err)
			}
			sync1(t, carol, bob)
			if !carol.Conversation(id).Removed {
				t.Error("carol does not know she was removed")
			}
			if _, err := carol.Send(ctx, id, text("still here?")); !errors.Is(err, client.ErrRemoved) {
				t.Errorf("carol sends after removal: %v", err)
			}
			send(t, bob, id, "carol is gone")
			sync1(t, alice)
			if got := texts(t, alice, id); got[len(got)-1] != "bob: carol is gone" {
				t.Errorf("alice's last message %q", got[len(got)-1])
			}
			for _, m := range []*member{alice, bob, carol} {
				if p := m.problems(); len(p) > 0 {
					t.Errorf("%s saw problems: %q", m.name, p)
				}
			}
		})
	}
}

// carol0 syncs a member who was just added and checks it joined.
func carol0(t *testing.T, m *member, id string) *member {
	t.Helper()
	sync1(t, m)
	if m.Conversation(id).Epoch == 0 {
		t.Fatalf("%s did not join %s", m.name, id)
	}
	return m
}

// setClearance raises a user's clearance, which takes two admins.
func setClearance(t *testing.T, admin, admin2 *client.Client, user, level string, comps ...string) {
	t.Helper()
	req := api.ClearanceRequest{Clearance: level, Compartments: append([]string{}, comps...)}
	var cr api.ClearanceResponse
	for _, a := range []*client.Client{admin, admin2} {
		if err := a.Do(t.Context(), "PUT", "/v1/users/"+user+"@state.example/clearance", req, &cr); err != nil {
			t.Fatalf("clearance of %s: %v", user, err)
		}
		if cr.Applied {
			return
		}
	}
	t.Fatalf("clearance of %s not applied", user)
}

// misbehaving reopens m's profile as a device that adds members without
// checking them.
func misbehaving(t *testing.T, e *env, m *member) *member {
	t.Helper()
	c, err := client.Open(m.Dir(), client.Options{Now: e.clock.Now, Misbehave: client.Misbehaviour{SkipLeafChecks: true}})
	if err != nil {
		t.Fatal(err)
	}
	r := &member{Client: c, name: m.name + " (misbehaving)"}
	c.OnUpdate(r.record)
	return r
}

// The 2025 group chat: a staff member adds an outsider without clearance to
// a SECRET conversation. The server refuses; a server made to accept it is
// caught by every honest member, who stop following the conversation
// rather than share its keys with the outsider.
func TestUnclearedOutsiderRefused(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			admin2, _ := e.enroll(t, addUser(t, admin, "admin2", "admin"), "admin2")
			pm := newMember(t, e, admin, "pm")
			staff := newMember(t, e, admin, "staff")
			newMember(t, e, admin, "journalist")
			for _, u := range []string{"pm", "staff"} {
				setClearance(t, admin, admin2, u, "secret")
			}
			sync1(t, pm, staff) // new credentials, and key packages that carry them
			info, err := pm.CreateConversation(ctx, client.CreateOptions{Title: "strike timing",
				Classification: conversation.Classification{Level: identity.Secret}, Members: []string{"staff@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			sync1(t, staff)
			// An honest client refuses before anyone sees the commit.
			if _, err := staff.AddMembers(ctx, id, "journalist@state.example"); !errors.Is(err, conversation.ErrNotAllowed) {
				t.Fatalf("honest client adds the journalist: %v", err)
			}
			// A client that skips its checks meets the server's.
			rogue := misbehaving(t, e, staff)
			if _, err := rogue.AddMembers(ctx, id, "journalist@state.example"); !apierr.Is(err, apierr.ClearanceInsufficient) {
				t.Fatalf("server took the journalist: %v, want clearance_insufficient", err)
			}
			if got := memberNames(pm.Conversation(id)); !slices.Equal(got, []string{"pm", "staff"}) {
				t.Fatalf("members after the refusal: %v", got)
			}
			send(t, pm, id, "window opens at 0400")

			// Now the server misbehaves too.
			e.cfg.Misbehave.SkipMemberChecks = true
			e.restart(t)
			if _, err := rogue.AddMembers(ctx, id, "journalist@state.example"); err != nil {
				t.Fatalf("misbehaving server refused: %v", err)
			}
			sync1(t, pm)
			got := pm.Conversation(id)
			if got.Broken == "" || !strings.Contains(got.Broken, "journalist") {
				t.Fatalf("pm kept following the conversation: %+v", got)
			}
			if p := pm.problems(); len(p) == 0 || !strings.Contains(p[len(p)-1], "cleared") {
				t.Errorf("pm was not told why: %q", p)
			}
			if _, err := pm.Send(ctx, id, text("anyone there?")); !errors.Is(err, client.ErrConversationBroken) {
				t.Errorf("pm sends into the compromised conversation: %v", err)
			}
		})
	}
}

// Naming oneself, or a member twice, when creating a conversation adds
// each device once.
func TestCreateConversationNamesDeduplicated(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	newMember(t, e, admin, "bob")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"alice@state.example", "bob@state.example", "bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := memberNames(info); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("members %v", got)
	}
}
