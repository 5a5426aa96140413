package identity

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Invite codes enrol a device. An administrator creates one per device and
// hands it over out of band; the server stores only its hash, and accepts
// it once.
//
// A code is 120 random bits in Crockford's base32 (digits and upper-case
// letters without I, L, O and U), 24 characters in groups of five after an
// "HL" prefix:
//
//	HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E
//
// NormalizeInviteCode is forgiving about how a code was typed or read out:
// case, spaces and dashes do not matter, the prefix is optional, and I and L
// read as 1, O as 0.

const (
	inviteAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	inviteBytes    = 15 // 120 bits, 24 characters
	inviteChars    = 24
)

var inviteEncoding = base32.NewEncoding(inviteAlphabet).WithPadding(base32.NoPadding)

// NewInviteCode returns a new invite code using randomness from rand (nil
// means crypto/rand).
func NewInviteCode(rand io.Reader) (string, error) {
	b, err := readRandom(rand, inviteBytes)
	if err != nil {
		return "", fmt.Errorf("new invite code: %w", err)
	}
	return formatInviteCode(inviteEncoding.EncodeToString(b)), nil
}

func formatInviteCode(chars string) string {
	var b strings.Builder
	b.WriteString("HL")
	for i := 0; i < len(chars); i += 5 {
		b.WriteString("-" + chars[i:min(i+5, len(chars))])
	}
	return b.String()
}

// NormalizeInviteCode returns the canonical form of a code as typed.
func NormalizeInviteCode(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || unicode.IsSpace(r):
		case r == 'I' || r == 'L':
			b.WriteByte('1')
		case r == 'O':
			b.WriteByte('0')
		case r < 0x80 && strings.ContainsRune(inviteAlphabet, r):
			b.WriteRune(r)
		default:
			return "", invalid("invite code: unexpected %q; want digits and letters except U", r)
		}
	}
	chars := b.String()
	if len(chars) == inviteChars+2 && chars[:2] == "H1" { // "HL", with L read as 1
		chars = chars[2:]
	}
	if len(chars) != inviteChars {
		return "", invalid("invite code: want %d characters after HL-, got %d", inviteChars, len(chars))
	}
	return formatInviteCode(chars), nil
}

// HashInviteCode returns the hash under which a code is stored:
// SHA-256("hotline invite v1\x00" || canonical code). Codes carry 120 random
// bits, so a plain hash cannot be brute-forced and no slow KDF is needed.
func HashInviteCode(code string) ([32]byte, error) {
	c, err := NormalizeInviteCode(code)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256([]byte("hotline invite v1\x00" + c)), nil
}
