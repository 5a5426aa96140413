package sframe

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
)

// Secret-bearing values hold their bytes behind a func, as internal/mls
// does: fmt never calls String or Format on a value it reaches through an
// unexported field, and with a bad verb it then prints what a slice or
// array holds, but a func always prints as an address.

// secret is a byte string fmt cannot print.
type secret struct{ get func() []byte }

func newSecret(b []byte) secret { return secret{func() []byte { return b }} }

func (s secret) bytes() []byte {
	if s.get == nil {
		return nil
	}
	return s.get()
}

// erase zeroes the secret's bytes in place.
func (s secret) erase() { clear(s.bytes()) }

// The labels of RFC 9605, section 4.4.2, each followed by the KID (8 bytes)
// and the cipher suite (2 bytes), big-endian.
const (
	keyLabel  = "SFrame 1.0 Secret key "
	saltLabel = "SFrame 1.0 Secret salt "
)

// derivationLabel returns prefix + KID + cipher_suite.
func derivationLabel(prefix string, kid uint64, suite CipherSuite) []byte {
	b := make([]byte, 0, len(prefix)+10)
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint64(b, kid)
	return binary.BigEndian.AppendUint16(b, uint16(suite))
}

// sframeSecret returns sframe_secret = HKDF-Extract("", base_key).
func sframeSecret(p suiteParams, baseKey []byte) ([]byte, error) {
	return hkdf.Extract(p.newHash, baseKey, nil)
}

// deriveKeySalt is derive_key_salt of RFC 9605, section 4.4.2:
//
//	sframe_secret = HKDF-Extract("", base_key)
//	sframe_key = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key " + KID + cipher_suite, AEAD.Nk)
//	sframe_salt = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " + KID + cipher_suite, AEAD.Nn)
//
// with the suite's hash. The caller erases the results when done.
func deriveKeySalt(suite CipherSuite, p suiteParams, kid uint64, baseKey []byte) (key, salt []byte, err error) {
	prk, err := sframeSecret(p, baseKey)
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	if key, err = hkdf.Expand(p.newHash, prk, string(derivationLabel(keyLabel, kid, suite)), p.nk); err != nil {
		return nil, nil, err
	}
	if salt, err = hkdf.Expand(p.newHash, prk, string(derivationLabel(saltLabel, kid, suite)), nonceSize); err != nil {
		clear(key)
		return nil, nil, err
	}
	return key, salt, nil
}

// keyState is what a Context holds for one KID: the AEAD and salt derived
// from its base_key, and either the next counter (a send key) or the
// replay window (a receive key). The Context's mutex guards next,
// exhausted and window; the rest is immutable.
type keyState struct {
	kid  uint64
	send bool
	aead frameAEAD
	salt [nonceSize]byte
	// fingerprint identifies the derived key material of a send key, so a
	// Context can refuse to send with it again after a removal.
	fingerprint [16]byte

	next      uint64
	exhausted bool
	window    replayWindow
}

// newKeyState derives a key's state from its base_key. The derived key
// lives on only inside the AEAD; base_key is left to the caller.
func newKeyState(suite CipherSuite, kid uint64, baseKey []byte, send bool, window int) (*keyState, error) {
	p, ok := suite.params()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, suite)
	}
	key, salt, err := deriveKeySalt(suite, p, kid, baseKey)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(salt)
	a, err := newAEAD(p, key)
	if err != nil {
		return nil, err
	}
	ks := &keyState{kid: kid, send: send, aead: a}
	copy(ks.salt[:], salt)
	if send {
		h := sha256.New()
		io.WriteString(h, "hotline sframe send key fingerprint")
		h.Write(key)
		h.Write(salt)
		copy(ks.fingerprint[:], h.Sum(nil))
	} else {
		ks.window = newReplayWindow(window)
	}
	return ks, nil
}

// nonceInto writes sframe_salt XOR CTR, CTR encoded big-endian in AEAD.Nn
// bytes (RFC 9605, section 4.4.3, with erratum 8321), into dst.
func (k *keyState) nonceInto(dst []byte, ctr uint64) {
	copy(dst, k.salt[:])
	binary.BigEndian.PutUint64(dst[nonceSize-8:], binary.BigEndian.Uint64(k.salt[nonceSize-8:])^ctr)
}

// reserveLocked returns the next counter of a send key and advances it. The
// last value, 2^64-1, is never used, so the counter cannot wrap: once it
// is reached the key fails with ErrCounterExhausted.
func (k *keyState) reserveLocked() (uint64, error) {
	if k.exhausted || k.next == math.MaxUint64 {
		k.exhausted = true
		return 0, ErrCounterExhausted
	}
	c := k.next
	k.next++
	return c, nil
}

// String returns a redacted form.
func (k *keyState) String() string {
	if k == nil {
		return "sframe-key(nil)"
	}
	use := "receive"
	if k.send {
		use = "send"
	}
	return fmt.Sprintf("sframe-key(REDACTED, kid=%d, %s)", k.kid, use)
}

// GoString implements fmt.GoStringer with the redacted form.
func (k *keyState) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k *keyState) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k *keyState) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// replayWindow remembers which counters a receive key accepted: the
// highest, and for the size-1 counters below it whether each was seen.
// Anything older is refused. Bit i of the ring bitmap stands for the
// counter c with c mod size = i.
type replayWindow struct {
	started bool
	highest uint64
	bitmap  []uint64
}

// Replay window sizes, in counters.
const (
	defaultReplayWindow = 1024
	maxReplayWindow     = 1 << 16
)

func newReplayWindow(size int) replayWindow {
	if size <= 0 {
		size = defaultReplayWindow
	}
	size = min((size+63)/64*64, maxReplayWindow)
	return replayWindow{bitmap: make([]uint64, size/64)}
}

func (w *replayWindow) size() uint64 { return uint64(len(w.bitmap)) * 64 }

func (w *replayWindow) bit(ctr uint64) (word int, mask uint64) {
	i := ctr % w.size()
	return int(i / 64), 1 << (i % 64)
}

// check reports whether ctr would be accepted: newer than the highest, or
// within the window and not yet seen.
func (w *replayWindow) check(ctr uint64) error {
	if !w.started || ctr > w.highest {
		return nil
	}
	if w.highest-ctr >= w.size() {
		return fmt.Errorf("%w: counter %d is older than the window (highest %d)", ErrReplay, ctr, w.highest)
	}
	if word, mask := w.bit(ctr); w.bitmap[word]&mask != 0 {
		return fmt.Errorf("%w: counter %d seen before", ErrReplay, ctr)
	}
	return nil
}

// accept records ctr as seen, after check; it slides the window when ctr
// is the new highest.
func (w *replayWindow) accept(ctr uint64) error {
	if err := w.check(ctr); err != nil {
		return err
	}
	switch {
	case !w.started:
		w.started = true
		w.highest = ctr
	case ctr > w.highest && ctr-w.highest >= w.size():
		clear(w.bitmap)
		w.highest = ctr
	case ctr > w.highest:
		for c := w.highest + 1; c < ctr; c++ {
			word, mask := w.bit(c)
			w.bitmap[word] &^= mask
		}
		w.highest = ctr
	}
	word, mask := w.bit(ctr)
	w.bitmap[word] |= mask
	return nil
}
