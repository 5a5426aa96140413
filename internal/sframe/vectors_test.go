package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// vectorDir holds the SFrame working group's test vectors (RFC 9605,
// Appendix C, and the AES-256-CTR suites), shared by the repository.
var vectorDir = filepath.Join("..", "..", "..", "shared", "vectors", "sframe")

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type headerVector struct {
	KID     uint64   `json:"kid"`
	CTR     uint64   `json:"ctr"`
	Encoded hexBytes `json:"encoded"`
}

type aeadVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	Key         hexBytes    `json:"key"`
	EncKey      hexBytes    `json:"enc_key"`
	AuthKey     hexBytes    `json:"auth_key"`
	Nonce       hexBytes    `json:"nonce"`
	AAD         hexBytes    `json:"aad"`
	PT          hexBytes    `json:"pt"`
	CT          hexBytes    `json:"ct"`
}

type sframeVector struct {
	CipherSuite    CipherSuite `json:"cipher_suite"`
	KID            uint64      `json:"kid"`
	CTR            uint64      `json:"ctr"`
	BaseKey        hexBytes    `json:"base_key"`
	SFrameKeyLabel hexBytes    `json:"sframe_key_label"`
	SFrameSaltLbl  hexBytes    `json:"sframe_salt_label"`
	SFrameSecret   hexBytes    `json:"sframe_secret"`
	SFrameKey      hexBytes    `json:"sframe_key"`
	SFrameSalt     hexBytes    `json:"sframe_salt"`
	Metadata       hexBytes    `json:"metadata"`
	Nonce          hexBytes    `json:"nonce"`
	AAD            hexBytes    `json:"aad"`
	PT             hexBytes    `json:"pt"`
	CT             hexBytes    `json:"ct"`
}

// readVectors decodes a vector file section by section; it fails the test
// if the file is absent, and if the file has a section the test does not
// know (so a new section cannot go unchecked).
func readVectors(t *testing.T, name string, known ...string) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatalf("the SFrame test vectors must be present: %v", err)
	}
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(b, &sections); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for s := range sections {
		found := false
		for _, k := range known {
			found = found || s == k
		}
		if !found {
			t.Errorf("%s: section %q is not checked", name, s)
		}
	}
	return sections
}

func section[T any](t *testing.T, sections map[string]json.RawMessage, name string) []T {
	t.Helper()
	raw, ok := sections[name]
	if !ok {
		t.Fatalf("no section %q", name)
	}
	var out []T
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("section %s: %v", name, err)
	}
	if len(out) == 0 {
		t.Fatalf("section %s is empty", name)
	}
	return out
}

// TestConformance checks every vector of every section of both files, and
// logs how many of each it checked.
func TestConformance(t *testing.T) {
	main := readVectors(t, "test-vectors.json", "header", "aes_ctr_hmac", "aes_256_ctr_hmac", "sframe")
	aes256 := readVectors(t, "test-vectors-aes256.json", "sframe_aes_256_ctr_hmac")

	n := 0
	for _, v := range section[headerVector](t, main, "header") {
		checkHeaderVector(t, v)
		n++
	}
	t.Logf("header: %d vectors checked", n)

	for _, name := range []string{"aes_ctr_hmac", "aes_256_ctr_hmac"} {
		n = 0
		for _, v := range section[aeadVector](t, main, name) {
			checkAEADVector(t, name, v)
			n++
		}
		t.Logf("%s: %d vectors checked", name, n)
	}

	for _, s := range []struct {
		file map[string]json.RawMessage
		name string
	}{{main, "sframe"}, {aes256, "sframe_aes_256_ctr_hmac"}} {
		n = 0
		for _, v := range section[sframeVector](t, s.file, s.name) {
			checkSFrameVector(t, s.name, v)
			n++
		}
		t.Logf("%s: %d vectors checked", s.name, n)
	}
}

func checkHeaderVector(t *testing.T, v headerVector) {
	t.Helper()
	h := Header{KID: v.KID, CTR: v.CTR}
	if got := h.Append(nil); !bytes.Equal(got, v.Encoded) {
		t.Errorf("header kid=%d ctr=%d: encoded %x, want %x", v.KID, v.CTR, got, v.Encoded)
	}
	if h.Len() != len(v.Encoded) {
		t.Errorf("header kid=%d ctr=%d: Len %d, want %d", v.KID, v.CTR, h.Len(), len(v.Encoded))
	}
	// Parse it followed by payload bytes, which the parser must leave.
	got, n, err := ParseHeader(append(bytes.Clone(v.Encoded), 0xff, 0x00))
	if err != nil || got != h || n != len(v.Encoded) {
		t.Errorf("header %x: parsed %+v, %d, %v; want %+v, %d", v.Encoded, got, n, err, h, len(v.Encoded))
	}
	// Every truncation is a short header.
	for i := range len(v.Encoded) {
		if _, _, err := ParseHeader(v.Encoded[:i]); !errors.Is(err, ErrShortHeader) {
			t.Errorf("header %x cut to %d bytes: %v, want ErrShortHeader", v.Encoded, i, err)
		}
	}
}

