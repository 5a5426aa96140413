package tlog

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "hotline.example/log"

// hashStore is an in-memory sumtlog.HashReader of a tree's stored hashes.
type hashStore []Hash

func (s hashStore) ReadHashes(indexes []int64) ([]Hash, error) {
	hs := make([]Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		hs[i] = s[x]
	}
	return hs, nil
}

func leafData(i int64) []byte { return fmt.Appendf(nil, "leaf %d", i) }

// buildTree returns the stored hashes of the tree of leafData(0..n-1).
func buildTree(tb testing.TB, n int64) hashStore {
	s := make(hashStore, 0, sumtlog.StoredHashCount(n))
	for i := range n {
		hs, err := sumtlog.StoredHashes(i, leafData(i), s)
		if err != nil {
			tb.Fatal(err)
		}
		s = append(s, hs...)
	}
	return s
}

// testKey returns a deterministic signer and verifier named name.
func testKey(tb testing.TB, name string, seed byte) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(rand.NewChaCha8([32]byte{seed}), name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

// testLog is a log server in miniature: entries, their tree, and a key.
type testLog struct {
	tb      testing.TB
	signer  note.Signer
	entries [][]byte
	tree    hashStore
}

func newTestLog(tb testing.TB) (*testLog, note.Verifiers) {
	s, v := testKey(tb, testOrigin, 1)
	return &testLog{tb: tb, signer: s}, note.VerifierList(v)
}

func (l *testLog) append(es ...Entry) {
	for _, e := range es {
		b, err := e.Marshal()
		if err != nil {
			l.tb.Fatal(err)
		}
		l.appendRaw(b)
	}
}

// appendRaw appends b unchecked, as a misbehaving server would.
func (l *testLog) appendRaw(b []byte) {
	hs, err := sumtlog.StoredHashes(int64(len(l.entries)), b, l.tree)
	if err != nil {
		l.tb.Fatal(err)
	}
	l.tree = append(l.tree, hs...)
	l.entries = append(l.entries, b)
}

func (l *testLog) checkpoint(size int64) Checkpoint {
	h, err := TreeHash(size, l.tree)
	if err != nil {
		l.tb.Fatal(err)
	}
	return Checkpoint{Origin: testOrigin, Size: size, Hash: h}
}

func (l *testLog) sign(c Checkpoint) []byte {
	b, err := SignCheckpoint(c, l.signer)
	if err != nil {
		l.tb.Fatal(err)
	}
	return b
}

// update returns the signed checkpoint at size and the entries from..size.
func (l *testLog) update(from, size int64) ([]byte, [][]byte) {
	return l.sign(l.checkpoint(size)), l.entries[from:size]
}

func key(name string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = name[i%len(name)]
	}
	return base64.StdEncoding.EncodeToString(b)
}

func orgCreate() Entry { return Entry{Type: TypeOrgCreate, Time: 1, KeySet: "org.example\nkeys\n"} }

func enrol(user, device, status string) Entry {
	return Entry{Type: TypeDeviceEnrol, Time: 2, Actor: user, User: user, Device: device,
		SigKey: key(device, 32), KEMKey: key(device, 64), Reason: status}
}

func approve(user, device string, approvers ...string) Entry {
	return Entry{Type: TypeDeviceApprove, Time: 3, User: user, Device: device, Approvers: approvers}
}

func revoke(user, device string) Entry {
	return Entry{Type: TypeDeviceRevoke, Time: 4, Actor: "security@org.example", User: user, Device: device, Reason: "lost"}
}

func sha(parts ...[]byte) Hash {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return Hash(h.Sum(nil))
}
