package sframe

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Options tune a Context. The zero value is the default.
type Options struct {
	// ReplayWindow is how many counters, up to and including the highest
	// accepted so far, a receive key considers: a frame whose counter is
	// within the window is accepted once, one below it never (ErrReplay).
	// It is rounded up to a multiple of 64, at most 65,536 (0: 1,024, about
	// 20 seconds of 20 ms audio frames, or one second of audio and video
	// at 1,000 frames a second under one key).
	ReplayWindow int
}

// Context is the key store of one SFrame session and its two operations,
// Encrypt and Decrypt (RFC 9605, section 4.4). Every key is a base_key
// labelled with a KID and is either a send key, with its own counter, or a
// receive key, with its own replay window; never both. A Context is safe
// for concurrent use.
type Context struct {
	suite  CipherSuite
	params suiteParams
	opts   Options

	// mu guards keys, sent, and the counters and windows of the keys.
	mu   sync.Mutex
	keys map[uint64]*keyState
	// sent holds the fingerprints of every send key this Context has held,
	// so removing a key and adding it again cannot restart its counter.
	sent map[[16]byte]struct{}
}

// NewContext returns an empty Context for suite.
func NewContext(suite CipherSuite, opts Options) (*Context, error) {
	p, ok := suite.params()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, suite)
	}
	return &Context{
		suite: suite, params: p, opts: opts,
		keys: map[uint64]*keyState{}, sent: map[[16]byte]struct{}{},
	}, nil
}

// Suite returns the Context's cipher suite.
func (c *Context) Suite() CipherSuite { return c.suite }

