package identity

import (
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

const testOrg = "state.example"

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// testRand returns a deterministic reader; different seeds give different streams.
func testRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

// fixture is a small organisation: its four note keys, a device and the
// device's credential and the key set, all deterministic.
type fixture struct {
	root, issuer, log, delivery OrgKey
	sig                         SigningKey
	kem                         KEMKey
	cred                        Credential
	ks                          KeySet
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	r := testRand(1)
	var f fixture
	f.root = genOrgKey(t, r, RootKeyName(testOrg))
	f.issuer = genOrgKey(t, r, IssuerKeyName(testOrg))
	f.log = genOrgKey(t, r, LogKeyName(testOrg))
	f.delivery = genOrgKey(t, r, DeliveryKeyName(testOrg))
	var err error
	if f.sig, err = GenerateSigningKey(r); err != nil {
		t.Fatal(err)
	}
	if f.kem, err = GenerateKEMKey(r); err != nil {
		t.Fatal(err)
	}
	f.cred = Credential{
		User:         UserID{Name: "kim", Org: testOrg},
		Device:       f.sig.Public().DeviceID(),
		SigKey:       f.sig.Public(),
		KEMKey:       f.kem.PublicBytes(),
		Roles:        Roles{RolePrincipal, RoleNoteTaker},
		Clearance:    TopSecret,
		Compartments: Compartments{"ALPHA", "BRAVO"},
		Issued:       t0,
		Expires:      t0.Add(90 * 24 * time.Hour),
	}
	f.ks = KeySet{Org: testOrg, Serial: 1, Issuer: f.issuer.VerifierKey, Log: f.log.VerifierKey, Delivery: f.delivery.VerifierKey, Issued: t0}
	return f
}

func genOrgKey(t testing.TB, r io.Reader, name string) OrgKey {
	t.Helper()
	k, _, err := GenerateOrgKey(r, name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signText signs an arbitrary note text, bypassing the validation in
// Credential.Sign and KeySet.Sign, to feed malformed bodies to the parsers.
func signText(t testing.TB, text string, k OrgKey) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// wantErr fails t unless err wraps target.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one wrapping %v", err, target)
	}
}
