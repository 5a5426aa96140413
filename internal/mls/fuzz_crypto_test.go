package mls

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
)

// fuzzSuite is one suite's fixed material for the fuzzers: an HPKE key
// with a valid ciphertext, and a signature key with a valid signature.
type fuzzSuite struct {
	s          *Suite
	hpke       HPKEPrivateKey
	kemOutput  []byte
	ciphertext []byte
	sigKey     SignaturePrivateKey
	signature  []byte
}

const (
	fuzzLabel     = "Fuzz"
	fuzzPlaintext = "a path secret, say"
	fuzzContent   = "signed content"
	fuzzContext   = "group context"
)

func newFuzzSuites(f *testing.F) []fuzzSuite {
	f.Helper()
	var out []fuzzSuite
	for _, cs := range ImplementedSuites() {
		s := mustSuite(f, cs)
		hk, err := s.DeriveKeyPair([]byte("fuzz hpke key of some length...."))
		if err != nil {
			f.Fatal(err)
		}
		kemOut, ct, err := s.EncryptWithLabel(hk.Public(), fuzzLabel, []byte(fuzzContext), []byte(fuzzPlaintext))
		if err != nil {
			f.Fatal(err)
		}
		sk, err := s.GenerateSignatureKey(bytes.NewReader(bytes.Repeat([]byte{0x42}, 66)))
		if err != nil {
			f.Fatal(err)
		}
		sig, err := s.SignWithLabel(sk, fuzzLabel, []byte(fuzzContent))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, fuzzSuite{s, hk, kemOut, ct, sk, sig})
	}
	return out
}

// mangle applies a fuzzer's change to a valid value: delta is XORed onto
// it, bytes of delta past its end are appended, then cut bytes are removed
// from the end. The valid values differ between the fuzzing processes
// (HPKE and ECDSA are randomized), so the fuzzer mutates changes rather
// than the values themselves.
func mangle(valid, delta []byte, cut uint16) []byte {
	out := bytes.Clone(valid)
	for i, d := range delta {
		if i < len(out) {
			out[i] ^= d
		} else {
			out = append(out, d)
		}
	}
	return out[:max(0, len(out)-int(cut))]
}

// FuzzDecryptWithLabel: DecryptWithLabel never panics on any KEM output
// and ciphertext, and succeeds only on the pair EncryptWithLabel made.
func FuzzDecryptWithLabel(f *testing.F) {
	suites := newFuzzSuites(f)
	for i := range suites {
		w := uint8(i)
		f.Add(w, []byte{}, uint16(0), []byte{}, uint16(0))  // the valid pair
		f.Add(w, []byte{1}, uint16(0), []byte{}, uint16(0)) // first KEM output bit
		f.Add(w, []byte{}, uint16(1), []byte{}, uint16(0))  // KEM output one short
		f.Add(w, []byte{}, uint16(0), []byte{}, uint16(1))  // ciphertext one short
		f.Add(w, []byte{}, uint16(0), bytes.Repeat([]byte{0}, 40), uint16(0))
		f.Add(w, []byte{}, uint16(0xffff), []byte{}, uint16(0xffff))
	}
	f.Fuzz(func(t *testing.T, which uint8, kemDelta []byte, kemCut uint16, ctDelta []byte, ctCut uint16) {
		fs := suites[int(which)%len(suites)]
		kemOutput := mangle(fs.kemOutput, kemDelta, kemCut)
		ciphertext := mangle(fs.ciphertext, ctDelta, ctCut)
		pt, err := fs.s.DecryptWithLabel(fs.hpke, fuzzLabel, []byte(fuzzContext), kemOutput, ciphertext)
		original := bytes.Equal(kemOutput, fs.kemOutput) && bytes.Equal(ciphertext, fs.ciphertext)
		switch {
		case original && (err != nil || string(pt) != fuzzPlaintext):
			t.Fatalf("%v: the original ciphertext gives %q, %v", fs.s, pt, err)
		case !original && err == nil:
			t.Fatalf("%v: a changed KEM output or ciphertext decrypts, to %q", fs.s, pt)
		case !original && !errors.Is(err, ErrDecrypt):
			t.Fatalf("%v: error %v does not wrap ErrDecrypt", fs.s, err)
		}
	})
}

