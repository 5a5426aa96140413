package audiotest

import (
	"math"
	"math/cmplx"
	"time"
)

// Thresholds for the score of [Similarity], set from the scores that
// TestSimilarity measures, with a margin. A score between the two is
// neither: a test should say so rather than pass or fail on it.
const (
	// Correlated is the least score of what was played, heard again. The
	// tests' recordings (Opus, delays up to 2 s, up to 6 % of packets
	// lost and not concealed, late start and early end, 20 dB quieter,
	// a jitter buffer's jumps, a clock 0.3 % fast) score 0.887 to 0.999.
	Correlated = 0.7
	// Uncorrelated is the most score of anything else. Another sentence
	// in the same voice scores 0.141 to 0.338; white noise, silence and
	// Opus packets of random bytes (ciphertext played as audio) 0 to 0.204.
	Uncorrelated = 0.45
)

// MaxLag is how far apart in time [Similarity] looks for what was played
// in what was recorded, either way.
const MaxLag = 3 * time.Second

const (
	hop      = Rate / 100                            // samples between frames: 10 ms
	window   = Rate / 40                             // samples in a frame: 25 ms
	nfft     = 512                                   // FFT size, at least window
	bands    = 12                                    // bands per frame, 100 Hz to 7 kHz
	floorDB  = 40                                    // dynamic range kept below the loudest band
	maxLag   = int(MaxLag / (10 * time.Millisecond)) // in frames
	minFrame = 50                                    // frames two signals must share, at least: 0.5 s
	span     = 100                                   // frames in a scoring span: 1 s
	slack    = 10                                    // frames a span may move from the overall lag: 100 ms
	quietDB  = 3                                     // a span of played audio with less spread is silence
)

// Similarity scores how well recorded, a recording of played (both at
// [Rate]), matches it, from -1 to 1, and says how much later what was
// played comes in recorded: recorded[t+lag] ≈ played[t], to 10 ms, within
// [MaxLag] either way. Compare the score with [Correlated] and
// [Uncorrelated].
//
// It compares spectrograms, not waveforms, so that a lossy codec's
// changes to phase, gain and fine detail, and a jitter buffer's stretching
// of time, matter little, while different words in the same voice differ.
// Each signal becomes a log spectrogram: 12 bands from 100 Hz to 7 kHz,
// every 10 ms, floored 40 dB below its loudest. The lag is where the
// spectrograms correlate best over their overlap, weighted by how much of
// the shorter signal overlaps. The score is then the mean, over spans of
// 1 s of played (half overlapping; silent ones left out), of each span's
// best correlation within 100 ms of that lag: a recording that drifts or
// jumps a little still scores high. Played audio the recording does not
// reach (it started late or stopped early) is not scored; played audio it
// reaches but does not contain (it went silent) scores about 0.
func Similarity(played, recorded []float32) (score float64, lag time.Duration) {
	a, b := spectrogram(played), spectrogram(recorded)
	l0, ok := overallLag(a, b)
	if !ok {
		return 0, 0
	}
	var sum float64
	var n int
	for s := 0; s+span <= len(a); s += span / 2 {
		if spread(a[s:s+span]) < quietDB {
			continue
		}
		best, found := -1.0, false
		for l := l0 - slack; l <= l0+slack; l++ {
			if s+l < 0 || s+l+span > len(b) {
				continue
			}
			best, found = max(best, correlate(a[s:s+span], b[s+l:s+l+span])), true
		}
		if found {
			sum += best
			n++
		}
	}
	if n == 0 {
		return 0, time.Duration(l0) * 10 * time.Millisecond
	}
	return sum / float64(n), time.Duration(l0) * 10 * time.Millisecond
}

// A frame is a 10 ms frame's log energy in each band, in dB.
type frame [bands]float64

// overallLag returns the lag, in frames, at which b matches a best.
func overallLag(a, b []frame) (int, bool) {
	shorter := min(len(a), len(b))
	best, lag, ok := math.Inf(-1), 0, false
	for l := -maxLag; l <= maxLag; l++ {
		lo, hi := max(0, -l), min(len(a), len(b)-l)
		n := hi - lo
		if n < min(minFrame, shorter) || n < 2 {
			continue
		}
		r := correlate(a[lo:hi], b[lo+l:hi+l]) * float64(n) / float64(shorter)
		if r > best {
			best, lag, ok = r, l, true
		}
	}
	return lag, ok
}

// correlate returns the correlation of a and b, frame by frame over the
// shorter, each band's mean taken out.
func correlate(a, b []frame) float64 {
	n := min(len(a), len(b))
	if n < 1 {
		return 0
	}
	var ma, mb frame
	for i := range n {
		for k := range bands {
			ma[k] += a[i][k]
			mb[k] += b[i][k]
		}
	}
	for k := range bands {
		ma[k] /= float64(n)
		mb[k] /= float64(n)
	}
	var sab, saa, sbb float64
	for i := range n {
		for k := range bands {
			da, db := a[i][k]-ma[k], b[i][k]-mb[k]
			sab += da * db
			saa += da * da
			sbb += db * db
		}
	}
	if saa == 0 || sbb == 0 {
		return 0 // silence, or constant: nothing to match
	}
	return sab / math.Sqrt(saa*sbb)
}

// spread returns the standard deviation of a's energies about each band's
// mean, in dB.
func spread(a []frame) float64 {
	var m frame
	for _, f := range a {
		for k := range bands {
			m[k] += f[k]
		}
	}
	var v float64
	for _, f := range a {
		for k := range bands {
			d := f[k] - m[k]/float64(len(a))
			v += d * d
		}
	}
	return math.Sqrt(v / float64(len(a)*bands))
}

// spectrogram returns x's log energy in bands, every 10 ms over 25 ms
// Hann windows, floored floorDB below its loudest.
func spectrogram(x []float32) []frame {
	if len(x) < window {
		return nil
	}
	var edges [bands + 1]int // FFT bins, log spaced
	for i := range edges {
		f := 100 * math.Pow(7000.0/100, float64(i)/bands)
		edges[i] = int(math.Round(f * nfft / Rate))
		if i > 0 {
			edges[i] = max(edges[i], edges[i-1]+1)
		}
	}
	var hann [window]float64
	for i := range hann {
		hann[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/window)
	}
	out := make([]frame, (len(x)-window)/hop+1)
	buf := make([]complex128, nfft)
	peak := math.Inf(-1)
	for t := range out {
		clear(buf)
		for i, h := range hann {
			buf[i] = complex(float64(x[t*hop+i])*h, 0)
		}
		fft(buf)
		for k := range bands {
			var e float64
			for _, c := range buf[edges[k]:edges[k+1]] {
				e += real(c)*real(c) + imag(c)*imag(c)
			}
			out[t][k] = 10 * math.Log10(e+1e-12)
			peak = max(peak, out[t][k])
		}
	}
	for t := range out {
		for k := range bands {
			out[t][k] = max(out[t][k], peak-floorDB)
		}
	}
	return out
}

// fft transforms x in place; len(x) is a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ { // bit-reversal permutation
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for s := 0; s < n; s += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				u, v := x[s+k], x[s+k+size/2]*wk
				x[s+k], x[s+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
}
