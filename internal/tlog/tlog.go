// Package tlog is the pure core of Hotline's transparency log: the format of
// its entries and checkpoints, Merkle proofs, and the monitor every client
// runs to check that the server shows everyone the same history.
//
// The log is an RFC 6962 Merkle tree of entries. An [Entry] is one
// consequential event (a device enrolled, a role changed, a contact refused),
// encoded as canonical JSON by [Entry.Marshal]; [ParseEntry] accepts only that
// canonical form, so every entry has exactly one encoding and one leaf hash.
//
// The log server commits to the tree by signing a [Checkpoint], a C2SP
// tlog-checkpoint (https://c2sp.org/tlog-checkpoint) carried in a signed note
// whose key name is the log's origin:
//
//	hotline.example
//	42
//	qbWUvHnNZfEpvBGsgAIbmrYq1fU8HnK0IdBDutOwXlU=
//
//	— hotline.example Az3grlgt...
//
// [SignCheckpoint] makes one; [OpenCheckpoint] checks the signature and the
// origin before returning the body.
//
// A client trusts nothing it has not recomputed. A [Monitor] holds the last
// checkpoint it verified and a compact range of the tree (at most 63
// hashes). Each
// [Monitor.Update] takes a newer signed checkpoint and every entry appended
// since, hashes the entries onto the range, and accepts the checkpoint only if
// the resulting root is the signed root. It then folds the entries into a
// [DeviceSet], so the client knows every user's devices from the log itself
// and not from what the server claims. The monitor's state survives restarts
// as a JSON [MonitorState].
//
// Between parties, [CheckConsistent] compares two checkpoints of the same log
// (for example, the ones two members of a conversation saw) with an RFC 6962
// consistency proof; [VerifyInclusion] checks that an entry is in a tree.
// Proofs travel as lists of base64 hashes: see [EncodeProof].
//
// Every error about untrusted input wraps one of two sentinels:
// [ErrMalformed] for input that does not parse, and [ErrVerify] for input
// that parses but fails a signature, proof or consistency check. Either way,
// nothing has changed.
//
// The package does no I/O and has no global state; it compiles to
// WebAssembly for the web client.
package tlog

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	sumtlog "golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash in the tree. It encodes to JSON as a base64 string.
type Hash = sumtlog.Hash

var (
	// ErrMalformed is wrapped by every error about input that does not
	// parse: entries, checkpoints, proof encodings, monitor state.
	ErrMalformed = errors.New("malformed")
	// ErrVerify is wrapped by every failed verification: signatures,
	// proofs, and inconsistencies the monitor detects.
	ErrVerify = errors.New("verification failed")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func verifyFailed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrVerify}, args...)...)
}

// maxProofLen bounds a decoded proof. An inclusion proof in a tree of 2^63
// leaves has 63 hashes, a consistency proof at most 64.
const maxProofLen = 64

// maxTreeSize bounds the tree sizes this package computes with: the proof
// code of sumdb/tlog never returns for larger trees.
const maxTreeSize = 1 << 62

// EmptyTreeHash returns the root hash of the empty tree, SHA-256 of the
// empty string.
func EmptyTreeHash() Hash { return sha256.Sum256(nil) }

// TreeHash returns the root hash of the tree of the given size whose stored
// hashes r provides.
func TreeHash(size int64, r sumtlog.HashReader) (Hash, error) {
	if size < 0 || size > maxTreeSize {
		return Hash{}, fmt.Errorf("tree size %d is out of range", size)
	}
	return sumtlog.TreeHash(size, r)
}

// VerifyInclusion checks that leafData is the entry at index in the tree of
// the given size and root hash.
func VerifyInclusion(proof []Hash, index, size int64, leafData []byte, root Hash) error {
	if index < 0 || index >= size || size > maxTreeSize {
		return verifyFailed("index %d or tree size %d out of range", index, size)
	}
	if err := sumtlog.CheckRecord(proof, size, root, index, sumtlog.RecordHash(leafData)); err != nil {
		return verifyFailed("inclusion of entry %d in tree of size %d: %v", index, size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of newSize with root newRoot
// extends the tree of oldSize with root oldRoot. Equal sizes need an empty
// proof and equal roots; the empty tree is a prefix of every tree.
func VerifyConsistency(proof []Hash, oldSize int64, oldRoot Hash, newSize int64, newRoot Hash) error {
	switch {
	case oldSize < 0 || newSize < oldSize || newSize > maxTreeSize:
		return verifyFailed("tree size %d cannot extend tree size %d", newSize, oldSize)
	case oldSize == 0:
		if len(proof) != 0 || oldRoot != EmptyTreeHash() || newSize == 0 && newRoot != oldRoot {
			return verifyFailed("consistency with the empty tree")
		}
		return nil
	}
	if err := sumtlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return verifyFailed("consistency of tree sizes %d and %d: %v", oldSize, newSize, err)
	}
	return nil
}

// CheckConsistent compares a checkpoint another party saw against one of
// ours. Checkpoints of the same size must have the same root; otherwise proof
// must be the consistency proof from the smaller tree to the larger.
func CheckConsistent(a, b Checkpoint, proof []Hash) error {
	if a.Origin != b.Origin {
		return verifyFailed("checkpoints of different logs %q and %q", a.Origin, b.Origin)
	}
	if a.Size > b.Size {
		a, b = b, a
	}
	if a.Size == b.Size && a.Hash != b.Hash {
		return verifyFailed("fork: two roots at size %d", a.Size)
	}
	return VerifyConsistency(proof, a.Size, a.Hash, b.Size, b.Hash)
}

// EncodeProof encodes a proof as a list of base64 hashes, for JSON.
func EncodeProof(proof []Hash) []string {
	s := make([]string, len(proof))
	for i, h := range proof {
		s[i] = h.String()
	}
	return s
}

// DecodeProof decodes a proof encoded by [EncodeProof]. It accepts at most
// 64 hashes, each in canonical base64.
func DecodeProof(s []string) ([]Hash, error) {
	if len(s) > maxProofLen {
		return nil, malformed("proof has %d hashes, limit %d", len(s), maxProofLen)
	}
	proof := make([]Hash, len(s))
	for i, v := range s {
		h, err := decodeHash(v)
		if err != nil {
			return nil, fmt.Errorf("proof hash %d: %w", i, err)
		}
		proof[i] = h
	}
	return proof, nil
}

// decodeBase64 decodes standard base64, accepting only the canonical
// encoding (no ignored newlines, zero padding bits).
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, malformed("invalid base64 %.20q", s)
	}
	return b, nil
}

func decodeHash(s string) (Hash, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return Hash{}, err
	}
	if len(b) != sumtlog.HashSize {
		return Hash{}, malformed("hash is %d bytes, want %d", len(b), sumtlog.HashSize)
	}
	return Hash(b), nil
}
