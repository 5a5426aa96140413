package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

type keyScheduleVector struct {
	CipherSuite       CipherSuite        `json:"cipher_suite"`
	GroupID           hexBytes           `json:"group_id"`
	InitialInitSecret hexBytes           `json:"initial_init_secret"`
	Epochs            []keyScheduleEpoch `json:"epochs"`
}

type keyScheduleEpoch struct {
	TreeHash                hexBytes `json:"tree_hash"`
	CommitSecret            hexBytes `json:"commit_secret"`
	PSKSecret               hexBytes `json:"psk_secret"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`

	GroupContext       hexBytes `json:"group_context"`
	JoinerSecret       hexBytes `json:"joiner_secret"`
	WelcomeSecret      hexBytes `json:"welcome_secret"`
	InitSecret         hexBytes `json:"init_secret"`
	SenderDataSecret   hexBytes `json:"sender_data_secret"`
	EncryptionSecret   hexBytes `json:"encryption_secret"`
	ExporterSecret     hexBytes `json:"exporter_secret"`
	EpochAuthenticator hexBytes `json:"epoch_authenticator"`
	ExternalSecret     hexBytes `json:"external_secret"`
	ConfirmationKey    hexBytes `json:"confirmation_key"`
	MembershipKey      hexBytes `json:"membership_key"`
	ResumptionPSK      hexBytes `json:"resumption_psk"`
	ExternalPub        hexBytes `json:"external_pub"`
	Exporter           struct {
		// The label is a string that happens to be hex: the generator
		// picks random bytes and uses their hex form as the label itself.
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Secret  hexBytes `json:"secret"`
	} `json:"exporter"`
}

// TestConformanceKeySchedule checks key-schedule.json: every epoch of every
// vector, each starting from the init_secret the previous one derived; the
// GroupContext encoding; and every secret the schedule derives, the
// exporter and external_pub included. Each epoch is derived three ways —
// from the init_secret, from the previous EpochSecrets with Next, and from
// the joiner_secret as a new member would — and all must agree.
func TestConformanceKeySchedule(t *testing.T) {
	var vs []keyScheduleVector
	loadVectors(t, "key-schedule", &vs)
	c := newVectorCounts("key-schedule.json")
	epochs := 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprint(v.CipherSuite), func(t *testing.T) {
			init := []byte(v.InitialInitSecret)
			var prev *EpochSecrets
			for n, e := range v.Epochs {
				epochs++
				gc := &GroupContext{
					Version:                 MLS10,
					CipherSuite:             v.CipherSuite,
					GroupID:                 v.GroupID,
					Epoch:                   uint64(n),
					TreeHash:                e.TreeHash,
					ConfirmedTranscriptHash: e.ConfirmedTranscriptHash,
				}
				if got := gc.Marshal(); !bytes.Equal(got, e.GroupContext) {
					t.Errorf("epoch %d: GroupContext = %x, want %x", n, got, []byte(e.GroupContext))
				}
				es, err := s.NewEpochSecrets(init, e.CommitSecret, e.PSKSecret, gc)
				if err != nil {
					t.Fatalf("epoch %d: %v", n, err)
				}
				checkEpoch(t, fmt.Sprintf("epoch %d", n), es, &v.Epochs[n], true)

				if prev != nil {
					next, err := prev.Next(e.CommitSecret, e.PSKSecret, gc)
					if err != nil {
						t.Fatalf("epoch %d: Next: %v", n, err)
					}
					checkEpoch(t, fmt.Sprintf("epoch %d by Next", n), next, &v.Epochs[n], false)
					prev.Erase()
				}
				joined, err := s.EpochSecretsFromJoiner(e.JoinerSecret, e.PSKSecret, gc)
				if err != nil {
					t.Fatalf("epoch %d: from joiner: %v", n, err)
				}
				checkEpoch(t, fmt.Sprintf("epoch %d from joiner", n), joined, &v.Epochs[n], false)

				if got, err := s.JoinerSecret(init, e.CommitSecret, gc); err != nil || !bytes.Equal(got, e.JoinerSecret) {
					t.Errorf("epoch %d: JoinerSecret = %x, %v", n, got, err)
				}
				if got, err := s.WelcomeSecret(e.JoinerSecret, e.PSKSecret); err != nil || !bytes.Equal(got, e.WelcomeSecret) {
					t.Errorf("epoch %d: WelcomeSecret = %x, %v", n, got, err)
				}
				init = es.InitSecret()
				prev = es
			}
		})
		// The X-Wing suites share these suites' KDF: the schedule, given the
		// same GroupContext bytes, must derive the same secrets. Only
		// external_pub, which depends on the KEM, differs.
		for _, pq := range pqSharingKDF(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x-with-suite-%d", uint16(pq), v.CipherSuite), func(t *testing.T) {
				s := mustSuite(t, pq)
				init := []byte(v.InitialInitSecret)
				for n, e := range v.Epochs {
					es, err := s.newEpochSecrets(init, e.CommitSecret, e.PSKSecret, e.GroupContext)
					if err != nil {
						t.Fatal(err)
					}
					checkEpoch(t, fmt.Sprintf("epoch %d", n), es, &v.Epochs[n], false)
					init = es.InitSecret()
				}
			})
			c.crossChecked(pq, v.CipherSuite, "vector except external_pub")
		}
	}
	c.detail = fmt.Sprintf("%d epochs", epochs)
	c.log(t)
}

