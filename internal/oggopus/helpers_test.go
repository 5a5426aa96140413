package oggopus

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// sentinels are the errors every failure must wrap (besides io.EOF).
var sentinels = []error{
	ErrNotOgg, ErrNotOpus, ErrBadHeader, ErrUnsupported, ErrChecksum,
	ErrCorrupt, ErrTruncated, ErrTooLarge, ErrPageGap, ErrInvalidPacket,
	ErrClosed,
}

// isSentinel reports whether err wraps exactly one of the package's
// errors.
func isSentinel(err error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

// readAll reads every packet of b. It stops at the first error other than
// ErrPageGap and returns it, or nil at io.EOF. gaps counts ErrPageGap.
func readAll(b []byte) (h Head, pkts [][]byte, gaps int, err error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Head{}, nil, 0, err
	}
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, ErrPageGap) {
			gaps++
			continue
		}
		if err == io.EOF {
			return r.Head(), pkts, gaps, nil
		}
		if err != nil {
			return r.Head(), pkts, gaps, err
		}
		pkts = append(pkts, p)
	}
}

// writeAll writes an Ogg Opus file of pkts with a Writer.
func writeAll(t testing.TB, h Head, pkts [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if err := w.WritePacket(p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pages parses b into pages, copying their contents; it fails the test on
// a malformed page.
func pages(t testing.TB, b []byte) []page {
	t.Helper()
	r := &Reader{r: bytes.NewReader(b)}
	var ps []page
	for {
		err := r.readPage(len(ps) == 0)
		if err == io.EOF {
			return ps
		}
		if err != nil {
			t.Fatalf("page %d: %v", len(ps), err)
		}
		p := r.page
		p.segs, p.data = bytes.Clone(p.segs), bytes.Clone(p.data)
		ps = append(ps, p)
	}
}

// encode encodes pages, recomputing their checksums.
func encode(ps ...page) []byte {
	var b []byte
	for i := range ps {
		b = appendPage(b, &ps[i])
	}
	return b
}

// lace returns the segment table and data of complete packets.
func lace(pkts ...[]byte) (segs, data []byte) {
	for _, p := range pkts {
		for {
			n := min(len(p), 255)
			segs = append(segs, byte(n))
			data = append(data, p[:n]...)
			p = p[n:]
			if n < 255 {
				break
			}
		}
	}
	return segs, data
}

// paginate puts packets on pages of at most perPage segments, splitting
// packets wherever a page fills up, independently of Writer's policy.
// Sequence numbers start at seq; granule positions are left at 0, which a
// Reader ignores.
func paginate(serial, seq uint32, perPage int, pkts ...[]byte) []page {
	segs, data := lace(pkts...)
	var ps []page
	cont := false
	for len(segs) > 0 {
		n := min(len(segs), perPage)
		size := 0
		for _, s := range segs[:n] {
			size += int(s)
		}
		p := page{serial: serial, seq: seq, segs: segs[:n], data: data[:size]}
		if cont {
			p.flags |= flagContinued
		}
		ps = append(ps, p)
		cont = segs[n-1] == 255
		segs, data, seq = segs[n:], data[size:], seq+1
	}
	return ps
}

// stream builds an Opus stream of pages by hand: the ID header page, the
// comment header page, the audio packets on pages of perPage segments,
// and the last page marked EOS.
func stream(serial uint32, head, tags []byte, perPage int, pkts ...[]byte) []page {
	hs, hd := lace(head)
	ps := []page{{flags: flagBOS, serial: serial, seq: 0, segs: hs, data: hd}}
	ps = append(ps, paginate(serial, 1, maxSegments, tags)...)
	ps = append(ps, paginate(serial, uint32(len(ps)), perPage, pkts...)...)
	ps[len(ps)-1].flags |= flagEOS
	return ps
}

var (
	monoHead = Head{Channels: 1, PreSkip: 312, InputSampleRate: 48000}
	headPkt  = appendHead(nil, monoHead)
	tagsPkt  = appendTags(nil, "test")
)

// padded returns a valid code 3 Opus packet of exactly size bytes (at
// least 3): a 20 ms CELT frame of at most 2 bytes, and as much padding
// as fits.
func padded(size int) []byte {
	for p := size; p >= 0; p-- {
		if n := 2 + padBytes(p) + p; n <= size {
			b := append([]byte{31<<3 | 3, 0x41}, padLength(p)...)
			return append(b, make([]byte, size-n+p)...)
		}
	}
	panic("no padded packet")
}

// padBytes is len(padLength(p)).
func padBytes(p int) int {
	if p == 0 {
		return 1
	}
	return 1 + (p-1)/254
}

// padLength encodes a padding length (RFC 6716, section 3.2.5).
func padLength(p int) []byte {
	var b []byte
	for p > 254 {
		b = append(b, 255)
		p -= 254
	}
	return append(b, byte(p))
}

// testPackets returns n valid Opus packets of assorted codes and sizes,
// including sizes that are multiples of 255 and packets too large for
// one page.
func testPackets(rng *rand.Rand, n int) [][]byte {
	sizes := []int{1, 2, 255, 256, 510, 765, 1020, 1275}
	var pkts [][]byte
	for i := range n {
		var p []byte
		switch i % 7 {
		case 0, 1, 2: // code 0, 20 ms CELT FB
			size := rng.IntN(maxFrameSize + 1)
			if i%3 == 0 {
				size = sizes[rng.IntN(len(sizes))] - 1
			}
			p = append([]byte{31 << 3}, randBytes(rng, size)...)
		case 3: // code 1, two 10 ms SILK WB frames
			p = append([]byte{9<<3 | 1}, randBytes(rng, 2*rng.IntN(400))...)
		case 4: // code 3 VBR, three 20 ms frames
			a, b := rng.IntN(300), rng.IntN(300)
			p = []byte{15<<3 | 3, 0x80 | 3}
			p = append(p, frameLen(a)...)
			p = append(p, frameLen(b)...)
			p = append(p, randBytes(rng, a+b+rng.IntN(300))...)
		case 5: // a packet of 0 frames bytes: loss concealment
			p = []byte{31 << 3}
		case 6:
			p = padded([]int{4, 255, 1000, 65024, 65025, 65026, MaxPacketSize}[rng.IntN(7)])
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// smallPackets returns n packets of testPackets of at most 2,000 bytes.
func smallPackets(rng *rand.Rand, n int) [][]byte {
	var pkts [][]byte
	for len(pkts) < n {
		for _, p := range testPackets(rng, n) {
			if len(p) <= 2000 && len(pkts) < n {
				pkts = append(pkts, p)
			}
		}
	}
	return pkts
}

// frameLen encodes a frame length (RFC 6716, section 3.2.1).
func frameLen(n int) []byte {
	if n < 252 {
		return []byte{byte(n)}
	}
	return []byte{byte(252 + (n-252)%4), byte((n - 252) / 4)}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// equalPackets reports the first difference between two packet lists.
func equalPackets(t testing.TB, want, got [][]byte) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if !bytes.Equal(want[i], got[i]) {
			t.Errorf("packet %d: %d bytes %.16x..., want %d bytes %.16x...", i, len(got[i]), got[i], len(want[i]), want[i])
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d packets, want %d", len(got), len(want))
	}
}
