package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Private keys live in files of mode 0600. Writers create them with O_EXCL,
// so a key is never overwritten; readers refuse a file that group or others
// may access.

// ErrInsecureKeyFile is wrapped by the error for a key file that group or
// others may access.
var ErrInsecureKeyFile = errors.New("key file accessible by group or others")

// maxKeyFileSize bounds what readKeyFile reads; key files are a few lines.
const maxKeyFileSize = 4 << 10

// DeviceKeysFile is the name of the device key file in a profile directory.
const DeviceKeysFile = "device.key"

const deviceKeysHeader = "hotline-device-keys v1"

// WriteDeviceKeys writes sig and kem to dir/device.key in the format
//
//	hotline-device-keys v1
//	sig <standard base64 of the Ed25519 seed>
//	kem <standard base64 of the X-Wing seed>
func WriteDeviceKeys(dir string, sig SigningKey, kem KEMKey) error {
	if sig.IsZero() || kem.IsZero() {
		return fmt.Errorf("write device keys: %w", invalid("zero key"))
	}
	b, err := MarshalDeviceKeys(sig, kem)
	if err != nil {
		return fmt.Errorf("write device keys: %w", err)
	}
	return writeKeyFile(filepath.Join(dir, DeviceKeysFile), b)
}

// MarshalDeviceKeys returns the contents of a device key file, for a
// device that keeps its files elsewhere than on disk (a browser).
func MarshalDeviceKeys(sig SigningKey, kem KEMKey) ([]byte, error) {
	kemSeed, err := kem.key().Bytes() // the X-Wing seed
	if err != nil {
		return nil, err
	}
	return []byte(formatBody(deviceKeysHeader,
		"sig", base64.StdEncoding.EncodeToString(sig.key().Seed()),
		"kem", base64.StdEncoding.EncodeToString(kemSeed))), nil
}

// ReadDeviceKeys reads the keys written by WriteDeviceKeys.
func ReadDeviceKeys(dir string) (SigningKey, KEMKey, error) {
	path := filepath.Join(dir, DeviceKeysFile)
	b, err := readKeyFile(path)
	if err != nil {
		return SigningKey{}, KEMKey{}, err
	}
	sig, kem, err := ParseDeviceKeys(b)
	if err != nil {
		return SigningKey{}, KEMKey{}, fmt.Errorf("read %s: %w", path, err)
	}
	return sig, kem, nil
}

// ParseDeviceKeys parses the contents of a device key file.
func ParseDeviceKeys(b []byte) (SigningKey, KEMKey, error) {
	v, err := parseBody(string(b), deviceKeysHeader, "sig", "kem")
	if err != nil {
		return SigningKey{}, KEMKey{}, err
	}
	var seeds [2][]byte
	for i := range seeds {
		var ok bool
		if seeds[i], ok = decodeBase64(v[i]); !ok || len(seeds[i]) != seedSize {
			return SigningKey{}, KEMKey{}, invalid("line %d: want a %d-byte seed in standard base64", i+2, seedSize)
		}
	}
	kem, err := newKEMKey(seeds[1])
	if err != nil {
		return SigningKey{}, KEMKey{}, err
	}
	return newSigningKey(seeds[0]), kem, nil
}

// Key names. Note key names may not contain '+' or spaces; organisation
// names, being domain names, never do.

// RootKeyName returns the name of org's offline root key, which signs its key sets.
func RootKeyName(org string) string { return org + "/root" }

// IssuerKeyName returns the name of org's issuer key, which signs credentials.
func IssuerKeyName(org string) string { return org + "/issuer" }

// LogKeyName returns the name of org's transparency-log key: the log's
// origin, as C2SP checkpoints require.
func LogKeyName(org string) string { return org }

// DeliveryKeyName names the delivery service's key (the MLS external
// sender): ORG/delivery.
func DeliveryKeyName(org string) string { return org + "/delivery" }

// OrgKey is one of an organisation's Ed25519 note keys (root, issuer or log
// signer). It prints and logs only its name and public key.
type OrgKey struct {
	Name        string
	Signer      note.Signer
	Verifier    note.Verifier
	VerifierKey string // the public "name+hash+base64" form
}

// GenerateOrgKey returns a new note key named name, derived from 32 bytes
// read from rand (nil means crypto/rand), and its private key text in the
// note.GenerateKey format "PRIVATE+KEY+name+hash+base64".
func GenerateOrgKey(rand io.Reader, name string) (OrgKey, string, error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsSpace) || strings.Contains(name, "+") {
		return OrgKey{}, "", fmt.Errorf("generate key: %w", invalid("key name %q: want no spaces or '+'", name))
	}
	seed, err := readRandom(rand, seedSize)
	if err != nil {
		return OrgKey{}, "", fmt.Errorf("generate key %s: %w", name, err)
	}
	skey, _, err := note.GenerateKey(bytes.NewReader(seed), name)
	if err != nil {
		return OrgKey{}, "", fmt.Errorf("generate key %s: %w", name, err)
	}
	k, err := parseOrgKey(skey)
	if err != nil {
		return OrgKey{}, "", fmt.Errorf("generate key %s: %w", name, err)
	}
	return k, skey, nil
}

// parseOrgKey parses a private key in the note.GenerateKey format.
func parseOrgKey(skey string) (OrgKey, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return OrgKey{}, invalid("org key: want PRIVATE+KEY+name+hash+base64")
	}
	// NewSigner checked the form and the key hash, so the last field is an
	// algorithm byte (1, Ed25519) followed by the 32-byte seed.
	b, _ := base64.StdEncoding.DecodeString(strings.SplitN(skey, "+", 5)[4])
	vkey, err := note.NewEd25519VerifierKey(s.Name(), ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return OrgKey{}, invalid("org key: %v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return OrgKey{}, invalid("org key: %v", err)
	}
	return OrgKey{Name: s.Name(), Signer: s, Verifier: v, VerifierKey: vkey}, nil
}

// WriteOrgKey writes the private key text privateText to a new file at path.
func WriteOrgKey(path, privateText string) error {
	if _, err := parseOrgKey(privateText); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeKeyFile(path, []byte(privateText+"\n"))
}

// ReadOrgKey reads a key written by WriteOrgKey.
func ReadOrgKey(path string) (OrgKey, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return OrgKey{}, err
	}
	k, err := parseOrgKey(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return OrgKey{}, fmt.Errorf("read %s: %w", path, err)
	}
	return k, nil
}

// String returns a redacted form naming the public key.
func (k OrgKey) String() string { return "note-private(REDACTED, public=" + k.VerifierKey + ")" }

// GoString implements fmt.GoStringer with the redacted form.
func (k OrgKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k OrgKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k OrgKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// writeKeyFile creates path with mode 0600 and writes b, failing if path
// exists. A partly written file is removed.
func writeKeyFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err1 := f.Close(); err == nil {
		err = err1
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// readKeyFile reads a regular file of at most maxKeyFileSize bytes that
// group and others cannot access. Windows has no such mode bits; there the
// check is left to the file's ACL.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("read %s: %w", path, invalid("not a regular file"))
	case fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows":
		return nil, fmt.Errorf("read %s: %w (mode %04o); hint: chmod 600 %s", path, ErrInsecureKeyFile, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("read %s: %w", path, invalid("over the limit of %d bytes", maxKeyFileSize))
	}
	return b, nil
}
