package voice

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/sframe"

	"github.com/pion/rtp"
)

// Call is a call on a line: what the application sends is encrypted for
// the conversation's members, and what it hears is decrypted and
// attributed to its sender.
type Call struct {
	// ID is the call's ID, set before Place, Answer or Join returns the
	// call (read it from other goroutines only after that).
	ID   string
	Conv string

	line      *Line
	sf        *sframe.MLSContext
	stopWatch func()

	mu sync.Mutex
	// id is ID for the line's event handling, which runs concurrently
	// with Place; until it is known, events of the call's conversation
	// wait in early.
	id       string
	early    []callEvent
	track    *client.CallTracker
	onAudio  func(Frame)
	members  map[[2]uint64]client.Member // by epoch, leaf
	stats    Stats
	heard    chan struct{} // closed at the first decrypted frame
	ended    chan struct{}
	reason   string
	rotating bool
	quality  api.CallQuality
	stopped  bool
}

// callEvent is a call event held until the call's ID is known.
type callEvent struct {
	event string
	view  api.Call
}

// Frame is one decrypted audio frame: an Opus packet and who sent it.
type Frame struct {
	From      client.Member // from the sender's verified credential
	Epoch     uint64        // the MLS epoch whose key it was sent under
	Slot      int           // the receiving section it arrived on
	Sequence  uint16        // RTP sequence number, as forwarded
	Timestamp uint32        // RTP timestamp (48 kHz), as sent
	Opus      []byte
	Arrived   time.Time
}

// Stats count a call's frames.
type Stats struct {
	Sent          uint64
	Received      uint64 // decrypted
	Undecryptable uint64 // dropped: no key for their epoch, failed authentication or replayed
	Epochs        []uint64
	FirstAudio    time.Time // when the first frame was decrypted
	Rotations     int       // commits this device made for the call
}

func newCall(l *Line, conv string) (*Call, error) {
	ce, err := l.c.CallEpoch(conv)
	if err != nil {
		return nil, err
	}
	// A context ID of its own for each call of each device, so a device
	// that takes part again in the same epoch (after a restart) never
	// reuses a key with its counter back at 0.
	var b [2]byte
	rand.Read(b[:])
	sf, err := sframe.NewMLSContext(ce.Suite, sframe.MLSOptions{ContextID: uint64(binary.BigEndian.Uint16(b[:])), RetainEpochs: 2})
	if err != nil {
		return nil, err
	}
	c := &Call{Conv: conv, line: l, sf: sf, track: client.NewCallTracker(l.c.Profile().Device), members: map[[2]uint64]client.Member{},
		heard: make(chan struct{}), ended: make(chan struct{})}
	// Watch before keying, so an epoch the group moves to meanwhile
	// (another participant's rotation) is not missed.
	c.stopWatch = l.c.WatchEpochs(func(id string, epoch uint64) {
		if id == conv {
			c.newEpoch()
		}
	})
	if err := sf.AddEpoch(ce.MLSEpoch); err != nil && len(sf.Epochs()) == 0 {
		c.stopWatch()
		return nil, err
	} // else keyed, here or by the watcher at a later epoch
	return c, nil
}

// newEpoch starts sending under the conversation's current epoch.
func (c *Call) newEpoch() {
	ce, err := c.line.c.CallEpoch(c.Conv)
	if err != nil {
		c.line.log.Warn("call keys: conversation unusable", "call", c.callID(), "err", err)
		return
	}
	if err := c.sf.AddEpoch(ce.MLSEpoch); err != nil {
		return // an epoch already held, or older
	}
	c.line.log.Debug("call keys rotated", "call", c.callID(), "epoch", ce.Number)
}

// OnAudio sets the function each decrypted frame is given to, in arrival
// order per slot (nil: none). It must not block for long.
func (c *Call) OnAudio(fn func(Frame)) {
	c.mu.Lock()
	c.onAudio = fn
	c.mu.Unlock()
}

// Send encrypts one Opus packet of samples 48 kHz samples and sends it.
func (c *Call) Send(opus []byte, samples int) error {
	ct, err := c.sf.Encrypt(nil, opus)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrEnded
	}
	c.stats.Sent++
	c.mu.Unlock()
	err = c.line.send(ct, samples)
	if errors.Is(err, errNeedConnect) {
		return nil // lost while the line reconnects, as on any lossy path
	}
	return err
}

func (c *Call) received(slot int, pkt *rtp.Packet) {
	pt, sender, err := c.sf.Decrypt(nil, pkt.Payload)
	now := time.Now()
	c.mu.Lock()
	if err != nil {
		c.stats.Undecryptable++
		c.mu.Unlock()
		return
	}
	c.stats.Received++
	if !slices.Contains(c.stats.Epochs, sender.Epoch) {
		c.stats.Epochs = append(c.stats.Epochs, sender.Epoch)
	}
	if c.stats.FirstAudio.IsZero() {
		c.stats.FirstAudio = now
		close(c.heard)
	}
	key := [2]uint64{sender.Epoch, uint64(sender.Leaf)}
	m, known := c.members[key]
	fn := c.onAudio
	c.mu.Unlock()
	if !known {
		m, _ = c.line.c.MemberAt(c.Conv, sender.Leaf)
		c.mu.Lock()
		c.members[key] = m
		c.mu.Unlock()
	}
	if fn != nil {
		fn(Frame{From: m, Epoch: sender.Epoch, Slot: slot, Sequence: pkt.SequenceNumber, Timestamp: pkt.Timestamp, Opus: pt, Arrived: now})
	}
}

