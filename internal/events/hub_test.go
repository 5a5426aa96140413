package events

import (
	"testing"
)

func TestHub(t *testing.T) {
	h := NewHub(nil)
	a1, a2, b := h.Subscribe("a"), h.Subscribe("a"), h.Subscribe("b")
	if h.Count() != 3 {
		t.Fatalf("Count = %d", h.Count())
	}
	h.Wake("a")
	for _, s := range []*Sub{a1, a2} {
		select {
		case <-s.Wake:
		default:
			t.Errorf("%s not woken", s.Device)
		}
	}
	select {
	case <-b.Wake:
		t.Error("b woken by a's wake")
	default:
	}
	// Notices coalesce per kind: only the newest checkpoint is kept.
	h.Broadcast(Notice{Kind: "checkpoint", Data: []byte("1")})
	h.Broadcast(Notice{Kind: "checkpoint", Data: []byte("2")})
	ns := b.TakeNotices()
	if len(ns) != 1 || string(ns[0].Data) != "2" {
		t.Errorf("notices = %+v, want only the newest", ns)
	}
	if len(b.TakeNotices()) != 0 {
		t.Error("TakeNotices did not clear")
	}
	h.Close("a", "device revoked")
	for _, s := range []*Sub{a1, a2} {
		select {
		case <-s.Done:
			if s.Reason() != "device revoked" {
				t.Errorf("reason %q", s.Reason())
			}
		default:
			t.Errorf("a's subscription still open after Close")
		}
	}
	h.Close("a", "again") // closing twice is harmless
	h.Unsubscribe(a1)
	h.Shutdown("bye")
	select {
	case <-b.Done:
	default:
		t.Error("Shutdown left b open")
	}
	if h.Subscribe("c") != nil || h.Count() != 0 {
		t.Error("Subscribe after Shutdown")
	}
}

// Pushed messages reach only the recipients' connections, in order; past
// MaxPushed a connection drops them and is told to read the store.
func TestHubPush(t *testing.T) {
	h := NewHub(nil)
	a, b := h.Subscribe("a"), h.Subscribe("b")
	if _, stale := a.Take(); !stale {
		t.Error("a new subscription does not start by reading the store")
	}
	b.Take()
	for i := range 3 {
		h.Push(Message{Conversation: "c", Seq: int64(i + 1)}, "a")
	}
	select {
	case <-a.Wake:
	default:
		t.Error("a push does not wake")
	}
	got, stale := a.Take()
	if stale || len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 3 {
		t.Errorf("Take = %+v %v", got, stale)
	}
	if got, stale := b.Take(); len(got) != 0 || stale {
		t.Errorf("b got %+v %v", got, stale)
	}
	for i := range MaxPushed + 1 {
		h.Push(Message{Conversation: "c", Seq: int64(i)}, "b")
	}
	if got, stale := b.Take(); len(got) != MaxPushed || !stale {
		t.Errorf("overflow: %d pushed, stale %v", len(got), stale)
	}
	h.Wake("a")
	if _, stale := a.Take(); !stale {
		t.Error("Wake does not make the connection read the store")
	}
}
