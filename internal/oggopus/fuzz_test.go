package oggopus

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// FuzzReader: any input either fails with one of the package's errors or
// reads to the end; no packet exceeds MaxPacketSize, the Reader's buffer
// stays bounded, and reading ends after at most one step per input byte.
// Streams that read cleanly and hold valid Opus packets survive a round
// trip through a Writer.
func FuzzReader(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	f.Add(writeAll(f, monoHead, nil))
	f.Add(writeAll(f, Head{Channels: 2, PreSkip: 0}, smallPackets(rng, 5)))
	f.Add(encode(stream(7, headPkt, tagsPkt, 1, make([]byte, 600), []byte{31 << 3}, nil)...))
	f.Add(encode(stream(7, headPkt, tagsPkt, 3, smallPackets(rng, 4)...)...))
	ps := stream(7, headPkt, tagsPkt, 2, []byte{1}, []byte{2}, make([]byte, 300), []byte{4})
	f.Add(encode(append(ps[:3], ps[4:]...)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("NewReader: %v", err)
			}
			return
		}
		var pkts [][]byte
		clean := true
		for steps := 0; ; steps++ {
			if steps > len(in) {
				t.Fatal("more reads than input bytes")
			}
			p, err := r.ReadPacket()
			if cap(r.pkt) > 2*MaxPacketSize {
				t.Fatalf("packet buffer of %d bytes", cap(r.pkt))
			}
			if err == io.EOF {
				break
			}
			if errors.Is(err, ErrPageGap) {
				clean = false
				continue
			}
			if err != nil {
				if !isSentinel(err) {
					t.Fatalf("ReadPacket: %v", err)
				}
				if _, err2 := r.ReadPacket(); err2 != err {
					t.Fatalf("error %v, then %v", err, err2)
				}
				return
			}
			if len(p) > MaxPacketSize {
				t.Fatalf("packet of %d bytes", len(p))
			}
			if _, err := PacketSamples(p); err != nil {
				clean = false
			}
			pkts = append(pkts, p)
		}
		if !clean {
			return
		}
		h, got, gaps, err := readAll(writeAll(t, r.Head(), pkts))
		if err != nil || gaps != 0 || h != r.Head() {
			t.Fatalf("round trip: %+v, %v, %d gaps", h, err, gaps)
		}
		equalPackets(t, pkts, got)
	})
}
