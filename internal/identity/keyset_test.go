package identity

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
)

func TestKeySetRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.ks.Issued = t0.Add(999 * time.Millisecond).In(time.FixedZone("X", 3600)) // written as t0
	msg, err := f.ks.Sign(f.root.Signer)
	if err != nil {
		t.Fatal(err)
	}
	wantText := fmt.Sprintf("hotline-keyset v1\norg state.example\nserial 1\nissuer %s\nlog %s\ndelivery %s\nissued 2026-01-02T15:04:05Z\n", f.issuer.VerifierKey, f.log.VerifierKey, f.delivery.VerifierKey)
	if !strings.HasPrefix(string(msg), wantText+"\n— state.example/root ") {
		t.Fatalf("signed key set:\n%s\nwant text:\n%s", msg, wantText)
	}
	got, err := OpenKeySet(msg, f.root.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	f.ks.Issued = t0
	if diff := cmp.Diff(f.ks, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	iv, err := got.IssuerVerifier()
	if err != nil || iv.Name() != IssuerKeyName(testOrg) || iv.KeyHash() != f.issuer.Verifier.KeyHash() {
		t.Fatalf("IssuerVerifier: %v, %v", iv, err)
	}
	lv, err := got.LogVerifier()
	if err != nil || lv.Name() != LogKeyName(testOrg) || lv.KeyHash() != f.log.Verifier.KeyHash() {
		t.Fatalf("LogVerifier: %v, %v", lv, err)
	}
	dv, err := got.DeliveryVerifier()
	if err != nil || dv.Name() != DeliveryKeyName(testOrg) || dv.KeyHash() != f.delivery.Verifier.KeyHash() {
		t.Fatalf("DeliveryVerifier: %v, %v", dv, err)
	}
	// The delivery key's raw Ed25519 key signs as its crypto.Signer does.
	pub, err := got.DeliveryPublicKey()
	if err != nil || len(pub) != 32 {
		t.Fatalf("DeliveryPublicKey: %x, %v", pub, err)
	}
	cs, err := f.delivery.CryptoSigner()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := cs.Sign(nil, []byte("remove device"), crypto.Hash(0))
	if err != nil || !ed25519.Verify(pub, []byte("remove device"), sig) {
		t.Fatalf("delivery signer: %v", err)
	}
}

func TestKeySetSignValidates(t *testing.T) {
	f := newFixture(t)
	other := genOrgKey(t, testRand(50), IssuerKeyName("other.example"))
	sameKey := sameKeyAs(t, f.issuer.VerifierKey, LogKeyName(testOrg))
	tests := map[string]func(*KeySet){
		"bad org":                func(ks *KeySet) { ks.Org = "State.Example" },
		"serial 0":               func(ks *KeySet) { ks.Serial = 0 },
		"issuer not a key":       func(ks *KeySet) { ks.Issuer = "nonsense" },
		"issuer private":         func(ks *KeySet) { ks.Issuer = "PRIVATE+KEY+" + ks.Issuer },
		"issuer of other org":    func(ks *KeySet) { ks.Issuer = other.VerifierKey },
		"issuer named as log":    func(ks *KeySet) { ks.Issuer = ks.Log },
		"log named as issuer":    func(ks *KeySet) { ks.Log = ks.Issuer },
		"log is the root":        func(ks *KeySet) { ks.Log = f.root.VerifierKey },
		"same key for both":      func(ks *KeySet) { ks.Log = sameKey },
		"delivery is the issuer": func(ks *KeySet) { ks.Delivery = sameKeyAs(t, f.issuer.VerifierKey, DeliveryKeyName(testOrg)) },
		"delivery misnamed":      func(ks *KeySet) { ks.Delivery = sameKeyAs(t, f.delivery.VerifierKey, "state.example/post") },
		"no delivery":            func(ks *KeySet) { ks.Delivery = "" },
		"CR in issuer":           func(ks *KeySet) { ks.Issuer = ks.Issuer[:30] + "\r" + ks.Issuer[30:] },
		"LF in log":              func(ks *KeySet) { ks.Log = ks.Log[:30] + "\n" + ks.Log[30:] },
		"zero issued":            func(ks *KeySet) { ks.Issued = time.Time{} },
		"year 10000":             func(ks *KeySet) { ks.Issued = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"newline in org":         func(ks *KeySet) { ks.Org = "state.example\nserial 9" },
		"org of another's key":   func(ks *KeySet) { ks.Org = "other.example" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			ks := f.ks
			mutate(&ks)
			_, err := ks.Sign(f.root.Signer)
			wantErr(t, err, ErrInvalid)
		})
	}
	for _, s := range []note.Signer{nil, f.issuer.Signer, genOrgKey(t, testRand(51), RootKeyName("other.example")).Signer} {
		if _, err := f.ks.Sign(s); err == nil {
			t.Errorf("signed with %v", s)
		}
	}
}

// sameKeyAs returns vkey's public key under another name.
func sameKeyAs(t *testing.T, vkey, name string) string {
	t.Helper()
	b, _ := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	out, err := note.NewEd25519VerifierKey(name, b[1:]) // after the algorithm byte
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenKeySetSignatures(t *testing.T) {
	f := newFixture(t)
	msg, err := f.ks.Sign(f.root.Signer)
	if err != nil {
		t.Fatal(err)
	}
	// A key set for state.example signed by a root key of the wrong name.
	otherRoot := genOrgKey(t, testRand(52), RootKeyName("other.example"))
	tests := map[string]struct {
		msg  []byte
		root note.Verifier
	}{
		"wrong root key, same name": {msg, genOrgKey(t, testRand(53), RootKeyName(testOrg)).Verifier},
		"issuer as root":            {msg, f.issuer.Verifier},
		"nil root":                  {msg, nil},
		"body changed":              {[]byte(strings.Replace(string(msg), "serial 1", "serial 2", 1)), f.root.Verifier},
		"signature changed":         {[]byte(strings.Replace(string(msg), "\n— state.example/root ", "\n— state.example/root A", 1)), f.root.Verifier},
		"no signature":              {[]byte(f.ks.body()), f.root.Verifier},
		"root of other org":         {signText(t, f.ks.body(), otherRoot), otherRoot.Verifier},
		"oversized":                 {append([]byte(strings.Repeat("x", maxSignedSize)), msg...), f.root.Verifier},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := OpenKeySet(tt.msg, tt.root)
			wantErr(t, err, ErrInvalid)
		})
	}
}

