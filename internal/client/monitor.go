package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/api"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/tlog"
)

// ErrLogProblem is wrapped by every verification failure that means the
// server misbehaved or the account is at risk: a fork, an inconsistent
// checkpoint, a device of this user nobody approved or the user has not
// seen. It is never wrapped by mere network trouble.
var ErrLogProblem = errors.New("transparency log problem")

// DeviceReport is one of this user's devices as the log tells it.
type DeviceReport struct {
	tlog.DeviceState
	Self     bool `json:"self"`
	Accepted bool `json:"accepted"`
}

// VerifyReport is what VerifyLog saw.
type VerifyReport struct {
	Checkpoint tlog.Checkpoint `json:"-"`
	Size       int64           `json:"size"`
	Root       string          `json:"root"`
	NewEntries int64           `json:"new_entries"`
	Devices    []DeviceReport  `json:"devices"`
	// Problems are the reasons verification failed; empty on success.
	Problems []string `json:"problems,omitempty"`
	// Notices are things the user should know that are not failures (a
	// device waiting for approval).
	Notices []string `json:"notices,omitempty"`
}

// VerifyLog brings the device's view of the transparency log up to the
// server's latest checkpoint, verifying every new entry by recomputing the
// tree, and checks this user's devices against the log: every active device
// must have been approved by enough different people, allowed to approve it,
// and be known to this user; the server's own device list must agree with
// the log. It returns an error wrapping ErrLogProblem if anything is wrong;
// the report says what.
func (c *Client) VerifyLog(ctx context.Context) (*VerifyReport, error) {
	var cp api.Checkpoint
	if err := c.Do(ctx, http.MethodGet, "/v1/log/checkpoint", nil, &cp); err != nil {
		return nil, fmt.Errorf("fetch checkpoint: %w", err)
	}
	st, err := c.loadMonitorCopy()
	if err != nil {
		return nil, err
	}
	var old int64
	if st != nil {
		old = st.Size
	}
	// The checkpoint may be signed by a key from a key set this device has
	// not seen yet: read the new size without verifying, fetch the entries
	// (key rotations are entries), then verify.
	newSize, err := unverifiedSize([]byte(cp.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrLogProblem, err)
	}
	if newSize < old {
		return nil, fmt.Errorf("%w: the server's log has %d entries, fewer than the %d this device verified (rolled back or forked)", ErrLogProblem, newSize, old)
	}
	var entries [][]byte
	for start := old; start < newSize; {
		var es api.Entries
		if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/log/entries?start=%d&end=%d", start, newSize), nil, &es); err != nil {
			return nil, fmt.Errorf("fetch entries: %w", err)
		}
		if es.Start != start || len(es.Entries) == 0 {
			return nil, fmt.Errorf("%w: server answered entries from %d with %d entries from %d", ErrLogProblem, start, len(es.Entries), es.Start)
		}
		entries = append(entries, es.Entries...)
		start += int64(len(es.Entries))
	}
	// Parsed once, for every replay below.
	parsed := make([]tlog.Entry, len(entries))
	for i, raw := range entries {
		if parsed[i], err = tlog.ParseEntry(raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLogProblem, err)
		}
	}
	if err := c.learnKeySets(parsed); err != nil {
		return nil, err
	}
	// Only the log key in force may sign a new checkpoint: a retired key,
	// even one that leaked, cannot.
	c.mu.Lock()
	ks := c.keyset
	c.mu.Unlock()
	current, err := ks.LogVerifier()
	if err != nil {
		return nil, err
	}
	if _, _, err := tlog.OpenCheckpoint([]byte(cp.Checkpoint), c.prof.LogOrigin, note.VerifierList(current)); err != nil {
		return nil, fmt.Errorf("%w: the checkpoint is not signed by the log key of key set %d: %v", ErrLogProblem, ks.Serial, err)
	}
	m, err := tlog.NewMonitor(c.prof.LogOrigin, c.logVerifiers(), st)
	if err != nil {
		return nil, fmt.Errorf("%w: stored monitor state: %v", ErrLogProblem, err)
	}
	got, err := m.Update([]byte(cp.Checkpoint), entries)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLogProblem, err)
	}
	rep := &VerifyReport{Checkpoint: got, Size: got.Size, Root: fmt.Sprintf("%x", got.Hash[:]), NewEntries: got.Size - old}
	roles, err := c.rolesFromLog(parsed)
	if err != nil {
		return nil, err
	}
	if err := c.chainsFromLog(old, parsed); err != nil {
		return nil, err
	}
	if err := c.callsFromLog(old, parsed); err != nil {
		return nil, err
	}
	if err := c.recordsFromLog(parsed); err != nil {
		return nil, err
	}
	if err := c.checkDevices(ctx, m, roles, old, entries, rep); err != nil {
		return rep, err
	}
	if err := c.saveMonitor(m.State()); err != nil {
		return rep, err
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrLogProblem, rep.Problems[0])
	}
	return rep, nil
}

