package mls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// Fuzz and byte-mangling tests of the ratchet tree and TreeKEM: a tree
// from any bytes is decoded and validated without panicking, and an
// UpdatePath from any bytes either applies, to a valid tree with the
// commit_secret its sender meant, or fails and changes nothing.

// FuzzTreeValidate decodes any bytes as a ratchet tree, takes it as a
// Tree, computes every resolution, filtered direct path and tree hash,
// validates it, and tries removing each member. Nothing panics, errors
// wrap the package's sentinels, and a tree re-encodes to its input.
func FuzzTreeValidate(f *testing.F) {
	var vs []treeValidationVector
	loadVectors(f, "tree-validation", &vs)
	per := map[CipherSuite]int{}
	for _, v := range vs {
		if _, err := SuiteFor(v.CipherSuite); err == nil && per[v.CipherSuite] < 3 {
			per[v.CipherSuite]++
			f.Add(uint16(v.CipherSuite), []byte(v.GroupID), []byte(v.Tree))
		}
	}
	f.Fuzz(func(t *testing.T, cs uint16, groupID, data []byte) {
		s, err := SuiteFor(CipherSuite(cs))
		if err != nil {
			s = mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
		}
		checkTreeBytes(t, s, groupID, data, nil)
	})
}

// checkTreeBytes runs every read-only operation on the tree data
// decodes to, and validates it. If wantHash is set, validation against it
// must fail unless data decodes to a tree with that hash.
func checkTreeBytes(t *testing.T, s *Suite, groupID, data, wantHash []byte) {
	t.Helper()
	rt, err := UnmarshalRatchetTree(data)
	if err != nil {
		if !errors.Is(err, ErrDecode) {
			t.Fatalf("decode error %v does not wrap ErrDecode", err)
		}
		return
	}
	tree, err := NewTree(s, rt)
	if err != nil {
		if !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("NewTree error %v does not wrap ErrInvalidTree", err)
		}
		return
	}
	if !bytes.Equal(tree.Marshal(), data) {
		t.Fatal("tree does not re-encode to its input")
	}
	for x := range NodeIndex(len(tree.nodes)) {
		tree.Resolution(x)
	}
	for l := range LeafIndex(tree.Leaves()) {
		tree.FilteredDirectPath(l)
	}
	hash := tree.TreeHash()
	ctx := &GroupContext{Version: MLS10, CipherSuite: s.ID(), GroupID: groupID, TreeHash: hash}
	if wantHash != nil {
		ctx.TreeHash = wantHash
	}
	err = tree.Validate(ctx)
	if err != nil && !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("Validate error %v does not wrap ErrInvalidTree", err)
	}
	if err == nil && wantHash != nil && !bytes.Equal(hash, wantHash) {
		t.Fatal("a tree validated against another tree's hash")
	}
	for _, l := range tree.Members() {
		c := tree.Clone()
		if err := c.RemoveLeaf(l); err != nil && !errors.Is(err, ErrInvalidTreeChange) {
			t.Fatalf("RemoveLeaf error %v does not wrap ErrInvalidTreeChange", err)
		}
		c.TreeHash()
		c.VerifyParentHashes()
	}
	if !bytes.Equal(tree.TreeHash(), hash) || !bytes.Equal(tree.Marshal(), data) {
		t.Fatal("reading the tree changed it")
	}
}

// TestTreeMangled flips each bit of some vector trees: no change passes
// validation against the original tree hash, and nothing panics.
func TestTreeMangled(t *testing.T) {
	var vs []treeValidationVector
	loadVectors(t, "tree-validation", &vs)
	s := mustSuite(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	checked := 0
	for _, v := range vs {
		if v.CipherSuite != s.ID() || len(v.Tree) > 4000 {
			continue
		}
		hash := mustTree(t, s, v.Tree).TreeHash()
		for i := range v.Tree {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(v.Tree)
				b[i] ^= bit
				checkTreeBytes(t, s, v.GroupID, b, hash)
				checked++
			}
		}
		if checked > 6000 {
			break
		}
	}
	t.Logf("%d mangled trees", checked)
}

