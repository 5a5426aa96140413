package sframe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"sync"
)

// ExporterLabel is the label of the MLS exporter call that gives an
// epoch's base_key (RFC 9605, section 5.2):
//
//	base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)
const ExporterLabel = "SFrame 1.0 Base Key"

// Exporter is the MLS exporter of one epoch (RFC 9420, section 8.5), such
// as the method value g.Export of an *mls.Group.
type Exporter func(label string, context []byte, length int) ([]byte, error)

// MLSOptions configure an MLSContext. EpochBits must be the same for every
// member of a session; ContextID is this sender's own.
type MLSOptions struct {
	// EpochBits is E, how many low bits of the epoch number a KID carries,
	// 1 to 32 (0: 4). At most 2^E epochs can be held at once, so E bounds
	// RetainEpochs.
	EpochBits int
	// RetainEpochs is how many epochs before the newest stay available for
	// decryption, so frames sent just before a commit still decrypt after
	// it (0: 1). Call DropEpochsBefore to end that grace period sooner, on
	// a timer of the application's choosing.
	RetainEpochs int
	// ContextID is the context value of this member's KIDs, the bits above
	// the sender index (0 gives the shortest KIDs). Two MLSContexts that
	// send for the same member in the same epoch must have different
	// context IDs: the same KID would mean the same key and counters
	// starting again at 0.
	ContextID uint64
	// MaxReceiveKeys bounds the receive keys derived per epoch, one per
	// sender KID that authenticated (0: 1,024). A KID beyond it fails with
	// ErrUnknownKID.
	MaxReceiveKeys int
	// ReplayWindow is the replay window of each receive key, as in
	// Options.
	ReplayWindow int
}

// MLSEpoch is what an MLSContext needs of an MLS epoch, all of it known to
// every member.
type MLSEpoch struct {
	// Number is the epoch number.
	Number uint64
	// Self is this member's leaf index.
	Self uint32
	// GroupSize is the group's size in leaves: one more than the highest
	// leaf index in the ratchet tree. S, the bits of a KID's sender index,
	// is the smallest value with GroupSize <= 2^S. (RFC 9420 truncates
	// trailing blank leaves, so 2^S is also the tree's width.) It is not
	// the number of members, which blank leaves can make smaller than an
	// index needs.
	GroupSize uint32
	// Export is the epoch's MLS exporter. AddEpoch calls it once.
	Export Exporter
}

// Sender identifies whose frame Decrypt authenticated: the epoch, the
// sender's leaf index and context ID, all read from the KID.
type Sender struct {
	Epoch     uint64
	Leaf      uint32
	ContextID uint64
}

// MLSContext is SFrame keyed by MLS (RFC 9605, section 5.2). Each epoch's
// base_key is exported from the MLS group; every member's KIDs combine a
// context ID, the member's leaf index and the epoch's low bits,
//
//	KID = (context << (S + E)) + (index << E) + (epoch mod 2^E)
//
// and the keys follow from base_key and the KID as for any SFrame key
// (section 4.4.2), so each KID, and each sender, has its own key and salt.
// A member sends under its own KID of the newest epoch; it derives a
// receive key from a frame's KID when the KID names a held epoch and
// another leaf of it, and keeps the key once a frame authenticates under
// it. An MLSContext is safe for concurrent use.
type MLSContext struct {
	suite     CipherSuite
	e         uint
	retain    uint64
	contextID uint64
	maxKeys   int
	ctx       *Context

	// mu guards slots and current, and the epochs in them. It is
	// taken before ctx.mu, never after.
	mu sync.Mutex
	// slots holds the epochs by their low E bits: a new epoch replaces the
	// one with the same bits (RFC 9605, section 5.2).
	slots   map[uint64]*mlsEpoch
	current *mlsEpoch
}

// mlsEpoch is a held epoch: its base_key, the parameters of its KIDs, this
// member's send KID and the receive KIDs derived so far.
type mlsEpoch struct {
	number    uint64
	s         uint
	groupSize uint32
	self      uint32
	baseKey   secret
	sendKID   uint64
	hasSend   bool
	recv      []uint64
}

// NewMLSContext returns an MLSContext for suite with no epoch yet.
func NewMLSContext(suite CipherSuite, opts MLSOptions) (*MLSContext, error) {
	ctx, err := NewContext(suite, Options{ReplayWindow: opts.ReplayWindow})
	if err != nil {
		return nil, err
	}
	e := opts.EpochBits
	if e == 0 {
		e = 4
	}
	if e < 1 || e > 32 {
		return nil, fmt.Errorf("sframe: epoch bits %d, want 1 to 32", opts.EpochBits)
	}
	retain := opts.RetainEpochs
	if retain == 0 {
		retain = 1
	}
	if retain < 0 {
		return nil, fmt.Errorf("sframe: retain %d epochs", opts.RetainEpochs)
	}
	maxKeys := opts.MaxReceiveKeys
	if maxKeys <= 0 {
		maxKeys = 1024
	}
	return &MLSContext{
		suite: suite, e: uint(e), retain: uint64(retain), contextID: opts.ContextID, maxKeys: maxKeys,
		ctx: ctx, slots: map[uint64]*mlsEpoch{},
	}, nil
}

