package sframe

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// fixedExporter returns an exporter that gives key for the SFrame label
// and fails for any other.
func fixedExporter(key []byte) Exporter {
	return func(label string, context []byte, length int) ([]byte, error) {
		if label != ExporterLabel || len(context) != 0 || length != len(key) {
			return nil, errors.New("unexpected export")
		}
		return bytes.Clone(key), nil
	}
}

// TestKIDLayout checks the KIDs of RFC 9605's Figure 9 (E=4, S=6).
func TestKIDLayout(t *testing.T) {
	for _, c := range []struct {
		epoch   uint64
		index   uint32
		context uint64
		kid     uint64
	}{
		{14, 3, 0, 0x3e}, {14, 7, 0, 0x7e}, {14, 20, 0, 0x14e},
		{15, 3, 0, 0x3f}, {15, 5, 0, 0x5f},
		{16, 2, 2, 0x820}, {16, 2, 3, 0xc20},
		{17, 33, 0, 0x211}, {17, 51, 0, 0x331},
	} {
		if got := mlsKID(c.context, c.index, c.epoch, 6, 4); got != c.kid {
			t.Errorf("epoch %d index %d context %d: KID %#x, want %#x", c.epoch, c.index, c.context, got, c.kid)
		}
	}
	for size, s := range map[uint32]uint{1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 64: 6, 65: 7, 1 << 31: 31, 1<<31 + 1: 32, 1<<32 - 1: 32} {
		if got := indexBits(size); got != s {
			t.Errorf("indexBits(%d) = %d, want %d", size, got, s)
		}
	}
}

// mlsPair returns two members' MLSContexts in epoch 1 of a group of size
// members, at leaves 0 and 1.
func mlsPair(t *testing.T, suite CipherSuite, opts MLSOptions, size uint32) (a, b *MLSContext) {
	t.Helper()
	var err error
	if a, err = NewMLSContext(suite, opts); err != nil {
		t.Fatal(err)
	}
	if b, err = NewMLSContext(suite, opts); err != nil {
		t.Fatal(err)
	}
	enter(t, a, 1, 0, size)
	enter(t, b, 1, 1, size)
	return a, b
}

// epochKey is the base_key of an epoch in these tests.
func epochKey(suite CipherSuite, epoch uint64) []byte { return baseKey(suite, byte(epoch*16)) }

func enter(t testing.TB, m *MLSContext, epoch uint64, self, size uint32) {
	t.Helper()
	if err := m.AddEpoch(MLSEpoch{Number: epoch, Self: self, GroupSize: size, Export: fixedExporter(epochKey(m.suite, epoch))}); err != nil {
		t.Fatal(err)
	}
}