// Heard is closed when the first frame is decrypted.
func (c *Call) Heard() <-chan struct{} { return c.heard }

// Ended is closed when the call is over for this device.
func (c *Call) Ended() <-chan struct{} { return c.ended }

// Reason says why the call ended for this device ("" while it goes on):
// "preempted" if a call of higher precedence (a flash call) took this
// device's user out of it, otherwise the call's end ("hangup", …) or
// "dropped".
func (c *Call) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Preempted returns the users, each once, that a call of higher precedence
// (a flash call) took out of this call, as the server last described it:
// what the others on the line are warned of.
func (c *Call) Preempted() []string {
	var users []string
	for _, p := range c.View().Participants {
		if p.Preempted && !slices.Contains(users, p.User) {
			users = append(users, p.User)
		}
	}
	return users
}

// View returns the call as the server last described it.
func (c *Call) View() api.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.track.View()
}

// Stats returns the call's counters.
func (c *Call) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Epochs = slices.Clone(s.Epochs)
	return s
}

// Quality returns the media quality of the call's participants as the
// server last reported it (every few seconds; empty before the first).
func (c *Call) Quality() api.CallQuality {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.quality
	q.Participants = slices.Clone(q.Participants)
	return q
}

// Epochs returns the MLS epochs whose keys the call holds.
func (c *Call) Epochs() []uint64 {
	e := c.sf.Epochs()
	slices.Sort(e)
	return e
}

// Hangup leaves the call (or cancels it while it rings).
func (c *Call) Hangup(ctx context.Context) error {
	id := c.callID()
	var err error
	if id != "" {
		_, err = c.line.c.LeaveCall(ctx, id)
	}
	c.end("hangup")
	return err
}

// callID returns the call's ID, "" until it is known.
func (c *Call) callID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// event takes a call event from the line: one for this call, or, while
// the call is being placed and its ID is not yet known, one of its
// conversation, kept until started tells which call is this one.
func (c *Call) event(event string, v api.Call) {
	c.mu.Lock()
	switch {
	case c.id == "" && v.Conversation == c.Conv && len(c.early) < 64:
		c.early = append(c.early, callEvent{event, v})
		c.mu.Unlock()
		return
	case c.id != v.ID:
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.update(event, v)
}

// started records the call's ID and first view, then the events of the
// call that arrived before them.
func (c *Call) started(v api.Call) {
	c.mu.Lock()
	c.ID, c.id = v.ID, v.ID
	early := c.early
	c.early = nil
	c.mu.Unlock()
	c.update("", v)
	for _, e := range early {
		if e.view.ID == v.ID {
			c.update(e.event, e.view)
		}
	}
}

// update takes a new view of the call (client.CallTracker says what it
// means for this device): the call ends for this device when it is over,
// and the media keys rotate when someone left and this device is the one
// to commit.
func (c *Call) update(event string, v api.Call) {
	c.mu.Lock()
	over, reason, rotate := c.track.Take(event, v)
	c.mu.Unlock()
	switch {
	case over:
		c.end(reason)
	case rotate:
		go c.rotate()
	}
}

// rotate commits a fresh leaf to the conversation: a new epoch, so new
// media keys for everyone in it.
func (c *Call) rotate() {
	c.mu.Lock()
	if c.rotating || c.stopped {
		c.mu.Unlock()
		return
	}
	c.rotating = true
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.line.ctx, 30*time.Second)
	err := c.line.c.UpdateLeaf(ctx, c.Conv)
	cancel()
	c.mu.Lock()
	c.rotating = false
	if err == nil {
		c.stats.Rotations++
	}
	c.mu.Unlock()
	if err != nil {
		c.line.log.Warn("call keys: commit a fresh leaf", "call", c.callID(), "err", err)
	}
}

// end is the end of the call for this device.
func (c *Call) end(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.mu.Unlock()
	c.line.finish(c)
}

// stop releases the call's keys and watcher; it is idempotent.
func (c *Call) stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.stopWatch()
	close(c.ended)
	c.sf.DropEpochsBefore(^uint64(0))
}

// Participant is a device in a call as this device knows it: its state
// from the server, and who it is from the conversation's group, where its
// leaf's credential was verified against the organisation's issuer key and
// the transparency log.
type Participant struct {
	Device   string
	State    string        // ringing, joined, declined, left, missed, elsewhere
	Member   client.Member // from the verified credential (User empty if not a member)
	Verified bool          // the device is a member of the conversation's group
	// Preempted: taken out of the call for one of higher precedence.
	Preempted bool
}

// Participants returns the call's participants as the server last
// described them, each identified from the conversation's group state, and
// the conversation's classification as the group state holds it.
func (c *Call) Participants() (ps []Participant, level string, compartments []string) {
	v := c.View()
	info := c.line.c.Conversation(c.Conv)
	byDevice := map[string]client.Member{}
	for _, m := range info.Members {
		byDevice[m.Device] = m
	}
	for _, p := range v.Participants {
		m, ok := byDevice[p.Device]
		ps = append(ps, Participant{Device: p.Device, State: p.State, Member: m, Verified: ok && m.User == p.User, Preempted: p.Preempted})
	}
	return ps, info.Clearance, info.Compartments
}
