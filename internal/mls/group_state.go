package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Storing a group's state, so that a device can stop and resume. The
// encoding uses the package's TLS codec:
//
//	struct {
//	  opaque magic[4] = "HMLG";
//	  uint8 version = 1;
//	  CipherSuite suite;
//	  EpochState current;
//	  CachedProposal proposals<V>;    // ref, sender, proposal
//	  UpdateKey update_keys<V>;       // ref, HPKE private key
//	  optional<PendingCommit> pending; // EpochState, message, effects
//	  ResumptionPSK resumption<V>;    // epoch, secret
//	  optional<ReInitProposal> reinit;
//	} GroupState;
//
//	struct {
//	  GroupContext context;
//	  RatchetTree tree;
//	  uint32 my_leaf;
//	  NodeKey private_keys<V>;        // node, HPKE private key: the leaf's first
//	  EpochSecrets secrets;           // without joiner and welcome secrets
//	  SecretTree secret_tree;         // the frontier of unconsumed secrets, ratchets, kept keys
//	  opaque interim_transcript_hash<V>;
//	  opaque confirmation_tag<V>;
//	} EpochState;
//
// It holds every secret the member has: seal it before it leaves memory
// (Hotline's client encrypts it with a key derived from the device key),
// and erase it once sealed. The decoder is strict: canonical encodings,
// every length and index checked, the tree hash and every private key
// checked against the tree; errors wrap ErrInvalidState.

var stateMagic = []byte("HMLG")

// State versions: 1 holds everything; 2 holds everything but the current
// epoch's ratchet tree, which is stored apart (MarshalStateWithoutTree).
const (
	stateVersion            = 1
	stateVersionTreeOutside = 2
)

// MarshalState returns the group's state, pending commit included, for
// UnmarshalGroupState. The result holds secrets: the caller owns it and
// should seal and erase it. A removed member's group, whose secrets are
// erased, has no state to store (ErrInactive).
func (g *Group) MarshalState() ([]byte, error) {
	return g.marshalState(true)
}

// MarshalStateWithoutTree is MarshalState without the current epoch's
// ratchet tree, which MarshalTree gives and UnmarshalGroupStateWithTree
// takes back. The tree is most of a large group's state and changes only
// with the epoch, while the rest changes with every message: a device
// stores the tree once per epoch and the rest as often as it must.
func (g *Group) MarshalStateWithoutTree() ([]byte, error) {
	return g.marshalState(false)
}

// MarshalTree returns the current epoch's ratchet tree (public: no
// secret), for MarshalStateWithoutTree.
func (g *Group) MarshalTree() []byte {
	g.epochState.encodeTree()
	return bytes.Clone(g.treeEnc.b)
}

