package sfu

// One-way latency for BenchmarkCalls. Senders and receivers are devices
// in the benchmark's own process, so a sender writes its send time into
// each packet's payload, on this process's monotonic clock, and the
// receiver subtracts it from the time the packet came out of its track.
// The latency so measured runs from just before the sender's WriteRTP
// (SRTP, the send system call) to just after the receiver's ReadRTP
// returns (pion's receiving goroutines, SRTP): through the SFU in one
// case, from device to device in the other, the baseline.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// benchEpoch is the reference of the send times in timed packets.
var benchEpoch = time.Now()

// sinceEpoch returns the monotonic time since benchEpoch.
func sinceEpoch() time.Duration { return time.Since(benchEpoch) }

// timedPayload is payload(sender, n) with the send time, nanoseconds
// since benchEpoch, in the 8 bytes after the counter.
func timedPayload(sender string, n uint32, sent time.Duration) []byte {
	b := payload(sender, n)
	binary.BigEndian.PutUint64(b[1+len(sender)+4:], uint64(sent))
	return b
}

// parseTimed returns the sender, counter and send time of a timed
// payload.
func parseTimed(b []byte) (sender string, n uint32, sent time.Duration, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0])+4+8 {
		return "", 0, 0, false
	}
	i := 1 + int(b[0])
	return string(b[1:i]), binary.BigEndian.Uint32(b[i:]), time.Duration(binary.BigEndian.Uint64(b[i+4:])), true
}

// A timedSender sends a device's microphone: a timed packet every 20 ms.
type timedSender struct {
	sent atomic.Uint32 // packets sent
	stop chan struct{}
	done chan struct{}
}

// maxTimedPackets bounds a sender: 20 minutes of packets.
const maxTimedPackets = 60_000

// startTimed starts sending on track after phase: independent devices
// send at independent phases of the 20 ms period, not all at once.
func startTimed(id string, track *webrtc.TrackLocalStaticRTP, phase time.Duration) *timedSender {
	s := &timedSender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		select {
		case <-s.stop:
			return
		case <-time.After(phase):
		}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for n := range uint32(maxTimedPackets) {
			pkt := &rtp.Packet{
				Header: rtp.Header{
					Version:        2,
					PayloadType:    111,
					SequenceNumber: uint16(n + 1000),
					Timestamp:      n * 960,
					Marker:         n == 0,
				},
			}
			pkt.Payload = timedPayload(id, n, sinceEpoch())
			_ = track.WriteRTP(pkt) // fails only while the connection closes
			s.sent.Store(n + 1)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// close stops the sender and waits for it.
func (s *timedSender) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// A timedReceiver records the timed packets a device receives.
type timedReceiver struct {
	mu  sync.Mutex
	got map[string][]arrival // by sender
	bad int                  // packets without a timed payload
}

// An arrival is one packet received: its counter and its latency.
type arrival struct {
	n   uint32
	lat time.Duration
}

func newTimedReceiver() *timedReceiver {
	return &timedReceiver{got: make(map[string][]arrival)}
}

// onTrack is a PeerConnection's OnTrack handler.
func (r *timedReceiver) onTrack(t *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
	go readRTCP(rr)
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := sinceEpoch()
		sender, n, sent, ok := parseTimed(pkt.Payload)
		r.mu.Lock()
		if ok {
			r.got[sender] = append(r.got[sender], arrival{n, now - sent})
		} else {
			r.bad++
		}
		r.mu.Unlock()
	}
}

// count returns how many packets arrived from sender.
func (r *timedReceiver) count(sender string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[sender])
}

// window appends to lats the latencies of the packets from sender with
// counters in [lo, hi), and returns them and how many there were.
func (r *timedReceiver) window(sender string, lo, hi uint32, lats []time.Duration) ([]time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := 0
	for _, a := range r.got[sender] {
		if lo <= a.n && a.n < hi {
			lats = append(lats, a.lat)
			got++
		}
	}
	return lats, got
}

// damaged returns how many packets arrived without a timed payload.
func (r *timedReceiver) damaged() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// A latencyWindow gathers what the receivers saw of the packets sent
// in a measurement window.
type latencyWindow struct {
	want, got int
	lats      []time.Duration
}

