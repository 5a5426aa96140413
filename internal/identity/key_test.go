package identity

import (
	"bytes"
	"crypto/hpke"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
)

// smallOrder lists the canonical encodings of the eight Ed25519 points of
// small order: the identity, the point of order 2, two of order 4 and four
// of order 8.
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
}

func b64hex(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestSmallOrderForgery shows why ParsePublicKey rejects small-order points:
// for such a key A, -[k]A is itself a small-order point, so the signature
// (R, S=0) verifies whenever R happens to equal -[k]A; k depends on R and
// the message, and trying the eight R over a few messages always succeeds.
// (For the identity it succeeds every time.) This also checks the
// smallOrder list against crypto/ed25519.
func TestSmallOrderForgery(t *testing.T) {
	for _, h := range smallOrder {
		var p PublicKey
		hex.Decode(p[:], []byte(h))
		forged := 0
		for i := range 32 {
			for _, r := range smallOrder {
				sig := make([]byte, 64)
				hex.Decode(sig[:32], []byte(r))
				if p.Verify(fmt.Appendf(nil, "message %d", i), sig) {
					forged++
				}
			}
		}
		if forged == 0 {
			t.Errorf("%s: no forgery; not a small-order point?", h)
		}
		if _, err := ParsePublicKey(p.String()); err == nil {
			t.Errorf("ParsePublicKey accepted small-order point %s", h)
		}
	}
}

func TestSigningKey(t *testing.T) {
	k1, err := GenerateSigningKey(testRand(7))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := GenerateSigningKey(testRand(7))
	k3, _ := GenerateSigningKey(testRand(8))
	if k1.Public() != k2.Public() || k1.Public() == k3.Public() {
		t.Fatal("GenerateSigningKey is not a function of its reader")
	}
	msg := []byte("hello")
	sig := k1.Sign(msg)
	if !k1.Public().Verify(msg, sig) {
		t.Fatal("signature does not verify")
	}
	if k1.Public().Verify([]byte("hellO"), sig) || k3.Public().Verify(msg, sig) {
		t.Fatal("signature verifies for another message or key")
	}
	r := testRand(9)
	for range 500 {
		k, _ := GenerateSigningKey(r)
		if p, err := ParsePublicKey(k.Public().String()); err != nil || p != k.Public() {
			t.Fatalf("ParsePublicKey(%s) = %v, %v", k.Public(), p, err)
		}
	}
	var zero SigningKey
	if !zero.IsZero() || k1.IsZero() || zero.Public() != (PublicKey{}) {
		t.Fatal("IsZero or Public of the zero key")
	}
	if _, err := GenerateSigningKey(strings.NewReader("short")); err == nil {
		t.Fatal("GenerateSigningKey succeeded on a short reader")
	}
}

// TestGenerateDefaultRand checks that nil means crypto/rand, which
// cryptotest.SetGlobalRandom makes deterministic.
func TestGenerateDefaultRand(t *testing.T) {
	gen := func() (PublicKey, []byte, string) {
		cryptotest.SetGlobalRandom(t, 42)
		s, err1 := GenerateSigningKey(nil)
		k, err2 := GenerateKEMKey(nil)
		c, err3 := NewInviteCode(nil)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		return s.Public(), k.PublicBytes(), c
	}
	s1, k1, c1 := gen()
	s2, k2, c2 := gen()
	if s1 != s2 || !bytes.Equal(k1, k2) || c1 != c2 {
		t.Fatal("nil rand does not use crypto/rand")
	}
}

func TestParsePublicKeyMalformed(t *testing.T) {
	valid, _ := GenerateSigningKey(testRand(1))
	good := valid.Public().String()
	tests := map[string]string{
		"empty":             "",
		"not base64":        "not base64!",
		"31 bytes":          base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"33 bytes":          base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"unpadded":          strings.TrimSuffix(good, "="),
		"url alphabet":      base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)),
		"non-zero pad bits": good[:42] + string(good[42]^1) + "=",
		"y = p":             b64hex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"y = p+1":           b64hex(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"identity, -0":      b64hex(t, "0100000000000000000000000000000000000000000000000000000000000080"),
		"y all ones":        b64hex(t, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"leading space":     " " + good,
		"with CR":           good[:20] + "\r" + good[20:],
		"with LF":           good[:20] + "\n" + good[20:],
	}
	for _, h := range smallOrder {
		tests["small order "+h[:8]] = b64hex(t, h)
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePublicKey(in)
			wantErr(t, err, ErrInvalid)
		})
	}
}

func TestDeviceID(t *testing.T) {
	k, _ := GenerateSigningKey(testRand(1))
	id := k.Public().DeviceID()
	if len(id) != 16 || !ValidDeviceID(id) {
		t.Fatalf("DeviceID() = %q", id)
	}
	var zero PublicKey
	if zero.DeviceID() == id {
		t.Fatal("different keys, same device ID")
	}
	for _, bad := range []string{"", id[:15], id + "a", strings.ToUpper(id), id[:15] + "1", id[:15] + "8", id[:15] + "=", id[:15] + "é"} {
		if ValidDeviceID(bad) {
			t.Errorf("ValidDeviceID(%q) = true", bad)
		}
	}
}

func TestKEMKey(t *testing.T) {
	k1, err := GenerateKEMKey(testRand(3))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := GenerateKEMKey(testRand(3))
	k3, _ := GenerateKEMKey(testRand(4))
	pub := k1.PublicBytes()
	if len(pub) != KEMPublicKeySize || !bytes.Equal(pub, k2.PublicBytes()) || bytes.Equal(pub, k3.PublicBytes()) {
		t.Fatal("GenerateKEMKey is not a function of its reader")
	}
	if err := ParseKEMPublicKey(pub); err != nil {
		t.Fatal(err)
	}

	// Encrypt to the public key, decrypt with the key pair.
	suite := func() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }
	pk, err := hpke.MLKEM768X25519().NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	kdf, aead := suite()
	enc, s, err := hpke.NewSender(pk, kdf, aead, []byte("info"))
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := s.Seal([]byte("aad"), []byte("memcon"))
	r, err := k1.NewRecipient(enc, kdf, aead, []byte("info"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := r.Open([]byte("aad"), ct); err != nil || string(pt) != "memcon" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if r, err := k3.NewRecipient(enc, kdf, aead, []byte("info")); err == nil {
		if _, err := r.Open([]byte("aad"), ct); err == nil {
			t.Fatal("another key decrypted")
		}
	}

	var zero KEMKey
	if !zero.IsZero() || k1.IsZero() || zero.PublicBytes() != nil {
		t.Fatal("IsZero or PublicBytes of the zero key")
	}
	if _, err := zero.NewRecipient(enc, kdf, aead, nil); err == nil {
		t.Fatal("zero key made a recipient")
	}
}

func TestParseKEMPublicKeyMalformed(t *testing.T) {
	k, _ := GenerateKEMKey(testRand(3))
	pub := k.PublicBytes()
	tests := map[string][]byte{
		"nil":              nil,
		"short":            pub[:KEMPublicKeySize-1],
		"long":             append(bytes.Clone(pub), 0),
		"ml-kem not mod q": append(bytes.Repeat([]byte{0xff}, 1184), pub[1184:]...),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) { wantErr(t, ParseKEMPublicKey(in), ErrInvalid) })
	}
}