// updatePathFixture is a vector's group with, for each member as sender,
// its update path and the commit_secret it carries.
type updatePathFixture struct {
	g       *treeKEMGroup
	paths   map[LeafIndex][]byte
	secrets map[LeafIndex][]byte
}

func loadUpdatePathFixture(t testing.TB) *updatePathFixture {
	g, v := treeKEMVectorGroup(t, 4)
	fx := &updatePathFixture{g: g, paths: map[LeafIndex][]byte{}, secrets: map[LeafIndex][]byte{}}
	for _, up := range v.UpdatePaths {
		fx.paths[up.Sender] = up.UpdatePath
		fx.secrets[up.Sender] = up.CommitSecret
	}
	return fx
}

// check applies the path data decodes to, from sender, at receiver: an
// error must wrap a sentinel and leave tree and keys unchanged; success
// must give a valid tree and the commit_secret the sender's real path
// carries.
func (fx *updatePathFixture) check(t *testing.T, sender, receiver LeafIndex, data []byte) {
	t.Helper()
	var path UpdatePath
	if err := unmarshalCopy(data, &path); err != nil {
		return
	}
	g := fx.g
	tree, keys := g.tree.Clone(), g.keys[receiver].Clone()
	before, hash, nodes := tree.Marshal(), tree.TreeHash(), keys.Nodes()
	commit, err := tree.ApplyUpdatePath(keys, sender, &path, g.ctx, nil)
	if err != nil {
		if !errors.Is(err, ErrInvalidUpdatePath) && !errors.Is(err, ErrPrivateKeyMismatch) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if !bytes.Equal(tree.Marshal(), before) || !bytes.Equal(tree.TreeHash(), hash) || !slices.Equal(keys.Nodes(), nodes) {
			t.Fatal("a failed ApplyUpdatePath changed the tree or the keys")
		}
		return
	}
	if want := fx.secrets[sender]; !bytes.Equal(commit, want) {
		t.Fatalf("accepted a path from %d with commit secret %x, want %x", sender, commit, want)
	}
	ctx := g.ctx
	ctx.TreeHash = tree.TreeHash()
	if err := tree.Validate(&ctx); err != nil {
		t.Fatalf("accepted a path leading to an invalid tree: %v", err)
	}
	checkTreeInvariant(t, tree, keys)
}

// receiverFor picks a member with private keys other than sender.
func (fx *updatePathFixture) receiverFor(sender LeafIndex, pick uint8) LeafIndex {
	var rs []LeafIndex
	for l := range fx.g.keys {
		if l != sender {
			rs = append(rs, l)
		}
	}
	slices.Sort(rs)
	return rs[int(pick)%len(rs)]
}

// FuzzApplyUpdatePath applies any bytes as an UpdatePath from any leaf to
// a vector's group (see updatePathFixture.check).
func FuzzApplyUpdatePath(f *testing.F) {
	fx := loadUpdatePathFixture(f)
	for sender, b := range fx.paths {
		f.Add(uint32(sender), uint8(0), b)
		f.Add(uint32(sender), uint8(1), b)
	}
	f.Fuzz(func(t *testing.T, sender uint32, pick uint8, data []byte) {
		from := LeafIndex(sender % (fx.g.tree.Leaves() + 1))
		fx.check(t, from, fx.receiverFor(from, pick), data)
	})
}

// TestApplyUpdatePathMangled flips each bit of the first byte and of every
// seventh byte of a vector's update paths, for two receivers.
func TestApplyUpdatePathMangled(t *testing.T) {
	fx := loadUpdatePathFixture(t)
	checked := 0
	for sender, b := range fx.paths {
		for i := 0; i < len(b); i += 7 {
			for _, bit := range []byte{0x01, 0x40} {
				m := bytes.Clone(b)
				m[i] ^= bit
				for pick := range uint8(2) {
					fx.check(t, sender, fx.receiverFor(sender, pick), m)
					checked++
				}
			}
		}
		if checked > 3000 {
			break
		}
	}
	t.Logf("%d mangled update paths", checked)
}
