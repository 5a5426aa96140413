package sframe_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/cryptotest"

	"hotline/internal/mls"
	"hotline/internal/sframe"
)

// member is one device of an MLS group with its own SFrame keys: nothing
// is shared between members but the MLS messages a delivery service would
// carry.
type member struct {
	name    string
	suite   *mls.Suite
	signer  mls.SignaturePrivateKey
	kp      *mls.KeyPackage
	secrets mls.KeyPackageSecrets
	g       *mls.Group
	sf      *sframe.MLSContext
}

func newMember(t *testing.T, s *mls.Suite, name string, cs sframe.CipherSuite, opts sframe.MLSOptions) *member {
	t.Helper()
	sig, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	kp, sec, err := s.NewKeyPackage(nil, mls.Credential{Type: mls.CredentialBasic, Identity: []byte(name)}, sig,
		mls.Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}, mls.DefaultCapabilities(s.ID(), nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	sf, err := sframe.NewMLSContext(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &member{name: name, suite: s, signer: sig, kp: kp, secrets: sec, sf: sf}
}

// groupSize is one more than the highest leaf index in use.
func groupSize(g *mls.Group) uint32 {
	var n uint32
	for _, m := range g.Members() {
		n = max(n, uint32(m.Index)+1)
	}
	return n
}

// enterEpoch gives the member's SFrame keys the group's current epoch.
func (m *member) enterEpoch(t *testing.T) {
	t.Helper()
	err := m.sf.AddEpoch(sframe.MLSEpoch{
		Number: m.g.Epoch(), Self: uint32(m.g.MyLeaf()), GroupSize: groupSize(m.g), Export: m.g.Export,
	})
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
}

// commit has c commit opts; the others in the group process it, joiners
// join, and everyone still in the group enters the new epoch.
func commit(t *testing.T, c *member, others []*member, opts mls.CommitOptions, joiners ...*member) {
	t.Helper()
	res, err := c.g.Commit(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	wire := res.Commit.Marshal()
	for _, o := range others {
		msg, err := mls.UnmarshalMLSMessage(wire)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.g.Process(msg); err != nil {
			t.Fatalf("%s: process commit: %v", o.name, err)
		}
	}
	if err := c.g.MergePending(); err != nil {
		t.Fatal(err)
	}
	for _, j := range joiners {
		w, err := mls.UnmarshalMLSMessage(res.Welcome.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if j.g, err = mls.JoinFromWelcome(w.Welcome, j.kp, j.secrets, j.signer, c.g.RatchetTree(), mls.GroupOptions{}); err != nil {
			t.Fatalf("%s: join: %v", j.name, err)
		}
	}
	for _, m := range append(append([]*member{c}, others...), joiners...) {
		if !m.g.Removed() {
			m.enterEpoch(t)
		}
	}
}

// sent is a frame and what it carries.
type sent struct {
	from     *member
	epoch    uint64
	metadata []byte
	pt       []byte
	frame    []byte
}

func send(t *testing.T, m *member, what string) sent {
	t.Helper()
	pt := []byte(fmt.Sprintf("%s speaking in epoch %d: %s", m.name, m.g.Epoch(), what))
	md := []byte("rtp " + m.name)
	f, err := m.sf.Encrypt(md, pt)
	if err != nil {
		t.Fatalf("%s: encrypt: %v", m.name, err)
	}
	return sent{m, m.g.Epoch(), md, pt, f}
}

// receive checks that r decrypts s, attributed to its sender.
func receive(t *testing.T, r *member, s sent) {
	t.Helper()
	pt, from, err := r.sf.Decrypt(s.metadata, s.frame)
	if err != nil {
		t.Fatalf("%s decrypting %s's frame of epoch %d: %v", r.name, s.from.name, s.epoch, err)
	}
	if !bytes.Equal(pt, s.pt) {
		t.Fatalf("%s decrypted %q, want %q", r.name, pt, s.pt)
	}
	want := sframe.Sender{Epoch: s.epoch, Leaf: uint32(s.from.g.MyLeaf())}
	if from != want {
		t.Fatalf("%s: sender %+v, want %+v", r.name, from, want)
	}
}

// refuse checks that r fails to decrypt s with want.
func refuse(t *testing.T, r *member, s sent, want error) {
	t.Helper()
	if _, _, err := r.sf.Decrypt(s.metadata, s.frame); !errors.Is(err, want) {
		t.Fatalf("%s decrypting %s's frame of epoch %d: %v, want %v", r.name, s.from.name, s.epoch, err, want)
	}
}

// TestMLSKeying has three independent members of one MLS group derive
// SFrame keys from their own group state (RFC 9605, section 5.2) and
// decrypt each other's frames; across commits it checks that keys change,
// that frames of the previous epoch still decrypt while it is retained,
// and that a removed member cannot decrypt the frames of the epoch that
// removed it.
func TestMLSKeying(t *testing.T) {
	for _, cs := range []sframe.CipherSuite{sframe.AES128CTRHMACSHA256_80, sframe.AES128GCMSHA256_128, sframe.AES256GCMSHA512_128} {
		t.Run(cs.String(), func(t *testing.T) { testMLSKeying(t, cs) })
	}
}

func testMLSKeying(t *testing.T, cs sframe.CipherSuite) {
	cryptotest.SetGlobalRandom(t, 9605)
	s, err := mls.SuiteFor(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	opts := sframe.MLSOptions{EpochBits: 2, RetainEpochs: 1}
	alice := newMember(t, s, "alice", cs, opts)
	bob := newMember(t, s, "bob", cs, opts)
	carol := newMember(t, s, "carol", cs, opts)
	dave := newMember(t, s, "dave", cs, opts)

	alice.g, err = mls.NewGroup(nil, s, []byte("call"), alice.kp, alice.secrets, alice.signer, nil, mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.enterEpoch(t)
	commit(t, alice, nil, mls.CommitOptions{Adds: []*mls.KeyPackage{bob.kp, carol.kp}}, bob, carol)
	all := []*member{alice, bob, carol}
	epoch1 := alice.g.Epoch()

	// Everyone hears everyone else, twice, and never itself.
	var old []sent
	for round := range 2 {
		for _, m := range all {
			f := send(t, m, fmt.Sprint("round ", round))
			if round == 1 {
				old = append(old, f)
				continue
			}
			for _, r := range all {
				if r != m {
					receive(t, r, f)
				} else {
					refuse(t, r, f, sframe.ErrUnknownKID)
				}
			}
			if m != bob {
				refuse(t, bob, f, sframe.ErrReplay)
			}
		}
	}

	// Bob commits an update: a new epoch, new keys. The frames sent just
	// before it arrive late and still decrypt.
	key1, err := alice.g.Export(sframe.ExporterLabel, nil, cs.KeySize())
	if err != nil {
		t.Fatal(err)
	}
	commit(t, bob, []*member{alice, carol}, mls.CommitOptions{Update: true})
	if alice.g.Epoch() != epoch1+1 {
		t.Fatalf("epoch %d", alice.g.Epoch())
	}
	if key2, _ := alice.g.Export(sframe.ExporterLabel, nil, cs.KeySize()); bytes.Equal(key1, key2) {
		t.Fatal("the base key did not change with the epoch")
	}
	fresh := send(t, alice, "after the update")
	if bytes.Equal(fresh.frame[:1], old[0].frame[:1]) {
		t.Errorf("the KID did not change with the epoch: %x, %x", fresh.frame[:1], old[0].frame[:1])
	}
	receive(t, bob, fresh)
	receive(t, carol, fresh)
	for _, f := range old {
		for _, r := range all {
			if r != f.from {
				receive(t, r, f)
				refuse(t, r, f, sframe.ErrReplay)
			}
		}
	}

	// Alice removes carol and adds dave. Carol holds no key of the new
	// epoch: she cannot even find one for its frames, and the key she
	// could derive from her stale group state does not authenticate them.
	carolBefore := send(t, carol, "before removal")
	stale, err := carol.g.Export(sframe.ExporterLabel, nil, cs.KeySize())
	if err != nil {
		t.Fatal(err)
	}
	commit(t, alice, []*member{bob, carol}, mls.CommitOptions{Removes: []mls.LeafIndex{carol.g.MyLeaf()}, Adds: []*mls.KeyPackage{dave.kp}}, dave)
	if !carol.g.Removed() {
		t.Fatal("carol not removed")
	}
	all = []*member{alice, bob, dave}
	var after []sent
	for _, m := range all {
		f := send(t, m, "without carol")
		after = append(after, f)
		for _, r := range all {
			if r != m {
				receive(t, r, f)
			}
		}
		refuse(t, carol, f, sframe.ErrUnknownKID)
	}
	// Carol's last frame, sent in the epoch before, still decrypts within
	// the retention, for those who were in that epoch; dave joined after
	// it and has no key for it.
	receive(t, alice, carolBefore)
	receive(t, bob, carolBefore)
	refuse(t, dave, carolBefore, sframe.ErrUnknownKID)

	// Carol forces the last base_key she had in as the new epoch's.
	err = carol.sf.AddEpoch(sframe.MLSEpoch{
		Number: alice.g.Epoch(), Self: uint32(carol.g.MyLeaf()), GroupSize: groupSize(alice.g),
		Export: func(string, []byte, int) ([]byte, error) { return bytes.Clone(stale), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range after {
		if f.from.g.MyLeaf() != carol.g.MyLeaf() { // dave took carol's leaf
			refuse(t, carol, f, sframe.ErrAuth)
		}
	}

	// Two commits on, the epoch before last is gone (RetainEpochs 1).
	commit(t, dave, []*member{alice, bob}, mls.CommitOptions{Update: true})
	refuse(t, alice, old[1], sframe.ErrUnknownKID)
	late := send(t, bob, "late")
	commit(t, alice, []*member{bob, dave}, mls.CommitOptions{Update: true})
	receive(t, dave, late)
	// The application ends the grace period.
	late2 := send(t, bob, "too late")
	commit(t, bob, []*member{alice, dave}, mls.CommitOptions{Update: true})
	alice.sf.DropEpochsBefore(alice.g.Epoch())
	refuse(t, alice, late2, sframe.ErrUnknownKID)
	receive(t, dave, late2)
	t.Logf("%v: %s", cs, alice.sf)
}
