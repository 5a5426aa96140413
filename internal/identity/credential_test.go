package identity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/mod/sumdb/note"
)

func TestCredentialRoundTrip(t *testing.T) {
	f := newFixture(t)
	issuers := note.VerifierList(f.issuer.Verifier)
	tests := map[string]func(*Credential){
		"full":            func(*Credential) {},
		"no roles":        func(c *Credential) { c.Roles, c.Compartments, c.Clearance = nil, nil, Unclassified },
		"all roles":       func(c *Credential) { c.Roles = AllRoles },
		"one second":      func(c *Credential) { c.Expires = c.Issued.Add(time.Second) },
		"max name":        func(c *Credential) { c.User.Name = strings.Repeat("a", maxNameLen) },
		"32 compartments": func(c *Credential) { c.Compartments = manyCompartments(MaxCompartments) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := f.cred
			mutate(&c)
			msg, err := c.Sign(f.issuer.Signer)
			if err != nil {
				t.Fatal(err)
			}
			got, err := OpenCredential(msg, issuers, c.Issued)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func manyCompartments(n int) Compartments {
	var cs Compartments
	for i := range n {
		cs = append(cs, fmt.Sprintf("C%02d", i))
	}
	return cs
}

// TestCredentialFormat pins the signed text, and shows that Sign writes
// roles, compartments and times in their canonical forms.
func TestCredentialFormat(t *testing.T) {
	f := newFixture(t)
	c := f.cred
	c.Roles = Roles{RoleNoteTaker, RolePrincipal, RoleNoteTaker}
	c.Compartments = Compartments{"BRAVO", "ALPHA"}
	c.Issued = t0.Add(500 * time.Millisecond).In(time.FixedZone("EST", -5*3600))
	msg, err := c.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`hotline-credential v1
user kim@state.example
device %s
sig %s
kem %s
roles principal,note-taker
clearance top-secret
compartments ALPHA,BRAVO
issued 2026-01-02T15:04:05Z
expires 2026-04-02T15:04:05Z

— state.example/issuer `, f.cred.Device, f.cred.SigKey, base64.StdEncoding.EncodeToString(f.cred.KEMKey))
	if !strings.HasPrefix(string(msg), want) {
		t.Fatalf("signed credential:\n%s\nwant prefix:\n%s", msg, want)
	}
	got, err := OpenCredential(msg, note.VerifierList(f.issuer.Verifier), t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.cred, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestCredentialSignValidates(t *testing.T) {
	f := newFixture(t)
	other, _ := GenerateSigningKey(testRand(60))
	var smallOrderKey PublicKey
	smallOrderKey[0] = 1 // the identity
	tests := map[string]func(*Credential){
		"zero user":             func(c *Credential) { c.User = UserID{} },
		"upper-case user":       func(c *Credential) { c.User.Name = "Kim" },
		"newline in org":        func(c *Credential) { c.User.Org = "state.example\nroles admin" },
		"device of another key": func(c *Credential) { c.Device = other.Public().DeviceID() },
		"sig key of another":    func(c *Credential) { c.SigKey = other.Public() },
		"no device":             func(c *Credential) { c.Device = "" },
		"small-order sig key":   func(c *Credential) { c.SigKey, c.Device = smallOrderKey, smallOrderKey.DeviceID() },
		"no kem key":            func(c *Credential) { c.KEMKey = nil },
		"short kem key":         func(c *Credential) { c.KEMKey = c.KEMKey[:100] },
		"unknown role":          func(c *Credential) { c.Roles = Roles{"king"} },
		"clearance 4":           func(c *Credential) { c.Clearance = 4 },
		"clearance -1":          func(c *Credential) { c.Clearance = -1 },
		"lower-case comp":       func(c *Credential) { c.Compartments = Compartments{"alpha"} },
		"33 compartments":       func(c *Credential) { c.Compartments = manyCompartments(MaxCompartments + 1) },
		"compartment \"-\"":     func(c *Credential) { c.Compartments = Compartments{"-"} }, // would read back as none
		"expires == issued":     func(c *Credential) { c.Expires = c.Issued },
		"expires in same sec":   func(c *Credential) { c.Expires = c.Issued.Add(999 * time.Millisecond) },
		"expires before issued": func(c *Credential) { c.Expires = c.Issued.Add(-time.Hour) },
		"zero issued":           func(c *Credential) { c.Issued = time.Time{} },
		"year 10000":            func(c *Credential) { c.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year 10000 in UTC":     func(c *Credential) { c.Expires = time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := f.cred
			mutate(&c)
			_, err := c.Sign(f.issuer.Signer)
			wantErr(t, err, ErrInvalid)
		})
	}
	for _, s := range []note.Signer{nil, f.root.Signer, genOrgKey(t, testRand(61), IssuerKeyName("other.example")).Signer} {
		if _, err := f.cred.Sign(s); err == nil {
			t.Errorf("signed with %v", s)
		}
	}
}

func TestOpenCredentialSignatures(t *testing.T) {
	f := newFixture(t)
	msg, err := f.cred.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	otherIssuer := genOrgKey(t, testRand(62), IssuerKeyName("other.example"))
	sameName := genOrgKey(t, testRand(63), IssuerKeyName(testOrg))
	// A second issuer key known to the verifier: a note's other signatures
	// do not matter as long as the right one is there.
	cosigned, err := note.Sign(&note.Note{Text: f.cred.body()}, otherIssuer.Signer, f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCredential(cosigned, note.VerifierList(otherIssuer.Verifier, f.issuer.Verifier), t0); err != nil {
		t.Fatalf("co-signed: %v", err)
	}
	tests := map[string]struct {
		msg     []byte
		issuers note.Verifiers
	}{
		"no issuers":                 {msg, nil},
		"other key, same name":       {msg, note.VerifierList(sameName.Verifier)},
		"root key":                   {signText(t, f.cred.body(), f.root), note.VerifierList(f.root.Verifier)},
		"other org's issuer":         {signText(t, f.cred.body(), otherIssuer), note.VerifierList(otherIssuer.Verifier, f.issuer.Verifier)},
		"body changed":               {bytes.Replace(msg, []byte("top-secret"), []byte("secret"), 1), note.VerifierList(f.issuer.Verifier)},
		"role added":                 {bytes.Replace(msg, []byte("principal,"), []byte("principal,admin,"), 1), note.VerifierList(f.issuer.Verifier)},
		"signature truncated":        {append(msg[:len(msg)-6:len(msg)-6], '\n'), note.VerifierList(f.issuer.Verifier)},
		"only other org's signature": {cosigned, note.VerifierList(otherIssuer.Verifier)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := OpenCredential(tt.msg, tt.issuers, t0)
			wantErr(t, err, ErrInvalid)
		})
	}
}

func TestOpenCredentialValidity(t *testing.T) {
	f := newFixture(t)
	msg, err := f.cred.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	issuers := note.VerifierList(f.issuer.Verifier)
	tests := []struct {
		now  time.Time
		want error
	}{
		{t0.Add(-ClockSkew - time.Second), ErrExpired},
		{t0.Add(-ClockSkew), nil},
		{t0, nil},
		{f.cred.Expires.Add(-time.Nanosecond), nil},
		{f.cred.Expires, ErrExpired},
		{f.cred.Expires.Add(time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		_, err := OpenCredential(msg, issuers, tt.now)
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("at %v: %v, want %v", tt.now, err, tt.want)
		}
	}
}

// TestVerifyCredential: the signature and form are checked, the validity
// period is not (the fixture's credential expired long before this test
// runs, at t0 plus its lifetime).
func TestVerifyCredential(t *testing.T) {
	f := newFixture(t)
	msg, err := f.cred.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	issuers := note.VerifierList(f.issuer.Verifier)
	if _, err := OpenCredential(msg, issuers, time.Now()); !errors.Is(err, ErrExpired) {
		t.Fatalf("the fixture credential is not expired now (%v); this test needs one that is", err)
	}
	c, err := VerifyCredential(msg, issuers)
	if err != nil || c.Device != f.cred.Device {
		t.Fatalf("VerifyCredential of an expired credential: %+v %v", c, err)
	}
	rogue, _, _ := GenerateOrgKey(nil, IssuerKeyName(f.cred.User.Org))
	if _, err := VerifyCredential(msg, note.VerifierList(rogue.Verifier)); !errors.Is(err, ErrInvalid) {
		t.Errorf("under another issuer: %v, want ErrInvalid", err)
	}
	bad := append([]byte{}, msg...)
	bad[len("hotline-credential v1\nuser ")] ^= 1
	if _, err := VerifyCredential(bad, issuers); !errors.Is(err, ErrInvalid) {
		t.Errorf("altered: %v, want ErrInvalid", err)
	}
}

func TestNeedsRenewal(t *testing.T) {
	c := Credential{Issued: t0, Expires: t0.Add(90 * time.Hour)}
	tests := []struct {
		now  time.Time
		want bool
	}{
		{t0, false},
		{t0.Add(60 * time.Hour), false},
		{t0.Add(60*time.Hour + time.Second), true},
		{t0.Add(100 * time.Hour), true},
	}
	for _, tt := range tests {
		if got := c.NeedsRenewal(tt.now); got != tt.want {
			t.Errorf("NeedsRenewal(%v) = %v", tt.now, got)
		}
	}
}

func TestOpenCredentialMalformed(t *testing.T) {
	f := newFixture(t)
	good := f.cred.body()
	other, _ := GenerateSigningKey(testRand(64))
	kemB64 := base64.StdEncoding.EncodeToString(f.cred.KEMKey)
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in credential", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := map[string]string{
		"empty":               "",
		"no newline":          strings.TrimSuffix(good, "\n"),
		"header":              replace("hotline-credential v1", "hotline-credential v2"),
		"key set header":      replace("hotline-credential v1", "hotline-keyset v1"),
		"missing line":        replace("clearance top-secret\n", ""),
		"extra line":          good + "admin yes\n",
		"blank line":          replace("clearance top-secret\n", "clearance top-secret\n\n"),
		"duplicate line":      replace("clearance top-secret\n", "clearance top-secret\nclearance top-secret\n"),
		"reordered":           replace("roles principal,note-taker\nclearance top-secret\n", "clearance top-secret\nroles principal,note-taker\n"),
		"crlf":                strings.ReplaceAll(good, "\n", "\r\n"),
		"upper-case user":     replace("user kim@", "user Kim@"),
		"user without org":    replace("user kim@state.example", "user kim"),
		"bad device":          replace("device "+f.cred.Device, "device "+strings.ToUpper(f.cred.Device)),
		"device of other key": replace("device "+f.cred.Device, "device "+other.Public().DeviceID()),
		"sig of other key":    replace("sig "+f.cred.SigKey.String(), "sig "+other.Public().String()),
		"sig not base64":      replace("sig "+f.cred.SigKey.String(), "sig !"),
		"kem short":           replace("kem "+kemB64, "kem "+kemB64[:100]),
		"kem not base64":      replace("kem "+kemB64, "kem "+kemB64[:100]+"*"+kemB64[101:]),
		"kem with CR":         replace("kem "+kemB64, "kem "+kemB64[:100]+"\r"+kemB64[100:]),
		"unknown role":        replace("roles principal,note-taker", "roles principal,king"),
		"roles unsorted":      replace("roles principal,note-taker", "roles note-taker,principal"),
		"roles duplicated":    replace("roles principal,note-taker", "roles principal,principal,note-taker"),
		"roles spaced":        replace("roles principal,note-taker", "roles principal, note-taker"),
		"roles upper-case":    replace("roles principal,note-taker", "roles PRINCIPAL,note-taker"),
		"roles empty":         replace("roles principal,note-taker", "roles "),
		"roles missing value": replace("roles principal,note-taker", "roles"),
		"clearance display":   replace("clearance top-secret", "clearance TOP SECRET"),
		"clearance unknown":   replace("clearance top-secret", "clearance cosmic"),
		"comp lower-case":     replace("compartments ALPHA,BRAVO", "compartments alpha,BRAVO"),
		"comp unsorted":       replace("compartments ALPHA,BRAVO", "compartments BRAVO,ALPHA"),
		"comp empty":          replace("compartments ALPHA,BRAVO", "compartments "),
		"comp empty label":    replace("compartments ALPHA,BRAVO", "compartments ALPHA,,BRAVO"),
		"time offset":         replace("issued 2026-01-02T15:04:05Z", "issued 2026-01-02T16:04:05+01:00"),
		"time fraction":       replace("issued 2026-01-02T15:04:05Z", "issued 2026-01-02T15:04:05.000Z"),
		"expires = issued":    replace("expires 2026-04-02T15:04:05Z", "expires 2026-01-02T15:04:05Z"),
		"expires garbage":     replace("expires 2026-04-02T15:04:05Z", "expires never"),
		"year 0":              replace("issued 2026", "issued 0000"),
		"trailing space":      replace("clearance top-secret\n", "clearance top-secret \n"),
		"double space":        replace("clearance top-secret", "clearance  top-secret"),
	}
	issuers := note.VerifierList(f.issuer.Verifier)
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseCredential(text)
			wantErr(t, err, ErrInvalid)
			if msg, err := note.Sign(&note.Note{Text: text}, f.issuer.Signer); err == nil {
				_, err = OpenCredential(msg, issuers, t0)
				wantErr(t, err, ErrInvalid)
			}
		})
	}
}