// unverifiedSize reads a checkpoint's size without checking its signature.
func unverifiedSize(signed []byte) (int64, error) {
	i := indexSigSep(signed)
	if i < 0 {
		return 0, errors.New("not a signed note")
	}
	c, err := tlog.ParseCheckpoint(signed[:i+1])
	return c.Size, err
}

func indexSigSep(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\n' && b[i+1] == '\n' {
			return i
		}
	}
	return -1
}

func (c *Client) logVerifiers() note.Verifiers {
	c.mu.Lock()
	defer c.mu.Unlock()
	var vs []note.Verifier
	for _, k := range c.prof.LogKeys {
		if v, err := note.NewVerifier(k); err == nil {
			vs = append(vs, v)
		}
	}
	return note.VerifierList(vs...)
}

// issuerVerifiers returns every issuer key this device has trusted.
func (c *Client) issuerVerifiers() note.Verifiers {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := append([]string{c.keyset.Issuer}, c.prof.IssuerKeys...)
	var vs []note.Verifier
	for i, k := range keys {
		if slices.Contains(keys[:i], k) {
			continue // note.VerifierList refuses a key given twice
		}
		if v, err := note.NewVerifier(k); err == nil {
			vs = append(vs, v)
		}
	}
	return note.VerifierList(vs...)
}

// keySets returns the key sets this device trusts for external senders:
// the current one. (A conversation made before a delivery-key rotation
// names the old key; members then update the group's extensions.)
func (c *Client) keySets() []identity.KeySet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []identity.KeySet{c.keyset}
}

// learnKeySets checks every key set in new entries against the pinned root
// key and adopts the newest one's keys.
func (c *Client) learnKeySets(entries []tlog.Entry) error {
	for _, e := range entries {
		if e.Type != tlog.TypeOrgCreate && e.Type != tlog.TypeKeysRotate {
			continue
		}
		ks, err := identity.OpenKeySet([]byte(e.KeySet), c.root)
		if err != nil {
			return fmt.Errorf("%w: a key set in the log is not signed by the organisation's root key: %v", ErrLogProblem, err)
		}
		c.mu.Lock()
		if !slices.Contains(c.prof.LogKeys, ks.Log) {
			c.prof.LogKeys = append(c.prof.LogKeys, ks.Log)
		}
		if !slices.Contains(c.prof.IssuerKeys, ks.Issuer) {
			c.prof.IssuerKeys = append(c.prof.IssuerKeys, ks.Issuer)
		}
		newer := ks.Serial > c.keyset.Serial
		if newer {
			c.keyset = ks
			c.verified = identity.Credential{} // verify again under the new issuer key
		}
		err = c.saveProfileLocked()
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if newer {
			if err := c.st.WriteFile(KeySetFile, []byte(e.KeySet)); err != nil {
				return err
			}
		}
	}
	return nil
}

// userRoles follows every user's roles through the log, so the device can
// judge approvals without trusting the server's directory.
type userRoles struct {
	Roles   map[string]identity.Roles `json:"roles"`
	Creator map[string]string         `json:"creator"`
}

