package conversation

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/tlog"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fixture struct {
	issuer  identity.OrgKey
	devices *tlog.DeviceSet
	index   int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	iss, _, err := identity.GenerateOrgKey(nil, identity.IssuerKeyName("state.example"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{issuer: iss, devices: tlog.NewDeviceSet()}
}

// device makes a device of user with a credential at the given clearance,
// logs its enrolment (and approval unless pending), and returns the leaf
// of a key package it made.
func (f *fixture) device(t *testing.T, user string, c identity.Clearance, comps identity.Compartments, status string) *mls.LeafNode {
	t.Helper()
	sig, _ := identity.GenerateSigningKey(nil)
	kem, _ := identity.GenerateKEMKey(nil)
	u, _ := identity.ParseUserID(user)
	cred := identity.Credential{User: u, Device: sig.Public().DeviceID(), SigKey: sig.Public(), KEMKey: kem.PublicBytes(),
		Roles: identity.Roles{}, Clearance: c, Compartments: comps, Issued: now.Add(-time.Hour), Expires: now.Add(7 * 24 * time.Hour)}
	signed, err := cred.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f.log(t, tlog.Entry{Type: tlog.TypeDeviceEnrol, Time: 1, User: user, Device: cred.Device, SigKey: sig.Public().String(),
		KEMKey: base64.StdEncoding.EncodeToString(kem.PublicBytes()), Reason: tlog.StatusPending})
	if status != tlog.StatusPending {
		f.log(t, tlog.Entry{Type: tlog.TypeDeviceApprove, Time: 1, User: user, Device: cred.Device, Approvers: []string{"sec@state.example"}})
	}
	if status == tlog.StatusRevoked {
		f.log(t, tlog.Entry{Type: tlog.TypeDeviceRevoke, Time: 1, User: user, Device: cred.Device, Reason: "lost"})
	}
	return f.leaf(t, sig, signed)
}

func (f *fixture) leaf(t *testing.T, sig identity.SigningKey, credential []byte) *mls.LeafNode {
	t.Helper()
	s, _ := mls.SuiteFor(mls.HotlinePQXWingAES256GCMSHA384Ed25519)
	signer, err := mls.NewEd25519Signer(sig.CryptoSigner())
	if err != nil {
		t.Fatal(err)
	}
	life := mls.Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(time.Hour).Unix())}
	kp, _, err := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: credential}, signer, life, mls.DefaultCapabilities(s.ID(), nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	return &kp.LeafNode
}

func (f *fixture) log(t *testing.T, e tlog.Entry) {
	t.Helper()
	if err := f.devices.Apply(f.index, e); err != nil {
		t.Fatal(err)
	}
	f.index++
}

func TestCheckMember(t *testing.T) {
	f := newFixture(t)
	secret := Classification{Level: identity.Secret, Compartments: identity.Compartments{"ALPHA"}}
	issuers := note.VerifierList(f.issuer.Verifier)
	ok := f.device(t, "pm@state.example", identity.TopSecret, identity.Compartments{"ALPHA", "BRAVO"}, tlog.StatusActive)
	if m, err := CheckMember(ok, secret, issuers, f.devices, now); err != nil || m.Credential.User.String() != "pm@state.example" {
		t.Fatalf("a cleared, logged member: %v", err)
	}

	// The 2025 case: an outsider without clearance.
	outsider := f.device(t, "journalist@state.example", identity.Unclassified, nil, tlog.StatusActive)
	lowComp := f.device(t, "staff@state.example", identity.Secret, identity.Compartments{"BRAVO"}, tlog.StatusActive)
	pending := f.device(t, "new@state.example", identity.Secret, identity.Compartments{"ALPHA"}, tlog.StatusPending)
	revoked := f.device(t, "gone@state.example", identity.Secret, identity.Compartments{"ALPHA"}, tlog.StatusRevoked)

	// A credential lifted from one device onto a leaf signed by another key.
	other, _ := identity.GenerateSigningKey(nil)
	stolen := f.leaf(t, other, ok.Credential.Identity)

	// A credential from an issuer that is not the organisation's.
	rogue, _, _ := identity.GenerateOrgKey(nil, identity.IssuerKeyName("state.example"))
	g := &fixture{issuer: rogue, devices: f.devices, index: f.index}
	forged := g.device(t, "spy@state.example", identity.TopSecret, identity.Compartments{"ALPHA"}, tlog.StatusActive)
	f.index = g.index

	// A device the log never saw (the server added it silently).
	h := &fixture{issuer: f.issuer, devices: tlog.NewDeviceSet()}
	unlogged := h.device(t, "ghost@state.example", identity.TopSecret, identity.Compartments{"ALPHA"}, tlog.StatusActive)

	notBasic := *ok
	notBasic.Credential = mls.Credential{Type: mls.CredentialX509, Certificates: [][]byte{{1}}}

	for name, tc := range map[string]struct {
		leaf *mls.LeafNode
		at   time.Time
	}{
		"no clearance":             {outsider, now},
		"missing compartment":      {lowComp, now},
		"pending device":           {pending, now},
		"revoked device":           {revoked, now},
		"credential of another":    {stolen, now},
		"forged issuer":            {forged, now},
		"not in the log":           {unlogged, now},
		"credential expired":       {ok, now.Add(8 * 24 * time.Hour)},
		"not a Hotline credential": {&notBasic, now},
	} {
		if _, err := CheckMember(tc.leaf, secret, issuers, f.devices, tc.at); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := CheckMember(ok, secret, issuers, nil, now); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("without a verified log: %v", err)
	}
	// A member already in the tree is identified without a clock (expiry is
	// identity.VerifyCredential's test); every other check still applies.
	if _, err := CheckExistingMember(ok, secret, issuers, f.devices); err != nil {
		t.Errorf("an existing member with an expired credential: %v", err)
	}
	for name, leaf := range map[string]*mls.LeafNode{"no clearance": outsider, "revoked device": revoked, "forged issuer": forged,
		"not in the log": unlogged, "credential of another": stolen, "not a Hotline credential": &notBasic} {
		if _, err := CheckExistingMember(leaf, secret, issuers, f.devices); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("existing member, %s: %v, want ErrNotAllowed", name, err)
		}
	}
	// An UNCLASSIFIED conversation admits the outsider.
	if _, err := CheckMember(outsider, Classification{}, issuers, f.devices, now); err != nil {
		t.Errorf("outsider in an unclassified conversation: %v", err)
	}
}

