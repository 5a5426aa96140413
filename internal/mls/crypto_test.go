package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// vectorCounts tallies a conformance file's vectors by cipher suite, so
// that every test reports what it checked and what it skipped for a suite
// this package does not implement, and never skips silently.
type vectorCounts struct {
	file    string
	checked map[CipherSuite]int
	skipped map[CipherSuite]int
	cross   []string
	// detail says what a vector holds, for files with many checks each.
	detail string
}

func newVectorCounts(file string) *vectorCounts {
	return &vectorCounts{file: file, checked: map[CipherSuite]int{}, skipped: map[CipherSuite]int{}}
}

// suite returns the implementation of cs and counts the vector as checked,
// or returns nil and counts it as skipped if cs is not implemented.
func (c *vectorCounts) suite(t *testing.T, cs CipherSuite) *Suite {
	t.Helper()
	s, err := SuiteFor(cs)
	if errors.Is(err, ErrUnsupportedSuite) {
		c.skipped[cs]++
		return nil
	}
	if err != nil {
		t.Fatalf("%s: suite %d: %v", c.file, cs, err)
	}
	c.checked[cs]++
	return s
}

// crossChecked records that a post-quantum suite was checked against
// another suite's vectors for the primitives they share.
func (c *vectorCounts) crossChecked(pq CipherSuite, from CipherSuite, what string) {
	c.cross = append(c.cross, fmt.Sprintf("%s against suite %s's %s", suiteNumber(pq), suiteNumber(from), what))
}

func (c *vectorCounts) log(t *testing.T) {
	t.Helper()
	sum := func(m map[CipherSuite]int) (int, string) {
		var keys []CipherSuite
		n := 0
		for cs, k := range m {
			keys = append(keys, cs)
			n += k
		}
		slices.Sort(keys)
		var names []string
		for _, cs := range keys {
			names = append(names, suiteNumber(cs))
		}
		return n, strings.Join(names, ", ")
	}
	n, suites := sum(c.checked)
	m, skipped := sum(c.skipped)
	if n == 0 {
		t.Fatalf("%s: no vectors checked", c.file)
	}
	what := "vectors"
	if c.detail != "" {
		what += " (" + c.detail + ")"
	}
	msg := fmt.Sprintf("%s: %d %s checked (suites %s), %d skipped for unimplemented suites", c.file, n, what, suites, m)
	if m > 0 {
		msg += " (" + skipped + ")"
	}
	if len(c.cross) > 0 {
		msg += "; cross-checked " + strings.Join(c.cross, ", ")
	}
	t.Log(msg)
}

// suiteNumber names a suite the way the vectors do for the RFC's, and in
// hex for the private-use ones.
func suiteNumber(cs CipherSuite) string {
	if cs < 0x0010 {
		return fmt.Sprint(uint16(cs))
	}
	return fmt.Sprintf("%#04x", uint16(cs))
}

// mustSuite returns the implementation of cs or fails the test.
func mustSuite(t testing.TB, cs CipherSuite) *Suite {
	t.Helper()
	s, err := SuiteFor(cs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type cryptoBasicsVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

// TestConformanceCryptoBasics checks crypto-basics.json: RefHash,
// ExpandWithLabel, DeriveSecret, DeriveTreeSecret, SignWithLabel (the given
// signature verifies, and so does a fresh one) and EncryptWithLabel (the
// given ciphertext decrypts, and so does a fresh one), for every
// implemented suite.
//
// The post-quantum suites have no vectors, but share primitives with
// suites that do: 0xF0A1 has suite 7's hash and KDF (SHA-384), 0x0053 suite
// 5's (SHA-512), and both suite 1's Ed25519. Those vectors are run against
// them too.
func TestConformanceCryptoBasics(t *testing.T) {
	var vs []cryptoBasicsVector
	loadVectors(t, "crypto-basics", &vs)
	c := newVectorCounts("crypto-basics.json")
	for _, v := range vs {
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(v.CipherSuite), func(t *testing.T) {
			checkKDFVectors(t, s, &v)
			checkSignVector(t, s, &v)
			checkEncryptVector(t, s, &v)
		})
		for _, pq := range pqSharingKDF(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x-with-suite-%d-kdf", uint16(pq), v.CipherSuite), func(t *testing.T) {
				checkKDFVectors(t, mustSuite(t, pq), &v)
			})
			c.crossChecked(pq, v.CipherSuite, "hash and KDF vectors")
		}
		if v.CipherSuite == MLS128DHKEMX25519AES128GCMSHA256Ed25519 {
			for _, pq := range []CipherSuite{HotlinePQXWingAES256GCMSHA384Ed25519, TSMLS83XWingAES256GCMSHA512Ed25519} {
				t.Run(fmt.Sprintf("%#04x-with-suite-1-ed25519", uint16(pq)), func(t *testing.T) {
					checkSignVector(t, mustSuite(t, pq), &v)
				})
				c.crossChecked(pq, v.CipherSuite, "Ed25519 vector")
			}
		}
	}
	c.log(t)
}

