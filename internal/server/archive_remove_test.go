package server_test

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/mls"
)

// A member may not remove the organisation's archive device from a
// conversation that requires it, by commit or by proposal, nor turn the
// requirement off; it may remove anyone else, remove the archive device
// where it is not required, and commit the server's removal of an archive
// device that was revoked. The commits are made with the mls package
// directly, so that the server's check is what is tested, whatever the
// client checks first.
func TestArchiveRemoval(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			newMember(t, e, admin, "bob")
			archive := newMember(t, e, admin, "archive", "archive")
			const bob, arch = "bob@state.example", "archive@state.example"

			required := newRawConv(t, alice, conversation.Classification{ArchiveRequired: true})
			required.add(bob, arch)
			lapsing := newRawConv(t, alice, conversation.Classification{ArchiveRequired: true})
			lapsing.add(arch)
			optional := newRawConv(t, alice, conversation.Classification{})
			optional.add(arch)

			// Removing the archive device: refused, and nothing changes.
			before := required.server()
			err := required.commit(mls.CommitOptions{Removes: []mls.LeafIndex{required.leafOf(arch)}})
			wantArchiveRefused(t, "a commit removing the archive", err)
			if diff := cmp.Diff(before, required.server()); diff != "" {
				t.Errorf("the refused commit changed the conversation (-before +after):\n%s", diff)
			}

			// Turning the requirement off is refused too.
			off := slices.Clone(required.g.GroupContext().Extensions)
			for i := range off {
				if off[i].Type == conversation.ExtClassification {
					off[i].Data = conversation.Classification{}.Marshal()
				}
			}
			err = required.commit(mls.CommitOptions{GroupContextExtensions: off})
			if !apierr.Is(err, apierr.MLSInvalid) || !strings.Contains(err.Error(), "classification") {
				t.Errorf("a commit turning the archive requirement off: %v", err)
			}
			if diff := cmp.Diff(before, required.server()); diff != "" {
				t.Errorf("the refused commit changed the conversation (-before +after):\n%s", diff)
			}

			// An ordinary member may be removed.
			if err := required.commit(mls.CommitOptions{Removes: []mls.LeafIndex{required.leafOf(bob)}}); err != nil {
				t.Fatalf("removing bob: %v", err)
			}
			if got := required.users(); !slices.Equal(got, []string{"alice", "archive"}) {
				t.Errorf("members after removing bob: %v", got)
			}

			// A Remove proposal of the archive device is refused at once:
			// it would otherwise hold up the conversation.
			p, err := required.g.ProposeRemove(required.leafOf(arch))
			if err != nil {
				t.Fatal(err)
			}
			_, err = required.post(p.Marshal(), nil)
			wantArchiveRefused(t, "a proposal removing the archive", err)

			// Where the archive is not required, it may be removed.
			if err := optional.commit(mls.CommitOptions{Removes: []mls.LeafIndex{optional.leafOf(arch)}}); err != nil {
				t.Fatalf("removing the archive where it is not required: %v", err)
			}
			if got := optional.users(); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("members after removing the archive: %v", got)
			}

			// A revoked archive device goes, on the server's proposal.
			if err := admin.Do(ctx, "POST", "/v1/devices/"+archive.Profile().Device+"/revoke", api.RevokeRequest{Reason: "lost"}, nil); err != nil {
				t.Fatal(err)
			}
			if n := lapsing.catchUp(); n != 1 {
				t.Fatalf("%d proposals of the server, want 1", n)
			}
			if err := lapsing.commit(mls.CommitOptions{IncludePending: true}); err != nil {
				t.Fatalf("committing the removal of the revoked archive device: %v", err)
			}
			if got := lapsing.users(); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("members after the revoked archive device's removal: %v", got)
			}
		})
	}
}

func wantArchiveRefused(t *testing.T, what string, err error) {
	t.Helper()
	if !apierr.Is(err, apierr.MLSInvalid) || !strings.Contains(err.Error(), "the archive member cannot be removed from a conversation that requires it") {
		t.Errorf("%s: %v", what, err)
	} else if apierr.From(err).Hint == "" {
		t.Errorf("%s: no hint", what)
	}
}

// rawConv is a conversation one member's device runs with the mls package
// directly, below the client and its own checks.
type rawConv struct {
	t   *testing.T
	m   *member
	g   *mls.Group
	id  string
	seq int64 // the last message handled
}

