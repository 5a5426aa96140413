package conversation

import "crypto/sha256"

// The message chain: the delivery service hash-chains each conversation's
// messages (ciphertexts and handshakes, in its order) and commits the
// chain's head to the transparency log, so that a member, the archive
// above all, can prove it holds every message up to a committed head, and
// a gap or a different message shows.
//
//	chain(0) = SHA-256("hotline conversation chain v1" || 0x00 || group ID)
//	chain(n) = SHA-256(chain(n-1) || SHA-256(message n))
//
// where message n is the MLSMessage as the service stored and delivers it.
// (A conversation made before the chain existed starts from the empty
// string at the first message after the upgrade.)

// ChainStart is chain(0) of the conversation with this MLS group ID.
func ChainStart(groupID []byte) []byte {
	h := sha256.New()
	h.Write([]byte("hotline conversation chain v1\x00"))
	h.Write(groupID)
	return h.Sum(nil)
}

// ChainNext is the chain after a message, from the chain before it.
func ChainNext(prev, message []byte) []byte {
	m := sha256.Sum256(message)
	h := sha256.New()
	h.Write(prev)
	h.Write(m[:])
	return h.Sum(nil)
}
