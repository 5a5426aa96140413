package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Errors of the cryptographic layer. Each is wrapped with detail; test with
// errors.Is.
var (
	// ErrUnsupportedSuite: the cipher suite is not one SuiteFor implements.
	ErrUnsupportedSuite = errors.New("mls: unsupported cipher suite")
	// ErrMalformedKey: a public or private key is not a valid encoding for
	// the suite (wrong length, not on the curve, a zero key …).
	ErrMalformedKey = errors.New("mls: malformed key")
	// ErrDecrypt: an AEAD or HPKE ciphertext did not decrypt. It carries no
	// detail on purpose: why decryption failed is not for a peer to learn.
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrBadSignature: a signature did not verify.
	ErrBadSignature = errors.New("mls: invalid signature")
	// ErrBadMAC: a MAC (confirmation or membership tag) did not verify.
	ErrBadMAC = errors.New("mls: invalid MAC")
)

// signatureScheme is a TLS SignatureScheme (RFC 8446, section 4.2.3), the
// registry RFC 9420 names signature algorithms from.
type signatureScheme uint16

const (
	sigECDSAP256SHA256 signatureScheme = 0x0403
	sigECDSAP384SHA384 signatureScheme = 0x0503
	sigECDSAP521SHA512 signatureScheme = 0x0603
	sigEd25519         signatureScheme = 0x0807
)

func (s signatureScheme) String() string {
	switch s {
	case sigECDSAP256SHA256:
		return "ecdsa-p256-sha256"
	case sigECDSAP384SHA384:
		return "ecdsa-p384-sha384"
	case sigECDSAP521SHA512:
		return "ecdsa-p521-sha512"
	case sigEd25519:
		return "ed25519"
	}
	return fmt.Sprintf("signature-scheme-%#04x", uint16(s))
}

// curve returns the ECDSA curve and the hash that digests what it signs,
// or nil for Ed25519.
func (s signatureScheme) curve() (elliptic.Curve, func() hash.Hash) {
	switch s {
	case sigECDSAP256SHA256:
		return elliptic.P256(), sha256.New
	case sigECDSAP384SHA384:
		return elliptic.P384(), sha512.New384
	case sigECDSAP521SHA512:
		return elliptic.P521(), sha512.New
	}
	return nil, nil
}

// Suite is an implemented cipher suite (RFC 9420, section 5.1): a hash and
// the HKDF built on it, an AEAD, an HPKE configuration and a signature
// scheme. Get one from SuiteFor. A Suite holds no secrets and is safe for
// concurrent use.
//
// Implemented: 0x0001 (mandatory), 0x0002, 0x0005, 0x0007, and two
// post-quantum suites with the X-Wing KEM (ML-KEM-768 + X25519, HPKE KEM
// 0x647a): HotlinePQXWingAES256GCMSHA384Ed25519 and
// TSMLS83XWingAES256GCMSHA512Ed25519. Not implemented: 0x0003
// (ChaCha20-Poly1305, which the standard library exposes only inside HPKE),
// 0x0004 (X448 and Ed448, which it lacks) and 0x0006 (both).
type Suite struct {
	id      CipherSuite
	name    string
	newHash func() hash.Hash
	nh      int
	kem     hpke.KEM
	kdf     hpke.KDF
	aead    hpke.AEAD
	nk, nn  int
	sig     signatureScheme
	// ikmSize is how many random bytes GenerateHPKEKey feeds to
	// DeriveKeyPair: the KEM's Nsk.
	ikmSize int
	// deriveKeyPair overrides kem.DeriveKeyPair where the suite's
	// definition differs from crypto/hpke's (see SuiteFor).
	deriveKeyPair func(ikm []byte) (hpke.PrivateKey, error)
}

