package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hpke"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// seedSize is the size of the secret seeds both device keys are derived
// from: an Ed25519 seed (RFC 8032) and an X-Wing decapsulation key seed.
const seedSize = 32

// readRandom reads n bytes from rand, or from crypto/rand if rand is nil.
// Keys are always derived from a seed read this way, so that an injected
// reader gives the same key on every platform and Go version.
func readRandom(rand io.Reader, n int) ([]byte, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	return b, nil
}

// SigningKey is a device's Ed25519 private key. It cannot be compared with
// == and prints, formats and logs only as a redacted string naming its
// device; the private bytes leave it only through the key file.
//
// The key is held by a func. fmt skips Format and String methods on values
// it reaches through unexported fields (struct{ k SigningKey }), and with a
// bad verb (%s) it then prints what a pointer points to, so a slice, array
// or pointer field would leak; a func prints as an address, always. A func
// field also makes SigningKey incomparable.
type SigningKey struct {
	key func() ed25519.PrivateKey
}

// GenerateSigningKey returns a new signing key derived from 32 bytes read
// from rand (nil means crypto/rand).
func GenerateSigningKey(rand io.Reader) (SigningKey, error) {
	seed, err := readRandom(rand, seedSize)
	if err != nil {
		return SigningKey{}, err
	}
	return newSigningKey(seed), nil
}

func newSigningKey(seed []byte) SigningKey {
	k := ed25519.NewKeyFromSeed(seed)
	return SigningKey{func() ed25519.PrivateKey { return k }}
}

// IsZero reports whether k is the zero SigningKey, which holds no key.
func (k SigningKey) IsZero() bool { return k.key == nil }

// Public returns k's public key, or the zero PublicKey if k is zero.
func (k SigningKey) Public() PublicKey {
	var p PublicKey
	if !k.IsZero() {
		copy(p[:], k.key()[seedSize:])
	}
	return p
}

// Sign signs msg with Ed25519. Messages are built by the functions in
// auth.go (or another domain-separated format), never taken raw from a peer.
// Sign panics if k is zero.
func (k SigningKey) Sign(msg []byte) []byte { return ed25519.Sign(k.key(), msg) }

// String returns a redacted form that names the key's device.
func (k SigningKey) String() string {
	if k.IsZero() {
		return "ed25519-private(zero)"
	}
	return "ed25519-private(REDACTED, public=" + k.Public().DeviceID() + ")"
}

// GoString implements fmt.GoStringer with the redacted form.
func (k SigningKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k SigningKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter so that no verb (%d, %x …) reaches the
// private bytes.
func (k SigningKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// PublicKey is a device's Ed25519 public key.
type PublicKey [ed25519.PublicKeySize]byte

// ParsePublicKey parses the standard base64 encoding of a public key. It
// rejects non-canonical encodings and the small-order points, for which
// anyone can forge signatures.
func ParsePublicKey(b64 string) (PublicKey, error) {
	var p PublicKey
	b, ok := decodeBase64(b64)
	if !ok || len(b) != len(p) {
		return p, invalid("public key %q: want %d bytes in standard base64", b64, len(p))
	}
	copy(p[:], b)
	return p, p.validate()
}

// smallOrderY holds, in hex, the little-endian y-coordinates of the eight
// Ed25519 points of small order: 1 (the identity), -1, 0 and the pair ±y8
// shared by the four points of order 8.
var smallOrderY = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
}

// validate rejects public keys that cannot bind a signature to a device:
// points of small order, for which signatures can be forged without the
// private key, and non-canonical encodings (y >= 2^255-19).
func (p PublicKey) validate() error {
	y := p
	y[31] &= 0x7f // drop the sign of x
	h := hex.EncodeToString(y[:])
	if slices.Contains(smallOrderY, h) || y[0] >= 0xed && strings.HasSuffix(h, strings.Repeat("f", 60)+"7f") {
		return invalid("public key %s: small-order point or non-canonical encoding", p)
	}
	return nil
}

// String returns the standard base64 encoding.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// Verify reports whether sig is p's Ed25519 signature of msg.
func (p PublicKey) Verify(msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

const deviceIDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

var deviceIDEncoding = base32.NewEncoding(deviceIDAlphabet).WithPadding(base32.NoPadding)

// DeviceID returns the self-certifying ID of the device holding p: the
// lower-case, unpadded base32 encoding of the first 80 bits of
// SHA-256("hotline device id v1\x00" || p), 16 characters. Anyone can check
// that a key belongs to a device ID; finding a second key for an ID costs
// about 2^80 work.
func (p PublicKey) DeviceID() string {
	h := sha256.Sum256(append([]byte("hotline device id v1\x00"), p[:]...))
	return deviceIDEncoding.EncodeToString(h[:10])
}

// ValidDeviceID reports whether s has the form of a device ID.
func ValidDeviceID(s string) bool {
	// 16 characters carry exactly 80 bits, so every such string decodes.
	return len(s) == 16 && !strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(deviceIDAlphabet, r) })
}

