package oggopus

import (
	"fmt"
	"io"
	"math/rand/v2"
)

// vendor is the comment header's vendor string.
const vendor = "hotline"

// pageSamples is how much audio a Writer gathers on a page before
// starting the next: one second, as ffmpeg and opusenc do.
const pageSamples = SampleRate

// A Writer writes an Ogg Opus file: one logical stream with a random
// serial number. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	serial  uint32
	seq     uint32 // the next page's sequence number
	granule int64  // the samples of the packets written so far

	// The page being gathered.
	segs    []byte
	data    []byte
	samples int  // the samples of the packets that end on it
	done    bool // a packet ends on it
	cont    bool // its first segment continues the previous page's packet

	out    []byte // the encoded page
	err    error  // the first error of w, returned by every later call
	closed bool
}

// NewWriter writes the Opus ID header for h and a comment header (vendor
// "hotline", no tags) to w, each on its own page, and returns a Writer
// for the audio packets. It fails with ErrUnsupported if h.MappingFamily
// is not 0, and with ErrBadHeader if h.Channels is not 1 or 2.
func NewWriter(w io.Writer, h Head) (*Writer, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	ow := &Writer{w: w, serial: rand.Uint32()}
	ow.appendPacket(appendHead(nil, h))
	ow.flush(flagBOS)
	ow.appendPacket(appendTags(nil, vendor))
	ow.flush(0)
	if ow.err != nil {
		return nil, ow.err
	}
	return ow, nil
}

// WritePacket adds the Opus packet pkt to the stream. Pages are written
// as they fill up (a second of audio, or 255 segments), so a packet may
// reach w only with a later packet or at Close.
//
// Each page's granule position is the number of samples, at 48 kHz, of
// the packets that end on it and all before it, as PacketSamples counts
// them; it includes the pre-skip, which players drop from the start of
// the decoded audio (RFC 7845, section 4). The stream has no gaps:
// packets lost before they reached the Writer are simply missing.
// (RFC 7845, section 4.1, suggests writing packets that ask for loss
// concealment in their place.)
//
// WritePacket fails with ErrTooLarge for a packet larger than
// MaxPacketSize and ErrInvalidPacket if PacketSamples rejects it; the
// packet is then not written and the Writer remains usable. After an
// error of w, every call returns that error.
func (w *Writer) WritePacket(pkt []byte) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if len(pkt) > MaxPacketSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(pkt))
	}
	n, err := PacketSamples(pkt)
	if err != nil {
		return err
	}
	// Start a new page rather than split a packet across pages, unless
	// the packet would not fit on a page of its own.
	if len(w.segs) > 0 && (w.samples >= pageSamples || len(w.segs)+len(pkt)/255+1 > maxSegments) {
		w.flush(0)
	}
	w.appendPacket(pkt)
	w.granule += int64(n)
	w.samples += n
	return w.err
}

// Close writes the last page, marked end-of-stream, even if no packet was
// written. It does not close the underlying io.Writer. Later calls of
// WritePacket return ErrClosed; later calls of Close return nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.flush(flagEOS)
	return w.err
}

// appendPacket adds the segments of pkt to the page being gathered,
// writing the page whenever its segment table is full.
func (w *Writer) appendPacket(pkt []byte) {
	for first := true; ; first = false {
		if len(w.segs) == maxSegments {
			w.flush(0)
			w.cont = !first
		}
		n := min(len(pkt), 255)
		w.segs = append(w.segs, byte(n))
		w.data = append(w.data, pkt[:n]...)
		pkt = pkt[n:]
		if n < 255 {
			break
		}
	}
	w.done = true
}

// flush writes the page being gathered, with flags, and starts a new one.
// Its granule position is -1 if no packet ends on it (RFC 3533), except
// on an empty page: the end-of-stream page of a stream without audio.
func (w *Writer) flush(flags byte) {
	if w.err != nil {
		return
	}
	granule := int64(-1)
	if w.done || len(w.segs) == 0 {
		granule = w.granule
	}
	if w.cont {
		flags |= flagContinued
	}
	w.out = appendPage(w.out[:0], &page{
		flags:   flags,
		granule: granule,
		serial:  w.serial,
		seq:     w.seq,
		segs:    w.segs,
		data:    w.data,
	})
	if _, err := w.w.Write(w.out); err != nil {
		w.err = err
		return
	}
	w.seq++
	w.segs, w.data = w.segs[:0], w.data[:0]
	w.samples, w.done, w.cont = 0, false, false
}
