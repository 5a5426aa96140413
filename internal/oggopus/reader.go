package oggopus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A Reader reads the packets of the first Opus stream of an Ogg file.
// It holds one page (under 64 KiB) and one packet (at most MaxPacketSize)
// in memory, whatever the input. It is not safe for concurrent use.
type Reader struct {
	r      io.Reader
	head   Head
	serial uint32 // the Opus stream's serial number
	seq    uint32 // the sequence number the stream's next page must have

	buf  [maxPageSize]byte // the current page
	page page              // the current page, parsed; segs and data are in buf
	seg  int               // index in page.segs of the next segment
	off  int               // offset in page.data of the next segment

	pkt  []byte // the packet being assembled
	open bool   // the last segment consumed was 255 bytes: a packet continues
	skip bool   // the open packet's start was lost: discard it
	err  error  // the error every later ReadPacket returns
}

// NewReader reads the headers of the first Opus stream in r and returns a
// Reader positioned at its first audio packet.
//
// The Opus stream is the first logical stream whose beginning-of-stream
// page holds an Opus ID header; other streams multiplexed with it (video,
// say) are skipped. NewReader fails with ErrNotOgg if r does not begin
// with an Ogg page, ErrNotOpus if no stream is Opus, ErrBadHeader or
// ErrUnsupported for an ID header it cannot use, ErrBadHeader if the
// comment header is missing, and with the errors of ReadPacket. The
// comment header's content (vendor string and tags) is skipped, whatever
// its size.
func NewReader(r io.Reader) (*Reader, error) {
	or := &Reader{r: r}
	err := or.readPage(true)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input", ErrNotOgg)
	}
	for {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the input ends among the streams' first pages", ErrNotOpus)
		}
		if err != nil {
			return nil, err
		}
		if or.page.flags&flagBOS == 0 {
			return nil, fmt.Errorf("%w: no Opus ID header on the streams' first pages", ErrNotOpus)
		}
		if bytes.HasPrefix(firstPacket(&or.page), []byte(headMagic)) {
			break
		}
		err = or.readPage(false) // the first page of another stream
	}
	// The ID header must be alone on its page (RFC 7845, section 3).
	if n := len(firstPacket(&or.page)); n != len(or.page.data) || or.page.segs[len(or.page.segs)-1] == 255 {
		return nil, fmt.Errorf("%w: ID header not alone on its page", ErrBadHeader)
	}
	if or.head, err = parseHead(or.page.data); err != nil {
		return nil, err
	}
	or.serial, or.seq = or.page.serial, or.page.seq+1
	or.seg, or.off = len(or.page.segs), len(or.page.data)

	// The comment header: check its signature, discard the rest.
	tags, err := or.nextPacket(len(tagsMagic), true)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the stream ends before its comment header", ErrBadHeader)
	}
	if err != nil {
		return nil, err
	}
	if string(tags) != tagsMagic {
		return nil, fmt.Errorf("%w: comment header without %q", ErrBadHeader, tagsMagic)
	}
	return or, nil
}

// Head returns the stream's ID header.
func (r *Reader) Head() Head { return r.head }

// ReadPacket returns the stream's next audio packet, in a new slice. It
// returns io.EOF after the last packet of the stream's end-of-stream page,
// even if the input goes on (with another chained stream, say).
//
// If the stream's pages skip a sequence number, ReadPacket fails with
// ErrPageGap: a packet that was split across the gap is lost, and so are
// the packets of the missing pages. That error is the only one that does
// not end reading: a caller that can live with the loss may call
// ReadPacket again for the packets after the gap. Every other error is
// returned again by every later call: ErrChecksum, ErrCorrupt,
// ErrTooLarge, ErrTruncated, ErrUnsupported, or an error of the
// underlying reader. The Reader does not resynchronise after damage.
//
// ReadPacket does not check that the packet is valid Opus; PacketSamples
// does.
func (r *Reader) ReadPacket() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	pkt, err := r.nextPacket(MaxPacketSize, false)
	if err != nil {
		if !errors.Is(err, ErrPageGap) {
			r.err = err
		}
		return nil, err
	}
	return bytes.Clone(pkt), nil
}