// KEMKey is a device's HPKE key pair for MLKEM768-X25519 (X-Wing), used for
// everything encrypted to the device. Like SigningKey it cannot be compared
// and never prints its private part.
type KEMKey struct {
	key func() hpke.PrivateKey
}

var xwing = hpke.MLKEM768X25519()

// GenerateKEMKey returns a new X-Wing key pair. The private key is the
// 32-byte seed that X-Wing expands into its ML-KEM-768 and X25519 keys; it is
// read from rand (nil means crypto/rand), so an injected reader gives a
// deterministic key even though hpke.KEM.GenerateKey takes no reader.
func GenerateKEMKey(rand io.Reader) (KEMKey, error) {
	seed, err := readRandom(rand, seedSize)
	if err != nil {
		return KEMKey{}, err
	}
	return newKEMKey(seed)
}

func newKEMKey(seed []byte) (KEMKey, error) {
	priv, err := xwing.NewPrivateKey(seed)
	if err != nil {
		return KEMKey{}, invalid("kem key seed: %v", err)
	}
	return KEMKey{func() hpke.PrivateKey { return priv }}, nil
}

// IsZero reports whether k is the zero KEMKey, which holds no key.
func (k KEMKey) IsZero() bool { return k.key == nil }

// PublicBytes returns the 1216-byte X-Wing public key, or nil if k is zero.
func (k KEMKey) PublicBytes() []byte {
	if k.IsZero() {
		return nil
	}
	return k.key().PublicKey().Bytes()
}

// NewRecipient returns a receiving HPKE context for enc, produced by a sender
// using k's public key with the same kdf, aead and info. It is the only use
// of the private key outside this package, so the key itself is never handed
// out where it could be printed.
func (k KEMKey) NewRecipient(enc []byte, kdf hpke.KDF, aead hpke.AEAD, info []byte) (*hpke.Recipient, error) {
	if k.IsZero() {
		return nil, invalid("kem key: zero key")
	}
	return hpke.NewRecipient(enc, k.key(), kdf, aead, info)
}

// String returns a redacted form with a fingerprint of the public key.
func (k KEMKey) String() string {
	if k.IsZero() {
		return "xwing-private(zero)"
	}
	h := sha256.Sum256(k.PublicBytes())
	return "xwing-private(REDACTED, public-sha256=" + hex.EncodeToString(h[:8]) + ")"
}

// GoString implements fmt.GoStringer with the redacted form.
func (k KEMKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k KEMKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k KEMKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// KEMPublicKeySize is the size of an X-Wing public key.
const KEMPublicKeySize = 1216

// ParseKEMPublicKey checks that b is a well-formed X-Wing public key: 1216
// bytes whose ML-KEM-768 part is a valid encapsulation key.
func ParseKEMPublicKey(b []byte) error {
	if len(b) != KEMPublicKeySize {
		return invalid("kem public key: %d bytes, want %d", len(b), KEMPublicKeySize)
	}
	if _, err := xwing.NewPublicKey(b); err != nil {
		return invalid("kem public key: %v", err)
	}
	return nil
}

// CryptoSigner returns k as a crypto.Signer, for protocols that sign with
// the device key themselves (the device's MLS leaves are signed with it, so
// the signature keys in a group are the keys the transparency log shows).
// The signer holds the key only in a closure: it prints as nothing but a
// function address, like k itself.
func (k SigningKey) CryptoSigner() crypto.Signer {
	pub := k.Public()
	return deviceSigner{pub: ed25519.PublicKey(pub[:]), sign: func(m []byte) ([]byte, error) { return k.Sign(m), nil }}
}

// CryptoSigner returns an Ed25519 organisation key as a crypto.Signer, for
// the delivery service's key, which signs MLS proposals. Like
// SigningKey.CryptoSigner, it never hands out private bytes.
func (k OrgKey) CryptoSigner() (crypto.Signer, error) {
	pub, err := verifierPublicKey(k.VerifierKey)
	if err != nil {
		return nil, err
	}
	return deviceSigner{pub: ed25519.PublicKey(pub), sign: k.Signer.Sign}, nil
}

type deviceSigner struct {
	pub  ed25519.PublicKey
	sign func([]byte) ([]byte, error)
}

func (s deviceSigner) Public() crypto.PublicKey { return s.pub }

// String, GoString, Format and LogValue redact, as SigningKey's do.
func (s deviceSigner) String() string {
	var p PublicKey
	copy(p[:], s.pub)
	return "ed25519-signer(REDACTED, public=" + p.DeviceID() + ")"
}
func (s deviceSigner) GoString() string           { return s.String() }
func (s deviceSigner) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
func (s deviceSigner) LogValue() slog.Value       { return slog.StringValue(s.String()) }

// Sign signs message (Ed25519 signs messages, not digests); opts must ask
// for no pre-hashing.
func (s deviceSigner) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("identity: device keys sign messages, not digests")
	}
	return s.sign(message)
}
