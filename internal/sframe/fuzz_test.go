package sframe

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseHeader: any input either fails with one of the header errors or
// parses to a header whose encoding is exactly the bytes consumed (every
// accepted encoding is the canonical one).
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"\x00", "\x08\xff", "\x80\xff", "\xff\x01\x02\x03\x04\x05\x06\x07\x08\x01\x02\x03\x04\x05\x06\x07\x08", "\x08\x00", "\x90\x00\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrShortHeader) && !errors.Is(err, ErrMalformedHeader) {
				t.Fatalf("error %v", err)
			}
			if n != 0 || h != (Header{}) {
				t.Fatal("a failed parse returned a header")
			}
			return
		}
		if n < 1 || n > MaxHeaderSize || n > len(b) || n != h.Len() {
			t.Fatalf("length %d of %d", n, len(b))
		}
		if enc := h.Append(nil); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("%x parsed as %+v, which encodes as %x", b[:n], h, enc)
		}
	})
}

// FuzzHeaderRoundTrip: every KID and CTR encode minimally and parse back.
func FuzzHeaderRoundTrip(f *testing.F) {
	f.Add(uint64(0), uint64(0))
	f.Add(uint64(7), uint64(8))
	f.Add(uint64(1<<64-1), uint64(1<<56))
	f.Fuzz(func(t *testing.T, kid, ctr uint64) {
		h := Header{KID: kid, CTR: ctr}
		enc := h.Append([]byte("prefix"))[len("prefix"):]
		if len(enc) != h.Len() || len(enc) > MaxHeaderSize {
			t.Fatalf("%+v: %d bytes, Len %d", h, len(enc), h.Len())
		}
		got, n, err := ParseHeader(append(enc, "payload"...))
		if err != nil || got != h || n != len(enc) {
			t.Fatalf("%+v: %x parsed as %+v, %d, %v", h, enc, got, n, err)
		}
		// No shorter encoding exists: the same values with one byte fewer
		// would need a field shorter than its minimal length.
		if kid >= 8 && len(enc) == 1 || ctr >= 8 && len(enc) == 1 {
			t.Fatal("value >= 8 in the config byte")
		}
	})
}

// fuzzContexts returns a receiving Context per suite with receive keys for
// KIDs 0, 8 and 300, and the frames their senders made, as seeds.
func fuzzContexts(f *testing.F) (map[CipherSuite]*Context, [][]byte) {
	recv := map[CipherSuite]*Context{}
	var seeds [][]byte
	for _, suite := range allSuites {
		r, err := NewContext(suite, Options{ReplayWindow: 64})
		if err != nil {
			f.Fatal(err)
		}
		s, err := NewContext(suite, Options{})
		if err != nil {
			f.Fatal(err)
		}
		for _, kid := range []uint64{0, 8, 300} {
			k := baseKey(suite, byte(kid))
			r.AddReceiveKey(kid, k)
			s.AddSendKey(kid, k)
			for _, pt := range []string{"", "a frame of audio"} {
				fr, err := s.Encrypt(kid, []byte("md"), []byte(pt))
				if err != nil {
					f.Fatal(err)
				}
				seeds = append(seeds, fr)
			}
		}
		recv[suite] = r
	}
	return recv, seeds
}

// FuzzDecrypt: Decrypt of any frame and metadata, under every suite, never
// panics and fails only with its sentinels. A success is possible only for
// a sender's frame, with its metadata, under the suite that made it.
func FuzzDecrypt(f *testing.F) {
	recv, seeds := fuzzContexts(f)
	for i, s := range seeds {
		f.Add(uint8(i/6), []byte("md"), s)
	}
	f.Add(uint8(0), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, suiteIdx uint8, metadata, frame []byte) {
		suite := allSuites[int(suiteIdx)%len(allSuites)]
		pt, err := recv[suite].Decrypt(metadata, frame)
		if err != nil {
			if !isDecryptError(err) || pt != nil {
				t.Fatalf("%v: %v", suite, err)
			}
			return
		}
		if !bytes.Equal(metadata, []byte("md")) || (string(pt) != "" && string(pt) != "a frame of audio") {
			t.Fatalf("%v: forged frame %x accepted as %q", suite, frame, pt)
		}
	})
}

