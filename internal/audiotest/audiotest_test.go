package audiotest

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var sentences = []string{
	"The quick brown fox jumps over the lazy dog, and then it runs away into the forest.",
	"Please call me back tomorrow morning, I will be at the office after nine o'clock.",
	"Hotline keeps every message encrypted from one end to the other, even on the server.",
	"She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
	"One, two, three, four, five, six, seven, eight, nine, ten.",
	"It was the best of times, it was the worst of times, it was the age of wisdom.",
}

func TestSpeech(t *testing.T) {
	dir := t.TempDir()
	wav, ogg := Speech(t, dir, sentences[0])

	b, err := os.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", wav)
	}
	format, channels := binary.LittleEndian.Uint16(b[20:]), binary.LittleEndian.Uint16(b[22:])
	rate, bits := binary.LittleEndian.Uint32(b[24:]), binary.LittleEndian.Uint16(b[34:])
	if format != 1 || channels != 1 || rate != 48000 || bits != 16 {
		t.Errorf("WAV format %d, %d channels, %d Hz, %d bits; want PCM (1), 1, 48000, 16", format, channels, rate, bits)
	}

	pages := readOgg(t, ogg)
	if len(pages) < 3 {
		t.Fatalf("%d Ogg pages, want a header, tags and audio", len(pages))
	}
	for i, p := range pages[2:] {
		if len(p.packets) != 1 {
			t.Fatalf("page %d holds %d packets, want 1", i+2, len(p.packets))
		}
		if d := opusDuration(p.packets[0]); d != 20*time.Millisecond {
			t.Fatalf("page %d: packet of %v, want 20ms", i+2, d)
		}
	}
	pcm := Decode(t, ogg)
	t.Logf("%d Opus packets, %v of audio", len(pages)-2, time.Duration(len(pcm))*time.Second/Rate)
	if len(pcm) < Rate {
		t.Errorf("decoded %d samples, want some seconds at %d Hz", len(pcm), Rate)
	}
}

// opusDuration returns the duration of an Opus packet of one frame
// (RFC 6716, section 3.1), or 0 for other packets.
func opusDuration(p []byte) time.Duration {
	if len(p) == 0 || p[0]&3 != 0 {
		return 0
	}
	config := p[0] >> 3
	switch {
	case config < 12: // SILK
		return []time.Duration{10, 20, 40, 60}[config&3] * time.Millisecond
	case config < 16: // hybrid
		return []time.Duration{10, 20}[config&1] * time.Millisecond
	default: // CELT
		return []time.Duration{2500, 5000, 10000, 20000}[config&3] * time.Microsecond
	}
}

