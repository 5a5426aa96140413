// Package storetest is the store's conformance suite. Every backend runs it
// (SQLite always, PostgreSQL when HOTLINE_TEST_POSTGRES is set), so both
// have the same semantics, including under concurrent transactions.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"hotline/internal/conversation"
	"hotline/internal/identity"
	"hotline/internal/store"
)

// Run runs the suite. open must return a fresh, empty, migrated store for
// each call; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, *store.Store)
	}{
		{"Users", testUsers},
		{"Devices", testDevices},
		{"Approvals", testApprovals},
		{"Invites", testInvites},
		{"InviteRace", testInviteRace},
		{"SessionsAndChallenges", testSessions},
		{"ChangeRequests", testChangeRequests},
		{"Policy", testPolicy},
		{"Log", testLog},
		{"Events", testEvents},
		{"EventRace", testEventRace},
		{"Rollback", testRollback},
		{"Meta", testMeta},
		{"KeyPackages", testKeyPackages},
		{"KeyPackageRace", testKeyPackageRace},
		{"Blobs", testBlobs},
		{"Conversations", testConversations},
		{"Calls", testCalls},
		{"ConversationCommitRace", testConversationCommitRace},
		{"ConversationChain", testConversationChain},
		{"ConversationChainRace", testConversationChainRace},
		{"LapsedConversationMembers", testLapsedConversationMembers},
		{"Passkeys", testPasskeys},
		{"NoteTakers", testNoteTakers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func uid(t *testing.T, s string) identity.UserID {
	t.Helper()
	u, err := identity.ParseUserID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func update(t *testing.T, s *store.Store, fn func(*store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, s *store.Store, fn func(*store.Tx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
}

func mkUser(t *testing.T, s *store.Store, id string, roles ...identity.Role) store.User {
	t.Helper()
	u := store.User{ID: uid(t, id), Roles: identity.Roles(roles).Normalize(), Clearance: identity.Secret,
		Compartments: identity.Compartments{"ALPHA"}, CreatedAt: t0, CreatedBy: "test"}
	update(t, s, func(tx *store.Tx) error { return tx.CreateUser(t.Context(), u) })
	return u
}

func mkDevice(t *testing.T, s *store.Store, user identity.UserID, n byte, status string) store.Device {
	t.Helper()
	var pk identity.PublicKey
	pk[0], pk[1] = n, byte(len(user.Name))
	d := store.Device{ID: fmt.Sprintf("dev%02x%s", n, user.Name), User: user, SigKey: pk, KEMKey: []byte{n, 1, 2},
		Label: "laptop", Status: status, CreatedAt: t0.Add(time.Duration(n) * time.Second), UpdatedAt: t0}
	update(t, s, func(tx *store.Tx) error { return tx.CreateDevice(t.Context(), d) })
	return d
}

func testUsers(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example", identity.RolePrincipal)
	mkUser(t, s, "bob@state.example", identity.RoleAdmin, identity.RoleSecurityOfficer)

	err := s.Update(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, alice); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("duplicate user: got %v, want ErrConflict", err)
		}
		// The transaction must stay usable after a conflict (PostgreSQL
		// aborts a transaction on a failed statement; the store must not
		// let one happen).
		_, err := tx.GetUser(ctx, alice.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetUser(ctx, alice.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(alice, got); diff != "" {
			t.Errorf("GetUser (-want +got):\n%s", diff)
		}
		if _, err := tx.GetUser(ctx, uid(t, "nobody@state.example")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUser(nobody) = %v, want ErrNotFound", err)
		}
		return nil
	})

	alice.Clearance = identity.TopSecret
	alice.Compartments = identity.Compartments{"ALPHA", "BRAVO"}
	alice.Roles = identity.Roles{identity.RolePrincipal, identity.RoleAdmin}
	alice.Disabled = true
	update(t, s, func(tx *store.Tx) error { return tx.UpdateUser(ctx, alice) })
	view(t, s, func(tx *store.Tx) error {
		us, err := tx.ListUsers(ctx)
		if err != nil {
			return err
		}
		if len(us) != 2 || us[0].ID != alice.ID || us[1].ID.Name != "bob" {
			t.Fatalf("ListUsers = %v", us)
		}
		if diff := cmp.Diff(alice, us[0]); diff != "" {
			t.Errorf("after UpdateUser (-want +got):\n%s", diff)
		}
		admins, err := tx.UsersWithRole(ctx, identity.RoleAdmin)
		if err != nil {
			return err
		}
		if len(admins) != 1 || admins[0].ID.Name != "bob" {
			t.Errorf("UsersWithRole(admin) = %v, want bob only (alice is disabled)", admins)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.UpdateUser(ctx, store.User{ID: uid(t, "ghost@state.example")})
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(ghost) = %v, want ErrNotFound", err)
	}
}

func testDevices(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	bob := mkUser(t, s, "bob@state.example").ID
	d1 := mkDevice(t, s, alice, 1, store.DeviceActive)
	d2 := mkDevice(t, s, alice, 2, store.DevicePending)
	mkDevice(t, s, bob, 3, store.DeviceActive)

	err := s.Update(ctx, func(tx *store.Tx) error {
		if err := tx.CreateDevice(ctx, d1); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("duplicate device: got %v, want ErrConflict", err)
		}
		return tx.SetDeviceStatus(ctx, d2.ID, store.DeviceActive, t0.Add(time.Minute), store.DevicePending)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.SetDeviceStatus(ctx, d2.ID, store.DeviceActive, t0, store.DevicePending)
	}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approve active device: %v, want ErrConflict", err)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.SetDeviceStatus(ctx, "nosuchdevice", store.DeviceRevoked, t0, store.DeviceActive)
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown device: %v, want ErrNotFound", err)
	}
	exp := t0.Add(24 * time.Hour)
	update(t, s, func(tx *store.Tx) error { return tx.SetCredential(ctx, d1.ID, []byte("signed credential"), exp) })

	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetDevice(ctx, d1.ID)
		if err != nil {
			return err
		}
		want := d1
		want.Credential, want.CredentialExpires = []byte("signed credential"), exp
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetDevice (-want +got):\n%s", diff)
		}
		ds, err := tx.ListDevices(ctx, alice)
		if err != nil {
			return err
		}
		if len(ds) != 2 || ds[0].ID != d1.ID || ds[1].ID != d2.ID || ds[1].Status != store.DeviceActive {
			t.Errorf("ListDevices(alice) = %+v", ds)
		}
		all, err := tx.ListDevices(ctx, identity.UserID{})
		if err != nil {
			return err
		}
		if len(all) != 3 {
			t.Errorf("ListDevices(all) has %d devices, want 3", len(all))
		}
		return nil
	})
}

func testApprovals(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	sec := mkUser(t, s, "sec@state.example").ID
	d := mkDevice(t, s, alice, 1, store.DevicePending)
	a1 := store.Approval{DeviceID: d.ID, Approver: sec, ApproverDevice: "secdev", At: t0}
	a2 := store.Approval{DeviceID: d.ID, Approver: alice, ApproverDevice: "alicedev", At: t0.Add(time.Second)}
	update(t, s, func(tx *store.Tx) error { return tx.AddApproval(ctx, a1) })
	err := s.Update(ctx, func(tx *store.Tx) error {
		dup := a1
		dup.ApproverDevice = "secdev2"
		if err := tx.AddApproval(ctx, dup); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("second approval by the same user: %v, want ErrConflict", err)
		}
		return tx.AddApproval(ctx, a2)
	})
	if err != nil {
		t.Fatal(err)
	}
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.Approvals(ctx, d.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]store.Approval{a1, a2}, got); diff != "" {
			t.Errorf("Approvals (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testInvites(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	inv := store.Invite{Hash: sha256.Sum256([]byte("code")), User: alice, CreatedBy: "admin@state.example", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	expired := store.Invite{Hash: sha256.Sum256([]byte("old")), User: alice, CreatedBy: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateInvite(ctx, inv); err != nil {
			return err
		}
		return tx.CreateInvite(ctx, expired)
	})
	now := t0.Add(30 * time.Minute)
	var got store.Invite
	update(t, s, func(tx *store.Tx) error {
		var err error
		got, err = tx.UseInvite(ctx, inv.Hash, "dev1", now)
		return err
	})
	if diff := cmp.Diff(inv, got); diff != "" {
		t.Errorf("UseInvite (-want +got):\n%s", diff)
	}
	for name, h := range map[string][32]byte{"reused": inv.Hash, "expired": expired.Hash, "unknown": sha256.Sum256([]byte("nope"))} {
		err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.UseInvite(ctx, h, "dev2", now)
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UseInvite(%s) = %v, want ErrNotFound", name, err)
		}
	}
}

