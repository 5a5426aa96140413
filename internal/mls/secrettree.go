package mls

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
)

// The secret tree (RFC 9420, section 9) turns an epoch's encryption_secret
// into per-sender, per-message AEAD keys. It has the ratchet tree's shape;
// each node's secret splits into its children's,
//
//	tree_node_[left(N)]_secret  = ExpandWithLabel(tree_node_[N]_secret, "tree", "left", Nh)
//	tree_node_[right(N)]_secret = ExpandWithLabel(tree_node_[N]_secret, "tree", "right", Nh)
//
// and each leaf's secret starts two ratchets, "handshake" and
// "application" (ExpandWithLabel(leaf secret, label, "", Nh)), which step
// one generation per message:
//
//	key_[j]      = DeriveTreeSecret(secret_[j], "key", j, Nk)
//	nonce_[j]    = DeriveTreeSecret(secret_[j], "nonce", j, Nn)
//	secret_[j+1] = DeriveTreeSecret(secret_[j], "secret", j, Nh)
//
// Secrets are derived lazily and erased as soon as they are consumed
// (section 9.2): a node's secret once split into its children's, a leaf's
// once its ratchets start, a ratchet secret once the next one and its key
// and nonce exist, and a key and nonce once handed out.

// The bounds on out-of-order delivery (RFC 9420, section 9.4 leaves them to
// the application).
const (
	// OutOfOrderWindow is how many generations behind the newest one a
	// ratchet has produced it keeps the keys of generations skipped over,
	// so that late messages still decrypt. Older keys are erased and asking
	// for them gives ErrGenerationTooOld.
	OutOfOrderWindow = 1000
	// MaxForwardDistance is how many generations a receiver steps a ratchet
	// forward at once to reach a message's generation; further gives
	// ErrGenerationTooFarAhead. It bounds the work (three HKDF expansions
	// per step) that one message can cost.
	MaxForwardDistance = 10000
)

// Errors from the secret tree's ratchets.
var (
	// ErrKeyConsumed: the key of this generation was already handed out
	// (and erased): the message is a replay, or was already decrypted.
	ErrKeyConsumed = errors.New("mls: message key already used")
	// ErrGenerationTooOld: the generation is more than OutOfOrderWindow
	// behind the newest one, and its key was erased.
	ErrGenerationTooOld = errors.New("mls: generation outside the out-of-order window")
	// ErrGenerationTooFarAhead: the generation is more than
	// MaxForwardDistance ahead of the next one.
	ErrGenerationTooFarAhead = errors.New("mls: generation too far ahead")
	// ErrRatchetExhausted: the ratchet used all 2^32 generations.
	ErrRatchetExhausted = errors.New("mls: ratchet exhausted")
)

// RatchetType selects one of a leaf's two ratchets.
type RatchetType uint8

// The ratchets: handshake messages (proposals and commits) and
// application messages use separate key sequences.
const (
	HandshakeRatchet RatchetType = iota + 1
	ApplicationRatchet
)

func (t RatchetType) String() string {
	switch t {
	case HandshakeRatchet:
		return "handshake"
	case ApplicationRatchet:
		return "application"
	}
	return fmt.Sprintf("ratchet-type-%d", uint8(t))
}

// RatchetKey is the AEAD key and nonce of one generation of a ratchet. The
// caller owns them and should Erase them once the message is sealed or
// opened. It prints only redacted.
type RatchetKey struct {
	Generation uint32
	key, nonce secret
}

// Key returns the AEAD key (Nk bytes). It is not a copy.
func (k RatchetKey) Key() []byte { return k.key.bytes() }

// Nonce returns the AEAD nonce (Nn bytes), before MLS XORs the reuse guard
// into it. It is not a copy.
func (k RatchetKey) Nonce() []byte { return k.nonce.bytes() }

// Erase zeroes the key and nonce.
func (k RatchetKey) Erase() {
	k.key.erase()
	k.nonce.erase()
}

// String returns a redacted form naming the generation.
func (k RatchetKey) String() string {
	return fmt.Sprintf("mls-ratchet-key(REDACTED, generation=%d)", k.Generation)
}

