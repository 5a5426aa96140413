package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/identity"
	"hotline/internal/mls"
)

const suite1 = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519

func TestKeyPackages(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
			var inv api.Invite
			if err := bob.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "bob@state.example"}, &inv); err != nil {
				t.Fatal(err)
			}
			bob2, res := e.enroll(t, inv.Code, "bob phone")
			var ar api.ApproveResponse
			if err := bob.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); err != nil {
				t.Fatal(err)
			}
			// Both of bob's devices publish, on the mandatory and the
			// post-quantum suite.
			for _, c := range []*client.Client{bob, bob2} {
				for _, cs := range []mls.CipherSuite{suite1, mls.HotlinePQXWingAES256GCMSHA384Ed25519} {
					stock, err := c.UploadKeyPackages(ctx, cs, 3, true)
					if err != nil {
						t.Fatal(err)
					}
					if len(stock) != 1 || stock[0].Ordinary != 3 || !stock[0].LastResort {
						t.Fatalf("stock after upload: %+v", stock)
					}
				}
			}
			// The admin claims one package of each of bob's devices.
			claimed, err := admin.ClaimKeyPackages(ctx, "bob@state.example", mls.HotlinePQXWingAES256GCMSHA384Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) != 2 {
				t.Fatalf("claimed %d packages, want one per device", len(claimed))
			}
			s, _ := mls.SuiteFor(mls.HotlinePQXWingAES256GCMSHA384Ed25519)
			for _, c := range claimed {
				m, err := mls.UnmarshalMLSMessage(c.KeyPackage)
				if err != nil {
					t.Fatal(err)
				}
				kp := m.KeyPackage
				if err := s.ValidateKeyPackage(kp, time.Now()); err != nil {
					t.Errorf("claimed package: %v", err)
				}
				// The leaf signs with the device key: the key the
				// transparency log shows.
				pub := ed25519.PublicKey(kp.LeafNode.SignatureKey)
				owner := bob
				if c.Device == bob2.Profile().Device {
					owner = bob2
				}
				if c.Device != owner.Profile().Device {
					t.Fatalf("claimed for unknown device %s", c.Device)
				}
				id, err := identity.ParsePublicKey(encodeB64(pub))
				if err != nil || id.DeviceID() != c.Device {
					t.Errorf("leaf signature key is not device %s's key", c.Device)
				}
				// The owner still holds the private halves.
				if _, err := owner.KeyPackageSecrets(s.MakeKeyPackageRef(kp.Marshal())); err != nil {
					t.Errorf("owner lacks the secrets: %v", err)
				}
			}
			// Claims consume ordinary packages, then fall back to the last
			// resort, and tell the device to top up.
			for range 3 {
				if _, err := admin.ClaimKeyPackages(ctx, "bob@state.example", suite1); err != nil {
					t.Fatal(err)
				}
			}
			cl, err := admin.ClaimKeyPackages(ctx, "bob@state.example", suite1)
			if err != nil || len(cl) != 2 || !cl[0].LastResort {
				t.Fatalf("claim after the ordinary ones: %+v %v", cl, err)
			}
			var st api.KeyPackageStock
			if err := bob.Do(ctx, "GET", "/v1/keypackages?cipher_suite=1", nil, &st); err != nil || st.Ordinary != 0 || !st.LastResort {
				t.Errorf("bob's stock: %+v %v", st, err)
			}
			if !sawEvent(t, bob, "keypackages.low") {
				t.Error("no keypackages.low event")
			}
			// Revoking a device withdraws its packages.
			var d api.Device
			if err := bob.Do(ctx, "POST", "/v1/devices/"+bob2.Profile().Device+"/revoke", nil, &d); err != nil {
				t.Fatal(err)
			}
			cl, err = admin.ClaimKeyPackages(ctx, "bob@state.example", mls.HotlinePQXWingAES256GCMSHA384Ed25519)
			if err != nil || len(cl) != 1 || cl[0].Device != bob.Profile().Device {
				t.Errorf("claim after revoking bob's phone: %+v %v", cl, err)
			}
			if _, err := admin.ClaimKeyPackages(ctx, "admin@state.example", suite1); !apierr.Is(err, apierr.KeyPackageMissing) {
				t.Errorf("claim from a user without packages: %v, want key_package_missing", err)
			}
		})
	}
}