// add counts the packets from sender with counters in [lo, hi) as
// wanted at r.
func (w *latencyWindow) add(r *timedReceiver, sender string, lo, hi uint32) {
	var got int
	w.lats, got = r.window(sender, lo, hi, w.lats)
	w.want += int(hi - lo)
	w.got += got
}

// lossPercent returns the share of wanted packets that did not arrive.
func (w *latencyWindow) lossPercent() float64 {
	if w.want == 0 {
		return 0
	}
	return 100 * float64(w.want-w.got) / float64(w.want)
}

// quantile returns the q-quantile of the latencies (nearest rank), in
// milliseconds.
func (w *latencyWindow) quantile(q float64) float64 {
	if len(w.lats) == 0 {
		return 0
	}
	slices.Sort(w.lats)
	i := int(q*float64(len(w.lats)) + 0.999999) // ⌈q·n⌉
	i = min(max(i, 1), len(w.lats)) - 1
	return float64(w.lats[i]) / float64(time.Millisecond)
}

// randomPhase returns a phase of the 20 ms period, uniformly at random,
// or 0 if HOTLINE_SFU_BENCH_INSTEP is set: then every device sends in
// step with the others, as the first version of BenchmarkCalls had them do.
func randomPhase() time.Duration {
	if os.Getenv("HOTLINE_SFU_BENCH_INSTEP") != "" {
		return 0
	}
	return rand.N(20 * time.Millisecond)
}

// A directPeer is one end of a device-to-device connection: the
// baseline without an SFU. It is configured as a client is (loopback
// UDP, the default interceptors, Opus) but has one sendrecv audio
// section.
type directPeer struct {
	tb  testing.TB
	id  string
	pc  *webrtc.PeerConnection
	mic *webrtc.TrackLocalStaticRTP
	rcv *timedReceiver
	snd *timedSender
}

func newDirectPeer(tb testing.TB, id string) *directPeer {
	tb.Helper()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
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
	p := &directPeer{tb: tb, id: id, pc: pc, rcv: newTimedReceiver()}
	tb.Cleanup(p.close)
	pc.OnTrack(p.rcv.onTrack)
	p.mic, err = webrtc.NewTrackLocalStaticRTP(opus.RTPCodecCapability, "mic", id)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pc.AddTrack(p.mic); err != nil {
		tb.Fatal(err)
	}
	return p
}