// newRawConv creates a conversation classified class, with m's device key
// and credential.
func newRawConv(t *testing.T, m *member, class conversation.Classification) *rawConv {
	t.Helper()
	g := rawGroup(t, m, []byte(rand.Text()), class)
	var v api.Conversation
	if err := m.Do(t.Context(), "POST", "/v1/conversations", api.ConversationCreate{GroupInfo: groupInfoOf(t, g)}, &v); err != nil {
		t.Fatalf("create a conversation: %v", err)
	}
	return &rawConv{t: t, m: m, g: g, id: v.ID}
}

// add commits adding every device of users.
func (r *rawConv) add(users ...string) {
	r.t.Helper()
	var kps []*mls.KeyPackage
	for _, u := range users {
		claimed, err := r.m.ClaimKeyPackages(r.t.Context(), u, client.DefaultSuite)
		if err != nil {
			r.t.Fatalf("claim key packages of %s: %v", u, err)
		}
		for _, c := range claimed {
			msg, err := mls.UnmarshalMLSMessage(c.KeyPackage)
			if err != nil || msg.KeyPackage == nil {
				r.t.Fatalf("key package of %s: %v", c.Device, err)
			}
			kps = append(kps, msg.KeyPackage)
		}
	}
	if err := r.commit(mls.CommitOptions{Adds: kps}); err != nil {
		r.t.Fatalf("add %s: %v", strings.Join(users, ", "), err)
	}
}

// commit makes a commit and posts it; the group moves to the new epoch if
// the server accepts it and stays where it was if not.
func (r *rawConv) commit(o mls.CommitOptions) error {
	r.t.Helper()
	res, err := r.g.Commit(nil, o)
	if err != nil {
		r.t.Fatalf("commit: %v", err)
	}
	var welcome []byte
	if res.Welcome != nil {
		welcome = res.Welcome.Marshal()
	}
	if _, err := r.post(res.Commit.Marshal(), welcome); err != nil {
		if err := r.g.DiscardPending(); err != nil {
			r.t.Fatal(err)
		}
		return err
	}
	if err := r.g.MergePending(); err != nil {
		r.t.Fatal(err)
	}
	return nil
}

func (r *rawConv) post(msg, welcome []byte) (api.ConversationPosted, error) {
	var out api.ConversationPosted
	err := r.m.Do(r.t.Context(), "POST", "/v1/conversations/"+r.id+"/messages", api.ConversationPost{Message: msg, Welcome: welcome}, &out)
	if err == nil {
		r.seq = out.Seq
	}
	return out, err
}

// catchUp processes the server's proposals since the last message handled
// and returns how many there were.
func (r *rawConv) catchUp() int {
	r.t.Helper()
	var ms []api.ConversationMessage
	if err := r.m.Do(r.t.Context(), "GET", "/v1/conversations/"+r.id+"/messages?after="+itoa(r.seq), nil, &ms); err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		r.seq = m.Seq
		if m.Kind != int(mls.ContentProposal) || m.Sender != "" {
			r.t.Fatalf("message %d: kind %d from %q, want a proposal of the server", m.Seq, m.Kind, m.Sender)
		}
		msg, err := mls.UnmarshalMLSMessage(m.Message)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.g.Process(msg); err != nil {
			r.t.Fatalf("process message %d: %v", m.Seq, err)
		}
		n++
	}
	return n
}

// server returns the conversation as the server shows it.
func (r *rawConv) server() api.Conversation {
	r.t.Helper()
	var v api.Conversation
	if err := r.m.Do(r.t.Context(), "GET", "/v1/conversations/"+r.id, nil, &v); err != nil {
		r.t.Fatal(err)
	}
	return v
}

// users returns the names of the conversation's members, as the server
// has them, sorted.
func (r *rawConv) users() []string {
	r.t.Helper()
	var out []string
	for _, m := range r.server().Members {
		out = append(out, strings.TrimSuffix(m.User, "@state.example"))
	}
	slices.Sort(out)
	return out
}

// leafOf returns the leaf of user's only device in the conversation.
func (r *rawConv) leafOf(user string) mls.LeafIndex {
	r.t.Helper()
	for _, m := range r.server().Members {
		if m.User == user {
			return mls.LeafIndex(m.Leaf)
		}
	}
	r.t.Fatalf("%s is not in the conversation", user)
	return 0
}
