package sfu

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// An outSlot is one slot of one device: the SFU's track on it and the
// RTP stream state that keeps the slot one continuous stream while its
// source changes.
type outSlot struct {
	owner  *peer // the device the slot sends to
	track  *webrtc.TrackLocalStaticRTP
	t      *webrtc.RTPTransceiver
	sender *webrtc.RTPSender
	ssrc   uint32 // the slot's SSRC

	mu       sync.Mutex  // guards the fields below; held while writing
	src      *peer       // the connection whose microphone the slot carries
	fresh    bool        // src changed: rebase on its next packet
	started  bool        // a packet was written
	seqOff   uint16      // added to the source's sequence numbers
	tsOff    uint32      // added to the source's timestamps
	lastSeq  uint16      // highest sequence number written
	lastTS   uint32      // its timestamp
	lastTSAt time.Time   // when it was written
	lastAt   time.Time   // when the last packet was written
	packets  uint64      // packets written
	bytes    uint64      // payload bytes written
	remote   remoteStats // from the device's receiver reports
	pt       uint8       // the payload type negotiated for Opus
	roc      uint32      // SRTP rollover count: times lastSeq wrapped
	fast     bool        // written on the fast path
}

// setSource makes the slot carry src's microphone (nil: nothing).
func (o *outSlot) setSource(src *peer) {
	o.mu.Lock()
	if o.src != src {
		o.src, o.fresh = src, true
	}
	o.mu.Unlock()
}

// minGap is the least timestamp step (20 ms at 48 kHz) between the last
// packet of one source and the first of the next on the same slot.
const minGap = 960

// write writes a packet of src's microphone to the slot, if the slot
// carries src. The payload is written as it came; the header gets the
// slot's sequence numbers and timestamps, loses its extensions and CSRCs,
// and pion gives it the slot's SSRC and payload type.
func (o *outSlot) write(src *peer, in *rtp.Packet, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeLocked(src, in, now)
}

// writeLocked is write with o.mu held.
func (o *outSlot) writeLocked(src *peer, in *rtp.Packet, now time.Time) {
	if o.src != src {
		return
	}
	if o.fresh {
		o.fresh = false
		if o.started {
			gap := uint32(max(minGap, min(now.Sub(o.lastAt), time.Hour)*clockRate/time.Second))
			o.seqOff = o.lastSeq + 1 - in.SequenceNumber
			o.tsOff = o.lastTS + gap - in.Timestamp
		}
	}
	out := rtp.Packet{Header: in.Header, Payload: in.Payload}
	out.SequenceNumber += o.seqOff
	out.Timestamp += o.tsOff
	out.Extension, out.ExtensionProfile, out.Extensions, out.CSRC = false, 0, nil, nil
	wrapped := o.started && int16(out.SequenceNumber-o.lastSeq) > 0 && out.SequenceNumber < o.lastSeq
	if wrapped {
		o.roc++
	}
	if !o.writeFast(&out) {
		if err := o.track.WriteRTP(&out); err != nil {
			return // the receiving connection is closing
		}
	}
	src.s.forwarded.Add(1)
	if !o.started || int16(out.SequenceNumber-o.lastSeq) > 0 {
		o.lastSeq, o.lastTS, o.lastTSAt = out.SequenceNumber, out.Timestamp, now
	}
	o.started, o.lastAt = true, now
	o.packets++
	o.bytes += uint64(len(out.Payload))
}

// The microphone's packets are forwarded on the goroutine of pion's SRTP
// session, as it decrypts them, rather than on a goroutine of the SFU's
// reading the track: each goroutine a packet crosses costs a wake-up, and
// pion's pipeline has four already (the UDP mux, the ICE candidate, the
// DTLS/SRTP mux, the SRTP session). pion lets the SFU make the buffer each
// incoming stream is decrypted into (SettingEngine.BufferFactory): the
// microphone's is a streamBuffer that buffers as usual until the track is
// known (pion reads its first packets to tell which section it belongs
// to), and from then on hands each packet to the forwarding instead.

// srtpBufferSize is the most a buffer holds, pion's default.
const srtpBufferSize = 1000 * 1000

// A streamBuffer is the buffer of one incoming stream (RTP or RTCP) of a
// connection.
type streamBuffer struct {
	buf  *packetio.Buffer
	mu   sync.Mutex                   // serialises setting hook and writing to buf
	hook atomic.Pointer[func([]byte)] // once set, packets go to it, not to buf
}

// newBuffer implements SettingEngine.BufferFactory for the peer's
// connection.
func (p *peer) newBuffer(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	b := &streamBuffer{buf: packetio.NewBuffer()}
	b.buf.SetLimitSize(srtpBufferSize)
	if kind == packetio.RTPBufferPacket {
		p.bufMu.Lock()
		p.bufs[ssrc] = b
		p.bufMu.Unlock()
	}
	return b
}

// setHook sends every packet written from now on to h, and none to the
// buffer. h is called on the writer's goroutine, one packet at a time,
// and must not keep the packet.
func (b *streamBuffer) setHook(h func([]byte)) {
	b.mu.Lock()
	b.hook.Store(&h)
	b.mu.Unlock()
}

func (b *streamBuffer) WriteWithAttributes(pkt []byte, attrs packetio.Attributes) (int, error) {
	if h := b.hook.Load(); h != nil {
		(*h)(pkt)
		return len(pkt), nil
	}
	b.mu.Lock()
	if h := b.hook.Load(); h != nil {
		b.mu.Unlock()
		(*h)(pkt)
		return len(pkt), nil
	}
	defer b.mu.Unlock()
	return b.buf.Write(pkt, attrs)
}