func checkAEADVector(t *testing.T, name string, v aeadVector) {
	t.Helper()
	p, ok := v.CipherSuite.params()
	if !ok || !p.ctr {
		t.Errorf("%s: suite %v is not an AES-CTR+HMAC suite", name, v.CipherSuite)
		return
	}
	if len(v.Key) != p.nk || !bytes.Equal(v.Key[:p.nka], v.EncKey) || !bytes.Equal(v.Key[p.nka:], v.AuthKey) {
		t.Errorf("%s %v: the key does not split into enc_key and auth_key", name, v.CipherSuite)
	}
	a, err := newCTRHMAC(p, v.Key)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 9605 takes the AAD whole; the AEAD takes it in two parts, so try
	// every split.
	for i := range len(v.AAD) + 1 {
		if ct := a.seal(nil, v.Nonce, v.PT, v.AAD[:i], v.AAD[i:]); !bytes.Equal(ct, v.CT) {
			t.Errorf("%s %v: ct %x, want %x", name, v.CipherSuite, ct, v.CT)
		}
		if pt, err := a.open(nil, v.Nonce, v.CT, v.AAD[:i], v.AAD[i:]); err != nil || !bytes.Equal(pt, v.PT) {
			t.Errorf("%s %v: open: %x, %v", name, v.CipherSuite, pt, err)
		}
	}
	bad := bytes.Clone(v.CT)
	bad[len(bad)-1] ^= 1
	if _, err := a.open(nil, v.Nonce, bad, v.AAD, nil); !errors.Is(err, ErrAuth) {
		t.Errorf("%s %v: altered tag: %v, want ErrAuth", name, v.CipherSuite, err)
	}
}

func checkSFrameVector(t *testing.T, name string, v sframeVector) {
	t.Helper()
	p, ok := v.CipherSuite.params()
	if !ok {
		t.Errorf("%s: suite %v not supported", name, v.CipherSuite)
		return
	}
	fail := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s %v: %s %x, want %x", name, v.CipherSuite, what, got, want)
		}
	}
	fail("sframe_key_label", derivationLabel(keyLabel, v.KID, v.CipherSuite), v.SFrameKeyLabel)
	fail("sframe_salt_label", derivationLabel(saltLabel, v.KID, v.CipherSuite), v.SFrameSaltLbl)
	secret, err := sframeSecret(p, v.BaseKey)
	if err != nil {
		t.Fatal(err)
	}
	fail("sframe_secret", secret, v.SFrameSecret)
	key, salt, err := deriveKeySalt(v.CipherSuite, p, v.KID, v.BaseKey)
	if err != nil {
		t.Fatal(err)
	}
	fail("sframe_key", key, v.SFrameKey)
	fail("sframe_salt", salt, v.SFrameSalt)

	// Encrypt through a Context whose send key is at the vector's counter.
	c, err := NewContext(v.CipherSuite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddSendKey(v.KID, v.BaseKey); err != nil {
		t.Fatal(err)
	}
	ks := c.keys[v.KID]
	nonce := make([]byte, nonceSize)
	ks.nonceInto(nonce, v.CTR)
	fail("nonce", nonce, v.Nonce)
	ks.next = v.CTR
	hdr := Header{KID: v.KID, CTR: v.CTR}.Append(nil)
	fail("aad", append(hdr, v.Metadata...), v.AAD)
	ct, err := c.Encrypt(v.KID, v.Metadata, v.PT)
	if err != nil {
		t.Fatal(err)
	}
	fail("ct", ct, v.CT)

	// Decrypt through a receiving Context, once.
	r, err := NewContext(v.CipherSuite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddReceiveKey(v.KID, v.BaseKey); err != nil {
		t.Fatal(err)
	}
	pt, err := r.Decrypt(v.Metadata, v.CT)
	if err != nil {
		t.Fatalf("%s %v: decrypt: %v", name, v.CipherSuite, err)
	}
	fail("pt", pt, v.PT)
	if _, err := r.Decrypt(v.Metadata, v.CT); !errors.Is(err, ErrReplay) {
		t.Errorf("%s %v: decrypt again: %v, want ErrReplay", name, v.CipherSuite, err)
	}
}
