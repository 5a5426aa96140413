package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestHPKEPrivateBytesOwned: the bytes PrivateBytes returns and the bytes
// ParseHPKEPrivateKey and DeriveKeyPair read are the caller's to erase,
// in every suite (for X-Wing, crypto/hpke's keys keep their seed slice).
func TestHPKEPrivateBytesOwned(t *testing.T) {
	for _, cs := range ImplementedSuites() {
		s := mustSuite(t, cs)
		k, err := s.DeriveKeyPair(bytes.Repeat([]byte{7}, s.ikmSize))
		if err != nil {
			t.Fatal(err)
		}
		want, err := k.PrivateBytes()
		want = bytes.Clone(want)
		if err != nil || isZeroBytes(want) {
			t.Fatalf("suite %s: PrivateBytes after DeriveKeyPair: %x, %v", suiteNumber(cs), want, err)
		}
		b, _ := k.PrivateBytes()
		clear(b)
		if again, _ := k.PrivateBytes(); !bytes.Equal(again, want) {
			t.Errorf("suite %s: erasing PrivateBytes' result changed the key", suiteNumber(cs))
		}
		in := bytes.Clone(want)
		k2, err := s.ParseHPKEPrivateKey(in)
		if err != nil {
			t.Fatal(err)
		}
		clear(in)
		if got, _ := k2.PrivateBytes(); !bytes.Equal(got, want) {
			t.Errorf("suite %s: erasing ParseHPKEPrivateKey's input changed the key", suiteNumber(cs))
		}
	}
}