// testInviteRace: many devices race to use one invite; exactly one wins.
func testInviteRace(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	inv := store.Invite{Hash: sha256.Sum256([]byte("race")), User: alice, CreatedBy: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	update(t, s, func(tx *store.Tx) error { return tx.CreateInvite(ctx, inv) })
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.UseInvite(ctx, inv.Hash, fmt.Sprintf("dev%d", i), t0)
				return err
			})
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("racer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d racers used the invite, want exactly 1", wins)
	}
}

func testSessions(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	d := mkDevice(t, s, alice, 1, store.DeviceActive)
	sess := store.Session{TokenHash: sha256.Sum256([]byte("tok")), DeviceID: d.ID, ExpiresAt: t0.Add(10 * time.Minute)}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.CreateChallenge(ctx, []byte("nonce1"), d.ID, t0.Add(time.Minute)); err != nil {
			return err
		}
		return tx.CreateChallenge(ctx, []byte("nonce2"), d.ID, t0.Add(time.Minute))
	})
	view(t, s, func(tx *store.Tx) error {
		gotD, gotU, err := tx.SessionActor(ctx, sess.TokenHash, t0)
		if err != nil {
			return err
		}
		wantU, err := tx.GetUser(ctx, alice)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(d, gotD); diff != "" {
			t.Errorf("SessionActor device (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantU, gotU); diff != "" {
			t.Errorf("SessionActor user (-want +got):\n%s", diff)
		}
		if _, _, err := tx.SessionActor(ctx, sess.TokenHash, sess.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionActor of an expired session: %v, want ErrNotFound", err)
		}
		return nil
	})
	check := func(name string, nonce, dev string, now time.Time, want error) {
		t.Helper()
		err := s.Update(ctx, func(tx *store.Tx) error { return tx.UseChallenge(ctx, []byte(nonce), dev, now) })
		if !errors.Is(err, want) {
			t.Errorf("UseChallenge %s = %v, want %v", name, err, want)
		}
	}
	check("wrong device", "nonce1", "other", t0, store.ErrNotFound)
	check("first use", "nonce1", d.ID, t0, nil)
	check("second use", "nonce1", d.ID, t0, store.ErrNotFound)
	check("expired", "nonce2", d.ID, t0.Add(time.Minute), store.ErrNotFound)

	update(t, s, func(tx *store.Tx) error { return tx.DeleteSessions(ctx, d.ID) })
	view(t, s, func(tx *store.Tx) error {
		if _, _, err := tx.SessionActor(ctx, sess.TokenHash, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session after DeleteSessions: %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error { return tx.Expire(ctx, t0.Add(time.Hour)) })
}

func testChangeRequests(t *testing.T, s *store.Store) {
	ctx := t.Context()
	admin1, admin2 := uid(t, "a1@state.example"), uid(t, "a2@state.example")
	var first, second int64
	update(t, s, func(tx *store.Tx) error {
		var err error
		first, err = tx.CreateChangeRequest(ctx, store.ChangeRequest{Kind: "clearance", Subject: "bob@state.example", Payload: `{"clearance":"secret"}`, RequestedBy: admin1, CreatedAt: t0})
		if err != nil {
			return err
		}
		second, err = tx.CreateChangeRequest(ctx, store.ChangeRequest{Kind: "clearance", Subject: "bob@state.example", Payload: `{"clearance":"top-secret"}`, RequestedBy: admin1, CreatedAt: t0.Add(time.Second)})
		return err
	})
	err := s.Update(ctx, func(tx *store.Tx) error {
		if err := tx.ApproveChangeRequest(ctx, second, admin1, t0); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("requester approving again: %v, want ErrConflict", err)
		}
		if err := tx.ApproveChangeRequest(ctx, second, admin2, t0.Add(2*time.Second)); err != nil {
			return err
		}
		return tx.ResolveChangeRequest(ctx, second, store.ChangeApplied, t0.Add(2*time.Second))
	})
	if err != nil {
		t.Fatal(err)
	}
	view(t, s, func(tx *store.Tx) error {
		all, err := tx.ListChangeRequests(ctx, "")
		if err != nil {
			return err
		}
		if len(all) != 2 || all[0].ID != second || all[1].ID != first {
			t.Fatalf("ListChangeRequests = %+v", all)
		}
		if all[1].Status != store.ChangeReplaced || all[0].Status != store.ChangeApplied {
			t.Errorf("statuses = %s, %s; want applied, replaced", all[0].Status, all[1].Status)
		}
		if diff := cmp.Diff([]identity.UserID{admin1, admin2}, all[0].Approvers); diff != "" {
			t.Errorf("approvers (-want +got):\n%s", diff)
		}
		if _, err := tx.PendingChangeRequest(ctx, "clearance", "bob@state.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PendingChangeRequest after apply: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.ResolveChangeRequest(ctx, second, store.ChangeApplied, t0)
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolving twice: %v, want ErrNotFound", err)
	}
	// The requester comes first even when a second approval lands in the
	// same second and sorts before it by name.
	zed, amy := uid(t, "zed@state.example"), uid(t, "amy@state.example")
	update(t, s, func(tx *store.Tx) error {
		id, err := tx.CreateChangeRequest(ctx, store.ChangeRequest{Kind: "clearance", Subject: "carl@state.example", Payload: "{}", RequestedBy: zed, CreatedAt: t0})
		if err != nil {
			return err
		}
		return tx.ApproveChangeRequest(ctx, id, amy, t0)
	})
	view(t, s, func(tx *store.Tx) error {
		r, err := tx.PendingChangeRequest(ctx, "clearance", "carl@state.example")
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]identity.UserID{zed, amy}, r.Approvers); diff != "" {
			t.Errorf("approvers, requester first (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testPolicy(t *testing.T, s *store.Store) {
	ctx := t.Context()
	var id1 int64
	err := s.Update(ctx, func(tx *store.Tx) error {
		var err error
		if id1, err = tx.AddPolicyRule(ctx, store.PolicyRule{Rule: "any -> any : allow", CreatedBy: "x", CreatedAt: t0}); err != nil {
			return err
		}
		if _, err := tx.AddPolicyRule(ctx, store.PolicyRule{Rule: "any -> any : allow", CreatedBy: "y", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("duplicate rule: %v, want ErrConflict", err)
		}
		_, err = tx.AddPolicyRule(ctx, store.PolicyRule{Rule: "role:counterpart -> any : deny", CreatedBy: "x", CreatedAt: t0})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *store.Tx) error {
		rule, err := tx.RemovePolicyRule(ctx, id1)
		if rule != "any -> any : allow" {
			t.Errorf("removed rule %q", rule)
		}
		return err
	})
	view(t, s, func(tx *store.Tx) error {
		rs, err := tx.ListPolicyRules(ctx)
		if err != nil {
			return err
		}
		if len(rs) != 1 || rs[0].Rule != "role:counterpart -> any : deny" {
			t.Errorf("ListPolicyRules = %+v", rs)
		}
		if _, err := tx.RemovePolicyRule(ctx, id1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("removing twice: %v, want ErrNotFound", err)
		}
		return nil
	})
}

func testLog(t *testing.T, s *store.Store) {
	ctx := t.Context()
	update(t, s, func(tx *store.Tx) error {
		for i := range 5 {
			if err := tx.AppendPending(ctx, []byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error {
		size, err := tx.LockLogHead(ctx)
		if err != nil || size != 0 {
			return fmt.Errorf("LockLogHead = %d, %v", size, err)
		}
		ps, err := tx.Pending(ctx, 3)
		if err != nil {
			return err
		}
		if len(ps) != 3 || ps[0].Data[0] != 0 || ps[2].Data[0] != 2 {
			t.Fatalf("Pending(3) = %+v", ps)
		}
		var ids []int64
		for i, p := range ps {
			ids = append(ids, p.ID)
			if err := tx.PutEntry(ctx, int64(i), p.Data); err != nil {
				return err
			}
		}
		if err := tx.DeletePending(ctx, ids); err != nil {
			return err
		}
		if err := tx.PutHashes(ctx, 0, [][32]byte{{1}, {2}, {3}}); err != nil {
			return err
		}
		if err := tx.SetLogSize(ctx, 3); err != nil {
			return err
		}
		return tx.PutCheckpoint(ctx, 3, []byte("cp3"), t0)
	})
	view(t, s, func(tx *store.Tx) error {
		if n, err := tx.LogSize(ctx); err != nil || n != 3 {
			t.Errorf("LogSize = %d, %v; want 3", n, err)
		}
		es, err := tx.Entries(ctx, 1, 3)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([][]byte{{1}, {2}}, es); diff != "" {
			t.Errorf("Entries(1,3) (-want +got):\n%s", diff)
		}
		if _, err := tx.Entries(ctx, 0, 4); err == nil {
			t.Errorf("Entries past the end: no error")
		}
		hs, err := tx.Hashes(ctx, []int64{2, 0})
		if err != nil {
			return err
		}
		if hs[0] != [32]byte{3} || hs[1] != [32]byte{1} {
			t.Errorf("Hashes = %v", hs)
		}
		if _, err := tx.Hashes(ctx, []int64{9}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing hash: %v, want ErrNotFound", err)
		}
		size, note, err := tx.LatestCheckpoint(ctx)
		if err != nil || size != 3 || string(note) != "cp3" {
			t.Errorf("LatestCheckpoint = %d %q %v", size, note, err)
		}
		ps, err := tx.Pending(ctx, 10)
		if err != nil {
			return err
		}
		if len(ps) != 2 || ps[0].Data[0] != 3 {
			t.Errorf("Pending after integration = %+v", ps)
		}
		return nil
	})
	err := s.Update(ctx, func(tx *store.Tx) error { return tx.PutEntry(ctx, 0, []byte("again")) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("overwriting entry 0: %v, want ErrConflict", err)
	}
}

func testEvents(t *testing.T, s *store.Store) {
	ctx := t.Context()
	update(t, s, func(tx *store.Tx) error {
		for i := range 3 {
			seq, err := tx.PushEvent(ctx, store.Event{DeviceID: "d1", Type: "t", Payload: []byte{byte(i)}, CreatedAt: t0})
			if err != nil {
				return err
			}
			if seq != int64(i+1) {
				t.Errorf("seq %d, want %d", seq, i+1)
			}
		}
		_, err := tx.PushEvent(ctx, store.Event{DeviceID: "d2", Type: "t", Payload: []byte{9}, CreatedAt: t0})
		return err
	})
	update(t, s, func(tx *store.Tx) error { return tx.AckEvents(ctx, "d1", 1) })
	view(t, s, func(tx *store.Tx) error {
		es, err := tx.EventsAfter(ctx, "d1", 0, 10)
		if err != nil {
			return err
		}
		want := []store.Event{
			{DeviceID: "d1", Seq: 2, Type: "t", Payload: []byte{1}, CreatedAt: t0},
			{DeviceID: "d1", Seq: 3, Type: "t", Payload: []byte{2}, CreatedAt: t0},
		}
		if diff := cmp.Diff(want, es); diff != "" {
			t.Errorf("EventsAfter (-want +got):\n%s", diff)
		}
		if last, err := tx.LastEventSeq(ctx, "d1"); err != nil || last != 3 {
			t.Errorf("LastEventSeq(d1) = %d, %v", last, err)
		}
		if last, err := tx.LastEventSeq(ctx, "nobody"); err != nil || last != 0 {
			t.Errorf("LastEventSeq(nobody) = %d, %v", last, err)
		}
		return nil
	})
	// Acknowledged events stay gone and seqs never repeat.
	update(t, s, func(tx *store.Tx) error {
		if err := tx.AckEvents(ctx, "d1", 3); err != nil {
			return err
		}
		seq, err := tx.PushEvent(ctx, store.Event{DeviceID: "d1", Type: "t", Payload: []byte{}, CreatedAt: t0})
		if seq != 4 {
			t.Errorf("seq after ack = %d, want 4", seq)
		}
		return err
	})
}

// testEventRace: concurrent pushes to one device get distinct, contiguous
// sequence numbers.
func testEventRace(t *testing.T, s *store.Store) {
	ctx := t.Context()
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.PushEvent(ctx, store.Event{DeviceID: "d", Type: "t", Payload: []byte{byte(i)}, CreatedAt: t0})
				return err
			})
			if err != nil {
				t.Errorf("push %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	view(t, s, func(tx *store.Tx) error {
		es, err := tx.EventsAfter(ctx, "d", 0, 100)
		if err != nil {
			return err
		}
		if len(es) != n {
			t.Fatalf("%d events, want %d", len(es), n)
		}
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Errorf("event %d has seq %d", i, e.Seq)
			}
		}
		return nil
	})
}

func testRollback(t *testing.T, s *store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: uid(t, "temp@state.example"), Roles: identity.Roles{}, Compartments: identity.Compartments{}, CreatedAt: t0}); err != nil {
			return err
		}
		if err := tx.AppendPending(ctx, []byte("entry")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	view(t, s, func(tx *store.Tx) error {
		if _, err := tx.GetUser(ctx, uid(t, "temp@state.example")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user survived rollback: %v", err)
		}
		if ps, err := tx.Pending(ctx, 10); err != nil || len(ps) != 0 {
			t.Errorf("pending entry survived rollback: %v %v", ps, err)
		}
		return nil
	})
}

func testMeta(t *testing.T, s *store.Store) {
	ctx := t.Context()
	update(t, s, func(tx *store.Tx) error {
		if _, err := tx.GetMeta(ctx, "org"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMeta(missing) = %v", err)
		}
		if err := tx.SetMeta(ctx, "org", "a.example"); err != nil {
			return err
		}
		if err := tx.SetMeta(ctx, "org", "state.example"); err != nil {
			return err
		}
		if err := tx.PutKeySet(ctx, 1, []byte("ks1"), t0); err != nil {
			return err
		}
		return tx.PutKeySet(ctx, 2, []byte("ks2"), t0)
	})
	view(t, s, func(tx *store.Tx) error {
		v, err := tx.GetMeta(ctx, "org")
		if err != nil || v != "state.example" {
			t.Errorf("GetMeta = %q, %v", v, err)
		}
		serial, note, err := tx.LatestKeySet(ctx)
		if err != nil || serial != 2 || string(note) != "ks2" {
			t.Errorf("LatestKeySet = %d %q %v", serial, note, err)
		}
		return nil
	})
}

func putKeyPackages(t *testing.T, s *store.Store, dev string, n int, lastResort bool) {
	t.Helper()
	update(t, s, func(tx *store.Tx) error {
		for i := range n {
			kp := store.KeyPackage{Ref: []byte(fmt.Sprintf("%s-%v-%d", dev, lastResort, i)), DeviceID: dev, CipherSuite: 1,
				Data: []byte{byte(i)}, LastResort: lastResort, NotAfter: t0.Add(time.Hour), CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if err := tx.PutKeyPackage(t.Context(), kp); err != nil {
				return err
			}
		}
		return nil
	})
}

func testKeyPackages(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	d := mkDevice(t, s, alice, 1, store.DeviceActive)
	putKeyPackages(t, s, d.ID, 2, false)
	putKeyPackages(t, s, d.ID, 1, true)
	// A second last-resort package replaces the first.
	update(t, s, func(tx *store.Tx) error {
		return tx.PutKeyPackage(ctx, store.KeyPackage{Ref: []byte("lr2"), DeviceID: d.ID, CipherSuite: 1, Data: []byte("lr2"),
			LastResort: true, NotAfter: t0.Add(time.Hour), CreatedAt: t0})
	})
	err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.PutKeyPackage(ctx, store.KeyPackage{Ref: []byte("lr2"), DeviceID: d.ID, CipherSuite: 1, Data: []byte("x"), NotAfter: t0, CreatedAt: t0})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate ref: %v, want ErrConflict", err)
	}
	stock := func() (int, bool) {
		var n int
		var lr bool
		view(t, s, func(tx *store.Tx) (err error) { n, lr, err = tx.KeyPackageStock(ctx, d.ID, 1, t0); return })
		return n, lr
	}
	if n, lr := stock(); n != 2 || !lr {
		t.Fatalf("stock = %d, %v; want 2, true", n, lr)
	}
	claim := func(now time.Time) (store.KeyPackage, error) {
		var kp store.KeyPackage
		err := s.Update(ctx, func(tx *store.Tx) (err error) { kp, err = tx.ClaimKeyPackage(ctx, d.ID, 1, now); return })
		return kp, err
	}
	for i, want := range []string{"0", "1", "lr2", "lr2"} {
		kp, err := claim(t0)
		if err != nil {
			t.Fatal(err)
		}
		if string(kp.Data) != want && !(want != "lr2" && kp.Data[0] == want[0]-'0') {
			t.Errorf("claim %d got %q, want %q", i, kp.Data, want)
		}
		if kp.LastResort != (want == "lr2") {
			t.Errorf("claim %d: last resort %v", i, kp.LastResort)
		}
	}
	if n, lr := stock(); n != 0 || !lr {
		t.Errorf("stock after claims = %d, %v; want 0, true", n, lr)
	}
	if _, err := claim(t0.Add(2 * time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim after expiry: %v, want ErrNotFound", err)
	}
	if _, err := claim(t0); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *store.Tx) error { return tx.DeleteKeyPackages(ctx, d.ID) })
	if _, err := claim(t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim after DeleteKeyPackages: %v, want ErrNotFound", err)
	}
	putKeyPackages(t, s, d.ID, 1, false)
	update(t, s, func(tx *store.Tx) error { return tx.ExpireKeyPackages(ctx, t0.Add(2*time.Hour)) })
	if n, _ := stock(); n != 0 {
		t.Errorf("stock after expiry = %d", n)
	}
}

// testKeyPackageRace: concurrent claims get distinct ordinary packages, and
// fall back to the last-resort one only when no ordinary one is left.
func testKeyPackageRace(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	d := mkDevice(t, s, alice, 1, store.DeviceActive)
	putKeyPackages(t, s, d.ID, 5, false)
	putKeyPackages(t, s, d.ID, 1, true)
	const n = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ordinary = map[string]int{}
		lastRes  int
	)
	for range n {
		wg.Go(func() {
			var kp store.KeyPackage
			err := s.Update(ctx, func(tx *store.Tx) (err error) { kp, err = tx.ClaimKeyPackage(ctx, d.ID, 1, t0); return })
			if err != nil {
				t.Errorf("claim: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if kp.LastResort {
				lastRes++
			} else {
				ordinary[string(kp.Ref)]++
			}
		})
	}
	wg.Wait()
	if len(ordinary) != 5 || lastRes != 3 {
		t.Errorf("%d distinct ordinary packages and %d last-resort claims; want 5 and 3 (%v)", len(ordinary), lastRes, ordinary)
	}
	for ref, c := range ordinary {
		if c != 1 {
			t.Errorf("package %s claimed %d times", ref, c)
		}
	}
}

func testBlobs(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	d := mkDevice(t, s, alice, 1, store.DeviceActive)
	b := store.Blob{ID: []byte("blob-1"), OwnerDevice: d.ID, Size: 25, ChunkSize: 10, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if b.Chunks() != 3 || b.ChunkLen(0) != 10 || b.ChunkLen(2) != 5 {
		t.Fatalf("chunk math: %d chunks, last %d", b.Chunks(), b.ChunkLen(2))
	}
	if (store.Blob{Size: 0, ChunkSize: 10}).Chunks() != 1 {
		t.Fatal("an empty blob has one (empty) chunk")
	}
	update(t, s, func(tx *store.Tx) error { return tx.CreateBlob(ctx, b) })
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateBlob(ctx, b) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate blob: %v", err)
	}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.PutChunk(ctx, b.ID, 2, []byte("tail!")); err != nil {
			return err
		}
		if err := tx.PutChunk(ctx, b.ID, 0, []byte("0123456789")); err != nil {
			return err
		}
		return tx.PutChunk(ctx, b.ID, 0, []byte("0123456789")) // a resumed upload repeats itself
	})
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.PutChunk(ctx, b.ID, 0, []byte("xxxxxxxxxx")) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same chunk, other bytes: %v, want ErrConflict", err)
	}
	view(t, s, func(tx *store.Tx) error {
		have, err := tx.ChunksPresent(ctx, b.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]int{0, 2}, have); diff != "" {
			t.Errorf("chunks present (-want +got):\n%s", diff)
		}
		got, err := tx.Chunk(ctx, b.ID, 2)
		if err != nil || string(got) != "tail!" {
			t.Errorf("chunk 2 = %q, %v", got, err)
		}
		if _, err := tx.Chunk(ctx, b.ID, 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing chunk: %v", err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error { return tx.CompleteBlob(ctx, b.ID, []byte("hash")) })
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CompleteBlob(ctx, b.ID, []byte("hash")) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("completing twice: %v, want ErrNotFound", err)
	}
	incomplete := store.Blob{ID: []byte("blob-2"), OwnerDevice: d.ID, Size: 5, ChunkSize: 10, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateBlob(ctx, incomplete); err != nil {
			return err
		}
		if err := tx.PutChunk(ctx, incomplete.ID, 0, []byte("abcde")); err != nil {
			return err
		}
		return tx.ExpireBlobs(ctx, t0.Add(2*time.Minute))
	})
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetBlob(ctx, b.ID)
		if err != nil || !got.Complete || string(got.SHA256) != "hash" {
			t.Errorf("complete blob after expiry: %+v %v", got, err)
		}
		if _, err := tx.GetBlob(ctx, incomplete.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("incomplete blob survived its deadline: %v", err)
		}
		return nil
	})
}

