package voice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"hotline/internal/client"
	"hotline/internal/oggopus"
)

// Play sends the Opus packets of an Ogg Opus stream in real time, each
// when its predecessors' duration has passed, until the stream ends (nil),
// ctx ends or the call does (ErrEnded).
func (c *Call) Play(ctx context.Context, r *oggopus.Reader) error {
	start := time.Now()
	var elapsed time.Duration
	for {
		pkt, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		n, err := oggopus.PacketSamples(pkt)
		if err != nil {
			return err
		}
		if d := time.Until(start.Add(elapsed)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-c.ended:
				t.Stop()
				return ErrEnded
			}
		}
		if err := c.Send(pkt, n); err != nil {
			return err
		}
		elapsed += time.Duration(n) * time.Second / 48000
	}
}

// PlayFile plays an Ogg Opus file (see Play).
func (c *Call) PlayFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := oggopus.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return c.Play(ctx, r)
}

// Recorder writes the decrypted audio of a call to Ogg Opus streams, one
// per sender: with NewRecorder, the first sender heard to the path given,
// each further one to the path with "-2", "-3"… before its extension; with
// NewRecorderTo, to whatever writer the caller opens (the archive's
// writers seal each stream as it is written). Packets lost on the way
// are written as empty Opus frames (RFC 6716, section 3.2.1: decoders
// conceal them), so the recording keeps the sender's timing.
type Recorder struct {
	open func(k int, from client.Member) (w io.WriteCloser, name string, err error)

	mu      sync.Mutex
	tracks  map[string]*track // by sender device
	ordered []*track
	err     error
}

type track struct {
	Recording
	f      io.WriteCloser
	w      *oggopus.Writer
	nextTS uint32 // RTP timestamp expected next
	toc    byte
}

// Recording is one file a Recorder wrote.
type Recording struct {
	Path    string
	From    client.Member
	Packets int // packets received
	Filled  int // empty packets written for lost ones
	// Duration is the length of what was written, silence filled in
	// included.
	Duration time.Duration
}

// maxFill bounds the silence written for a gap (5 s): a longer jump in a
// sender's timestamps is a new stream, not loss.
const maxFill = 5 * 48000

// NewRecorder returns a Recorder writing to path (and beside it).
func NewRecorder(path string) *Recorder {
	return NewRecorderTo(func(k int, _ client.Member) (io.WriteCloser, string, error) {
		p := path
		if k > 1 {
			ext := ""
			if i := strings.LastIndex(p, "."); i > strings.LastIndex(p, "/") {
				p, ext = p[:i], p[i:]
			}
			p = fmt.Sprintf("%s-%d%s", p, k, ext)
		}
		f, err := os.Create(p)
		return f, p, err
	})
}

// NewRecorderTo returns a Recorder that writes the k-th sender heard
// (from 1) to what open returns, and names it as open says in its
// Recordings. Close closes each writer once its Ogg stream is finished.
func NewRecorderTo(open func(k int, from client.Member) (w io.WriteCloser, name string, err error)) *Recorder {
	return &Recorder{open: open, tracks: map[string]*track{}}
}

// Write adds a frame to its sender's file; a Call's OnAudio can be
// r.Write. The first error stops the recording and is Close's.
func (r *Recorder) Write(f Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	if err := r.writeLocked(f); err != nil {
		r.err = err
	}
}

func (r *Recorder) writeLocked(f Frame) error {
	n, err := oggopus.PacketSamples(f.Opus)
	if err != nil {
		return nil // not Opus: nothing a decoder could use
	}
	t := r.tracks[f.From.Device]
	if t == nil {
		file, path, err := r.open(len(r.ordered)+1, f.From)
		if err != nil {
			return err
		}
		channels := 1
		if f.Opus[0]&0x04 != 0 {
			channels = 2
		}
		w, err := oggopus.NewWriter(file, oggopus.Head{Channels: channels, PreSkip: 312, InputSampleRate: 48000})
		if err != nil {
			file.Close()
			return err
		}
		t = &track{Recording: Recording{Path: path, From: f.From}, f: file, w: w, nextTS: f.Timestamp}
		r.tracks[f.From.Device] = t
		r.ordered = append(r.ordered, t)
	}
	gap := int(int32(f.Timestamp - t.nextTS))
	if gap < 0 {
		return nil // late: its place was filled
	}
	if gap <= maxFill && t.Packets > 0 {
		fs := frameSamples(t.toc)
		for ; gap >= fs; gap -= fs {
			if err := t.w.WritePacket([]byte{t.toc &^ 0x03}); err != nil {
				return err
			}
			t.Filled++
			t.Duration += time.Duration(fs) * time.Second / 48000
		}
	}
	if err := t.w.WritePacket(f.Opus); err != nil {
		return err
	}
	t.Packets++
	t.Duration += time.Duration(n) * time.Second / 48000
	t.toc = f.Opus[0]
	t.nextTS = f.Timestamp + uint32(n)
	return nil
}

// frameSamples is the length of one frame of an Opus packet with TOC byte
// toc, in 48 kHz samples.
func frameSamples(toc byte) int {
	n, err := oggopus.PacketSamples([]byte{toc &^ 0x03})
	if err != nil || n == 0 {
		return 960
	}
	return n
}

// Recordings returns the files written so far.
func (r *Recorder) Recordings() []Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Recording, 0, len(r.ordered))
	for _, t := range r.ordered {
		out = append(out, t.Recording)
	}
	return out
}

// Close finishes every file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	for _, t := range r.ordered {
		err = errors.Join(err, t.w.Close(), t.f.Close())
	}
	r.ordered, r.tracks = nil, map[string]*track{}
	if r.err == nil {
		r.err = errors.New("voice: recorder closed")
	}
	return err
}
