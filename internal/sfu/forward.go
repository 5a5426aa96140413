package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// An outSlot is one slot of one device: the SFU's track on it and the
// RTP stream state that keeps the slot one continuous stream while its
// source changes.
type outSlot struct {
	track  *webrtc.TrackLocalStaticRTP
	t      *webrtc.RTPTransceiver
	sender *webrtc.RTPSender

	mu      sync.Mutex // guards the fields below; held while writing
	src     *peer      // the connection whose microphone the slot carries
	fresh   bool       // src changed: rebase on its next packet
	started bool       // a packet was written
	seqOff  uint16     // added to the source's sequence numbers
	tsOff   uint32     // added to the source's timestamps
	lastSeq uint16     // highest sequence number written
	lastTS  uint32     // its timestamp
	lastAt  time.Time  // when it was written
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
	if o.src != src {
		return
	}
	if o.fresh {
		o.fresh = false
		if o.started {
			gap := uint32(max(minGap, now.Sub(o.lastAt)*48000/time.Second))
			o.seqOff = o.lastSeq + 1 - in.SequenceNumber
			o.tsOff = o.lastTS + gap - in.Timestamp
		}
	}
	out := rtp.Packet{Header: in.Header, Payload: in.Payload}
	out.SequenceNumber += o.seqOff
	out.Timestamp += o.tsOff
	out.Extension, out.ExtensionProfile, out.Extensions, out.CSRC = false, 0, nil, nil
	if err := o.track.WriteRTP(&out); err != nil {
		return // the receiving connection is closing
	}
	src.s.forwarded.Add(1)
	if !o.started || int16(out.SequenceNumber-o.lastSeq) > 0 {
		o.lastSeq, o.lastTS = out.SequenceNumber, out.Timestamp
	}
	o.started, o.lastAt = true, now
}

// forward reads the microphone's RTP and writes each packet to the slots
// it is routed to, until the connection closes.
func (p *peer) forward(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			if n > 0 {
				continue // not Opus: not forwarded
			}
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		routes := *p.routes.Load()
		if len(routes) == 0 {
			continue
		}
		now := time.Now()
		for _, o := range routes {
			o.write(p, &pkt, now)
		}
	}
}
