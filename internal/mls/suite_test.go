package mls

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"testing"
	"testing/cryptotest"
)

func TestSuiteFor(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s, err := SuiteFor(cs)
		if err != nil {
			t.Fatalf("SuiteFor(%#04x): %v", uint16(cs), err)
		}
		if s.ID() != cs || s.String() == "" {
			t.Errorf("SuiteFor(%#04x) = %v, ID %#04x", uint16(cs), s, uint16(s.ID()))
		}
	}
	for _, cs := range []CipherSuite{0, MLS128DHKEMX25519CHACHA20SHA256Ed25519, MLS256DHKEMX448AES256GCMSHA512Ed448, MLS256DHKEMX448CHACHA20SHA512Ed448, 0xffff} {
		if _, err := SuiteFor(cs); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("SuiteFor(%#04x) = %v, want ErrUnsupportedSuite", uint16(cs), err)
		}
	}
}

// TestSuiteParameters pins each suite's parameters to its definition: the
// RFC 9420 table for 1-7, draft-ietf-mls-pq-ciphersuites for 0xF0A1, and
// ts-mls's src/crypto/ciphersuite.ts for 0x0053.
func TestSuiteParameters(t *testing.T) {
	tests := []struct {
		cs                     CipherSuite
		nh, nk, nn             int
		kem, kdf, aead         uint16
		hpkePub, kemOut, sigPK int
		sig                    signatureScheme
	}{
		{MLS128DHKEMX25519AES128GCMSHA256Ed25519, 32, 16, 12, 0x0020, 0x0001, 0x0001, 32, 32, 32, sigEd25519},
		{MLS128DHKEMP256AES128GCMSHA256P256, 32, 16, 12, 0x0010, 0x0001, 0x0001, 65, 65, 65, sigECDSAP256SHA256},
		{MLS256DHKEMP521AES256GCMSHA512P521, 64, 32, 12, 0x0012, 0x0003, 0x0002, 133, 133, 133, sigECDSAP521SHA512},
		{MLS256DHKEMP384AES256GCMSHA384P384, 48, 32, 12, 0x0011, 0x0002, 0x0002, 97, 97, 97, sigECDSAP384SHA384},
		{HotlinePQXWingAES256GCMSHA384Ed25519, 48, 32, 12, 0x647a, 0x0002, 0x0002, 1216, 1120, 32, sigEd25519},
		{TSMLS83XWingAES256GCMSHA512Ed25519, 64, 32, 12, 0x647a, 0x0003, 0x0002, 1216, 1120, 32, sigEd25519},
	}
	for _, tt := range tests {
		s := mustSuite(t, tt.cs)
		if s.Nh() != tt.nh || s.Nk() != tt.nk || s.Nn() != tt.nn {
			t.Errorf("%v: Nh, Nk, Nn = %d, %d, %d, want %d, %d, %d", s, s.Nh(), s.Nk(), s.Nn(), tt.nh, tt.nk, tt.nn)
		}
		if kem, kdf, aead := s.HPKEIDs(); kem != tt.kem || kdf != tt.kdf || aead != tt.aead || s.SignatureScheme() != uint16(tt.sig) {
			t.Errorf("%v: HPKE (%#04x, %#04x, %#04x) %#04x, want (%#04x, %#04x, %#04x) %v", s, kem, kdf, aead, s.SignatureScheme(), tt.kem, tt.kdf, tt.aead, tt.sig)
		}
		priv, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		kemOut, _, err := s.HPKESeal(priv.Public(), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(priv.Public()) != tt.hpkePub || len(kemOut) != tt.kemOut {
			t.Errorf("%v: HPKE public key %d bytes, kem_output %d, want %d and %d", s, len(priv.Public()), len(kemOut), tt.hpkePub, tt.kemOut)
		}
		sk, err := s.GenerateSignatureKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(sk.Public()) != tt.sigPK {
			t.Errorf("%v: signature public key %d bytes, want %d", s, len(sk.Public()), tt.sigPK)
		}
	}
}

// TestDeriveKeyPairXWing checks the two X-Wing DeriveKeyPair definitions:
// 0x0053's takes the X-Wing seed as SHAKE256(ikm, 32), as hpke-js (and so
// ts-mls) does; 0xF0A1's is crypto/hpke's draft-ietf-hpke-pq derivation.
// The same ikm must give different keys under the two, and each must be
// deterministic.
func TestDeriveKeyPairXWing(t *testing.T) {
	ikm := bytes.Repeat([]byte{7}, 48)
	ts := mustSuite(t, TSMLS83XWingAES256GCMSHA512Ed25519)
	hl := mustSuite(t, HotlinePQXWingAES256GCMSHA384Ed25519)

	k1, err := ts.DeriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := k1.PrivateBytes()
	if want := sha3.SumSHAKE256(ikm, 32); !bytes.Equal(seed, want) {
		t.Errorf("0x0053 DeriveKeyPair seed = %x, want SHAKE256(ikm) = %x", seed, want)
	}
	fromSeed, err := ts.ParseHPKEPrivateKey(seed)
	if err != nil || !bytes.Equal(fromSeed.Public(), k1.Public()) {
		t.Errorf("key from the seed differs: %v", err)
	}
	k2, err := hl.DeriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1.Public(), k2.Public()) {
		t.Error("0x0053 and 0xF0A1 derive the same key: one of them ignores its DeriveKeyPair")
	}
	k3, _ := hl.DeriveKeyPair(ikm)
	k4, _ := ts.DeriveKeyPair(ikm)
	if !bytes.Equal(k2.Public(), k3.Public()) || !bytes.Equal(k1.Public(), k4.Public()) {
		t.Error("DeriveKeyPair is not deterministic")
	}
	// The keys are interchangeable between the suites: same KEM.
	kemOut, ct, err := hl.HPKESeal(k1.Public(), []byte("info"), nil, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := hl.HPKEOpen(k1, kemOut, []byte("info"), nil, ct); err != nil || string(pt) != "hi" {
		t.Errorf("HPKE round trip with a 0x0053 key under 0xF0A1: %q, %v", pt, err)
	}
}

// TestPostQuantumRoundTrips exercises every primitive of every suite end
// to end, the post-quantum ones included: they have no official vectors.
func TestPostQuantumRoundTrips(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		t.Run(s.String(), func(t *testing.T) {
			priv, err := s.GenerateHPKEKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ValidateHPKEPublicKey(priv.Public()); err != nil {
				t.Fatal(err)
			}
			kemOut, ct, err := s.EncryptWithLabel(priv.Public(), "Test", []byte("ctx"), []byte("plaintext"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := s.DecryptWithLabel(priv, "Test", []byte("ctx"), kemOut, ct); err != nil || string(pt) != "plaintext" {
				t.Fatalf("DecryptWithLabel = %q, %v", pt, err)
			}
			if _, err := s.DecryptWithLabel(priv, "Other", []byte("ctx"), kemOut, ct); !errors.Is(err, ErrDecrypt) {
				t.Errorf("DecryptWithLabel with another label = %v, want ErrDecrypt", err)
			}
			privBytes, err := priv.PrivateBytes()
			if err != nil {
				t.Fatal(err)
			}
			again, err := s.ParseHPKEPrivateKey(privBytes)
			if err != nil || !bytes.Equal(again.Public(), priv.Public()) {
				t.Fatalf("HPKE private key does not round-trip: %v", err)
			}

			sk, err := s.GenerateSignatureKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.SignWithLabel(sk, "Test", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(sk.Public(), "Test", []byte("content"), sig); err != nil {
				t.Fatal(err)
			}
			again2, err := s.ParseSignaturePrivateKey(sk.PrivateBytes())
			if err != nil || !bytes.Equal(again2.Public(), sk.Public()) {
				t.Fatalf("signature private key does not round-trip: %v", err)
			}

			key, nonce := make([]byte, s.Nk()), make([]byte, s.Nn())
			ct, err = s.AEADSeal(key, nonce, []byte("aad"), []byte("message"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := s.AEADOpen(key, nonce, []byte("aad"), ct); err != nil || string(pt) != "message" {
				t.Fatalf("AEADOpen = %q, %v", pt, err)
			}
			if _, err := s.AEADOpen(key, nonce, []byte("other"), ct); !errors.Is(err, ErrDecrypt) {
				t.Errorf("AEADOpen with other aad = %v, want ErrDecrypt", err)
			}
			if _, err := s.AEADSeal(key[1:], nonce, nil, nil); err == nil {
				t.Error("AEADSeal with a short key succeeded")
			}
			if _, err := s.AEADOpen(key, nonce[1:], nil, ct); err == nil {
				t.Error("AEADOpen with a short nonce succeeded")
			}
		})
	}
}

// TestGenerateDeterministic: an injected reader gives the same keys.
func TestGenerateDeterministic(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		gen := func() ([]byte, []byte) {
			r := sha3.NewSHAKE128()
			r.Write([]byte("seed"))
			h, err := s.GenerateHPKEKey(r)
			if err != nil {
				t.Fatal(err)
			}
			k, err := s.GenerateSignatureKey(r)
			if err != nil {
				t.Fatal(err)
			}
			return h.Public(), k.Public()
		}
		h1, k1 := gen()
		h2, k2 := gen()
		if !bytes.Equal(h1, h2) || !bytes.Equal(k1, k2) {
			t.Errorf("%v: keys from the same reader differ", s)
		}
	}
}

// TestMalformedPublicKeys: keys of the wrong length or off the curve are
// refused with ErrMalformedKey by every entry point that takes one.
func TestMalformedPublicKeys(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		hp, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := s.GenerateSignatureKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, pub := range malformations(hp.Public()) {
			if s.kem.ID() == 0x0020 && name == "flipped" {
				continue // every 32-byte string is an X25519 public key
			}
			if name == "flipped" && s.kem.ID() == 0x647a {
				continue // so is every X-Wing key whose ML-KEM coefficients stay reduced
			}
			if err := s.ValidateHPKEPublicKey(pub); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ValidateHPKEPublicKey(%s) = %v", s, name, err)
			}
			if _, _, err := s.EncryptWithLabel(pub, "l", nil, nil); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: EncryptWithLabel(%s) = %v", s, name, err)
			}
		}
		for name, pub := range malformations(sk.Public()) {
			if name == "flipped" && s.sig == sigEd25519 {
				continue // checked at verification, not parsing
			}
			if err := s.ValidateSignaturePublicKey(pub); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ValidateSignaturePublicKey(%s) = %v", s, name, err)
			}
			if err := s.VerifyWithLabel(pub, "l", nil, make([]byte, 64)); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: VerifyWithLabel(%s) = %v", s, name, err)
			}
		}
		// Keys of another suite are refused too.
		other := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
		if cs != other.ID() && s.kem.ID() != other.kem.ID() {
			op, _ := other.GenerateHPKEKey(nil)
			if _, err := s.DecryptWithLabel(op, "l", nil, nil, nil); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: DecryptWithLabel with an X25519 key = %v", s, err)
			}
		}
		if s.sig != sigEd25519 {
			ok, _ := other.GenerateSignatureKey(nil)
			if _, err := s.SignWithLabel(ok, "l", nil); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: SignWithLabel with an Ed25519 key = %v", s, err)
			}
		}
		if _, err := s.SignWithLabel(SignaturePrivateKey{}, "l", nil); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%v: SignWithLabel with the zero key = %v", s, err)
		}
		if _, err := s.DecryptWithLabel(HPKEPrivateKey{}, "l", nil, nil, nil); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%v: DecryptWithLabel with the zero key = %v", s, err)
		}
	}
}