// SuiteFor returns the implementation of cs, or an error wrapping
// ErrUnsupportedSuite.
//
// The two X-Wing suites differ in more than the hash. 0xF0A1 is
// draft-ietf-mls-pq-ciphersuites' MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519
// and takes X-Wing as draft-ietf-hpke-pq defines it for HPKE, which is what
// crypto/hpke implements, DeriveKeyPair included. 0x0053 is ts-mls's
// MLS_256_XWING_AES256GCM_SHA512_Ed25519 (SHA-512 and HKDF-SHA512, per its
// src/crypto/ciphersuite.ts), whose X-Wing comes from hpke-js
// (@hpke/hybridkem-x-wing, draft-connolly-cfrg-xwing-kem-06): the same
// keys, encapsulation and combiner, but DeriveKeyPair(ikm) takes the
// 32-byte X-Wing seed as SHAKE256(ikm) instead of HPKE's labelled
// derivation. MLS derives every TreeKEM node key with DeriveKeyPair, so
// this must match for the two to interoperate.
func SuiteFor(cs CipherSuite) (*Suite, error) {
	s := &Suite{id: cs, nn: 12}
	switch cs {
	case MLS128DHKEMX25519AES128GCMSHA256Ed25519:
		s.name = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
		s.newHash, s.kdf, s.aead, s.nk = sha256.New, hpke.HKDFSHA256(), hpke.AES128GCM(), 16
		s.kem, s.ikmSize, s.sig = hpke.DHKEM(ecdh.X25519()), 32, sigEd25519
	case MLS128DHKEMP256AES128GCMSHA256P256:
		s.name = "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
		s.newHash, s.kdf, s.aead, s.nk = sha256.New, hpke.HKDFSHA256(), hpke.AES128GCM(), 16
		s.kem, s.ikmSize, s.sig = hpke.DHKEM(ecdh.P256()), 32, sigECDSAP256SHA256
	case MLS256DHKEMP521AES256GCMSHA512P521:
		s.name = "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
		s.newHash, s.kdf, s.aead, s.nk = sha512.New, hpke.HKDFSHA512(), hpke.AES256GCM(), 32
		s.kem, s.ikmSize, s.sig = hpke.DHKEM(ecdh.P521()), 66, sigECDSAP521SHA512
	case MLS256DHKEMP384AES256GCMSHA384P384:
		s.name = "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
		s.newHash, s.kdf, s.aead, s.nk = sha512.New384, hpke.HKDFSHA384(), hpke.AES256GCM(), 32
		s.kem, s.ikmSize, s.sig = hpke.DHKEM(ecdh.P384()), 48, sigECDSAP384SHA384
	case HotlinePQXWingAES256GCMSHA384Ed25519:
		s.name = "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519(hotline 0xF0A1)"
		s.newHash, s.kdf, s.aead, s.nk = sha512.New384, hpke.HKDFSHA384(), hpke.AES256GCM(), 32
		s.kem, s.ikmSize, s.sig = hpke.MLKEM768X25519(), 32, sigEd25519
	case TSMLS83XWingAES256GCMSHA512Ed25519:
		s.name = "MLS_256_XWING_AES256GCM_SHA512_Ed25519(ts-mls 83)"
		s.newHash, s.kdf, s.aead, s.nk = sha512.New, hpke.HKDFSHA512(), hpke.AES256GCM(), 32
		s.kem, s.ikmSize, s.sig = hpke.MLKEM768X25519(), 32, sigEd25519
		s.deriveKeyPair = func(ikm []byte) (hpke.PrivateKey, error) {
			seed := sha3.SumSHAKE256(ikm, 32)
			defer clear(seed)
			return s.kem.NewPrivateKey(seed)
		}
	default:
		return nil, fmt.Errorf("%w: %#04x", ErrUnsupportedSuite, uint16(cs))
	}
	s.nh = s.newHash().Size()
	if s.deriveKeyPair == nil {
		s.deriveKeyPair = s.kem.DeriveKeyPair
	}
	return s, nil
}

// ImplementedSuites lists the cipher suites SuiteFor implements, the
// mandatory suite first.
func ImplementedSuites() []CipherSuite {
	return []CipherSuite{
		MLS128DHKEMX25519AES128GCMSHA256Ed25519,
		MLS128DHKEMP256AES128GCMSHA256P256,
		MLS256DHKEMP521AES256GCMSHA512P521,
		MLS256DHKEMP384AES256GCMSHA384P384,
		HotlinePQXWingAES256GCMSHA384Ed25519,
		TSMLS83XWingAES256GCMSHA512Ed25519,
	}
}

