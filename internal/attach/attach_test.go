package attach

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func sizes() []int {
	return []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 17, 4 * ChunkSize}
}

func encrypt(t *testing.T, plain []byte) ([]byte, Descriptor) {
	t.Helper()
	var ct bytes.Buffer
	d, err := Encrypt(&ct, bytes.NewReader(plain), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.BlobID, d.Name, d.MediaType = []byte("blob"), "memo.txt", "text/plain"
	return ct.Bytes(), d
}

func TestRoundTrip(t *testing.T) {
	for _, n := range sizes() {
		plain := make([]byte, n)
		rand.Read(plain)
		ct, d := encrypt(t, plain)
		if int64(len(ct)) != d.CiphertextSize || d.Size != int64(n) || d.CiphertextSize != CiphertextSize(int64(n)) {
			t.Fatalf("%d bytes: ciphertext %d, descriptor %+v", n, len(ct), d)
		}
		var out bytes.Buffer
		// A reader that hands out one byte at a time must work too.
		if err := Decrypt(&out, iotest.OneByteReader(bytes.NewReader(ct)), d); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("%d bytes: plaintext differs", n)
		}
		if n > 0 && bytes.Contains(ct, plain[:min(n, 16)]) && n >= 16 {
			t.Fatalf("%d bytes: ciphertext contains plaintext", n)
		}
	}
}

// Every way of damaging the ciphertext fails to decrypt.
func TestTampering(t *testing.T) {
	plain := make([]byte, 3*ChunkSize+100)
	rand.Read(plain)
	ct, d := encrypt(t, plain)
	seal := ChunkSize + Overhead
	other, d2 := encrypt(t, plain)
	cases := map[string][]byte{
		"flipped bit":          flip(ct, len(ct)/2),
		"truncated at a chunk": ct[:2*seal],
		"truncated mid-chunk":  ct[:len(ct)-5],
		"chunks swapped":       concat(ct[seal:2*seal], ct[:seal], ct[2*seal:]),
		"chunk dropped":        concat(ct[:seal], ct[2*seal:]),
		"chunk duplicated":     concat(ct[:seal], ct[:seal], ct[seal:]),
		"spliced from another": concat(ct[:seal], other[seal:]),
		"extra bytes":          concat(ct, []byte{0}),
		"empty":                nil,
	}
	for name, bad := range cases {
		if err := Decrypt(io.Discard, bytes.NewReader(bad), d); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	if err := Decrypt(io.Discard, bytes.NewReader(ct), d2); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong key: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDescriptor(t *testing.T) {
	_, d := encrypt(t, []byte("hello"))
	got, err := UnmarshalDescriptor(d.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), d.Marshal()) || got.Name != "memo.txt" {
		t.Fatalf("round trip: %+v", got)
	}
	mk := func(edit func(*Descriptor)) []byte {
		c := d
		edit(&c)
		return c.Marshal()
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version 2":      append([]byte{2}, d.Marshal()[1:]...),
		"trailing":       append(d.Marshal(), 0),
		"short key":      mk(func(c *Descriptor) { c.Key = c.Key[:16] }),
		"size mismatch":  mk(func(c *Descriptor) { c.CiphertextSize++ }),
		"no blob":        mk(func(c *Descriptor) { c.BlobID = nil }),
		"control char":   mk(func(c *Descriptor) { c.Name = "a\nb" }),
		"bad utf8":       mk(func(c *Descriptor) { c.Name = "\xff" }),
		"negative size":  mk(func(c *Descriptor) { c.Size = -1 }),
		"spaces in type": mk(func(c *Descriptor) { c.MediaType = "text plain" }),
	} {
		if _, err := UnmarshalDescriptor(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzUnmarshalDescriptor(f *testing.F) {
	var ct bytes.Buffer
	d, _ := Encrypt(&ct, bytes.NewReader([]byte("x")), nil)
	d.BlobID, d.Name, d.MediaType = []byte("b"), "n", "t/p"
	f.Add(d.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := UnmarshalDescriptor(b)
		if err == nil && !bytes.Equal(got.Marshal(), b) {
			t.Fatalf("%x decodes but re-encodes differently", b)
		}
	})
}

// FuzzDecrypt: mangled ciphertext never panics and never decrypts.
func FuzzDecrypt(f *testing.F) {
	plain := bytes.Repeat([]byte("attack at dawn "), 10000)
	var ct bytes.Buffer
	d, _ := Encrypt(&ct, bytes.NewReader(plain), nil)
	f.Add(ct.Bytes()[:100], uint16(7))
	f.Fuzz(func(t *testing.T, b []byte, at uint16) {
		c := bytes.Clone(ct.Bytes())
		copy(c[int(at)%len(c):], b)
		err := Decrypt(io.Discard, bytes.NewReader(c), d)
		if err == nil && !bytes.Equal(c, ct.Bytes()) {
			t.Fatal("altered ciphertext decrypted")
		}
	})
}