func checkEpoch(t *testing.T, what string, es *EpochSecrets, e *keyScheduleEpoch, externalPub bool) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"joiner_secret", es.JoinerSecret(), e.JoinerSecret},
		{"welcome_secret", es.WelcomeSecret(), e.WelcomeSecret},
		{"init_secret", es.InitSecret(), e.InitSecret},
		{"sender_data_secret", es.SenderDataSecret(), e.SenderDataSecret},
		{"encryption_secret", es.EncryptionSecret(), e.EncryptionSecret},
		{"exporter_secret", es.ExporterSecret(), e.ExporterSecret},
		{"epoch_authenticator", es.EpochAuthenticator(), e.EpochAuthenticator},
		{"external_secret", es.ExternalSecret(), e.ExternalSecret},
		{"confirmation_key", es.ConfirmationKey(), e.ConfirmationKey},
		{"membership_key", es.MembershipKey(), e.MembershipKey},
		{"resumption_psk", es.ResumptionPSK(), e.ResumptionPSK},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s: %s = %x, want %x", what, f.name, f.got, f.want)
		}
	}
	x := e.Exporter
	if got, err := es.Export(x.Label, x.Context, x.Length); err != nil || !bytes.Equal(got, x.Secret) {
		t.Errorf("%s: MLS-Exporter = %x, %v, want %x", what, got, err, []byte(x.Secret))
	}
	if externalPub {
		k, err := es.ExternalKeyPair()
		if err != nil || !bytes.Equal(k.Public(), e.ExternalPub) {
			t.Errorf("%s: external_pub = %x, %v, want %x", what, k.Public(), err, []byte(e.ExternalPub))
		}
	}
}

// TestExternalInit: the joiner's and the members' sides of an external
// commit agree on the init_secret, for every suite.
func TestExternalInit(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		es, err := s.NewEpochSecrets(make([]byte, s.Nh()), nil, nil, &GroupContext{CipherSuite: cs})
		if err != nil {
			t.Fatal(err)
		}
		priv, err := es.ExternalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kemOut, initJoiner, err := s.ExternalInit(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		initMembers, err := s.ExternalInitSecret(priv, kemOut)
		if err != nil || !bytes.Equal(initJoiner, initMembers) || len(initJoiner) != s.Nh() {
			t.Errorf("%v: init_secret %x (joiner) and %x, %v (members)", s, initJoiner, initMembers, err)
		}
		kemOut[len(kemOut)/2] ^= 1
		if other, err := s.ExternalInitSecret(priv, kemOut); err == nil && bytes.Equal(other, initJoiner) {
			t.Errorf("%v: a changed kem_output gives the same init_secret", s)
		}
		if _, _, err := s.ExternalInit(priv.Public()[1:]); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%v: ExternalInit to a short key = %v", s, err)
		}
	}
}

