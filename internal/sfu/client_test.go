package sfu

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A client is a device in a test: a real pion PeerConnection on loopback
// with the warm line's sections, which sends recognisable packets on its
// microphone and records what it receives on each slot.
type client struct {
	tb  testing.TB
	id  string
	pc  *webrtc.PeerConnection
	mic *webrtc.TrackLocalStaticRTP
	cut *cutConn // nil unless the client was made with cuttable

	seqBase uint16 // sequence number of the first packet

	sent    atomic.Uint32 // packets sent
	stop    chan struct{}
	stopped chan struct{}

	mu    sync.Mutex
	slots map[string]*received // by mid
}

// received is what a client received on one slot.
type received struct {
	from    map[string][]uint32 // packet counters, by sender
	bad     int                 // packets whose payload was not intact
	foreign int                 // packets not from a test sender at all
}

type clientOpts struct {
	sendrecv  bool   // declare the microphone sendrecv rather than sendonly
	micLast   bool   // put the slots before the microphone in the offer
	tcp       bool   // TCP candidates only
	cuttable  bool   // traffic through a cutConn the test can cut
	slots     int    // number of receiving sections; default Slots
	seqBase   uint16 // sequence number of the first packet; default 1000
	noConnect bool
}

// newClient makes a client; it is closed when the test ends.
func newClient(tb testing.TB, id string, o clientOpts) *client {
	tb.Helper()
	c := &client{tb: tb, id: id, slots: make(map[string]*received), stop: make(chan struct{}), stopped: make(chan struct{}), seqBase: 1000}
	if o.seqBase != 0 {
		c.seqBase = o.seqBase
	}
	close(c.stopped)

	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if o.tcp {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if o.cuttable {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		c.cut = &cutConn{PacketConn: conn}
		mux := webrtc.NewICEUDPMux(nil, c.cut)
		tb.Cleanup(func() { mux.Close() })
		se.SetICEUDPMux(mux)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		tb.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		tb.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		tb.Fatal(err)
	}
	c.pc = pc
	tb.Cleanup(c.close)
	pc.OnTrack(c.onTrack)

	c.mic, err = webrtc.NewTrackLocalStaticRTP(opus.RTPCodecCapability, "mic", id)
	if err != nil {
		tb.Fatal(err)
	}
	micDir := webrtc.RTPTransceiverDirectionSendonly
	if o.sendrecv {
		micDir = webrtc.RTPTransceiverDirectionSendrecv
	}
	addMic := func() {
		if _, err := pc.AddTransceiverFromTrack(c.mic, webrtc.RTPTransceiverInit{Direction: micDir}); err != nil {
			tb.Fatal(err)
		}
	}
	if !o.micLast {
		addMic()
	}
	n := Slots
	if o.slots != 0 {
		n = o.slots
	}
	for range n {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			tb.Fatal(err)
		}
	}
	if o.micLast {
		addMic()
	}
	return c
}

// offer makes an offer with complete candidates.
func (c *client) offer(restart bool) string {
	c.tb.Helper()
	offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		c.tb.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		c.tb.Fatal(err)
	}
	<-gathered
	return c.pc.LocalDescription().SDP
}

// answerer is an SFU: in this process, or in a child process for
// benchmarks.
type answerer interface {
	Connect(ctx context.Context, device, offerSDP string) (string, error)
}

