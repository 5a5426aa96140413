package tlog

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"
)

// A Monitor follows one log: it accepts a newer checkpoint only with every
// entry since the last one it verified, recomputes the tree from them, and
// keeps every user's devices as the entries describe them. The zero value is
// not usable; call [NewMonitor]. A Monitor is not safe for concurrent use.
type Monitor struct {
	origin    string
	verifiers note.Verifiers
	signed    []byte // signed note of cp; nil before the first update
	cp        Checkpoint
	rng       []Hash // compact range [0, cp.Size)
	devices   *DeviceSet
}

// MonitorState is a Monitor's persistent state, JSON-serialisable.
type MonitorState struct {
	Checkpoint []byte     `json:"checkpoint,omitempty"` // signed note of the last verified checkpoint
	Size       int64      `json:"size"`
	Root       Hash       `json:"root"`
	Range      []Hash     `json:"range,omitempty"` // compact range of the tree
	Devices    *DeviceSet `json:"devices"`
}

// NewMonitor returns a monitor of the log named origin whose checkpoints v
// verifies. It resumes from st, or starts from the empty log if st is nil.
// A state that is not internally consistent, or whose checkpoint v does not
// verify, is refused.
func NewMonitor(origin string, v note.Verifiers, st *MonitorState) (*Monitor, error) {
	m := &Monitor{
		origin:    origin,
		verifiers: v,
		cp:        Checkpoint{Origin: origin, Hash: EmptyTreeHash()},
		devices:   NewDeviceSet(),
	}
	if st == nil {
		return m, nil
	}
	if len(st.Checkpoint) > 0 {
		c, _, err := OpenCheckpoint(st.Checkpoint, origin, v)
		if err != nil {
			return nil, fmt.Errorf("monitor state: %w", err)
		}
		m.signed, m.cp = bytes.Clone(st.Checkpoint), c
	}
	if st.Size != m.cp.Size || st.Root != m.cp.Hash {
		return nil, malformed("monitor state: size %d and root %v do not match its checkpoint", st.Size, st.Root)
	}
	r, err := newRange(st.Size, st.Range)
	if err != nil {
		return nil, malformed("monitor state: %v", err)
	}
	if root, err := rootHash(r); err != nil || root != st.Root {
		return nil, malformed("monitor state: range does not give root %v", st.Root)
	}
	m.rng = slices.Clone(st.Range)
	switch {
	case st.Devices != nil:
		m.devices = st.Devices.Clone()
	case st.Size > 0:
		return nil, malformed("monitor state: no device set")
	}
	return m, nil
}

// Update verifies signedCheckpoint and the entries from the monitor's size
// up to the checkpoint's, and if all is well, moves the monitor to the new
// checkpoint. The checkpoint must not be smaller than the current one, the
// root recomputed from the entries must be its root, the first entry of the
// log must be its only [TypeOrgCreate], and every entry must parse and apply
// to the device set. On any error, the monitor is unchanged.
func (m *Monitor) Update(signedCheckpoint []byte, entries [][]byte) (Checkpoint, error) {
	c, _, err := OpenCheckpoint(signedCheckpoint, m.origin, m.verifiers)
	if err != nil {
		return Checkpoint{}, err
	}
	old := m.cp.Size
	if c.Size < old {
		return Checkpoint{}, verifyFailed("checkpoint size %d is smaller than verified size %d", c.Size, old)
	}
	if int64(len(entries)) != c.Size-old {
		return Checkpoint{}, verifyFailed("got %d entries to grow from size %d to %d", len(entries), old, c.Size)
	}
	r, err := newRange(old, m.rng)
	if err != nil {
		return Checkpoint{}, err
	}
	for _, b := range entries {
		h := sumtlog.RecordHash(b)
		if err := r.Append(h[:], nil); err != nil {
			return Checkpoint{}, err
		}
	}
	root, err := rootHash(r)
	if err != nil {
		return Checkpoint{}, err
	}
	switch {
	case c.Size == old && root != c.Hash:
		return Checkpoint{}, verifyFailed("fork: checkpoint root %v at size %d, verified root %v", c.Hash, old, root)
	case root != c.Hash:
		return Checkpoint{}, verifyFailed("entries %d to %d give root %v, checkpoint root is %v", old, c.Size, root, c.Hash)
	}
	devices := m.devices.Clone()
	for i, b := range entries {
		index := old + int64(i)
		e, err := ParseEntry(b)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("entry %d: %w", index, err)
		}
		if (index == 0) != (e.Type == TypeOrgCreate) {
			return Checkpoint{}, verifyFailed("entry %d: %s: the log must start with its only %s", index, e.Type, TypeOrgCreate)
		}
		if err := devices.Apply(index, e); err != nil {
			return Checkpoint{}, fmt.Errorf("entry %d: %w", index, err)
		}
	}
	m.signed, m.cp, m.devices = bytes.Clone(signedCheckpoint), c, devices
	m.rng = hashes(r)
	return m.Checkpoint(), nil
}

// State returns a copy of the monitor's state, for persisting.
func (m *Monitor) State() *MonitorState {
	return &MonitorState{
		Checkpoint: bytes.Clone(m.signed),
		Size:       m.cp.Size,
		Root:       m.cp.Hash,
		Range:      slices.Clone(m.rng),
		Devices:    m.devices.Clone(),
	}
}

// Checkpoint returns the last verified checkpoint. Before the first update,
// that is the empty tree.
func (m *Monitor) Checkpoint() Checkpoint {
	c := m.cp
	c.Extra = slices.Clone(c.Extra)
	return c
}

// Devices returns a copy of the device set built from the verified entries.
func (m *Monitor) Devices() *DeviceSet { return m.devices.Clone() }

// newRange returns a compact range over [0, size) made from copies of the
// given hashes.
func newRange(size int64, hs []Hash) (*compact.Range, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	b := make([][]byte, len(hs))
	for i := range hs {
		b[i] = bytes.Clone(hs[i][:])
	}
	return rf.NewRange(0, uint64(size), b)
}

func rootHash(r *compact.Range) (Hash, error) {
	if r.End() == 0 {
		return EmptyTreeHash(), nil
	}
	b, err := r.GetRootHash(nil)
	if err != nil {
		return Hash{}, err
	}
	return Hash(b), nil
}

func hashes(r *compact.Range) []Hash {
	var hs []Hash
	for _, b := range r.Hashes() {
		hs = append(hs, Hash(b))
	}
	return hs
}
