package sframe

import (
	"fmt"
	"math/bits"
)

// Header is an SFrame header (RFC 9605, section 4.3): the key ID (KID)
// that names the key of the frame, and the counter (CTR) that makes its
// nonce unique.
type Header struct {
	KID uint64
	CTR uint64
}

// MaxHeaderSize is the size of the longest header: the config byte and
// eight bytes each of KID and CTR.
const MaxHeaderSize = 17

// Len returns the size of h's encoding.
func (h Header) Len() int { return 1 + extLen(h.KID) + extLen(h.CTR) }

// extLen is how many bytes a value takes after the config byte: none for
// 0 to 7, which fit the config byte, otherwise its minimal big-endian
// length.
func extLen(v uint64) int {
	if v < 8 {
		return 0
	}
	return (bits.Len64(v) + 7) / 8
}

// Append appends h's encoding to b: the config byte (X, K, Y, C), then the
// KID and the CTR in the minimal number of bytes, each omitted when the
// value (0 to 7) fits in the config byte.
func (h Header) Append(b []byte) []byte {
	kl, cl := extLen(h.KID), extLen(h.CTR)
	var config byte
	if kl == 0 {
		config = byte(h.KID) << 4
	} else {
		config = 0x80 | byte(kl-1)<<4
	}
	if cl == 0 {
		config |= byte(h.CTR)
	} else {
		config |= 0x08 | byte(cl-1)
	}
	b = append(b, config)
	b = appendBE(b, h.KID, kl)
	return appendBE(b, h.CTR, cl)
}

func appendBE(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// ParseHeader decodes the header at the start of b and returns it with its
// length. It fails with ErrShortHeader if b ends within the header and
// with ErrMalformedHeader if a value is not in its minimal encoding, which
// RFC 9605 requires of senders (a value 0 to 7 in an extra byte, or a
// leading zero byte).
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, ErrShortHeader
	}
	config := b[0]
	n := 1
	var h Header
	var err error
	if h.KID, n, err = parseField(b, n, config>>4); err != nil {
		return Header{}, 0, fmt.Errorf("%w: kid", err)
	}
	if h.CTR, n, err = parseField(b, n, config&0x0f); err != nil {
		return Header{}, 0, fmt.Errorf("%w: ctr", err)
	}
	return h, n, nil
}

// parseField decodes one value given its four config bits (flag and
// three-bit value or length) from b at offset n; it returns the value and
// the offset after it.
func parseField(b []byte, n int, nibble byte) (uint64, int, error) {
	if nibble&0x08 == 0 {
		return uint64(nibble & 0x07), n, nil
	}
	l := int(nibble&0x07) + 1
	if len(b)-n < l {
		return 0, 0, ErrShortHeader
	}
	var v uint64
	for _, c := range b[n : n+l] {
		v = v<<8 | uint64(c)
	}
	if extLen(v) != l {
		return 0, 0, ErrMalformedHeader
	}
	return v, n + l, nil
}
