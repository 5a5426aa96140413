package sfu

import (
	"math"
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// RTCP, done by the SFU itself rather than by pion's report and stats
// interceptors: they cost 12–18 % of the server's CPU per forwarded packet
// in BenchmarkCalls (a header parsed and cloned, an attribute map, locks,
// per packet and per interceptor, and two goroutines per connection), for
// figures the forwarding loop has at hand.
//
// Per connection the SFU keeps RFC 3550's receiver state of the microphone
// (recvStats), its sender state of each slot (in outSlot), and once a
// second sends the device one compound RTCP packet: a sender report for
// each slot that has sent, then a receiver report on the microphone. The
// device's receiver reports give each slot's loss, jitter and round-trip
// time (RFC 3550 6.4.1: from LSR and DLSR, against the SFU's own clock);
// its sender reports give the LSR and DLSR of the SFU's receiver reports.

// reportInterval is how often the SFU sends each device its reports,
// pion's default.
const reportInterval = time.Second

// clockRate is Opus's RTP clock rate.
const clockRate = 48000

// recvStats is the receiver state of the microphone's stream (RFC 3550
// A.1, A.3, A.8).
type recvStats struct {
	mu       sync.Mutex // guards the fields below
	started  bool
	ssrc     uint32
	packets  uint64 // received
	bytes    uint64 // payload bytes received
	base     uint32 // extended sequence number of the first packet
	max      uint32 // highest extended sequence number
	lastTS   uint32 // RTP timestamp of the previous packet
	lastAt   time.Time
	jitter   float64 // in timestamp units
	priorExp uint32  // expected and received at the last report
	priorRcv uint64
	lastSR   uint32    // middle 32 bits of the NTP time of the last sender report
	lastSRAt time.Time // when it came
}

// add records a packet of the microphone.
func (r *recvStats) add(ssrc uint32, seq uint16, ts uint32, payload int, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || ssrc != r.ssrc {
		// The first packet, or a new stream: start again.
		r.started, r.ssrc = true, ssrc
		r.packets, r.bytes = 1, uint64(payload)
		r.base, r.max = uint32(seq), uint32(seq)
		r.lastTS, r.lastAt = ts, now
		r.jitter, r.priorExp, r.priorRcv = 0, 0, 0
		return
	}
	r.packets++
	r.bytes += uint64(payload)
	if ext := r.max + uint32(int32(int16(seq-uint16(r.max)))); int32(ext-r.max) > 0 {
		r.max = ext
	}
	d := now.Sub(r.lastAt).Seconds()*clockRate - float64(int32(ts-r.lastTS))
	r.jitter += (math.Abs(d) - r.jitter) / 16
	r.lastTS, r.lastAt = ts, now
}

// lost returns RFC 3550's cumulative number of packets lost. r.mu must be
// held.
func (r *recvStats) lostLocked() int64 {
	return int64(r.max-r.base) + 1 - int64(r.packets)
}

// senderReport records a sender report of the microphone.
func (r *recvStats) senderReport(sr *rtcp.SenderReport, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started && sr.SSRC != r.ssrc {
		return
	}
	r.lastSR, r.lastSRAt = uint32(sr.NTPTime>>16), now
}

// sourceIdle is how long after its last packet the microphone stops being
// reported on (RFC 3550 6.3.5: a source not heard from for five report
// intervals has timed out).
const sourceIdle = 5 * reportInterval

// report returns the reception report block on the microphone, or false
// if it has not been heard from lately.
func (r *recvStats) report(now time.Time) (rtcp.ReceptionReport, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || now.Sub(r.lastAt) > sourceIdle {
		return rtcp.ReceptionReport{}, false
	}
	expected := r.max - r.base + 1
	expInt, rcvInt := int64(expected-r.priorExp), int64(r.packets-r.priorRcv)
	r.priorExp, r.priorRcv = expected, r.packets
	var fraction uint8
	if lostInt := expInt - rcvInt; expInt > 0 && lostInt > 0 {
		fraction = uint8(lostInt << 8 / expInt)
	}
	rr := rtcp.ReceptionReport{
		SSRC:               r.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(min(max(r.lostLocked(), -0x800000), 0x7fffff)) & 0xffffff,
		LastSequenceNumber: r.max,
		Jitter:             uint32(r.jitter),
		LastSenderReport:   r.lastSR,
	}
	if !r.lastSRAt.IsZero() {
		rr.Delay = uint32(now.Sub(r.lastSRAt) * 65536 / time.Second)
	}
	return rr, true
}

// remoteStats is what a device's receiver reports say of one slot.
type remoteStats struct {
	lost    int64
	jitter  uint32
	rtt     time.Duration // the latest measurement
	reports uint64        // blocks that gave a round-trip time
}

// receptionReport records a device's report block on the slot. o.mu must
// not be held.
func (o *outSlot) receptionReport(b *rtcp.ReceptionReport, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.remote.lost = int64(int32(b.TotalLost<<8) >> 8) // 24 bits, signed
	o.remote.jitter = b.Jitter
	if b.LastSenderReport == 0 {
		return
	}
	// RFC 3550 6.4.1: the arrival time, less the LSR and DLSR, in units of
	// 1/65536 s.
	rtt := int32(uint32(ntpTime(now)>>16) - b.LastSenderReport - b.Delay)
	if rtt < 0 || rtt > 60*65536 {
		return // not a report of ours, or a clock gone mad
	}
	o.remote.rtt = time.Duration(rtt) * time.Second / 65536
	o.remote.reports++
}

// senderIdle is how long after its last packet a slot stops sending sender
// reports (RFC 3550 6.3.8: a sender that has not sent for two report
// intervals is a sender no more).
const senderIdle = 2 * reportInterval

// senderReportLocked returns the slot's sender report, or false if it has
// not sent lately. o.mu must be held.
func (o *outSlot) senderReportLocked(now time.Time) (*rtcp.SenderReport, bool) {
	if !o.started || now.Sub(o.lastAt) > senderIdle {
		return nil, false
	}
	return &rtcp.SenderReport{
		SSRC:        o.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     o.lastTS + uint32(now.Sub(o.lastTSAt)*clockRate/time.Second),
		PacketCount: uint32(o.packets),
		OctetCount:  uint32(o.bytes),
	}, true
}

// ntpTime returns t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800 // seconds from 1900 to 1970
	s := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return s<<32 | frac
}

