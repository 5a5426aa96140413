// Package conversation holds the rules of Hotline conversations that every
// member's client applies for itself, whatever the server says: the
// conversation's classification travels inside the MLS group (a
// GroupContext extension), and each member's leaf is checked against it
// using only the leaf's own credential, the organisation's issuer keys and
// the device set the client built from the transparency log.
//
// It is pure (no I/O) and compiles to WebAssembly, for the web client.
package conversation

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/tlog"
)

// ExtClassification is the GroupContext extension carrying a
// conversation's classification. 0xF0A2 is in RFC 9420's private-use range
// (0xF000-0xFFFF); see docs/mls.md.
const ExtClassification mls.ExtensionType = 0xF0A2

// Classification is what a conversation may contain and so who may be in
// it. It lives in the group's GroupContext, which every member's epoch
// secrets are bound to: a server cannot change it without the members
// noticing.
type Classification struct {
	Level        identity.Clearance
	Compartments identity.Compartments
	// ArchiveRequired means members refuse to send while the organisation's
	// archive device is not a member.
	ArchiveRequired bool
}

// Marshal encodes c as the extension's data.
func (c Classification) Marshal() []byte {
	var w mls.Writer
	w.U8(uint8(c.Level))
	w.Vector(func(w *mls.Writer) {
		for _, comp := range c.Compartments {
			w.Opaque([]byte(comp))
		}
	})
	w.Bool(c.ArchiveRequired)
	return w.Bytes()
}

// ErrMalformed is wrapped by decoding errors.
var ErrMalformed = errors.New("conversation: malformed classification")