func TestClassificationEncoding(t *testing.T) {
	c := Classification{Level: identity.TopSecret, Compartments: identity.Compartments{"ALPHA", "BRAVO"}, ArchiveRequired: true}
	got, err := UnmarshalClassification(c.Marshal())
	if err != nil || got.Level != c.Level || got.Compartments.String() != "ALPHA,BRAVO" || !got.ArchiveRequired {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	fromCtx, err := FromGroupContext([]mls.Extension{{Type: mls.ExtRequiredCapabilities, Data: []byte{0}}, {Type: ExtClassification, Data: c.Marshal()}})
	if err != nil || fromCtx.Level != identity.TopSecret {
		t.Fatalf("from group context: %+v %v", fromCtx, err)
	}
	if _, err := FromGroupContext(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("no extension: %v", err)
	}
	unsorted := func() []byte {
		var w mls.Writer
		w.U8(1)
		w.Vector(func(w *mls.Writer) { w.Opaque([]byte("BRAVO")); w.Opaque([]byte("ALPHA")) })
		w.Bool(false)
		return w.Bytes()
	}()
	for name, b := range map[string][]byte{
		"empty":           nil,
		"level 9":         {9, 0, 0},
		"bad bool":        {1, 0, 2},
		"trailing":        {1, 0, 0, 0},
		"bad compartment": {1, 2, 1, 'a', 0},
		"unsorted":        unsorted,
	} {
		if _, err := UnmarshalClassification(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzUnmarshalClassification(f *testing.F) {
	f.Add(Classification{Level: identity.Secret, Compartments: identity.Compartments{"A"}}.Marshal())
	f.Add([]byte{3, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalClassification(b)
		if err != nil {
			return
		}
		if string(c.Marshal()) != string(b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, c, c.Marshal())
		}
	})
}

func TestExternalSenders(t *testing.T) {
	mk := func() identity.KeySet {
		iss, _, _ := identity.GenerateOrgKey(nil, identity.IssuerKeyName("state.example"))
		lg, _, _ := identity.GenerateOrgKey(nil, identity.LogKeyName("state.example"))
		dl, _, _ := identity.GenerateOrgKey(nil, identity.DeliveryKeyName("state.example"))
		return identity.KeySet{Org: "state.example", Serial: 1, Issuer: iss.VerifierKey, Log: lg.VerifierKey, Delivery: dl.VerifierKey, Issued: now}
	}
	ks1, ks2 := mk(), mk()
	ds1, err := DeliveryService(ks1)
	if err != nil {
		t.Fatal(err)
	}
	ds2, _ := DeliveryService(ks2)
	ext := func(s ...mls.ExternalSender) []mls.Extension {
		return []mls.Extension{mls.ExternalSendersExtension(mls.ExternalSenders(s))}
	}
	if err := CheckExternalSenders(ext(ds1), []identity.KeySet{ks1}); err != nil {
		t.Errorf("the delivery service: %v", err)
	}
	// After a rotation the client knows both key sets; a group made before
	// it still names the old key.
	if err := CheckExternalSenders(ext(ds1), []identity.KeySet{ks1, ks2}); err != nil {
		t.Errorf("the old delivery key after a rotation: %v", err)
	}
	for name, exts := range map[string][]mls.Extension{
		"none":                  nil,
		"another key":           ext(ds2),
		"two senders":           ext(ds1, ds1),
		"right key, wrong name": ext(mls.ExternalSender{SignatureKey: ds1.SignatureKey, Credential: mls.Credential{Type: mls.CredentialBasic, Identity: []byte("eve")}}),
		"malformed":             {{Type: mls.ExtExternalSenders, Data: []byte{9}}},
	} {
		if err := CheckExternalSenders(exts, []identity.KeySet{ks1}); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", name, err)
		}
	}
}