// ID returns the suite's code point.
func (s *Suite) ID() CipherSuite { return s.id }

// String returns the suite's name.
func (s *Suite) String() string { return s.name }

// Nh returns the size of the hash and of the KDF's output (KDF.Nh), in
// bytes.
func (s *Suite) Nh() int { return s.nh }

// Nk returns the size of an AEAD key in bytes.
func (s *Suite) Nk() int { return s.nk }

// Nn returns the size of an AEAD nonce in bytes.
func (s *Suite) Nn() int { return s.nn }

// HPKEIDs returns the suite's HPKE KEM, KDF and AEAD identifiers (RFC
// 9180, section 7; X-Wing is KEM 0x647a).
func (s *Suite) HPKEIDs() (kem, kdf, aead uint16) { return s.kem.ID(), s.kdf.ID(), s.aead.ID() }

// SignatureScheme returns the suite's signature scheme as a TLS
// SignatureScheme: 0x0807 Ed25519, 0x0403, 0x0503 and 0x0603 ECDSA on P-256,
// P-384 and P-521 with SHA-256, SHA-384 and SHA-512.
func (s *Suite) SignatureScheme() uint16 { return uint16(s.sig) }

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// Extract is HKDF-Extract(salt, ikm) with the suite's hash. An empty salt
// stands for Nh zero bytes (RFC 5869).
func (s *Suite) Extract(salt, ikm []byte) ([]byte, error) {
	return hkdf.Extract(s.newHash, ikm, salt)
}

// Expand is HKDF-Expand(prk, info, length) with the suite's hash. length
// must be at most 255·Nh.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	if length < 0 {
		return nil, fmt.Errorf("mls: expand to %d bytes", length)
	}
	return hkdf.Expand(s.newHash, prk, string(info), length)
}

// MAC returns HMAC(key, data) with the suite's hash: the MAC of RFC 9420's
// confirmation and membership tags.
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC checks tag against MAC(key, data) in constant time, returning
// ErrBadMAC if they differ.
func (s *Suite) VerifyMAC(key, data, tag []byte) error {
	if !hmac.Equal(s.MAC(key, data), tag) {
		return ErrBadMAC
	}
	return nil
}