// rolesFromLog replays the role entries among the new entries onto the
// state kept in roles.json. Replaying an entry twice is harmless: each sets
// a user's roles outright.
func (c *Client) rolesFromLog(entries []tlog.Entry) (*userRoles, error) {
	ur := &userRoles{Roles: map[string]identity.Roles{}, Creator: map[string]string{}}
	if b, err := c.st.ReadFile(RolesFile); err == nil {
		if err := json.Unmarshal(b, ur); err != nil {
			return nil, fmt.Errorf("%s: %w", RolesFile, err)
		}
	}
	for _, e := range entries {
		switch e.Type {
		case tlog.TypeUserCreate, tlog.TypeUserRoles:
			rs, err := identity.ParseRoles(strings.Join(e.Roles, ","))
			if err != nil {
				return nil, fmt.Errorf("%w: roles in log: %v", ErrLogProblem, err)
			}
			ur.Roles[e.User] = rs
			if e.Type == tlog.TypeUserCreate {
				ur.Creator[e.User] = e.Actor
			}
		}
	}
	b, err := json.Marshal(ur)
	if err != nil {
		return nil, err
	}
	return ur, c.st.WriteFile(RolesFile, b)
}

// ChainHead is a conversation's message chain head as the log commits it
// (a conversation.chain entry).
type ChainHead struct {
	Seq   int64  `json:"seq"`
	Chain []byte `json:"chain"`
	Index int64  `json:"index"` // the entry's place in the log
}

// chainsFromLog keeps, per conversation, the newest chain head the log
// commits (ChainsFile), so that the archive's store can be checked against
// it ([Client.ChainHeads]). entries start at index old.
func (c *Client) chainsFromLog(old int64, entries []tlog.Entry) error {
	heads, err := c.ChainHeads()
	if err != nil {
		return err
	}
	changed := false
	for i, e := range entries {
		if e.Type != tlog.TypeConversationChain {
			continue
		}
		chain, err := base64.StdEncoding.DecodeString(e.Chain)
		if err != nil {
			return fmt.Errorf("%w: chain in log: %v", ErrLogProblem, err)
		}
		if h, ok := heads[e.Conversation]; ok && int64(e.Count) <= h.Seq {
			return fmt.Errorf("%w: the log commits conversation %s's head at #%d after #%d", ErrLogProblem, e.Conversation, e.Count, h.Seq)
		}
		heads[e.Conversation] = ChainHead{Seq: int64(e.Count), Chain: chain, Index: old + int64(i)}
		changed = true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(heads)
	if err != nil {
		return err
	}
	return c.st.WriteFile(ChainsFile, b)
}

// ChainHeads returns the newest chain head the log commits of each
// conversation, as far as this device has verified the log.
func (c *Client) ChainHeads() (map[string]ChainHead, error) {
	heads := map[string]ChainHead{}
	b, err := c.st.ReadFile(ChainsFile)
	if errors.Is(err, os.ErrNotExist) {
		return heads, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &heads); err != nil {
		return nil, fmt.Errorf("%s: %w", ChainsFile, err)
	}
	return heads, nil
}

// checkDevices judges this user's devices.
func (c *Client) checkDevices(ctx context.Context, m *tlog.Monitor, ur *userRoles, old int64, entries [][]byte, rep *VerifyReport) error {
	c.mu.Lock()
	prof := c.prof
	c.mu.Unlock()
	me := prof.User
	meID, err := identity.ParseUserID(me)
	if err != nil {
		return err
	}
	devs := m.Devices().Devices(me)
	var self *tlog.DeviceState
	for i := range devs {
		if devs[i].Device == prof.Device {
			self = &devs[i]
		}
	}
	if self == nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("this device %s is not in the log", prof.Device))
		return nil
	}
	// The first verification trusts devices enrolled before this one.
	accepted := slices.Clone(prof.Accepted)
	if prof.EnrolIndex < 0 {
		prof.EnrolIndex = self.EnrolIndex
		for _, d := range devs {
			if d.EnrolIndex < self.EnrolIndex && !slices.Contains(accepted, d.Device) {
				accepted = append(accepted, d.Device)
			}
		}
	}
	for _, d := range devs {
		dr := DeviceReport{DeviceState: d, Self: d.Device == prof.Device}
		// A device this user approved from one of their own devices is known.
		if slices.Contains(d.Approvers, me) && !slices.Contains(accepted, d.Device) {
			accepted = append(accepted, d.Device)
		}
		dr.Accepted = slices.Contains(accepted, d.Device)
		switch d.Status {
		case tlog.StatusActive:
			if p := checkApprovers(meID, d, ur); p != "" {
				rep.Problems = append(rep.Problems, p)
			}
			if !dr.Accepted {
				rep.Problems = append(rep.Problems, fmt.Sprintf("device %s was added to your account by %v without your approval; if you expect it, run: hotline device accept %s; otherwise: hotline device revoke %s",
					d.Device, d.Approvers, d.Device, d.Device))
			}
		case tlog.StatusPending:
			rep.Notices = append(rep.Notices, fmt.Sprintf("device %s awaits approval; approve it with hotline device approve %s, or revoke it", d.Device, d.Device))
		}
		rep.Devices = append(rep.Devices, dr)
	}
	// The server's own list must agree with the log.
	var listed []api.Device
	if err := c.Do(ctx, http.MethodGet, "/v1/devices", nil, &listed); err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	for _, sd := range listed {
		i := slices.IndexFunc(devs, func(d tlog.DeviceState) bool { return d.Device == sd.ID })
		switch {
		case i < 0:
			rep.Problems = append(rep.Problems, fmt.Sprintf("the server lists device %s that is not in the log", sd.ID))
		case devs[i].Status != sd.Status:
			rep.Problems = append(rep.Problems, fmt.Sprintf("the server says device %s is %s; the log says %s", sd.ID, sd.Status, devs[i].Status))
		case devs[i].SigKey != sd.SigKey:
			rep.Problems = append(rep.Problems, fmt.Sprintf("the server's key for device %s differs from the log's", sd.ID))
		}
	}
	c.mu.Lock()
	c.prof.Accepted, c.prof.EnrolIndex = accepted, prof.EnrolIndex
	err = c.saveProfileLocked()
	c.mu.Unlock()
	return err
}