// malformations returns broken variants of a valid public key.
func malformations(pub []byte) map[string][]byte {
	flipped := bytes.Clone(pub)
	flipped[len(flipped)-1] ^= 0xff
	return map[string][]byte{
		"empty":     nil,
		"one short": pub[:len(pub)-1],
		"one long":  append(bytes.Clone(pub), 0),
		"doubled":   append(bytes.Clone(pub), pub...),
		"flipped":   flipped,
	}
}

func TestMalformedPrivateKeys(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		for _, n := range []int{0, 1, 31, 33, 65, 67, 100} {
			if _, err := s.ParseHPKEPrivateKey(make([]byte, n)); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ParseHPKEPrivateKey(%d zero bytes) = %v", s, n, err)
			}
		}
		size := len(mustGenerateSig(t, s).PrivateBytes())
		for _, b := range [][]byte{nil, make([]byte, size-1), make([]byte, size+1)} {
			if _, err := s.ParseSignaturePrivateKey(b); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ParseSignaturePrivateKey(%d bytes) = %v", s, len(b), err)
			}
		}
		if s.sig != sigEd25519 {
			if _, err := s.ParseSignaturePrivateKey(make([]byte, size)); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ParseSignaturePrivateKey(zero scalar) = %v", s, err)
			}
			if _, err := s.ParseSignaturePrivateKey(bytes.Repeat([]byte{0xff}, size)); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("%v: ParseSignaturePrivateKey(scalar ≥ n) = %v", s, err)
			}
		}
	}
}

