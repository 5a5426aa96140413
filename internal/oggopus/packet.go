package oggopus

import "fmt"

// SampleRate is the rate of Opus timestamps: granule positions, pre-skip
// and PacketSamples count samples at 48 kHz, whatever the rate of the
// audio that was encoded. It is also the RTP clock rate of Opus (RFC
// 7587).
const SampleRate = 48000

const (
	// maxFrameSize is the largest Opus frame (RFC 6716, section 3.2.1).
	maxFrameSize = 1275
	// maxPacketSamples is the longest packet: 120 ms (RFC 6716, section
	// 3.2.5).
	maxPacketSamples = SampleRate * 120 / 1000
)

// PacketSamples returns the duration of the Opus packet pkt in samples at
// 48 kHz: the frame size its TOC byte's configuration names times its
// frame count (RFC 6716, section 3.1). It is what an RTP timestamp
// advances by for the packet, and what the packet adds to an Ogg granule
// position.
//
// PacketSamples checks the packet's framing against the rules of RFC
// 6716, section 3.4 (R1 to R7): it fails with ErrInvalidPacket for an
// empty packet, a frame count of 0 or more than 120 ms of audio, frame
// or padding lengths past the end of the packet, frames larger than 1275
// bytes, and odd-sized code 1 or uneven CBR code 3 packets. It does not
// look inside the frames, which only a decoder can check. A frame of
// length 0 is valid: it asks the decoder for packet loss concealment.
func PacketSamples(pkt []byte) (int, error) {
	if len(pkt) == 0 {
		return 0, fmt.Errorf("%w: empty packet", ErrInvalidPacket)
	}
	toc := pkt[0]
	fs := frameSamples(toc >> 3)
	payload := len(pkt) - 1
	switch toc & 3 {
	case 0: // one frame
		if payload > maxFrameSize {
			return 0, fmt.Errorf("%w: code 0 frame of %d bytes", ErrInvalidPacket, payload)
		}
		return fs, nil
	case 1: // two frames of equal size
		if payload%2 != 0 {
			return 0, fmt.Errorf("%w: code 1 packet with an odd payload of %d bytes", ErrInvalidPacket, payload)
		}
		if payload/2 > maxFrameSize {
			return 0, fmt.Errorf("%w: code 1 frames of %d bytes", ErrInvalidPacket, payload/2)
		}
		return 2 * fs, nil
	case 2: // two frames, the first's length coded
		n, k, ok := frameLength(pkt[1:])
		if !ok {
			return 0, fmt.Errorf("%w: code 2 packet without its frame length", ErrInvalidPacket)
		}
		rest := payload - k
		if n > rest {
			return 0, fmt.Errorf("%w: code 2 frame of %d bytes in %d", ErrInvalidPacket, n, rest)
		}
		if rest-n > maxFrameSize {
			return 0, fmt.Errorf("%w: code 2 second frame of %d bytes", ErrInvalidPacket, rest-n)
		}
		return 2 * fs, nil
	}
	// Code 3: a frame count byte, optional padding, then M frames of
	// equal size (CBR) or M-1 coded lengths and M frames (VBR).
	if len(pkt) < 2 {
		return 0, fmt.Errorf("%w: code 3 packet without its frame count", ErrInvalidPacket)
	}
	vbr, padded, m := pkt[1]&0x80 != 0, pkt[1]&0x40 != 0, int(pkt[1]&0x3f)
	if m == 0 {
		return 0, fmt.Errorf("%w: code 3 packet with no frames", ErrInvalidPacket)
	}
	if m*fs > maxPacketSamples {
		return 0, fmt.Errorf("%w: %d frames of %d samples exceed 120 ms", ErrInvalidPacket, m, fs)
	}
	p, padding := 2, 0
	if padded {
		for {
			if p >= len(pkt) {
				return 0, fmt.Errorf("%w: code 3 packet ends in its padding length", ErrInvalidPacket)
			}
			b := pkt[p]
			p++
			if b < 255 {
				padding += int(b)
				break
			}
			padding += 254
		}
	}
	if padding > len(pkt)-p {
		return 0, fmt.Errorf("%w: %d bytes of padding in %d", ErrInvalidPacket, padding, len(pkt)-p)
	}
	end := len(pkt) - padding
	if !vbr {
		if (end-p)%m != 0 {
			return 0, fmt.Errorf("%w: %d bytes do not divide into %d CBR frames", ErrInvalidPacket, end-p, m)
		}
		if (end-p)/m > maxFrameSize {
			return 0, fmt.Errorf("%w: CBR frames of %d bytes", ErrInvalidPacket, (end-p)/m)
		}
		return m * fs, nil
	}
	total := 0
	for range m - 1 {
		n, k, ok := frameLength(pkt[p:end])
		if !ok {
			return 0, fmt.Errorf("%w: code 3 packet ends in its frame lengths", ErrInvalidPacket)
		}
		p += k
		total += n
	}
	if total > end-p {
		return 0, fmt.Errorf("%w: VBR frames of %d bytes in %d", ErrInvalidPacket, total, end-p)
	}
	if last := end - p - total; last > maxFrameSize {
		return 0, fmt.Errorf("%w: last VBR frame of %d bytes", ErrInvalidPacket, last)
	}
	return m * fs, nil
}

// frameSamples returns the frame size, in samples at 48 kHz, of a TOC
// configuration number (RFC 6716, section 3.1, table 2).
func frameSamples(config byte) int {
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms for each of NB, MB, WB
		return [4]int{480, 960, 1920, 2880}[config%4]
	case config < 16: // Hybrid: 10, 20 ms for each of SWB, FB
		return [2]int{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10, 20 ms for each of NB, WB, SWB, FB
		return [4]int{120, 240, 480, 960}[config%4]
	}
}

// frameLength decodes a frame length (RFC 6716, section 3.2.1) at the
// start of b: n bytes of frame, coded in k bytes. ok is false if b ends
// within the coding.
func frameLength(b []byte) (n, k int, ok bool) {
	if len(b) < 1 {
		return 0, 0, false
	}
	if b[0] < 252 {
		return int(b[0]), 1, true
	}
	if len(b) < 2 {
		return 0, 0, false
	}
	return int(b[1])*4 + int(b[0]), 2, true
}