// stateFixture returns a three-member group's state at member 1 with a
// cached proposal, an own Update proposal, kept resumption PSKs and used
// ratchets, and the client.
func stateFixture(t testing.TB, cs CipherSuite) (*sim, *client) {
	t.Helper()
	sm := newSim(t, cs, 11, nil)
	b, c := newClient(t, sm.s, sm.rand, "member 1"), newClient(t, sm.s, sm.rand, "member 2")
	sm.commit(sm.members[0], CommitOptions{Adds: []*KeyPackage{b.kp, c.kp}}, b, c)
	sm.commit(sm.members[2], CommitOptions{Update: true})
	sm.chat()
	sm.chat()
	u, err := b.g.ProposeUpdate(sm.rand, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(u, b)
	r, err := sm.members[0].g.ProposeRemove(2)
	if err != nil {
		t.Fatal(err)
	}
	sm.deliver(r, sm.members[0])
	return sm, b
}

// TestGroupStatePending: a state stored while a commit is pending resumes
// with it, and MergePending then works as without the round trip.
func TestGroupStatePending(t *testing.T) {
	sm, b := stateFixture(t, HotlinePQXWingAES256GCMSHA384Ed25519)
	d := newClient(t, sm.s, sm.rand, "member 3")
	res, err := b.g.Commit(sm.rand, CommitOptions{IncludePending: true, Adds: []*KeyPackage{d.kp}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalGroupState(state(t, b.g), b.signer, b.g.opts)
	if err != nil {
		t.Fatal(err)
	}
	b.g = g
	if !g.HasPendingCommit() {
		t.Fatal("the pending commit was not stored")
	}
	sm.deliver(res.Commit, b)
	// The delivery service echoes the commit to its sender: that merges.
	p, err := g.Process(res.Commit)
	if err != nil || !p.OwnCommit {
		t.Fatalf("own commit echoed: %+v, %v", p, err)
	}
	sm.members = sm.members[:2] // member 2 was removed
	j, err := JoinFromWelcome(res.Welcome.Welcome, d.kp, d.secrets, d.signer, g.RatchetTree(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.g = j
	sm.members = append(sm.members, d)
	sm.check()
	sm.chat()
}

// TestGroupStateStrict: every truncation of a stored state is refused,
// and so are a wrong signer, an unknown version and trailing bytes;
// flipping any byte never panics, and whatever still decodes re-encodes
// to itself.
func TestGroupStateStrict(t *testing.T) {
	sm, b := stateFixture(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	st := state(t, b.g)
	for n := range len(st) {
		if _, err := UnmarshalGroupState(st[:n], b.signer, GroupOptions{}); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(st), err)
		}
	}
	if _, err := UnmarshalGroupState(append(bytes.Clone(st), 0), b.signer, GroupOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("trailing byte: %v", err)
	}
	v := bytes.Clone(st)
	v[len(stateMagic)]++
	if _, err := UnmarshalGroupState(v, b.signer, GroupOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("version %d: %v", v[len(stateMagic)], err)
	}
	if _, err := UnmarshalGroupState(st, sm.members[0].signer, GroupOptions{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("another member's signer: %v", err)
	}
	decoded := 0
	for i := range st {
		m := bytes.Clone(st)
		m[i] ^= 0x41
		g, err := UnmarshalGroupState(m, b.signer, GroupOptions{})
		if err != nil {
			continue
		}
		decoded++
		again, err := g.MarshalState()
		if err != nil || !bytes.Equal(again, m) {
			t.Fatalf("byte %d flipped: decodes but re-encodes differently (%v)", i, err)
		}
	}
	t.Logf("%d-byte state: %d single-byte manglings still decode (secret bytes)", len(st), decoded)
}

func FuzzUnmarshalGroupState(f *testing.F) {
	_, b := stateFixture(f, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	f.Add(state(f, b.g))
	f.Add([]byte("HMLG\x01"))
	split, err := b.g.MarshalStateWithoutTree()
	if err != nil {
		f.Fatal(err)
	}
	tree := b.g.MarshalTree()
	f.Add(split)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A state stored apart from its tree is refused alone, and with
		// the tree decodes only as its own encoding.
		if g, err := UnmarshalGroupStateWithTree(data, tree, b.signer, GroupOptions{}); err == nil {
			if again, err := g.MarshalStateWithoutTree(); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("decodes with the tree but re-encodes differently (%v)", err)
			}
		} else if !errors.Is(err, ErrInvalidState) {
			t.Fatalf("error not wrapping ErrInvalidState: %v", err)
		}
		g, err := UnmarshalGroupState(data, b.signer, GroupOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error not wrapping ErrInvalidState: %v", err)
			}
			return
		}
		again, err := g.MarshalState()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decodes but re-encodes differently (%v)", err)
		}
	})
}

// TestGroupStateWithoutTree: a state stored without its tree resumes with
// the tree stored apart, and the group goes on as without the round trip;
// the tree of another epoch, none, or one for a state that holds its own,
// are refused.
func TestGroupStateWithoutTree(t *testing.T) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, HotlinePQXWingAES256GCMSHA384Ed25519} {
		sm, b := stateFixture(t, cs)
		full := state(t, b.g)
		st, err := b.g.MarshalStateWithoutTree()
		if err != nil {
			t.Fatal(err)
		}
		tree := b.g.MarshalTree()
		if len(st)+len(tree) >= len(full)+len(tree) || len(st) >= len(full) {
			t.Errorf("suite %s: %d bytes without the tree, %d with it", suiteNumber(cs), len(st), len(full))
		}
		g, err := UnmarshalGroupStateWithTree(st, tree, b.signer, b.g.opts)
		if err != nil {
			t.Fatal(err)
		}
		if again := state(t, g); !bytes.Equal(again, full) {
			t.Fatalf("suite %s: the group restored with its tree apart stores differently", suiteNumber(cs))
		}
		for name, try := range map[string]func() error{
			"no tree": func() error { _, err := UnmarshalGroupState(st, b.signer, GroupOptions{}); return err },
			"a tree for a whole state": func() error {
				_, err := UnmarshalGroupStateWithTree(full, tree, b.signer, GroupOptions{})
				return err
			},
			"a truncated tree": func() error {
				_, err := UnmarshalGroupStateWithTree(st, tree[:len(tree)-1], b.signer, GroupOptions{})
				return err
			},
		} {
			if err := try(); !errors.Is(err, ErrInvalidState) {
				t.Errorf("suite %s, %s: %v", suiteNumber(cs), name, err)
			}
		}
		b.g = g
		sm.commit(sm.members[0], CommitOptions{Update: true, IncludePending: true})
		sm.chat()
		if _, err := UnmarshalGroupStateWithTree(st, b.g.MarshalTree(), b.signer, GroupOptions{}); !errors.Is(err, ErrInvalidState) {
			t.Errorf("suite %s: the next epoch's tree with this epoch's state: %v", suiteNumber(cs), err)
		}
		sm.check()
	}
}
