package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

type secretTreeVector struct {
	CipherSuite      CipherSuite `json:"cipher_suite"`
	EncryptionSecret hexBytes    `json:"encryption_secret"`
	SenderData       struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	Leaves [][]struct {
		Generation       uint32   `json:"generation"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
	} `json:"leaves"`
}

// TestConformanceSecretTree checks secret-tree.json: the sender-data key
// and nonce, and for every leaf every listed generation of both ratchets,
// taken as a receiver does (Key, skipping ahead) and as a sender does
// (Next, one generation at a time).
func TestConformanceSecretTree(t *testing.T) {
	var vs []secretTreeVector
	loadVectors(t, "secret-tree", &vs)
	c := newVectorCounts("secret-tree.json")
	keys := 0
	for i := range vs {
		v := &vs[i]
		s := c.suite(t, v.CipherSuite)
		if s == nil {
			continue
		}
		t.Run(fmt.Sprintf("%d/%d-leaves", v.CipherSuite, len(v.Leaves)), func(t *testing.T) {
			keys += checkSecretTree(t, s, v, true)
		})
		for _, pq := range pqSharingSecretTree(v.CipherSuite) {
			t.Run(fmt.Sprintf("%#04x/%d-leaves", uint16(pq), len(v.Leaves)), func(t *testing.T) {
				checkSecretTree(t, mustSuite(t, pq), v, false)
			})
			if len(v.Leaves) == 1 {
				c.crossChecked(pq, v.CipherSuite, "vectors")
			}
		}
	}
	c.detail = fmt.Sprintf("%d key and nonce pairs", keys)
	c.log(t)
}

// pqSharingSecretTree returns the post-quantum suites whose Nh, Nk and Nn
// and KDF are those of cs, so that cs's secret tree vectors apply to them.
func pqSharingSecretTree(cs CipherSuite) []CipherSuite { return pqSharingKDF(cs) }

func checkSecretTree(t *testing.T, s *Suite, v *secretTreeVector, count bool) int {
	t.Helper()
	sd := v.SenderData
	key, nonce, err := s.SenderDataKeyNonce(sd.SenderDataSecret, sd.Ciphertext)
	if err != nil || !bytes.Equal(key, sd.Key) || !bytes.Equal(nonce, sd.Nonce) {
		t.Errorf("sender data key, nonce = %x, %x, %v, want %x, %x", key, nonce, err, []byte(sd.Key), []byte(sd.Nonce))
	}
	n := uint32(len(v.Leaves))
	receiver, err := s.NewSecretTree(v.EncryptionSecret, n)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := s.NewSecretTree(v.EncryptionSecret, n)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for leaf, gens := range v.Leaves {
		for _, g := range gens {
			for _, r := range []struct {
				typ        RatchetType
				key, nonce []byte
			}{
				{HandshakeRatchet, g.HandshakeKey, g.HandshakeNonce},
				{ApplicationRatchet, g.ApplicationKey, g.ApplicationNonce},
			} {
				k, err := receiver.Key(uint32(leaf), r.typ, g.Generation)
				if err != nil || k.Generation != g.Generation || !bytes.Equal(k.Key(), r.key) || !bytes.Equal(k.Nonce(), r.nonce) {
					t.Errorf("leaf %d %s generation %d: Key = %d %x %x, %v, want %x %x", leaf, r.typ, g.Generation, k.Generation, k.Key(), k.Nonce(), err, r.key, r.nonce)
				}
				for {
					k, err := sender.Next(uint32(leaf), r.typ)
					if err != nil {
						t.Fatal(err)
					}
					if k.Generation < g.Generation {
						k.Erase()
						continue
					}
					if k.Generation != g.Generation || !bytes.Equal(k.Key(), r.key) || !bytes.Equal(k.Nonce(), r.nonce) {
						t.Errorf("leaf %d %s generation %d: Next = %d %x %x, want %x %x", leaf, r.typ, g.Generation, k.Generation, k.Key(), k.Nonce(), r.key, r.nonce)
					}
					break
				}
				checked++
			}
		}
	}
	if !count {
		return 0
	}
	return checked
}

// TestSecretTreeMath checks the secret tree's private tree math against
// tree-math.json (every tree there has a power-of-two leaf count).
func newTestTree(t *testing.T, cs CipherSuite, n uint32) *SecretTree {
	t.Helper()
	s := mustSuite(t, cs)
	tree, err := s.NewSecretTree(bytes.Repeat([]byte{1}, s.Nh()), n)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestSecretTreeOutOfOrder: late messages within the window decrypt once,
// replays and keys that fell out of the window do not.
func TestSecretTreeOutOfOrder(t *testing.T) {
	tree := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 8)
	want := map[uint32][]byte{}
	ref := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 8)
	for range 2001 {
		k, err := ref.Next(3, ApplicationRatchet)
		if err != nil {
			t.Fatal(err)
		}
		want[k.Generation] = k.Key()
	}
	get := func(gen uint32) error {
		k, err := tree.Key(3, ApplicationRatchet, gen)
		if w, ok := want[gen]; err == nil && ok && !bytes.Equal(k.Key(), w) {
			t.Fatalf("generation %d: wrong key", gen)
		}
		return err
	}
	for _, step := range []struct {
		gen  uint32
		want error
	}{
		{5, nil},
		{5, ErrKeyConsumed},
		{2, nil},                         // skipped over, kept
		{0, nil},                         // skipped over, kept
		{2, ErrKeyConsumed},              // replay
		{2000, nil},                      // far ahead: 1000 … 1999 are kept
		{999, ErrGenerationTooOld},       // fell out of the window
		{3, ErrGenerationTooOld},         // kept once, pruned since
		{1000, nil},                      // the oldest kept
		{1999, nil},                      // the newest kept
		{1000, ErrKeyConsumed},           // replay within the window
		{2000, ErrKeyConsumed},           // the newest, used
		{2001 + MaxForwardDistance, nil}, // exactly the limit ahead
		{2003 + 2*MaxForwardDistance, ErrGenerationTooFarAhead}, // one past the limit from 2002 + MaxForwardDistance
	} {
		if err := get(step.gen); !errors.Is(err, step.want) {
			t.Fatalf("Key(generation %d) = %v, want %v", step.gen, err, step.want)
		}
	}
	r, _ := tree.ratchet(3, ApplicationRatchet)
	if len(r.skipped) > OutOfOrderWindow {
		t.Errorf("%d keys kept, more than the window of %d", len(r.skipped), OutOfOrderWindow)
	}
	// The other ratchet and the other leaves are untouched.
	if k, err := tree.Key(3, HandshakeRatchet, 0); err != nil || k.Generation != 0 {
		t.Errorf("handshake ratchet: %v", err)
	}
	if _, err := tree.Key(4, ApplicationRatchet, 0); err != nil {
		t.Errorf("leaf 4: %v", err)
	}
}

// TestSecretTreeErasure: every consumed secret is zeroed and dropped.
func TestSecretTreeErasure(t *testing.T) {
	tree := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 4)
	root := tree.nodes[root(4)].bytes()
	k0, err := tree.Next(2, ApplicationRatchet)
	if err != nil {
		t.Fatal(err)
	}
	if !isZeroBytes(root) {
		t.Error("root secret not erased after the split")
	}
	// Leaf 2 is node 4; the frontier is now node 1 (leaves 0, 1), node 6
	// (leaf 3) — and nothing of leaf 2 or the nodes above it.
	for _, n := range []NodeIndex{3, 5, 4} {
		if _, ok := tree.nodes[n]; ok {
			t.Errorf("node %d secret still held", n)
		}
	}
	for _, n := range []NodeIndex{1, 6} {
		if _, ok := tree.nodes[n]; !ok {
			t.Errorf("node %d secret missing", n)
		}
	}
	r, _ := tree.ratchet(2, ApplicationRatchet)
	before := r.secret.bytes()
	if _, err := tree.Next(2, ApplicationRatchet); err != nil {
		t.Fatal(err)
	}
	if !isZeroBytes(before) {
		t.Error("ratchet secret not erased after the step")
	}
	k0.Erase()
	if !isZeroBytes(k0.Key()) || !isZeroBytes(k0.Nonce()) {
		t.Error("RatchetKey.Erase left bytes")
	}
	// Skipped keys handed out leave the ratchet.
	if _, err := tree.Key(2, ApplicationRatchet, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(2, ApplicationRatchet, 3); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.skipped[3]; ok {
		t.Error("handed-out key still kept")
	}
	nodeSecrets := [][]byte{tree.nodes[1].bytes(), tree.nodes[6].bytes(), r.secret.bytes(), r.skipped[4].Key()}
	tree.Erase()
	for i, b := range nodeSecrets {
		if !isZeroBytes(b) {
			t.Errorf("secret %d not erased by SecretTree.Erase", i)
		}
	}
	if _, err := tree.Next(0, ApplicationRatchet); err == nil {
		t.Error("Next after Erase succeeded")
	}
}

func isZeroBytes(b []byte) bool { return len(b) > 0 && bytes.Equal(b, make([]byte, len(b))) }

func TestSecretTreeExhaustion(t *testing.T) {
	tree := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 2)
	r, err := tree.ratchet(0, HandshakeRatchet)
	if err != nil {
		t.Fatal(err)
	}
	r.next = math.MaxUint32 - 1
	for _, want := range []uint32{math.MaxUint32 - 1, math.MaxUint32} {
		k, err := tree.Next(0, HandshakeRatchet)
		if err != nil || k.Generation != want {
			t.Fatalf("Next = %d, %v, want %d", k.Generation, err, want)
		}
	}
	if _, err := tree.Next(0, HandshakeRatchet); !errors.Is(err, ErrRatchetExhausted) {
		t.Errorf("Next past 2^32-1 = %v, want ErrRatchetExhausted", err)
	}
	if _, err := tree.Key(0, HandshakeRatchet, math.MaxUint32); !errors.Is(err, ErrKeyConsumed) {
		t.Errorf("Key(2^32-1) after use = %v, want ErrKeyConsumed", err)
	}
}

func TestSecretTreeMisuse(t *testing.T) {
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	for _, n := range []uint32{0, 3, 5, 1000, 1<<31 + 1, math.MaxUint32} {
		if _, err := s.NewSecretTree(make([]byte, 32), n); err == nil {
			t.Errorf("NewSecretTree over %d leaves succeeded", n)
		}
	}
	if _, err := s.NewSecretTree(make([]byte, 31), 4); err == nil {
		t.Error("NewSecretTree from a short secret succeeded")
	}
	if _, err := s.NewSecretTree(make([]byte, 32), 1<<31); err != nil {
		t.Errorf("NewSecretTree over 2^31 leaves: %v", err)
	}
	tree := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 4)
	if _, err := tree.Next(4, HandshakeRatchet); err == nil {
		t.Error("Next for leaf 4 of 4 succeeded")
	}
	if _, err := tree.Key(0, RatchetType(9), 0); err == nil {
		t.Error("Key for ratchet type 9 succeeded")
	}
	// The largest tree works at its last leaf.
	big, _ := s.NewSecretTree(make([]byte, 32), 1<<31)
	if _, err := big.Next(1<<31-1, ApplicationRatchet); err != nil {
		t.Errorf("last leaf of 2^31: %v", err)
	}
	if len(big.nodes) != 31 {
		t.Errorf("2^31-leaf tree holds %d node secrets after one leaf, want 31", len(big.nodes))
	}
}

// TestSecretTreeLeavesIndependent: every leaf and both ratchets give
// different keys, and the order leaves are first used in does not matter.
func TestSecretTreeLeavesIndependent(t *testing.T) {
	a := newTestTree(t, HotlinePQXWingAES256GCMSHA384Ed25519, 16)
	b := newTestTree(t, HotlinePQXWingAES256GCMSHA384Ed25519, 16)
	seen := map[string]string{}
	for leaf := range uint32(16) {
		for _, typ := range []RatchetType{HandshakeRatchet, ApplicationRatchet} {
			ka, err := a.Next(leaf, typ)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Next(15-leaf, typ); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("leaf %d %s", leaf, typ)
			if prev, ok := seen[string(ka.Key())]; ok {
				t.Errorf("%s and %s share a key", name, prev)
			}
			seen[string(ka.Key())] = name
		}
	}
	for leaf := range uint32(16) {
		ka, _ := a.Next(leaf, ApplicationRatchet)
		kb, _ := b.Next(leaf, ApplicationRatchet)
		if !bytes.Equal(ka.Key(), kb.Key()) {
			t.Errorf("leaf %d: key depends on the order leaves were used in", leaf)
		}
	}
}

func TestSecretTreeRedacted(t *testing.T) {
	tree := newTestTree(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 4)
	k, err := tree.Key(1, ApplicationRatchet, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := tree.ratchet(1, ApplicationRatchet)
	secrets := map[string][]byte{
		"key":            k.Key(),
		"nonce":          k.Nonce(),
		"ratchet secret": r.secret.bytes(),
		"kept key":       r.skipped[1].Key(),
		"node secret":    tree.nodes[5].bytes(),
	}
	type holder struct {
		t  *SecretTree
		tv SecretTree
		k  RatchetKey
	}
	checkRedacted(t, secrets, tree, *tree, k, holder{tree, *tree, k}, &holder{tree, *tree, k}, []RatchetKey{k})
}