// mlsKID returns the KID of a sender: context << (S+E) | index << E |
// epoch mod 2^E.
func mlsKID(context uint64, index uint32, epoch uint64, s, e uint) uint64 {
	return context<<(s+e) | uint64(index)<<e | epoch&(1<<e-1)
}

// indexBits returns S, the smallest value with groupSize <= 2^S.
func indexBits(groupSize uint32) uint { return uint(bits.Len32(groupSize - 1)) }

// AddEpoch exports the base_key of a new epoch and makes it the epoch
// this member sends in. The epoch before it stays for decryption (see
// MLSOptions.RetainEpochs); the epoch with the same low E bits, and
// epochs beyond the retention, are dropped and their keys erased. Epoch
// numbers must increase: a repeated or older epoch is refused, since its
// send key would start its counter again.
func (m *MLSContext) AddEpoch(ep MLSEpoch) error {
	if ep.Export == nil {
		return errors.New("sframe: add epoch: no exporter")
	}
	if ep.GroupSize == 0 || ep.Self >= ep.GroupSize {
		return fmt.Errorf("sframe: add epoch %d: leaf %d in a group of %d", ep.Number, ep.Self, ep.GroupSize)
	}
	s := indexBits(ep.GroupSize)
	if s+m.e < 64 && m.contextID>>(64-s-m.e) != 0 {
		return fmt.Errorf("sframe: add epoch %d: context ID %d does not fit in %d bits", ep.Number, m.contextID, 64-s-m.e)
	}
	if s+m.e == 64 && m.contextID != 0 {
		return fmt.Errorf("sframe: add epoch %d: no bits left for context ID %d", ep.Number, m.contextID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current != nil && ep.Number <= m.current.number {
		return fmt.Errorf("sframe: add epoch %d: not after epoch %d", ep.Number, m.current.number)
	}
	nk := m.suite.KeySize()
	baseKey, err := ep.Export(ExporterLabel, []byte{}, nk)
	if err != nil {
		return fmt.Errorf("sframe: add epoch %d: export: %w", ep.Number, err)
	}
	if len(baseKey) != nk {
		clear(baseKey)
		return fmt.Errorf("sframe: add epoch %d: exporter gave %d bytes, want %d", ep.Number, len(baseKey), nk)
	}
	// The epoch with the same low bits goes first (RFC 9605, section 5.2):
	// its KIDs are the ones the new epoch's could collide with.
	if old := m.slots[ep.Number&m.mask()]; old != nil {
		m.dropLocked(old)
	}
	n := &mlsEpoch{
		number: ep.Number, s: s, groupSize: ep.GroupSize, self: ep.Self,
		baseKey: newSecret(baseKey), sendKID: mlsKID(m.contextID, ep.Self, ep.Number, s, m.e), hasSend: true,
	}
	if err := m.ctx.AddSendKey(n.sendKID, baseKey); err != nil {
		n.baseKey.erase()
		return fmt.Errorf("sframe: add epoch %d: %w", ep.Number, err)
	}
	if m.current != nil && m.current.hasSend {
		m.ctx.RemoveKey(m.current.sendKID)
		m.current.hasSend = false
	}
	m.slots[ep.Number&m.mask()] = n
	m.current = n
	for _, old := range m.slots {
		if ep.Number-old.number > m.retain {
			m.dropLocked(old)
		}
	}
	return nil
}

func (m *MLSContext) mask() uint64 { return 1<<m.e - 1 }

// dropLocked forgets an epoch: its keys and its base_key.
func (m *MLSContext) dropLocked(ep *mlsEpoch) {
	for _, kid := range ep.recv {
		m.ctx.RemoveKey(kid)
	}
	ep.recv = nil
	if ep.hasSend {
		m.ctx.RemoveKey(ep.sendKID)
		ep.hasSend = false
	}
	ep.baseKey.erase()
	if m.slots[ep.number&m.mask()] == ep {
		delete(m.slots, ep.number&m.mask())
	}
}

// DropEpochsBefore forgets every epoch older than epoch, with its keys,
// ending the grace period for frames of those epochs. The newest epoch is
// never dropped.
func (m *MLSContext) DropEpochsBefore(epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range m.slots {
		if ep.number < epoch && ep != m.current {
			m.dropLocked(ep)
		}
	}
}

// Epochs returns the numbers of the epochs held, in no particular order.
func (m *MLSContext) Epochs() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.slots))
	for _, ep := range m.slots {
		out = append(out, ep.number)
	}
	return out
}

