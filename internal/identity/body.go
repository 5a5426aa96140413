package identity

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Signed bodies (key sets, credentials) are note texts: a header line naming
// the format and version, then one "key value" line per field in a fixed
// order. Values never contain a newline; the writers validate them first.
// Parsers split the text with parseBody and, after parsing every value,
// require that formatting the result gives back the exact text, so each
// value has exactly one accepted encoding.

// formatBody returns header and the key/value pairs kv as a note text.
func formatBody(header string, kv ...string) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + " " + kv[i+1] + "\n")
	}
	return b.String()
}

// parseBody checks that text is header followed by one line for each of
// keys, in order, and returns the values.
func parseBody(text, header string, keys ...string) ([]string, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != len(keys)+2 || lines[0] != header || lines[len(lines)-1] != "" {
		return nil, invalid("want %q and %d lines", header, len(keys))
	}
	vals := make([]string, len(keys))
	for i, k := range keys {
		v, ok := strings.CutPrefix(lines[i+1], k+" ")
		if !ok {
			return nil, invalid("line %d: want %q", i+2, k)
		}
		vals[i] = v
	}
	return vals, nil
}

// decodeBase64 decodes standard base64, accepting only the canonical
// encoding (base64's Strict mode still skips CR and LF).
func decodeBase64(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil && base64.StdEncoding.EncodeToString(b) == s
}

// formatTime returns t in UTC to the second, as RFC 3339.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// validTime reports whether t can be written by formatTime and read back.
func validTime(t time.Time) bool {
	y := t.UTC().Year()
	return !t.IsZero() && y >= 1970 && y <= 9999
}

// parseTime parses a time written by formatTime.
func parseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || !validTime(t) || formatTime(t) != s {
		return time.Time{}, invalid("%s %q: want a UTC time such as 2026-01-02T15:04:05Z", what, s)
	}
	return t, nil
}

// maxSignedSize bounds the signed messages this package opens; real key
// sets and credentials are a few kilobytes.
const maxSignedSize = 16 << 10

// openNote verifies msg against known and returns the note.
func openNote(msg []byte, known note.Verifiers) (*note.Note, error) {
	if len(msg) > maxSignedSize {
		return nil, invalid("%d bytes, over the limit of %d", len(msg), maxSignedSize)
	}
	n, err := note.Open(msg, known)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return n, nil
}

// signedBy reports whether n carries a verified signature by a key named name.
func signedBy(n *note.Note, name string) bool {
	return slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == name })
}
