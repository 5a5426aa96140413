package oggopus

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		head Head
		pkts [][]byte
	}{
		{"no packets", monoHead, nil},
		{"one packet", monoHead, [][]byte{{31 << 3, 1, 2, 3}}},
		{"mono", monoHead, testPackets(rng, 300)},
		{"stereo", Head{Channels: 2, PreSkip: 0, InputSampleRate: 0, OutputGain: -256}, testPackets(rng, 100)},
		{"many small", Head{Channels: 1}, manyTOCOnly(1000)},
		{"largest", monoHead, [][]byte{padded(MaxPacketSize), padded(MaxPacketSize), {31 << 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeAll(t, tt.head, tt.pkts)
			h, got, gaps, err := readAll(b)
			if err != nil || gaps != 0 {
				t.Fatalf("read: %v, %d gaps", err, gaps)
			}
			if h != tt.head {
				t.Errorf("head %+v, want %+v", h, tt.head)
			}
			equalPackets(t, tt.pkts, got)
			checkLayout(t, b, tt.head, tt.pkts)
		})
	}
}

// manyTOCOnly returns n 2.5 ms packets of one byte each.
func manyTOCOnly(n int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = []byte{16 << 3}
	}
	return pkts
}

// checkLayout checks a Writer's output against RFC 7845: the ID header
// alone on the BOS page, the comment header on the next, then the audio
// starting on a fresh page, with granule positions counting every sample
// of the packets ending on a page and before it, and EOS on the last
// page only.
func checkLayout(t *testing.T, b []byte, h Head, pkts [][]byte) {
	t.Helper()
	ps := pages(t, b)
	if len(ps) < 3 {
		t.Fatalf("%d pages", len(ps))
	}
	hs, hd := lace(appendHead(nil, h))
	ts, td := lace(appendTags(nil, "hotline"))
	want0 := page{flags: flagBOS, serial: ps[0].serial, segs: hs, data: hd}
	want1 := page{serial: ps[0].serial, seq: 1, segs: ts, data: td}
	opt := cmp.AllowUnexported(page{})
	if diff := cmp.Diff(want0, ps[0], opt); diff != "" {
		t.Errorf("ID header page (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want1, ps[1], opt); diff != "" {
		t.Errorf("comment header page (-want +got):\n%s", diff)
	}
	var granule int64
	i := 0 // the next packet
	open := false
	for n, p := range ps[2:] {
		seq := uint32(n + 2)
		if p.serial != ps[0].serial || p.seq != seq {
			t.Errorf("page %d: serial %x, sequence number %d", seq, p.serial, p.seq)
		}
		if got, want := p.flags&flagContinued != 0, open; got != want {
			t.Errorf("page %d: continued %v, want %v", seq, got, want)
		}
		if got, want := p.flags&flagEOS != 0, n == len(ps)-3; got != want {
			t.Errorf("page %d: EOS %v, want %v", seq, got, want)
		}
		ended := false
		for _, s := range p.segs {
			open = s == 255
			if !open {
				samples, err := PacketSamples(pkts[i])
				if err != nil {
					t.Fatal(err)
				}
				granule += int64(samples)
				i++
				ended = true
			}
		}
		want := granule
		if !ended && len(p.segs) > 0 {
			want = -1
		}
		if p.granule != want {
			t.Errorf("page %d: granule position %d, want %d", seq, p.granule, want)
		}
	}
	if i != len(pkts) {
		t.Errorf("%d packets on the pages, want %d", i, len(pkts))
	}
}

func TestWriterPages(t *testing.T) {
	// 20 ms packets gather on pages of one second.
	pkts := make([][]byte, 120)
	for i := range pkts {
		pkts[i] = []byte{31 << 3, byte(i)}
	}
	ps := pages(t, writeAll(t, monoHead, pkts))
	var perPage []int
	for _, p := range ps[2:] {
		perPage = append(perPage, len(p.segs))
	}
	if diff := cmp.Diff([]int{50, 50, 20}, perPage); diff != "" {
		t.Errorf("packets per page (-want +got):\n%s", diff)
	}
	// A packet that would not fit on the page starts a new one; one that
	// fits exactly does not.
	for _, tt := range []struct {
		size int
		want []int
	}{
		{64000, []int{4 + 251, 4}},
		{64300, []int{4, 253, 4}},
	} {
		ps = pages(t, writeAll(t, monoHead, [][]byte{padded(1000), padded(tt.size), padded(1000)}))
		perPage = perPage[:0]
		for _, p := range ps[2:] {
			perPage = append(perPage, len(p.segs))
		}
		if diff := cmp.Diff(tt.want, perPage); diff != "" {
			t.Errorf("%d bytes: segments per page (-want +got):\n%s", tt.size, diff)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	for _, tt := range []struct {
		head Head
		want error
	}{
		{Head{}, ErrBadHeader},
		{Head{Channels: 3}, ErrBadHeader},
		{Head{Channels: -1}, ErrBadHeader},
		{Head{Channels: 2, MappingFamily: 1}, ErrUnsupported},
		{Head{Channels: 1, MappingFamily: 255}, ErrUnsupported},
	} {
		if _, err := NewWriter(io.Discard, tt.head); !errors.Is(err, tt.want) {
			t.Errorf("%+v: %v, want %v", tt.head, err, tt.want)
		}
	}

	// Rejected packets are not written; the Writer goes on.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, monoHead)
	if err != nil {
		t.Fatal(err)
	}
	good := []byte{31 << 3, 7}
	for _, tt := range []struct {
		pkt  []byte
		want error
	}{
		{nil, ErrInvalidPacket},
		{[]byte{31<<3 | 1, 1}, ErrInvalidPacket},
		{padded(MaxPacketSize + 1), ErrTooLarge},
		{good, nil},
	} {
		if err := w.WritePacket(tt.pkt); !errors.Is(err, tt.want) {
			t.Errorf("packet of %d bytes: %v, want %v", len(tt.pkt), err, tt.want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WritePacket(good); !errors.Is(err, ErrClosed) {
		t.Errorf("WritePacket after Close: %v", err)
	}
	if _, got, _, err := readAll(buf.Bytes()); err != nil || !cmp.Equal(got, [][]byte{good}) {
		t.Errorf("read back %x, %v", got, err)
	}
}

// failWriter fails every write after the first n.
type failWriter struct{ n int }

var errWrite = errors.New("disk full")

func (w *failWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, errWrite
	}
	w.n--
	return len(b), nil
}

func TestWriterWriteError(t *testing.T) {
	if _, err := NewWriter(&failWriter{n: 1}, monoHead); err != errWrite {
		t.Fatalf("NewWriter: %v", err)
	}
	w, err := NewWriter(&failWriter{n: 2}, monoHead)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 100 {
		if werr = w.WritePacket([]byte{31 << 3}); werr != nil {
			break
		}
	}
	if werr != errWrite {
		t.Errorf("WritePacket: %v", werr)
	}
	if err := w.WritePacket([]byte{31 << 3}); err != errWrite {
		t.Errorf("WritePacket after the error: %v", err)
	}
	if err := w.Close(); err != errWrite {
		t.Errorf("Close: %v", err)
	}
	w, _ = NewWriter(&failWriter{n: 2}, monoHead)
	if err := w.Close(); err != errWrite {
		t.Errorf("Close: %v", err)
	}
}