// FuzzVerifyWithLabel: VerifyWithLabel never panics, and accepts only the
// signature SignWithLabel made over the content it was made over. ECDSA
// signatures are malleable, (r, s) and (r, n−s) both verifying; that one
// variant is allowed.
func FuzzVerifyWithLabel(f *testing.F) {
	suites := newFuzzSuites(f)
	for i := range suites {
		w := uint8(i)
		f.Add(w, []byte{}, uint16(0), []byte(fuzzContent))
		f.Add(w, []byte{0x80}, uint16(0), []byte(fuzzContent))
		f.Add(w, []byte{}, uint16(1), []byte(fuzzContent))
		f.Add(w, bytes.Repeat([]byte{0}, 140), uint16(0), []byte(fuzzContent))
		f.Add(w, []byte{}, uint16(0), []byte(fuzzContent+"."))
		f.Add(w, []byte{}, uint16(0xffff), []byte{})
	}
	f.Fuzz(func(t *testing.T, which uint8, delta []byte, cut uint16, content []byte) {
		fs := suites[int(which)%len(suites)]
		sig := mangle(fs.signature, delta, cut)
		err := fs.s.VerifyWithLabel(fs.sigKey.Public(), fuzzLabel, content, sig)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%v: error %v does not wrap ErrBadSignature", fs.s, err)
			}
			if string(content) == fuzzContent && bytes.Equal(sig, fs.signature) {
				t.Fatalf("%v: the original signature does not verify: %v", fs.s, err)
			}
			return
		}
		if string(content) != fuzzContent {
			t.Fatalf("%v: signature %x verifies over other content %q", fs.s, sig, content)
		}
		if !bytes.Equal(sig, fs.signature) && !isECDSANegation(fs, sig) {
			t.Fatalf("%v: changed signature %x verifies", fs.s, sig)
		}
	})
}

// isECDSANegation reports whether sig is fs's ECDSA signature (r, s) in
// its other valid form (r, n−s), canonically encoded.
func isECDSANegation(fs fuzzSuite, sig []byte) bool {
	curve, _ := fs.s.sig.curve()
	if curve == nil {
		return false
	}
	type ecdsaSig struct{ R, S *big.Int }
	var a, b ecdsaSig
	if _, err := asn1.Unmarshal(fs.signature, &a); err != nil {
		return false
	}
	rest, err := asn1.Unmarshal(sig, &b)
	if err != nil || len(rest) != 0 {
		return false
	}
	negS := new(big.Int).Sub(curve.Params().N, a.S)
	return a.R.Cmp(b.R) == 0 && negS.Cmp(b.S) == 0
}

// FuzzParseKeys: key parsing never panics, and a private key that parses
// has a public key that validates and re-encodes to the same bytes.
func FuzzParseKeys(f *testing.F) {
	suites := newFuzzSuites(f)
	for i, fs := range suites {
		hb, _ := fs.hpke.PrivateBytes()
		f.Add(uint8(i), hb)
		f.Add(uint8(i), fs.hpke.Public())
		f.Add(uint8(i), fs.sigKey.PrivateBytes())
		f.Add(uint8(i), fs.sigKey.Public())
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		s := suites[int(which)%len(suites)].s
		_ = s.ValidateHPKEPublicKey(b)
		_ = s.ValidateSignaturePublicKey(b)
		if k, err := s.ParseHPKEPrivateKey(b); err == nil {
			if err := s.ValidateHPKEPublicKey(k.Public()); err != nil {
				t.Fatalf("%v: HPKE key from %x has an invalid public key: %v", s, b, err)
			}
		}
		if k, err := s.ParseSignaturePrivateKey(b); err == nil {
			if err := s.ValidateSignaturePublicKey(k.Public()); err != nil {
				t.Fatalf("%v: signature key from %x has an invalid public key: %v", s, b, err)
			}
			if !bytes.Equal(k.PrivateBytes(), b) {
				t.Fatalf("%v: signature key %x re-encodes as %x", s, b, k.PrivateBytes())
			}
		}
	})
}

// TestECDSANegationVerifies documents why FuzzVerifyWithLabel allows one
// changed ECDSA signature: (r, n−s) verifies too. MLS does not rely on
// signatures being unique, only on their being unforgeable.
func TestECDSANegationVerifies(t *testing.T) {
	s := mustSuite(t, MLS128DHKEMP256AES128GCMSHA256P256)
	k := mustGenerateSig(t, s)
	sig, err := s.SignWithLabel(k, "l", []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &rs); err != nil {
		t.Fatal(err)
	}
	rs.S.Sub(k.priv().(*ecdsa.PrivateKey).Curve.Params().N, rs.S)
	neg, err := asn1.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyWithLabel(k.Public(), "l", []byte("c"), neg); err != nil {
		t.Errorf("(r, n−s) does not verify (%v): FuzzVerifyWithLabel's exception can go", err)
	}
}
