// Package audiotest helps tests check what was heard in a call: it makes
// speech to play into one end ([Speech]), decodes what the other end
// recorded ([Decode]) and scores how well the two match ([Similarity]).
//
//	wav, ogg := audiotest.Speech(t, dir, "Testing, one, two, three.")
//	// … send ogg's packets (or play wav) into a call, record the far end to rec.ogg …
//	score, lag := audiotest.Similarity(audiotest.Decode(t, wav), audiotest.Decode(t, rec))
//	if score < audiotest.Correlated {
//		t.Errorf("far end heard something else: score %.2f (lag %v)", score, lag)
//	}
//
// A test that checks nothing was heard (a muted device, a participant who
// left, audio that could not be decrypted) wants score <= [Uncorrelated].
//
// It needs espeak-ng, sox and ffmpeg (with libopus) on the PATH, and fails
// the test, naming the one missing, without them.
package audiotest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Rate is the sample rate of what [Decode] returns, in hertz.
const Rate = 16000

// Speech synthesises text, spoken in English, into dir: wav is 48 kHz mono
// 16-bit PCM normalised to -1 dBFS, ogg is the same encoded as Ogg Opus
// (libopus, 48 kb/s, 20 ms frames, one frame per Ogg page as pion's
// oggreader wants). It fails the test if espeak-ng, sox or ffmpeg is
// missing or fails.
func Speech(t testing.TB, dir, text string) (wav, ogg string) {
	t.Helper()
	sum := sha256.Sum256([]byte(text))
	base := filepath.Join(dir, "speech-"+hex.EncodeToString(sum[:6]))
	raw, wav, ogg := base+".raw.wav", base+".wav", base+".ogg"
	run(t, "espeak-ng", "-w", raw, text)
	run(t, "sox", "-D", raw, "-r", "48000", "-c", "1", "-b", "16", wav, "norm", "-1") // -D: no dither, the same file every time
	os.Remove(raw)
	run(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", wav,
		"-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-application", "voip",
		"-page_duration", "20000", ogg)
	return wav, ogg
}

// Decode decodes the audio file path (anything ffmpeg reads: Ogg Opus,
// WAV …) to mono samples at [Rate], from -1 to 1. It fails the test if
// ffmpeg is missing or fails.
func Decode(t testing.TB, path string) []float32 {
	t.Helper()
	out := run(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path,
		"-f", "f32le", "-ac", "1", "-ar", fmt.Sprint(Rate), "-")
	pcm := make([]float32, len(out)/4)
	for i := range pcm {
		pcm[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return pcm
}

// run runs the tool name with args and returns its standard output.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("audiotest: %s is needed (apt-get install espeak-ng sox ffmpeg): %v", name, err)
	}
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("audiotest: %s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}
