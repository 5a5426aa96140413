package mls

import (
	"bytes"
	"testing"
)

// TestHPKEPrivateBytesOwned: the bytes PrivateBytes returns and the bytes
// ParseHPKEPrivateKey and DeriveKeyPair read are the caller's to erase,
// in every suite (for X-Wing, crypto/hpke's keys keep their seed slice).
func TestHPKEPrivateBytesOwned(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		k, err := s.DeriveKeyPair(bytes.Repeat([]byte{7}, s.ikmSize))
		if err != nil {
			t.Fatal(err)
		}
		want, err := k.PrivateBytes()
		want = bytes.Clone(want)
		if err != nil || isZeroBytes(want) {
			t.Fatalf("suite %s: PrivateBytes after DeriveKeyPair: %x, %v", suiteNumber(cs), want, err)
		}
		b, _ := k.PrivateBytes()
		clear(b)
		if again, _ := k.PrivateBytes(); !bytes.Equal(again, want) {
			t.Errorf("suite %s: erasing PrivateBytes' result changed the key", suiteNumber(cs))
		}
		in := bytes.Clone(want)
		k2, err := s.ParseHPKEPrivateKey(in)
		if err != nil {
			t.Fatal(err)
		}
		clear(in)
		if got, _ := k2.PrivateBytes(); !bytes.Equal(got, want) {
			t.Errorf("suite %s: erasing ParseHPKEPrivateKey's input changed the key", suiteNumber(cs))
		}
	}
}