func TestMLSEpochs(t *testing.T) {
	suite := AES128GCMSHA256_128
	// E=1, keep up to 5 epochs: the bits still allow only two.
	a, b := mlsPair(t, suite, MLSOptions{EpochBits: 1, RetainEpochs: 5}, 2)
	f1, err := a.Encrypt(nil, []byte("epoch 1"))
	if err != nil {
		t.Fatal(err)
	}
	enter(t, a, 2, 0, 2)
	enter(t, b, 2, 1, 2)
	f2, err := a.Encrypt(nil, []byte("epoch 2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Decrypt(nil, f2); err != nil {
		t.Fatal(err)
	}
	enter(t, a, 3, 0, 2)
	enter(t, b, 3, 1, 2)
	// Epoch 3 took the place of epoch 1: its frame now meets epoch 3's key.
	if _, _, err := b.Decrypt(nil, f1); !errors.Is(err, ErrAuth) {
		t.Fatalf("epoch 1 after epoch 3: %v", err)
	}
	got := b.Epochs()
	slices.Sort(got)
	if !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("epochs %v", got)
	}
	// Epochs must increase.
	if err := b.AddEpoch(MLSEpoch{Number: 3, Self: 1, GroupSize: 2, Export: fixedExporter(epochKey(suite, 3))}); err == nil {
		t.Fatal("epoch 3 twice")
	}
	// The newest epoch stays.
	b.DropEpochsBefore(100)
	if got := b.Epochs(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("epochs %v", got)
	}
	// A frame of a future epoch: unknown until the commit is processed.
	enter(t, a, 4, 0, 2)
	f4, err := a.Encrypt(nil, []byte("epoch 4"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Decrypt(nil, f4); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("future epoch: %v", err)
	}
	enter(t, b, 4, 1, 2)
	if pt, from, err := b.Decrypt(nil, f4); err != nil || string(pt) != "epoch 4" || from != (Sender{Epoch: 4, Leaf: 0}) {
		t.Fatalf("%q %+v %v", pt, from, err)
	}
}

func TestMLSKIDs(t *testing.T) {
	suite := AES128CTRHMACSHA256_32
	a, b := mlsPair(t, suite, MLSOptions{EpochBits: 4, ContextID: 5}, 3)
	f, err := a.Encrypt([]byte("md"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := ParseHeader(f)
	if err != nil || h.KID != 5<<6|0<<4|1 {
		t.Fatalf("KID %#x, %v", h.KID, err)
	}
	if _, from, err := b.Decrypt([]byte("md"), f); err != nil || from != (Sender{Epoch: 1, Leaf: 0, ContextID: 5}) {
		t.Fatalf("%+v %v", from, err)
	}
	// A KID of this member's own leaf, of a leaf outside the group, of an
	// unheld epoch: unknown, whatever follows the header.
	for _, kid := range []uint64{1<<4 | 1, 3<<4 | 1, 7<<4 | 1, 0<<4 | 2} {
		frame := append(Header{KID: kid}.Append(nil), make([]byte, 20)...)
		if _, _, err := b.Decrypt(nil, frame); !errors.Is(err, ErrUnknownKID) {
			t.Errorf("kid %#x: %v", kid, err)
		}
	}
	// Another leaf, made up: derived, fails, and is not kept.
	frame := append(Header{KID: 9<<6 | 2<<4 | 1}.Append(nil), make([]byte, 20)...)
	if _, _, err := b.Decrypt(nil, frame); !errors.Is(err, ErrAuth) {
		t.Errorf("made-up kid: %v", err)
	}
	if n := len(b.slots[1].recv); n != 1 {
		t.Errorf("%d receive keys kept, want 1", n)
	}

	// A context ID must fit above the index and epoch bits.
	big, err := NewMLSContext(suite, MLSOptions{EpochBits: 32, ContextID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := big.AddEpoch(MLSEpoch{Number: 1, Self: 0, GroupSize: 1 << 31, Export: fixedExporter(epochKey(suite, 1))}); err != nil {
		t.Errorf("context ID in the last bit: %v", err)
	}
	if err := big.AddEpoch(MLSEpoch{Number: 2, Self: 0, GroupSize: 1<<31 + 1, Export: fixedExporter(epochKey(suite, 2))}); err == nil {
		t.Error("context ID with no bits left")
	}
	for _, bad := range []MLSEpoch{
		{Number: 5, Self: 2, GroupSize: 2, Export: fixedExporter(epochKey(suite, 5))},
		{Number: 5, Self: 0, GroupSize: 0, Export: fixedExporter(epochKey(suite, 5))},
		{Number: 5, Self: 0, GroupSize: 2},
		{Number: 5, Self: 0, GroupSize: 2, Export: fixedExporter([]byte("short"))},
	} {
		if err := b.AddEpoch(bad); err == nil {
			t.Errorf("AddEpoch(%+v) accepted", bad)
		}
	}
	for _, e := range []int{-1, 33} {
		if _, err := NewMLSContext(suite, MLSOptions{EpochBits: e}); err == nil {
			t.Errorf("epoch bits %d accepted", e)
		}
	}
	if _, err := a.Encrypt(nil, nil); err != nil {
		t.Error(err)
	}
	empty, _ := NewMLSContext(suite, MLSOptions{})
	if _, err := empty.Encrypt(nil, nil); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("encrypt before an epoch: %v", err)
	}
}

func TestMLSMaxReceiveKeys(t *testing.T) {
	suite := AES128GCMSHA256_128
	recv, err := NewMLSContext(suite, MLSOptions{MaxReceiveKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	enter(t, recv, 1, 0, 8)
	for ctxID := range uint64(3) {
		send, err := NewMLSContext(suite, MLSOptions{ContextID: ctxID})
		if err != nil {
			t.Fatal(err)
		}
		enter(t, send, 1, 1, 8)
		f, err := send.Encrypt(nil, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = recv.Decrypt(nil, f)
		if ctxID < 2 && err != nil || ctxID == 2 && !errors.Is(err, ErrUnknownKID) {
			t.Errorf("context %d: %v", ctxID, err)
		}
	}
}