// TestSimilarity measures the score of what was played against
// recordings of it, altered as a call might, and of other sounds, and
// checks the thresholds separate them with a margin.
func TestSimilarity(t *testing.T) {
	dir := t.TempDir()
	var played, sent [][]float32 // each sentence as played, and after Opus
	var oggs []string
	for _, s := range sentences {
		wav, ogg := Speech(t, dir, s)
		played = append(played, Decode(t, wav))
		sent = append(sent, Decode(t, ogg))
		oggs = append(oggs, ogg)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const ms = Rate / 1000

	type tc struct {
		name     string
		recorded func(i int) []float32 // a recording in a call playing sentence i
		heard    bool
		lag      time.Duration // if heard
	}
	tests := []tc{
		{"opus", func(i int) []float32 { return sent[i] }, true, 0},
		{"opus, delayed 300 ms, 5 packets lost", func(i int) []float32 {
			return lose(delay(sent[i], 300*ms), 5, rng)
		}, true, 300 * time.Millisecond},
		{"opus, delayed 2 s, 15 packets lost (6 %)", func(i int) []float32 {
			return lose(delay(sent[i], 2000*ms), 15, rng)
		}, true, 2 * time.Second},
		{"opus, delayed 300 ms, recorded from 1 s to 1 s before the end", func(i int) []float32 {
			r := delay(sent[i], 300*ms)
			return r[Rate : len(r)-Rate]
		}, true, -700 * time.Millisecond},
		{"opus, delayed 1 s, 2 s of silence after", func(i int) []float32 {
			return append(delay(sent[i], 1000*ms), make([]float32, 2*Rate)...)
		}, true, time.Second},
		{"opus, 20 dB quieter", func(i int) []float32 { return gain(sent[i], 0.1) }, true, 0},
		{"opus, a jitter buffer adds 60 ms at 1/3, drops 40 ms at 2/3", func(i int) []float32 {
			x := sent[i]
			a, b := len(x)/3, 2*len(x)/3
			r := append(append([]float32(nil), x[:a]...), make([]float32, 60*ms)...)
			r = append(r, x[a:b]...)
			return append(r, x[b+40*ms:]...)
		}, true, 0},
		{"opus, recorder's clock 0.3 % fast", func(i int) []float32 { return stretch(sent[i], 1.003) }, true, 0},
		{"opus, another sentence", nil, false, 0},
		{"white noise", func(i int) []float32 { return noise(len(played[i]), 0.1, rng) }, false, 0},
		{"silence", func(i int) []float32 { return make([]float32, len(played[i])) }, false, 0},
		{"opus packets of random bytes", func(i int) []float32 {
			r := Decode(t, scramble(t, oggs[i], rng))
			if len(r) < len(sent[i])/2 {
				t.Fatalf("random packets decoded to %d samples, want about %d", len(r), len(sent[i]))
			}
			return r
		}, false, 0},
	}

	leastHeard, mostNot := 1.0, -1.0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			least, most := 1.0, -1.0
			check := func(i, j int, rec []float32) {
				score, lag := Similarity(played[i], rec)
				least, most = min(least, score), max(most, score)
				switch {
				case tt.heard && score < Correlated:
					t.Errorf("sentence %d: score %.3f, want at least %v", i, score, Correlated)
				case !tt.heard && score > Uncorrelated:
					t.Errorf("sentence %d against %d: score %.3f, want at most %v", i, j, score, Uncorrelated)
				}
				if tt.heard && (lag-tt.lag).Abs() > 20*time.Millisecond {
					t.Errorf("sentence %d: lag %v, want %v", i, lag, tt.lag)
				}
			}
			for i := range sentences {
				if tt.recorded != nil {
					check(i, i, tt.recorded(i))
					continue
				}
				for j := range sentences {
					if j != i {
						check(i, j, sent[j])
					}
				}
			}
			t.Logf("scores %.3f to %.3f", least, most)
			if tt.heard {
				leastHeard = min(leastHeard, least)
			} else {
				mostNot = max(mostNot, most)
			}
		})
	}
	t.Logf("heard: at least %.3f (Correlated = %v); not heard: at most %.3f (Uncorrelated = %v)", leastHeard, Correlated, mostNot, Uncorrelated)
}

// delay returns x after n samples of silence.
func delay(x []float32, n int) []float32 {
	return append(make([]float32, n), x...)
}

// lose returns x with n random 20 ms packets' worth of samples zeroed, as
// lost packets would be without concealment.
func lose(x []float32, n int, rng *rand.Rand) []float32 {
	const packet = Rate / 50
	y := append([]float32(nil), x...)
	for range n {
		i := rng.IntN(len(y)/packet) * packet
		clear(y[i : i+packet])
	}
	return y
}

func gain(x []float32, g float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v * g
	}
	return y
}

// stretch resamples x as a clock f times as fast would record it.
func stretch(x []float32, f float64) []float32 {
	y := make([]float32, int(float64(len(x)-1)/f))
	for i := range y {
		p := float64(i) * f
		j := int(p)
		frac := float32(p - float64(j))
		y[i] = x[j]*(1-frac) + x[j+1]*frac
	}
	return y
}

func noise(n int, sd float64, rng *rand.Rand) []float32 {
	y := make([]float32, n)
	for i := range y {
		y[i] = float32(rng.NormFloat64() * sd)
	}
	return y
}

