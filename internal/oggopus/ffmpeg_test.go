package oggopus

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Interoperability with ffmpeg: files its Opus encoder writes read
// correctly, and files a Writer writes decode to the expected length.

// ffmpeg returns the path of a tool of the ffmpeg suite. The tests need
// it, so its absence is a failure, not a skip.
func ffmpeg(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install ffmpeg (apt-get install ffmpeg) to run the Ogg Opus interoperability tests; CI installs it", tool)
	}
	return path
}

// run runs a tool and returns its standard output.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// opusEncoder returns ffmpeg's arguments for encoding Opus: libopus if
// ffmpeg has it, else its native encoder, and whether it is libopus.
func opusEncoder(t *testing.T, ff string) ([]string, bool) {
	encoders := run(t, ff, "-hide_banner", "-encoders")
	if bytes.Contains(encoders, []byte(" libopus ")) {
		return []string{"-c:a", "libopus"}, true
	}
	t.Log("ffmpeg has no libopus encoder; using its native Opus encoder")
	return []string{"-c:a", "opus", "-strict", "-2"}, false
}

func TestFFmpeg(t *testing.T) {
	ff, ffprobe := ffmpeg(t, "ffmpeg"), ffmpeg(t, "ffprobe")
	enc, libopus := opusEncoder(t, ff)
	const seconds = 2
	tests := []struct {
		name     string
		args     []string // encoder options
		channels int
		frame    int  // packet duration in samples
		libopus  bool // the options need libopus
	}{
		{"mono 20 ms", []string{"-b:a", "32k"}, 1, 960, false},
		{"stereo 60 ms 510 kb/s", []string{"-ac", "2", "-b:a", "510k", "-frame_duration", "60"}, 2, 2880, true},
		{"mono 2.5 ms", []string{"-b:a", "64k", "-frame_duration", "2.5"}, 1, 120, true},
		{"mono 120 ms", []string{"-b:a", "64k", "-frame_duration", "120"}, 1, 5760, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.libopus && !libopus {
				t.Skip("needs ffmpeg's libopus encoder")
			}
			dir := t.TempDir()
			theirs, ours := filepath.Join(dir, "theirs.ogg"), filepath.Join(dir, "ours.ogg")
			args := []string{"-nostdin", "-hide_banner", "-loglevel", "error",
				"-f", "lavfi", "-i", "sine=frequency=440:duration=" + strconv.Itoa(seconds)}
			args = append(args, enc...)
			args = append(args, tt.args...)
			run(t, ff, append(args, theirs)...)
			b, err := os.ReadFile(theirs)
			if err != nil {
				t.Fatal(err)
			}

			// ffmpeg's file: the packets cover the audio plus the
			// pre-skip, rounded up to a whole packet.
			h, pkts, gaps, err := readAll(b)
			if err != nil || gaps != 0 {
				t.Fatalf("read ffmpeg's file: %v, %d gaps", err, gaps)
			}
			if h.Channels != tt.channels || h.MappingFamily != 0 {
				t.Errorf("head %+v", h)
			}
			total := 0
			for i, p := range pkts {
				n, err := PacketSamples(p)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if libopus && n != tt.frame {
					t.Errorf("packet %d: %d samples, want %d", i, n, tt.frame)
				}
				total += n
			}
			audio := total - int(h.PreSkip)
			if want := seconds * SampleRate; audio < want || audio >= want+tt.frame {
				t.Errorf("%d packets of %d samples in all, %d after the pre-skip of %d; want %d to %d",
					len(pkts), total, audio, h.PreSkip, want, want+tt.frame-1)
			}
			checkPagination(t, b)

			// Our copy: same packets, and ffmpeg decodes it in full (we
			// do not trim the end).
			checkOurs(t, ff, ffprobe, ours, h, pkts, audio)

			// Our copy with every fifth packet padded to nearly
			// MaxPacketSize, which splits it across pages: the padding
			// changes nothing in the decoded audio.
			padded, repadded := make([][]byte, len(pkts)), 0
			for i, p := range pkts {
				padded[i] = p
				if i%5 == 0 && p[0]&3 == 0 {
					padded[i] = repad(p, MaxPacketSize)
					repadded++
				}
			}
			t.Logf("%d packets, %d padded", len(pkts), repadded)
			if repadded == 0 {
				return // only multi-frame packets, which repad leaves alone
			}
			b = checkOurs(t, ff, ffprobe, ours, h, padded, audio)
			continued := 0
			for _, p := range pages(t, b) {
				if p.flags&flagContinued != 0 {
					continued++
				}
			}
			if continued < repadded {
				t.Errorf("%d pages continue a packet; want at least %d", continued, repadded)
			}
		})
	}
}

// checkOurs writes pkts to path with a Writer, reads them back, has
// ffmpeg decode the file to audio samples and ffprobe read its duration,
// and returns the file.
func checkOurs(t *testing.T, ff, ffprobe, path string, h Head, pkts [][]byte, audio int) []byte {
	t.Helper()
	out := writeAll(t, h, pkts)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	h2, pkts2, _, err := readAll(out)
	if err != nil || h2 != h {
		t.Fatalf("read our file: %+v, %v", h2, err)
	}
	equalPackets(t, pkts, pkts2)
	pcm := run(t, ff, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-")
	if got := len(pcm) / 2; got != audio {
		t.Errorf("ffmpeg decodes %d samples of our file, want %d", got, audio)
	}
	if peak := peak(pcm); peak < 1000 {
		t.Errorf("decoded audio peaks at %d: silence", peak)
	}
	probe := run(t, ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path)
	d, err := strconv.ParseFloat(strings.TrimSpace(string(probe)), 64)
	// ffprobe reports the last granule position, which includes the
	// pre-skip.
	if want := float64(audio+int(h.PreSkip)) / SampleRate; err != nil || math.Abs(d-want) > 0.001 {
		t.Errorf("ffprobe duration %q, want %.4f", probe, want)
	}
	return out
}

// repad returns the code 0 (one frame) Opus packet p as a code 3 packet
// of one frame with padding, of about size bytes. It decodes exactly as p
// does.
func repad(p []byte, size int) []byte {
	frame := p[1:]
	pad := size - 2 - len(frame)
	for 2+padBytes(pad)+len(frame)+pad > size {
		pad--
	}
	b := append([]byte{p[0] | 3, 0x41}, padLength(pad)...)
	b = append(b, frame...)
	return append(b, make([]byte, pad)...)
}

// checkPagination checks that a file has pages completing several
// packets. (ffmpeg starts a new page rather than split a packet, as a
// Writer does.)
func checkPagination(t *testing.T, b []byte) {
	t.Helper()
	several := false
	for _, p := range pages(t, b) {
		n := 0
		for _, s := range p.segs {
			if s < 255 {
				n++
			}
		}
		several = several || n > 1
	}
	if !several {
		t.Error("no page holds several packets")
	}
}

// peak returns the largest absolute sample of s16le audio.
func peak(pcm []byte) int {
	m := 0
	for i := 0; i+1 < len(pcm); i += 2 {
		v := int(int16(uint16(pcm[i]) | uint16(pcm[i+1])<<8))
		m = max(m, v, -v)
	}
	return m
}

// TestFFmpegNotOpus: an Ogg file of another codec is ErrNotOpus.
func TestFFmpegNotOpus(t *testing.T) {
	ff := ffmpeg(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "flac.oga")
	run(t, ff, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "flac", path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := readAll(b); !errors.Is(err, ErrNotOpus) {
		t.Errorf("Ogg FLAC: %v, want ErrNotOpus", err)
	}
}