// Claiming a key package is a contact: the policy decides.
func TestKeyPackageClaimFollowsPolicy(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	amb, _ := e.enroll(t, addUser(t, admin, "amb", "counterpart"), "amb")
	staff, _ := e.enroll(t, addUser(t, admin, "staff"), "staff")
	if _, err := staff.UploadKeyPackages(ctx, suite1, 2, false); err != nil {
		t.Fatal(err)
	}
	if _, err := amb.ClaimKeyPackages(ctx, "staff@state.example", suite1); !apierr.Is(err, apierr.ContactRefused) {
		t.Errorf("counterpart claiming staff's packages: %v, want contact_refused", err)
	}
	if _, err := admin.ClaimKeyPackages(ctx, "staff@state.example", suite1); err != nil {
		t.Errorf("admin claiming staff's packages: %v", err)
	}
}

// Uploads that are not the device's own, well-formed, current packages are
// refused whole, with a stable code.
func TestKeyPackageUploadRefused(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
	s, _ := mls.SuiteFor(suite1)
	credBytes := func(c *client.Client) []byte {
		me, err := c.Me(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(me.Credential)
	}
	life := mls.Lifetime{NotBefore: uint64(time.Now().Add(-time.Hour).Unix()), NotAfter: uint64(time.Now().Add(24 * time.Hour).Unix())}
	foreign, _ := s.GenerateSignatureKey(nil)
	wrap := func(kp *mls.KeyPackage) []byte {
		return (&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
	}
	// Signed by a key that is not bob's device key.
	kp, _, err := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: credBytes(bob)}, foreign, life, mls.DefaultCapabilities(suite1, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	devSigner := func(c *client.Client) mls.SignaturePrivateKey {
		sig, _, err := identity.ReadDeviceKeys(c.Dir())
		if err != nil {
			t.Fatal(err)
		}
		k, err := mls.NewEd25519Signer(sig.CryptoSigner())
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// Bob's key, but the admin's credential.
	kpOtherCred, _, _ := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: credBytes(admin)}, devSigner(bob), life, mls.DefaultCapabilities(suite1, nil, nil))
	// Outliving the credential.
	long := life
	long.NotAfter = uint64(time.Now().Add(365 * 24 * time.Hour).Unix())
	kpLong, _, _ := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: credBytes(bob)}, devSigner(bob), long, mls.DefaultCapabilities(suite1, nil, nil))
	// A plain identity instead of a credential.
	kpPlain, _, _ := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: []byte("bob")}, devSigner(bob), life, mls.DefaultCapabilities(suite1, nil, nil))
	good, _, _ := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: credBytes(bob)}, devSigner(bob), life, mls.DefaultCapabilities(suite1, nil, nil))
	for name, body := range map[string]api.KeyPackagesUpload{
		"foreign signature key":   {KeyPackages: [][]byte{wrap(kp)}},
		"another's credential":    {KeyPackages: [][]byte{wrap(kpOtherCred)}},
		"outlives the credential": {KeyPackages: [][]byte{wrap(kpLong)}},
		"not a credential":        {KeyPackages: [][]byte{wrap(kpPlain)}},
		"garbage":                 {KeyPackages: [][]byte{[]byte("not mls")}},
		"one bad among good":      {KeyPackages: [][]byte{wrap(good), wrap(kp)}},
	} {
		var stock []api.KeyPackageStock
		if err := bob.Do(ctx, "POST", "/v1/keypackages", body, &stock); !apierr.Is(err, apierr.KeyPackageInvalid) {
			t.Errorf("%s: %v, want key_package_invalid", name, err)
		}
	}
	var st api.KeyPackageStock
	if err := bob.Do(ctx, "GET", "/v1/keypackages?cipher_suite=1", nil, &st); err != nil || st.Ordinary != 0 {
		t.Errorf("refused uploads stored something: %+v %v", st, err)
	}
	var stock []api.KeyPackageStock
	if err := bob.Do(ctx, "POST", "/v1/keypackages", api.KeyPackagesUpload{KeyPackages: [][]byte{wrap(good)}}, &stock); err != nil {
		t.Fatalf("the good package alone: %v", err)
	}
	if err := bob.Do(ctx, "POST", "/v1/keypackages", api.KeyPackagesUpload{KeyPackages: [][]byte{wrap(good)}}, &stock); !apierr.Is(err, apierr.Conflict) {
		t.Errorf("the same package twice: %v, want conflict", err)
	}
}

// sawEvent reports whether c's event stream delivers an event of type typ
// within a few seconds.
func sawEvent(t *testing.T, c *client.Client, typ string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	found := false
	c.Events(ctx, func(m api.StreamMessage) error {
		if m.Type == api.StreamEvent && m.Event == typ {
			found = true
			return client.ErrStop
		}
		return nil
	})
	return found
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