func TestWelcomeKeyNonce(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		key, nonce, err := s.WelcomeKeyNonce(make([]byte, s.Nh()))
		if err != nil || len(key) != s.Nk() || len(nonce) != s.Nn() {
			t.Errorf("%v: WelcomeKeyNonce = %d-byte key, %d-byte nonce, %v", s, len(key), len(nonce), err)
		}
		want, _ := s.ExpandWithLabel(make([]byte, s.Nh()), "key", nil, s.Nk())
		if !bytes.Equal(key, want) {
			t.Errorf("%v: welcome key is not ExpandWithLabel(welcome_secret, \"key\", \"\", Nk)", s)
		}
	}
}

func TestKeyScheduleMisuse(t *testing.T) {
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if _, err := s.NewEpochSecrets(make([]byte, 32), nil, nil, &GroupContext{CipherSuite: MLS128DHKEMP256AES128GCMSHA256P256}); err == nil {
		t.Error("a GroupContext of another suite was accepted")
	}
	if _, err := s.NewEpochSecrets(make([]byte, 32), nil, nil, nil); err == nil {
		t.Error("a nil GroupContext was accepted")
	}
	gc := &GroupContext{CipherSuite: s.ID()}
	es, err := s.NewEpochSecrets(make([]byte, 32), nil, nil, gc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.Export("l", nil, 1<<16); err == nil {
		t.Error("an export of 2^16 bytes was accepted")
	}
	if _, err := es.Export("l", nil, 255*32+1); err == nil {
		t.Error("an export longer than 255·Nh was accepted")
	}

	// The secret tree consumes encryption_secret.
	enc := es.EncryptionSecret()
	tree, err := es.SecretTree(2)
	if err != nil {
		t.Fatal(err)
	}
	if es.EncryptionSecret() != nil {
		t.Error("encryption_secret still readable after SecretTree")
	}
	if _, err := es.SecretTree(2); err == nil {
		t.Error("a second SecretTree from the same epoch succeeded")
	}
	fresh, _ := s.NewSecretTree(enc, 2)
	a, _ := tree.Next(1, HandshakeRatchet)
	b, _ := fresh.Next(1, HandshakeRatchet)
	if !bytes.Equal(a.Key(), b.Key()) {
		t.Error("EpochSecrets.SecretTree is not rooted at encryption_secret")
	}

	// Erase leaves nothing usable.
	es.Erase()
	if !bytes.Equal(es.ExporterSecret(), make([]byte, 32)) || !bytes.Equal(es.InitSecret(), make([]byte, 32)) {
		t.Error("Erase left secrets behind")
	}
	if _, err := es.Next(nil, nil, gc); err == nil {
		t.Error("Next after Erase succeeded")
	}
	if _, err := es.Export("l", nil, 32); err == nil {
		t.Error("Export after Erase succeeded")
	}
	if _, err := es.ExternalKeyPair(); err == nil {
		t.Error("ExternalKeyPair after Erase succeeded")
	}
	if _, _, err := es.SenderDataKeyNonce(nil); err == nil {
		t.Error("SenderDataKeyNonce after Erase succeeded")
	}
}

// TestEpochSecretsRedacted: an epoch's secrets print only redacted.
func TestEpochSecretsRedacted(t *testing.T) {
	s := mustSuite(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	es, err := s.NewEpochSecrets(bytes.Repeat([]byte{9}, s.Nh()), nil, nil, &GroupContext{CipherSuite: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"joiner_secret":     es.JoinerSecret(),
		"welcome_secret":    es.WelcomeSecret(),
		"exporter_secret":   es.ExporterSecret(),
		"init_secret":       es.InitSecret(),
		"encryption_secret": es.EncryptionSecret(),
		"confirmation_key":  es.ConfirmationKey(),
		"membership_key":    es.MembershipKey(),
	}
	type holder struct {
		p *EpochSecrets
		v EpochSecrets
	}
	checkRedacted(t, secrets, es, *es, holder{es, *es}, &holder{es, *es})
}

type transcriptHashVector struct {
	CipherSuite                  CipherSuite `json:"cipher_suite"`
	ConfirmationKey              hexBytes    `json:"confirmation_key"`
	AuthenticatedContent         hexBytes    `json:"authenticated_content"`
	ConfirmedTranscriptHashAfter hexBytes    `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashBefore  hexBytes    `json:"interim_transcript_hash_before"`
	InterimTranscriptHashAfter   hexBytes    `json:"interim_transcript_hash_after"`
}

// TestConformanceConfirmationTag checks the confirmation tag against
// transcript-hashes.json. Decoding the AuthenticatedContent is another
// layer's work; the confirmation tag is its last field (MAC
// confirmation_tag, an opaque<V> of Nh bytes), so it is read from the end.
func TestConformanceConfirmationTag(t *testing.T) {
	var vs []transcriptHashVector
	loadVectors(t, "transcript-hashes", &vs)
	c := newVectorCounts("transcript-hashes.json (confirmation tags)")
	for _, v := range vs {
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		var w Writer
		w.Varint(s.Nh())
		prefix := w.Bytes()
		ac := v.AuthenticatedContent
		if len(ac) < len(prefix)+s.Nh() || !bytes.Equal(ac[len(ac)-s.Nh()-len(prefix):len(ac)-s.Nh()], prefix) {
			t.Fatalf("suite %d: authenticated_content does not end with an Nh-byte MAC", v.CipherSuite)
		}
		tag := ac[len(ac)-s.Nh():]
		if got := s.ConfirmationTag(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter); !bytes.Equal(got, tag) {
			t.Errorf("suite %d: ConfirmationTag = %x, want %x", v.CipherSuite, got, tag)
		}
		if err := s.VerifyConfirmationTag(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, tag); err != nil {
			t.Errorf("suite %d: VerifyConfirmationTag: %v", v.CipherSuite, err)
		}
		if err := s.VerifyConfirmationTag(v.ConfirmationKey, v.InterimTranscriptHashBefore, tag); !errors.Is(err, ErrBadMAC) {
			t.Errorf("suite %d: VerifyConfirmationTag over another hash = %v", v.CipherSuite, err)
		}
	}
	c.log(t)
}

// TestMembershipTag: the membership tag is the MAC under membership_key,
// and EpochSecrets and Suite agree.
func TestMembershipTag(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		es, err := s.NewEpochSecrets(make([]byte, s.Nh()), nil, nil, &GroupContext{CipherSuite: cs})
		if err != nil {
			t.Fatal(err)
		}
		tbm := []byte("an AuthenticatedContentTBM")
		tag := es.MembershipTag(tbm)
		if !bytes.Equal(tag, s.MAC(es.MembershipKey(), tbm)) {
			t.Errorf("%v: membership tag is not MAC(membership_key, tbm)", s)
		}
		if err := es.VerifyMembershipTag(tbm, tag); err != nil {
			t.Errorf("%v: %v", s, err)
		}
		if err := es.VerifyMembershipTag(append(tbm, 0), tag); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%v: VerifyMembershipTag over other content = %v", s, err)
		}
		ctag := es.ConfirmationTag([]byte("cth"))
		if err := es.VerifyConfirmationTag([]byte("cth"), ctag); err != nil {
			t.Errorf("%v: %v", s, err)
		}
		if bytes.Equal(ctag, es.MembershipTag([]byte("cth"))) {
			t.Errorf("%v: confirmation and membership keys coincide", s)
		}
	}
}
