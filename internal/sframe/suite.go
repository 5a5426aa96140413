package sframe

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// CipherSuite is an SFrame cipher suite, by its code point in the IANA
// "SFrame Cipher Suites" registry (RFC 9605, section 8.1).
type CipherSuite uint16

// The cipher suites of RFC 9605, section 4.5. The last number of a name is
// the length of the authentication tag in bits.
const (
	AES128CTRHMACSHA256_80 CipherSuite = 0x0001
	AES128CTRHMACSHA256_64 CipherSuite = 0x0002
	AES128CTRHMACSHA256_32 CipherSuite = 0x0003
	AES128GCMSHA256_128    CipherSuite = 0x0004
	AES256GCMSHA512_128    CipherSuite = 0x0005
)

// The AES-256 counterparts of the AES-CTR+HMAC suites, which RFC 9605
// defines only at the 128-bit level. They are not in RFC 9605's table:
// draft-barnes-sframe-iana-256 registers them with these code points, and
// the working group's test vectors (test-vectors-aes256.json) cover them.
// The construction is section 4.5.1's with AES-256 and HMAC-SHA-512.
const (
	AES256CTRHMACSHA512_80 CipherSuite = 0x0006
	AES256CTRHMACSHA512_64 CipherSuite = 0x0007
	AES256CTRHMACSHA512_32 CipherSuite = 0x0008
)

// suiteParams are a suite's constants (RFC 9605, section 4.4): the hash
// output size Nh, the AES key size Nka of the AES-CTR+HMAC suites (0 for
// GCM), the AEAD key size Nk, the nonce size Nn and the tag size Nt.
type suiteParams struct {
	name            string
	nh, nka, nk, nt int
	ctr             bool
	newHash         func() hash.Hash
}

// nonceSize is AEAD.Nn, the same for every suite.
const nonceSize = 12

func (s CipherSuite) params() (suiteParams, bool) {
	switch s {
	case AES128CTRHMACSHA256_80:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_80", 32, 16, 48, 10, true, sha256.New}, true
	case AES128CTRHMACSHA256_64:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_64", 32, 16, 48, 8, true, sha256.New}, true
	case AES128CTRHMACSHA256_32:
		return suiteParams{"AES_128_CTR_HMAC_SHA256_32", 32, 16, 48, 4, true, sha256.New}, true
	case AES128GCMSHA256_128:
		return suiteParams{"AES_128_GCM_SHA256_128", 32, 0, 16, 16, false, sha256.New}, true
	case AES256GCMSHA512_128:
		return suiteParams{"AES_256_GCM_SHA512_128", 64, 0, 32, 16, false, sha512.New}, true
	case AES256CTRHMACSHA512_80:
		return suiteParams{"AES_256_CTR_HMAC_SHA512_80", 64, 32, 96, 10, true, sha512.New}, true
	case AES256CTRHMACSHA512_64:
		return suiteParams{"AES_256_CTR_HMAC_SHA512_64", 64, 32, 96, 8, true, sha512.New}, true
	case AES256CTRHMACSHA512_32:
		return suiteParams{"AES_256_CTR_HMAC_SHA512_32", 64, 32, 96, 4, true, sha512.New}, true
	}
	return suiteParams{}, false
}

// Supported reports whether this package implements s.
func (s CipherSuite) Supported() bool {
	_, ok := s.params()
	return ok
}

// String returns the suite's registered name, such as
// "AES_128_GCM_SHA256_128".
func (s CipherSuite) String() string {
	if p, ok := s.params(); ok {
		return p.name
	}
	return fmt.Sprintf("CipherSuite(%#04x)", uint16(s))
}

// KeySize returns AEAD.Nk, the size in bytes of the suite's AEAD key and
// of the base_key MLS exports for it (section 5.2); 0 if unsupported.
func (s CipherSuite) KeySize() int {
	p, _ := s.params()
	return p.nk
}

// TagSize returns AEAD.Nt, what the suite adds to a frame besides the
// header; 0 if unsupported.
func (s CipherSuite) TagSize() int {
	p, _ := s.params()
	return p.nt
}
