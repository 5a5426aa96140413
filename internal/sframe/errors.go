package sframe

import "errors"

// The errors of this package. Every error Decrypt returns wraps exactly one
// of ErrShortHeader, ErrMalformedHeader, ErrUnknownKID, ErrAuth and
// ErrReplay; test for them with errors.Is. All of them mean the frame is
// dropped and nothing changed. Their messages name at most the KID and the
// counter, which travel in the clear anyway; never key material or
// content.
var (
	// ErrShortHeader: the frame ends within its header.
	ErrShortHeader = errors.New("sframe: short header")

	// ErrMalformedHeader: the header encodes its KID or CTR in more bytes
	// than needed, which RFC 9605 (section 4.3) forbids.
	ErrMalformedHeader = errors.New("sframe: malformed header")

	// ErrUnknownKID: no key for the KID, or not one usable for the
	// operation (a send key cannot decrypt, a receive key cannot encrypt).
	// For MLSContext also an epoch it does not hold, or a KID whose sender
	// index is outside the group or is this member's own. A receiver may
	// keep such a frame and try again once it has the key (for MLS, after
	// processing the commit that starts the frame's epoch).
	ErrUnknownKID = errors.New("sframe: unknown kid")

	// ErrAuth: the frame does not authenticate under its key: it was
	// altered, the metadata differs from the sender's, it is shorter than
	// a tag, or the key is not the sender's.
	ErrAuth = errors.New("sframe: authentication failed")

	// ErrReplay: the receive key already accepted a frame with this
	// counter, or the counter is older than the key's replay window.
	ErrReplay = errors.New("sframe: replayed or too old frame")

	// ErrCounterExhausted: the send key used its last counter. It cannot
	// encrypt again; the sender needs a new key (for MLS, a new epoch).
	ErrCounterExhausted = errors.New("sframe: send counter exhausted")

	// ErrFrameTooLarge: the plaintext exceeds what the suite can encrypt
	// under one nonce (64 GiB).
	ErrFrameTooLarge = errors.New("sframe: frame too large")

	// ErrDuplicateKID: the KID already has a key; remove it first.
	ErrDuplicateKID = errors.New("sframe: kid already has a key")

	// ErrKeyReused: this Context already sent with the same key material
	// (the same KID and base_key); sending again would repeat nonces.
	ErrKeyReused = errors.New("sframe: send key used before")

	// ErrUnsupportedSuite: the cipher suite is not one this package
	// implements.
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
)
