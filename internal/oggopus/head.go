package oggopus

import (
	"encoding/binary"
	"fmt"
)

// Head is the Opus ID header of a stream (RFC 7845, section 5.1).
type Head struct {
	// Channels is the number of output channels: 1 or 2, the only counts
	// channel mapping family 0 allows.
	Channels int

	// PreSkip is the number of samples at 48 kHz to discard from the
	// decoder's output at the start of the stream: the encoder's
	// lookahead, 312 for libopus. A recording of packets from an encoder
	// whose pre-skip is unknown may use 0 and keep a few milliseconds of
	// priming output.
	PreSkip uint16

	// InputSampleRate is the sample rate of the audio before encoding, in
	// Hz, or 0 if unknown. It is informational only: Opus always decodes
	// at 48 kHz.
	InputSampleRate uint32

	// OutputGain is the gain a player applies to the decoded output, in
	// 1/256 dB (Q7.8).
	OutputGain int16

	// MappingFamily is the channel mapping family; only 0 (mono or stereo
	// in a single Opus stream) is supported.
	MappingFamily uint8
}

const (
	headMagic = "OpusHead"
	tagsMagic = "OpusTags"
	headSize  = 19 // the ID header of channel mapping family 0
	// headVersion is the encapsulation version a Writer writes; a Reader
	// accepts every version with a major part (high four bits) of 0.
	headVersion = 1
)

// parseHead parses an ID header packet.
func parseHead(b []byte) (Head, error) {
	if len(b) < headSize {
		return Head{}, fmt.Errorf("%w: ID header of %d bytes, want at least %d", ErrBadHeader, len(b), headSize)
	}
	if string(b[:8]) != headMagic {
		return Head{}, fmt.Errorf("%w: ID header without %q", ErrNotOpus, headMagic)
	}
	if v := b[8]; v>>4 != 0 {
		return Head{}, fmt.Errorf("%w: encapsulation version %d.%d", ErrUnsupported, v>>4, v&15)
	}
	h := Head{
		Channels:        int(b[9]),
		PreSkip:         binary.LittleEndian.Uint16(b[10:]),
		InputSampleRate: binary.LittleEndian.Uint32(b[12:]),
		OutputGain:      int16(binary.LittleEndian.Uint16(b[16:])),
		MappingFamily:   b[18],
	}
	if err := h.check(); err != nil {
		return Head{}, err
	}
	// A longer family 0 header is allowed: later minor versions may add
	// fields, which this version ignores (RFC 7845, section 5.1).
	return h, nil
}

// check reports whether this package can read or write a stream with h.
func (h Head) check() error {
	if h.MappingFamily != 0 {
		return fmt.Errorf("%w: channel mapping family %d", ErrUnsupported, h.MappingFamily)
	}
	if h.Channels < 1 || h.Channels > 2 {
		return fmt.Errorf("%w: %d channels with channel mapping family 0", ErrBadHeader, h.Channels)
	}
	return nil
}

// appendHead appends the ID header packet of h, which check accepts.
func appendHead(b []byte, h Head) []byte {
	b = append(b, headMagic...)
	b = append(b, headVersion, byte(h.Channels))
	b = binary.LittleEndian.AppendUint16(b, h.PreSkip)
	b = binary.LittleEndian.AppendUint32(b, h.InputSampleRate)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.OutputGain))
	return append(b, h.MappingFamily)
}

// appendTags appends a comment header packet (RFC 7845, section 5.2) with
// the vendor string and no user comments.
func appendTags(b []byte, vendor string) []byte {
	b = append(b, tagsMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vendor)))
	b = append(b, vendor...)
	return binary.LittleEndian.AppendUint32(b, 0)
}