// GoString implements fmt.GoStringer with the redacted form.
func (k RatchetKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (k RatchetKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (k RatchetKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// SecretTree is an epoch's secret tree. It is not safe for concurrent use.
// It prints only redacted.
type SecretTree struct {
	suite   *Suite
	nLeaves uint32
	// nodes holds the secrets of tree nodes not yet split: the frontier
	// between consumed and untouched parts of the tree.
	nodes map[NodeIndex]secret
	// leaves holds the ratchets of leaves whose secret was consumed.
	leaves map[uint32]*leafRatchets
}

type leafRatchets struct {
	handshake, application ratchet
}

type ratchet struct {
	// next is the generation secret belongs to; past math.MaxUint32 the
	// ratchet is exhausted and secret is erased.
	next    uint64
	secret  secret
	skipped map[uint32]RatchetKey
}

// NewSecretTree returns the secret tree over nLeaves leaves rooted at
// encryptionSecret, which it copies. nLeaves must be a power of two no
// larger than 2^31: RFC 9420's trees always have 2^d leaves (section 7.8),
// so any other count is a caller's mistake.
func (s *Suite) NewSecretTree(encryptionSecret []byte, nLeaves uint32) (*SecretTree, error) {
	if nLeaves == 0 || nLeaves&(nLeaves-1) != 0 || nLeaves > 1<<31 {
		return nil, fmt.Errorf("mls: secret tree over %d leaves: want a power of two up to 2^31", nLeaves)
	}
	if len(encryptionSecret) != s.nh {
		return nil, fmt.Errorf("mls: secret tree: encryption_secret of %d bytes, want %d", len(encryptionSecret), s.nh)
	}
	t := &SecretTree{
		suite:   s,
		nLeaves: nLeaves,
		nodes:   map[NodeIndex]secret{root(nLeaves): newSecret(append([]byte(nil), encryptionSecret...))},
		leaves:  map[uint32]*leafRatchets{},
	}
	return t, nil
}

// Leaves returns the number of leaves.
func (t *SecretTree) Leaves() uint32 { return t.nLeaves }

// Next returns the key and nonce for the next message leaf sends with the
// ratchet typ, and steps the ratchet past it. A sender uses Next.
func (t *SecretTree) Next(leaf uint32, typ RatchetType) (RatchetKey, error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return RatchetKey{}, err
	}
	if r.next > math.MaxUint32 {
		return RatchetKey{}, fmt.Errorf("mls: leaf %d %s ratchet: %w", leaf, typ, ErrRatchetExhausted)
	}
	return t.get(r, uint32(r.next))
}

// Key returns the key and nonce of generation for leaf's ratchet typ, as a
// receiver needs them for a message: from the keys kept for skipped
// generations if it is behind, by stepping the ratchet if it is ahead
// (keeping the skipped keys, up to OutOfOrderWindow of them). Each key is
// handed out once; asking again gives ErrKeyConsumed.
func (t *SecretTree) Key(leaf uint32, typ RatchetType, generation uint32) (RatchetKey, error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return RatchetKey{}, err
	}
	k, err := t.get(r, generation)
	if err != nil {
		return RatchetKey{}, fmt.Errorf("mls: leaf %d %s generation %d: %w", leaf, typ, generation, err)
	}
	return k, nil
}

// Erase zeroes every secret the tree holds. It is unusable afterwards.
func (t *SecretTree) Erase() {
	for n, s := range t.nodes {
		s.erase()
		delete(t.nodes, n)
	}
	for _, lr := range t.leaves {
		lr.handshake.erase()
		lr.application.erase()
	}
	t.nLeaves = 0
}

// String returns a redacted form.
func (t *SecretTree) String() string {
	if t == nil {
		return "mls-secret-tree(nil)"
	}
	return fmt.Sprintf("mls-secret-tree(REDACTED, %d leaves)", t.nLeaves)
}

// GoString implements fmt.GoStringer with the redacted form.
func (t *SecretTree) GoString() string { return t.String() }

// LogValue implements slog.LogValuer with the redacted form.
func (t *SecretTree) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Format implements fmt.Formatter with the redacted form for every verb.
func (t *SecretTree) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// ratchet returns leaf's ratchet typ, starting the leaf's ratchets if this
// is the first use of the leaf.
func (t *SecretTree) ratchet(leaf uint32, typ RatchetType) (*ratchet, error) {
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("mls: secret tree: leaf %d of %d", leaf, t.nLeaves)
	}
	lr := t.leaves[leaf]
	if lr == nil {
		leafSecret, err := t.leafSecret(leaf)
		if err != nil {
			return nil, err
		}
		d := deriver{s: t.suite}
		h := d.expand(leafSecret, "handshake", nil, t.suite.nh)
		a := d.expand(leafSecret, "application", nil, t.suite.nh)
		clear(leafSecret)
		if d.err != nil {
			return nil, fmt.Errorf("mls: secret tree: %w", d.err)
		}
		lr = &leafRatchets{
			handshake:   ratchet{secret: newSecret(h)},
			application: ratchet{secret: newSecret(a)},
		}
		t.leaves[leaf] = lr
	}
	switch typ {
	case HandshakeRatchet:
		return &lr.handshake, nil
	case ApplicationRatchet:
		return &lr.application, nil
	}
	return nil, fmt.Errorf("mls: secret tree: ratchet type %d", typ)
}

