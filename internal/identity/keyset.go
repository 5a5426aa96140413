package identity

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// KeySet names an organisation's online keys. The offline root key signs it;
// clients that trust the root key learn the current issuer, log and
// delivery keys from the key set with the highest serial. Its signed form is
// the note text
//
//	hotline-keyset v1
//	org state.example
//	serial 3
//	issuer state.example/issuer+1a2b3c4d+AU…
//	log state.example+5e6f7a8b+AX…
//	delivery state.example/delivery+9c0d1e2f+AY…
//	issued 2026-01-02T15:04:05Z
type KeySet struct {
	Org    string
	Serial int64  // 1 or more, increased on each rotation
	Issuer string // the issuer's note verifier key, named IssuerKeyName(Org)
	Log    string // the log's note verifier key, named LogKeyName(Org)
	// Delivery is the delivery service's key, named DeliveryKeyName(Org): it
	// signs the MLS proposals the server makes as the groups' external
	// sender (removing revoked devices), and nothing else.
	Delivery string
	Issued   time.Time // written in UTC to the second
}

const keySetHeader = "hotline-keyset v1"

var keySetKeys = []string{"org", "serial", "issuer", "log", "delivery", "issued"}

func (ks KeySet) body() string {
	return formatBody(keySetHeader,
		"org", ks.Org,
		"serial", strconv.FormatInt(ks.Serial, 10),
		"issuer", ks.Issuer,
		"log", ks.Log,
		"delivery", ks.Delivery,
		"issued", formatTime(ks.Issued))
}

func (ks KeySet) validate() error {
	if err := ValidateOrg(ks.Org); err != nil {
		return err
	}
	if ks.Serial < 1 {
		return invalid("serial %d: want 1 or more", ks.Serial)
	}
	if _, err := ks.IssuerVerifier(); err != nil {
		return err
	}
	if _, err := ks.LogVerifier(); err != nil {
		return err
	}
	if _, err := ks.DeliveryVerifier(); err != nil {
		return err
	}
	// The names differ, so compare only the (canonically encoded) keys: one
	// Ed25519 key must not serve two roles.
	keys := map[string]string{}
	for role, vkey := range map[string]string{"issuer": ks.Issuer, "log": ks.Log, "delivery": ks.Delivery} {
		k := strings.SplitN(vkey, "+", 3)[2]
		if other, ok := keys[k]; ok {
			return invalid("%s and %s use the same key", min(role, other), max(role, other))
		}
		keys[k] = role
	}
	if !validTime(ks.Issued) {
		return invalid("issued %v: want a time in years 1970 to 9999", ks.Issued)
	}
	return nil
}

// Sign validates ks and returns it signed by root, which must be named
// RootKeyName(ks.Org).
func (ks KeySet) Sign(root note.Signer) ([]byte, error) {
	if err := ks.validate(); err != nil {
		return nil, fmt.Errorf("sign key set: %w", err)
	}
	if root == nil || root.Name() != RootKeyName(ks.Org) {
		return nil, fmt.Errorf("sign key set: %w", invalid("want a signer named %s", RootKeyName(ks.Org)))
	}
	return note.Sign(&note.Note{Text: ks.body()}, root)
}

// OpenKeySet verifies that msg is a key set signed by root, that root is
// named RootKeyName of the key set's organisation, and that the issuer and
// log keys carry their organisation's names. Errors wrap ErrInvalid.
func OpenKeySet(msg []byte, root note.Verifier) (KeySet, error) {
	if root == nil {
		return KeySet{}, fmt.Errorf("open key set: %w", invalid("no root key"))
	}
	ks, err := openKeySet(msg, root)
	if err != nil {
		return KeySet{}, fmt.Errorf("open key set: %w", err)
	}
	return ks, nil
}

func openKeySet(msg []byte, root note.Verifier) (KeySet, error) {
	n, err := openNote(msg, note.VerifierList(root))
	if err != nil {
		return KeySet{}, err
	}
	ks, err := parseKeySet(n.Text)
	if err != nil {
		return KeySet{}, err
	}
	if !signedBy(n, RootKeyName(ks.Org)) {
		return KeySet{}, invalid("signed by %s, want %s", root.Name(), RootKeyName(ks.Org))
	}
	return ks, nil
}

// parseKeySet parses a key set's note text.
func parseKeySet(text string) (KeySet, error) {
	v, err := parseBody(text, keySetHeader, keySetKeys...)
	if err != nil {
		return KeySet{}, err
	}
	ks := KeySet{Org: v[0], Issuer: v[2], Log: v[3], Delivery: v[4]}
	if ks.Serial, err = strconv.ParseInt(v[1], 10, 64); err != nil {
		return KeySet{}, invalid("serial %q", v[1])
	}
	if ks.Issued, err = parseTime("issued", v[5]); err != nil {
		return KeySet{}, err
	}
	if err := ks.validate(); err != nil {
		return KeySet{}, err
	}
	if ks.body() != text {
		return KeySet{}, invalid("not in canonical form")
	}
	return ks, nil
}

// IssuerVerifier returns the issuer key, checking its name.
func (ks KeySet) IssuerVerifier() (note.Verifier, error) {
	return namedVerifier("issuer", ks.Issuer, IssuerKeyName(ks.Org))
}

// LogVerifier returns the log key, checking its name.
func (ks KeySet) LogVerifier() (note.Verifier, error) {
	return namedVerifier("log", ks.Log, LogKeyName(ks.Org))
}

// DeliveryVerifier returns the delivery service's key, checking its name.
func (ks KeySet) DeliveryVerifier() (note.Verifier, error) {
	return namedVerifier("delivery", ks.Delivery, DeliveryKeyName(ks.Org))
}

// DeliveryPublicKey returns the delivery service's Ed25519 public key, the
// signature key of the MLS external sender in every conversation.
func (ks KeySet) DeliveryPublicKey() ([]byte, error) {
	if _, err := ks.DeliveryVerifier(); err != nil {
		return nil, err
	}
	return verifierPublicKey(ks.Delivery)
}

// verifierPublicKey extracts the raw Ed25519 key from a note verifier key
// ("name+hash+base64(0x01 || key)").
func verifierPublicKey(vkey string) ([]byte, error) {
	b, ok := decodeBase64(strings.SplitN(vkey, "+", 3)[2])
	if !ok || len(b) != 33 || b[0] != 1 {
		return nil, invalid("key %q is not an Ed25519 note key", vkey)
	}
	return b[1:], nil
}

// namedVerifier parses the note verifier key vkey, requiring the name name
// and the canonical base64 encoding of the key.
func namedVerifier(what, vkey, name string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, invalid("%s key %q: %v", what, vkey, err)
	}
	if _, ok := decodeBase64(strings.SplitN(vkey, "+", 3)[2]); !ok {
		return nil, invalid("%s key %q: want canonical base64", what, vkey)
	}
	if v.Name() != name {
		return nil, invalid("%s key named %q, want %q", what, v.Name(), name)
	}
	return v, nil
}