func testConversations(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example")
	bob := mkUser(t, s, "bob@state.example")
	da := mkDevice(t, s, alice.ID, 1, store.DeviceActive)
	db := mkDevice(t, s, bob.ID, 2, store.DeviceActive)
	db2 := mkDevice(t, s, bob.ID, 3, store.DeviceActive)
	c := store.Conversation{GroupID: []byte{1, 2, 3}, CipherSuite: 0xF0A1, Epoch: 0, State: []byte("s0"), Level: identity.Secret,
		Compartments: identity.Compartments{"ALPHA"}, CreatedBy: da.ID, CreatedAt: t0, UpdatedAt: t0}
	msg := func(epoch uint64, kind int, data string) store.ConversationMessage {
		return store.ConversationMessage{GroupID: c.GroupID, Epoch: epoch, Kind: kind, Sender: da.ID, Data: []byte(data), CreatedAt: t0}
	}
	appendMsg := func(m store.ConversationMessage, next uint64, state []byte) int64 {
		t.Helper()
		var seq int64
		update(t, s, func(tx *store.Tx) (err error) {
			if _, err = tx.GetConversation(ctx, c.GroupID); err != nil {
				return err
			}
			seq, _, err = tx.AppendConversationMessage(ctx, m, next, state)
			return err
		})
		return seq
	}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateConversation(ctx, c); err != nil {
			return err
		}
		return tx.PutConversationMember(ctx, store.ConversationMember{GroupID: c.GroupID, Leaf: 0, Device: da.ID, User: alice.ID})
	})
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateConversation(ctx, c) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate group ID: %v", err)
	}
	// Epoch 0: an application message, then a commit adding bob's device.
	if seq := appendMsg(msg(0, 1, "m1"), 0, nil); seq != 1 {
		t.Errorf("first message seq %d", seq)
	}
	var addSeq int64
	update(t, s, func(tx *store.Tx) (err error) {
		if _, err = tx.GetConversation(ctx, c.GroupID); err != nil {
			return err
		}
		if addSeq, _, err = tx.AppendConversationMessage(ctx, msg(0, 3, "commit-add"), 1, []byte("s1")); err != nil {
			return err
		}
		return tx.PutConversationMember(ctx, store.ConversationMember{GroupID: c.GroupID, Leaf: 1, Device: db.ID, User: bob.ID, JoinedSeq: addSeq})
	})
	// A message for an epoch the conversation has left is refused.
	if err := s.Update(ctx, func(tx *store.Tx) error {
		_, _, err := tx.AppendConversationMessage(ctx, msg(0, 3, "late commit"), 1, []byte("late"))
		return err
	}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second commit for epoch 0: %v, want ErrConflict", err)
	}
	appendMsg(msg(1, 1, "m3"), 1, nil)
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetConversation(ctx, c.GroupID)
		if err != nil {
			return err
		}
		if head, err := tx.LockConversation(ctx, c.GroupID); err != nil || head.State != nil || head.HeadSeq != 3 || head.Epoch != 1 {
			t.Errorf("conversation without its state: %+v %v", head, err)
		}
		if got.Epoch != 1 || got.HeadSeq != 3 || got.Pending != 0 || string(got.State) != "s1" || got.Level != identity.Secret || got.Compartments.String() != "ALPHA" || got.CipherSuite != 0xF0A1 {
			t.Errorf("conversation %+v", got)
		}
		ms, err := tx.ConversationMembers(ctx, c.GroupID)
		if err != nil {
			return err
		}
		if len(ms) != 2 || ms[0].Device != da.ID || ms[1].Device != db.ID || ms[1].Acked != 2 || ms[1].JoinedSeq != 2 || ms[1].HeadSeq != 3 {
			t.Errorf("members %+v", ms)
		}
		// bob's device receives what follows its Welcome's commit.
		all, err := tx.ConversationMessages(ctx, c.GroupID, ms[1].Acked, 0, 100)
		if err != nil || len(all) != 1 || string(all[0].Data) != "m3" || all[0].Seq != 3 || all[0].Epoch != 1 || all[0].Kind != 1 || all[0].Sender != da.ID {
			t.Errorf("bob's messages %+v %v", all, err)
		}
		if page, err := tx.ConversationMessages(ctx, c.GroupID, 0, 2, 1); err != nil || len(page) != 1 || page[0].Seq != 1 {
			t.Errorf("a page of one up to seq 2: %+v %v", page, err)
		}
		mine, err := tx.DeviceConversations(ctx, da.ID)
		if err != nil || len(mine) != 1 || mine[0].Leaf != 0 || mine[0].HeadSeq != 3 || mine[0].Epoch != 1 {
			t.Errorf("alice's conversations %+v %v", mine, err)
		}
		if _, err := tx.GetConversation(ctx, []byte{9}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown conversation: %v", err)
		}
		return nil
	})
	// Acknowledgements never move back, nor past the head.
	update(t, s, func(tx *store.Tx) error {
		for _, seq := range []int64{3, 1, 99} {
			if err := tx.AckConversation(ctx, c.GroupID, da.ID, seq); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx *store.Tx) error {
		m, err := tx.ConversationMember(ctx, c.GroupID, da.ID)
		if err != nil || m.Acked != 3 {
			t.Errorf("alice after acks 3, 1, 99: %+v %v", m, err)
		}
		return nil
	})
	// Pruning keeps what bob has not acknowledged.
	var pruned int64
	update(t, s, func(tx *store.Tx) (err error) { pruned, err = tx.PruneConversations(ctx); return })
	if pruned != 2 {
		t.Errorf("pruned %d messages, want 2 (seq 3 is bob's still)", pruned)
	}
	// A commit removes bob's device: it still receives that commit, and is
	// forgotten once it acknowledges it; its leaf goes to his new device.
	rm := appendMsg(msg(1, 3, "commit-remove"), 2, []byte("s2"))
	update(t, s, func(tx *store.Tx) error {
		if err := tx.LeaveConversation(ctx, c.GroupID, db.ID, rm); err != nil {
			return err
		}
		if err := tx.LeaveConversation(ctx, c.GroupID, db.ID, rm); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("leaving twice: %v", err)
		}
		return tx.PutConversationMember(ctx, store.ConversationMember{GroupID: c.GroupID, Leaf: 1, Device: db2.ID, User: bob.ID, JoinedSeq: rm})
	})
	appendMsg(msg(2, 1, "m5"), 2, nil)
	view(t, s, func(tx *store.Tx) error {
		ms, err := tx.ConversationMembers(ctx, c.GroupID)
		if err != nil || len(ms) != 2 || ms[1].Device != db2.ID {
			t.Errorf("members after the removal: %+v %v", ms, err)
		}
		old, err := tx.ConversationMember(ctx, c.GroupID, db.ID)
		if err != nil || old.LeftSeq != rm {
			t.Errorf("the removed device: %+v %v", old, err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error { return tx.AckConversation(ctx, c.GroupID, db.ID, 5) }) // past its removal: only up to it
	view(t, s, func(tx *store.Tx) error {
		if m, err := tx.ConversationMember(ctx, c.GroupID, db.ID); err != nil || m.Acked != 2 {
			t.Errorf("an ack past the removal moved the removed device to %+v %v", m, err)
		}
		return nil
	})
	// Proposals are pending until a commit.
	appendMsg(msg(2, 2, "proposal"), 2, []byte("s2+p"))
	appendMsg(msg(2, 2, "proposal"), 2, []byte("s2+p+p"))
	pending := func() int {
		var got store.Conversation
		view(t, s, func(tx *store.Tx) (err error) { got, err = tx.LockConversation(ctx, c.GroupID); return })
		return got.Pending
	}
	if n := pending(); n != 2 {
		t.Errorf("%d proposals pending, want 2", n)
	}
	// An application message needs its epoch, and nothing pending.
	appOnly := func(epoch uint64) error {
		_, _, err := s.AppendApplicationMessage(ctx, msg(epoch, 1, "app"))
		return err
	}
	if err := appOnly(2); !errors.Is(err, store.ErrConflict) {
		t.Errorf("application message with proposals pending: %v, want ErrConflict", err)
	}
	appendMsg(msg(2, 3, "commit"), 3, []byte("s3"))
	if n := pending(); n != 0 {
		t.Errorf("%d proposals pending after a commit", n)
	}
	if err := appOnly(2); !errors.Is(err, store.ErrConflict) {
		t.Errorf("application message of an old epoch: %v, want ErrConflict", err)
	}
	if err := appOnly(3); err != nil {
		t.Errorf("application message: %v", err)
	}
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.LockConversation(ctx, c.GroupID)
		if err != nil || got.Epoch != 3 || got.State != nil {
			t.Errorf("after an application message: %+v %v", got, err)
		}
		ms, err := tx.ConversationMessages(ctx, c.GroupID, got.HeadSeq-1, 0, 10)
		if err != nil || len(ms) != 1 || string(ms[0].Data) != "app" || ms[0].Epoch != 3 || ms[0].Kind != 1 {
			t.Errorf("the application message: %+v %v", ms, err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error { return tx.AckConversation(ctx, c.GroupID, db.ID, rm) })
	view(t, s, func(tx *store.Tx) error {
		if _, err := tx.ConversationMember(ctx, c.GroupID, db.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the removed device after acknowledging its removal: %v", err)
		}
		return nil
	})
}

// testConversationCommitRace: concurrent commits to one conversation are
// applied one at a time, each on the epoch the previous one wrote: none is
// lost or applied twice (a commit that read a stale epoch gets ErrConflict),
// and message numbers have no gap.
func testConversationCommitRace(t *testing.T, s *store.Store) {
	ctx := t.Context()
	c := store.Conversation{GroupID: []byte("race"), CipherSuite: 1, State: []byte("s0"), Compartments: identity.Compartments{}, CreatedBy: "d", CreatedAt: t0, UpdatedAt: t0}
	update(t, s, func(tx *store.Tx) error { return tx.CreateConversation(ctx, c) })
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
		seqs []int64
	)
	for i := range n {
		wg.Go(func() {
			var seq int64
			err := s.Update(ctx, func(tx *store.Tx) error {
				cur, err := tx.GetConversation(ctx, c.GroupID)
				if err != nil {
					return err
				}
				seq, _, err = tx.AppendConversationMessage(ctx, store.ConversationMessage{GroupID: c.GroupID, Epoch: cur.Epoch, Kind: 3, Data: []byte{byte(i)}, CreatedAt: t0}, cur.Epoch+1, []byte{byte(i)})
				return err
			})
			if err == nil {
				mu.Lock()
				wins++
				seqs = append(seqs, seq)
				mu.Unlock()
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("committer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetConversation(ctx, c.GroupID)
		if err != nil {
			return err
		}
		// Each winner read the epoch the previous one wrote: the epochs form
		// a chain with no commit lost or applied twice.
		if got.Epoch != uint64(wins) || got.HeadSeq != int64(wins) {
			t.Errorf("epoch %d, head %d after %d successful commits", got.Epoch, got.HeadSeq, wins)
		}
		ms, err := tx.ConversationMessages(ctx, c.GroupID, 0, 0, 100)
		if err != nil {
			return err
		}
		for i, m := range ms {
			if m.Seq != int64(i+1) || m.Epoch != uint64(i) {
				t.Errorf("message %d: seq %d epoch %d", i, m.Seq, m.Epoch)
			}
		}
		if len(ms) != wins {
			t.Errorf("%d messages for %d commits", len(ms), wins)
		}
		return nil
	})
	slices.Sort(seqs)
	for i, q := range seqs {
		if q != int64(i+1) {
			t.Errorf("winners' seqs %v: not 1..%d", seqs, wins)
			break
		}
	}
}

// testConversationChain: each message's row holds the conversation's
// message chain after it (conversation.ChainNext from ChainStart), whether
// it was appended in a transaction (handshakes, and application messages
// on the full path) or by AppendApplicationMessage; the conversation's row
// holds the chain after its head, and UnloggedChains lists the heads past
// the one last logged.
func testConversationChain(t *testing.T, s *store.Store) {
	ctx := t.Context()
	c := store.Conversation{GroupID: []byte("chain"), CipherSuite: 1, State: []byte("s0"), Compartments: identity.Compartments{}, CreatedBy: "d", CreatedAt: t0, UpdatedAt: t0}
	quiet := c
	quiet.GroupID = []byte("quiet")
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateConversation(ctx, c); err != nil {
			return err
		}
		return tx.CreateConversation(ctx, quiet)
	})
	// want[seq] is the chain after message seq.
	want := [][]byte{conversation.ChainStart(c.GroupID)}
	head := func() store.Conversation {
		t.Helper()
		var got store.Conversation
		view(t, s, func(tx *store.Tx) (err error) { got, err = tx.LockConversation(ctx, c.GroupID); return })
		return got
	}
	if got := head(); !bytes.Equal(got.Chain, want[0]) {
		t.Errorf("a new conversation's chain %x, want ChainStart %x", got.Chain, want[0])
	}
	next := func(seq int64, chain []byte, data string) {
		t.Helper()
		want = append(want, conversation.ChainNext(want[len(want)-1], []byte(data)))
		if seq != int64(len(want)-1) || !bytes.Equal(chain, want[seq]) {
			t.Errorf("message %q: seq %d chain %x, want seq %d chain %x", data, seq, chain, len(want)-1, want[len(want)-1])
		}
	}
	inTx := func(kind int, epoch, to uint64, data string) {
		t.Helper()
		var (
			seq   int64
			chain []byte
		)
		update(t, s, func(tx *store.Tx) (err error) {
			if _, err = tx.GetConversation(ctx, c.GroupID); err != nil {
				return err
			}
			m := store.ConversationMessage{GroupID: c.GroupID, Epoch: epoch, Kind: kind, Sender: "d", Data: []byte(data), CreatedAt: t0}
			seq, chain, err = tx.AppendConversationMessage(ctx, m, to, []byte("state"))
			return err
		})
		next(seq, chain, data)
	}
	app := func(epoch uint64, data string) {
		t.Helper()
		seq, chain, err := s.AppendApplicationMessage(ctx, store.ConversationMessage{GroupID: c.GroupID, Epoch: epoch, Kind: 1, Sender: "d", Data: []byte(data), CreatedAt: t0})
		if err != nil {
			t.Fatalf("application message %q: %v", data, err)
		}
		next(seq, chain, data)
	}
	app(0, "application 1")
	inTx(2, 0, 0, "proposal")
	inTx(3, 0, 1, "commit")
	inTx(1, 1, 1, "application 4, the full path")
	app(1, "\x00\xff not UTF-8")
	app(1, "application 6")
	view(t, s, func(tx *store.Tx) error {
		ms, err := tx.ConversationMessages(ctx, c.GroupID, 0, 0, 100)
		if err != nil || len(ms) != len(want)-1 {
			t.Fatalf("messages %+v %v", ms, err)
		}
		for _, m := range ms {
			if !bytes.Equal(m.Chain, want[m.Seq]) {
				t.Errorf("message %d's chain %x, want %x", m.Seq, m.Chain, want[m.Seq])
			}
		}
		return nil
	})
	if got := head(); got.HeadSeq != 6 || !bytes.Equal(got.Chain, want[6]) {
		t.Errorf("the head: seq %d chain %x, want 6 %x", got.HeadSeq, got.Chain, want[6])
	}
	unlogged := func() []store.ChainHead {
		t.Helper()
		var hs []store.ChainHead
		view(t, s, func(tx *store.Tx) (err error) { hs, err = tx.UnloggedChains(ctx, nil, 10); return })
		return hs
	}
	// The quiet conversation has no message: nothing to commit.
	if diff := cmp.Diff([]store.ChainHead{{GroupID: c.GroupID, Seq: 6, Chain: want[6]}}, unlogged()); diff != "" {
		t.Errorf("unlogged chains (-want +got):\n%s", diff)
	}
	for _, step := range []struct {
		seq   int64
		moved bool
	}{{6, true}, {6, false}, {3, false}, {99, false}} {
		var moved bool
		update(t, s, func(tx *store.Tx) (err error) { moved, err = tx.SetChainLogged(ctx, c.GroupID, step.seq); return })
		if moved != step.moved {
			t.Errorf("SetChainLogged(%d) moved %v, want %v", step.seq, moved, step.moved)
		}
	}
	if hs := unlogged(); len(hs) != 0 {
		t.Errorf("unlogged chains after logging the head: %+v", hs)
	}
	app(1, "application 7")
	if diff := cmp.Diff([]store.ChainHead{{GroupID: c.GroupID, Seq: 7, Chain: want[7]}}, unlogged()); diff != "" {
		t.Errorf("unlogged chains after another message (-want +got):\n%s", diff)
	}
	// Pages, in the order of group IDs.
	quietSeq, quietChain, err := s.AppendApplicationMessage(ctx, store.ConversationMessage{GroupID: quiet.GroupID, Kind: 1, Data: []byte("q"), CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []struct {
		after []byte
		want  []store.ChainHead
	}{
		{nil, []store.ChainHead{{GroupID: c.GroupID, Seq: 7, Chain: want[7]}}},
		{c.GroupID, []store.ChainHead{{GroupID: quiet.GroupID, Seq: quietSeq, Chain: quietChain}}},
		{quiet.GroupID, nil},
	} {
		var hs []store.ChainHead
		view(t, s, func(tx *store.Tx) (err error) { hs, err = tx.UnloggedChains(ctx, page.after, 1); return })
		if diff := cmp.Diff(page.want, hs); diff != "" {
			t.Errorf("a page of one after %q (-want +got):\n%s", page.after, diff)
		}
	}
	// Pruned messages take their chains with them; the head keeps its.
	update(t, s, func(tx *store.Tx) (err error) { _, err = tx.PruneConversations(ctx); return })
	if got := head(); !bytes.Equal(got.Chain, want[7]) {
		t.Errorf("the head's chain after pruning %x, want %x", got.Chain, want[7])
	}
}

// testConversationChainRace: application messages sent at once are
// chained in the order they are numbered, each exactly once.
func testConversationChainRace(t *testing.T, s *store.Store) {
	ctx := t.Context()
	c := store.Conversation{GroupID: []byte("chain race"), CipherSuite: 1, State: []byte("s0"), Compartments: identity.Compartments{}, CreatedBy: "d", CreatedAt: t0, UpdatedAt: t0}
	update(t, s, func(tx *store.Tx) error { return tx.CreateConversation(ctx, c) })
	const senders, each = 6, 5
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[int64][]byte{} // the chain AppendApplicationMessage returned, by seq
	)
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				m := store.ConversationMessage{GroupID: c.GroupID, Kind: 1, Sender: "d", Data: fmt.Appendf(nil, "%d.%d", i, j), CreatedAt: t0}
				seq, chain, err := s.AppendApplicationMessage(ctx, m)
				if err != nil {
					t.Errorf("sender %d: %v", i, err)
					return
				}
				mu.Lock()
				got[seq] = chain
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	view(t, s, func(tx *store.Tx) error {
		ms, err := tx.ConversationMessages(ctx, c.GroupID, 0, 0, 100)
		if err != nil || len(ms) != senders*each {
			t.Fatalf("%d messages, %v; want %d", len(ms), err, senders*each)
		}
		chain := conversation.ChainStart(c.GroupID)
		for _, m := range ms {
			chain = conversation.ChainNext(chain, m.Data)
			if !bytes.Equal(m.Chain, chain) || !bytes.Equal(got[m.Seq], chain) {
				t.Errorf("message %d: stored chain %x, returned %x, want %x", m.Seq, m.Chain, got[m.Seq], chain)
			}
		}
		h, err := tx.LockConversation(ctx, c.GroupID)
		if err != nil || !bytes.Equal(h.Chain, chain) {
			t.Errorf("the head's chain %x %v, want %x", h.Chain, err, chain)
		}
		return nil
	})
}

// testLapsedConversationMembers: a member lapses when its device is
// revoked or unknown, or its user is disabled; active members never do.
func testLapsedConversationMembers(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example")
	bob := mkUser(t, s, "bob@state.example")
	carol := mkUser(t, s, "carol@state.example")
	da := mkDevice(t, s, alice.ID, 1, store.DeviceActive)
	db := mkDevice(t, s, bob.ID, 2, store.DeviceActive)
	dc := mkDevice(t, s, carol.ID, 3, store.DeviceActive)
	db2 := mkDevice(t, s, bob.ID, 4, store.DeviceActive)
	c := store.Conversation{GroupID: []byte("lapse"), CipherSuite: 1, State: []byte("s0"), Compartments: identity.Compartments{}, CreatedBy: da.ID, CreatedAt: t0, UpdatedAt: t0}
	other := store.Conversation{GroupID: []byte("other"), CipherSuite: 1, State: []byte("s0"), Compartments: identity.Compartments{}, CreatedBy: da.ID, CreatedAt: t0, UpdatedAt: t0}
	update(t, s, func(tx *store.Tx) error {
		for _, cv := range []store.Conversation{c, other} {
			if err := tx.CreateConversation(ctx, cv); err != nil {
				return err
			}
		}
		for i, m := range []struct {
			d store.Device
			u identity.UserID
		}{{da, alice.ID}, {db, bob.ID}, {dc, carol.ID}, {db2, bob.ID}} {
			if err := tx.PutConversationMember(ctx, store.ConversationMember{GroupID: c.GroupID, Leaf: uint32(i), Device: m.d.ID, User: m.u}); err != nil {
				return err
			}
		}
		// A ghost: a leaf whose device the directory does not know.
		if err := tx.PutConversationMember(ctx, store.ConversationMember{GroupID: c.GroupID, Leaf: 7, Device: "ghost", User: alice.ID}); err != nil {
			return err
		}
		// The same revoked device in another conversation is not this one's.
		return tx.PutConversationMember(ctx, store.ConversationMember{GroupID: other.GroupID, Leaf: 0, Device: db.ID, User: bob.ID})
	})
	lapsed := func() []string {
		var out []string
		view(t, s, func(tx *store.Tx) error {
			ms, err := tx.ConversationMembers(ctx, c.GroupID)
			for _, m := range ms {
				if m.Lapsed {
					out = append(out, fmt.Sprintf("%d:%s", m.Leaf, m.Device))
				}
			}
			return err
		})
		return out
	}
	if got := lapsed(); !slices.Equal(got, []string{"7:ghost"}) {
		t.Errorf("before any change: %q, want only the ghost", got)
	}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.SetDeviceStatus(ctx, db.ID, store.DeviceRevoked, t0, store.DeviceActive); err != nil {
			return err
		}
		carol.Disabled = true
		return tx.UpdateUser(ctx, carol)
	})
	want := []string{"1:" + db.ID, "2:" + dc.ID, "7:ghost"}
	if got := lapsed(); !slices.Equal(got, want) {
		t.Errorf("after revoking bob's first device and disabling carol: %q, want %q", got, want)
	}
	view(t, s, func(tx *store.Tx) error {
		gs, err := tx.ConversationsWithLapsedMembers(ctx, 10)
		if err != nil || len(gs) != 2 {
			t.Errorf("conversations with lapsed members: %q %v, want both", gs, err)
		}
		return nil
	})
}

func testCalls(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example")
	bob := mkUser(t, s, "bob@state.example")
	da := mkDevice(t, s, alice.ID, 1, store.DeviceActive)
	db := mkDevice(t, s, bob.ID, 2, store.DeviceActive)
	g := []byte{9, 9}
	update(t, s, func(tx *store.Tx) error {
		return tx.CreateConversation(ctx, store.Conversation{GroupID: g, CipherSuite: 1, State: []byte("s"), CreatedBy: da.ID, CreatedAt: t0, UpdatedAt: t0})
	})
	c := store.Call{ID: "c1", GroupID: g, Caller: alice.ID, CallerDevice: da.ID, State: store.CallRinging, CreatedAt: t0}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateCall(ctx, c); err != nil {
			return err
		}
		if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: "c1", Device: da.ID, User: alice.ID, Role: "principal", State: store.PartJoined, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.PutCallParticipant(ctx, store.CallParticipant{CallID: "c1", Device: db.ID, User: bob.ID, Role: "member", State: store.PartRinging, UpdatedAt: t0.Add(time.Second)})
	})
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateCall(ctx, c) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate call ID: %v", err)
	}
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.OpenCall(ctx, g)
		if err != nil || got.ID != "c1" || got.Caller != alice.ID || got.State != store.CallRinging || !got.CreatedAt.Equal(t0) || !got.AnsweredAt.IsZero() {
			t.Errorf("open call: %+v %v", got, err)
		}
		if rs, err := tx.RingingCalls(ctx, t0, 10); err != nil || len(rs) != 0 {
			t.Errorf("ringing before it was placed: %+v %v", rs, err)
		}
		if rs, err := tx.RingingCalls(ctx, t0.Add(time.Second), 10); err != nil || len(rs) != 1 {
			t.Errorf("ringing since: %+v %v", rs, err)
		}
		if in, err := tx.UserInCall(ctx, bob.ID); err != nil || in {
			t.Errorf("bob, rung, in a call: %v %v", in, err)
		}
		ps, err := tx.DeviceCalls(ctx, db.ID)
		if err != nil || len(ps) != 1 || ps[0].State != store.PartRinging || ps[0].User != bob.ID {
			t.Errorf("bob's calls: %+v %v", ps, err)
		}
		return nil
	})
	t1 := t0.Add(5 * time.Second)
	update(t, s, func(tx *store.Tx) error {
		if _, err := tx.GetCall(ctx, "c1"); err != nil {
			return err
		}
		if err := tx.PutCallParticipant(ctx, store.CallParticipant{CallID: "c1", Device: db.ID, User: bob.ID, Role: "member", State: store.PartJoined, UpdatedAt: t1}); err != nil {
			return err
		}
		return tx.SetCallState(ctx, "c1", store.CallActive, "", t1)
	})
	view(t, s, func(tx *store.Tx) error {
		if in, err := tx.UserInCall(ctx, bob.ID); err != nil || !in {
			t.Errorf("bob, joined, in a call: %v %v", in, err)
		}
		ps, err := tx.CallParticipants(ctx, "c1")
		if err != nil || len(ps) != 2 || ps[0].Device != da.ID || ps[1].State != store.PartJoined {
			t.Errorf("participants: %+v %v", ps, err)
		}
		return nil
	})
	t2 := t1.Add(time.Minute)
	update(t, s, func(tx *store.Tx) error { return tx.SetCallState(ctx, "c1", store.CallEnded, "hangup", t2) })
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetCall(ctx, "c1")
		if err != nil || got.State != store.CallEnded || got.Reason != "hangup" || !got.AnsweredAt.Equal(t1) || !got.EndedAt.Equal(t2) {
			t.Errorf("ended call: %+v %v", got, err)
		}
		if _, err := tx.OpenCall(ctx, g); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("open call after the end: %v", err)
		}
		if in, err := tx.UserInCall(ctx, bob.ID); err != nil || in {
			t.Errorf("bob in an ended call: %v %v", in, err)
		}
		if ps, err := tx.DeviceCalls(ctx, db.ID); err != nil || len(ps) != 0 {
			t.Errorf("bob's calls after the end: %+v %v", ps, err)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.SetCallState(ctx, "nope", store.CallEnded, "x", t2) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ending an unknown call: %v", err)
	}

	// Preempted: kept for a participant who left or missed the call, never
	// for one joined (a device that joins again is no longer preempted).
	preempted := func() map[string]bool {
		out := map[string]bool{}
		view(t, s, func(tx *store.Tx) error {
			ps, err := tx.CallParticipants(ctx, "c1")
			for _, p := range ps {
				out[p.Device] = p.Preempted
			}
			return err
		})
		return out
	}
	update(t, s, func(tx *store.Tx) error {
		return tx.PutCallParticipant(ctx, store.CallParticipant{CallID: "c1", Device: db.ID, User: bob.ID, Role: "member", State: store.PartLeft, UpdatedAt: t2, Preempted: true})
	})
	if got, want := preempted(), map[string]bool{da.ID: false, db.ID: true}; !cmp.Equal(got, want) {
		t.Errorf("preempted after bob left: %v, want %v", got, want)
	}
	update(t, s, func(tx *store.Tx) error {
		return tx.PutCallParticipant(ctx, store.CallParticipant{CallID: "c1", Device: db.ID, User: bob.ID, Role: "member", State: store.PartJoined, UpdatedAt: t2, Preempted: true})
	})
	if got, want := preempted(), map[string]bool{da.ID: false, db.ID: false}; !cmp.Equal(got, want) {
		t.Errorf("preempted once bob joined again: %v, want %v", got, want)
	}
}