// nextPacket assembles the next packet of the stream. The result aliases
// r.pkt. A packet larger than limit fails with ErrTooLarge, or, if
// truncate, is cut to its first limit bytes (and the rest is read and
// discarded).
func (r *Reader) nextPacket(limit int, truncate bool) ([]byte, error) {
	for {
		for r.seg < len(r.page.segs) {
			n := int(r.page.segs[r.seg])
			b := r.page.data[r.off : r.off+n]
			r.seg++
			r.off += n
			r.open = n == 255
			if r.skip {
				r.skip = r.open
				continue
			}
			if len(r.pkt)+n > limit {
				if !truncate {
					r.pkt = r.pkt[:0]
					return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
				}
				b = b[:max(0, limit-len(r.pkt))]
			}
			r.pkt = append(r.pkt, b...)
			if !r.open {
				pkt := r.pkt
				r.pkt = r.pkt[:0]
				return pkt, nil
			}
		}
		if r.page.flags&flagEOS != 0 {
			if r.open {
				return nil, fmt.Errorf("%w: a packet continues past the end-of-stream page", ErrCorrupt)
			}
			return nil, io.EOF
		}
		if err := r.nextPage(); err != nil {
			return nil, err
		}
	}
}

// nextPage reads the stream's next page, skipping other streams' pages.
// On a sequence gap it drops the packet in progress, loads the page, and
// returns an ErrPageGap error.
func (r *Reader) nextPage() error {
	for {
		err := r.readPage(false)
		if err == io.EOF {
			return fmt.Errorf("%w: no end-of-stream page", ErrTruncated)
		}
		if err != nil {
			return err
		}
		if r.page.serial == r.serial {
			break
		}
	}
	if r.page.flags&flagBOS != 0 {
		return fmt.Errorf("%w: second beginning-of-stream page (sequence number %d)", ErrCorrupt, r.page.seq)
	}
	r.seg, r.off = 0, 0
	continued := r.page.flags&flagContinued != 0
	if want := r.seq; r.page.seq != want {
		r.seq = r.page.seq + 1
		r.pkt = r.pkt[:0]
		r.open, r.skip = continued, continued
		return fmt.Errorf("%w: page %d where %d was due", ErrPageGap, r.page.seq, want)
	}
	r.seq++
	if continued != r.open {
		if r.open {
			return fmt.Errorf("%w: page %d does not continue the previous page's last packet", ErrCorrupt, r.page.seq)
		}
		return fmt.Errorf("%w: page %d continues a packet the previous page ended", ErrCorrupt, r.page.seq)
	}
	return nil
}

// readPage reads a page, of any stream, into r.buf and r.page, and
// verifies its checksum. It returns io.EOF if the input ends before the
// page starts. first selects the errors for the start of the input.
func (r *Reader) readPage(first bool) error {
	hdr := r.buf[:pageHeaderSize]
	n, err := io.ReadFull(r.r, hdr)
	switch {
	case err == io.EOF:
		return io.EOF
	case err == io.ErrUnexpectedEOF:
		if first && !bytes.HasPrefix([]byte("OggS"), hdr[:min(n, 4)]) {
			return ErrNotOgg
		}
		return fmt.Errorf("%w: %d bytes of a page header", ErrTruncated, n)
	case err != nil:
		return err
	}
	if string(hdr[:4]) != "OggS" {
		if first {
			return ErrNotOgg
		}
		return fmt.Errorf("%w: no page where one must start", ErrCorrupt)
	}
	nseg := int(hdr[26])
	segs := r.buf[pageHeaderSize : pageHeaderSize+nseg]
	if _, err := io.ReadFull(r.r, segs); err != nil {
		return truncated(err, "segment table")
	}
	size := 0
	for _, s := range segs {
		size += int(s)
	}
	end := pageHeaderSize + nseg + size
	data := r.buf[pageHeaderSize+nseg : end]
	if _, err := io.ReadFull(r.r, data); err != nil {
		return truncated(err, "page data")
	}
	seq := binary.LittleEndian.Uint32(hdr[18:])
	c := crc(0, r.buf[:22])
	c = crc(c, []byte{0, 0, 0, 0})
	c = crc(c, r.buf[26:end])
	if c != binary.LittleEndian.Uint32(hdr[22:]) {
		return fmt.Errorf("%w: page %d", ErrChecksum, seq)
	}
	if hdr[4] != 0 {
		return fmt.Errorf("%w: Ogg page version %d", ErrUnsupported, hdr[4])
	}
	r.page = page{
		flags:   hdr[5],
		granule: int64(binary.LittleEndian.Uint64(hdr[6:])),
		serial:  binary.LittleEndian.Uint32(hdr[14:]),
		seq:     seq,
		segs:    segs,
		data:    data,
	}
	return nil
}

// truncated turns the end of the input within a page into ErrTruncated.
func truncated(err error, where string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: the input ends in a page's %s", ErrTruncated, where)
	}
	return err
}

// firstPacket returns the data of the first packet that starts on p (or
// the part of it on p).
func firstPacket(p *page) []byte {
	n := 0
	for _, s := range p.segs {
		n += int(s)
		if s < 255 {
			break
		}
	}
	return p.data[:n]
}