// connect connects the client to the SFU and waits for the connection.
func (c *client) connect(ctx context.Context, s answerer) {
	c.tb.Helper()
	c.negotiate(ctx, s, false)
	waitFor(ctx, c.tb, c.id+" connected", func() bool {
		return c.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
}

// negotiate makes an offer, has the SFU answer it and applies the answer.
func (c *client) negotiate(ctx context.Context, s answerer, restart bool) (answer string) {
	c.tb.Helper()
	answer, err := s.Connect(ctx, c.id, c.offer(restart))
	if err != nil {
		c.tb.Fatalf("connect %s: %v", c.id, err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		c.tb.Fatal(err)
	}
	return answer
}

// mids returns the mids of the client's receiving sections, in order.
func (c *client) mids() []string {
	var mids []string
	for _, t := range c.pc.GetTransceivers() {
		if t.Direction() == webrtc.RTPTransceiverDirectionRecvonly {
			mids = append(mids, t.Mid())
		}
	}
	return mids
}

// payload returns the payload of a sender's packet n: the sender's ID,
// the counter, and filler that depends on both, 80 to 160 bytes in all.
// It stands for an SFrame-encrypted Opus frame: bytes the SFU must not
// touch.
func payload(sender string, n uint32) []byte {
	size := 80 + int(n%81)
	b := make([]byte, 0, size)
	b = append(b, byte(len(sender)))
	b = append(b, sender...)
	b = binary.BigEndian.AppendUint32(b, n)
	x := n*2654435761 + uint32(len(sender))
	for len(b) < size {
		x = x*1103515245 + 12345
		b = append(b, byte(x>>16))
	}
	return b
}

// parsePayload returns the sender and counter of a payload, and whether
// the payload is intact.
func parsePayload(b []byte) (sender string, n uint32, intact bool) {
	if len(b) < 1 || len(b) < 1+int(b[0])+4 {
		return "", 0, false
	}
	sender = string(b[1 : 1+b[0]])
	n = binary.BigEndian.Uint32(b[1+b[0]:])
	return sender, n, bytes.Equal(b, payload(sender, n))
}

// send sends up to max packets at 20 ms intervals until stopSending,
// counting on from the packets sent before. A sending already under way
// is stopped first.
func (c *client) send(max int) {
	c.stopSending()
	stop, stopped := make(chan struct{}), make(chan struct{})
	c.stop, c.stopped = stop, stopped
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		start := c.sent.Load()
		for i := range max {
			n := start + uint32(i)
			pkt := &rtp.Packet{
				Header: rtp.Header{
					Version:        2,
					PayloadType:    111,
					SequenceNumber: c.seqBase + uint16(n),
					Timestamp:      n * 960,
					Marker:         i == 0,
				},
				Payload: payload(c.id, n),
			}
			_ = c.mic.WriteRTP(pkt) // fails only while the connection closes
			c.sent.Store(n + 1)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	c.tb.Cleanup(c.stopSending)
}

func (c *client) stopSending() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.stopped
}

func (c *client) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	var mid string
	for _, tr := range c.pc.GetTransceivers() {
		if tr.Receiver() == r {
			mid = tr.Mid()
		}
	}
	c.mu.Lock()
	rc := c.slots[mid]
	if rc == nil {
		rc = &received{from: make(map[string][]uint32)}
		c.slots[mid] = rc
	}
	c.mu.Unlock()
	// As a browser does, read RTCP: the sender reports that the receiver
	// reports answer (and so the SFU's round-trip times) depend on it.
	go readRTCP(r)
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		sender, n, intact := parsePayload(pkt.Payload)
		c.mu.Lock()
		switch {
		case sender == "" || !strings.HasPrefix(sender, "dev"):
			rc.foreign++
		case !intact:
			rc.bad++
		default:
			rc.from[sender] = append(rc.from[sender], n)
		}
		c.mu.Unlock()
	}
}

// count returns how many packets the client received from sender, on
// any slot.
func (c *client) count(sender string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, rc := range c.slots {
		n += len(rc.from[sender])
	}
	return n
}

// countRange returns how many packets the client received from sender
// with counters in [lo, hi).
func (c *client) countRange(sender string, lo, hi uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, rc := range c.slots {
		for _, x := range rc.from[sender] {
			if lo <= x && x < hi {
				n++
			}
		}
	}
	return n
}

// total returns how many packets the client received in all.
func (c *client) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, rc := range c.slots {
		n += rc.bad + rc.foreign
		for _, ns := range rc.from {
			n += len(ns)
		}
	}
	return n
}

// heard returns, for each mid that carried packets, the senders heard.
func (c *client) heard() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := make(map[string][]string)
	for mid, rc := range c.slots {
		for sender := range rc.from {
			h[mid] = append(h[mid], sender)
		}
	}
	return h
}

// check fails the test if any packet arrived damaged, or from no test
// sender, or twice, or out of order.
func (c *client) check() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for mid, rc := range c.slots {
		if rc.bad > 0 || rc.foreign > 0 {
			c.tb.Errorf("%s, slot %s: %d damaged packets, %d foreign", c.id, mid, rc.bad, rc.foreign)
		}
		for sender, ns := range rc.from {
			for i := 1; i < len(ns); i++ {
				if ns[i] <= ns[i-1] {
					c.tb.Errorf("%s, slot %s: from %s, packet %d after %d", c.id, mid, sender, ns[i], ns[i-1])
					break
				}
			}
		}
	}
}

func (c *client) close() {
	c.stopSending()
	if err := c.pc.Close(); err != nil {
		c.tb.Logf("close %s: %v", c.id, err)
	}
}

// cutConn is a PacketConn that the test can cut: from then on it drops
// everything, as a device that vanished would.
type cutConn struct {
	net.PacketConn
	cutOff atomic.Bool
}

func (c *cutConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.cutOff.Load() {
			return n, addr, err
		}
	}
}

func (c *cutConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cutOff.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// waitFor polls cond until it holds, and fails the test if ctx ends
// first.
func waitFor(ctx context.Context, tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// slotLog records what OnSlots and OnGone report.
type slotLog struct {
	mu    sync.Mutex
	slots map[string][]Slot // latest, by device
	calls map[string]string // latest call, by device
	gone  []string          // "device call"
}

func newSlotLog() *slotLog {
	return &slotLog{slots: make(map[string][]Slot), calls: make(map[string]string)}
}

func (l *slotLog) onSlots(device, call string, slots []Slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slots[device] = slots
	l.calls[device] = call
}

func (l *slotLog) onGone(device, call string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gone = append(l.gone, fmt.Sprintf("%s %s", device, call))
}

// hears returns, by mid, whom the latest report says device hears.
func (l *slotLog) hears(device string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := make(map[string]string)
	for _, s := range l.slots[device] {
		if s.Device != "" {
			h[s.Mid] = s.Device
		}
	}
	return h
}

func (l *slotLog) goneList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.gone...)
}

// readRTCP reads RTCP until the connection closes, and drops it.
func readRTCP(r rtcpReader) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
	}
}