func mustGenerateSig(t *testing.T, s *Suite) SignaturePrivateKey {
	t.Helper()
	k, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestMangledCiphertextsAndSignatures flips every bit position's byte of
// the KEM output, ciphertext and signature in turn: none may decrypt or
// verify.
func TestMangledCiphertextsAndSignatures(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		t.Run(s.String(), func(t *testing.T) {
			priv, _ := s.GenerateHPKEKey(nil)
			kemOut, ct, err := s.EncryptWithLabel(priv.Public(), "l", []byte("c"), []byte("secret message"))
			if err != nil {
				t.Fatal(err)
			}
			step := 1
			if len(kemOut) > 200 {
				step = 7 // X-Wing: 1120 bytes, each one a full HPKE setup
			}
			for i := 0; i < len(kemOut); i += step {
				m := bytes.Clone(kemOut)
				m[i] ^= 1 << (i % 8)
				if _, err := s.DecryptWithLabel(priv, "l", []byte("c"), m, ct); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("kem_output byte %d flipped: %v", i, err)
				}
			}
			for i := range ct {
				m := bytes.Clone(ct)
				m[i] ^= 0x80
				if _, err := s.DecryptWithLabel(priv, "l", []byte("c"), kemOut, m); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("ciphertext byte %d flipped: %v", i, err)
				}
			}
			for _, m := range [][]byte{nil, ct[:len(ct)-1], append(bytes.Clone(ct), 0)} {
				if _, err := s.DecryptWithLabel(priv, "l", []byte("c"), kemOut, m); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("ciphertext of %d bytes: %v", len(m), err)
				}
			}
			for _, m := range [][]byte{nil, kemOut[:len(kemOut)-1], append(bytes.Clone(kemOut), 0)} {
				if _, err := s.DecryptWithLabel(priv, "l", []byte("c"), m, ct); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("kem_output of %d bytes: %v", len(m), err)
				}
			}

			sk := mustGenerateSig(t, s)
			sig, err := s.SignWithLabel(sk, "l", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range sig {
				for _, bit := range []byte{0x01, 0x80} {
					m := bytes.Clone(sig)
					m[i] ^= bit
					if err := s.VerifyWithLabel(sk.Public(), "l", []byte("content"), m); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("signature byte %d ^ %#x: %v", i, bit, err)
					}
				}
			}
			for _, m := range [][]byte{nil, sig[:len(sig)-1], append(bytes.Clone(sig), 0)} {
				if err := s.VerifyWithLabel(sk.Public(), "l", []byte("content"), m); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("signature of %d bytes: %v", len(m), err)
				}
			}
		})
	}
}

