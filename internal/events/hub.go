// Package events connects the durable per-device event queues in the store
// to live connections.
//
// Durable events (a device awaiting approval, a revocation) are written to
// the store with Tx.PushEvent inside the transaction that causes them; after
// commit the writer calls Hub.Wake for the devices concerned, and each of
// their connections reads its queue from where it left off. The store is the
// queue, so a slow or disconnected device costs the server no memory and
// loses nothing: it resumes from its last acknowledged sequence number.
//
// Conversation messages are durable in the store too, and a connection can
// always read them from there; Push hands a just-accepted message to the
// live connections of its recipients as well, so that in the common case
// (the connection is up to date) it goes out without a read. A connection
// holds at most MaxPushed pushed messages: past that it drops them and
// reads the store instead.
//
// Notices are ephemeral and coalescing: a new checkpoint is announced to
// every connection, and a connection that has not yet sent the previous
// notice of the same kind sends only the newest. Memory per connection is
// bounded by the number of notice kinds.
//
// The Hub is in-process. A cluster (several nodes on one PostgreSQL) relays
// Wake, Close and Broadcast between nodes over the bus; the Hub's API is
// what the bus calls.
package events

import (
	"sync"
	"time"
)

// Notice is an ephemeral announcement. Kind names the coalescing slot.
type Notice struct {
	Kind string
	Data []byte
}

// Message is a conversation message pushed to its recipients' connections.
// Data is what the store holds (ciphertext or a signed handshake).
type Message struct {
	Conversation string // the group ID, unpadded base64url
	Seq          int64
	Epoch        uint64
	Kind         int
	Sender       string
	Data         []byte
	Time         time.Time
	Chain        []byte // the conversation's message chain after it
	// Wire is the message as connections send it, encoded once by the
	// hub's encoder for all its recipients (nil without one).
	Wire []byte
}

// MaxPushed bounds the pushed messages a connection holds unsent.
const MaxPushed = 1024

// Sub is one live connection's subscription.
type Sub struct {
	Device string
	// Wake receives when the device's durable queue may have grown or a
	// message was pushed.
	Wake chan struct{}
	// Done is closed when the hub closes the subscription (device revoked or
	// hub shutting down); Reason says why.
	Done chan struct{}

	hub     *Hub
	mu      sync.Mutex // guards the fields below
	notices map[string]Notice
	reason  string
	stale   bool // the store may hold what was not pushed: read it
	pushed  []Message
}

// Take returns the messages pushed since the last Take, and whether the
// connection must read the store (a Wake, or pushes dropped for want of
// room).
func (s *Sub) Take() (pushed []Message, stale bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pushed, stale = s.pushed, s.stale
	s.pushed, s.stale = nil, false
	return pushed, stale
}

// Reason returns why Done was closed.
func (s *Sub) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// TakeNotices returns and clears the pending notices.
func (s *Sub) TakeNotices() []Notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Notice, 0, len(s.notices))
	for _, n := range s.notices {
		out = append(out, n)
	}
	clear(s.notices)
	return out
}

func (s *Sub) wake() {
	select {
	case s.Wake <- struct{}{}:
	default:
	}
}

// Hub tracks live subscriptions by device.
type Hub struct {
	encode func(Message) []byte
	mu     sync.Mutex // guards subs and closed
	subs   map[string]map[*Sub]struct{}
	closed bool
}

// NewHub returns an empty hub. encode, if not nil, gives a pushed message
// its Wire form, once for all the devices it goes to.
func NewHub(encode func(Message) []byte) *Hub {
	return &Hub{encode: encode, subs: map[string]map[*Sub]struct{}{}}
}

// Subscribe registers a connection of device. It returns nil if the hub is
// shut down.
func (h *Hub) Subscribe(device string) *Sub {
	s := &Sub{Device: device, Wake: make(chan struct{}, 1), Done: make(chan struct{}), hub: h, notices: map[string]Notice{}, stale: true}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	if h.subs[device] == nil {
		h.subs[device] = map[*Sub]struct{}{}
	}
	h.subs[device][s] = struct{}{}
	return s
}

// Unsubscribe removes s; it is safe to call more than once.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[s.Device]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, s.Device)
		}
	}
}

// Wake tells the devices' connections to read their queues.
func (h *Hub) Wake(devices ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range devices {
		for s := range h.subs[d] {
			s.mu.Lock()
			s.stale = true
			s.mu.Unlock()
			s.wake()
		}
	}
}

// Push hands m to the live connections of devices (after it was stored).
func (h *Hub) Push(m Message, devices ...string) {
	if h.encode != nil && m.Wire == nil && h.anyConnected(devices) {
		m.Wire = h.encode(m)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range devices {
		for s := range h.subs[d] {
			s.mu.Lock()
			if len(s.pushed) < MaxPushed {
				s.pushed = append(s.pushed, m)
			} else {
				s.stale = true
			}
			s.mu.Unlock()
			s.wake()
		}
	}
}

// Online reports whether device has an event stream open here.
func (h *Hub) Online(device string) bool { return h.anyConnected([]string{device}) }

func (h *Hub) anyConnected(devices []string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range devices {
		if len(h.subs[d]) > 0 {
			return true
		}
	}
	return false
}

// Close ends every connection of device, for example on revocation.
func (h *Hub) Close(device, reason string) {
	h.mu.Lock()
	subs := h.subs[device]
	delete(h.subs, device)
	h.mu.Unlock()
	for s := range subs {
		s.close(reason)
	}
}

func (s *Sub) close(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.Done:
	default:
		s.reason = reason
		close(s.Done)
	}
}

// Broadcast queues a notice on every connection, replacing an unsent notice
// of the same kind.
func (h *Hub) Broadcast(n Notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for s := range m {
			s.mu.Lock()
			s.notices[n.Kind] = n
			s.mu.Unlock()
			s.wake()
		}
	}
}

// Notify gives a notice to every connection of device: the latest of each
// kind replaces an unsent one.
func (h *Hub) Notify(device string, n Notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[device] {
		s.mu.Lock()
		s.notices[n.Kind] = n
		s.mu.Unlock()
		s.wake()
	}
}

// Count returns the number of live subscriptions.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}

// Shutdown closes every subscription and refuses new ones.
func (h *Hub) Shutdown(reason string) {
	h.mu.Lock()
	h.closed = true
	all := h.subs
	h.subs = map[string]map[*Sub]struct{}{}
	h.mu.Unlock()
	for _, m := range all {
		for s := range m {
			s.close(reason)
		}
	}
}
