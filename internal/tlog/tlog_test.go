package tlog

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	sumtlog "golang.org/x/mod/sumdb/tlog"
)

func unhex(tb testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestRFC6962Vectors checks the tree of the RFC 6962 reference
// implementation's test data, and the hash domain separation.
func TestRFC6962Vectors(t *testing.T) {
	empty := EmptyTreeHash()
	if got, want := hex.EncodeToString(empty[:]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Errorf("EmptyTreeHash() = %s, want %s", got, want)
	}
	tests := []struct{ leaf, root string }{
		{"", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		{"00", "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
		{"10", "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"},
		{"2021", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
		{"3031", "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"},
		{"40414243", "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"},
		{"5051525354555657", "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"},
		{"606162636465666768696a6b6c6d6e6f", "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"},
	}
	var store hashStore
	for i, tt := range tests {
		hs, err := sumtlog.StoredHashes(int64(i), unhex(t, tt.leaf), store)
		if err != nil {
			t.Fatal(err)
		}
		store = append(store, hs...)
		root, err := TreeHash(int64(i+1), store)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(root[:]); got != tt.root {
			t.Errorf("root of %d leaves = %s, want %s", i+1, got, tt.root)
		}
	}

	// Leaves are SHA-256(0x00 || data), nodes SHA-256(0x01 || left || right).
	a, b := []byte("a"), []byte("b")
	ha, hb := sha([]byte{0}, a), sha([]byte{0}, b)
	if got := sumtlog.RecordHash(a); got != ha {
		t.Errorf("leaf hash = %v, want %v", got, ha)
	}
	root := sha([]byte{1}, ha[:], hb[:])
	pa, pb := []Hash{hb}, []Hash{ha}
	if err := VerifyInclusion(pa, 0, 2, a, root); err != nil {
		t.Error(err)
	}
	if err := VerifyInclusion(pb, 1, 2, b, root); err != nil {
		t.Error(err)
	}
	// The node's preimage is not a leaf of a one-leaf tree with that root.
	if err := VerifyInclusion(nil, 0, 1, append(ha[:], hb[:]...), root); !errors.Is(err, ErrVerify) {
		t.Errorf("node preimage as leaf: err = %v, want ErrVerify", err)
	}
	if err := VerifyInclusion(nil, 0, 1, a, sha(a)); !errors.Is(err, ErrVerify) {
		t.Errorf("unprefixed leaf hash: err = %v, want ErrVerify", err)
	}
}

func toBytes(p []Hash) [][]byte {
	b := make([][]byte, len(p))
	for i := range p {
		b[i] = p[i][:]
	}
	return b
}

// mangled returns variants of a valid proof that must not verify.
func mangled(p []Hash) map[string][]Hash {
	m := map[string][]Hash{"extra hash": append(slices.Clone(p), Hash{})}
	if len(p) > 0 {
		flipped := slices.Clone(p)
		flipped[len(p)/2][7] ^= 1
		m["flipped bit"] = flipped
		m["truncated"] = p[:len(p)-1]
	}
	return m
}

// TestTreeCrossCheck checks tree hashes and proofs made by sumdb/tlog against
// transparency-dev/merkle, an independent implementation.
func TestTreeCrossCheck(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var sizes []int64
	for n := range int64(71) {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 1000, 71+r.Int64N(2000), 71+r.Int64N(2000))
	store := buildTree(t, slices.Max(sizes))
	h := rfc6962.DefaultHasher
	rf := &compact.RangeFactory{Hash: h.HashChildren}

	for _, n := range sizes {
		root, err := TreeHash(n, store)
		if err != nil {
			t.Fatal(err)
		}
		cr := rf.NewEmptyRange(0)
		for i := range n {
			if err := cr.Append(h.HashLeaf(leafData(i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		want, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			want = h.EmptyRoot()
		}
		if string(root[:]) != string(want) {
			t.Fatalf("TreeHash(%d) = %x, compact range root %x", n, root, want)
		}

		// Every index in small trees, a sample in large ones.
		sample := func() []int64 {
			if n <= 70 {
				var all []int64
				for i := range n {
					all = append(all, i)
				}
				return all
			}
			s := []int64{0, n - 1}
			for range 40 {
				s = append(s, r.Int64N(n))
			}
			return s
		}

		for _, i := range sample() {
			p, err := sumtlog.ProveRecord(n, i, store)
			if err != nil {
				t.Fatal(err)
			}
			leafHash := h.HashLeaf(leafData(i))
			if err := VerifyInclusion(p, i, n, leafData(i), root); err != nil {
				t.Errorf("VerifyInclusion(index %d, size %d): %v", i, n, err)
			}
			if err := proof.VerifyInclusion(h, uint64(i), uint64(n), leafHash, toBytes(p), root[:]); err != nil {
				t.Errorf("merkle VerifyInclusion(index %d, size %d): %v", i, n, err)
			}
			if err := VerifyInclusion(p, i, n, leafData(i+1), root); !errors.Is(err, ErrVerify) {
				t.Errorf("VerifyInclusion(index %d, size %d) of another leaf: err = %v", i, n, err)
			}
			for name, bad := range mangled(p) {
				err1 := VerifyInclusion(bad, i, n, leafData(i), root)
				err2 := proof.VerifyInclusion(h, uint64(i), uint64(n), leafHash, toBytes(bad), root[:])
				if !errors.Is(err1, ErrVerify) || err2 == nil {
					t.Errorf("inclusion(index %d, size %d) with %s proof: err = %v, merkle err = %v", i, n, name, err1, err2)
				}
			}
		}

		for _, m := range append(sample(), n) {
			old, err := TreeHash(m, store)
			if err != nil {
				t.Fatal(err)
			}
			var p []Hash
			if m > 0 {
				if p, err = sumtlog.ProveTree(n, m, store); err != nil {
					t.Fatal(err)
				}
			}
			if err := VerifyConsistency(p, m, old, n, root); err != nil {
				t.Errorf("VerifyConsistency(%d, %d): %v", m, n, err)
			}
			if err := proof.VerifyConsistency(h, uint64(m), uint64(n), toBytes(p), old[:], root[:]); err != nil {
				t.Errorf("merkle VerifyConsistency(%d, %d): %v", m, n, err)
			}
			for name, bad := range mangled(p) {
				err1 := VerifyConsistency(bad, m, old, n, root)
				err2 := proof.VerifyConsistency(h, uint64(m), uint64(n), toBytes(bad), old[:], root[:])
				if !errors.Is(err1, ErrVerify) || err2 == nil {
					t.Errorf("consistency(%d, %d) with %s proof: err = %v, merkle err = %v", m, n, name, err1, err2)
				}
			}
		}
	}
}

func TestProofEdges(t *testing.T) {
	store := buildTree(t, 8)
	root := func(n int64) Hash {
		h, err := TreeHash(n, store)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	p35, err := sumtlog.ProveTree(5, 3, store)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := sumtlog.ProveRecord(5, 2, store)
	if err != nil {
		t.Fatal(err)
	}
	empty := EmptyTreeHash()
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"inclusion", VerifyInclusion(p2, 2, 5, leafData(2), root(5)), true},
		{"inclusion in empty tree", VerifyInclusion(nil, 0, 0, leafData(0), empty), false},
		{"inclusion at negative index", VerifyInclusion(p2, -1, 5, leafData(2), root(5)), false},
		{"inclusion at index = size", VerifyInclusion(p2, 5, 5, leafData(2), root(5)), false},
		{"inclusion in huge tree", VerifyInclusion(make([]Hash, 3), 5, 1<<62+1, leafData(2), root(5)), false},
		{"consistency", VerifyConsistency(p35, 3, root(3), 5, root(5)), true},
		{"empty to empty", VerifyConsistency(nil, 0, empty, 0, empty), true},
		{"empty to empty, other root", VerifyConsistency(nil, 0, empty, 0, root(1)), false},
		{"empty to 5", VerifyConsistency(nil, 0, empty, 5, root(5)), true},
		{"empty to 5, bad old root", VerifyConsistency(nil, 0, root(1), 5, root(5)), false},
		{"empty to 5, with proof", VerifyConsistency(p35, 0, empty, 5, root(5)), false},
		{"5 to 5", VerifyConsistency(nil, 5, root(5), 5, root(5)), true},
		{"5 to 5, fork", VerifyConsistency(nil, 5, root(5), 5, root(4)), false},
		{"5 to 5, with proof", VerifyConsistency(p35, 5, root(5), 5, root(5)), false},
		{"5 to 3", VerifyConsistency(p35, 5, root(5), 3, root(3)), false},
		{"negative old size", VerifyConsistency(nil, -1, empty, 3, root(3)), false},
		{"huge new size", VerifyConsistency(make([]Hash, 3), 3, root(3), 1<<62+1, root(5)), false},
	}
	for _, tt := range tests {
		if tt.ok && tt.err != nil || !tt.ok && !errors.Is(tt.err, ErrVerify) {
			t.Errorf("%s: err = %v, want ok = %v", tt.name, tt.err, tt.ok)
		}
	}
	if _, err := TreeHash(-1, store); err == nil {
		t.Error("TreeHash(-1) succeeded")
	}
}

func TestCheckConsistent(t *testing.T) {
	store := buildTree(t, 8)
	cp := func(n int64) Checkpoint {
		h, err := TreeHash(n, store)
		if err != nil {
			t.Fatal(err)
		}
		return Checkpoint{Origin: testOrigin, Size: n, Hash: h}
	}
	p, err := sumtlog.ProveTree(7, 3, store)
	if err != nil {
		t.Fatal(err)
	}
	fork := cp(7)
	fork.Hash[0] ^= 1
	other := cp(7)
	other.Origin = "other.example"
	tests := []struct {
		name  string
		a, b  Checkpoint
		proof []Hash
		ok    bool
	}{
		{"same", cp(7), cp(7), nil, true},
		{"older first", cp(3), cp(7), p, true},
		{"newer first", cp(7), cp(3), p, true},
		{"from empty", cp(0), cp(7), nil, true},
		{"fork", cp(7), fork, nil, false},
		{"proof to fork", cp(3), fork, p, false},
		{"wrong proof", cp(4), cp(7), p, false},
		{"other log", cp(7), other, nil, false},
	}
	for _, tt := range tests {
		err := CheckConsistent(tt.a, tt.b, tt.proof)
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrVerify) {
			t.Errorf("%s: err = %v, want ok = %v", tt.name, err, tt.ok)
		}
	}
}

func TestProofEncoding(t *testing.T) {
	store := buildTree(t, 1000)
	p, err := sumtlog.ProveRecord(1000, 617, store)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(EncodeProof(p))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProof(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Hash(p), got); diff != "" {
		t.Errorf("proof round trip (-want +got):\n%s", diff)
	}
	if b, _ := json.Marshal(EncodeProof(nil)); string(b) != "[]" {
		t.Errorf("empty proof encodes as %s, want []", b)
	}

	zero := Hash{}.String()
	bad := map[string][]string{
		"65 hashes":      slices.Repeat([]string{zero}, 65),
		"not base64":     {"not base64!"},
		"31 bytes":       {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="},
		"33 bytes":       {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"padding bits":   {zero[:42] + "B="},
		"no padding":     {zero[:43]},
		"newline inside": {zero[:20] + "\n" + zero[20:]},
		"url alphabet":   {"_" + zero[1:]},
		"empty":          {""},
	}
	for name, s := range bad {
		if _, err := DecodeProof(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeProof(%s): err = %v, want ErrMalformed", name, err)
		}
	}
	if p, err := DecodeProof(slices.Repeat([]string{zero}, 64)); err != nil || len(p) != 64 {
		t.Errorf("DecodeProof(64 hashes) = %d hashes, %v", len(p), err)
	}
}

func FuzzVerifyInclusion(f *testing.F) {
	const n = 37
	store := buildTree(f, n)
	roots := make([]Hash, n+1)
	for i := range roots {
		h, err := TreeHash(int64(i), store)
		if err != nil {
			f.Fatal(err)
		}
		roots[i] = h
	}
	for _, tt := range []struct{ index, size int64 }{{0, 1}, {3, 4}, {17, 37}, {36, 37}, {5, 6}} {
		p, err := sumtlog.ProveRecord(tt.size, tt.index, store)
		if err != nil {
			f.Fatal(err)
		}
		var b []byte
		for _, h := range p {
			b = append(b, h[:]...)
		}
		f.Add(b, tt.index, tt.size, leafData(tt.index))
		f.Add(b[min(len(b), 3):], tt.index, tt.size, leafData(tt.index))
		f.Add(b, tt.index+1, tt.size, leafData(tt.index))
	}
	f.Add([]byte{}, int64(-1), int64(1<<62+5), []byte{})
	f.Fuzz(func(t *testing.T, b []byte, index, size int64, leaf []byte) {
		var p []Hash
		for ; len(b) >= 32; b = b[32:] {
			p = append(p, Hash(b[:32]))
		}
		var root Hash
		if size >= 0 && size <= n {
			root = roots[size]
		}
		err := VerifyInclusion(p, index, size, leaf, root)
		if err != nil && !errors.Is(err, ErrVerify) {
			t.Fatalf("error does not wrap ErrVerify: %v", err)
		}
		if index >= 0 && size > 0 {
			merr := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), rfc6962.DefaultHasher.HashLeaf(leaf), toBytes(p), root[:])
			if (err == nil) != (merr == nil) {
				t.Fatalf("VerifyInclusion: %v, merkle: %v", err, merr)
			}
		}
		if err != nil {
			return
		}
		if size > n || string(leaf) != string(leafData(index)) {
			t.Fatalf("verified leaf %q at index %d in tree of size %d", leaf, index, size)
		}
		want, err := sumtlog.ProveRecord(size, index, store)
		if err != nil || !slices.Equal(p, want) {
			t.Fatalf("verified proof %v, want %v", p, want)
		}
	})
}