func TestOpenKeySetMalformed(t *testing.T) {
	f := newFixture(t)
	good := f.ks.body()
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in key set", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := map[string]string{
		"header":           replace("hotline-keyset v1", "hotline-keyset v2"),
		"credential":       replace("hotline-keyset v1", "hotline-credential v1"),
		"missing line":     replace("serial 1\n", ""),
		"extra line":       good + "extra 1\n",
		"blank line":       replace("serial 1\n", "serial 1\n\n"),
		"reordered":        replace("org state.example\nserial 1\n", "serial 1\norg state.example\n"),
		"upper-case org":   replace("org state.example", "org State.example"),
		"serial 0":         replace("serial 1", "serial 0"),
		"serial -1":        replace("serial 1", "serial -1"),
		"serial +1":        replace("serial 1", "serial +1"),
		"serial 01":        replace("serial 1", "serial 01"),
		"serial overflow":  replace("serial 1", "serial 9223372036854775808"),
		"serial hex":       replace("serial 1", "serial 0x1"),
		"issuer garbage":   replace("issuer "+f.issuer.VerifierKey, "issuer garbage"),
		"issuer with CR":   replace("issuer "+f.issuer.VerifierKey, "issuer "+f.issuer.VerifierKey[:30]+"\r"+f.issuer.VerifierKey[30:]),
		"log as issuer":    replace("issuer "+f.issuer.VerifierKey, "issuer "+f.log.VerifierKey),
		"time offset":      replace("2026-01-02T15:04:05Z", "2026-01-02T16:04:05+01:00"),
		"time fraction":    replace("2026-01-02T15:04:05Z", "2026-01-02T15:04:05.0Z"),
		"time lower z":     replace("2026-01-02T15:04:05Z", "2026-01-02T15:04:05z"),
		"date only":        replace("2026-01-02T15:04:05Z", "2026-01-02"),
		"trailing space":   replace("serial 1\n", "serial 1 \n"),
		"double space":     replace("serial 1", "serial  1"),
		"tab":              replace("serial 1", "serial\t1"),
		"org of other key": replace("org state.example", "org other.example"),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseKeySet(text)
			wantErr(t, err, ErrInvalid)
			if strings.HasSuffix(text, "\n") && !strings.Contains(text, "\t") {
				_, err = OpenKeySet(signText(t, text, f.root), f.root.Verifier)
				wantErr(t, err, ErrInvalid)
			}
		})
	}
}

func FuzzOpenKeySet(f *testing.F) {
	fx := newFixture(f)
	msg, err := fx.ks.Sign(fx.root.Signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(fx.ks.body()))
	f.Add([]byte("hotline-keyset v1\norg a.b\nserial 1\nissuer x\nlog y\nissued 2026-01-02T15:04:05Z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ks, err := OpenKeySet(b, fx.root.Verifier); err != nil {
			wantErr(t, err, ErrInvalid)
		} else if again, err := ks.Sign(fx.root.Signer); err != nil || ks.body() != string(again[:len(ks.body())]) {
			t.Fatalf("opened key set does not sign again: %v", err)
		}
		// The parser on its own, without the signature check.
		ks, err := parseKeySet(string(b))
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		if ks.body() != string(b) || ks.validate() != nil {
			t.Fatalf("parsed %+v from %q", ks, b)
		}
	})
}
