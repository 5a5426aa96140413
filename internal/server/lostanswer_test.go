package server_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hotline/internal/client"
)

// cutter is a TCP proxy to the server that, while cut, throws away what
// the server sends: requests arrive and are acted on, answers never come.
// Armed, it cuts once the device sends something large (a commit with
// its path; a request for messages is a few hundred bytes).
type cutter struct {
	ln    net.Listener
	cut   atomic.Bool
	armed atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := s.Write(buf[:n]); werr != nil {
							break
						}
						if n > 2000 && p.armed.Load() {
							p.cut.Store(true)
						}
					}
					if err != nil {
						break
					}
				}
				s.Close()
			})
			p.wg.Go(func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && !p.cut.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			})
		}
	})
	return p
}

// A commit the server took but whose answer was lost (the device could
// not know) stays pending; the device's next commit first catches up,
// finds its own commit there and applies it, and the conversation goes on
// for everyone. Discarding it instead would make the device refuse its own
// commit when it came back, and lose the conversation.
func TestCommitAnswerLost(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob := newMember(t, e, admin, "bob")
	proxy := newCutter(t, e.addr)
	c, _, err := client.Enroll(ctx, client.EnrollOptions{Server: "https://" + proxy.ln.Addr().String(),
		Invite: addUser(t, admin, "alice"), ProfileDir: filepath.Join(t.TempDir(), "alice"), Fingerprint: e.fp, Label: "alice", Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	alice := &member{Client: c, name: "alice"}
	c.OnUpdate(alice.record)
	if err := c.EnsureKeyPackages(ctx, client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	conv, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, bob)
	before := conv.Epoch

	proxy.armed.Store(true)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = alice.UpdateLeaf(short, conv.ID)
	cancel()
	proxy.armed.Store(false)
	if !proxy.cut.Load() {
		t.Fatal("the proxy never saw the commit go by")
	}
	proxy.cut.Store(false)
	if err == nil {
		t.Fatal("the commit succeeded with its answer cut off")
	}
	t.Logf("the commit's post: %v", err)
	sync1(t, bob)
	if got := bob.Conversation(conv.ID).Epoch; got != before+1 {
		t.Fatalf("bob's epoch %d: the server did not take the commit (want %d)", got, before+1)
	}

	if err := alice.UpdateLeaf(ctx, conv.ID); err != nil {
		t.Fatalf("the next commit: %v", err)
	}
	sync1(t, bob)
	a, b := alice.Conversation(conv.ID), bob.Conversation(conv.ID)
	if a.Broken != "" || b.Broken != "" || a.Epoch != before+2 || b.Epoch != before+2 {
		t.Fatalf("after: alice epoch %d broken %q, bob epoch %d broken %q; want epoch %d", a.Epoch, a.Broken, b.Epoch, b.Broken, before+2)
	}
	if _, err := alice.Send(ctx, conv.ID, text("still here")); err != nil {
		t.Fatal(err)
	}
	sync1(t, bob)
	if got := texts(t, bob, conv.ID); !slices.Contains(got, "alice: still here") {
		t.Errorf("bob's messages: %q", got)
	}
}