// UnmarshalClassification decodes the extension's data. Compartments must
// be valid, sorted and unique: one classification has one encoding.
func UnmarshalClassification(b []byte) (Classification, error) {
	r := mls.NewReader(b)
	var c Classification
	c.Level = identity.Clearance(r.U8())
	c.Compartments = identity.Compartments{}
	r.Items(func(r *mls.Reader) { c.Compartments = append(c.Compartments, string(r.Opaque())) })
	c.ArchiveRequired = r.Bool()
	if err := r.Done(); err != nil {
		return Classification{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !c.Level.Valid() {
		return Classification{}, fmt.Errorf("%w: level %d", ErrMalformed, c.Level)
	}
	if err := c.Compartments.Validate(); err != nil {
		return Classification{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !slices.Equal(c.Compartments, c.Compartments.Normalize()) {
		return Classification{}, fmt.Errorf("%w: compartments not sorted and unique", ErrMalformed)
	}
	return c, nil
}

// FromGroupContext returns the classification in a GroupContext's
// extensions. A group without the extension is not a Hotline conversation.
func FromGroupContext(exts []mls.Extension) (Classification, error) {
	for _, e := range exts {
		if e.Type == ExtClassification {
			return UnmarshalClassification(e.Data)
		}
	}
	return Classification{}, fmt.Errorf("%w: the group has no classification extension", ErrMalformed)
}

// ErrNotAllowed is wrapped by every reason a leaf may not be a member.
var ErrNotAllowed = errors.New("conversation: member not allowed")

// Member is what a leaf's credential says about a member.
type Member struct {
	Credential identity.Credential
}

// CheckMember decides, for a client, whether leaf may be a member of a
// conversation classified c, from evidence the server cannot forge:
//
//   - the leaf's basic credential is a Hotline credential the
//     organisation's issuer signed (issuers), valid at now;
//   - that credential names the leaf's own signature key;
//   - its clearance is at least c's level and its compartments include
//     c's;
//   - the transparency log, as the client verified it (devices), shows the
//     device active with that same key.
//
// Errors wrap ErrNotAllowed and say which check failed.
func CheckMember(leaf *mls.LeafNode, c Classification, issuers note.Verifiers, devices *tlog.DeviceSet, now time.Time) (Member, error) {
	return checkMember(leaf, c, issuers, devices, func(b []byte) (identity.Credential, error) {
		return identity.OpenCredential(b, issuers, now)
	})
}

// CheckExistingMember is CheckMember for a leaf already in the group, as a
// joiner finds it in the tree: the same checks except the credential's
// validity period. A member's leaf keeps the credential its device had when
// it last committed, which may since have expired; the transparency log,
// not the expiry, says whether the device may still be there.
func CheckExistingMember(leaf *mls.LeafNode, c Classification, issuers note.Verifiers, devices *tlog.DeviceSet) (Member, error) {
	return checkMember(leaf, c, issuers, devices, func(b []byte) (identity.Credential, error) {
		return identity.VerifyCredential(b, issuers)
	})
}

func checkMember(leaf *mls.LeafNode, c Classification, issuers note.Verifiers, devices *tlog.DeviceSet, open func([]byte) (identity.Credential, error)) (Member, error) {
	no := func(format string, args ...any) (Member, error) {
		return Member{}, fmt.Errorf("%w: "+format, append([]any{ErrNotAllowed}, args...)...)
	}
	if leaf.Credential.Type != mls.CredentialBasic {
		return no("credential type %d is not a Hotline credential", leaf.Credential.Type)
	}
	cred, err := open(leaf.Credential.Identity)
	if err != nil {
		return no("credential: %v", err)
	}
	if string(cred.SigKey[:]) != string(leaf.SignatureKey) {
		return no("device %s: the credential is for another signature key", cred.Device)
	}
	if cred.Clearance < c.Level {
		return no("%s is cleared %s, the conversation is %s", cred.User, cred.Clearance, c.Level)
	}
	if !cred.Compartments.Contains(c.Compartments) {
		return no("%s lacks compartments %s of the conversation (has %s)", cred.User, missing(cred.Compartments, c.Compartments), orNone(cred.Compartments))
	}
	if devices == nil {
		return no("no verified transparency log to check device %s against", cred.Device)
	}
	var logged *tlog.DeviceState
	for _, d := range devices.Devices(cred.User.String()) {
		if d.Device == cred.Device {
			logged = &d
		}
	}
	switch {
	case logged == nil:
		return no("device %s of %s is not in the transparency log", cred.Device, cred.User)
	case logged.Status != tlog.StatusActive:
		return no("device %s of %s is %s in the transparency log", cred.Device, cred.User, logged.Status)
	case logged.SigKey != cred.SigKey.String():
		return no("device %s of %s has another key in the transparency log", cred.Device, cred.User)
	}
	return Member{Credential: cred}, nil
}

func missing(have, want identity.Compartments) string {
	var out identity.Compartments
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out.String()
}

func orNone(c identity.Compartments) string {
	if len(c) == 0 {
		return "none"
	}
	return c.String()
}

// DeliveryService is the identity the organisation's delivery service
// presents as a conversation's MLS external sender: the key the root-signed
// key set names, with a basic credential "delivery@ORG".
func DeliveryService(ks identity.KeySet) (mls.ExternalSender, error) {
	pub, err := ks.DeliveryPublicKey()
	if err != nil {
		return mls.ExternalSender{}, err
	}
	return mls.ExternalSender{SignatureKey: pub, Credential: mls.Credential{Type: mls.CredentialBasic, Identity: []byte("delivery@" + ks.Org)}}, nil
}

// CheckExternalSenders decides whether a conversation's external senders
// are acceptable: exactly one, the organisation's delivery service, with a
// key from one of the root-signed key sets the client verified. Hotline's
// server may only propose removing members (clients refuse its Adds), so
// no one else may send proposals from outside the group.
func CheckExternalSenders(exts []mls.Extension, keysets []identity.KeySet) error {
	senders, ok, err := mls.ParseExternalSenders(exts)
	if err != nil {
		return fmt.Errorf("%w: external senders: %v", ErrNotAllowed, err)
	}
	if !ok {
		return fmt.Errorf("%w: the conversation names no delivery service as external sender", ErrNotAllowed)
	}
	if len(senders) != 1 {
		return fmt.Errorf("%w: %d external senders; only the delivery service may be one", ErrNotAllowed, len(senders))
	}
	for _, ks := range keysets {
		want, err := DeliveryService(ks)
		if err != nil {
			continue
		}
		if string(senders[0].SignatureKey) == string(want.SignatureKey) && senders[0].Credential.Type == mls.CredentialBasic &&
			string(senders[0].Credential.Identity) == string(want.Credential.Identity) {
			return nil
		}
	}
	return fmt.Errorf("%w: the external sender is not the organisation's delivery service", ErrNotAllowed)
}
