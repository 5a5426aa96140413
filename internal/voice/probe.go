package voice

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/sframe"
)

// Probing the media path for a line check (client.Prober): the server
// puts the ends' warm lines in a probe session of its forwarder, where
// each hears the others as in a call. Every device sends probes on its
// microphone and echoes at once every probe it hears from another; it
// measures the round trip from the echoes of its own, and the loss from
// the probes of the far ends that never arrived, or arrived too late to
// be played (probeLate). Probes and echoes are
// SFrame frames under the conversation's current epoch, like call audio:
// the forwarder cannot read or forge them, and who sent one is known from
// its key.

// The plaintext of a probe frame is one or more records of probeLen
// bytes (a browser sends a probe and its pending echoes in one frame, as
// its encoder sets the pace): "hlp1", kind, the prober's nonce (8 bytes),
// sequence number (2), the prober's send time (8, µs since it started)
// and, in an echo, how long the echoing device held the probe before
// answering (4, µs). docs/api.md ("Line checks") describes it.
const (
	probeMagic = "hlp1"
	probeLen   = 4 + 1 + 8 + 2 + 8 + 4
	kindProbe  = 1
	kindEcho   = 2
)

// Bounds on what a line check may ask of a device.
const (
	maxProbes     = 500
	minProbeEvery = 5 * time.Millisecond
	maxProbeEvery = time.Second
	// probeLinger is how long a device keeps listening once it has sent
	// its probes and heard nothing new; probeGrace caps the whole wait
	// after its last probe.
	probeLinger = time.Second
	probeGrace  = 5 * time.Second
	// idleKeep is how long a line keeps frames that arrive while it is in
	// no call and no probe: a far end's first probes can arrive before
	// this device has read the line check's request.
	idleKeep = 3 * time.Second
	idleMax  = 256
	// probeLate is how much later than the far end's quickest probe one
	// may arrive and still count: a jitter buffer waits about this long,
	// so a probe later than that is as good as lost (as on a TCP path,
	// where loss turns into delay).
	probeLate = 200 * time.Millisecond
)

// idlePacket is a frame that arrived while the line was idle.
type idlePacket struct {
	pkt *rtp.Packet
	at  time.Time
}

// keepIdle keeps a frame that arrived while the line was idle. l.mu must
// be held.
func (l *Line) keepIdleLocked(pkt *rtp.Packet, now time.Time) {
	l.idle = slices.DeleteFunc(l.idle, func(p idlePacket) bool { return now.Sub(p.at) > idleKeep })
	if len(l.idle) >= idleMax {
		l.idle = slices.Delete(l.idle, 0, len(l.idle)-idleMax+1)
	}
	l.idle = append(l.idle, idlePacket{pkt: pkt, at: now})
}

// lineProbe is one device's measurement in progress.
type lineProbe struct {
	l     *Line
	conv  string
	sf    *sframe.MLSContext
	nonce [8]byte
	start time.Time
	count int
	stop  chan struct{} // closed when a newer probe takes over the line

	mu      sync.Mutex
	devices map[uint64]string // sender's leaf and epoch to its device, as resolved
	// heard holds the far ends' probes heard, by device and by the
	// prober's nonce (a device's probes from an earlier check, still in
	// flight or kept while idle, are another nonce): arrival less send time.
	heard map[string]map[[8]byte]map[uint16]time.Duration
	rtts  []time.Duration
	sent  int
	last  time.Time // when the last probe or echo arrived
}