func (b *streamBuffer) ReadWithAttributes(pkt []byte, attrs packetio.Attributes) (int, packetio.Attributes, error) {
	return b.buf.Read(pkt, attrs)
}

func (b *streamBuffer) Write(pkt []byte) (int, error) { return b.WriteWithAttributes(pkt, nil) }

func (b *streamBuffer) Read(pkt []byte) (int, error) {
	n, _, err := b.buf.Read(pkt, nil)
	return n, err
}

func (b *streamBuffer) SetReadDeadline(t time.Time) error { return b.buf.SetReadDeadline(t) }

func (b *streamBuffer) Close() error { return b.buf.Close() }

// drainFor is how long the goroutine that reads the microphone's track
// keeps reading once its packets go straight to the forwarding: long
// enough to forward what was buffered before.
const drainFor = 100 * time.Millisecond

// startForwardingLocked forwards the microphone's track: straight from
// its buffer from now on, and by reading the track for what is buffered
// already. s.mu must be held.
func (p *peer) startForwardingLocked(t *webrtc.TrackRemote) {
	p.bufMu.Lock()
	b := p.bufs[uint32(t.SSRC())]
	p.bufMu.Unlock()
	if b == nil {
		// Not a buffer of ours: read the track for as long as it lasts.
		p.s.goLocked(func() { p.forward(t, time.Time{}) })
		return
	}
	pt := uint8(t.PayloadType())
	p.micStream.Store(&micStream{ssrc: uint32(t.SSRC()), pt: pt})
	var pkt rtp.Packet // used by one writer at a time
	b.setHook(func(raw []byte) {
		if len(raw) < 2 || raw[1]&0x7f != pt {
			return // not Opus: not forwarded
		}
		p.forwardPacket(raw, &pkt)
	})
	p.s.goLocked(func() { p.forward(t, time.Now().Add(drainFor)) })
}

// forward reads the microphone's track, and forwards what it reads, until
// the connection closes or the deadline, if any, passes.
func (p *peer) forward(t *webrtc.TrackRemote, deadline time.Time) {
	if !deadline.IsZero() {
		if err := t.SetReadDeadline(deadline); err != nil {
			return
		}
	}
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			if n > 0 {
				continue // not Opus: not forwarded
			}
			return // closed, or past the deadline
		}
		p.forwardPacket(buf[:n], &pkt)
	}
}

// forwardPacket writes a packet of the microphone to the slots it is
// routed to. pkt is scratch space for its header.
func (p *peer) forwardPacket(raw []byte, pkt *rtp.Packet) {
	if err := pkt.Unmarshal(raw); err != nil {
		return
	}
	now := time.Now()
	p.micIn.add(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, len(pkt.Payload), now)
	routes := *p.routes.Load()
	p.last.keep(pkt, now, len(routes) > 0)
	for _, o := range routes {
		o.write(p, pkt, now)
	}
}

// A lastPacket is a microphone's newest packet. When a device joins a
// call for the first time (the callee answers a ringing call), the SFU
// writes it each speaker's last packet first, if nobody heard that packet
// (the caller was alone in the call) and it is younger than
// Config.PreRoll, a frame: the frame being spoken as the callee answers,
// which it would otherwise never get. The callee hears the caller at once
// rather than at the next frame, and the first syllable after an answer
// is not clipped. Nothing older is ever written, nor anything another
// participant heard (what was said before a device joined a call under
// way), nor anything to a device returning from hold.
type lastPacket struct {
	mu      sync.Mutex
	header  rtp.Header
	payload []byte
	at      time.Time
	heard   bool // it was forwarded to somebody
}

// keep copies pkt as the newest packet (its header without extensions or
// CSRCs, which write drops anyway).
func (l *lastPacket) keep(pkt *rtp.Packet, now time.Time, heard bool) {
	l.mu.Lock()
	l.header = pkt.Header
	l.header.Extension, l.header.ExtensionProfile, l.header.Extensions, l.header.CSRC = false, 0, nil, nil
	l.payload = append(l.payload[:0], pkt.Payload...)
	l.at, l.heard = now, heard
	l.mu.Unlock()
}

// forget forgets the packet kept.
func (l *lastPacket) forget() {
	l.mu.Lock()
	l.at = time.Time{}
	l.mu.Unlock()
}

// preRollTo writes the microphone's last packet to o, if nobody heard it,
// it is younger than Config.PreRoll, and o carries the microphone and
// has written nothing of it yet.
func (p *peer) preRollTo(o *outSlot) {
	now := time.Now()
	p.last.mu.Lock()
	if p.last.at.IsZero() || p.last.heard || now.Sub(p.last.at) >= p.s.cfg.PreRoll {
		p.last.mu.Unlock()
		return
	}
	pkt := rtp.Packet{Header: p.last.header, Payload: append([]byte(nil), p.last.payload...)}
	p.last.mu.Unlock()
	o.writeFirst(p, &pkt, now)
}

// writeFirst is write, only while the slot has written nothing of src
// since it started carrying it: the microphone's own forwarding may have
// written that packet, or a newer one, already.
func (o *outSlot) writeFirst(src *peer, in *rtp.Packet, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.src == src && o.fresh {
		o.writeLocked(src, in, now)
	}
}
