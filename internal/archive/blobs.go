package archive

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
)

// Blob names an attachment's ciphertext on the server: what the archive
// needs to fetch and check it, and nothing to decrypt it with.
type Blob struct {
	ID   string `json:"blob"` // base64url, as the server names it
	Size int64  `json:"size"`
	Hash []byte `json:"sha256"`
}

var blobName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func (b Blob) valid() bool {
	return blobName.MatchString(b.ID) && b.Size >= 0 && len(b.Hash) == 32
}

// RawID is the blob's name as bytes.
func (b Blob) RawID() ([]byte, error) { return base64.RawURLEncoding.DecodeString(b.ID) }

func (s *Store) pendingPath() string { return filepath.Join(s.dir, "pending-blobs.json") }

func (s *Store) readPendingLocked() ([]Blob, error) {
	b, err := os.ReadFile(s.pendingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Blob
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", s.pendingPath(), err)
	}
	return out, nil
}

func (s *Store) writePendingLocked(bs []Blob) error {
	b, err := json.Marshal(bs)
	if err != nil {
		return err
	}
	return writeFile(s.pendingPath(), b)
}

// Want notes a blob to fetch, durably, unless the store holds it.
func (s *Store) Want(b Blob) error {
	if !b.valid() {
		return fmt.Errorf("%w: blob %q", ErrMalformed, b.ID)
	}
	if s.HasBlob(b.ID) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, err := s.readPendingLocked()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(bs, func(x Blob) bool { return x.ID == b.ID }) {
		return nil
	}
	return s.writePendingLocked(append(bs, b))
}

// Pending returns the blobs still to fetch.
func (s *Store) Pending() ([]Blob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readPendingLocked()
}

// HasBlob says whether the store holds the blob's ciphertext.
func (s *Store) HasBlob(id string) bool {
	if !blobName.MatchString(id) {
		return false
	}
	_, err := os.Stat(filepath.Join(s.dir, "blobs", id))
	return err == nil
}

// PutBlob keeps a fetched ciphertext and drops it from the pending list.
// The caller checked it against b's size and hash (client.DownloadBlob).
func (s *Store) PutBlob(b Blob, ciphertext []byte) error {
	if !b.valid() || int64(len(ciphertext)) != b.Size {
		return fmt.Errorf("%w: blob %q", ErrMalformed, b.ID)
	}
	if err := writeFile(filepath.Join(s.dir, "blobs", b.ID), ciphertext); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, err := s.readPendingLocked()
	if err != nil {
		return err
	}
	bs = slices.DeleteFunc(bs, func(x Blob) bool { return x.ID == b.ID })
	return s.writePendingLocked(bs)
}

// ReadBlob returns a kept ciphertext.
func (s *Store) ReadBlob(id string) ([]byte, error) {
	if !blobName.MatchString(id) {
		return nil, fmt.Errorf("%w: blob %q", ErrMalformed, id)
	}
	return os.ReadFile(filepath.Join(s.dir, "blobs", id))
}