// connectDirect connects a and b to each other and waits for both ends.
func connectDirect(ctx context.Context, tb testing.TB, a, b *directPeer) {
	tb.Helper()
	describe := func(p *directPeer, offer bool) webrtc.SessionDescription {
		var d webrtc.SessionDescription
		var err error
		if offer {
			d, err = p.pc.CreateOffer(nil)
		} else {
			d, err = p.pc.CreateAnswer(nil)
		}
		if err != nil {
			tb.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(p.pc)
		if err := p.pc.SetLocalDescription(d); err != nil {
			tb.Fatal(err)
		}
		<-gathered
		return *p.pc.LocalDescription()
	}
	if err := b.pc.SetRemoteDescription(describe(a, true)); err != nil {
		tb.Fatal(err)
	}
	if err := a.pc.SetRemoteDescription(describe(b, false)); err != nil {
		tb.Fatal(err)
	}
	for _, p := range []*directPeer{a, b} {
		waitFor(ctx, tb, p.id+" connected", func() bool {
			return p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
		})
	}
}

func (p *directPeer) close() {
	if p.snd != nil {
		p.snd.close()
	}
	if err := p.pc.Close(); err != nil {
		p.tb.Logf("close %s: %v", p.id, err)
	}
}

// directResult is what benchDirect measured.
type directResult struct {
	latencyWindow
	cores      float64 // this process's CPU over the window's wall time
	otherCores float64 // the rest of the machine's
}

// benchDirect measures the baseline: devices peers (rounded up to an
// even number) in pairs, each sending a timed packet every 20 ms straight
// to the other, on loopback, over a window as BenchmarkCalls does.
func benchDirect(ctx context.Context, b *testing.B, devices int, window time.Duration) directResult {
	var pairs [][2]*directPeer
	for i := range (devices + 1) / 2 {
		x, y := newDirectPeer(b, fmt.Sprintf("p%d.a", i)), newDirectPeer(b, fmt.Sprintf("p%d.b", i))
		connectDirect(ctx, b, x, y)
		pairs = append(pairs, [2]*directPeer{x, y})
	}
	defer func() {
		for _, pair := range pairs {
			pair[0].close()
			pair[1].close()
		}
	}()
	for _, pair := range pairs {
		for _, p := range pair {
			p.snd = startTimed(p.id, p.mic, randomPhase())
		}
	}
	for _, pair := range pairs {
		waitFor(ctx, b, "direct warm-up", func() bool {
			return pair[0].rcv.count(pair[1].id) >= 5 && pair[1].rcv.count(pair[0].id) >= 5
		})
	}

	from := make(map[*directPeer]uint32)
	for _, pair := range pairs {
		for _, p := range pair {
			from[p] = p.snd.sent.Load()
		}
	}
	m := startMachineWindow(b)
	user0, sys0, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	time.Sleep(window) // the measurement window
	user1, sys1, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	machine := m.cores(b)
	to := make(map[*directPeer]uint32)
	for _, pair := range pairs {
		for _, p := range pair {
			to[p] = p.snd.sent.Load()
		}
	}
	time.Sleep(500 * time.Millisecond) // let the window's last packets land

	var r directResult
	for _, pair := range pairs {
		for i, p := range pair {
			o := pair[1-i]
			r.add(p.rcv, o.id, from[o], to[o])
			if n := p.rcv.damaged(); n > 0 {
				b.Errorf("%s: %d packets without a timed payload", p.id, n)
			}
		}
	}
	r.cores = float64(user1-user0+sys1-sys0) / float64(elapsed)
	r.otherCores = machine - r.cores
	return r
}

// A machineWindow measures the CPU the whole machine used over a window.
type machineWindow struct {
	busy, total uint64
}

func startMachineWindow(b *testing.B) machineWindow {
	busy, total, _, err := machineCPU()
	if err != nil {
		b.Fatal(err)
	}
	return machineWindow{busy, total}
}

// cores returns the number of CPUs the machine kept busy, on average,
// since the window started.
func (m machineWindow) cores(b *testing.B) float64 {
	busy, total, cpus, err := machineCPU()
	if err != nil {
		b.Fatal(err)
	}
	if total == m.total {
		return 0
	}
	return float64(cpus) * float64(busy-m.busy) / float64(total-m.total)
}

func TestTimedPayload(t *testing.T) {
	for _, tc := range []struct {
		sender string
		n      uint32
		sent   time.Duration
	}{
		{"dev0.0", 0, 0},
		{"dev49.2", 80, 3*time.Hour + 7},
		{"p1.b", 1<<32 - 1, 1<<63 - 1},
	} {
		b := timedPayload(tc.sender, tc.n, tc.sent)
		if len(b) < 80 || len(b) > 160 {
			t.Errorf("%s %d: %d bytes, want 80 to 160", tc.sender, tc.n, len(b))
		}
		sender, n, sent, ok := parseTimed(b)
		if !ok || sender != tc.sender || n != tc.n || sent != tc.sent {
			t.Errorf("parseTimed(timedPayload(%q, %d, %v)) = %q, %d, %v, %v", tc.sender, tc.n, tc.sent, sender, n, sent, ok)
		}
		for i := range 1 + len(tc.sender) + 4 + 8 {
			if _, _, _, ok := parseTimed(b[:i]); ok {
				t.Errorf("%s %d: parseTimed accepts %d bytes", tc.sender, tc.n, i)
			}
		}
	}
}

func TestLatencyQuantile(t *testing.T) {
	var w latencyWindow
	for i := 100; i >= 1; i-- { // 100 ms down to 1 ms
		w.lats = append(w.lats, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1},
	} {
		if got := w.quantile(tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v ms, want %v", tc.q, got, tc.want)
		}
	}
	if got := (&latencyWindow{}).quantile(0.5); got != 0 {
		t.Errorf("quantile of nothing = %v, want 0", got)
	}
}
