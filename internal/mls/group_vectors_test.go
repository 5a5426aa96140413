package mls

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestConformancePassiveClient runs the three passive-client files of
// mlswg/mls-implementations fully: the client joins from the Welcome
// (validating the tree), then processes every epoch's proposals and
// commit, and checks every epoch authenticator. Key package lifetimes in
// the vectors have long expired, so lifetime checks are off (a zero Now).
func TestConformancePassiveClient(t *testing.T) {
	for _, file := range []string{"passive-client-welcome", "passive-client-handling-commit", "passive-client-random"} {
		t.Run(file, func(t *testing.T) { checkPassiveClient(t, file) })
	}
}

type passiveClientVector struct {
	CipherSuite  CipherSuite `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes  `json:"key_package"`
	SignaturePriv             hexBytes  `json:"signature_priv"`
	EncryptionPriv            hexBytes  `json:"encryption_priv"`
	InitPriv                  hexBytes  `json:"init_priv"`
	Welcome                   hexBytes  `json:"welcome"`
	RatchetTree               *hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes  `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func checkPassiveClient(t *testing.T, file string) {
	var vs []passiveClientVector
	loadVectors(t, file, &vs)
	c := newVectorCounts(file + ".json (group)")
	epochs, proposals := 0, 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d", i, v.CipherSuite), func(t *testing.T) {
			g := joinPassiveClient(t, s, v)
			if got := g.EpochAuthenticator(); !bytes.Equal(got, v.InitialEpochAuthenticator) {
				t.Fatalf("initial epoch authenticator %x, want %x", got, []byte(v.InitialEpochAuthenticator))
			}
			for e, ep := range v.Epochs {
				for _, p := range ep.Proposals {
					if _, err := g.Process(decodeMLSMessage(t, p, WireFormatPublicMessage)); err != nil {
						t.Fatalf("epoch %d: proposal: %v", e, err)
					}
					proposals++
				}
				m, err := UnmarshalMLSMessage(ep.Commit)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := g.Process(m); err != nil {
					t.Fatalf("epoch %d: commit: %v", e, err)
				}
				if got := g.EpochAuthenticator(); !bytes.Equal(got, ep.EpochAuthenticator) {
					t.Fatalf("epoch %d: epoch authenticator %x, want %x", e, got, []byte(ep.EpochAuthenticator))
				}
				epochs++
			}
		})
	}
	c.detail = fmt.Sprintf("%d epochs, %d proposals processed", epochs, proposals)
	c.log(t)
}

func joinPassiveClient(t *testing.T, s *Suite, v *passiveClientVector) *Group {
	t.Helper()
	kp := decodeMLSMessage(t, v.KeyPackage, WireFormatKeyPackage).KeyPackage
	w := decodeMLSMessage(t, v.Welcome, WireFormatWelcome).Welcome
	var sec KeyPackageSecrets
	var err error
	if sec.Init, err = s.ParseHPKEPrivateKey(vectorHPKEKey(s, v.InitPriv)); err != nil {
		t.Fatal(err)
	}
	if sec.Encryption, err = s.ParseHPKEPrivateKey(vectorHPKEKey(s, v.EncryptionPriv)); err != nil {
		t.Fatal(err)
	}
	signer, err := s.ParseSignaturePrivateKey(vectorScalar(s, v.SignaturePriv))
	if err != nil {
		t.Fatal(err)
	}
	opts := GroupOptions{
		Now: func() time.Time { return time.Time{} },
		PSKs: func(id *PreSharedKeyID) ([]byte, error) {
			for _, p := range v.ExternalPSKs {
				if bytes.Equal(id.ID, p.PSKID) {
					return p.PSK, nil
				}
			}
			return nil, ErrUnknownPSK
		},
	}
	var rt RatchetTree
	if v.RatchetTree != nil {
		if rt, err = UnmarshalRatchetTree(*v.RatchetTree); err != nil {
			t.Fatal(err)
		}
	}
	g, err := JoinFromWelcome(w, kp, sec, signer, rt, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
