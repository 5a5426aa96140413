package attach

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"hotline/internal/mls"
)

// Descriptor is what a message carries about an attachment: where the
// ciphertext is, the key to it, and what it is. It travels only inside the
// MLS group; the server sees the ciphertext and its size, nothing else.
type Descriptor struct {
	BlobID         []byte // the server's name for the ciphertext
	Key            []byte
	Size           int64 // plaintext bytes
	CiphertextSize int64
	CiphertextHash []byte // SHA-256 of the ciphertext
	Name           string // the file's name, as the sender gave it
	MediaType      string // e.g. "application/pdf"
}

// ErrMalformed is wrapped by every error decoding a Descriptor.
var ErrMalformed = errors.New("attach: malformed descriptor")

const (
	descriptorVersion = 1
	maxName           = 255
	maxMediaType      = 127
	maxBlobID         = 64
)

// Marshal encodes d (version 1).
func (d Descriptor) Marshal() []byte {
	var w mls.Writer
	w.U8(descriptorVersion)
	w.Opaque(d.BlobID)
	w.Opaque(d.Key)
	w.U64(uint64(d.Size))
	w.U64(uint64(d.CiphertextSize))
	w.Opaque(d.CiphertextHash)
	w.Opaque([]byte(d.Name))
	w.Opaque([]byte(d.MediaType))
	return w.Bytes()
}

// UnmarshalDescriptor decodes and validates a Descriptor.
func UnmarshalDescriptor(b []byte) (Descriptor, error) {
	r := mls.NewReader(b)
	if v := r.U8(); v != descriptorVersion && r.Err() == nil {
		return Descriptor{}, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	d := Descriptor{
		BlobID: clone(r.Opaque()), Key: clone(r.Opaque()),
		Size: int64(r.U64()), CiphertextSize: int64(r.U64()), CiphertextHash: clone(r.Opaque()),
		Name: string(r.Opaque()), MediaType: string(r.Opaque()),
	}
	if err := r.Done(); err != nil {
		return Descriptor{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := d.Validate(); err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

// Validate checks d's fields.
func (d Descriptor) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	switch {
	case len(d.BlobID) == 0 || len(d.BlobID) > maxBlobID:
		return bad("blob ID of %d bytes", len(d.BlobID))
	case len(d.Key) != KeySize:
		return bad("key of %d bytes", len(d.Key))
	case d.Size < 0 || d.Size > MaxSize:
		return bad("size %d", d.Size)
	case d.CiphertextSize != CiphertextSize(d.Size):
		return bad("ciphertext size %d for a file of %d bytes", d.CiphertextSize, d.Size)
	case len(d.CiphertextHash) != 32:
		return bad("hash of %d bytes", len(d.CiphertextHash))
	}
	return CheckNames(d.Name, d.MediaType)
}

// CheckNames checks a file's name and media type as a Descriptor carries
// them: printable UTF-8, and a media type without parameters or spaces
// ("text/plain", not "text/plain; charset=utf-8").
func CheckNames(name, mediaType string) error {
	switch {
	case !printable(name, maxName):
		return fmt.Errorf("%w: name is not printable UTF-8 of at most %d bytes", ErrMalformed, maxName)
	case !printable(mediaType, maxMediaType) || strings.ContainsAny(mediaType, " \t;"):
		return fmt.Errorf("%w: media type %.40q is not a bare type/subtype of at most %d bytes", ErrMalformed, mediaType, maxMediaType)
	}
	return nil
}

func printable(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
