package oggopus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCRC checks the Ogg CRC against the check value of its catalogued
// parameters (poly 0x04c11db7, init 0, not reflected, no final XOR): the
// CRC of "123456789" is that of CRC-32/CKSUM before its final XOR
// (0x765e7680 ^ 0xffffffff).
func TestCRC(t *testing.T) {
	if got := crc(0, []byte("123456789")); got != 0x89a1897f {
		t.Errorf("crc = %#x, want 0x89a1897f", got)
	}
	if got := crc(crc(0, []byte("1234")), []byte("56789")); got != 0x89a1897f {
		t.Errorf("incremental crc = %#x", got)
	}
}

// TestReaderLacing reads packets laid out on pages every possible way:
// split across pages at every segment, several on a page, lengths that
// are multiples of 255 (ending in an empty segment), empty packets, and
// a packet spanning three pages.
func TestReaderLacing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pkts := [][]byte{
		{}, {31 << 3}, randBytes(rng, 254), randBytes(rng, 255), randBytes(rng, 256),
		randBytes(rng, 510), {}, randBytes(rng, 1000), randBytes(rng, 65535),
		randBytes(rng, 255*255), randBytes(rng, 3),
	}
	for _, perPage := range []int{1, 2, 3, 4, 7, 254, 255} {
		b := encode(stream(7, headPkt, tagsPkt, perPage, pkts...)...)
		h, got, gaps, err := readAll(b)
		if err != nil || gaps != 0 {
			t.Fatalf("%d segments per page: %v, %d gaps", perPage, err, gaps)
		}
		if h != monoHead {
			t.Errorf("head %+v", h)
		}
		equalPackets(t, pkts, got)
	}
}

// TestReaderStreams: pages of other logical streams, before and among
// the Opus stream's, are skipped, including another Opus stream's.
func TestReaderStreams(t *testing.T) {
	pkts := [][]byte{{1}, {2}, {3}, {4}, {5}}
	opus := stream(7, headPkt, tagsPkt, 2, pkts...)
	vs, vd := lace([]byte("\x80theora..."))
	video := page{flags: flagBOS, serial: 8, segs: vs, data: vd}
	other := stream(9, headPkt, tagsPkt, 1, []byte{9}, []byte{9})
	ps := []page{video, opus[0], other[0], opus[1], {serial: 8, seq: 1, segs: vs, data: vd}}
	ps = append(ps, opus[2], other[1], other[2], opus[3], opus[4])
	// After the Opus stream's end, a chained stream with the same serial
	// is not read.
	ps = append(ps, stream(7, headPkt, tagsPkt, 1, []byte{7})...)
	_, got, gaps, err := readAll(encode(ps...))
	if err != nil || gaps != 0 {
		t.Fatalf("%v, %d gaps", err, gaps)
	}
	equalPackets(t, pkts, got)
}