// TestCredentialMangle flips bits in and truncates a signed credential:
// nothing panics, and nothing opens to a different credential.
func TestCredentialMangle(t *testing.T) {
	f := newFixture(t)
	msg, err := f.cred.Sign(f.issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	issuers := note.VerifierList(f.issuer.Verifier)
	check := func(m []byte) {
		c, err := OpenCredential(m, issuers, t0)
		if err != nil {
			wantErr(t, err, ErrInvalid)
		} else if diff := cmp.Diff(f.cred, c, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("mangled %q opened to a different credential:\n%s", m, diff)
		}
	}
	for i := range msg {
		for _, x := range []byte{0x01, 0x20, 0x80, 0xff} {
			m := bytes.Clone(msg)
			m[i] ^= x
			check(m)
		}
	}
	for n := range msg {
		check(msg[:n])
	}
}

func FuzzOpenCredential(f *testing.F) {
	fx := newFixture(f)
	msg, err := fx.cred.Sign(fx.issuer.Signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(fx.cred.body()))
	f.Add([]byte("hotline-credential v1\nuser a@b.c\ndevice x\nsig x\nkem x\nroles -\nclearance secret\ncompartments -\nissued 2026-01-02T15:04:05Z\nexpires 2026-01-02T15:04:06Z\n"))
	issuers := note.VerifierList(fx.issuer.Verifier)
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := OpenCredential(b, issuers, t0); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("error wraps neither ErrInvalid nor ErrExpired: %v", err)
			}
		} else if c.validate() != nil || !bytes.HasPrefix(b, []byte(c.body()+"\n")) {
			t.Fatalf("opened %+v from %q", c, b)
		}
		// The parser on its own, without the signature check.
		c, err := parseCredential(string(b))
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		if c.body() != string(b) || c.validate() != nil {
			t.Fatalf("parsed %+v from %q", c, b)
		}
	})
}

func BenchmarkSignCredential(b *testing.B) {
	f := newFixture(b)
	for b.Loop() {
		if _, err := f.cred.Sign(f.issuer.Signer); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCredential(b *testing.B) {
	f := newFixture(b)
	msg, err := f.cred.Sign(f.issuer.Signer)
	if err != nil {
		b.Fatal(err)
	}
	issuers := note.VerifierList(f.issuer.Verifier)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := OpenCredential(msg, issuers, t0); err != nil {
			b.Fatal(err)
		}
	}
}
