package identity

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// ErrExpired is wrapped by the error for a credential outside its validity
// period: expired, or not yet valid (like crypto/x509, one error for both).
var ErrExpired = errors.New("credential outside its validity period")

// ClockSkew is how long before its Issued time a credential is accepted.
const ClockSkew = 5 * time.Minute

// Credential binds a device's keys to a user and the user's roles,
// clearance and compartments until Expires. The organisation's issuer key
// signs it; its signed form is the note text
//
//	hotline-credential v1
//	user kim@state.example
//	device abcdefghijklmnop
//	sig <standard base64 Ed25519 public key>
//	kem <standard base64 X-Wing public key>
//	roles principal,note-taker
//	clearance top-secret
//	compartments ALPHA,BRAVO
//	issued 2026-01-02T15:04:05Z
//	expires 2026-04-02T15:04:05Z
//
// with "-" for no roles or no compartments.
type Credential struct {
	User         UserID
	Device       string    // SigKey.DeviceID()
	SigKey       PublicKey // the device's signing key
	KEMKey       []byte    // the device's X-Wing public key
	Roles        Roles     // written in AllRoles order
	Clearance    Clearance
	Compartments Compartments // written sorted
	Issued       time.Time    // written in UTC to the second
	Expires      time.Time    // after Issued
}

const credentialHeader = "hotline-credential v1"

var credentialKeys = []string{"user", "device", "sig", "kem", "roles", "clearance", "compartments", "issued", "expires"}

func (c Credential) body() string {
	return formatBody(credentialHeader,
		"user", c.User.String(),
		"device", c.Device,
		"sig", c.SigKey.String(),
		"kem", base64.StdEncoding.EncodeToString(c.KEMKey),
		"roles", orDash(c.Roles.Normalize().String()),
		"clearance", c.Clearance.Token(),
		"compartments", orDash(c.Compartments.Normalize().String()),
		"issued", formatTime(c.Issued),
		"expires", formatTime(c.Expires))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c Credential) validate() error {
	if err := c.User.Validate(); err != nil {
		return err
	}
	if err := c.SigKey.validate(); err != nil {
		return err
	}
	if c.Device != c.SigKey.DeviceID() {
		return invalid("device %q is not the ID of the signing key, %s", c.Device, c.SigKey.DeviceID())
	}
	if err := ParseKEMPublicKey(c.KEMKey); err != nil {
		return err
	}
	for _, r := range c.Roles {
		if !slices.Contains(AllRoles, r) {
			return invalid("role %q", r)
		}
	}
	if !c.Clearance.Valid() {
		return invalid("clearance %d", int(c.Clearance))
	}
	if err := c.Compartments.Validate(); err != nil {
		return err
	}
	if !validTime(c.Issued) || !validTime(c.Expires) || c.Expires.Unix() <= c.Issued.Unix() {
		return invalid("validity %v to %v: want times in years 1970 to 9999, expiry after issue", c.Issued, c.Expires)
	}
	return nil
}

// Sign validates c and returns it signed by issuer, which must be named
// IssuerKeyName of the user's organisation.
func (c Credential) Sign(issuer note.Signer) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sign credential: %w", err)
	}
	if issuer == nil || issuer.Name() != IssuerKeyName(c.User.Org) {
		return nil, fmt.Errorf("sign credential: %w", invalid("want a signer named %s", IssuerKeyName(c.User.Org)))
	}
	return note.Sign(&note.Note{Text: c.body()}, issuer)
}

// OpenCredential verifies that msg is a credential signed by one of issuers
// under the name IssuerKeyName of the user's organisation, and that it is
// valid at now: no earlier than ClockSkew before Issued and before Expires.
// Errors wrap ErrInvalid, or ErrExpired for a well-signed credential outside
// its validity period.
func OpenCredential(msg []byte, issuers note.Verifiers, now time.Time) (Credential, error) {
	c, err := openCredential(msg, issuers)
	if err != nil {
		return Credential{}, fmt.Errorf("open credential: %w", err)
	}
	if !now.Before(c.Expires) {
		return Credential{}, fmt.Errorf("open credential for %s device %s: %w: expired at %s", c.User, c.Device, ErrExpired, formatTime(c.Expires))
	}
	if now.Before(c.Issued.Add(-ClockSkew)) {
		return Credential{}, fmt.Errorf("open credential for %s device %s: %w: not valid until %s", c.User, c.Device, ErrExpired, formatTime(c.Issued))
	}
	return c, nil
}

// VerifyCredential is OpenCredential without the validity period: for a
// credential that was checked when it was presented and is now only being
// identified (a conversation member's leaf, which its device refreshes
// after renewing).
func VerifyCredential(msg []byte, issuers note.Verifiers) (Credential, error) {
	c, err := openCredential(msg, issuers)
	if err != nil {
		return Credential{}, fmt.Errorf("verify credential: %w", err)
	}
	return c, nil
}

func openCredential(msg []byte, issuers note.Verifiers) (Credential, error) {
	n, err := openNote(msg, issuers)
	if err != nil {
		return Credential{}, err
	}
	c, err := parseCredential(n.Text)
	if err != nil {
		return Credential{}, err
	}
	if !signedBy(n, IssuerKeyName(c.User.Org)) {
		return Credential{}, invalid("credential for %s not signed by %s", c.User, IssuerKeyName(c.User.Org))
	}
	return c, nil
}

// parseCredential parses a credential's note text.
func parseCredential(text string) (Credential, error) {
	v, err := parseBody(text, credentialHeader, credentialKeys...)
	if err != nil {
		return Credential{}, err
	}
	c := Credential{Device: v[1]}
	if c.User, err = ParseUserID(v[0]); err != nil {
		return Credential{}, err
	}
	if c.SigKey, err = ParsePublicKey(v[2]); err != nil {
		return Credential{}, err
	}
	var ok bool
	if c.KEMKey, ok = decodeBase64(v[3]); !ok {
		return Credential{}, invalid("kem public key: want standard base64")
	}
	if v[4] != "-" {
		if c.Roles, err = ParseRoles(v[4]); err != nil {
			return Credential{}, err
		}
	}
	if c.Clearance, err = ParseClearance(v[5]); err != nil {
		return Credential{}, err
	}
	if c.Compartments, err = ParseCompartments(v[6]); err != nil {
		return Credential{}, err
	}
	if c.Issued, err = parseTime("issued", v[7]); err != nil {
		return Credential{}, err
	}
	if c.Expires, err = parseTime("expires", v[8]); err != nil {
		return Credential{}, err
	}
	if err := c.validate(); err != nil {
		return Credential{}, err
	}
	if c.body() != text {
		return Credential{}, invalid("not in canonical form")
	}
	return c, nil
}

// NeedsRenewal reports whether less than a third of c's lifetime remains at
// now.
func (c Credential) NeedsRenewal(now time.Time) bool {
	return c.Expires.Sub(now) < c.Expires.Sub(c.Issued)/3
}
