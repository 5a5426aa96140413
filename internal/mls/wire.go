package mls

import (
	"bytes"
	"fmt"
)

// Helpers shared by the wire structures (credential.go, leafnode.go,
// keypackage.go, ratchettree.go, proposal.go, commit.go, framing.go,
// welcome.go, extension.go).
//
// Conventions:
//   - Decoders are strict. A discriminator of a tagged union (a select in
//     RFC 9420's presentation language) with a value the RFC does not
//     define is an error, because the structure that follows cannot be
//     delimited; the exceptions, credential and proposal types, are
//     documented where they are decoded. Code points that are only values
//     (cipher suites, versions, extension types, capabilities lists) are
//     kept as numbers for the group logic to judge, which must ignore
//     unknown ones (RFC 9420, section 13.4).
//   - Re-encoding a decoded structure gives back exactly its bytes. For
//     that, an optional<opaque> is a nil slice when absent and a non-nil
//     one, possibly empty, when present.
//   - Decoded structures alias the bytes they were decoded from; the
//     exported Unmarshal functions copy their input first.
//   - Nothing is allocated on the strength of a length read from the
//     input: vectors grow as their items decode. So memory is linear in
//     the input, at worst some 40 bytes of structures per input byte (a
//     2-byte proposal reference becomes a 48-byte ProposalOrRef); the
//     transport bounds message sizes.
//   - Encoders panic on a structure no decoder produces (an undefined
//     discriminator, a missing union member): building one is a
//     programming error, like Writer.Varint's out-of-range length.

// wireEncoder is a wire structure that can encode itself.
type wireEncoder interface{ encode(w *Writer) }

// wireDecoder is a wire structure that can decode itself.
type wireDecoder interface{ decode(r *Reader) }

// marshalWire returns v's encoding.
func marshalWire(v wireEncoder) []byte {
	var w Writer
	v.encode(&w)
	return w.Bytes()
}

// unmarshalWire decodes all of b into v. v aliases b.
func unmarshalWire(b []byte, v wireDecoder) error {
	r := NewReader(b)
	v.decode(r)
	return r.Done()
}

// unmarshalCopy decodes all of a copy of b into v, so that v does not alias
// the caller's buffer.
func unmarshalCopy(b []byte, v wireDecoder) error {
	return unmarshalWire(bytes.Clone(b), v)
}

// encodeU16s writes a vector of 16-bit code points.
func encodeU16s[T ~uint16](w *Writer, vs []T) {
	w.Vector(func(w *Writer) {
		for _, v := range vs {
			w.U16(uint16(v))
		}
	})
}

// decodeU16s reads a vector of 16-bit code points.
func decodeU16s[T ~uint16](r *Reader) []T {
	vs := []T{}
	r.Items(func(r *Reader) { vs = append(vs, T(r.U16())) })
	return vs
}

// optionalOpaque reads an optional<opaque<V>>: nil when absent, non-nil
// when present, even if empty.
func optionalOpaque(r *Reader) []byte {
	var b []byte
	r.Optional(func(r *Reader) {
		if b = r.Opaque(); b == nil {
			b = []byte{}
		}
	})
	return b
}

// badUnion panics on an encoder given a tagged union it cannot encode.
func badUnion(what string, tag any) {
	panic(fmt.Sprintf("mls: cannot encode %s %v", what, tag))
}
