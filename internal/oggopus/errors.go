package oggopus

import "errors"

// The errors of this package. Every error a Reader, a Writer or
// PacketSamples returns wraps one of them (or is an error of the
// underlying io.Reader or io.Writer, or io.EOF); test for them with
// errors.Is. The messages add what was found where, never packet content.
var (
	// ErrNotOgg: the input does not begin with an Ogg page.
	ErrNotOgg = errors.New("oggopus: not an Ogg stream")

	// ErrNotOpus: the input is Ogg, but none of the logical streams it
	// begins with starts with an Opus ID header ("OpusHead").
	ErrNotOpus = errors.New("oggopus: no Opus stream")

	// ErrBadHeader: the Opus ID header or comment header is malformed:
	// too short, zero channels, more than two channels with mapping
	// family 0, not alone on its page, or the comment header missing or
	// without its "OpusTags" signature. NewWriter returns it for a Head
	// it cannot write.
	ErrBadHeader = errors.New("oggopus: malformed Opus header")

	// ErrUnsupported: the stream is well formed but uses something this
	// package does not implement: an Ogg page version other than 0, an
	// Opus encapsulation version whose major part is not 0, or a channel
	// mapping family other than 0 (mono and stereo).
	ErrUnsupported = errors.New("oggopus: unsupported stream")

	// ErrChecksum: a page's CRC-32 does not match its contents.
	ErrChecksum = errors.New("oggopus: page checksum mismatch")

	// ErrCorrupt: the Ogg structure is inconsistent: a page does not start
	// with the capture pattern where one must start, a page's continuation
	// flag contradicts the previous page's last packet, the stream has a
	// second beginning-of-stream page, or a packet is unfinished at the
	// end-of-stream page.
	ErrCorrupt = errors.New("oggopus: corrupt Ogg stream")

	// ErrTruncated: the input ends before the Opus stream's
	// end-of-stream page, within a page or between pages. Every packet
	// ReadPacket returned before it is complete; a file whose writer was
	// killed before it could finish ends this way.
	ErrTruncated = errors.New("oggopus: truncated stream")

	// ErrTooLarge: a packet is larger than MaxPacketSize.
	ErrTooLarge = errors.New("oggopus: packet too large")

	// ErrPageGap: a page's sequence number does not follow the previous
	// page's of the same stream: pages were lost, repeated or reordered.
	// Unlike the other errors, it does not end reading; see
	// Reader.ReadPacket.
	ErrPageGap = errors.New("oggopus: page sequence gap")

	// ErrInvalidPacket: an Opus packet breaks the framing rules of RFC
	// 6716, section 3.4 (an empty packet, a frame length past the end of
	// the packet, more than 120 ms of audio, ...).
	ErrInvalidPacket = errors.New("oggopus: invalid Opus packet")

	// ErrClosed: the Writer was closed.
	ErrClosed = errors.New("oggopus: writer closed")
)