// Encrypt protects plaintext under this member's KID of the newest epoch;
// see Context.Encrypt. It fails with ErrUnknownKID before the first
// AddEpoch.
func (m *MLSContext) Encrypt(metadata, plaintext []byte) ([]byte, error) {
	m.mu.Lock()
	cur := m.current
	var kid uint64
	if cur != nil {
		kid = cur.sendKID
	}
	m.mu.Unlock()
	if cur == nil {
		return nil, fmt.Errorf("%w: no epoch", ErrUnknownKID)
	}
	return m.ctx.Encrypt(kid, metadata, plaintext)
}

// Decrypt authenticates and decrypts a frame of another member and returns
// the plaintext and who sent it; the errors are Context.Decrypt's. The
// KID's low E bits select a held epoch (ErrUnknownKID if none: the frame
// may be of an epoch this member has yet to reach); the sender index above
// them must be another leaf of that epoch's group. The first frame under a
// KID derives its key; the key is kept only if the frame authenticates, so
// frames with made-up KIDs cost a derivation each but hold no memory.
func (m *MLSContext) Decrypt(metadata, frame []byte) ([]byte, Sender, error) {
	h, n, err := ParseHeader(frame)
	if err != nil {
		return nil, Sender{}, err
	}
	m.mu.Lock()
	ep, ks, fresh, sender, err := m.receiveKeyLocked(h)
	m.mu.Unlock()
	if err != nil {
		return nil, Sender{}, err
	}
	pt, err := open(ks, h, frame[:n], metadata, frame[n:])
	if err != nil {
		return nil, Sender{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if fresh {
		if m.slots[h.KID&m.mask()] != ep {
			return nil, Sender{}, fmt.Errorf("%w: epoch %d dropped", ErrUnknownKID, ep.number)
		}
		if len(ep.recv) >= m.maxKeys {
			return nil, Sender{}, fmt.Errorf("%w: more than %d keys in epoch %d", ErrUnknownKID, m.maxKeys, ep.number)
		}
		stored := m.ctx.insertReceive(h.KID, ks)
		if stored == nil {
			return nil, Sender{}, fmt.Errorf("%w: kid %d is a send key", ErrUnknownKID, h.KID)
		}
		if stored == ks {
			ep.recv = append(ep.recv, h.KID)
		}
		ks = stored
	}
	if err := m.ctx.accept(ks, h.CTR); err != nil {
		return nil, Sender{}, err
	}
	return pt, sender, nil
}

// receiveKeyLocked finds the receive key of h's KID, whose window must
// accept h's counter, or derives it; fresh reports a derived key, not yet
// stored.
func (m *MLSContext) receiveKeyLocked(h Header) (ep *mlsEpoch, ks *keyState, fresh bool, sender Sender, err error) {
	kid := h.KID
	ep = m.slots[kid&m.mask()]
	if ep == nil {
		return nil, nil, false, Sender{}, fmt.Errorf("%w: kid %d: no epoch with low bits %d", ErrUnknownKID, kid, kid&m.mask())
	}
	rest := kid >> m.e
	leaf := rest & (1<<ep.s - 1)
	sender = Sender{Epoch: ep.number, Leaf: uint32(leaf), ContextID: rest >> ep.s}
	if leaf >= uint64(ep.groupSize) {
		return nil, nil, false, Sender{}, fmt.Errorf("%w: kid %d: leaf %d outside the group of epoch %d", ErrUnknownKID, kid, leaf, ep.number)
	}
	if uint32(leaf) == ep.self {
		return nil, nil, false, Sender{}, fmt.Errorf("%w: kid %d: this member's own leaf", ErrUnknownKID, kid)
	}
	if ks, err = m.ctx.lookup(kid, h.CTR); ks != nil || err != nil {
		switch {
		case err != nil:
			return nil, nil, false, Sender{}, err
		case ks.send:
			return nil, nil, false, Sender{}, fmt.Errorf("%w: kid %d is a send key", ErrUnknownKID, kid)
		}
		return ep, ks, false, sender, nil
	}
	if len(ep.recv) >= m.maxKeys {
		return nil, nil, false, Sender{}, fmt.Errorf("%w: more than %d keys in epoch %d", ErrUnknownKID, m.maxKeys, ep.number)
	}
	ks, err = newKeyState(m.suite, kid, ep.baseKey.bytes(), false, m.ctx.opts.ReplayWindow)
	if err != nil {
		return nil, nil, false, Sender{}, err
	}
	return ep, ks, true, sender, nil
}

// String returns a redacted form.
func (m *MLSContext) String() string {
	if m == nil {
		return "sframe-mls-context(nil)"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil {
		return fmt.Sprintf("sframe-mls-context(REDACTED, %v, no epoch)", m.suite)
	}
	return fmt.Sprintf("sframe-mls-context(REDACTED, %v, epoch=%d, leaf=%d, %d epochs held)", m.suite, m.current.number, m.current.self, len(m.slots))
}

// GoString implements fmt.GoStringer with the redacted form.
func (m *MLSContext) GoString() string { return m.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (m *MLSContext) LogValue() slog.Value { return slog.StringValue(m.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (m *MLSContext) Format(f fmt.State, _ rune) { io.WriteString(f, m.String()) }
