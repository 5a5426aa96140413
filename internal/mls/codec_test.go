package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestConformanceDeserialization checks the variable-length integer against
// deserialization.json: each header decodes to its length, and each length
// encodes to exactly its header.
func TestConformanceDeserialization(t *testing.T) {
	var vs []struct {
		Header hexBytes `json:"vlbytes_header"`
		Length int      `json:"length"`
	}
	loadVectors(t, "deserialization", &vs)
	for _, v := range vs {
		r := NewReader(v.Header)
		if got := r.Varint(); got != v.Length || r.Done() != nil {
			t.Errorf("decode %x = %d (%v), want %d", []byte(v.Header), got, r.Err(), v.Length)
		}
		var w Writer
		w.Varint(v.Length)
		if !bytes.Equal(w.Bytes(), v.Header) {
			t.Errorf("encode %d = %x, want %x", v.Length, w.Bytes(), []byte(v.Header))
		}
	}
	t.Logf("deserialization.json: %d vectors checked", len(vs))
}

func TestCodecRoundTrip(t *testing.T) {
	var w Writer
	w.U8(7)
	w.U16(0xbeef)
	w.U32(0xdeadbeef)
	w.U64(1 << 60)
	w.Bool(true)
	w.Opaque([]byte("hello"))
	w.Vector(func(w *Writer) {
		for i := range 3 {
			w.U16(uint16(i))
		}
	})
	w.Optional(false, nil)
	w.Optional(true, func(w *Writer) { w.Opaque(make([]byte, 300)) })
	w.Raw([]byte{1, 2})

	r := NewReader(w.Bytes())
	if r.U8() != 7 || r.U16() != 0xbeef || r.U32() != 0xdeadbeef || r.U64() != 1<<60 || !r.Bool() {
		t.Fatal("fixed-size fields")
	}
	if string(r.Opaque()) != "hello" {
		t.Fatal("opaque")
	}
	var items []uint16
	r.Items(func(r *Reader) { items = append(items, r.U16()) })
	if len(items) != 3 || items[2] != 2 {
		t.Fatalf("items %v", items)
	}
	if r.Optional(nil) {
		t.Fatal("absent optional")
	}
	var big []byte
	if !r.Optional(func(r *Reader) { big = r.Opaque() }) || len(big) != 300 {
		t.Fatal("present optional")
	}
	if !bytes.Equal(r.Raw(2), []byte{1, 2}) {
		t.Fatal("raw")
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestCodecMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(r *Reader)
	}{
		{"empty varint", nil, func(r *Reader) { r.Varint() }},
		{"prefix 11", []byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, func(r *Reader) { r.Varint() }},
		{"non-minimal 2-byte", []byte{0x40, 0x3f}, func(r *Reader) { r.Varint() }},
		{"non-minimal 4-byte", []byte{0x80, 0, 0x3f, 0xff}, func(r *Reader) { r.Varint() }},
		{"truncated 2-byte", []byte{0x40}, func(r *Reader) { r.Varint() }},
		{"vector longer than input", []byte{0x05, 1, 2}, func(r *Reader) { r.Opaque() }},
		{"bad bool", []byte{2}, func(r *Reader) { r.Bool() }},
		{"bad optional", []byte{7}, func(r *Reader) { r.Optional(func(*Reader) {}) }},
		{"short u32", []byte{1, 2, 3}, func(r *Reader) { r.U32() }},
		{"trailing", []byte{1, 2}, func(r *Reader) { r.U8() }},
		{"item overruns vector", []byte{0x01, 0xff}, func(r *Reader) { r.Items(func(r *Reader) { r.U16() }) }},
		{"vector body left over", []byte{0x02, 1, 2}, func(r *Reader) { r.Vector(func(r *Reader) { r.U8() }) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.in)
			tt.read(r)
			if err := r.Done(); !errors.Is(err, ErrDecode) {
				t.Errorf("got %v, want ErrDecode", err)
			}
		})
	}
}

func TestVarintPanicsOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Varint(MaxVarint+1) did not panic")
		}
	}()
	var w Writer
	w.Varint(MaxVarint + 1)
}

// FuzzVarint: every decodable input re-encodes to itself (canonical), and
// decoding never panics.
func FuzzVarint(f *testing.F) {
	for _, s := range [][]byte{{0}, {0x3f}, {0x40, 0x40}, {0x7f, 0xff}, {0x80, 0, 0x40, 0}, {0xbf, 0xff, 0xff, 0xff}, {0xc0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		n := r.Varint()
		if r.Err() != nil {
			return
		}
		var w Writer
		w.Varint(n)
		if !bytes.Equal(w.Bytes(), b[:len(b)-r.Len()]) {
			t.Fatalf("%x decodes to %d, which encodes to %x", b, n, w.Bytes())
		}
	})
}
