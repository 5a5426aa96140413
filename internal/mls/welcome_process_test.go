package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

type welcomeVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	InitPriv    hexBytes    `json:"init_priv"`
	SignerPub   hexBytes    `json:"signer_pub"`
	KeyPackage  hexBytes    `json:"key_package"`
	Welcome     hexBytes    `json:"welcome"`
}

// signerKeyIs is a GroupInfo signer function giving pub for any signer.
func signerKeyIs(pub []byte) func(*GroupInfo) ([]byte, error) {
	return func(*GroupInfo) ([]byte, error) { return pub, nil }
}

// TestConformanceWelcome checks welcome.json fully: init_priv is the key
// package's init key, the Welcome has secrets for the key package and they
// decrypt with it, the GroupInfo decrypts, its signature verifies under
// signer_pub and its confirmation tag under the confirmation_key of the
// key schedule run from the joiner_secret, without PSKs.
func TestConformanceWelcome(t *testing.T) {
	var vs []welcomeVector
	loadVectors(t, "welcome", &vs)
	c := newVectorCounts("welcome.json")
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(v.CipherSuite), func(t *testing.T) {
			kp := decodeMLSMessage(t, v.KeyPackage, WireFormatKeyPackage).KeyPackage
			w := decodeMLSMessage(t, v.Welcome, WireFormatWelcome).Welcome
			initKey, err := s.ParseHPKEPrivateKey(v.InitPriv)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(initKey.Public(), kp.InitKey) {
				t.Fatalf("init_priv's public key %x is not the key package's %x", initKey.Public(), kp.InitKey)
			}
			if err := s.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", kp.tbs(), kp.Signature); err != nil {
				t.Errorf("key package signature: %v", err)
			}
			j, err := s.ProcessWelcome(w, kp, initKey, nil, signerKeyIs(v.SignerPub))
			if err != nil {
				t.Fatal(err)
			}
			gc := &j.GroupInfo.GroupContext
			if gc.CipherSuite != v.CipherSuite || !bytes.Equal(j.Epoch.ConfirmationTag(gc.ConfirmedTranscriptHash), j.GroupInfo.ConfirmationTag) {
				t.Errorf("joined %v with a wrong confirmation tag", j)
			}
			if want := s.InterimTranscriptHash(gc.ConfirmedTranscriptHash, j.GroupInfo.ConfirmationTag); !bytes.Equal(j.InterimTranscriptHash, want) {
				t.Errorf("interim transcript hash %x, want %x", j.InterimTranscriptHash, want)
			}

			// The signer's key is checked: another key, or none, fails.
			other, _ := s.GenerateSignatureKey(nil)
			if _, err := s.ProcessWelcome(w, kp, initKey, nil, signerKeyIs(other.Public())); !errors.Is(err, ErrBadSignature) {
				t.Errorf("GroupInfo verified under another key: %v", err)
			}
			if _, err := s.ProcessWelcome(w, kp, initKey, nil, func(*GroupInfo) ([]byte, error) { return nil, ErrUnknownSender }); !errors.Is(err, ErrUnknownSender) {
				t.Errorf("signer function's error: %v", err)
			}
		})
	}
	c.log(t)
}

// welcomeFixture is a group's new epoch and a Welcome of it for new
// members.
type welcomeFixture struct {
	s        *Suite
	gi       *GroupInfo
	epoch    *EpochSecrets
	signer   SignaturePrivateKey
	psks     []PSK
	members  []NewMember
	initKeys []HPKEPrivateKey
	welcome  *Welcome
}