// TestKeysRedacted: no verb, no nesting and no logger prints a private key.
func TestKeysRedacted(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		sk := mustGenerateSig(t, s)
		hk, _ := s.GenerateHPKEKey(nil)
		hkBytes, _ := hk.PrivateBytes()
		type holder struct {
			sk SignaturePrivateKey
			hk HPKEPrivateKey
		}
		checkRedacted(t, map[string][]byte{"signature private key": sk.PrivateBytes(), "HPKE private key": hkBytes},
			sk, hk, holder{sk, hk}, &holder{sk, hk}, []any{sk, hk})
		if !strings.Contains(sk.String(), "REDACTED") || !strings.Contains(hk.String(), "REDACTED") {
			t.Errorf("String() = %q, %q", sk.String(), hk.String())
		}
	}
}

// checkRedacted fails if fmt, with any verb, or slog prints any of the
// secrets as part of any of the values.
func checkRedacted(t *testing.T, secrets map[string][]byte, values ...any) {
	t.Helper()
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			for name, b := range secrets {
				if leaks(out, b) {
					t.Errorf("fmt %s of %T leaks the %s: %s", verb, v, name, out)
				}
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
		for name, b := range secrets {
			if leaks(buf.String(), b) {
				t.Errorf("slog of %T leaks the %s: %s", v, name, buf.String())
			}
		}
	}
}

