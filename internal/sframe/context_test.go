package sframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
)

var allSuites = []CipherSuite{
	AES128CTRHMACSHA256_80, AES128CTRHMACSHA256_64, AES128CTRHMACSHA256_32,
	AES128GCMSHA256_128, AES256GCMSHA512_128,
	AES256CTRHMACSHA512_80, AES256CTRHMACSHA512_64, AES256CTRHMACSHA512_32,
}

// decryptErrors are the sentinels Decrypt may return.
var decryptErrors = []error{ErrShortHeader, ErrMalformedHeader, ErrUnknownKID, ErrAuth, ErrReplay}

// isDecryptError reports whether err wraps exactly one of decryptErrors.
func isDecryptError(err error) bool {
	n := 0
	for _, s := range decryptErrors {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

func baseKey(suite CipherSuite, seed byte) []byte {
	b := make([]byte, suite.KeySize())
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// pair returns a sending and a receiving Context sharing kid's key.
func pair(t testing.TB, suite CipherSuite, kid uint64, opts Options) (send, recv *Context) {
	t.Helper()
	var err error
	if send, err = NewContext(suite, opts); err != nil {
		t.Fatal(err)
	}
	if recv, err = NewContext(suite, opts); err != nil {
		t.Fatal(err)
	}
	k := baseKey(suite, byte(kid))
	if err := send.AddSendKey(kid, k); err != nil {
		t.Fatal(err)
	}
	if err := recv.AddReceiveKey(kid, k); err != nil {
		t.Fatal(err)
	}
	return send, recv
}

func TestRoundTrip(t *testing.T) {
	for _, suite := range allSuites {
		for _, kid := range []uint64{0, 7, 8, 1 << 40, math.MaxUint64} {
			send, recv := pair(t, suite, kid, Options{})
			for i, size := range []int{0, 1, 15, 16, 17, 160, 1200} {
				pt := bytes.Repeat([]byte{byte(i)}, size)
				md := []byte(fmt.Sprint("metadata ", i))
				if i%2 == 0 {
					md = nil
				}
				f, err := send.Encrypt(kid, md, pt)
				if err != nil {
					t.Fatal(err)
				}
				h, n, err := ParseHeader(f)
				if err != nil || h != (Header{KID: kid, CTR: uint64(i)}) {
					t.Fatalf("%v: header %+v, %v", suite, h, err)
				}
				if len(f) != n+size+suite.TagSize() {
					t.Fatalf("%v: frame of %d bytes for %d", suite, len(f), size)
				}
				got, err := recv.Decrypt(md, f)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%v kid %d size %d: %x, %v", suite, kid, size, got, err)
				}
				if got == nil {
					t.Fatal("nil plaintext")
				}
			}
		}
	}
}

// TestMangling flips every bit of frames and metadata, and cuts frames at
// every length: each must fail with one of Decrypt's sentinels, and leave
// the key able to take the original.
func TestMangling(t *testing.T) {
	for _, suite := range allSuites {
		for _, kid := range []uint64{3, 300} {
			send, recv := pair(t, suite, kid, Options{})
			for range 9 { // a counter that takes a byte
				if _, err := send.Encrypt(kid, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			md := []byte("md")
			f, err := send.Encrypt(kid, md, []byte("an opus frame"))
			if err != nil {
				t.Fatal(err)
			}
			try := func(what string, md, frame []byte) {
				t.Helper()
				_, err := recv.Decrypt(md, frame)
				if err == nil || !isDecryptError(err) {
					t.Fatalf("%v %s: %v", suite, what, err)
				}
			}
			for i := range len(f) * 8 {
				g := bytes.Clone(f)
				g[i/8] ^= 1 << (i % 8)
				try(fmt.Sprintf("bit %d", i), md, g)
			}
			for i := range len(md) * 8 {
				m := bytes.Clone(md)
				m[i/8] ^= 1 << (i % 8)
				try(fmt.Sprintf("metadata bit %d", i), m, f)
			}
			for i := range len(f) {
				try(fmt.Sprintf("cut to %d", i), md, f[:i])
			}
			try("extended", md, append(bytes.Clone(f), 0))
			try("no metadata", nil, f)
			if _, err := recv.Decrypt(md, f); err != nil {
				t.Fatalf("%v: the original after the mangled: %v", suite, err)
			}
		}
	}
}

func TestMalformedHeader(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
	}{
		{"", ErrShortHeader},
		{"08", ErrShortHeader},
		{"80", ErrShortHeader},
		{"f8", ErrShortHeader},
		{"8f01", ErrMalformedHeader}, // KID 1 in a byte, before the CTR is short
		{"0f01020304050607", ErrShortHeader},
		{"0800", ErrMalformedHeader},   // CTR 0 in a byte
		{"0807", ErrMalformedHeader},   // CTR 7 in a byte
		{"090008", ErrMalformedHeader}, // leading zero
		{"8007", ErrMalformedHeader},   // KID 7 in a byte
		{"900001", ErrMalformedHeader}, // KID with a leading zero
		{"900100", nil},
		{"0808", nil},
		{"8008", nil},
		{"77", nil},
	} {
		b, _ := hex.DecodeString(c.in)
		_, _, err := ParseHeader(b)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("ParseHeader(%s): %v, want %v", c.in, err, c.want)
		}
	}
}

func TestReplayWindow(t *testing.T) {
	for _, size := range []int{1, 64, 100, 1024} {
		w := newReplayWindow(size)
		n := w.size()
		if n%64 != 0 || n < uint64(size) {
			t.Fatalf("window %d: size %d", size, n)
		}
		steps := []struct {
			ctr uint64
			ok  bool
		}{
			{5, true}, {5, false}, {3, true}, {4, true}, {3, false}, {6, true},
			{n + 5, true},      // slides: 5 and 6 still in
			{6, true},          // not seen since the slide? it was: refused below
			{n + 5, false},     // duplicate of the highest
			{5, false},         // now n below the highest: too old
			{n + 4, true},      // within, unseen
			{3*n + 100, true},  // far jump clears all
			{2*n + 101, true},  // the oldest in the window
			{2*n + 100, false}, // just out
			{math.MaxUint64, true},
			{math.MaxUint64 - n + 1, true},
			{math.MaxUint64, false},
		}
		steps[7].ok = false // 6 was accepted before the slide
		for i, s := range steps {
			err := w.accept(s.ctr)
			if (err == nil) != s.ok || (err != nil && !errors.Is(err, ErrReplay)) {
				t.Fatalf("window %d, step %d (ctr %d): %v, want ok=%v", size, i, s.ctr, err, s.ok)
			}
		}
	}
	// Out of order within the window, every counter once.
	w := newReplayWindow(64)
	for _, base := range []uint64{0, 64, 128} {
		for i := range uint64(64) {
			c := base + (i*37)%64
			if err := w.accept(c); err != nil {
				t.Fatalf("ctr %d: %v", c, err)
			}
		}
	}
	for c := uint64(128); c < 192; c++ {
		if err := w.accept(c); !errors.Is(err, ErrReplay) {
			t.Fatalf("ctr %d again: %v", c, err)
		}
	}
}

func TestReplayThroughContext(t *testing.T) {
	send, recv := pair(t, AES128GCMSHA256_128, 1, Options{ReplayWindow: 64})
	var frames [][]byte
	for range 200 {
		f, err := send.Encrypt(1, nil, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	// Reordered delivery within the window is fine.
	for _, i := range []int{1, 0, 3, 2, 10, 4} {
		if _, err := recv.Decrypt(nil, frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := recv.Decrypt(nil, frames[3]); !errors.Is(err, ErrReplay) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := recv.Decrypt(nil, frames[150]); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.Decrypt(nil, frames[5]); !errors.Is(err, ErrReplay) {
		t.Fatalf("too old: %v", err)
	}
	// A forged frame with a far counter does not move the window.
	forged := Header{KID: 1, CTR: 1 << 40}.Append(nil)
	forged = append(forged, make([]byte, 32)...)
	if _, err := recv.Decrypt(nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := recv.Decrypt(nil, frames[149]); err != nil {
		t.Fatalf("after the forgery: %v", err)
	}
}

func TestCounterExhausted(t *testing.T) {
	for _, suite := range []CipherSuite{AES128CTRHMACSHA256_80, AES128GCMSHA256_128} {
		send, recv := pair(t, suite, 9, Options{})
		send.keys[9].next = math.MaxUint64 - 2
		for i := range 2 {
			f, err := send.Encrypt(9, nil, []byte("last"))
			if err != nil {
				t.Fatalf("encrypt %d: %v", i, err)
			}
			if _, err := recv.Decrypt(nil, f); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if _, err := send.Encrypt(9, nil, []byte("one too many")); !errors.Is(err, ErrCounterExhausted) {
				t.Fatalf("%v: %v, want ErrCounterExhausted", suite, err)
			}
		}
		if k := send.keys[9]; !k.exhausted || k.next != math.MaxUint64 {
			t.Fatalf("%v: next %d, exhausted %v", suite, k.next, k.exhausted)
		}
	}
}

func TestKeyUsage(t *testing.T) {
	suite := AES128CTRHMACSHA256_64
	c, err := NewContext(suite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := baseKey(suite, 1)
	if err := c.AddSendKey(1, k); err != nil {
		t.Fatal(err)
	}
	if err := c.AddReceiveKey(2, k); err != nil {
		t.Fatal(err)
	}
	if err := c.AddSendKey(1, baseKey(suite, 2)); !errors.Is(err, ErrDuplicateKID) {
		t.Errorf("second send key: %v", err)
	}
	if err := c.AddReceiveKey(1, k); !errors.Is(err, ErrDuplicateKID) {
		t.Errorf("receive key over a send key: %v", err)
	}
	f, err := c.Encrypt(1, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(nil, f); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("decrypt with a send key: %v", err)
	}
	if _, err := c.Encrypt(2, nil, []byte("x")); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("encrypt with a receive key: %v", err)
	}
	if _, err := c.Encrypt(3, nil, []byte("x")); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("encrypt with no key: %v", err)
	}
	// Removing a send key and adding it again would restart its counter.
	if !c.RemoveKey(1) || c.RemoveKey(1) {
		t.Error("RemoveKey")
	}
	if err := c.AddSendKey(1, k); !errors.Is(err, ErrKeyReused) {
		t.Errorf("send key again: %v", err)
	}
	if err := c.AddSendKey(1, baseKey(suite, 3)); err != nil {
		t.Errorf("a new send key for the KID: %v", err)
	}
	// A receive key can come and go.
	c.RemoveKey(2)
	if err := c.AddReceiveKey(2, k); err != nil {
		t.Error(err)
	}
	if _, err := NewContext(0x0009, Options{}); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("suite 9: %v", err)
	}
	if err := c.AddSendKey(5, []byte("short")); err != nil {
		t.Errorf("a short base key is HKDF input like any: %v", err)
	}
}

func TestFrameTooLarge(t *testing.T) {
	// GCM's limit (cipher.NewGCM panics beyond it), and the most the
	// AES-CTR suites' 32-bit block counter covers.
	if maxPlaintext != (1<<32-2)*16 || maxPlaintext > (1<<32)*16 {
		t.Fatal(maxPlaintext)
	}
}

// TestRedaction checks that no way of printing or logging the key-bearing
// types shows key material.
func TestRedaction(t *testing.T) {
	suite := AES128GCMSHA256_128
	k := baseKey(suite, 0xa0)
	c, err := NewContext(suite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddSendKey(4, k); err != nil {
		t.Fatal(err)
	}
	m, err := NewMLSContext(suite, MLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddEpoch(MLSEpoch{Number: 1, Self: 0, GroupSize: 2, Export: fixedExporter(k)}); err != nil {
		t.Fatal(err)
	}
	ks := c.keys[4]
	_, salt, _ := deriveKeySalt(suite, c.params, 4, k)
	secrets := []string{hex.EncodeToString(k), hex.EncodeToString(salt), hex.EncodeToString(ks.salt[:]), string(k)}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	for _, v := range []any{c, m, ks, m.slots[1], struct{ C *Context }{c}} {
		log.Info("x", "v", v)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v) + logged.String()
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
					t.Errorf("%s of %T shows a secret: %s", verb, v, out)
				}
			}
		}
	}
	if !strings.Contains(fmt.Sprint(c), "REDACTED") || !strings.Contains(fmt.Sprint(m), "REDACTED") {
		t.Errorf("%v / %v", c, m)
	}
}

// TestConcurrent decrypts the frames of several senders from several
// goroutines at once, each frame twice: exactly one of the two succeeds.
func TestConcurrent(t *testing.T) {
	suite := AES128CTRHMACSHA256_80
	recv, err := NewContext(suite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for kid := range uint64(4) {
		send, err := NewContext(suite, Options{})
		if err != nil {
			t.Fatal(err)
		}
		k := baseKey(suite, byte(kid))
		send.AddSendKey(kid, k)
		recv.AddReceiveKey(kid, k)
		for range 200 {
			f, err := send.Encrypt(kid, nil, []byte("concurrent"))
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f, f)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, replayed := 0, 0
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(frames); i += 8 {
				_, err := recv.Decrypt(nil, frames[i])
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrReplay):
					replayed++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != len(frames)/2 || replayed != len(frames)/2 {
		t.Fatalf("%d decrypted, %d replays, of %d", ok, replayed, len(frames))
	}
}

// TestAADPieces checks that the AEADs give the same result whether the
// AAD comes in the caller's spare capacity, allocated, or split anywhere.
func TestAADPieces(t *testing.T) {
	for _, suite := range allSuites {
		p, _ := suite.params()
		a, err := newAEAD(p, baseKey(suite, 1))
		if err != nil {
			t.Fatal(err)
		}
		nonce := make([]byte, nonceSize)
		aad := []byte("header and metadata")
		pt := []byte("plaintext")
		want := a.seal(nil, nonce, pt, aad, nil)
		for i := range len(aad) + 1 {
			for _, dst := range [][]byte{nil, make([]byte, 0, 100), []byte("prefix")} {
				prefix := string(dst)
				got := a.seal(dst, nonce, pt, aad[:i], aad[i:])
				if string(got[:len(prefix)]) != prefix || !bytes.Equal(got[len(prefix):], want) {
					t.Fatalf("%v: split %d, dst cap %d: %x, want %x", suite, i, cap(dst), got, want)
				}
				back, err := a.open(dst, nonce, want, aad[:i], aad[i:])
				if err != nil || string(back[:len(prefix)]) != prefix || !bytes.Equal(back[len(prefix):], pt) {
					t.Fatalf("%v: open split %d: %q, %v", suite, i, back, err)
				}
			}
		}
		for n := range a.overhead() {
			if _, err := a.open(nil, nonce, want[:n], aad, nil); !errors.Is(err, ErrAuth) {
				t.Fatalf("%v: %d bytes: %v", suite, n, err)
			}
		}
	}
}