func (g *Group) marshalState(withTree bool) ([]byte, error) {
	if g.removed {
		return nil, fmt.Errorf("mls: marshal state: %w: this member was removed", ErrInactive)
	}
	var w Writer
	w.Raw(stateMagic)
	if withTree {
		w.U8(stateVersion)
	} else {
		w.U8(stateVersionTreeOutside)
	}
	w.U16(uint16(g.suite.id))
	if err := g.epochState.encodeWith(&w, withTree); err != nil {
		return nil, err
	}
	w.Vector(func(w *Writer) {
		for _, p := range g.proposals {
			w.Opaque(p.ref)
			p.sender.encode(w)
			encodeProposal(w, p.proposal)
		}
	})
	refs := make([]string, 0, len(g.updateKeys))
	for r := range g.updateKeys {
		refs = append(refs, r)
	}
	slices.Sort(refs)
	var err error
	w.Vector(func(w *Writer) {
		for _, r := range refs {
			b, e := g.updateKeys[r].PrivateBytes()
			if e != nil {
				err = e
			}
			w.Opaque([]byte(r))
			w.Opaque(b)
			clear(b)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("mls: marshal state: %w", err)
	}
	w.Optional(g.pending != nil, func(w *Writer) {
		if err = g.pending.next.encode(w); err != nil {
			return
		}
		w.Opaque(g.pending.message)
		g.pending.result.encode(w)
	})
	if err != nil {
		return nil, err
	}
	w.Vector(func(w *Writer) {
		for _, r := range g.resumption {
			w.U64(r.epoch)
			w.Opaque(r.secret.bytes())
		}
	})
	w.Optional(g.reinit != nil, func(w *Writer) { g.reinit.encode(w) })
	return w.Bytes(), nil
}

func (e *epochState) encode(w *Writer) error { return e.encodeWith(w, true) }

// encodeTree makes sure treeEnc holds the encoding of the epoch's tree.
func (e *epochState) encodeTree() {
	if e.treeEnc.tree != e.tree {
		var tw Writer
		e.tree.RatchetTree().encode(&tw)
		e.treeEnc = treeEncoding{tree: e.tree, b: tw.Bytes()}
	}
}

func (e *epochState) encodeWith(w *Writer, withTree bool) error {
	e.ctx.encode(w)
	if withTree {
		e.encodeTree()
		w.Raw(e.treeEnc.b)
	}
	w.U32(uint32(e.keys.Leaf()))
	var err error
	// The leaf's key first, then the parents' in increasing order.
	nodes := slices.DeleteFunc(e.keys.Nodes(), func(x NodeIndex) bool { return x == e.keys.Leaf().node() })
	nodes = append([]NodeIndex{e.keys.Leaf().node()}, nodes...)
	w.Vector(func(w *Writer) {
		for _, x := range nodes {
			k, _ := e.keys.PrivateKey(x)
			b, e := k.PrivateBytes()
			if e != nil {
				err = e
			}
			w.U32(uint32(x))
			w.Opaque(b)
			clear(b)
		}
	})
	if err != nil {
		return fmt.Errorf("mls: marshal state: %w", err)
	}
	s := e.secrets
	if s.erased {
		return fmt.Errorf("mls: marshal state: epoch secrets: %w", errConsumed)
	}
	for _, v := range []secret{s.senderData, s.exporter, s.external, s.confirmation, s.membership, s.resumption, s.authenticator, s.init} {
		w.Opaque(v.bytes())
	}
	e.secretTree.encode(w)
	w.Opaque(e.interim)
	w.Opaque(e.confirmationTag)
	return nil
}

func (t *SecretTree) encode(w *Writer) {
	w.U32(t.nLeaves)
	nodes := make([]NodeIndex, 0, len(t.nodes))
	for x := range t.nodes {
		nodes = append(nodes, x)
	}
	slices.Sort(nodes)
	w.Vector(func(w *Writer) {
		for _, x := range nodes {
			w.U32(uint32(x))
			w.Opaque(t.nodes[x].bytes())
		}
	})
	leaves := make([]uint32, 0, len(t.leaves))
	for l := range t.leaves {
		leaves = append(leaves, l)
	}
	slices.Sort(leaves)
	w.Vector(func(w *Writer) {
		for _, l := range leaves {
			w.U32(l)
			t.leaves[l].handshake.encode(w)
			t.leaves[l].application.encode(w)
		}
	})
}

func (r *ratchet) encode(w *Writer) {
	w.U64(r.next)
	w.Opaque(r.secret.bytes())
	gens := make([]uint32, 0, len(r.skipped))
	for j := range r.skipped {
		gens = append(gens, j)
	}
	slices.Sort(gens)
	w.Vector(func(w *Writer) {
		for _, j := range gens {
			w.U32(j)
			w.Opaque(r.skipped[j].key.bytes())
			w.Opaque(r.skipped[j].nonce.bytes())
		}
	})
}

func (fx *commitEffects) encode(w *Writer) {
	for _, ls := range [][]LeafIndex{fx.added, fx.removed, fx.updated} {
		w.Vector(func(w *Writer) {
			for _, l := range ls {
				w.U32(uint32(l))
			}
		})
	}
	w.Optional(fx.reinit != nil, func(w *Writer) { fx.reinit.encode(w) })
}

// stateDecoder decodes a group state, recording the first semantic
// error (the Readers record only that decoding failed).
type stateDecoder struct {
	s   *Suite
	err error
}

func (d *stateDecoder) fail(r *Reader, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	r.Fail(format, args...)
}

// secret reads a secret of exactly n bytes.
func (d *stateDecoder) secret(r *Reader, n int, what string) secret {
	b := r.Opaque()
	if r.Err() != nil {
		return secret{}
	}
	if len(b) != n {
		d.fail(r, "%s of %d bytes, want %d", what, len(b), n)
		return secret{}
	}
	return newSecret(bytes.Clone(b))
}

// UnmarshalGroupState restores a group from MarshalState's output. signer
// is the member's signature key, which the state does not hold (it may
// live in a device's key store); it must be the key of the member's
// leaf. opts are the group's options, which are not stored either.
func UnmarshalGroupState(b []byte, signer SignaturePrivateKey, opts GroupOptions) (*Group, error) {
	g, err := unmarshalGroupState(b, nil, signer, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	return g, nil
}

// UnmarshalGroupStateWithTree restores a group from the output of
// MarshalStateWithoutTree and the tree MarshalTree gave in the same epoch;
// a tree of another epoch is refused (its hash is not the state's).
func UnmarshalGroupStateWithTree(b, tree []byte, signer SignaturePrivateKey, opts GroupOptions) (*Group, error) {
	if tree == nil {
		tree = []byte{}
	}
	g, err := unmarshalGroupState(b, tree, signer, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	return g, nil
}

func unmarshalGroupState(b, tree []byte, signer SignaturePrivateKey, opts GroupOptions) (*Group, error) {
	if len(b) < len(stateMagic)+3 || !bytes.Equal(b[:len(stateMagic)], stateMagic) {
		return nil, errors.New("not a group state")
	}
	b = b[len(stateMagic):]
	switch {
	case b[0] == stateVersion && tree == nil, b[0] == stateVersionTreeOutside && tree != nil:
	case b[0] == stateVersionTreeOutside:
		return nil, errors.New("the state's tree is stored apart and was not given")
	case b[0] == stateVersion:
		return nil, errors.New("a tree was given for a state that holds its own")
	default:
		return nil, fmt.Errorf("state version %d, want %d or %d", b[0], stateVersion, stateVersionTreeOutside)
	}
	r := NewReader(bytes.Clone(b[1:]))
	s, err := SuiteFor(CipherSuite(r.U16()))
	if err != nil {
		return nil, err
	}
	d := &stateDecoder{s: s}
	g := &Group{suite: s, signer: signer, opts: opts, updateKeys: map[string]HPKEPrivateKey{}}
	defer func() {
		// On failure, erase what was restored.
		if err != nil {
			g.epochState.erase()
			if g.pending != nil {
				g.pending.next.erase()
			}
			for _, r := range g.resumption {
				r.secret.erase()
			}
		}
	}()
	if g.epochState, err = d.epochState(r, tree); err != nil {
		return nil, err
	}
	if !bytes.Equal(signer.Public(), g.tree.Leaf(g.keys.Leaf()).SignatureKey) {
		return nil, errors.New("the signer is not the member's leaf's signature key")
	}
	r.Items(func(rr *Reader) {
		var p cachedProposal
		p.ref = bytes.Clone(rr.Opaque())
		p.sender.decode(rr)
		p.proposal = decodeProposal(rr)
		if rr.Err() == nil && len(p.ref) != s.nh {
			d.fail(rr, "proposal reference of %d bytes", len(p.ref))
		}
		if rr.Err() == nil {
			if err := checkSender(&p.sender); err != nil {
				d.fail(rr, "%v", err)
			}
		}
		g.proposals = append(g.proposals, p)
	})
	r.Items(func(rr *Reader) {
		ref := string(rr.Opaque())
		kb := rr.Opaque()
		if rr.Err() != nil {
			return
		}
		k, err := parseCanonicalHPKEKey(s, kb)
		if err != nil {
			d.fail(rr, "update key: %v", err)
			return
		}
		if _, dup := g.updateKeys[ref]; dup {
			d.fail(rr, "update key twice")
		}
		g.updateKeys[ref] = k
	})
	r.Optional(func(rr *Reader) {
		next, err := d.epochState(rr, nil)
		if err != nil {
			d.fail(rr, "pending commit: %v", err)
			return
		}
		p := &pendingCommit{next: next, message: bytes.Clone(rr.Opaque())}
		p.result.decode(rr)
		g.pending = p
	})
	r.Items(func(rr *Reader) {
		epoch := rr.U64()
		sec := d.secret(rr, s.nh, "resumption PSK")
		g.resumption = append(g.resumption, resumptionPSK{epoch: epoch, secret: sec})
	})
	r.Optional(func(rr *Reader) {
		g.reinit = new(ReInitProposal)
		g.reinit.decode(rr)
	})
	if err = r.Done(); err != nil {
		if d.err != nil {
			err = d.err
		}
		return nil, err
	}
	return g, nil
}

// parseCanonicalHPKEKey parses an HPKE private key and refuses an
// encoding PrivateBytes would not give back (an unclamped X25519 scalar).
func parseCanonicalHPKEKey(s *Suite, b []byte) (HPKEPrivateKey, error) {
	k, err := s.ParseHPKEPrivateKey(b)
	if err != nil {
		return k, err
	}
	again, err := k.PrivateBytes()
	defer clear(again)
	if err != nil || !bytes.Equal(again, b) {
		return HPKEPrivateKey{}, errors.New("HPKE private key not in its canonical encoding")
	}
	return k, nil
}

func (fx *commitEffects) decode(r *Reader) {
	for _, ls := range []*[]LeafIndex{&fx.added, &fx.removed, &fx.updated} {
		r.Items(func(rr *Reader) { *ls = append(*ls, LeafIndex(rr.U32())) })
	}
	r.Optional(func(rr *Reader) {
		fx.reinit = new(ReInitProposal)
		fx.reinit.decode(rr)
	})
}

// epochState reads and checks an EpochState; its tree is read from tree
// if that is not nil.
func (d *stateDecoder) epochState(r *Reader, tree []byte) (e epochState, err error) {
	s := d.s
	defer func() {
		if err != nil {
			e.erase()
		}
	}()
	e.ctx.decode(r)
	var rt RatchetTree
	if tree == nil {
		rt.decode(r)
	} else {
		tr := NewReader(tree)
		rt.decode(tr)
		if err := tr.Done(); err != nil {
			return e, fmt.Errorf("the tree stored apart: %w", err)
		}
	}
	me := LeafIndex(r.U32())
	type nodeBytes struct {
		x NodeIndex
		b []byte
	}
	var privs []nodeBytes
	r.Items(func(rr *Reader) {
		x := NodeIndex(rr.U32())
		privs = append(privs, nodeBytes{x, rr.Opaque()})
	})
	if err := r.Err(); err != nil {
		return e, err
	}
	if e.ctx.Version != MLS10 || e.ctx.CipherSuite != s.id {
		return e, fmt.Errorf("group context of version %d, suite %#04x", e.ctx.Version, uint16(e.ctx.CipherSuite))
	}
	if e.tree, err = NewTree(s, rt); err != nil {
		return e, err
	}
	if !bytes.Equal(e.tree.TreeHash(), e.ctx.TreeHash) {
		return e, errors.New("the tree hash is not the group context's")
	}
	if e.tree.Leaf(me) == nil {
		return e, fmt.Errorf("own leaf %d is blank", me)
	}
	if len(privs) == 0 || privs[0].x != me.node() {
		return e, errors.New("no private key for the own leaf")
	}
	for i, p := range privs {
		if i > 0 && isLeaf(p.x) || i > 1 && p.x <= privs[i-1].x {
			return e, errors.New("private keys out of order")
		}
		k, err := parseCanonicalHPKEKey(s, p.b)
		if err != nil {
			return e, fmt.Errorf("private key of node %d: %w", p.x, err)
		}
		if i == 0 {
			if e.keys, err = NewTreePrivateKeys(e.tree, me, k); err != nil {
				return e, err
			}
		} else if err := e.keys.SetKey(e.tree, p.x, k); err != nil {
			return e, err
		}
	}
	es := &EpochSecrets{suite: s, treeBuilt: true}
	e.secrets = es
	for _, v := range []*secret{&es.senderData, &es.exporter, &es.external, &es.confirmation, &es.membership, &es.resumption, &es.authenticator, &es.init} {
		*v = d.secret(r, s.nh, "epoch secret")
	}
	e.secretTree = d.secretTree(r, e.tree.Leaves())
	e.interim = bytes.Clone(r.Opaque())
	e.confirmationTag = bytes.Clone(r.Opaque())
	if err := r.Err(); err != nil {
		if d.err != nil {
			return e, d.err
		}
		return e, err
	}
	if len(e.interim) != s.nh || len(e.confirmationTag) != s.nh {
		return e, errors.New("transcript hash or confirmation tag of the wrong length")
	}
	return e, nil
}

// secretTree reads a SecretTree over n leaves.
func (d *stateDecoder) secretTree(r *Reader, n uint32) *SecretTree {
	s := d.s
	t := &SecretTree{suite: s, nodes: map[NodeIndex]secret{}, leaves: map[uint32]*leafRatchets{}}
	if got := r.U32(); r.Err() == nil && got != n {
		d.fail(r, "secret tree of %d leaves for a tree of %d", got, n)
		return t
	}
	t.nLeaves = n
	last := int64(-1)
	r.Items(func(rr *Reader) {
		x := NodeIndex(rr.U32())
		sec := d.secret(rr, s.nh, "secret tree node")
		if rr.Err() != nil {
			return
		}
		if int64(x) <= last || uint64(x) >= uint64(nodeWidth(n)) {
			d.fail(rr, "secret tree node %d", x)
			return
		}
		last = int64(x)
		t.nodes[x] = sec
	})
	last = -1
	r.Items(func(rr *Reader) {
		l := rr.U32()
		lr := &leafRatchets{}
		lr.handshake = d.ratchet(rr)
		lr.application = d.ratchet(rr)
		if rr.Err() != nil {
			return
		}
		if int64(l) <= last || l >= n {
			d.fail(rr, "secret tree leaf %d", l)
			return
		}
		last = int64(l)
		if _, ok := t.nodes[NodeIndex(2*l)]; ok {
			d.fail(rr, "secret tree leaf %d both started and not", l)
			return
		}
		t.leaves[l] = lr
	})
	// Every leaf must be reachable exactly once: started, or below
	// exactly one node still holding a secret.
	if r.Err() == nil {
		for l := range n {
			covers := 0
			if _, ok := t.leaves[l]; ok {
				covers++
			}
			for x := range t.nodes {
				if isBelow(LeafIndex(l), x) {
					covers++
				}
			}
			if covers > 1 {
				d.fail(r, "secret tree leaf %d covered %d times", l, covers)
				break
			}
		}
	}
	return t
}

func (d *stateDecoder) ratchet(r *Reader) ratchet {
	s := d.s
	var rt ratchet
	rt.next = r.U64()
	sb := r.Opaque()
	if r.Err() != nil {
		return rt
	}
	switch {
	case rt.next > math.MaxUint32+1:
		d.fail(r, "ratchet generation %d", rt.next)
		return rt
	case rt.next == math.MaxUint32+1 && len(sb) != 0, rt.next <= math.MaxUint32 && len(sb) != s.nh:
		d.fail(r, "ratchet secret of %d bytes", len(sb))
		return rt
	}
	rt.secret = newSecret(bytes.Clone(sb))
	last := int64(-1)
	r.Items(func(rr *Reader) {
		j := rr.U32()
		k := rr.Opaque()
		nonce := rr.Opaque()
		if rr.Err() != nil {
			return
		}
		if int64(j) <= last || uint64(j) >= rt.next || len(k) != s.nk || len(nonce) != s.nn {
			d.fail(rr, "kept ratchet key %d", j)
			return
		}
		last = int64(j)
		if rt.skipped == nil {
			rt.skipped = map[uint32]RatchetKey{}
		}
		rt.skipped[j] = RatchetKey{Generation: j, key: newSecret(bytes.Clone(k)), nonce: newSecret(bytes.Clone(nonce))}
	})
	return rt
}
