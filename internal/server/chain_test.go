package server_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/datadir"
	"hotline/internal/server"
	"hotline/internal/tlog"
)

// chainEntries returns the log's conversation.chain entries of a
// conversation, oldest first.
func chainEntries(t *testing.T, c *client.Client, id string) []tlog.Entry {
	t.Helper()
	var out []tlog.Entry
	for _, en := range logEntries(t, c) {
		if en.Type == tlog.TypeConversationChain && en.Conversation == id {
			out = append(out, en)
		}
	}
	return out
}

// delivered returns a conversation's messages after seq as the server
// delivers them to m.
func delivered(t *testing.T, m *member, id string, after int64) []api.ConversationMessage {
	t.Helper()
	var ms []api.ConversationMessage
	if err := m.Do(t.Context(), "GET", fmt.Sprintf("/v1/conversations/%s/messages?after=%d", id, after), nil, &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMessageChain: the server hash-chains each conversation's messages
// (conversation.ChainNext over the messages exactly as delivered), gives
// every delivered message the chain after it, and commits the head to the
// log when it moved: once per head, again after more messages.
func TestMessageChain(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			alice := newMember(t, e, admin, "alice")
			bob := newMember(t, e, admin, "bob")
			info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "Chained", Members: []string{"bob@state.example"}})
			if err != nil {
				t.Fatal(err)
			}
			id := info.ID
			gid, err := base64.RawURLEncoding.DecodeString(id)
			if err != nil {
				t.Fatal(err)
			}
			sync1(t, bob)
			send(t, bob, id, "one")
			send(t, alice, id, "two")
			send(t, bob, id, "three")
			sync1(t, alice, bob)

			// follow checks the messages after seq continue the chain, and
			// returns the chain after the last.
			follow := func(chain []byte, after int64) ([]byte, int64) {
				t.Helper()
				ms := delivered(t, alice, id, after)
				if len(ms) == 0 {
					t.Fatalf("no messages after #%d", after)
				}
				for _, m := range ms {
					if m.Seq != after+1 {
						t.Fatalf("message #%d after #%d: the server pruned messages this test needs", m.Seq, after)
					}
					chain, after = conversation.ChainNext(chain, m.Message), m.Seq
					if !bytes.Equal(m.Chain, chain) {
						t.Errorf("message #%d (kind %d) carries chain %x, want %x", m.Seq, m.Kind, m.Chain, chain)
					}
				}
				return chain, after
			}
			// committed checks the log's newest head of the conversation.
			committed := func(entries int, chain []byte, head int64) {
				t.Helper()
				es := chainEntries(t, admin, id)
				if len(es) != entries {
					t.Fatalf("%d conversation.chain entries, want %d: %+v", len(es), entries, es)
				}
				if en := es[len(es)-1]; int64(en.Count) != head || en.Chain != base64.StdEncoding.EncodeToString(chain) {
					t.Errorf("the log commits #%d %s, want #%d %x", en.Count, en.Chain, head, chain)
				}
			}

			chain, head := follow(conversation.ChainStart(gid), 0)
			if head < 4 { // the commit adding bob, and three messages
				t.Fatalf("head #%d", head)
			}
			if n, err := e.srv.CommitChains(ctx); err != nil || n != 1 {
				t.Fatalf("CommitChains: %d entries, %v; want 1", n, err)
			}
			committed(1, chain, head)
			if n, err := e.srv.CommitChains(ctx); err != nil || n != 0 {
				t.Errorf("CommitChains with nothing new: %d entries, %v", n, err)
			}

			// More messages, a handshake among them: a new head.
			if err := bob.UpdateLeaf(ctx, id); err != nil {
				t.Fatal(err)
			}
			sync1(t, alice)
			send(t, alice, id, "four")
			sync1(t, bob)
			chain, head = follow(chain, head)
			if n, err := e.srv.CommitChains(ctx); err != nil || n != 1 {
				t.Fatalf("CommitChains after more messages: %d entries, %v; want 1", n, err)
			}
			committed(2, chain, head)
			for _, m := range []*member{alice, bob} {
				if p := m.problems(); len(p) != 0 {
					t.Errorf("%s was told of problems: %q", m.name, p)
				}
			}
		})
	}
}

// TestMessageChainInterval: the server commits heads on its own, every
// ChainInterval.
func TestMessageChainInterval(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.ChainInterval = 20 * time.Millisecond })
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "Alone"})
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice, info.ID, "hello")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if es := chainEntries(t, admin, info.ID); len(es) > 0 {
			if es[0].Count != 1 {
				t.Errorf("the log commits #%d, want #1", es[0].Count)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no conversation.chain entry within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A device computes each link of the chain itself: a server that delivers
// a chain other than the one over the messages it sent (here the chain of
// one message rewritten in its database, as a compromised server might)
// is reported, and the device keeps its own computed chain, which is what
// the archive checks against the log.
func TestChainMismatchReported(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	info, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice, info.ID, "first")
	sync1(t, bob)
	if p := bob.problems(); len(p) != 0 {
		t.Fatalf("problems before any tampering: %v", p)
	}
	last, err := alice.Send(ctx, info.ID, text("second"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, datadir.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gid, _ := base64.RawURLEncoding.DecodeString(info.ID)
	res, err := db.ExecContext(ctx, `UPDATE conversation_messages SET chain = randomblob(32) WHERE group_id = ? AND seq = ?`, gid, last.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered with %d rows", n)
	}
	sync1(t, bob)
	p := bob.problems()
	if len(p) != 1 || !strings.Contains(p[0], client.ErrChainMismatch.Error()) || !strings.Contains(p[0], fmt.Sprintf("message %d", last.Seq)) {
		t.Fatalf("problems: %v", p)
	}
	if got := texts(t, bob, info.ID); len(got) != 2 {
		t.Errorf("bob read %q", got)
	}
}
