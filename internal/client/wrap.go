package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// A browser keeps a profile's files in IndexedDB, which any script of the
// origin, an extension or a copied disk can read. Each file is therefore
// sealed, whole, under a wrapping key before it is stored there, and the
// wrapping key comes from outside the storage: from a passkey's WebAuthn
// PRF output, so that without the authenticator the stored device keys do
// not open. (The conversation files are sealed a second time by the device
// key, seal.go; the wrapping key is what protects device.key itself.)
//
// A wrapped file is wrapVersion, a 12-byte nonce, then the AES-256-GCM
// ciphertext of the contents with the file's name as additional data, so a
// file renamed or moved does not open.

const wrapVersion = 1

// MinWrapSecret is the least number of bytes NewWrapKey accepts.
const MinWrapSecret = 32

// ErrWrapped is wrapped when a wrapped file does not open: the wrapping key
// is not the one it was sealed under, or the file was altered, truncated or
// renamed.
var ErrWrapped = errors.New("wrapped profile file does not open")

// WrapKey seals profile files for storage that is not trusted with them.
type WrapKey struct {
	aead cipher.AEAD
}

// NewWrapKey derives a wrapping key from a secret of at least
// MinWrapSecret bytes (a WebAuthn PRF output).
func NewWrapKey(secret []byte) (*WrapKey, error) {
	if len(secret) < MinWrapSecret {
		return nil, fmt.Errorf("wrapping secret: %d bytes, want at least %d", len(secret), MinWrapSecret)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "hotline profile wrapping key v1", 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &WrapKey{aead: aead}, nil
}

// Seal returns a file's contents wrapped.
func (k *WrapKey) Seal(name string, data []byte) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(data)+k.aead.Overhead())
	out[0] = wrapVersion
	rand.Read(out[1:])
	return k.aead.Seal(out, out[1:], data, []byte(name))
}

// Open returns the contents of a file Seal wrapped under the same name.
func (k *WrapKey) Open(name string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	switch {
	case len(sealed) < 1+n+k.aead.Overhead():
		return nil, fmt.Errorf("%w: %s is truncated", ErrWrapped, name)
	case sealed[0] != wrapVersion:
		return nil, fmt.Errorf("%w: %s has version %d, want %d", ErrWrapped, name, sealed[0], wrapVersion)
	}
	pt, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrWrapped, name)
	}
	return pt, nil
}

// OpenAll unwraps every file of a profile, for NewMemStorage.
func (k *WrapKey) OpenAll(sealed map[string][]byte) (map[string][]byte, error) {
	out := make(map[string][]byte, len(sealed))
	for name, b := range sealed {
		pt, err := k.Open(name, b)
		if err != nil {
			for _, v := range out {
				clear(v)
			}
			return nil, err
		}
		out[name] = pt
	}
	return out, nil
}
