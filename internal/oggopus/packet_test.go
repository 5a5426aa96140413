package oggopus

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// configSamples is RFC 6716's table 2, section 3.1: the frame size of
// each TOC configuration, in samples at 48 kHz.
var configSamples = [32]int{
	480, 960, 1920, 2880, // SILK NB: 10, 20, 40, 60 ms
	480, 960, 1920, 2880, // SILK MB
	480, 960, 1920, 2880, // SILK WB
	480, 960, // Hybrid SWB: 10, 20 ms
	480, 960, // Hybrid FB
	120, 240, 480, 960, // CELT NB: 2.5, 5, 10, 20 ms
	120, 240, 480, 960, // CELT WB
	120, 240, 480, 960, // CELT SWB
	120, 240, 480, 960, // CELT FB
}

// TestPacketSamples covers every configuration, both stereo flags and all
// four frame count codes, including every code 3 frame count and the
// 120 ms limit.
func TestPacketSamples(t *testing.T) {
	type tc struct {
		name string
		pkt  []byte
		want int // 0: ErrInvalidPacket
	}
	var tests []tc
	add := func(pkt []byte, want int, format string, args ...any) {
		tests = append(tests, tc{fmt.Sprintf("%x/", pkt[0]) + fmt.Sprintf(format, args...), pkt, want})
	}
	for config := range 32 {
		fs := configSamples[config]
		for _, s := range []byte{0, 4} {
			toc := byte(config<<3) | s
			// Code 0: one frame of up to 1275 bytes.
			add([]byte{toc}, fs, "code 0 empty")
			add(append([]byte{toc}, make([]byte, 1275)...), fs, "code 0 max")
			add(append([]byte{toc}, make([]byte, 1276)...), 0, "code 0 over")
			// Code 1: two frames of equal size.
			add([]byte{toc | 1}, 2*fs, "code 1 empty")
			add([]byte{toc | 1, 1, 2}, 2*fs, "code 1")
			add([]byte{toc | 1, 1}, 0, "code 1 odd")
			add(append([]byte{toc | 1}, make([]byte, 2550)...), 2*fs, "code 1 max")
			add(append([]byte{toc | 1}, make([]byte, 2552)...), 0, "code 1 over")
			// Code 2: two frames, the first's length coded.
			add([]byte{toc | 2}, 0, "code 2 no length")
			add([]byte{toc | 2, 0}, 2*fs, "code 2 empty")
			add([]byte{toc | 2, 2, 1, 2, 3}, 2*fs, "code 2")
			add([]byte{toc | 2, 3, 1, 2}, 0, "code 2 past end")
			add([]byte{toc | 2, 252}, 0, "code 2 half a length")
			add(append([]byte{toc | 2, 255, 255}, make([]byte, 1275)...), 2*fs, "code 2 max first")
			add(append([]byte{toc | 2, 0}, make([]byte, 1275)...), 2*fs, "code 2 max second")
			add(append([]byte{toc | 2, 0}, make([]byte, 1276)...), 0, "code 2 second over")
			// Code 3: M frames, 1 <= M and M frames <= 120 ms.
			add([]byte{toc | 3}, 0, "code 3 no count")
			for m := range 64 {
				want := m * fs
				if m == 0 || want > 5760 {
					want = 0
				}
				add([]byte{toc | 3, byte(m)}, want, "code 3 CBR M=%d", m)
				add(append([]byte{toc | 3, 0x40 | byte(m), 1}, make([]byte, m+1)...), want, "code 3 CBR padded M=%d", m)
				add(append([]byte{toc | 3, 0x80 | byte(m)}, make([]byte, max(m-1, 0))...), want, "code 3 VBR M=%d", m)
			}
		}
	}
	for _, tt := range tests {
		got, err := PacketSamples(tt.pkt)
		if tt.want == 0 {
			if !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("%s: got %d, %v; want ErrInvalidPacket", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

// TestPacketSamplesCode3 covers the framing of code 3 packets.
func TestPacketSamplesCode3(t *testing.T) {
	const toc = 31<<3 | 3 // 20 ms CELT FB
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	zeros := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name string
		pkt  []byte
		want int // 0: ErrInvalidPacket
	}{
		{"empty", nil, 0},
		{"CBR 2 frames", cat([]byte{toc, 2}, zeros(10)), 1920},
		{"CBR uneven", cat([]byte{toc, 2}, zeros(11)), 0},
		{"CBR max frames", cat([]byte{toc, 2}, zeros(2550)), 1920},
		{"CBR frames over 1275", cat([]byte{toc, 2}, zeros(2552)), 0},
		{"CBR padding", cat([]byte{toc, 0x40 | 2, 3}, zeros(10), zeros(3)), 1920},
		{"CBR padding all", cat([]byte{toc, 0x40 | 1, 3}, zeros(3)), 960},
		{"CBR padding past end", cat([]byte{toc, 0x40 | 1, 4}, zeros(3)), 0},
		{"CBR padding length missing", []byte{toc, 0x40 | 1}, 0},
		{"CBR padding 254", cat([]byte{toc, 0x40 | 1, 254}, zeros(254)), 960},
		{"CBR padding 255+0", cat([]byte{toc, 0x40 | 1, 255, 0}, zeros(254)), 960},
		{"CBR padding 255+1", cat([]byte{toc, 0x40 | 1, 255, 1}, zeros(255)), 960},
		{"CBR padding 255+1 short", cat([]byte{toc, 0x40 | 1, 255, 1}, zeros(254)), 0},
		{"CBR padding 255 then end", []byte{toc, 0x40 | 1, 255}, 0},
		{"CBR padding makes frames uneven", cat([]byte{toc, 0x40 | 2, 1}, zeros(4)), 0},
		{"VBR", cat([]byte{toc, 0x80 | 3, 1, 2}, zeros(3+5)), 2880},
		{"VBR last frame empty", cat([]byte{toc, 0x80 | 3, 1, 2}, zeros(3)), 2880},
		{"VBR lengths past end", cat([]byte{toc, 0x80 | 3, 1, 2}, zeros(2)), 0},
		{"VBR missing length", []byte{toc, 0x80 | 3, 1}, 0},
		{"VBR half a length", []byte{toc, 0x80 | 2, 253}, 0},
		{"VBR two-byte length", cat([]byte{toc, 0x80 | 2, 253, 1}, zeros(257)), 1920},
		{"VBR last frame over 1275", cat([]byte{toc, 0x80 | 2, 0}, zeros(1276)), 0},
		{"VBR padded", cat([]byte{toc, 0xc0 | 2, 2, 1}, zeros(1+4), zeros(2)), 1920},
		{"VBR padding hides lengths", cat([]byte{toc, 0xc0 | 2, 2, 1}, zeros(1)), 0},
		{"VBR lengths in padding", cat([]byte{toc, 0xc0 | 2, 2, 5}, zeros(2)), 0},
		{"120 ms of 2.5 ms frames", cat([]byte{16<<3 | 3, 48}), 5760},
		{"over 120 ms of 2.5 ms frames", cat([]byte{16<<3 | 3, 49}), 0},
		{"120 ms of 60 ms frames", cat([]byte{3<<3 | 3, 2}), 5760},
		{"180 ms of 60 ms frames", cat([]byte{3<<3 | 3, 3}), 0},
		{"max size", cat([]byte{16<<3 | 3, 48}, zeros(48*1275)), 5760},
	}
	for _, tt := range tests {
		got, err := PacketSamples(tt.pkt)
		if tt.want == 0 {
			if !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("%s: got %d, %v; want ErrInvalidPacket", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

// FuzzPacketSamples: any input either fails with ErrInvalidPacket or has
// a whole number of the TOC's frames, 1 to 120 ms of them.
func FuzzPacketSamples(f *testing.F) {
	for _, s := range []string{"", "\xf8", "\xf9\x00\x00", "\xfa\x01\x00", "\xfb\x03", "\xfb\xc3\x02\x01\x00\x00\x00", "\x1b\x02", "\xfb\x41\xff\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		n, err := PacketSamples(pkt)
		if err != nil {
			if !errors.Is(err, ErrInvalidPacket) || n != 0 {
				t.Fatalf("%d, %v", n, err)
			}
			return
		}
		frames := [4]int{1, 2, 2, 0}[pkt[0]&3]
		if frames == 0 {
			frames = int(pkt[1] & 0x3f)
		}
		if fs := configSamples[pkt[0]>>3]; n != frames*fs || n < 120 || n > 5760 {
			t.Fatalf("%x: %d samples", pkt, n)
		}
	})
}

func TestPadded(t *testing.T) {
	for size := 3; size <= MaxPacketSize+1; size += 1 + size/300 {
		p := padded(size)
		if n, err := PacketSamples(p); len(p) != size || n != 960 || err != nil {
			t.Fatalf("padded(%d): %d bytes, %d samples, %v", size, len(p), n, err)
		}
	}
}