// leafSecret derives leaf's tree node secret, splitting every node between
// it and the nearest ancestor still holding a secret, and removes it from
// the tree: the caller consumes it.
func (t *SecretTree) leafSecret(leaf uint32) ([]byte, error) {
	x := NodeIndex(2 * leaf)
	n := x
	for {
		if _, ok := t.nodes[n]; ok {
			break
		}
		if n == root(t.nLeaves) {
			// Unreachable while the invariant holds: the leaves of
			// unstarted ratchets are all below a node in t.nodes.
			return nil, errors.New("mls: secret tree: no secret above the leaf")
		}
		n = parent(n, t.nLeaves)
	}
	d := deriver{s: t.suite}
	for n != x {
		ps := t.nodes[n]
		delete(t.nodes, n)
		ls := d.expand(ps.bytes(), "tree", []byte("left"), t.suite.nh)
		rs := d.expand(ps.bytes(), "tree", []byte("right"), t.suite.nh)
		ps.erase()
		if d.err != nil {
			return nil, fmt.Errorf("mls: secret tree: %w", d.err)
		}
		t.nodes[left(n)] = newSecret(ls)
		t.nodes[right(n)] = newSecret(rs)
		if x < n {
			n = left(n)
		} else {
			n = right(n)
		}
	}
	s := t.nodes[x]
	delete(t.nodes, x)
	return s.bytes(), nil
}

// get returns the key of generation gen, stepping r forward to it if need
// be.
func (t *SecretTree) get(r *ratchet, gen uint32) (RatchetKey, error) {
	g := uint64(gen)
	if g < r.next {
		if k, ok := r.skipped[gen]; ok {
			delete(r.skipped, gen)
			return k, nil
		}
		if r.next-1-g > OutOfOrderWindow {
			return RatchetKey{}, ErrGenerationTooOld
		}
		return RatchetKey{}, ErrKeyConsumed
	}
	if g-r.next > MaxForwardDistance {
		return RatchetKey{}, ErrGenerationTooFarAhead
	}
	s := t.suite
	for {
		j := uint32(r.next)
		d := deriver{s: s}
		cur := r.secret.bytes()
		k := RatchetKey{
			Generation: j,
			key:        newSecret(d.keep(s.DeriveTreeSecret(cur, "key", j, s.nk))),
			nonce:      newSecret(d.keep(s.DeriveTreeSecret(cur, "nonce", j, s.nn))),
		}
		var next []byte
		if j < math.MaxUint32 {
			next = d.keep(s.DeriveTreeSecret(cur, "secret", j, s.nh))
		}
		if d.err != nil {
			k.Erase()
			return RatchetKey{}, fmt.Errorf("mls: ratchet step: %w", d.err)
		}
		r.secret.erase()
		r.secret = newSecret(next)
		r.next++
		if j == gen {
			r.prune()
			return k, nil
		}
		if gen-j <= OutOfOrderWindow {
			if r.skipped == nil {
				r.skipped = map[uint32]RatchetKey{}
			}
			r.skipped[j] = k
		} else {
			k.Erase()
		}
	}
}

// prune erases the kept keys that fell out of the window behind the newest
// generation.
func (r *ratchet) prune() {
	newest := r.next - 1
	for j, k := range r.skipped {
		if newest-uint64(j) > OutOfOrderWindow {
			k.Erase()
			delete(r.skipped, j)
		}
	}
}

func (r *ratchet) erase() {
	r.secret.erase()
	for j, k := range r.skipped {
		k.Erase()
		delete(r.skipped, j)
	}
	r.next = math.MaxUint32 + 1
}

// SenderDataKeyNonce returns the key and nonce protecting a
// PrivateMessage's sender data (RFC 9420, section 6.3.2):
// ExpandWithLabel(senderDataSecret, "key"/"nonce", sample, Nk/Nn), where
// the sample is the first Nh bytes of the message's ciphertext, or all of
// it if shorter.
func (s *Suite) SenderDataKeyNonce(senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext[:min(len(ciphertext), s.nh)]
	d := deriver{s: s}
	key = d.expand(senderDataSecret, "key", sample, s.nk)
	nonce = d.expand(senderDataSecret, "nonce", sample, s.nn)
	if d.err != nil {
		return nil, nil, fmt.Errorf("mls: sender data key: %w", d.err)
	}
	return key, nonce, nil
}