// An oggPage is an Ogg page (RFC 3533) split into its packets, assuming
// none continues onto the next page, as in Speech's files.
type oggPage struct {
	header  []byte // up to the segment table
	packets [][]byte
}

func readOgg(t *testing.T, path string) []oggPage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pages []oggPage
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			t.Fatalf("%s: bad Ogg page at byte %d", path, len(b))
		}
		p := oggPage{header: b[:27:27]}
		lacing := b[27 : 27+int(b[26])]
		body := b[27+len(lacing):]
		var packet int
		for i, l := range lacing {
			packet += int(l)
			if l < 255 || i == len(lacing)-1 {
				p.packets = append(p.packets, body[:packet])
				body = body[packet:]
				packet = 0
			}
		}
		pages = append(pages, p)
		b = body
	}
	return pages
}

// writeOgg writes pages to a file, with their checksums.
func writeOgg(t *testing.T, path string, pages []oggPage) {
	t.Helper()
	var out bytes.Buffer
	for _, p := range pages {
		var lacing []byte
		for _, pk := range p.packets {
			lacing = append(lacing, bytes.Repeat([]byte{255}, len(pk)/255)...)
			lacing = append(lacing, byte(len(pk)%255))
		}
		b := append([]byte(nil), p.header[:26]...)
		b = append(b, byte(len(lacing)))
		b = append(b, lacing...)
		for _, pk := range p.packets {
			b = append(b, pk...)
		}
		binary.LittleEndian.PutUint32(b[22:], 0)
		binary.LittleEndian.PutUint32(b[22:], oggCRC(b))
		out.Write(b)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// oggCRC is Ogg's CRC-32: polynomial 0x04c11db7, not reflected, no xor.
func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, x := range b {
		crc ^= uint32(x) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// scramble writes a copy of the Ogg Opus file path whose audio packets
// are random bytes of the same lengths: what a receiver would play if it
// decoded ciphertext.
func scramble(t *testing.T, path string, rng *rand.Rand) string {
	t.Helper()
	pages := readOgg(t, path)
	for _, p := range pages[2:] {
		for i, pk := range p.packets {
			r := make([]byte, len(pk))
			for j := range r {
				r[j] = byte(rng.Uint32())
			}
			p.packets[i] = r
		}
	}
	out := filepath.Join(t.TempDir(), "scrambled.ogg")
	writeOgg(t, out, pages)
	return out
}

// TestOggRoundTrip checks the test's Ogg reader and writer against
// ffmpeg's files, checksums included.
func TestOggRoundTrip(t *testing.T) {
	_, ogg := Speech(t, t.TempDir(), sentences[4])
	want, err := os.ReadFile(ogg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "copy.ogg")
	writeOgg(t, out, readOgg(t, ogg))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rewritten Ogg file differs from ffmpeg's")
	}
}

func TestFFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 8, 64, 512} {
		x := make([]complex128, n)
		for i := range x {
			x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
		want := make([]complex128, n)
		for k := range want {
			for j, v := range x {
				want[k] += v * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
		}
		fft(x)
		for k := range x {
			if cmplx.Abs(x[k]-want[k]) > 1e-9*float64(n) {
				t.Fatalf("n=%d: bin %d is %v, want %v", n, k, x[k], want[k])
			}
		}
	}
}

// TestSimilarityShort checks that played audio too short to score
// (under a second) scores 0, and nothing panics.
func TestSimilarityShort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	long := noise(2*Rate, 0.1, rng)
	for _, n := range []int{0, 1, window - 1, window, Rate / 10, Rate / 2} {
		x := noise(n, 0.1, rng)
		for _, pair := range [][2][]float32{{x, x}, {x, long}, {long, x}} {
			if s, _ := Similarity(pair[0], pair[1]); pair[0] == nil || len(pair[0]) == n && s != 0 {
				t.Errorf("%d samples: score %v, want 0", n, s)
			}
		}
	}
}