// FuzzRoundTrip: what Encrypt makes Decrypt returns, once; any change to a
// byte of the frame or the metadata makes it fail with a sentinel.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint16(0), []byte("md"), []byte("pt"), uint16(0))
	f.Add(uint8(3), uint64(1<<40), uint16(300), []byte{}, make([]byte, 160), uint16(77))
	f.Add(uint8(2), uint64(1<<64-1), uint16(9), []byte("m"), []byte{}, uint16(5))
	f.Fuzz(func(t *testing.T, suiteIdx uint8, kid uint64, skip uint16, metadata, pt []byte, flip uint16) {
		suite := allSuites[int(suiteIdx)%len(allSuites)]
		send, recv := pair(t, suite, kid, Options{})
		send.keys[kid].next = uint64(skip) << 24 // counters of every length
		fr, err := send.Encrypt(kid, metadata, pt)
		if err != nil {
			t.Fatal(err)
		}
		// Mangle a bit of the frame or of the metadata first: it must fail.
		bit := int(flip) % ((len(fr) + len(metadata)) * 8)
		bad, badMD := bytes.Clone(fr), bytes.Clone(metadata)
		if bit < len(fr)*8 {
			bad[bit/8] ^= 1 << (bit % 8)
		} else {
			bit -= len(fr) * 8
			badMD[bit/8] ^= 1 << (bit % 8)
		}
		if _, err := recv.Decrypt(badMD, bad); err == nil || !isDecryptError(err) {
			t.Fatalf("%v: mangled bit %d: %v", suite, flip, err)
		}
		got, err := recv.Decrypt(metadata, fr)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v: %x, %v", suite, got, err)
		}
		if _, err := recv.Decrypt(metadata, fr); !errors.Is(err, ErrReplay) {
			t.Fatalf("%v: again: %v", suite, err)
		}
	})
}

// FuzzMLSDecrypt: an MLSContext's Decrypt of any frame never panics, fails
// only with the sentinels, keeps no key for a frame that fails, and
// accepts only the frames other members made.
func FuzzMLSDecrypt(f *testing.F) {
	suite := AES128CTRHMACSHA256_32
	recv, err := NewMLSContext(suite, MLSOptions{EpochBits: 2, MaxReceiveKeys: 8})
	if err != nil {
		f.Fatal(err)
	}
	enter(f, recv, 1, 0, 5)
	enter(f, recv, 2, 0, 5)
	for epoch := uint64(1); epoch <= 2; epoch++ {
		for leaf := uint32(1); leaf < 5; leaf++ {
			s, err := NewMLSContext(suite, MLSOptions{EpochBits: 2, ContextID: uint64(leaf % 2)})
			if err != nil {
				f.Fatal(err)
			}
			enter(f, s, epoch, leaf, 5)
			fr, err := s.Encrypt([]byte("md"), []byte("audio"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add([]byte("md"), fr)
		}
	}
	f.Fuzz(func(t *testing.T, metadata, frame []byte) {
		pt, from, err := recv.Decrypt(metadata, frame)
		if err != nil {
			if !isDecryptError(err) || pt != nil || from != (Sender{}) {
				t.Fatal(err)
			}
			return
		}
		if string(pt) != "audio" || from.Leaf == 0 || from.Leaf >= 5 || (from.Epoch != 1 && from.Epoch != 2) {
			t.Fatalf("accepted %q from %+v", pt, from)
		}
		for _, ep := range recv.slots {
			if len(ep.recv) > 4 {
				t.Fatalf("epoch %d holds %d keys", ep.number, len(ep.recv))
			}
		}
	})
}
