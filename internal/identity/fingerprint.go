package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// TLSFingerprint is the pin of a server's TLS certificate: "sha256:" and
// the hex SHA-256 of its DER bytes.
func TLSFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}

// NormalizeTLSFingerprint accepts a pin with or without the "sha256:"
// prefix, colons or upper case.
func NormalizeTLSFingerprint(s string) (string, error) {
	h := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	h = strings.ReplaceAll(h, ":", "")
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want sha256: and 64 hex digits", s)
	}
	return "sha256:" + h, nil
}
