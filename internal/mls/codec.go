package mls

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrDecode is wrapped by every error decoding a wire structure.
var ErrDecode = errors.New("mls: malformed encoding")

// MaxVarint is the largest length the MLS variable-length integer encoding
// (RFC 9420, section 2.1.2) can carry: 2^30 - 1.
const MaxVarint = 1<<30 - 1

// Writer appends the TLS presentation language encoding of MLS structures
// (RFC 9420, section 2.1) to a byte slice. Vectors carry an MLS
// variable-length integer length prefix. The zero value is ready to use.
type Writer struct {
	b []byte
}

// Bytes returns what was written.
func (w *Writer) Bytes() []byte { return w.b }

// U8 writes a uint8.
func (w *Writer) U8(v uint8) { w.b = append(w.b, v) }

// U16 writes a big-endian uint16.
func (w *Writer) U16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }

// U32 writes a big-endian uint32.
func (w *Writer) U32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

// U64 writes a big-endian uint64.
func (w *Writer) U64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Raw writes bytes with no length prefix (a fixed-size array).
func (w *Writer) Raw(b []byte) { w.b = append(w.b, b...) }

// Bool writes a boolean as one byte, 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Varint writes n in the MLS variable-length integer encoding, always in
// its shortest form. It panics if n > MaxVarint: no MLS structure is that
// large, and writing one is a programming error.
func (w *Writer) Varint(n int) {
	switch {
	case n < 0 || n > MaxVarint:
		panic(fmt.Sprintf("mls: varint %d out of range", n))
	case n < 1<<6:
		w.U8(uint8(n))
	case n < 1<<14:
		w.U16(uint16(n) | 0x4000)
	default:
		w.U32(uint32(n) | 0x8000_0000)
	}
}

// Opaque writes a variable-length byte vector: opaque data<V>.
func (w *Writer) Opaque(b []byte) {
	w.Varint(len(b))
	w.Raw(b)
}

// Vector writes a variable-length vector whose body fn writes.
func (w *Writer) Vector(fn func(w *Writer)) {
	var body Writer
	fn(&body)
	w.Opaque(body.b)
}

// Optional writes an optional<T>: a presence byte, then the value if
// present.
func (w *Writer) Optional(present bool, fn func(w *Writer)) {
	w.Bool(present)
	if present {
		fn(w)
	}
}

// Reader decodes the TLS presentation language encoding. The first error
// sticks: after it every read returns zero values, and Err reports it, so
// a decoder can read a whole structure and check once.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error.
func (r *Reader) Err() error { return r.err }

// Fail records an error if none is recorded yet.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
	}
}

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Done returns the first error, or an error if bytes are left over.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.Fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Fail("need %d bytes, have %d", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// U8 reads a uint8.
func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads a big-endian uint16.
func (r *Reader) U16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Raw reads n bytes (a fixed-size array). The result aliases the input.
func (r *Reader) Raw(n int) []byte { return r.take(n) }

// Bool reads a boolean; any byte other than 0 or 1 is an error.
func (r *Reader) Bool() bool {
	switch v := r.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Fail("boolean byte %d", v)
		return false
	}
}

// Varint reads an MLS variable-length integer. The prefix 0b11 is invalid,
// and so is any encoding longer than the value needs: encodings are
// canonical, so one value has one encoding, and structures that are signed
// or hashed after re-encoding cannot be given two meanings.
func (r *Reader) Varint() int {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.Fail("need a varint, have no bytes")
		return 0
	}
	var n int
	switch r.b[0] >> 6 {
	case 0:
		n = int(r.U8())
	case 1:
		n = int(r.U16() & 0x3fff)
		if n < 1<<6 {
			r.Fail("varint %d not in its shortest form", n)
		}
	case 2:
		n = int(r.U32() & 0x3fff_ffff)
		if n < 1<<14 {
			r.Fail("varint %d not in its shortest form", n)
		}
	default:
		r.Fail("varint with the invalid prefix 0b11")
	}
	return n
}

// Opaque reads a variable-length byte vector. The result aliases the input.
func (r *Reader) Opaque() []byte {
	n := r.Varint()
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.Fail("vector of %d bytes, have %d", n, len(r.b))
		return nil
	}
	return r.take(n)
}

// Vector reads a variable-length vector and calls fn with a Reader over its
// body, which fn must consume entirely.
func (r *Reader) Vector(fn func(r *Reader)) {
	body := r.Opaque()
	if r.err != nil {
		return
	}
	sub := NewReader(body)
	fn(sub)
	if err := sub.Done(); err != nil && r.err == nil {
		r.err = err
	}
}

// Items reads a variable-length vector of items, calling fn for each until
// the body is consumed.
func (r *Reader) Items(fn func(r *Reader)) {
	r.Vector(func(sub *Reader) {
		for sub.Len() > 0 && sub.err == nil {
			fn(sub)
		}
	})
}

// Optional reads an optional<T>'s presence byte and, if present, calls fn.
func (r *Reader) Optional(fn func(r *Reader)) bool {
	present := r.Bool()
	if present && r.err == nil {
		fn(r)
	}
	return present
}