// leaks reports whether out shows b raw, in hex (either case), as decimal
// bytes, or as a Go byte-slice literal.
func leaks(out string, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	dec := strings.Trim(fmt.Sprint(b), "[]")
	return strings.Contains(out, string(b)) ||
		strings.Contains(strings.ToLower(out), hex.EncodeToString(b)) ||
		strings.Contains(out, dec) ||
		strings.Contains(out, fmt.Sprintf("%#v", b)[len("[]byte{"):len("[]byte{")+20])
}

// TestMAC checks the MAC against RFC 4231's HMAC test case 2 for each hash
// the suites use, and that verification rejects a changed tag.
func TestMAC(t *testing.T) {
	key, data := []byte("Jefe"), []byte("what do ya want for nothing?")
	want := map[int]string{
		32: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		48: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
		64: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
	}
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		tag := s.MAC(key, data)
		if hex.EncodeToString(tag) != want[s.Nh()] {
			t.Errorf("%v: MAC = %x", s, tag)
		}
		if err := s.VerifyMAC(key, data, tag); err != nil {
			t.Errorf("%v: VerifyMAC: %v", s, err)
		}
		for i := range tag {
			m := bytes.Clone(tag)
			m[i] ^= 1
			if err := s.VerifyMAC(key, data, m); !errors.Is(err, ErrBadMAC) {
				t.Fatalf("%v: VerifyMAC with byte %d flipped = %v", s, i, err)
			}
		}
		if err := s.VerifyMAC(key, data, tag[:len(tag)-1]); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%v: VerifyMAC with a short tag = %v", s, err)
		}
	}
}

// TestHashMatchesStdlib: the suite hash is the one its name says.
func TestHashMatchesStdlib(t *testing.T) {
	data := []byte("abc")
	want := map[CipherSuite]func() hash.Hash{
		MLS128DHKEMX25519AES128GCMSHA256Ed25519: sha256.New,
		MLS256DHKEMP384AES256GCMSHA384P384:      sha512.New384,
		HotlinePQXWingAES256GCMSHA384Ed25519:    sha512.New384,
		TSMLS83XWingAES256GCMSHA512Ed25519:      sha512.New,
	}
	for cs, h := range want {
		w := h()
		w.Write(data)
		if got := mustSuite(t, cs).Hash(data); !bytes.Equal(got, w.Sum(nil)) {
			t.Errorf("%#04x: Hash = %x", uint16(cs), got)
		}
		m := hmac.New(h, []byte("k"))
		m.Write(data)
		if got := mustSuite(t, cs).MAC([]byte("k"), data); !hmac.Equal(got, m.Sum(nil)) {
			t.Errorf("%#04x: MAC = %x", uint16(cs), got)
		}
	}
}

// TestHPKESealDeterministic: with crypto/rand replaced, the HPKE
// encapsulation is reproducible, so higher layers can have golden tests.
func TestHPKESealDeterministic(t *testing.T) {
	s := mustSuite(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	priv, err := s.DeriveKeyPair(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	seal := func() []byte {
		cryptotest.SetGlobalRandom(t, 1)
		kemOut, ct, err := s.EncryptWithLabel(priv.Public(), "l", nil, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		return append(kemOut, ct...)
	}
	if a, b := seal(), seal(); !bytes.Equal(a, b) {
		t.Error("EncryptWithLabel under SetGlobalRandom is not deterministic")
	}
}