// checkApprovers reports a problem if an active device of user u lacks
// approvals by enough different people allowed to approve it.
func checkApprovers(u identity.UserID, d tlog.DeviceState, ur *userRoles) string {
	byUser := map[identity.UserID]identity.Roles{}
	for _, a := range d.Approvers {
		if a == "system" {
			if ur.Creator[u.String()] != "system" {
				return fmt.Sprintf("device %s claims approval by the system, but %s was not created by hotline init", d.Device, u)
			}
			return ""
		}
		au, err := identity.ParseUserID(a)
		if err != nil {
			return fmt.Sprintf("device %s has a malformed approver %q", d.Device, a)
		}
		if !directory.CanApproveDevice(au, ur.Roles[a], u) {
			return fmt.Sprintf("device %s was approved by %s, who may not approve %s's devices", d.Device, a, u)
		}
		byUser[au] = ur.Roles[a]
	}
	if !directory.DeviceApproved(u, ur.Roles[u.String()], byUser) {
		return fmt.Sprintf("device %s is active with %d approver(s); %s needs %d", d.Device, len(byUser), u, directory.DeviceApprovalsNeeded(ur.Roles[u.String()]))
	}
	return ""
}

// Accept records that the user recognises one of their devices. The device
// must be one of the user's in the log this device last verified.
func (c *Client) Accept(id string) error {
	st, err := c.loadMonitor()
	if err != nil {
		return err
	}
	if st == nil || st.Devices == nil {
		return errors.New("no verified log yet: run hotline log verify first")
	}
	if !slices.ContainsFunc(st.Devices.Devices(c.Profile().User), func(d tlog.DeviceState) bool { return d.Device == id }) {
		return fmt.Errorf("the verified log holds no device %s of %s; run hotline log verify, then check the ID", id, c.Profile().User)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.prof.Accepted, id) {
		c.prof.Accepted = append(c.prof.Accepted, id)
	}
	return c.saveProfileLocked()
}

