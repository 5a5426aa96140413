package tlog

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a signed tree head in the C2SP tlog-checkpoint
// format: the log's origin, the tree size, the root hash, and optional
// extension lines, which are kept but carry no meaning here.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   Hash
	Extra  []string // extension lines, without newlines
}

// Marshal returns the checkpoint's note text.
func (c Checkpoint) Marshal() []byte {
	b := fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, c.Hash)
	for _, l := range c.Extra {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return b
}

// ParseCheckpoint parses a checkpoint's note text. It accepts only the
// encoding [Checkpoint.Marshal] produces for a valid checkpoint.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	s, ok := strings.CutSuffix(string(text), "\n")
	if !ok {
		return Checkpoint{}, malformed("checkpoint does not end in a newline")
	}
	lines := strings.Split(s, "\n")
	if len(lines) < 3 {
		return Checkpoint{}, malformed("checkpoint has %d lines, want at least 3", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, malformed("checkpoint size %.24q is not a canonical decimal", lines[1])
	}
	hash, err := decodeHash(lines[2])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint root: %w", err)
	}
	c := Checkpoint{Origin: lines[0], Size: size, Hash: hash}
	if len(lines) > 3 {
		c.Extra = lines[3:]
	}
	return c, c.validate()
}

func (c Checkpoint) validate() error {
	if c.Origin == "" || strings.TrimSpace(c.Origin) != c.Origin {
		return malformed("checkpoint origin %.40q is empty or has surrounding space", c.Origin)
	}
	if c.Size < 0 {
		return malformed("checkpoint size %d is negative", c.Size)
	}
	for _, l := range append([]string{c.Origin}, c.Extra...) {
		if !isLine(l) {
			return malformed("checkpoint line %.40q is empty or has control characters", l)
		}
	}
	return nil
}

// isLine reports whether s is a non-empty line of UTF-8 text without control
// characters, as signed notes require.
func isLine(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 })
}

// SignCheckpoint signs c with s, whose key name must be c's origin, and
// returns the signed note.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("sign checkpoint of %q with key %q: key name is not the origin", c.Origin, s.Name())
	}
	return note.Sign(&note.Note{Text: string(c.Marshal())}, s)
}

// OpenCheckpoint verifies a signed checkpoint of the log named origin. The
// body's origin must be origin, and one of the signatures must be by a
// verifier in v named origin; signatures by unknown keys are ignored.
// Signature and origin failures wrap [ErrVerify]; a note or body that does
// not parse wraps [ErrMalformed].
func OpenCheckpoint(msg []byte, origin string, v note.Verifiers) (Checkpoint, *note.Note, error) {
	n, err := note.Open(msg, v)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, nil, verifyFailed("checkpoint: %v", err)
		}
		return Checkpoint{}, nil, malformed("checkpoint note: %v", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, verifyFailed("checkpoint origin %.40q, want %q", c.Origin, origin)
	}
	if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == origin }) {
		return Checkpoint{}, nil, verifyFailed("checkpoint is not signed by %q", origin)
	}
	return c, n, nil
}