func newWelcomeFixture(t testing.TB, cs CipherSuite, newMembers int, psks []PSK) *welcomeFixture {
	t.Helper()
	s := mustSuite(t, cs)
	f := &welcomeFixture{s: s, psks: psks}
	var err error
	if f.signer, err = s.GenerateSignatureKey(nil); err != nil {
		t.Fatal(err)
	}
	gc := GroupContext{
		Version: MLS10, CipherSuite: cs, GroupID: []byte("welcome group"), Epoch: 4,
		TreeHash: bytes.Repeat([]byte{1}, s.Nh()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.Nh()),
		Extensions: []Extension{},
	}
	pskSecret, err := s.PSKSecret(psks)
	if err != nil {
		t.Fatal(err)
	}
	if f.epoch, err = s.NewEpochSecrets(bytes.Repeat([]byte{3}, s.Nh()), bytes.Repeat([]byte{4}, s.Nh()), pskSecret, &gc); err != nil {
		t.Fatal(err)
	}
	f.gi = &GroupInfo{
		GroupContext:    gc,
		Extensions:      []Extension{{Type: ExtExternalPub, Data: []byte{0}}},
		ConfirmationTag: f.epoch.ConfirmationTag(gc.ConfirmedTranscriptHash),
		Signer:          3,
	}
	if err := s.SignGroupInfo(f.gi, f.signer); err != nil {
		t.Fatal(err)
	}
	for i := range newMembers {
		initKey, err := s.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		kp := &KeyPackage{
			Version: MLS10, CipherSuite: cs, InitKey: initKey.Public(),
			LeafNode: LeafNode{
				EncryptionKey: []byte{byte(i)}, SignatureKey: []byte{byte(i)},
				Credential:   Credential{Type: CredentialBasic, Identity: []byte(fmt.Sprint("member ", i))},
				Capabilities: Capabilities{}, Source: LeafNodeSourceKeyPackage, Extensions: []Extension{}, Signature: []byte{},
			},
			Extensions: []Extension{}, Signature: []byte{},
		}
		var path []byte
		if i%2 == 0 {
			path = bytes.Repeat([]byte{byte(0x50 + i)}, s.Nh())
		}
		f.members = append(f.members, NewMember{KeyPackage: kp, PathSecret: path})
		f.initKeys = append(f.initKeys, initKey)
	}
	ids := make([]PreSharedKeyID, len(psks))
	for i, p := range psks {
		ids[i] = p.ID
	}
	if f.welcome, err = s.NewWelcome(f.gi, f.epoch, ids, f.members); err != nil {
		t.Fatal(err)
	}
	return f
}

// pskLookup finds the fixture's PSKs by ID.
func (f *welcomeFixture) pskLookup(id *PreSharedKeyID) ([]byte, error) {
	for _, p := range f.psks {
		if marshalPSKID(&p.ID) == marshalPSKID(id) {
			return p.Secret, nil
		}
	}
	return nil, ErrUnknownPSK
}

func marshalPSKID(id *PreSharedKeyID) string { return string(marshalWire(id)) }

func (f *welcomeFixture) process(i int) (*Joined, error) {
	return f.s.ProcessWelcome(f.welcome, f.members[i].KeyPackage, f.initKeys[i], f.pskLookup, signerKeyIs(f.signer.Public()))
}

// TestWelcomeRoundTrip: for every implemented suite, the post-quantum ones
// among them, each new member of a Welcome joins the epoch it was made
// for, through the wire encoding, with its own path secret and the PSKs.
func TestWelcomeRoundTrip(t *testing.T) {
	psks := []PSK{
		{ID: PreSharedKeyID{Type: PSKExternal, ID: []byte("psk a"), Nonce: []byte("nonce a")}, Secret: []byte("secret a")},
		{ID: PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, PSKGroupID: []byte("g"), PSKEpoch: 3, Nonce: []byte("nonce b")}, Secret: []byte("secret b")},
	}
	for _, cs := range ImplementedSuites() {
		t.Run(suiteNumber(cs), func(t *testing.T) {
			f := newWelcomeFixture(t, cs, 3, psks)
			wire := (&MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: f.welcome}).Marshal()
			f.welcome = decodeMLSMessage(t, wire, WireFormatWelcome).Welcome
			for i, m := range f.members {
				j, err := f.process(i)
				if err != nil {
					t.Fatalf("member %d: %v", i, err)
				}
				if !bytes.Equal(j.Epoch.EpochAuthenticator(), f.epoch.EpochAuthenticator()) ||
					!bytes.Equal(j.Epoch.EncryptionSecret(), f.epoch.EncryptionSecret()) {
					t.Errorf("member %d joined another epoch", i)
				}
				if !bytes.Equal(j.GroupInfo.Marshal(), f.gi.Marshal()) {
					t.Errorf("member %d: GroupInfo differs", i)
				}
				if got := j.PathSecret(); !bytes.Equal(got, m.PathSecret) || (got == nil) != (m.PathSecret == nil) {
					t.Errorf("member %d: path secret %x, want %x", i, got, m.PathSecret)
				}
				if len(j.PSKs) != len(psks) || marshalPSKID(&j.PSKs[1]) != marshalPSKID(&psks[1].ID) {
					t.Errorf("member %d: PSKs %+v", i, j.PSKs)
				}
			}
		})
	}
}