// LastCheckpoint returns the last checkpoint this device verified (signed).
func (c *Client) LastCheckpoint() ([]byte, error) {
	st, err := c.loadMonitor()
	if err != nil {
		return nil, err
	}
	if st == nil || st.Checkpoint == nil {
		return nil, errors.New("no verified checkpoint yet: run hotline log verify")
	}
	return st.Checkpoint, nil
}

// CompareCheckpoint checks a checkpoint another party saw against this
// device's verified view, with a consistency proof from the server when the
// sizes differ. A server showing two parties different logs fails here.
func (c *Client) CompareCheckpoint(ctx context.Context, other []byte) error {
	// Members of a conversation send the same few checkpoints. One no
	// larger than this device's view, and consistent with it, is a prefix
	// of everything this device will verify later (its view only grows by
	// consistency proofs): it need not be checked again.
	key := string(other)
	c.monMu.Lock()
	seen := c.consistent[key]
	c.monMu.Unlock()
	if seen {
		return nil
	}
	prefix, err := c.compareCheckpoint(ctx, other)
	if err != nil || !prefix {
		return err
	}
	c.monMu.Lock()
	if c.consistent == nil || len(c.consistent) >= 1024 {
		c.consistent = map[string]bool{}
	}
	c.consistent[key] = true
	c.monMu.Unlock()
	return nil
}

// compareCheckpoint is CompareCheckpoint without the memory; prefix says
// the other checkpoint is no larger than this device's view.
func (c *Client) compareCheckpoint(ctx context.Context, other []byte) (prefix bool, err error) {
	st, err := c.loadMonitor()
	if err != nil {
		return false, err
	}
	if st == nil {
		return false, errors.New("no verified checkpoint yet: run hotline log verify")
	}
	theirs, _, err := tlog.OpenCheckpoint(other, c.prof.LogOrigin, c.logVerifiers())
	if err != nil {
		return false, fmt.Errorf("%w: the other checkpoint: %v", ErrLogProblem, err)
	}
	ours, _, err := tlog.OpenCheckpoint(st.Checkpoint, c.prof.LogOrigin, c.logVerifiers())
	if err != nil {
		return false, fmt.Errorf("%w: our checkpoint: %v", ErrLogProblem, err)
	}
	var proof []tlog.Hash
	if ours.Size != theirs.Size && min(ours.Size, theirs.Size) > 0 {
		var p api.ConsistencyProof
		q := fmt.Sprintf("/v1/log/proof/consistency?old=%d&new=%d", min(ours.Size, theirs.Size), max(ours.Size, theirs.Size))
		if err := c.Do(ctx, http.MethodGet, q, nil, &p); err != nil {
			return false, fmt.Errorf("fetch consistency proof: %w", err)
		}
		if proof, err = tlog.DecodeProof(p.Proof); err != nil {
			return false, fmt.Errorf("%w: %v", ErrLogProblem, err)
		}
	}
	if err := tlog.CheckConsistent(ours, theirs, proof); err != nil {
		return false, fmt.Errorf("%w: %v", ErrLogProblem, err)
	}
	return theirs.Size <= ours.Size, nil
}

// loadMonitor returns the monitor's state as last saved. Every leaf check
// reads it, so it is kept parsed in memory until saveMonitor changes it
// or, on disk, the file's size or modification time does. The state
// returned is shared: read it only.
func (c *Client) loadMonitor() (*tlog.MonitorState, error) {
	stamp, err := fileStamp(c.st, MonitorFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	c.monMu.Lock()
	defer c.monMu.Unlock()
	if c.mon.st != nil && c.mon.stamp == stamp {
		return c.mon.st, nil
	}
	st, err := c.loadMonitorCopy()
	if st != nil {
		c.mon.st, c.mon.stamp = st, stamp
	}
	return st, err
}

// loadMonitorCopy returns a copy of the monitor's state to change.
func (c *Client) loadMonitorCopy() (*tlog.MonitorState, error) {
	b, err := c.st.ReadFile(MonitorFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var st tlog.MonitorState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", MonitorFile, err)
	}
	return &st, nil
}

func (c *Client) saveMonitor(st *tlog.MonitorState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	c.monMu.Lock()
	defer c.monMu.Unlock()
	c.mon.st = nil
	return c.st.WriteFile(MonitorFile, b)
}
