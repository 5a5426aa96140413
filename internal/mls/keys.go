package mls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
)

// Secret-bearing values in this package hold their bytes behind a func, as
// internal/identity's SigningKey does: fmt never calls Format or String on
// a value it reaches through an unexported field, and with a bad verb (%s)
// it then prints what a pointer, slice or array holds, but a func always
// prints as an address. A func field also makes the type incomparable.

// secret is a byte string fmt cannot print.
type secret struct {
	get func() []byte
}

func newSecret(b []byte) secret { return secret{func() []byte { return b }} }

// bytes returns the secret's bytes (not a copy), or nil.
func (s secret) bytes() []byte {
	if s.get == nil {
		return nil
	}
	return s.get()
}

// clone returns a copy the caller owns.
func (s secret) clone() []byte {
	if s.get == nil {
		return nil
	}
	return append([]byte(nil), s.get()...)
}

// erase zeroes the secret's bytes in place.
func (s secret) erase() { clear(s.bytes()) }

// SignaturePrivateKey is a signature private key for one scheme (Ed25519
// or ECDSA on P-256, P-384 or P-521). It cannot be compared with == and
// prints, formats and logs only as a redacted string with a fingerprint of
// its public key; the private bytes leave it only through PrivateBytes.
type SignaturePrivateKey struct {
	scheme signatureScheme
	key    func() any // ed25519.PrivateKey or *ecdsa.PrivateKey
}

func newEd25519Key(seed []byte) SignaturePrivateKey {
	k := ed25519.NewKeyFromSeed(seed)
	return SignaturePrivateKey{sigEd25519, func() any { return k }}
}

// NewEd25519Signer makes a SignaturePrivateKey of an Ed25519 key held by a
// crypto.Signer, such as a device's identity key, whose private bytes never
// leave it. PrivateBytes returns nil for such a key.
func NewEd25519Signer(s crypto.Signer) (SignaturePrivateKey, error) {
	if _, ok := s.Public().(ed25519.PublicKey); !ok {
		return SignaturePrivateKey{}, fmt.Errorf("%w: signer's public key is %T, not Ed25519", ErrMalformedKey, s.Public())
	}
	return SignaturePrivateKey{sigEd25519, func() any { return s }}, nil
}

func newECDSAKey(scheme signatureScheme, k *ecdsa.PrivateKey) SignaturePrivateKey {
	return SignaturePrivateKey{scheme, func() any { return k }}
}

// IsZero reports whether k is the zero SignaturePrivateKey, which holds no
// key.
func (k SignaturePrivateKey) IsZero() bool { return k.key == nil }

// Public returns the public key in MLS's SignaturePublicKey encoding: 32
// bytes for Ed25519, the uncompressed point for ECDSA. It returns nil if k
// is zero.
func (k SignaturePrivateKey) Public() []byte {
	switch k := k.priv().(type) {
	case ed25519.PrivateKey:
		return append([]byte(nil), k[ed25519.SeedSize:]...)
	case *ecdsa.PrivateKey:
		b, err := k.PublicKey.Bytes()
		if err != nil {
			panic("mls: ECDSA key with an invalid public key: " + err.Error())
		}
		return b
	case crypto.Signer: // after the concrete types, which are crypto.Signers too
		return append([]byte(nil), k.Public().(ed25519.PublicKey)...)
	}
	return nil
}

// PrivateBytes returns the private key in the encoding
// ParseSignaturePrivateKey reads: the Ed25519 seed or the ECDSA scalar. It
// exists for storing group state; the caller owns and should erase the
// result.
func (k SignaturePrivateKey) PrivateBytes() []byte {
	switch k := k.priv().(type) {
	case ed25519.PrivateKey:
		return append([]byte(nil), k.Seed()...)
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			panic("mls: invalid ECDSA key: " + err.Error())
		}
		return b
	}
	return nil
}

func (k SignaturePrivateKey) priv() any {
	if k.key == nil {
		return nil
	}
	return k.key()
}

// String returns a redacted form naming the scheme and fingerprinting the
// public key.
func (k SignaturePrivateKey) String() string {
	if k.IsZero() {
		return "mls-signature-private(zero)"
	}
	return "mls-signature-private(REDACTED, " + k.scheme.String() + ", public-sha256=" + fingerprint(k.Public()) + ")"
}

// GoString implements fmt.GoStringer with the redacted form.
func (k SignaturePrivateKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k SignaturePrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter so that no verb reaches the private
// bytes.
func (k SignaturePrivateKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// HPKEPrivateKey is an HPKE private key (a leaf's or a tree node's
// encryption key, or an epoch's external key). Like SignaturePrivateKey it
// cannot be compared and never prints its private part.
type HPKEPrivateKey struct {
	key func() hpke.PrivateKey
}

func newHPKEPrivateKey(k hpke.PrivateKey) HPKEPrivateKey {
	return HPKEPrivateKey{func() hpke.PrivateKey { return k }}
}

// IsZero reports whether k is the zero HPKEPrivateKey, which holds no key.
func (k HPKEPrivateKey) IsZero() bool { return k.key == nil }

// Public returns the public key in the KEM's SerializePublicKey encoding
// (MLS's HPKEPublicKey), or nil if k is zero.
func (k HPKEPrivateKey) Public() []byte {
	if k.IsZero() {
		return nil
	}
	return k.key().PublicKey().Bytes()
}

// PrivateBytes returns the private key in the KEM's SerializePrivateKey
// encoding, which ParseHPKEPrivateKey reads. It exists for storing group
// state; the caller owns and should erase the result.
func (k HPKEPrivateKey) PrivateBytes() ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("%w: zero HPKE private key", ErrMalformedKey)
	}
	// A copy: for X-Wing, crypto/hpke returns the key's own seed, which
	// the caller's erasing would zero.
	b, err := k.key().Bytes()
	return bytes.Clone(b), err
}

// String returns a redacted form with a fingerprint of the public key.
func (k HPKEPrivateKey) String() string {
	if k.IsZero() {
		return "mls-hpke-private(zero)"
	}
	return fmt.Sprintf("mls-hpke-private(REDACTED, kem=%#04x, public-sha256=%s)", k.key().KEM().ID(), fingerprint(k.Public()))
}

// GoString implements fmt.GoStringer with the redacted form.
func (k HPKEPrivateKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k HPKEPrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k HPKEPrivateKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// fingerprint is the first 8 bytes of SHA-256(b), in hex.
func fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
