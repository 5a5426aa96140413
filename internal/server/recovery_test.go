package server_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

// operatorInvite mints a break-glass invite beside the running server, as
// `hotline invite --data DIR USER` does.
func operatorInvite(t *testing.T, e *env, user string) (org.Invite, error) {
	t.Helper()
	d, err := datadir.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.OpenStore(t.Context(), datadir.StoreOptions{Database: e.database})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, _ := identity.ParseUserID(user)
	return org.New(org.Config{Org: "state.example", Store: st}).OperatorInvite(t.Context(), id)
}

// The only admin revokes their last device; the operator's break-glass
// invite brings them back, and every device's log view accepts it.
func TestBreakGlassInvite(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
	if _, err := operatorInvite(t, e, "admin@state.example"); !apierr.Is(err, apierr.Conflict) {
		t.Errorf("operator invite while the admin has a device: %v, want conflict", err)
	}
	var d api.Device
	if err := admin.Do(ctx, "POST", "/v1/devices/"+admin.Profile().Device+"/revoke", api.RevokeRequest{Reason: "lost"}, &d); err != nil {
		t.Fatal(err)
	}
	inv, err := operatorInvite(t, e, "admin@state.example")
	if err != nil {
		t.Fatal(err)
	}
	admin2, res := e.enroll(t, inv.Code, "admin replacement")
	if res.Status != "active" {
		t.Fatalf("bootstrap admin's break-glass device is %s, want active", res.Status)
	}
	if _, err := admin2.VerifyLog(ctx); err != nil {
		t.Errorf("admin's log verify: %v", err)
	}
	// For anyone else, the system's word is not enough: a security officer
	// must approve.
	var rd api.Device
	if err := bob.Do(ctx, "POST", "/v1/devices/"+bob.Profile().Device+"/revoke", nil, &rd); err != nil {
		t.Fatal(err)
	}
	inv, err = operatorInvite(t, e, "bob@state.example")
	if err != nil {
		t.Fatal(err)
	}
	bob2, res := e.enroll(t, inv.Code, "bob replacement")
	if res.Status != "pending" {
		t.Fatalf("bob's break-glass device is %s, want pending", res.Status)
	}
	var ar api.ApproveResponse
	if err := admin2.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); err != nil || !ar.Activated {
		t.Fatalf("security officer approving: %+v %v", ar, err)
	}
	if _, err := bob2.VerifyLog(ctx); err != nil {
		t.Errorf("bob's log verify: %v", err)
	}
}

// A lowering replaces a pending raise, so a second admin cannot approve a
// request made of the old clearance.
func TestLoweringReplacesPendingRaise(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	admin2, _ := e.enroll(t, addUser(t, admin, "admin2", "admin"), "admin2")
	addUser(t, admin, "bob")
	var cr api.ClearanceResponse
	put := func(c *client.Client, level string) {
		t.Helper()
		if err := c.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", api.ClearanceRequest{Clearance: level}, &cr); err != nil {
			t.Fatal(err)
		}
	}
	put(admin, "secret")        // raise: pending
	put(admin2, "secret")       // applied
	put(admin, "top-secret")    // raise: pending
	put(admin2, "unclassified") // lowering: applied, replaces the pending raise
	var rs []api.ChangeRequest
	if err := admin.Do(ctx, "GET", "/v1/requests", nil, &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 0 {
		t.Errorf("pending requests after the lowering: %+v", rs)
	}
	put(admin2, "top-secret") // a new request, not an approval of the old one
	if cr.Applied || cr.User.Clearance != "unclassified" {
		t.Errorf("the stale raise was applied: %+v", cr)
	}
}

// After a log-key rotation, a checkpoint signed with the retired key (say it
// leaked) is refused by devices and by the audit.
func TestRetiredLogKeyCannotSign(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	if _, err := admin.VerifyLog(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ := datadir.Open(e.dir)
	oldKey, err := d.LogSigner()
	if err != nil {
		t.Fatal(err)
	}
	e.stop()
	if _, err := d.Rotate(ctx, filepath.Join(e.dir, datadir.RootKeyFile), []string{datadir.RotateLog}, datadir.StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	admin = reopenAt(t, admin, e)
	addUser(t, admin, "bob")
	if _, err := admin.VerifyLog(ctx); err != nil {
		t.Fatalf("across the rotation: %v", err)
	}
	addUser(t, admin, "carol") // grow the log past what the device verified
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e.stop()
	// Re-sign the newest checkpoint's body with the retired key.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, datadir.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	var signed []byte
	if err := db.QueryRow(`SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &signed); err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.ParseCheckpoint(signed[:strings.Index(string(signed), "\n\n")+1])
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tlog.SignCheckpoint(cp, oldKey.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE tlog_checkpoints SET note = $1 WHERE size = $2`, forged, size); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := d.OpenStore(ctx, datadir.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := d.RootVerifier()
	rep, err := transparency.Audit(ctx, st, "state.example", root)
	st.Close()
	if !errors.Is(err, transparency.ErrAudit) || !strings.Contains(strings.Join(rep.Findings, ";"), "not signed by the log key in force") {
		t.Errorf("audit of a checkpoint signed by the retired key: %v %+v", err, rep)
	}
	e.start(t)
	admin = reopenAt(t, admin, e)
	if _, err := admin.VerifyLog(ctx); !errors.Is(err, client.ErrLogProblem) || !strings.Contains(err.Error(), "not signed by the log key of key set 2") {
		t.Errorf("device verifying a checkpoint signed by the retired key: %v", err)
	}
}

// Disabling a user revokes every device of theirs at once, closes their
// streams, and keeps the database and the log in agreement.
func TestDisableUser(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
			var inv api.Invite
			if err := bob.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "bob@state.example"}, &inv); err != nil {
				t.Fatal(err)
			}
			e.enroll(t, inv.Code, "bob phone") // pending
			var u api.User
			if err := bob.Do(ctx, "POST", "/v1/users/admin@state.example/disable", nil, &u); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("non-admin disabling: %v, want forbidden", err)
			}
			if err := admin.Do(ctx, "POST", "/v1/users/admin@state.example/disable", nil, &u); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("admin disabling themself: %v, want conflict", err)
			}
			ended := follow(t, bob)
			if err := admin.Do(ctx, "POST", "/v1/users/bob@state.example/disable", api.RevokeRequest{Reason: "left"}, &u); err != nil || !u.Disabled {
				t.Fatalf("disable: %+v %v", u, err)
			}
			revokedStream(t, ended)
			if _, err := bob.Me(ctx); err == nil {
				t.Error("a disabled user's device still works")
			}
			var ds []api.Device
			if err := admin.Do(ctx, "GET", "/v1/devices?user=bob@state.example", nil, &ds); err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Status != "revoked" {
					t.Errorf("device %s is %s after the user was disabled", d.ID, d.Status)
				}
			}
			if err := admin.Do(ctx, "POST", "/v1/users/bob@state.example/disable", nil, &u); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("disabling twice: %v, want conflict", err)
			}
			if _, err := admin.VerifyLog(ctx); err != nil {
				t.Fatal(err)
			}
			e.stop()
			d, _ := datadir.Open(e.dir)
			st, err := d.OpenStore(ctx, datadir.StoreOptions{Database: e.database})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			root, _ := d.RootVerifier()
			if rep, err := transparency.Audit(ctx, st, "state.example", root); err != nil {
				t.Errorf("audit: %v %+v", err, rep)
			}
		})
	}
}
