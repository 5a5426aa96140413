package identity

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// The messages devices sign to prove they hold their signing key. Each
// starts with a header line naming its purpose and version, so a signature
// made for one purpose can never be accepted for another (credentials and
// key sets, signed by org keys, have headers of their own). Then come the
// fields, one per line as "name length value", the value's length in bytes
// making the encoding unambiguous whatever the values hold. Binary values
// are in standard base64, hashes in hex. A device signs a message only
// after building it from these functions, never one received whole.

func authMessage(header string, kv ...string) []byte {
	for i := 1; i < len(kv); i += 2 {
		kv[i] = strconv.Itoa(len(kv[i])) + " " + kv[i]
	}
	return []byte(formatBody(header, kv...))
}

// AuthChallengeMessage is what device signs to log in to org's server, which
// chose nonce (at least 16 random bytes, used once).
func AuthChallengeMessage(org, device string, nonce []byte) []byte {
	return authMessage("hotline-auth v1",
		"org", org,
		"device", device,
		"nonce", base64.StdEncoding.EncodeToString(nonce))
}

// EnrolMessage is what a new device signs with sig to enrol in org with the
// invite whose hash is inviteHash. It binds the invite to both of the
// device's public keys, so that whoever relays the request can neither swap
// the KEM key nor reuse the signature with another invite.
func EnrolMessage(org string, inviteHash [32]byte, sig PublicKey, kem []byte) []byte {
	return authMessage("hotline-enrol v1",
		"org", org,
		"invite", hex.EncodeToString(inviteHash[:]),
		"sig", sig.String(),
		"kem", base64.StdEncoding.EncodeToString(kem))
}

// RenewMessage is what device signs to ask org's server for a fresh
// credential, for the server-chosen nonce.
func RenewMessage(org, device string, nonce []byte) []byte {
	return authMessage("hotline-renew v1",
		"org", org,
		"device", device,
		"nonce", base64.StdEncoding.EncodeToString(nonce))
}
