package mls

import (
	"bytes"
	"testing"
)

// BenchmarkPrimitives measures each suite's primitives one by one: the
// baseline for the target that a protocol operation cost at most twice the
// sum of the primitives it uses.
func BenchmarkPrimitives(b *testing.B) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(b, cs)
		name := suiteNumber(cs)
		priv, err := s.DeriveKeyPair(bytes.Repeat([]byte{1}, 32))
		if err != nil {
			b.Fatal(err)
		}
		pub := priv.Public()
		pathSecret := bytes.Repeat([]byte{2}, s.Nh())
		context := bytes.Repeat([]byte{3}, 100)
		kemOut, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", context, pathSecret)
		if err != nil {
			b.Fatal(err)
		}
		sk, err := s.GenerateSignatureKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		tbs := bytes.Repeat([]byte{4}, 1024)
		sig, err := s.SignWithLabel(sk, "LeafNodeTBS", tbs)
		if err != nil {
			b.Fatal(err)
		}
		kib := make([]byte, 1024)

		b.Run(name+"/HPKESeal", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", context, pathSecret); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/HPKEOpen", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", context, kemOut, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/DeriveKeyPair", func(b *testing.B) {
			for b.Loop() {
				k, err := s.DeriveKeyPair(pathSecret)
				if err != nil {
					b.Fatal(err)
				}
				_ = k.Public()
			}
		})
		b.Run(name+"/SignWithLabel", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.SignWithLabel(sk, "LeafNodeTBS", tbs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/VerifyWithLabel", func(b *testing.B) {
			for b.Loop() {
				if err := s.VerifyWithLabel(sk.Public(), "LeafNodeTBS", tbs, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/ExpandWithLabel", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.ExpandWithLabel(pathSecret, "path", nil, s.Nh()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/Hash1KiB", func(b *testing.B) {
			b.SetBytes(int64(len(kib)))
			for b.Loop() {
				s.Hash(kib)
			}
		})
	}
}

// BenchmarkSecretTree measures deriving an application key in a group of
// 1,000 members (a 1024-leaf tree): the next key of a leaf already in use
// (one ratchet step), and the first key of a leaf in a fresh tree (ten
// node splits down from the root, the leaf's two ratchets, one step).
func BenchmarkSecretTree(b *testing.B) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		s := mustSuite(b, cs)
		secret := bytes.Repeat([]byte{5}, s.Nh())
		b.Run(suiteNumber(cs)+"/next-key", func(b *testing.B) {
			tree, err := s.NewSecretTree(secret, 1024)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				k, err := tree.Next(500, ApplicationRatchet)
				if err != nil {
					b.Fatal(err)
				}
				k.Erase()
			}
		})
		b.Run(suiteNumber(cs)+"/first-key-of-leaf", func(b *testing.B) {
			for b.Loop() {
				tree, err := s.NewSecretTree(secret, 1024)
				if err != nil {
					b.Fatal(err)
				}
				k, err := tree.Next(500, ApplicationRatchet)
				if err != nil {
					b.Fatal(err)
				}
				k.Erase()
			}
		})
	}
}