// AddSendKey adds baseKey as the send key of kid, its counter at 0. Only
// one sender may ever encrypt with a base_key (RFC 9605, section 4.4.1).
// It fails with ErrDuplicateKID if kid has a key, and with ErrKeyReused if
// this Context has sent with the same key material before (the same kid
// and base_key), since its counter would start again at 0. The Context
// keeps no reference to baseKey; the caller may erase it.
func (c *Context) AddSendKey(kid uint64, baseKey []byte) error {
	ks, err := newKeyState(c.suite, kid, baseKey, true, 0)
	if err != nil {
		return fmt.Errorf("sframe: add send key %d: %w", kid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[kid]; ok {
		return fmt.Errorf("sframe: add send key %d: %w", kid, ErrDuplicateKID)
	}
	if _, ok := c.sent[ks.fingerprint]; ok {
		return fmt.Errorf("sframe: add send key %d: %w", kid, ErrKeyReused)
	}
	c.sent[ks.fingerprint] = struct{}{}
	c.keys[kid] = ks
	return nil
}

// AddReceiveKey adds baseKey as the receive key of kid, with an empty
// replay window. It fails with ErrDuplicateKID if kid has a key. The
// Context keeps no reference to baseKey.
func (c *Context) AddReceiveKey(kid uint64, baseKey []byte) error {
	ks, err := newKeyState(c.suite, kid, baseKey, false, c.opts.ReplayWindow)
	if err != nil {
		return fmt.Errorf("sframe: add receive key %d: %w", kid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[kid]; ok {
		return fmt.Errorf("sframe: add receive key %d: %w", kid, ErrDuplicateKID)
	}
	c.keys[kid] = ks
	return nil
}

// RemoveKey forgets the key of kid, send or receive, and reports whether
// there was one. Frames under kid then fail with ErrUnknownKID.
func (c *Context) RemoveKey(kid uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[kid]
	delete(c.keys, kid)
	return ok
}

// Encrypt protects plaintext with the send key of kid and its next
// counter, and returns the SFrame ciphertext: header, encrypted plaintext,
// tag. metadata is authenticated with the header but not sent: the
// receiver passes the same bytes to Decrypt. Encrypt fails with
// ErrUnknownKID if kid has no send key, ErrCounterExhausted once the key's
// counters are used up, and ErrFrameTooLarge for a plaintext beyond the
// suite's limit (64 GiB).
func (c *Context) Encrypt(kid uint64, metadata, plaintext []byte) ([]byte, error) {
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, ErrFrameTooLarge
	}
	c.mu.Lock()
	ks := c.keys[kid]
	if ks == nil || !ks.send {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: no send key %d", ErrUnknownKID, kid)
	}
	ctr, err := ks.reserveLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sframe: kid %d: %w", kid, err)
	}
	return seal(ks, Header{KID: kid, CTR: ctr}, metadata, plaintext), nil
}

// seal returns header + AEAD.Encrypt(sframe_key, nonce, header+metadata,
// plaintext). One allocation holds the result, then the nonce, then room
// for the AAD (beyond the result's capacity).
func seal(ks *keyState, h Header, metadata, plaintext []byte) []byte {
	hl := h.Len()
	n := hl + len(plaintext) + ks.aead.overhead()
	buf := make([]byte, n+nonceSize+hl+len(metadata))
	nonce := buf[n : n+nonceSize]
	ks.nonceInto(nonce, h.CTR)
	h.Append(buf[:0])
	return ks.aead.seal(buf[:hl], nonce, plaintext, buf[:hl], metadata)[:n:n]
}

// Decrypt authenticates and decrypts an SFrame ciphertext and returns the
// plaintext. metadata must be what the sender passed to Encrypt. Decrypt
// fails with ErrShortHeader or ErrMalformedHeader for a bad header,
// ErrUnknownKID if the header's KID has no receive key (the caller may
// keep the frame and retry once the key arrives), ErrAuth if the frame
// does not authenticate (including one too short for a tag), and ErrReplay
// for a counter the key accepted before or one older than its window.
// Only a frame that authenticates moves the window.
func (c *Context) Decrypt(metadata, frame []byte) ([]byte, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ks := c.keys[h.KID]
	if ks == nil || ks.send {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: no receive key %d", ErrUnknownKID, h.KID)
	}
	err = ks.window.check(h.CTR)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	pt, err := open(ks, h, frame[:n], metadata, frame[n:])
	if err != nil {
		return nil, err
	}
	if err := c.accept(ks, h.CTR); err != nil {
		return nil, err
	}
	return pt, nil
}

// open decrypts a frame under ks. The caller checks the replay window
// before and moves it after, once the frame is known good.
func open(ks *keyState, h Header, header, metadata, ct []byte) ([]byte, error) {
	// One allocation for the plaintext, the nonce and room for the AAD.
	n := max(len(ct)-ks.aead.overhead(), 0)
	buf := make([]byte, n+nonceSize+len(header)+len(metadata))
	nonce := buf[n : n+nonceSize]
	ks.nonceInto(nonce, h.CTR)
	pt, err := ks.aead.open(buf[:0], nonce, ct, header, metadata)
	if err != nil {
		return nil, err
	}
	return pt[:len(pt):len(pt)], nil
}

// String returns a redacted form.
func (c *Context) String() string {
	if c == nil {
		return "sframe-context(nil)"
	}
	c.mu.Lock()
	n := len(c.keys)
	c.mu.Unlock()
	return fmt.Sprintf("sframe-context(REDACTED, %v, %d keys)", c.suite, n)
}

// GoString implements fmt.GoStringer with the redacted form.
func (c *Context) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (c *Context) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (c *Context) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// lookup returns the key of kid, or nil, and for a receive key whether
// its window would accept ctr.
func (c *Context) lookup(kid, ctr uint64) (*keyState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks := c.keys[kid]
	if ks == nil || ks.send {
		return ks, nil
	}
	return ks, ks.window.check(ctr)
}

// insertReceive stores ks as the receive key of kid unless kid has a key
// already, and returns the receive key stored, or nil if kid has a send
// key.
func (c *Context) insertReceive(kid uint64, ks *keyState) *keyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.keys[kid]; old != nil {
		if old.send {
			return nil
		}
		return old
	}
	c.keys[kid] = ks
	return ks
}

// accept moves the replay window of a receive key over ctr, or fails with
// ErrReplay.
func (c *Context) accept(ks *keyState, ctr uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ks.window.accept(ctr)
}
