package transparency

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// ErrAudit is wrapped by every audit finding.
var ErrAudit = errors.New("audit failed")

// AuditReport is what Audit checked.
type AuditReport struct {
	Entries     int64    `json:"entries"`
	Checkpoints int      `json:"checkpoints"`
	Devices     int      `json:"devices"`
	Users       int      `json:"users"`
	Pending     int      `json:"pending"` // entries not yet integrated
	Findings    []string `json:"findings,omitempty"`
}

// Audit recomputes the tree from the stored entries and checks, without
// trusting anything else in the database:
//   - every stored hash equals the one recomputed from the entries;
//   - every stored checkpoint is signed by a log key of a root-signed key set
//     and commits to the tree recomputed at its size;
//   - every key set in the log is signed by the root key;
//   - the devices table agrees with the devices the log describes (same
//     devices, users, keys and statuses), and the users table with the
//     roles and clearances the log records.
//
// Editing or deleting a log row, a hash, a checkpoint, a device or a user
// behind the server's back is a finding that names the entry or row.
func Audit(ctx context.Context, st *store.Store, origin string, root note.Verifier) (*AuditReport, error) {
	rep := &AuditReport{}
	find := func(format string, args ...any) { rep.Findings = append(rep.Findings, fmt.Sprintf(format, args...)) }
	err := st.View(ctx, func(tx *store.Tx) error {
		size, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		rep.Entries = size
		// Recompute every stored hash from the entries alone.
		computed := map[int64]tlog.Hash{}
		r := sumtlog.HashReaderFunc(func(idx []int64) ([]sumtlog.Hash, error) {
			out := make([]sumtlog.Hash, len(idx))
			for i, x := range idx {
				h, ok := computed[x]
				if !ok {
					return nil, fmt.Errorf("hash %d not computed", x)
				}
				out[i] = h
			}
			return out, nil
		})
		devices := tlog.NewDeviceSet()
		users := map[string]*store.User{}
		// The log key in force from each key set's entry on.
		type keyFrom struct {
			index int64
			v     note.Verifier
		}
		var logKeys []keyFrom
		var badEntry int64 = -1
		const chunk = 1000
		for start := int64(0); start < size; start += chunk {
			es, err := tx.Entries(ctx, start, min(start+chunk, size))
			if err != nil {
				find("entries from %d: %v", start, err)
				badEntry = start
				break
			}
			for i, data := range es {
				n := start + int64(i)
				hs, err := sumtlog.StoredHashes(n, data, r)
				if err != nil {
					return err
				}
				first := sumtlog.StoredHashIndex(0, n)
				for j, h := range hs {
					computed[first+int64(j)] = h
				}
				stored, err := tx.Hashes(ctx, []int64{first})
				if err != nil || stored[0] != hs[0] {
					if badEntry < 0 {
						badEntry = n
					}
					find("entry %d: its content does not match the stored tree (edited or replaced)", n)
				}
				e, err := tlog.ParseEntry(data)
				if err != nil {
					find("entry %d: %v", n, err)
					continue
				}
				if err := devices.Apply(n, e); err != nil {
					find("entry %d: %v", n, err)
				}
				if err := applyUser(users, e); err != nil {
					find("entry %d: %v", n, err)
				}
				if e.Type == tlog.TypeOrgCreate || e.Type == tlog.TypeKeysRotate {
					ks, err := identity.OpenKeySet([]byte(e.KeySet), root)
					if err != nil {
						find("entry %d: key set not signed by the root key: %v", n, err)
						continue
					}
					if v, err := ks.LogVerifier(); err == nil {
						logKeys = append(logKeys, keyFrom{n, v})
					}
				}
			}
		}
		// Entries committed with their changes but not yet integrated (the
		// server stopped, or is writing now) are part of the state the tables
		// show: replay them too, after the tree.
		pending, err := tx.Pending(ctx, 1<<30)
		if err != nil {
			return err
		}
		rep.Pending = len(pending)
		for i, p := range pending {
			e, err := tlog.ParseEntry(p.Data)
			if err != nil {
				find("pending entry %d: %v", p.ID, err)
				continue
			}
			if err := devices.Apply(size+int64(i), e); err != nil {
				find("pending entry %d: %v", p.ID, err)
			}
			if err := applyUser(users, e); err != nil {
				find("pending entry %d: %v", p.ID, err)
			}
		}
		// Every stored hash must be one we computed, and vice versa.
		want := sumtlog.StoredHashCount(size)
		for idx := int64(0); idx < want; idx++ {
			h, ok := computed[idx]
			if !ok {
				break
			}
			stored, err := tx.Hashes(ctx, []int64{idx})
			if err != nil {
				find("stored hash %d: %v", idx, err)
				break
			}
			if stored[0] != h {
				level, n := sumtlog.SplitStoredHashIndex(idx)
				find("stored hash %d (level %d, node %d) does not match the entries", idx, level, n)
			}
		}
		// Every checkpoint, signed by the log key in force at its size: the
		// newest key set among its entries.
		err = tx.Checkpoints(ctx, func(n int64, signed []byte) error {
			rep.Checkpoints++
			var v note.Verifier
			for _, k := range logKeys {
				if k.index < n {
					v = k.v
				}
			}
			if v == nil {
				find("checkpoint at size %d: no key set precedes it", n)
				return nil
			}
			cp, _, err := tlog.OpenCheckpoint(signed, origin, note.VerifierList(v))
			if err != nil {
				find("checkpoint at size %d: not signed by the log key in force (%v)", n, err)
				return nil
			}
			if cp.Size != n || n > size {
				find("checkpoint stored at size %d claims size %d (log size %d)", n, cp.Size, size)
				return nil
			}
			if badEntry >= 0 && n > badEntry {
				find("checkpoint at size %d cannot be checked past the damaged entry %d", n, badEntry)
				return nil
			}
			root, err := tlog.TreeHash(n, r)
			if err != nil || root != cp.Hash {
				find("checkpoint at size %d: signed root does not match the tree recomputed from the entries", n)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if latest, _, err := tx.LatestCheckpoint(ctx); err == nil && latest != size {
			find("the latest checkpoint covers %d entries but the log holds %d", latest, size)
		}
		// Devices table versus log.
		stored, err := tx.ListDevices(ctx, identity.UserID{})
		if err != nil {
			return err
		}
		rep.Devices = len(stored)
		seen := map[string]bool{}
		for _, d := range stored {
			seen[d.ID] = true
			var ld *tlog.DeviceState
			for _, x := range devices.Devices(d.User.String()) {
				if x.Device == d.ID {
					ld = &x
				}
			}
			switch {
			case ld == nil:
				find("device %s (%s) is in the devices table but not in the log", d.ID, d.User)
			case ld.Status != d.Status:
				find("device %s is %s in the devices table but %s in the log (enrolled at entry %d)", d.ID, d.Status, ld.Status, ld.EnrolIndex)
			case ld.SigKey != d.SigKey.String():
				find("device %s has a different signature key in the devices table than in the log (enrolled at entry %d)", d.ID, ld.EnrolIndex)
			}
		}
		for _, m := range devices.Users {
			for id, ld := range m {
				if !seen[id] {
					find("device %s of %s is in the log (enrolled at entry %d) but missing from the devices table", id, ld.User, ld.EnrolIndex)
				}
			}
		}
		// Users table versus log.
		us, err := tx.ListUsers(ctx)
		if err != nil {
			return err
		}
		rep.Users = len(us)
		for _, u := range us {
			lu := users[u.ID.String()]
			switch {
			case lu == nil:
				find("user %s is in the users table but not in the log", u.ID)
			case !slices.Equal(lu.Roles, u.Roles):
				find("user %s has roles %q in the users table but %q in the log", u.ID, u.Roles, lu.Roles)
			case lu.Clearance != u.Clearance || !slices.Equal(lu.Compartments, u.Compartments):
				find("user %s has clearance %s %v in the users table but %s %v in the log", u.ID, u.Clearance, u.Compartments, lu.Clearance, lu.Compartments)
			case lu.Disabled != u.Disabled:
				find("user %s is disabled=%v in the users table but %v in the log", u.ID, u.Disabled, lu.Disabled)
			}
			delete(users, u.ID.String())
		}
		for id := range users {
			find("user %s is in the log but missing from the users table", id)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if len(rep.Findings) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrAudit, strings.Join(rep.Findings, "; "))
	}
	return rep, nil
}

// applyUser replays user entries.
func applyUser(users map[string]*store.User, e tlog.Entry) error {
	switch e.Type {
	case tlog.TypeUserCreate, tlog.TypeUserRoles, tlog.TypeUserClearance:
	case tlog.TypeUserDisable:
		u := users[e.User]
		if u == nil {
			return fmt.Errorf("%s for unknown user %s", e.Type, e.User)
		}
		u.Disabled = true
		return nil
	default:
		return nil
	}
	u := users[e.User]
	if e.Type == tlog.TypeUserCreate {
		if u != nil {
			return fmt.Errorf("user %s created twice", e.User)
		}
		u = &store.User{Compartments: identity.Compartments{}}
		users[e.User] = u
	} else if u == nil {
		return fmt.Errorf("%s for unknown user %s", e.Type, e.User)
	}
	if e.Type != tlog.TypeUserClearance {
		rs, err := identity.ParseRoles(strings.Join(e.Roles, ","))
		if err != nil {
			return err
		}
		u.Roles = rs
	}
	if e.Type != tlog.TypeUserRoles {
		c, err := identity.ParseClearance(e.Clearance)
		if err != nil {
			return err
		}
		u.Clearance = c
		if e.Type == tlog.TypeUserClearance {
			u.Compartments = identity.Compartments(e.Compartments).Normalize()
			if u.Compartments == nil {
				u.Compartments = identity.Compartments{}
			}
		}
	}
	return nil
}