// A principal has at most one designated note-taker, replaced by the next
// designation and cleared once; an ad-hoc call's readout keeps who it was
// and whether they were rung.
func testNoteTakers(t *testing.T, s *store.Store) {
	ctx := t.Context()
	pm, pm2 := uid(t, "pm@state.example"), uid(t, "vp@state.example")
	notes, notes2, duty := uid(t, "notes@state.example"), uid(t, "notes2@state.example"), uid(t, "duty@state.example")
	view(t, s, func(tx *store.Tx) error {
		if _, err := tx.GetNoteTaker(ctx, pm); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("before any designation: %v", err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error {
		if err := tx.SetNoteTaker(ctx, store.NoteTaker{Principal: pm, NoteTaker: notes, SetBy: duty, SetAt: t0}); err != nil {
			return err
		}
		if err := tx.SetNoteTaker(ctx, store.NoteTaker{Principal: pm2, NoteTaker: notes, SetBy: duty, SetAt: t0}); err != nil {
			return err
		}
		return tx.SetNoteTaker(ctx, store.NoteTaker{Principal: pm, NoteTaker: notes2, SetBy: duty, SetAt: t0.Add(time.Minute)})
	})
	view(t, s, func(tx *store.Tx) error {
		got, err := tx.GetNoteTaker(ctx, pm)
		if want := (store.NoteTaker{Principal: pm, NoteTaker: notes2, SetBy: duty, SetAt: t0.Add(time.Minute)}); err != nil || !cmp.Equal(got, want) {
			t.Errorf("designation replaced: %+v %v, want %+v", got, err, want)
		}
		all, err := tx.ListNoteTakers(ctx)
		if err != nil || len(all) != 2 || all[0].Principal != pm || all[1].Principal != pm2 || all[1].NoteTaker != notes {
			t.Errorf("list: %+v %v", all, err)
		}
		return nil
	})
	update(t, s, func(tx *store.Tx) error { return tx.ClearNoteTaker(ctx, pm) })
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.ClearNoteTaker(ctx, pm) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("clearing twice: %v", err)
	}
	view(t, s, func(tx *store.Tx) error {
		if all, err := tx.ListNoteTakers(ctx); err != nil || len(all) != 1 || all[0].Principal != pm2 {
			t.Errorf("after clearing: %+v %v", all, err)
		}
		return nil
	})

	cp := uid(t, "cp@other.example")
	with := store.Readout{CallID: "c1", GroupID: []byte{1}, Principal: pm, Others: []identity.UserID{cp}, PlacedAt: t0, DueAt: t0.Add(time.Hour),
		Status: "due", NoteTaker: notes, NoteTakerStatus: "not_member"}
	without := store.Readout{CallID: "c2", GroupID: []byte{2}, Principal: pm2, Others: []identity.UserID{cp}, PlacedAt: t0.Add(time.Second),
		DueAt: t0.Add(time.Hour), Status: "due"}
	update(t, s, func(tx *store.Tx) error {
		if err := tx.CreateReadout(ctx, with); err != nil {
			return err
		}
		return tx.CreateReadout(ctx, without)
	})
	view(t, s, func(tx *store.Tx) error {
		for _, want := range []store.Readout{with, without} {
			got, err := tx.GetReadout(ctx, want.CallID)
			if err != nil || got.NoteTaker != want.NoteTaker || got.NoteTakerStatus != want.NoteTakerStatus || got.Principal != want.Principal {
				t.Errorf("readout %s: %+v %v", want.CallID, got, err)
			}
		}
		return nil
	})
}

func testPasskeys(t *testing.T, s *store.Store) {
	ctx := t.Context()
	alice := mkUser(t, s, "alice@state.example").ID
	d1 := mkDevice(t, s, alice, 1, store.DeviceActive)
	d2 := mkDevice(t, s, alice, 2, store.DeviceActive)
	p := store.Passkey{DeviceID: d1.ID, CredentialID: []byte("cred-1"), PublicKey: []byte{0xa5, 1, 2}, SignCount: 7,
		Salt: []byte("salt-32-bytes-salt-32-bytes-salt"), AAGUID: make([]byte, 16), BackupEligible: true, CreatedAt: t0}
	update(t, s, func(tx *store.Tx) error { return tx.PutPasskey(ctx, p) })

	for _, tc := range []struct {
		name string
		p    store.Passkey
	}{
		{"a second passkey for the device", store.Passkey{DeviceID: d1.ID, CredentialID: []byte("cred-2"), PublicKey: []byte{1}, Salt: []byte{1}, AAGUID: []byte{}, CreatedAt: t0}},
		{"a credential ID taken by another device", store.Passkey{DeviceID: d2.ID, CredentialID: []byte("cred-1"), PublicKey: []byte{1}, Salt: []byte{1}, AAGUID: []byte{}, CreatedAt: t0}},
	} {
		err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.PutPasskey(ctx, tc.p); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("PutPasskey(%s) = %v, want ErrConflict", tc.name, err)
			}
			_, err := tx.GetPasskey(ctx, d1.ID) // the transaction stays usable
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}

	get := func(dev string) (store.Passkey, error) {
		var got store.Passkey
		err := s.View(ctx, func(tx *store.Tx) (err error) { got, err = tx.GetPasskey(ctx, dev); return })
		return got, err
	}
	if got, err := get(d1.ID); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("GetPasskey (-want +got):\n%s", diff)
	}
	if _, err := get(d2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPasskey of a device without one = %v, want ErrNotFound", err)
	}

	// Counters up to 2^32-1 survive the round trip.
	update(t, s, func(tx *store.Tx) error { return tx.UpdatePasskeyUse(ctx, d1.ID, 1<<32-1, t0.Add(time.Minute)) })
	p.SignCount, p.LastUsedAt = 1<<32-1, t0.Add(time.Minute)
	if got, err := get(d1.ID); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("GetPasskey after UpdatePasskeyUse (-want +got):\n%s", diff)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.UpdatePasskeyUse(ctx, d2.ID, 1, t0) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdatePasskeyUse of a device without one = %v, want ErrNotFound", err)
	}

	h1, h2, h3 := sha256.Sum256([]byte("ticket1")), sha256.Sum256([]byte("ticket2")), sha256.Sum256([]byte("ticket3"))
	update(t, s, func(tx *store.Tx) error {
		for _, h := range [][32]byte{h1, h2, h3} {
			if err := tx.CreatePasskeyUnlock(ctx, h, d1.ID, t0.Add(2*time.Minute)); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(name string, h [32]byte, dev string, now time.Time, want error) {
		t.Helper()
		err := s.Update(ctx, func(tx *store.Tx) error { return tx.UsePasskeyUnlock(ctx, h, dev, now) })
		if !errors.Is(err, want) {
			t.Errorf("UsePasskeyUnlock %s = %v, want %v", name, err, want)
		}
	}
	check("of another device", h1, d2.ID, t0, store.ErrNotFound)
	check("first use", h1, d1.ID, t0, nil)
	check("second use", h1, d1.ID, t0, store.ErrNotFound)
	check("expired", h2, d1.ID, t0.Add(2*time.Minute), store.ErrNotFound)
	update(t, s, func(tx *store.Tx) error { return tx.ExpirePasskeyUnlocks(ctx, t0.Add(2*time.Minute)) })
	check("after expiry", h3, d1.ID, t0, store.ErrNotFound)
}