// TestProcessWelcomeMalformed: each way a Welcome can fail to apply gives
// its stable sentinel error.
func TestProcessWelcomeMalformed(t *testing.T) {
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	psk := []PSK{{ID: PreSharedKeyID{Type: PSKExternal, ID: []byte("k"), Nonce: []byte("n")}, Secret: []byte("v")}}
	f := newWelcomeFixture(t, cs, 2, psk)
	s := f.s
	outsider := newWelcomeFixture(t, cs, 1, nil)

	for _, tc := range []struct {
		name   string
		change func(w *Welcome)
		member int
		kp     *KeyPackage
		init   *HPKEPrivateKey
		psk    PSKFunc
		signer []byte
		want   error
	}{
		{name: "not for this key package", kp: outsider.members[0].KeyPackage, init: &outsider.initKeys[0], want: ErrNotInWelcome},
		{name: "reference changed", change: func(w *Welcome) { w.Secrets[0].NewMember[0] ^= 1 }, want: ErrNotInWelcome},
		{name: "group secrets", change: func(w *Welcome) { w.Secrets[0].EncryptedGroupSecrets.Ciphertext[0] ^= 1 }, want: ErrDecrypt},
		{name: "another member's secrets", change: func(w *Welcome) {
			w.Secrets[0].EncryptedGroupSecrets = w.Secrets[1].EncryptedGroupSecrets
		}, want: ErrDecrypt},
		{name: "group info", change: func(w *Welcome) { w.EncryptedGroupInfo[3] ^= 1 }, want: ErrDecrypt},
		{name: "PSK not held", psk: func(*PreSharedKeyID) ([]byte, error) { return nil, ErrUnknownPSK }, want: ErrUnknownPSK},
		{name: "no PSK function", psk: PSKFunc(nil), want: ErrUnknownPSK},
		{name: "wrong PSK value", psk: func(*PreSharedKeyID) ([]byte, error) { return []byte("w"), nil }, want: ErrDecrypt},
		{name: "signer", signer: outsider.signer.Public(), want: ErrBadSignature},
		{name: "suite", change: func(w *Welcome) { w.CipherSuite = MLS128DHKEMP256AES128GCMSHA256P256 }, want: ErrWrongSuite},
		{name: "init key", init: &outsider.initKeys[0], want: ErrMalformedKey},
	} {
		w, err := UnmarshalWelcome(f.welcome.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if tc.change != nil {
			tc.change(w)
		}
		kp, init, lookup, signer := f.members[tc.member].KeyPackage, f.initKeys[tc.member], PSKFunc(f.pskLookup), f.signer.Public()
		if tc.kp != nil {
			kp = tc.kp
		}
		if tc.init != nil {
			init = *tc.init
		}
		if tc.psk != nil || tc.name == "no PSK function" {
			lookup = tc.psk
		}
		if tc.signer != nil {
			signer = tc.signer
		}
		if _, err := s.ProcessWelcome(w, kp, init, lookup, signerKeyIs(signer)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// A GroupInfo whose confirmation tag is not the epoch's, signed and
	// sent by the book otherwise.
	bad := *f.gi
	bad.ConfirmationTag = bytes.Repeat([]byte{9}, s.Nh())
	if err := s.SignGroupInfo(&bad, f.signer); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWelcome(&bad, f.epoch, []PreSharedKeyID{psk[0].ID}, f.members)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ProcessWelcome(w, f.members[0].KeyPackage, f.initKeys[0], f.pskLookup, signerKeyIs(f.signer.Public())); !errors.Is(err, ErrBadMAC) {
		t.Errorf("wrong confirmation tag: %v", err)
	}

	// Malformed plaintexts, encrypted by a sender who holds the keys.
	gsPlain := marshalWire(&GroupSecrets{JoinerSecret: f.epoch.JoinerSecret(), PSKs: []PreSharedKeyID{psk[0].ID}})
	for _, tc := range []struct {
		name         string
		groupSecrets []byte
		groupInfo    []byte
		wantErr      error
	}{
		{"group secrets with trailing bytes", append(bytes.Clone(gsPlain), 0), f.gi.Marshal(), ErrDecode},
		{"group info with trailing bytes", gsPlain, append(f.gi.Marshal(), 0), ErrDecode},
	} {
		w := sealWelcomeByHand(t, s, f.epoch, tc.groupInfo, f.members[0].KeyPackage, tc.groupSecrets)
		if _, err := s.ProcessWelcome(w, f.members[0].KeyPackage, f.initKeys[0], f.pskLookup, signerKeyIs(f.signer.Public())); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

// sealWelcomeByHand builds a Welcome around any plaintexts.
func sealWelcomeByHand(t *testing.T, s *Suite, epoch *EpochSecrets, groupInfo []byte, kp *KeyPackage, groupSecrets []byte) *Welcome {
	t.Helper()
	key, nonce, err := s.WelcomeKeyNonce(epoch.WelcomeSecret())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := s.AEADSeal(key, nonce, nil, groupInfo)
	if err != nil {
		t.Fatal(err)
	}
	kem, ct, err := s.EncryptWithLabel(kp.InitKey, welcomeLabel, enc, groupSecrets)
	if err != nil {
		t.Fatal(err)
	}
	return &Welcome{
		CipherSuite:        s.ID(),
		Secrets:            []EncryptedGroupSecrets{{NewMember: s.MakeKeyPackageRef(kp.Marshal()), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kem, Ciphertext: ct}}},
		EncryptedGroupInfo: enc,
	}
}

// TestNewWelcomeMisuse: a Welcome is not built from an unsigned GroupInfo,
// erased secrets or another suite's key package.
func TestNewWelcomeMisuse(t *testing.T) {
	f := newWelcomeFixture(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 1, nil)
	s := f.s
	unsigned := *f.gi
	unsigned.Signature = nil
	if _, err := s.NewWelcome(&unsigned, f.epoch, nil, f.members); err == nil {
		t.Error("unsigned GroupInfo accepted")
	}
	kp := *f.members[0].KeyPackage
	kp.CipherSuite = MLS128DHKEMP256AES128GCMSHA256P256
	if _, err := s.NewWelcome(f.gi, f.epoch, nil, []NewMember{{KeyPackage: &kp}}); !errors.Is(err, ErrWrongSuite) {
		t.Errorf("key package of another suite: %v", err)
	}
	if _, err := s.NewWelcome(f.gi, f.epoch, nil, []NewMember{{}}); !errors.Is(err, ErrWrongSuite) {
		t.Errorf("no key package: %v", err)
	}
	bad := *f.members[0].KeyPackage
	bad.InitKey = bad.InitKey[1:]
	if _, err := s.NewWelcome(f.gi, f.epoch, nil, []NewMember{{KeyPackage: &bad}}); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("malformed init key: %v", err)
	}
	f.epoch.Erase()
	if _, err := s.NewWelcome(f.gi, f.epoch, nil, f.members); err == nil {
		t.Error("erased epoch secrets accepted")
	}
}

// TestJoinedRedacted: what a Welcome gives prints only redacted, and
// Erase erases it.
func TestJoinedRedacted(t *testing.T) {
	f := newWelcomeFixture(t, HotlinePQXWingAES256GCMSHA384Ed25519, 1, nil)
	j, err := f.process(0)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"path secret":     f.members[0].PathSecret,
		"joiner secret":   f.epoch.JoinerSecret(),
		"exporter secret": f.epoch.ExporterSecret(),
	}
	checkRedacted(t, secrets, j, *j, struct{ J *Joined }{j})
	j.Erase()
	if !isZeroBytes(j.PathSecret()) || !isZeroBytes(j.Epoch.ExporterSecret()) {
		t.Error("Erase left secrets behind")
	}
}

// TestConformancePassiveClientJoin joins the group of every vector of the
// three passive-client files with ProcessWelcome, holding the vector's
// external PSKs, and checks the initial epoch authenticator. The
// GroupInfo's signer key is read from the ratchet tree (out of band or in
// the ratchet_tree extension) without validating the tree; that, and
// following the epochs, are the group layer's.
func TestConformancePassiveClientJoin(t *testing.T) {
	for _, file := range []string{"passive-client-welcome", "passive-client-handling-commit", "passive-client-random"} {
		t.Run(file, func(t *testing.T) { checkPassiveClientJoin(t, file) })
	}
}

func checkPassiveClientJoin(t *testing.T, file string) {
	var vs []struct {
		CipherSuite  CipherSuite `json:"cipher_suite"`
		ExternalPSKs []struct {
			PSKID hexBytes `json:"psk_id"`
			PSK   hexBytes `json:"psk"`
		} `json:"external_psks"`
		KeyPackage                hexBytes  `json:"key_package"`
		InitPriv                  hexBytes  `json:"init_priv"`
		Welcome                   hexBytes  `json:"welcome"`
		RatchetTree               *hexBytes `json:"ratchet_tree"`
		InitialEpochAuthenticator hexBytes  `json:"initial_epoch_authenticator"`
	}
	loadVectors(t, file, &vs)
	c := newVectorCounts(file + ".json (joining)")
	withPSKs := 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d", i, v.CipherSuite), func(t *testing.T) {
			kp := decodeMLSMessage(t, v.KeyPackage, WireFormatKeyPackage).KeyPackage
			w := decodeMLSMessage(t, v.Welcome, WireFormatWelcome).Welcome
			initKey, err := s.ParseHPKEPrivateKey(vectorHPKEKey(s, v.InitPriv))
			if err != nil {
				t.Fatal(err)
			}
			lookup := func(id *PreSharedKeyID) ([]byte, error) {
				for _, p := range v.ExternalPSKs {
					if id.Type == PSKExternal && bytes.Equal(id.ID, p.PSKID) {
						return p.PSK, nil
					}
				}
				return nil, ErrUnknownPSK
			}
			signerKey := func(gi *GroupInfo) ([]byte, error) {
				var tree RatchetTree
				if v.RatchetTree != nil {
					if err := unmarshalWire(*v.RatchetTree, &tree); err != nil {
						return nil, err
					}
				} else if ok, err := decodeExtension(gi.Extensions, ExtRatchetTree, &tree); !ok || err != nil {
					return nil, fmt.Errorf("no ratchet tree: %v", err)
				}
				n := int(gi.Signer.node())
				if n >= len(tree) || tree[n] == nil || tree[n].Leaf == nil {
					return nil, ErrUnknownSender
				}
				return tree[n].Leaf.SignatureKey, nil
			}
			j, err := s.ProcessWelcome(w, kp, initKey, lookup, signerKey)
			if err != nil {
				t.Fatal(err)
			}
			if got := j.Epoch.EpochAuthenticator(); !bytes.Equal(got, v.InitialEpochAuthenticator) {
				t.Errorf("epoch authenticator %x, want %x", got, []byte(v.InitialEpochAuthenticator))
			}
			if len(j.PSKs) > 0 {
				withPSKs++
			}
		})
	}
	c.detail = fmt.Sprintf("%d of them with PSKs", withPSKs)
	c.log(t)
}
