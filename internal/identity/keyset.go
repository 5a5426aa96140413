package identity

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// KeySet names an organisation's online keys. The offline root key signs it;
// clients that trust the root key learn the current issuer and log keys from
// the key set with the highest serial. Its signed form is the note text
//
//	hotline-keyset v1
//	org state.example
//	serial 3
//	issuer state.example/issuer+1a2b3c4d+AU…
//	log state.example+5e6f7a8b+AX…
//	issued 2026-01-02T15:04:05Z
type KeySet struct {
	Org    string
	Serial int64     // 1 or more, increased on each rotation
	Issuer string    // the issuer's note verifier key, named IssuerKeyName(Org)
	Log    string    // the log's note verifier key, named LogKeyName(Org)
	Issued time.Time // written in UTC to the second
}

const keySetHeader = "hotline-keyset v1"

var keySetKeys = []string{"org", "serial", "issuer", "log", "issued"}

func (ks KeySet) body() string {
	return formatBody(keySetHeader,
		"org", ks.Org,
		"serial", strconv.FormatInt(ks.Serial, 10),
		"issuer", ks.Issuer,
		"log", ks.Log,
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
	// The names differ, so compare only the (canonically encoded) keys: one
	// Ed25519 key must not serve two roles.
	if strings.SplitN(ks.Issuer, "+", 3)[2] == strings.SplitN(ks.Log, "+", 3)[2] {
		return invalid("issuer and log use the same key")
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
	ks := KeySet{Org: v[0], Issuer: v[2], Log: v[3]}
	if ks.Serial, err = strconv.ParseInt(v[1], 10, 64); err != nil {
		return KeySet{}, invalid("serial %q", v[1])
	}
	if ks.Issued, err = parseTime("issued", v[4]); err != nil {
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