// sendReports sends the device its sender and receiver reports every
// reportInterval until the connection or the SFU closes.
func (p *peer) sendReports() {
	t := time.NewTicker(reportInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.s.ctx.Done():
			return
		case now := <-t.C:
			if pkts := p.reports(now); len(pkts) > 0 {
				if err := p.pc.WriteRTCP(pkts); err != nil {
					p.s.log.Debug("send RTCP", "device", p.device, "err", err)
				}
			}
		}
	}
}

// reports returns the connection's reports: one sender report per slot
// that has sent, then the receiver report on the microphone, if any.
func (p *peer) reports(now time.Time) []rtcp.Packet {
	var pkts []rtcp.Packet
	for _, o := range p.outs {
		o.mu.Lock()
		sr, ok := o.senderReportLocked(now)
		o.mu.Unlock()
		if ok {
			pkts = append(pkts, sr)
		}
	}
	if b, ok := p.micIn.report(now); ok {
		// A receiver report comes from one of the SFU's SSRCs: the first
		// slot's.
		pkts = append(pkts, &rtcp.ReceiverReport{SSRC: p.outs[0].ssrc, Reports: []rtcp.ReceptionReport{b}})
	}
	return pkts
}

// readRTCP reads the RTCP on one slot until the connection closes,
// and records the report blocks on it.
func (o *outSlot) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := o.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		for _, pkt := range pkts {
			var blocks []rtcp.ReceptionReport
			switch pkt := pkt.(type) {
			case *rtcp.ReceiverReport:
				blocks = pkt.Reports
			case *rtcp.SenderReport:
				blocks = pkt.Reports
			}
			for i := range blocks {
				if blocks[i].SSRC == o.ssrc {
					o.receptionReport(&blocks[i], now)
				}
			}
		}
	}
}

// readMicRTCP reads the RTCP on the microphone until the connection
// closes, and records its sender reports.
func (p *peer) readMicRTCP(r rtcpReader) {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok {
				p.micIn.senderReport(sr, now)
			}
		}
	}
}
