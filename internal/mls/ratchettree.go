package mls

// ParentNode is an interior node of the ratchet tree (RFC 9420, section
// 7.1).
type ParentNode struct {
	// EncryptionKey is an HPKEPublicKey.
	EncryptionKey []byte
	ParentHash    []byte
	// UnmergedLeaves must be in increasing order; the tree validation
	// checks it, not the decoder.
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) encode(w *Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	w.Vector(func(w *Writer) {
		for _, l := range p.UnmergedLeaves {
			w.U32(uint32(l))
		}
	})
}

func (p *ParentNode) decode(r *Reader) {
	p.EncryptionKey = r.Opaque()
	p.ParentHash = r.Opaque()
	p.UnmergedLeaves = []LeafIndex{}
	r.Items(func(r *Reader) { p.UnmergedLeaves = append(p.UnmergedLeaves, LeafIndex(r.U32())) })
}

// NodeType says whether a Node is a leaf or a parent.
type NodeType uint8

// The node types.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is a non-blank node of the ratchet tree: Leaf is set when Type is
// NodeTypeLeaf, Parent when it is NodeTypeParent.
type Node struct {
	Type   NodeType
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) encode(w *Writer) {
	w.U8(uint8(n.Type))
	switch {
	case n.Type == NodeTypeLeaf && n.Leaf != nil:
		n.Leaf.encode(w)
	case n.Type == NodeTypeParent && n.Parent != nil:
		n.Parent.encode(w)
	default:
		badUnion("node", n.Type)
	}
}

func (n *Node) decode(r *Reader) {
	n.Type = NodeType(r.U8())
	switch n.Type {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.decode(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.decode(r)
	default:
		r.Fail("node type %d", n.Type)
	}
}

// RatchetTree is the array representation of a ratchet tree as the
// ratchet_tree extension carries it (RFC 9420, section 12.4.3.3): node i
// of the tree is element i (see treemath.go), and nil is a blank node.
// Blank nodes after the last non-blank one are left out, so the array may
// be shorter than the full tree it stands for.
type RatchetTree []*Node

// encode panics on an empty tree or one ending in a blank node, which no
// receiver accepts: the tree must be truncated first.
func (t RatchetTree) encode(w *Writer) {
	if len(t) == 0 || t[len(t)-1] == nil {
		panic("mls: cannot encode a ratchet tree that is empty or ends in a blank node")
	}
	w.Vector(func(w *Writer) {
		for _, n := range t {
			w.Optional(n != nil, n.encode)
		}
	})
}

// decode reads the tree and checks what the encoding itself promises:
// at least one node, the last one non-blank (section 12.4.3.3), leaves at
// even positions and parents at odd ones.
func (t *RatchetTree) decode(r *Reader) {
	nodes := RatchetTree{}
	r.Items(func(r *Reader) {
		var n *Node
		r.Optional(func(r *Reader) {
			n = new(Node)
			n.decode(r)
		})
		if n != nil && (n.Type == NodeTypeLeaf) != isLeaf(NodeIndex(len(nodes))) {
			r.Fail("ratchet tree node %d has type %d", len(nodes), n.Type)
		}
		nodes = append(nodes, n)
	})
	if r.Err() == nil && (len(nodes) == 0 || nodes[len(nodes)-1] == nil) {
		r.Fail("ratchet tree is empty or ends in a blank node")
	}
	*t = nodes
}

// Marshal returns the encoded tree, the ratchet_tree extension's data.
func (t RatchetTree) Marshal() []byte { return marshalWire(t) }

// UnmarshalRatchetTree decodes a ratchet tree, as a ratchet_tree extension
// or an out-of-band copy of the tree carries it. It checks the encoding
// only: the tree hash, parent hashes and leaves are for the caller to
// validate before using the tree (RFC 9420, section 12.4.3.1).
func UnmarshalRatchetTree(b []byte) (RatchetTree, error) {
	var t RatchetTree
	if err := unmarshalCopy(b, &t); err != nil {
		return nil, err
	}
	return t, nil
}
