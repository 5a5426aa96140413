package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// TestRecvStats checks the microphone's loss figures (RFC 3550 A.3, A.8)
// on sequences with gaps, wrap-around, reordering and duplicates.
func TestRecvStats(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []uint16
		lost     int64
		max      uint32 // highest extended sequence number
		fraction uint8
	}{
		{"in order", []uint16{1, 2, 3, 4}, 0, 4, 0},
		{"a gap", []uint16{1, 2, 4}, 1, 4, 64},
		{"wrap-around", []uint16{65534, 65535, 0, 2}, 1, 1<<16 + 2, 51},
		{"reordered", []uint16{1, 3, 2}, 0, 3, 0},
		{"late after wrap", []uint16{65535, 1, 0}, 0, 1<<16 + 1, 0},
		{"duplicate", []uint16{1, 2, 2}, -1, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recvStats
			at := time.Unix(1000, 0)
			for i, seq := range tt.seqs {
				r.add(7, seq, uint32(i)*960, 100, at.Add(time.Duration(i)*20*time.Millisecond))
			}
			r.mu.Lock()
			lost := r.lostLocked()
			r.mu.Unlock()
			if lost != tt.lost {
				t.Errorf("lost %d, want %d", lost, tt.lost)
			}
			b, ok := r.report(at.Add(time.Second))
			if !ok {
				t.Fatal("no report")
			}
			if b.SSRC != 7 || b.LastSequenceNumber != tt.max || b.FractionLost != tt.fraction {
				t.Errorf("report %+v, want SSRC 7, highest %d, fraction %d", b, tt.max, tt.fraction)
			}
			if _, ok := r.report(at.Add(time.Minute)); ok {
				t.Error("a report on a source silent for a minute")
			}
		})
	}
}

// TestRoundTrip checks the round-trip time taken from a receiver report
// (RFC 3550 6.4.1).
func TestRoundTrip(t *testing.T) {
	now := time.Now()
	sent := now.Add(-50 * time.Millisecond)
	tests := []struct {
		name  string
		block rtcp.ReceptionReport
		rtt   time.Duration // 0: no measurement
	}{
		{"measured", rtcp.ReceptionReport{SSRC: 5, LastSenderReport: uint32(ntpTime(sent) >> 16), Delay: 65536 / 50}, 30 * time.Millisecond},
		{"no sender report yet", rtcp.ReceptionReport{SSRC: 5}, 0},
		{"from the future", rtcp.ReceptionReport{SSRC: 5, LastSenderReport: uint32(ntpTime(now.Add(time.Second)) >> 16)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &outSlot{ssrc: 5}
			o.receptionReport(&tt.block, now)
			if tt.rtt == 0 {
				if o.remote.reports != 0 {
					t.Errorf("measured %v, want no measurement", o.remote.rtt)
				}
				return
			}
			if o.remote.reports != 1 || (o.remote.rtt-tt.rtt).Abs() > time.Millisecond {
				t.Errorf("RTT %v after %d reports, want %v after 1", o.remote.rtt, o.remote.reports, tt.rtt)
			}
		})
	}
}

func TestNTPTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want uint64
	}{
		{time.Unix(0, 0), 2208988800 << 32},
		{time.Unix(1, 500_000_000), 2208988801<<32 | 1<<31},
	}
	for _, tt := range tests {
		if got := ntpTime(tt.t); got != tt.want {
			t.Errorf("ntpTime(%v) = %#x, want %#x", tt.t, got, tt.want)
		}
	}
}