// pqSharingKDF returns the post-quantum suites whose hash and KDF are
// those of cs.
func pqSharingKDF(cs CipherSuite) []CipherSuite {
	switch cs {
	case MLS256DHKEMP384AES256GCMSHA384P384:
		return []CipherSuite{HotlinePQXWingAES256GCMSHA384Ed25519}
	case MLS256DHKEMP521AES256GCMSHA512P521:
		return []CipherSuite{TSMLS83XWingAES256GCMSHA512Ed25519}
	}
	return nil
}

func checkKDFVectors(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	t.Helper()
	if got := s.RefHash(v.RefHash.Label, v.RefHash.Value); !bytes.Equal(got, v.RefHash.Out) {
		t.Errorf("RefHash = %x, want %x", got, []byte(v.RefHash.Out))
	}
	e := v.ExpandWithLabel
	got, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length)
	if err != nil || !bytes.Equal(got, e.Out) {
		t.Errorf("ExpandWithLabel = %x, %v, want %x", got, err, []byte(e.Out))
	}
	ds := v.DeriveSecret
	got, err = s.DeriveSecret(ds.Secret, ds.Label)
	if err != nil || !bytes.Equal(got, ds.Out) {
		t.Errorf("DeriveSecret = %x, %v, want %x", got, err, []byte(ds.Out))
	}
	dt := v.DeriveTreeSecret
	got, err = s.DeriveTreeSecret(dt.Secret, dt.Label, dt.Generation, dt.Length)
	if err != nil || !bytes.Equal(got, dt.Out) {
		t.Errorf("DeriveTreeSecret = %x, %v, want %x", got, err, []byte(dt.Out))
	}
}

func checkSignVector(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	t.Helper()
	sv := v.SignWithLabel
	if err := s.VerifyWithLabel(sv.Pub, sv.Label, sv.Content, sv.Signature); err != nil {
		t.Errorf("VerifyWithLabel(vector signature): %v", err)
	}
	key, err := s.ParseSignaturePrivateKey(sv.Priv)
	if err != nil {
		t.Fatalf("ParseSignaturePrivateKey: %v", err)
	}
	if !bytes.Equal(key.Public(), sv.Pub) {
		t.Errorf("Public() = %x, want %x", key.Public(), []byte(sv.Pub))
	}
	if !bytes.Equal(key.PrivateBytes(), sv.Priv) {
		t.Errorf("PrivateBytes() does not round-trip")
	}
	sig, err := s.SignWithLabel(key, sv.Label, sv.Content)
	if err != nil {
		t.Fatalf("SignWithLabel: %v", err)
	}
	if err := s.VerifyWithLabel(sv.Pub, sv.Label, sv.Content, sig); err != nil {
		t.Errorf("VerifyWithLabel(fresh signature): %v", err)
	}
	if err := s.VerifyWithLabel(sv.Pub, sv.Label+"x", sv.Content, sv.Signature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyWithLabel with another label = %v, want ErrBadSignature", err)
	}
	if err := s.VerifyWithLabel(sv.Pub, sv.Label, append(sv.Content[:len(sv.Content):len(sv.Content)], 0), sv.Signature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyWithLabel with other content = %v, want ErrBadSignature", err)
	}
}

func checkEncryptVector(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	t.Helper()
	ev := v.EncryptWithLabel
	priv, err := s.ParseHPKEPrivateKey(ev.Priv)
	if err != nil {
		t.Fatalf("ParseHPKEPrivateKey: %v", err)
	}
	if !bytes.Equal(priv.Public(), ev.Pub) {
		t.Errorf("Public() = %x, want %x", priv.Public(), []byte(ev.Pub))
	}
	pt, err := s.DecryptWithLabel(priv, ev.Label, ev.Context, ev.KEMOutput, ev.Ciphertext)
	if err != nil || !bytes.Equal(pt, ev.Plaintext) {
		t.Errorf("DecryptWithLabel(vector) = %x, %v, want %x", pt, err, []byte(ev.Plaintext))
	}
	kemOutput, ct, err := s.EncryptWithLabel(ev.Pub, ev.Label, ev.Context, ev.Plaintext)
	if err != nil {
		t.Fatalf("EncryptWithLabel: %v", err)
	}
	pt, err = s.DecryptWithLabel(priv, ev.Label, ev.Context, kemOutput, ct)
	if err != nil || !bytes.Equal(pt, ev.Plaintext) {
		t.Errorf("DecryptWithLabel(fresh) = %x, %v, want %x", pt, err, []byte(ev.Plaintext))
	}
	if _, err := s.DecryptWithLabel(priv, ev.Label, append(ev.Context[:len(ev.Context):len(ev.Context)], 0), ev.KEMOutput, ev.Ciphertext); !errors.Is(err, ErrDecrypt) {
		t.Errorf("DecryptWithLabel with another context = %v, want ErrDecrypt", err)
	}
}
