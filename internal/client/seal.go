package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Conversation state and history are sealed at rest with a key only this
// device can derive: HKDF-SHA256 over the device's Ed25519 signature of a
// fixed label (deterministic, so the key is the same on every start and is
// never written anywhere). A copy of the conversation files without
// device.key opens nothing.

const stateKeyLabel = "hotline-state-key v1 "

// ErrSealed is wrapped when a sealed profile file does not open: it was
// altered, or belongs to another device.
var ErrSealed = errors.New("sealed profile file does not open")

func (c *Client) stateAEAD() (cipher.AEAD, error) {
	c.sealOnce.Do(func() {
		sig := c.sig.Sign([]byte(stateKeyLabel + c.sig.Public().DeviceID()))
		key, err := hkdf.Key(sha256.New, sig, nil, "hotline profile sealing key", 32)
		clear(sig)
		if err != nil {
			c.sealErr = err
			return
		}
		block, err := aes.NewCipher(key)
		clear(key)
		if err != nil {
			c.sealErr = err
			return
		}
		c.sealAEAD, c.sealErr = cipher.NewGCM(block)
	})
	return c.sealAEAD, c.sealErr
}

// seal encrypts plaintext bound to what it is (kind, name): a sealed file
// moved to another name does not open.
func (c *Client) seal(kind, name string, plaintext []byte) ([]byte, error) {
	aead, err := c.stateAEAD()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(kind+"\x00"+name)), nil
}

func (c *Client) open(kind, name string, sealed []byte) ([]byte, error) {
	aead, err := c.stateAEAD()
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: %s %s is truncated", ErrSealed, kind, name)
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(kind+"\x00"+name))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s", ErrSealed, kind, name)
	}
	return pt, nil
}

// appendSealed appends sealed records (each a 4-byte length, then the
// record) to a log file in one write.
func (c *Client) appendSealed(path, kind, name string, plaintexts ...[]byte) error {
	var buf []byte
	for _, pt := range plaintexts {
		rec, err := c.seal(kind, name, pt)
		if err != nil {
			return err
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(rec)))
		buf = append(buf, rec...)
	}
	return c.st.AppendFile(path, buf)
}

// readSealed returns a log file's records in order. A torn last record (a
// crash mid-append) is ignored; a record that does not open is an error.
func (c *Client) readSealed(path, kind, name string) ([][]byte, error) {
	b, err := c.st.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			break
		}
		pt, err := c.open(kind, name, b[4:4+n])
		if err != nil {
			return nil, fmt.Errorf("%s record %d: %w", path, len(out), err)
		}
		out = append(out, pt)
		b = b[4+n:]
	}
	return out, nil
}
