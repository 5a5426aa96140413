package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"sync"
)

// frameAEAD is the AEAD of a key. The associated data comes in two parts,
// the encoded header and the application's metadata, which RFC 9605
// concatenates (aad = header + metadata); taking them apart spares a copy
// where the construction allows it. Implementations are safe for
// concurrent use.
type frameAEAD interface {
	// seal appends the ciphertext and tag of plaintext to dst. It may use
	// the capacity of dst beyond the result as scratch space.
	seal(dst, nonce, plaintext, header, metadata []byte) []byte
	// open appends the plaintext of ciphertext (which ends with the tag) to
	// dst, or fails with ErrAuth. It may use the capacity of dst beyond the
	// result as scratch space.
	open(dst, nonce, ciphertext, header, metadata []byte) ([]byte, error)
	overhead() int
}

// maxPlaintext bounds a frame's plaintext for every suite: AES-GCM takes at
// most 2^32-2 blocks, and the AES-CTR suites' 32-bit block counter, which
// starts at zero after the nonce, must not carry into the nonce.
const maxPlaintext = (1<<32 - 2) * aes.BlockSize

// newAEAD returns the AEAD of suite p keyed with key (AEAD.Nk bytes). The
// AEAD keeps no reference to key.
func newAEAD(p suiteParams, key []byte) (frameAEAD, error) {
	if !p.ctr {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		return gcmAEAD{g}, nil
	}
	return newCTRHMAC(p, key)
}

// gcmAEAD is AES-GCM, for the GCM suites. GCM takes the AAD in one piece:
// with metadata, header + metadata is built in the spare capacity of dst
// beyond the result, when the caller left room, so it costs no
// allocation.
type gcmAEAD struct{ g cipher.AEAD }

func (a gcmAEAD) overhead() int { return a.g.Overhead() }

func (a gcmAEAD) seal(dst, nonce, plaintext, header, metadata []byte) []byte {
	aad, dst := joinAAD(dst, len(plaintext)+a.g.Overhead(), header, metadata)
	return a.g.Seal(dst, nonce, plaintext, aad)
}

func (a gcmAEAD) open(dst, nonce, ciphertext, header, metadata []byte) ([]byte, error) {
	if len(ciphertext) < a.g.Overhead() {
		return nil, ErrAuth
	}
	aad, dst := joinAAD(dst, len(ciphertext)-a.g.Overhead(), header, metadata)
	out, err := a.g.Open(dst, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// joinAAD returns header + metadata, and dst with its capacity cut to
// len(dst)+n, the size of the result. The AAD is header itself when there
// is no metadata; else it is built at the top of dst's capacity if there
// is room beyond len(dst)+n, else allocated.
func joinAAD(dst []byte, n int, header, metadata []byte) (aad, out []byte) {
	if len(metadata) == 0 {
		return header, dst
	}
	need := len(header) + len(metadata)
	end := len(dst) + n
	if cap(dst)-end < need {
		aad = make([]byte, 0, need)
		return append(append(aad, header...), metadata...), dst
	}
	top := cap(dst) - need
	aad = append(append(dst[top:top], header...), metadata...)
	return aad, dst[:len(dst):end]
}

// ctrHMAC is the AES-CTR and HMAC construction of RFC 9605, section 4.5.1:
// encrypt-then-MAC, the key split into an encryption key (the first Nka
// bytes) and an authentication key (the remaining Nh), the MAC truncated
// to Nt bytes.
type ctrHMAC struct {
	block cipher.Block
	nt    int
	// mu guards mac, whose state each seal or open resets and uses, and
	// the scratch buffers lens and sum.
	mu   sync.Mutex
	mac  hash.Hash
	lens [24]byte
	sum  [64]byte
}

func newCTRHMAC(p suiteParams, key []byte) (*ctrHMAC, error) {
	block, err := aes.NewCipher(key[:p.nka])
	if err != nil {
		return nil, err
	}
	return &ctrHMAC{block: block, nt: p.nt, mac: hmac.New(p.newHash, key[p.nka:])}, nil
}

func (a *ctrHMAC) overhead() int { return a.nt }

// ctr applies AES-CTR from the initial counter block nonce || 0x00000000.
func (a *ctrHMAC) ctr(dst, src, nonce []byte) {
	var iv [aes.BlockSize]byte
	copy(iv[:], nonce)
	cipher.NewCTR(a.block, iv[:]).XORKeyStream(dst, src)
}

// tag computes the truncated MAC over
// len(aad) || len(ct) || Nt || nonce || aad || ct, with the lengths as
// 8-byte big-endian integers, into out (Nt bytes).
func (a *ctrHMAC) tag(out, nonce, header, metadata, ct []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	binary.BigEndian.PutUint64(a.lens[0:], uint64(len(header)+len(metadata)))
	binary.BigEndian.PutUint64(a.lens[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(a.lens[16:], uint64(a.nt))
	a.mac.Reset()
	a.mac.Write(a.lens[:])
	a.mac.Write(nonce)
	a.mac.Write(header)
	a.mac.Write(metadata)
	a.mac.Write(ct)
	copy(out, a.mac.Sum(a.sum[:0])[:a.nt])
}

func (a *ctrHMAC) seal(dst, nonce, plaintext, header, metadata []byte) []byte {
	ret, out := grow(dst, len(plaintext)+a.nt)
	ct := out[:len(plaintext)]
	a.ctr(ct, plaintext, nonce)
	a.tag(out[len(plaintext):], nonce, header, metadata, ct)
	return ret
}

func (a *ctrHMAC) open(dst, nonce, ciphertext, header, metadata []byte) ([]byte, error) {
	if len(ciphertext) < a.nt {
		return nil, ErrAuth
	}
	ct, got := ciphertext[:len(ciphertext)-a.nt], ciphertext[len(ciphertext)-a.nt:]
	var want [64]byte
	a.tag(want[:a.nt], nonce, header, metadata, ct)
	if subtle.ConstantTimeCompare(got, want[:a.nt]) != 1 {
		return nil, ErrAuth
	}
	ret, out := grow(dst, len(ct))
	a.ctr(out, ct, nonce)
	return ret, nil
}

// grow extends b by n bytes and returns the whole slice and the n new
// bytes, as cipher.AEAD's Seal does with dst.
func grow(b []byte, n int) (whole, tail []byte) {
	total := len(b) + n
	if cap(b) >= total {
		whole = b[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, b)
	}
	return whole, whole[len(b):]
}