// ProbeLine measures the media path to the devices ask.Peers for a line
// check of conversation conv: see the comment above. It implements
// client.Prober. A device that cannot measure (no usable group, or a call
// under way: calls come first) says why in Unsupported.
func (l *Line) ProbeLine(ctx context.Context, conv string, ask api.LineProbeAsk) api.LineMedia {
	count := min(max(ask.Count, 1), maxProbes)
	every := min(max(time.Duration(ask.IntervalMs)*time.Millisecond, minProbeEvery), maxProbeEvery)
	ce, err := l.c.CallEpoch(conv)
	if err != nil {
		return api.LineMedia{Unsupported: "group_unusable"}
	}
	var b [2]byte
	rand.Read(b[:])
	sf, err := sframe.NewMLSContext(ce.Suite, sframe.MLSOptions{ContextID: uint64(binary.BigEndian.Uint16(b[:])), RetainEpochs: 2})
	if err == nil {
		err = sf.AddEpoch(ce.MLSEpoch)
	}
	if err != nil {
		return api.LineMedia{Unsupported: "group_unusable"}
	}
	p := &lineProbe{l: l, conv: conv, sf: sf, start: time.Now(), count: count, stop: make(chan struct{}),
		devices: map[uint64]string{}, heard: map[string]map[[8]byte]map[uint16]time.Duration{}}
	rand.Read(p.nonce[:])
	for _, d := range ask.Peers {
		p.heard[d] = map[[8]byte]map[uint16]time.Duration{}
	}

	l.mu.Lock()
	if l.call != nil {
		l.mu.Unlock()
		return api.LineMedia{Unsupported: "in_call"}
	}
	if old := l.probe; old != nil {
		close(old.stop) // a newer check supersedes it
	}
	l.probe = p
	early := l.idle
	l.idle = nil
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.probe == p {
			l.probe = nil
		}
		l.mu.Unlock()
	}()
	for _, e := range early {
		p.received(e.pkt, e.at)
	}

	tick := time.NewTicker(every)
	defer tick.Stop()
	inCall := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.call != nil
	}
	for i := range count {
		if inCall() {
			return api.LineMedia{Unsupported: "in_call"}
		}
		p.send(probeRecord{kind: kindProbe, nonce: p.nonce, seq: uint16(i), sentUs: uint64(time.Since(p.start).Microseconds())})
		select {
		case <-ctx.Done():
			return api.LineMedia{Unsupported: "cancelled"}
		case <-p.stop:
			return api.LineMedia{Unsupported: "superseded"}
		case <-tick.C:
		}
	}
	// Listen on until every far end's probes and their echoes are in, or
	// nothing arrives for probeLinger, or probeGrace is over.
	sentAll := time.Now()
	for {
		now := time.Now()
		p.mu.Lock()
		complete := len(p.rtts) >= count*len(p.heard)
		for _, runs := range p.heard {
			complete = complete && len(latest(runs)) >= count
		}
		quiet := now.Sub(later(p.last, sentAll)) >= probeLinger
		p.mu.Unlock()
		if complete || quiet || now.Sub(sentAll) >= probeGrace {
			break
		}
		select {
		case <-ctx.Done():
			return api.LineMedia{Unsupported: "cancelled"}
		case <-p.stop:
			return api.LineMedia{Unsupported: "superseded"}
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p.result()
}

// probeRecord is one record of a probe frame.
type probeRecord struct {
	kind   byte
	nonce  [8]byte
	seq    uint16
	sentUs uint64        // the prober's send time, µs since it started
	held   time.Duration // in an echo: how long the echoing device held the probe
}

// ErrProbeFrame is the error for a probe frame that is not one.
var ErrProbeFrame = errors.New("voice: malformed probe frame")

// appendProbe appends r's encoding to b.
func appendProbe(b []byte, r probeRecord) []byte {
	b = append(b, probeMagic...)
	b = append(b, r.kind)
	b = append(b, r.nonce[:]...)
	b = binary.BigEndian.AppendUint16(b, r.seq)
	b = binary.BigEndian.AppendUint64(b, r.sentUs)
	return binary.BigEndian.AppendUint32(b, uint32(min(max(r.held.Microseconds(), 0), 1<<32-1)))
}

// parseProbe parses the plaintext of a probe frame: one or more records,
// each with the magic and a known kind; anything else is ErrProbeFrame.
func parseProbe(b []byte) ([]probeRecord, error) {
	if len(b) == 0 || len(b)%probeLen != 0 {
		return nil, ErrProbeFrame
	}
	recs := make([]probeRecord, 0, len(b)/probeLen)
	for b := range slices.Chunk(b, probeLen) {
		if !bytes.HasPrefix(b, []byte(probeMagic)) || b[4] != kindProbe && b[4] != kindEcho {
			return nil, ErrProbeFrame
		}
		r := probeRecord{kind: b[4], seq: binary.BigEndian.Uint16(b[13:15]), sentUs: binary.BigEndian.Uint64(b[15:23]),
			held: time.Duration(binary.BigEndian.Uint32(b[23:27])) * time.Microsecond}
		copy(r.nonce[:], b[5:13])
		recs = append(recs, r)
	}
	return recs, nil
}

// send encrypts a record and sends it on the microphone.
func (p *lineProbe) send(r probeRecord) {
	ct, err := p.sf.Encrypt(nil, appendProbe(make([]byte, 0, probeLen), r))
	if err != nil {
		return
	}
	if r.kind == kindProbe {
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
	}
	if err := p.l.send(ct, 960); err != nil && !errors.Is(err, errNeedConnect) {
		p.l.log.Debug("line check probe not sent", "err", err)
	}
}

// received handles a frame heard during the probe (or just before it):
// a far end's probe is counted and echoed, an echo of ours gives a round
// trip. Anything else is ignored.
func (p *lineProbe) received(pkt *rtp.Packet, at time.Time) {
	pt, sender, err := p.sf.Decrypt(nil, pkt.Payload)
	if err != nil {
		return
	}
	recs, err := parseProbe(pt)
	if err != nil {
		return
	}
	key := sender.Epoch<<32 | uint64(sender.Leaf)
	p.mu.Lock()
	p.last = later(p.last, at)
	device, known := p.devices[key]
	p.mu.Unlock()
	if !known {
		var m client.Member
		m, _ = p.l.c.MemberAt(p.conv, sender.Leaf)
		device = m.Device
		p.mu.Lock()
		p.devices[key] = device
		p.mu.Unlock()
	}
	for _, r := range recs {
		p.record(r, device, at)
	}
}

// record handles one record of a probe frame from device.
func (p *lineProbe) record(r probeRecord, device string, at time.Time) {
	switch {
	case r.kind == kindProbe && r.nonce != p.nonce:
		p.mu.Lock()
		if runs, ok := p.heard[device]; ok && int(r.seq) < p.count { // a far end's: counted
			h := runs[r.nonce]
			if h == nil {
				h = map[uint16]time.Duration{}
				runs[r.nonce] = h
			}
			if _, dup := h[r.seq]; !dup {
				// The two clocks differ by an unknown offset, the same for
				// every probe: only differences between probes mean anything.
				h[r.seq] = at.Sub(p.start) - time.Duration(r.sentUs)*time.Microsecond
			}
		}
		p.mu.Unlock()
		// Every probe is answered, whoever sent it: its sender measures.
		p.send(probeRecord{kind: kindEcho, nonce: r.nonce, seq: r.seq, sentUs: r.sentUs, held: time.Since(at)})
	case r.kind == kindEcho && r.nonce == p.nonce:
		rtt := at.Sub(p.start) - time.Duration(r.sentUs)*time.Microsecond - r.held
		if rtt < 0 {
			return
		}
		p.mu.Lock()
		p.rtts = append(p.rtts, rtt)
		p.mu.Unlock()
	}
}

// result sums the measurement up.
func (p *lineProbe) result() api.LineMedia {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := api.LineMedia{Sent: p.sent, Echoes: len(p.rtts)}
	if len(p.rtts) > 0 {
		rtts := slices.Clone(p.rtts)
		slices.Sort(rtts)
		m.RTTMs = ms(rtts[len(rtts)/2])
		m.RTTMaxMs = ms(rtts[len(rtts)-1])
	}
	devices := make([]string, 0, len(p.heard))
	for d := range p.heard {
		devices = append(devices, d)
	}
	slices.Sort(devices)
	for _, d := range devices {
		onTime := 0
		if h := latest(p.heard[d]); len(h) > 0 {
			first := slices.Min(slices.Collect(maps.Values(h)))
			for _, off := range h {
				if off-first <= probeLate {
					onTime++
				}
			}
		}
		loss := 1 - float64(onTime)/float64(p.count)
		if loss > m.Loss || m.Worst == "" {
			m.Loss, m.Worst = loss, d
		}
	}
	return m
}

// latest is a far end's probes of this check: of the runs heard from it
// (by nonce), the one with the most probes.
func latest(runs map[[8]byte]map[uint16]time.Duration) map[uint16]time.Duration {
	var best map[uint16]time.Duration
	for _, h := range runs {
		if len(h) > len(best) {
			best = h
		}
	}
	return best
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
