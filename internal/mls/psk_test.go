package mls

import (
	"bytes"
	"fmt"
	"testing"
)

type pskSecretVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

// TestConformancePSKSecret checks psk_secret.json: the vectors' PSKs are
// external PSKs with the given IDs and nonces, 0 to 10 of them.
func TestConformancePSKSecret(t *testing.T) {
	var vs []pskSecretVector
	loadVectors(t, "psk_secret", &vs)
	c := newVectorCounts("psk_secret.json")
	check := func(t *testing.T, s *Suite, v *pskSecretVector) {
		t.Helper()
		var psks []PSK
		for _, p := range v.PSKs {
			psks = append(psks, PSK{
				ID:     PreSharedKeyID{Type: PSKExternal, ID: p.PSKID, Nonce: p.PSKNonce},
				Secret: p.PSK,
			})
		}
		got, err := s.PSKSecret(psks)
		if err != nil || !bytes.Equal(got, v.PSKSecret) {
			t.Errorf("%d PSKs: PSKSecret = %x, %v, want %x", len(psks), got, err, []byte(v.PSKSecret))
		}
	}
	crossed := map[CipherSuite]bool{}
	for i, v := range vs {
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d-psks", v.CipherSuite, len(v.PSKs)), func(t *testing.T) { check(t, s, &vs[i]) })
		for _, pq := range pqSharingKDF(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x/%d-psks", uint16(pq), len(v.PSKs)), func(t *testing.T) { check(t, mustSuite(t, pq), &vs[i]) })
			if !crossed[pq] {
				c.crossChecked(pq, v.CipherSuite, "vectors")
				crossed[pq] = true
			}
		}
	}
	c.log(t)
}

func TestPSKSecretNone(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		got, err := s.PSKSecret(nil)
		if err != nil || !bytes.Equal(got, make([]byte, s.Nh())) {
			t.Errorf("%v: PSKSecret(nil) = %x, %v, want %d zero bytes", s, got, err, s.Nh())
		}
	}
}

// TestPSKSecretBindsEverything: the order, IDs, nonces, types and values
// of the PSKs all change the result.
func TestPSKSecretBindsEverything(t *testing.T) {
	s := mustSuite(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	ext := PSK{ID: PreSharedKeyID{Type: PSKExternal, ID: []byte("a"), Nonce: []byte("n1")}, Secret: []byte("k1")}
	res := PSK{ID: PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, PSKGroupID: []byte("g"), PSKEpoch: 3, Nonce: []byte("n2")}, Secret: []byte("k2")}
	variants := map[string][]PSK{
		"one":            {ext},
		"two":            {ext, res},
		"swapped":        {res, ext},
		"other nonce":    {ext, withPSK(res, func(p *PSK) { p.ID.Nonce = []byte("n3") })},
		"other epoch":    {ext, withPSK(res, func(p *PSK) { p.ID.PSKEpoch = 4 })},
		"other usage":    {ext, withPSK(res, func(p *PSK) { p.ID.Usage = ResumptionReinit })},
		"other value":    {ext, withPSK(res, func(p *PSK) { p.Secret = []byte("k3") })},
		"other id":       {withPSK(ext, func(p *PSK) { p.ID.ID = []byte("b") }), res},
		"twice the same": {ext, ext},
	}
	seen := map[string]string{}
	for name, psks := range variants {
		got, err := s.PSKSecret(psks)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[string(got)]; ok {
			t.Errorf("%q and %q give the same psk_secret", name, prev)
		}
		seen[string(got)] = name
	}
}

func withPSK(p PSK, f func(*PSK)) PSK {
	p.ID.ID = bytes.Clone(p.ID.ID)
	f(&p)
	return p
}
