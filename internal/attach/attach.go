// Package attach encrypts files for Hotline conversations. The sender
// encrypts a file with a fresh key, uploads only ciphertext to the server,
// and sends the key inside the MLS group in a Descriptor; members download
// the ciphertext and decrypt it. The server never holds a key.
//
// The ciphertext is a sequence of chunks, each sealed with AES-256-GCM
// under the file key. A chunk's nonce is its index (64 bits) and a flag
// marking the last chunk, so reordering, dropping, duplicating or
// truncating chunks, and splicing chunks of two files, all fail to
// decrypt. This is the STREAM construction (Hoang, Reyhanitabar, Rogaway,
// Vizár 2015) with a per-file key, so no nonce prefix is needed.
//
// It is pure (no I/O beyond the readers and writers it is given) and
// compiles to WebAssembly.
package attach

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ChunkSize is the plaintext size of every chunk but the last.
const ChunkSize = 64 << 10

// Overhead is what sealing adds to each chunk.
const Overhead = 16

// KeySize is the file key's size.
const KeySize = 32

// MaxSize bounds a file: 1 GiB.
const MaxSize = 1 << 30

// Errors.
var (
	ErrDecrypt  = errors.New("attach: ciphertext does not decrypt: damaged, truncated, reordered or not this file")
	ErrTooLarge = errors.New("attach: file larger than the limit")
)

// CiphertextSize returns the ciphertext size of a plaintext of size n.
// An empty file is one empty last chunk.
func CiphertextSize(n int64) int64 {
	chunks := n / ChunkSize
	if n%ChunkSize != 0 || n == 0 {
		chunks++
	}
	return n + chunks*Overhead
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("attach: key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func nonce(index uint64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], index)
	if last {
		n[11] = 1
	}
	return n
}

// Encrypt reads the plaintext from r and writes the ciphertext to w under a
// fresh key. It returns a Descriptor with everything but the blob ID and the
// file's name and type, which the caller fills in.
func Encrypt(w io.Writer, r io.Reader, random io.Reader) (Descriptor, error) {
	if random == nil {
		random = rand.Reader
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(random, key); err != nil {
		return Descriptor{}, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return Descriptor{}, err
	}
	var (
		size  int64
		index uint64
		buf   = make([]byte, ChunkSize+1) // one byte of lookahead tells the last chunk
		n     int
		hash  = sha256.New()
		out   = make([]byte, 0, ChunkSize+Overhead)
	)
	n, err = io.ReadFull(r, buf)
	for {
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return Descriptor{}, err
		}
		chunk := buf[:min(n, ChunkSize)]
		size += int64(len(chunk))
		if size > MaxSize {
			return Descriptor{}, ErrTooLarge
		}
		out = aead.Seal(out[:0], nonce(index, last), chunk, nil)
		hash.Write(out)
		if _, err := w.Write(out); err != nil {
			return Descriptor{}, err
		}
		if last {
			break
		}
		// Carry the lookahead byte into the next chunk.
		carry := n - ChunkSize
		copy(buf, buf[ChunkSize:n])
		var m int
		m, err = io.ReadFull(r, buf[carry:])
		n = carry + m
		index++
	}
	return Descriptor{Key: key, Size: size, CiphertextSize: CiphertextSize(size), CiphertextHash: hash.Sum(nil)}, nil
}

// Decrypt reads ciphertext from r and writes the plaintext to w. It checks
// every chunk and the ciphertext's size and hash against d before
// returning; on any failure it returns ErrDecrypt, and w may have received
// a prefix of the plaintext, so write to a temporary place and keep it
// only when Decrypt returns nil.
func Decrypt(w io.Writer, r io.Reader, d Descriptor) error {
	aead, err := newAEAD(d.Key)
	if err != nil {
		return err
	}
	var (
		index uint64
		total int64
		hash  = sha256.New()
		buf   = make([]byte, ChunkSize+Overhead+1)
		out   = make([]byte, 0, ChunkSize)
	)
	n, err := io.ReadFull(r, buf)
	for {
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return err
		}
		sealed := buf[:min(n, ChunkSize+Overhead)]
		total += int64(len(sealed))
		if total > d.CiphertextSize || len(sealed) < Overhead {
			return ErrDecrypt
		}
		hash.Write(sealed)
		out, err = aead.Open(out[:0], nonce(index, last), sealed, nil)
		if err != nil {
			return ErrDecrypt
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		if last {
			break
		}
		carry := n - (ChunkSize + Overhead)
		copy(buf, buf[ChunkSize+Overhead:n])
		var m int
		m, err = io.ReadFull(r, buf[carry:])
		n = carry + m
		index++
	}
	if total != d.CiphertextSize || string(hash.Sum(nil)) != string(d.CiphertextHash) {
		return ErrDecrypt
	}
	return nil
}