// TestReaderGap: after ErrPageGap, reading goes on with the packets that
// start after the gap; a packet split across the gap is lost.
func TestReaderGap(t *testing.T) {
	p3 := randBytes(rand.New(rand.NewPCG(5, 6)), 600)
	pkts := [][]byte{{1}, {2}, p3, {4}, {5}, {6}}
	// Pages: 0 ID header, 1 comment header, 2 [1 2], 3 [3a 3b], 4 [3c 4],
	// 5 [5 6].
	for _, tt := range []struct {
		lost int
		want [][]byte
	}{
		{2, [][]byte{p3, {4}, {5}, {6}}},
		{3, [][]byte{{1}, {2}, {4}, {5}, {6}}},
		{4, [][]byte{{1}, {2}, {5}, {6}}},
	} {
		ps := stream(7, headPkt, tagsPkt, 2, pkts...)
		ps = slices.Delete(ps, tt.lost, tt.lost+1)
		r, err := NewReader(bytes.NewReader(encode(ps...)))
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		var errs []error
		for {
			p, err := r.ReadPacket()
			if err == io.EOF {
				break
			}
			if err != nil {
				errs = append(errs, err)
				if !errors.Is(err, ErrPageGap) {
					t.Fatal(err)
				}
				continue
			}
			got = append(got, p)
		}
		equalPackets(t, tt.want, got)
		if len(errs) != 1 {
			t.Errorf("page %d lost: errors %v", tt.lost, errs)
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Errorf("page %d lost: after EOF: %v", tt.lost, err)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	good := func() []page { return stream(7, headPkt, tagsPkt, 255, []byte{1}, []byte{2}) }
	with := func(f func(ps []page) []page) []byte { return encode(f(good())...) }
	head := func(f func(b []byte) []byte) []byte {
		hs, hd := lace(f(bytes.Clone(headPkt)))
		return with(func(ps []page) []page { ps[0].segs, ps[0].data = hs, hd; return ps })
	}
	valid := encode(good()...)
	tests := []struct {
		name string
		in   []byte
		want error // nil: reads fine
	}{
		{"valid", valid, nil},
		{"empty", nil, ErrNotOgg},
		{"not Ogg", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ErrNotOgg},
		{"short not Ogg", []byte("ID3"), ErrNotOgg},
		{"short Ogg", []byte("Og"), ErrTruncated},
		{"Ogg page version 1", func() []byte {
			b := bytes.Clone(valid)
			b[4] = 1
			return fixCRC(b)
		}(), ErrUnsupported},
		{"bad CRC first page", flip(valid, 22), ErrChecksum},
		{"bad CRC in data", flip(valid, len(valid)-1), ErrChecksum},
		{"bad magic", head(func(b []byte) []byte { b[7] = 'X'; return b }), ErrNotOpus},
		{"not Opus", with(func(ps []page) []page {
			ps[0].segs, ps[0].data = lace([]byte("\x7fFLAC\x01\x00"))
			return ps
		}), ErrNotOpus},
		{"Opus stream starts late", with(func(ps []page) []page { ps[0].flags = 0; return ps }), ErrNotOpus},
		{"only non-Opus BOS pages", encode(page{flags: flagBOS, serial: 1, segs: []byte{3}, data: []byte("abc")}), ErrNotOpus},
		{"ID header too short", head(func(b []byte) []byte { return b[:18] }), ErrBadHeader},
		{"ID header longer", head(func(b []byte) []byte { return append(b, 0) }), nil},
		{"version 0.15", head(func(b []byte) []byte { b[8] = 0x0f; return b }), nil},
		{"version 1.0", head(func(b []byte) []byte { b[8] = 0x10; return b }), ErrUnsupported},
		{"no channels", head(func(b []byte) []byte { b[9] = 0; return b }), ErrBadHeader},
		{"3 channels family 0", head(func(b []byte) []byte { b[9] = 3; return b }), ErrBadHeader},
		{"family 1", head(func(b []byte) []byte { b[18] = 1; return append(b, 1, 0, 0) }), ErrUnsupported},
		{"ID header not alone", with(func(ps []page) []page {
			ps[0].segs, ps[0].data = lace(headPkt, tagsPkt)
			return slices.Delete(ps, 1, 2)
		}), ErrBadHeader},
		{"ID header continues", with(func(ps []page) []page {
			ps[0].segs, ps[0].data = append(ps[0].segs, 255), append(ps[0].data, make([]byte, 255)...)
			return ps
		}), ErrBadHeader},
		{"no comment header", with(func(ps []page) []page { ps[0].flags |= flagEOS; return ps[:1] }), ErrBadHeader},
		{"bad comment header", with(func(ps []page) []page {
			ps[1].segs, ps[1].data = lace([]byte("OpusTagz"))
			return ps
		}), ErrBadHeader},
		{"huge comment header", encode(stream(7, headPkt, append(bytes.Clone(tagsPkt), make([]byte, 1<<20)...), 255, []byte{1})...), nil},
		{"no EOS", with(func(ps []page) []page { ps[2].flags = 0; return ps }), ErrTruncated},
		{"no audio pages", with(func(ps []page) []page { ps[1].flags = flagEOS; return ps[:2] }), nil},
		{"truncated page data", valid[:len(valid)-1], ErrTruncated},
		{"truncated segment table", valid[:len(valid)-3], ErrTruncated},
		{"truncated header", valid[:len(valid)-5], ErrTruncated},
		{"lacing past the end", func() []byte {
			ps := good()
			ps[2].segs = []byte{1, 1, 3} // data is 2 bytes
			return appendPage(encode(ps[:2]...), &ps[2])[:len(valid)]
		}(), ErrTruncated},
		{"lacing into the next page", func() []byte {
			ps := stream(7, headPkt, tagsPkt, 1, []byte{1}, []byte{2})
			b := encode(ps...)
			i := len(encode(ps[:2]...))
			b[i+27] = 2 // the page claims 2 bytes, has 1: CRC over the wrong bytes
			return b
		}(), ErrChecksum},
		{"junk where a page starts", append(encode(good()[:2]...), "junkjunkjunkjunkjunkjunkjunkjunk"...), ErrCorrupt},
		{"packet too large", encode(stream(7, headPkt, tagsPkt, 255, make([]byte, MaxPacketSize+1))...), ErrTooLarge},
		{"largest packet", encode(stream(7, headPkt, tagsPkt, 255, make([]byte, MaxPacketSize))...), nil},
		{"second BOS", with(func(ps []page) []page { ps[2].flags |= flagBOS; return ps }), ErrCorrupt},
		{"continued flag without packet", with(func(ps []page) []page { ps[2].flags |= flagContinued; return ps }), ErrCorrupt},
		{"missing continued flag", encode(func() []page {
			ps := stream(7, headPkt, tagsPkt, 1, make([]byte, 300))
			ps[3].flags &^= flagContinued
			return ps
		}()...), ErrCorrupt},
		{"packet open at EOS", encode(func() []page {
			ps := stream(7, headPkt, tagsPkt, 1, make([]byte, 300))
			ps[2].flags |= flagEOS
			return ps[:3]
		}()...), ErrCorrupt},
		{"gap in headers", with(func(ps []page) []page { ps[1].seq = 5; return ps }), ErrPageGap},
	}
	for _, tt := range tests {
		_, _, _, err := readAll(tt.in)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) || !isSentinel(err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestReaderStickyError: after an error other than ErrPageGap, every call
// fails the same way.
func TestReaderStickyError(t *testing.T) {
	b := writeAll(t, monoHead, [][]byte{{31 << 3}, {31 << 3}})
	r, err := NewReader(bytes.NewReader(b[:len(b)-1]))
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := r.ReadPacket()
	_, err2 := r.ReadPacket()
	if !errors.Is(err1, ErrTruncated) || err2 != err1 {
		t.Errorf("errors %v, %v", err1, err2)
	}
}

// TestReaderTruncated: every prefix of a file fails, with ErrNotOgg when
// empty and ErrTruncated otherwise, after returning only whole packets
// that were written.
func TestReaderTruncated(t *testing.T) {
	pkts := smallPackets(rand.New(rand.NewPCG(7, 8)), 20)
	b := writeAll(t, monoHead, pkts)
	for n := range len(b) {
		_, got, _, err := readAll(b[:n])
		want := ErrTruncated
		if n == 0 {
			want = ErrNotOgg
		}
		if !errors.Is(err, want) || !isSentinel(err) {
			t.Fatalf("%d of %d bytes: %v", n, len(b), err)
		}
		equalPackets(t, pkts[:len(got)], got)
	}
}

// TestReaderMangled: changing any byte of a file makes reading it fail
// with one of the package's errors; nothing goes unnoticed.
func TestReaderMangled(t *testing.T) {
	b := writeAll(t, monoHead, smallPackets(rand.New(rand.NewPCG(9, 10)), 10))
	for i := range b {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			m := bytes.Clone(b)
			m[i] ^= mask
			if _, _, _, err := readAll(m); err == nil || !isSentinel(err) {
				t.Fatalf("byte %d ^ %#x: %v", i, mask, err)
			}
		}
	}
}

// flip returns b with byte i inverted.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0xff
	return b
}

// fixCRC recomputes the checksum of the page at the start of b.
func fixCRC(b []byte) []byte {
	nseg := int(b[26])
	end := pageHeaderSize + nseg
	for _, s := range b[pageHeaderSize:end] {
		end += int(s)
	}
	clear(b[22:26])
	binary.LittleEndian.PutUint32(b[22:], crc(0, b[:end]))
	return b
}