func (s *Suite) newAEAD(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != s.nk || len(nonce) != s.nn {
		return nil, fmt.Errorf("mls: AEAD key of %d bytes and nonce of %d, want %d and %d", len(key), len(nonce), s.nk, s.nn)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// AEADSeal encrypts plaintext with the suite's AEAD under key and nonce
// (Nk and Nn bytes), authenticating aad.
func (s *Suite) AEADSeal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.newAEAD(key, nonce)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// AEADOpen decrypts ciphertext with the suite's AEAD. A ciphertext that
// does not authenticate gives ErrDecrypt.
func (s *Suite) AEADOpen(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.newAEAD(key, nonce)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// HPKESeal encrypts plaintext to the HPKE public key pub in base mode
// (RFC 9180, SetupBaseS then Seal) and returns the KEM output and the
// ciphertext separately, as MLS's HPKECiphertext carries them.
//
// The encapsulation's randomness comes from crypto/rand: crypto/hpke takes
// no io.Reader. Tests make it deterministic with
// testing/cryptotest.SetGlobalRandom.
func (s *Suite) HPKESeal(pub, info, aad, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrMalformedKey, err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE setup: %w", err)
	}
	ct, err := sender.Seal(aad, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE seal: %w", err)
	}
	return enc, ct, nil
}

// HPKEOpen decrypts what HPKESeal produced for priv's public key. Any
// failure to decapsulate or authenticate gives ErrDecrypt.
func (s *Suite) HPKEOpen(priv HPKEPrivateKey, kemOutput, info, aad, ciphertext []byte) ([]byte, error) {
	k, err := s.hpkeKey(priv)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(kemOutput, k, s.kdf, s.aead, info)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := r.Open(aad, ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// hpkeExport runs SetupBaseS to pub and exports length bytes under
// exporterContext: the sender's side of an external init (RFC 9420,
// section 8.3).
func (s *Suite) hpkeExport(pub []byte, exporterContext string, length int) (kemOutput, secret []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrMalformedKey, err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, hpke.ExportOnly(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE setup: %w", err)
	}
	secret, err = sender.Export(exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE export: %w", err)
	}
	return enc, secret, nil
}

// hpkeImport is hpkeExport's receiving side.
func (s *Suite) hpkeImport(priv HPKEPrivateKey, kemOutput []byte, exporterContext string, length int) ([]byte, error) {
	k, err := s.hpkeKey(priv)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(kemOutput, k, s.kdf, hpke.ExportOnly(), nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return r.Export(exporterContext, length)
}

func (s *Suite) hpkeKey(priv HPKEPrivateKey) (hpke.PrivateKey, error) {
	if priv.IsZero() {
		return nil, fmt.Errorf("%w: zero HPKE private key", ErrMalformedKey)
	}
	k := priv.key()
	if k.KEM().ID() != s.kem.ID() {
		return nil, fmt.Errorf("%w: HPKE private key for KEM %#04x, suite uses %#04x", ErrMalformedKey, k.KEM().ID(), s.kem.ID())
	}
	return k, nil
}

// DeriveKeyPair derives an HPKE key pair from ikm with the suite KEM's
// DeriveKeyPair (see SuiteFor for the X-Wing suites).
func (s *Suite) DeriveKeyPair(ikm []byte) (HPKEPrivateKey, error) {
	k, err := s.deriveKeyPair(ikm)
	if err != nil {
		return HPKEPrivateKey{}, fmt.Errorf("mls: derive HPKE key pair: %w", err)
	}
	return newHPKEPrivateKey(k), nil
}

// GenerateHPKEKey returns a new HPKE key pair: DeriveKeyPair of Nsk bytes
// read from rand (nil means crypto/rand), so an injected reader gives the
// same key everywhere.
func (s *Suite) GenerateHPKEKey(r io.Reader) (HPKEPrivateKey, error) {
	ikm, err := readRandom(r, s.ikmSize)
	if err != nil {
		return HPKEPrivateKey{}, err
	}
	defer clear(ikm)
	return s.DeriveKeyPair(ikm)
}

// ParseHPKEPrivateKey parses a private key in the KEM's SerializePrivateKey
// format (for X-Wing, the 32-byte seed).
func (s *Suite) ParseHPKEPrivateKey(b []byte) (HPKEPrivateKey, error) {
	k, err := s.kem.NewPrivateKey(b)
	if err != nil {
		return HPKEPrivateKey{}, fmt.Errorf("%w: HPKE private key: %v", ErrMalformedKey, err)
	}
	return newHPKEPrivateKey(k), nil
}

// ValidateHPKEPublicKey checks that b is a public key of the suite's KEM:
// 32 bytes for X25519, an uncompressed point on the curve for P-256, P-384
// and P-521, 1216 bytes with a valid ML-KEM-768 part for X-Wing.
func (s *Suite) ValidateHPKEPublicKey(b []byte) error {
	if _, err := s.kem.NewPublicKey(b); err != nil {
		return fmt.Errorf("%w: HPKE public key: %v", ErrMalformedKey, err)
	}
	return nil
}

// GenerateSignatureKey returns a new signature key for the suite's scheme,
// from bytes read from rand (nil means crypto/rand): an Ed25519 seed, or an
// ECDSA scalar drawn by rejection sampling.
func (s *Suite) GenerateSignatureKey(r io.Reader) (SignaturePrivateKey, error) {
	curve, _ := s.sig.curve()
	if curve == nil {
		seed, err := readRandom(r, ed25519.SeedSize)
		if err != nil {
			return SignaturePrivateKey{}, err
		}
		defer clear(seed)
		return newEd25519Key(seed), nil
	}
	size := (curve.Params().N.BitLen() + 7) / 8
	for range 100 {
		b, err := readRandom(r, size)
		if err != nil {
			return SignaturePrivateKey{}, err
		}
		if excess := size*8 - curve.Params().N.BitLen(); excess > 0 {
			b[0] &= 0xff >> excess
		}
		k, err := ecdsa.ParseRawPrivateKey(curve, b)
		clear(b)
		if err == nil {
			return newECDSAKey(s.sig, k), nil
		}
	}
	return SignaturePrivateKey{}, errors.New("mls: generate ECDSA key: random source keeps giving invalid scalars")
}

// ParseSignaturePrivateKey parses a private key in the encoding the MLS
// test vectors use: the 32-byte seed for Ed25519, the fixed-length
// big-endian scalar for ECDSA.
func (s *Suite) ParseSignaturePrivateKey(b []byte) (SignaturePrivateKey, error) {
	curve, _ := s.sig.curve()
	if curve == nil {
		if len(b) != ed25519.SeedSize {
			return SignaturePrivateKey{}, fmt.Errorf("%w: Ed25519 private key of %d bytes, want %d", ErrMalformedKey, len(b), ed25519.SeedSize)
		}
		return newEd25519Key(b), nil
	}
	k, err := ecdsa.ParseRawPrivateKey(curve, b)
	if err != nil {
		return SignaturePrivateKey{}, fmt.Errorf("%w: %s private key: %v", ErrMalformedKey, s.sig, err)
	}
	return newECDSAKey(s.sig, k), nil
}

// ValidateSignaturePublicKey checks that b is a public key of the suite's
// signature scheme: 32 bytes for Ed25519, an uncompressed point on the
// curve for ECDSA.
func (s *Suite) ValidateSignaturePublicKey(b []byte) error {
	_, err := s.parseSignaturePublicKey(b)
	return err
}

func (s *Suite) parseSignaturePublicKey(b []byte) (any, error) {
	curve, _ := s.sig.curve()
	if curve == nil {
		if len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 public key of %d bytes, want %d", ErrMalformedKey, len(b), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(b), nil
	}
	k, err := ecdsa.ParseUncompressedPublicKey(curve, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key: %v", ErrMalformedKey, s.sig, err)
	}
	return k, nil
}

// sign signs msg with key, which must be of the suite's scheme. ECDSA
// signatures are ASN.1 DER (RFC 9420, section 5.1.2, as the test vectors
// have them); their randomness comes from crypto/rand, since Go 1.26
// ignores the reader ecdsa.SignASN1 takes.
func (s *Suite) sign(key SignaturePrivateKey, msg []byte) ([]byte, error) {
	if key.IsZero() {
		return nil, fmt.Errorf("%w: zero signature key", ErrMalformedKey)
	}
	if key.scheme != s.sig {
		return nil, fmt.Errorf("%w: %s key for a %s suite", ErrMalformedKey, key.scheme, s.sig)
	}
	switch k := key.key().(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	case *ecdsa.PrivateKey:
		_, newHash := s.sig.curve()
		h := newHash()
		h.Write(msg)
		return ecdsa.SignASN1(rand.Reader, k, h.Sum(nil))
	case crypto.Signer: // an Ed25519 key held elsewhere (NewEd25519Signer)
		return k.Sign(nil, msg, crypto.Hash(0))
	}
	panic("mls: unreachable: signature key of unknown type")
}

// verify checks sig over msg under the public key pub.
func (s *Suite) verify(pub, msg, sig []byte) error {
	k, err := s.parseSignaturePublicKey(pub)
	if err != nil {
		return err
	}
	ok := false
	switch k := k.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		_, newHash := s.sig.curve()
		h := newHash()
		h.Write(msg)
		ok = ecdsa.VerifyASN1(k, h.Sum(nil), sig)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// readRandom reads n bytes from r, or from crypto/rand if r is nil.
func readRandom(r io.Reader, n int) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("mls: read random: %w", err)
	}
	return b, nil
}
