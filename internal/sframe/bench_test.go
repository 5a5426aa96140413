package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
)

// Frame sizes: an Opus frame of 20 ms at 64 kbit/s, and a frame that fills
// a typical RTP packet.
var benchSizes = []int{160, 1200}

// BenchmarkSFrame measures Encrypt and Decrypt of one frame for suites
// 0x0001 and 0x0004, beside the primitives they are built on, measured in
// the same run so their ratio can be reported (docs/benchmarks.md): an
// AES-128-GCM seal and open of the same size with the standard library,
// and AES-128-CTR with HMAC-SHA-256 composed from it.
func BenchmarkSFrame(b *testing.B) {
	metadata := []byte("rtp header ext")
	for _, size := range benchSizes {
		pt := make([]byte, size)
		for _, suite := range []CipherSuite{AES128CTRHMACSHA256_80, AES128GCMSHA256_128} {
			b.Run(fmt.Sprintf("op=encrypt/suite=%#04x/size=%d", uint16(suite), size), func(b *testing.B) {
				send, _ := pair(b, suite, 5, Options{})
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := send.Encrypt(5, metadata, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("op=decrypt/suite=%#04x/size=%d", uint16(suite), size), func(b *testing.B) {
				send, recv := pair(b, suite, 5, Options{})
				// Each frame decrypts once: after a batch, the receive key
				// starts again with an empty window.
				frames := make([][]byte, 1024)
				for i := range frames {
					frames[i], _ = send.Encrypt(5, metadata, pt)
				}
				key := baseKey(suite, 5)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == len(frames) {
						recv.RemoveKey(5)
						recv.AddReceiveKey(5, key)
						i = 0
					}
					if _, err := recv.Decrypt(metadata, frames[i]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}

		// The primitives, on the same header + metadata as AAD.
		key := make([]byte, 16)
		nonce := make([]byte, 12)
		aad := append(Header{KID: 5, CTR: 1000}.Append(nil), metadata...)
		block, _ := aes.NewCipher(key)
		gcm, _ := cipher.NewGCM(block)
		b.Run(fmt.Sprintf("op=primitive-gcm-seal/size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				gcm.Seal(nil, nonce, pt, aad)
			}
		})
		ct := gcm.Seal(nil, nonce, pt, aad)
		b.Run(fmt.Sprintf("op=primitive-gcm-open/size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gcm.Open(nil, nonce, ct, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		mac := hmac.New(sha256.New, make([]byte, 32))
		b.Run(fmt.Sprintf("op=primitive-ctr-hmac-seal/size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var iv [16]byte
			for b.Loop() {
				out := make([]byte, size+10)
				cipher.NewCTR(block, iv[:]).XORKeyStream(out[:size], pt)
				mac.Reset()
				mac.Write(aad)
				mac.Write(out[:size])
				copy(out[size:], mac.Sum(nil))
			}
		})
	}
}
