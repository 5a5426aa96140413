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
	if ssrc := p.micSSRC.Load(); ssrc != 0 {
		if st := p.stats.Get(ssrc); st != nil {
			in := st.InboundRTPStreamStats
			ps.PacketsIn, ps.BytesIn = in.PacketsReceived, in.BytesReceived
			ps.LostIn = in.PacketsLost
			ps.JitterIn = seconds(in.Jitter)
		}
	}
	var rtt time.Duration
	var rtts int64
	for _, o := range p.outs {
		for _, enc := range o.sender.GetParameters().Encodings {
			st := p.stats.Get(uint32(enc.SSRC))
			if st == nil {
				continue
			}
			ps.PacketsOut += st.OutboundRTPStreamStats.PacketsSent
			ps.BytesOut += st.OutboundRTPStreamStats.BytesSent
			ri := st.RemoteInboundRTPStreamStats
			ps.LostOut += ri.PacketsLost
			ps.JitterOut = max(ps.JitterOut, seconds(ri.Jitter))
			ps.Reports += ri.RoundTripTimeMeasurements
			if ri.RoundTripTimeMeasurements > 0 {
				rtt += ri.RoundTripTime
				rtts++
			}
		}
	}
	if rtts > 0 {
		ps.RTT = rtt / time.Duration(rtts)
	}
	return ps
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second))
}
