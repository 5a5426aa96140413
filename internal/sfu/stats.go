package sfu

import "time"

// ParticipantStats are the counters of one device's connection, since it
// was made. The "out" figures add up the device's slots.
type ParticipantStats struct {
	// PacketsIn and BytesIn count the RTP packets and payload bytes
	// received from the device's microphone.
	PacketsIn, BytesIn uint64
	// LostIn counts the microphone's packets that never arrived (RFC 3550
	// cumulative loss, from sequence numbers).
	LostIn int64
	// JitterIn is the interarrival jitter of the microphone's packets.
	JitterIn time.Duration

	// PacketsOut and BytesOut count the RTP packets and payload bytes
	// sent to the device.
	PacketsOut, BytesOut uint64
	// LostOut counts the packets sent to the device that its RTCP receiver
	// reports say it never received.
	LostOut int64
	// JitterOut is the largest jitter the device's receiver reports give
	// for a slot.
	JitterOut time.Duration
	// RTT is the round-trip time to the device, measured from its receiver
	// reports (RFC 3550 LSR and DLSR): the mean of the latest measurement
	// of each slot that has one; 0 until one is measured.
	RTT time.Duration
	// Reports counts the receiver report blocks that gave an RTT.
	Reports uint64
}

// Stats returns the counters of a device's connection, or ErrNotConnected.
func (s *SFU) Stats(device string) (ParticipantStats, error) {
	s.mu.Lock()
	p, closed := s.peers[device], s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ParticipantStats{}, ErrClosed
	case p == nil:
		return ParticipantStats{}, ErrNotConnected
	}
	return p.statistics(), nil
}

func (p *peer) statistics() ParticipantStats {
	var ps ParticipantStats
	in := &p.micIn
	in.mu.Lock()
	if in.started {
		ps.PacketsIn, ps.BytesIn = in.packets, in.bytes
		ps.LostIn = in.lostLocked()
		ps.JitterIn = seconds(in.jitter / clockRate)
	}
	in.mu.Unlock()
	var rtt time.Duration
	var rtts int64
	for _, o := range p.outs {
		o.mu.Lock()
		ps.PacketsOut += o.packets
		ps.BytesOut += o.bytes
		ps.LostOut += o.remote.lost
		ps.JitterOut = max(ps.JitterOut, seconds(float64(o.remote.jitter)/clockRate))
		ps.Reports += o.remote.reports
		if o.remote.reports > 0 {
			rtt += o.remote.rtt
			rtts++
		}
		o.mu.Unlock()
	}
	if rtts > 0 {
		ps.RTT = rtt / time.Duration(rtts)
	}
	return ps
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second))
}
