package oggopus

import "encoding/binary"

// Ogg pages (RFC 3533, section 6). A page is a 27-byte header, a segment
// table of up to 255 lacing values, and the segments themselves:
//
//	0  "OggS"             capture pattern
//	4  version            0
//	5  flags              continued, BOS, EOS
//	6  granule position   int64, little-endian
//	14 serial number      uint32, little-endian
//	18 sequence number    uint32, little-endian
//	22 CRC-32             uint32, little-endian
//	26 segment count      0 to 255
//	27 segment table      one lacing value (0 to 255) per segment
//
// A packet is a run of segments ending with one shorter than 255 bytes,
// so a packet whose length is a multiple of 255 ends with an empty one.
const (
	pageHeaderSize = 27
	maxSegments    = 255
	maxPageData    = maxSegments * 255
	maxPageSize    = pageHeaderSize + maxSegments + maxPageData

	flagContinued = 0x01 // the page's first segment continues a packet
	flagBOS       = 0x02 // the first page of a logical stream
	flagEOS       = 0x04 // the last page of a logical stream
)

// MaxPacketSize is the largest packet a Reader returns or a Writer
// accepts. The largest Opus packet without padding, 120 ms of 2.5 ms
// frames of 1,275 bytes, is under 62,000 bytes.
const MaxPacketSize = 64 << 10

// page is a parsed Ogg page. segs and data alias the buffer the page was
// read into.
type page struct {
	flags   byte
	granule int64
	serial  uint32
	seq     uint32
	segs    []byte
	data    []byte
}

// appendPage appends the encoding of p, with its CRC, to dst. The caller
// ensures len(p.segs) <= 255 and that the lacing values add up to
// len(p.data).
func appendPage(dst []byte, p *page) []byte {
	start := len(dst)
	dst = append(dst, "OggS"...)
	dst = append(dst, 0, p.flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(p.granule))
	dst = binary.LittleEndian.AppendUint32(dst, p.serial)
	dst = binary.LittleEndian.AppendUint32(dst, p.seq)
	dst = append(dst, 0, 0, 0, 0, byte(len(p.segs)))
	dst = append(dst, p.segs...)
	dst = append(dst, p.data...)
	binary.LittleEndian.PutUint32(dst[start+22:], crc(0, dst[start:]))
	return dst
}

// crcTable is the table of Ogg's CRC-32: polynomial 0x04c11db7, most
// significant bit first, initial value 0, no final XOR (RFC 3533, section
// 6, and the Ogg framing specification).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// crc continues the Ogg CRC-32 c over b.
func crc(c uint32, b []byte) uint32 {
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}
