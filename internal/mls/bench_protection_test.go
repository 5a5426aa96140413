package mls

import (
	"bytes"
	"fmt"
	"testing"
)

// benchSuites are the suites the per-message figures are measured for: the
// mandatory suite and Hotline's default.
var benchSuites = []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519}

// benchSizes are the application message sizes measured.
var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"10KiB", 10 << 10}}

// BenchmarkProtect measures protecting and opening one message: an
// application message as a PrivateMessage (sign, one ratchet step, two
// AEAD encryptions; open: the reverse and a signature check), and a
// proposal as a PublicMessage (sign and MAC; open: MAC and signature
// check). Compare with the sum of the primitives they use:
// BenchmarkPrimitivesAEAD, BenchmarkPrimitives/SignWithLabel and
// VerifyWithLabel, and BenchmarkSecretTree/next-key.
func BenchmarkProtect(b *testing.B) {
	for _, cs := range benchSuites {
		name := suiteNumber(cs)
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/private-protect-%s", name, size.name), func(b *testing.B) {
				g, sender := newBenchGroup(b, cs)
				c := g.content(0, ContentApplication)
				c.ApplicationData = bytes.Repeat([]byte{'x'}, size.n)
				b.SetBytes(int64(size.n))
				for b.Loop() {
					g.protectPrivate(b, sender, c, 0)
				}
			})
			b.Run(fmt.Sprintf("%s/private-open-%s", name, size.name), func(b *testing.B) {
				g, sender := newBenchGroup(b, cs)
				receiver := g.tree(b)
				c := g.content(0, ContentApplication)
				c.ApplicationData = bytes.Repeat([]byte{'x'}, size.n)
				b.SetBytes(int64(size.n))
				for b.Loop() {
					b.StopTimer()
					m := g.protectPrivate(b, sender, c, 0)
					b.StartTimer()
					if _, err := g.openPrivate(receiver, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(name+"/public-protect", func(b *testing.B) {
			g, _ := newBenchGroup(b, cs)
			c := g.content(0, ContentProposal)
			for b.Loop() {
				g.protectPublic(b, c)
			}
		})
		b.Run(name+"/public-open", func(b *testing.B) {
			g, _ := newBenchGroup(b, cs)
			m := g.protectPublic(b, g.content(0, ContentProposal))
			for b.Loop() {
				if _, err := g.openPublic(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newBenchGroup(b *testing.B, cs CipherSuite) (*testGroup, *SecretTree) {
	b.Helper()
	g := newTestGroup(b, cs, 2)
	return g, g.tree(b)
}

// BenchmarkPrimitivesAEAD completes BenchmarkPrimitives with the
// primitives of message protection at the sizes BenchmarkProtect uses:
// the content AEAD, the sender-data AEAD with its key derivation, and
// the signature over the content.
func BenchmarkPrimitivesAEAD(b *testing.B) {
	for _, cs := range benchSuites {
		s := mustSuite(b, cs)
		name := suiteNumber(cs)
		key, nonce := bytes.Repeat([]byte{1}, s.Nk()), bytes.Repeat([]byte{2}, s.Nn())
		aad := bytes.Repeat([]byte{3}, 40)
		sds := bytes.Repeat([]byte{4}, s.Nh())
		sk, err := s.GenerateSignatureKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, size := range benchSizes {
			pt := bytes.Repeat([]byte{'x'}, size.n)
			ct, err := s.AEADSeal(key, nonce, aad, pt)
			if err != nil {
				b.Fatal(err)
			}
			sig, err := s.SignWithLabel(sk, "FramedContentTBS", pt)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/AEADSeal-%s", name, size.name), func(b *testing.B) {
				b.SetBytes(int64(size.n))
				for b.Loop() {
					if _, err := s.AEADSeal(key, nonce, aad, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/AEADOpen-%s", name, size.name), func(b *testing.B) {
				b.SetBytes(int64(size.n))
				for b.Loop() {
					if _, err := s.AEADOpen(key, nonce, aad, ct); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/SignWithLabel-%s", name, size.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := s.SignWithLabel(sk, "FramedContentTBS", pt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/VerifyWithLabel-%s", name, size.name), func(b *testing.B) {
				for b.Loop() {
					if err := s.VerifyWithLabel(sk.Public(), "FramedContentTBS", pt, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		sdPlain := make([]byte, 12)
		ct := bytes.Repeat([]byte{5}, 200)
		b.Run(name+"/SenderDataSeal", func(b *testing.B) {
			for b.Loop() {
				k, n, err := s.SenderDataKeyNonce(sds, ct)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.AEADSeal(k, n, aad, sdPlain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
