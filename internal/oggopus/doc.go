// Package oggopus reads and writes Ogg Opus files: Opus packets in an Ogg
// container (RFC 3533), as RFC 7845 lays them out. It is what the
// headless call client plays from (--play) and records to (--record).
//
// The package moves Opus packets, not audio: it neither decodes nor
// encodes. Reading gives the packets an encoder (ffmpeg, opusenc, a
// browser) stored, one by one, ready to go out in RTP packets; writing
// stores the packets received, for any Opus player to decode:
//
//	r, err := oggopus.NewReader(f)
//	...
//	for {
//		pkt, err := r.ReadPacket()
//		if err == io.EOF {
//			break
//		}
//		...
//		n, err := oggopus.PacketSamples(pkt) // the RTP timestamp advances by n
//		...
//	}
//
//	w, err := oggopus.NewWriter(f, oggopus.Head{Channels: 2, PreSkip: 312})
//	...
//	err = w.WritePacket(pkt) // for each packet received
//	...
//	err = w.Close()
//
// All durations are in samples at 48 kHz (SampleRate), the clock of Opus
// granule positions and of Opus over RTP, whatever the sample rate of the
// encoded audio.
//
// # Scope and limits
//
// Only channel mapping family 0 is supported: one Opus stream, mono or
// stereo. Files with surround or ambisonic layouts (families 1, 2, 3 and
// 255) are refused with ErrUnsupported rather than half read.
//
// A Reader reads the first Opus stream of its input from the start, and
// stops at that stream's end-of-stream page: it does not seek, and does
// not follow chained streams after it. Pages of other logical streams
// multiplexed with it are skipped. The comment header is checked for its
// signature and otherwise skipped, so tags are not available. Every
// page's CRC is verified and every inconsistency reported; the Reader
// does not resynchronise after damage, except that pages lost from the
// sequence (ErrPageGap) can be stepped over. It ignores granule
// positions, so it neither trims the end of the last packet nor notices
// granule positions that disagree with the packets: the packets are what
// a sender needs.
//
// A Reader holds one page and one packet in memory, well under 256 KiB
// whatever its input: packets larger than MaxPacketSize are refused with
// ErrTooLarge, and the comment header, which may legitimately be larger
// (it may carry cover art), is read and discarded as it goes.
//
// A Writer writes one stream: the ID header, a comment header with the
// vendor string "hotline" and no tags, then the packets, gathered on
// pages of about a second of audio, and an end-of-stream page at Close.
// Its granule positions count every sample of every packet, so players
// play the last packet in full (nothing is trimmed at the end). It
// refuses packets that are not well-formed Opus (see PacketSamples), which
// players would reject. A file without packets is valid, and a Reader
// reads it, but ffmpeg refuses it, as it refuses its own. An unfinished
// file (the process was killed before Close) has every page written so
// far, which players accept and a Reader reports as ErrTruncated after
// the last packet.
//
// # Errors
//
// Every error wraps one of the package's Err values, except errors of
// the underlying io.Reader or io.Writer, which are returned as they are,
// and io.EOF at the end of the stream. See ErrNotOgg and the following.
package oggopus
