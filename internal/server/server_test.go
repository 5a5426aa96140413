package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

func TestEnrolAdmin(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			c := e.admin(t)
			me, err := c.Me(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if me.User.ID != "admin@state.example" || me.Device.Status != "active" {
				t.Fatalf("me = %+v", me)
			}
			if diff := cmp.Diff([]string{"security-officer", "admin"}, me.User.Roles); diff != "" {
				t.Errorf("first admin's roles (-want +got):\n%s", diff)
			}
			cr, err := c.Credential()
			if err != nil {
				t.Fatal(err)
			}
			if cr.User.String() != "admin@state.example" || !cr.Roles.Has(identity.RoleAdmin) {
				t.Errorf("credential = %+v", cr)
			}
			// The invite works once.
			_, _, err = client.Enroll(t.Context(), client.EnrollOptions{Server: e.url, Invite: e.invite,
				ProfileDir: filepath.Join(t.TempDir(), "p"), Fingerprint: e.fp})
			if !apierr.Is(err, apierr.InviteInvalid) {
				t.Errorf("second use of the invite: %v, want invite_invalid", err)
			}
		})
	}
}

func TestEnrolRefusesUnpinnedCertificate(t *testing.T) {
	e := newEnv(t, "sqlite")
	_, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: e.url, Invite: e.invite, ProfileDir: filepath.Join(t.TempDir(), "p")})
	if !errors.Is(err, client.ErrUnpinned) || !strings.Contains(err.Error(), e.fp) {
		t.Fatalf("enrol without a pin: %v; want ErrUnpinned naming %s", err, e.fp)
	}
	_, _, err = client.Enroll(t.Context(), client.EnrollOptions{Server: e.url, Invite: e.invite, ProfileDir: filepath.Join(t.TempDir(), "p"),
		Fingerprint: "sha256:" + strings.Repeat("ab", 32)})
	if err == nil || !strings.Contains(err.Error(), "pinned fingerprint") {
		t.Fatalf("enrol with a wrong pin: %v", err)
	}
	// Nothing was consumed: the right pin still works.
	e.admin(t)
}

// token opens a session for c's device by hand, for raw requests.
func token(t testing.TB, e *env, c *client.Client) string {
	t.Helper()
	sig, _, err := identity.ReadDeviceKeys(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	dev := c.Profile().Device
	body, _ := json.Marshal(api.ChallengeRequest{Device: dev})
	hc := e.httpClient()
	resp, err := hc.Post(e.url+"/v1/auth/challenge", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var ch api.ChallengeResponse
	json.NewDecoder(resp.Body).Decode(&ch)
	resp.Body.Close()
	nonce, _ := base64.StdEncoding.DecodeString(ch.Nonce)
	body, _ = json.Marshal(api.SessionRequest{Device: dev, Nonce: ch.Nonce,
		Signature: base64.StdEncoding.EncodeToString(sig.Sign(identity.AuthChallengeMessage("state.example", dev, nonce)))})
	resp, err = hc.Post(e.url+"/v1/auth/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s api.SessionResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Token == "" {
		t.Fatalf("session: %v", err)
	}
	return s.Token
}

// raw makes an HTTP request without the client library.
func raw(t *testing.T, e *env, method, path, token string, body []byte) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := e.httpClient()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &eb)
	return resp.StatusCode, eb
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.admin(t)
	tests := []struct {
		name, method, path, token string
		body                      string
		status                    int
		code                      apierr.Code
	}{
		{"no token", "GET", "/v1/me", "", "", 401, apierr.Unauthenticated},
		{"bad token", "GET", "/v1/me", "nonsense", "", 401, apierr.Unauthenticated},
		{"bad device id", "POST", "/v1/auth/challenge", "", `{"device":"../etc"}`, 400, apierr.BadRequest},
		{"unknown challenge", "POST", "/v1/auth/session", "", `{"device":"aaaaaaaaaaaaaaaa","nonce":"AAAA","signature":"AAAA"}`, 403, apierr.ProofInvalid},
		{"log needs a device", "GET", "/v1/log/checkpoint", "", "", 401, apierr.Unauthenticated},
		{"unknown endpoint", "GET", "/v1/nope", "", "", 404, apierr.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, eb := raw(t, e, tt.method, tt.path, tt.token, []byte(tt.body))
			if status != tt.status || eb.Error == nil || eb.Error.Code != tt.code {
				t.Errorf("%s %s = %d %+v, want %d %s", tt.method, tt.path, status, eb.Error, tt.status, tt.code)
			}
		})
	}
}

// A signature by another key, or over another challenge, never opens a
// session.
func TestLoginNeedsTheDeviceKey(t *testing.T) {
	e := newEnv(t, "sqlite")
	admin := e.admin(t)
	dev := admin.Profile().Device
	var ch api.ChallengeResponse
	body, _ := json.Marshal(api.ChallengeRequest{Device: dev})
	hc := e.httpClient()
	resp, err := hc.Post(e.url+"/v1/auth/challenge", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&ch)
	resp.Body.Close()
	other, _ := identity.GenerateSigningKey(nil)
	nonce, _ := base64.StdEncoding.DecodeString(ch.Nonce)
	sig := other.Sign(identity.AuthChallengeMessage("state.example", dev, nonce))
	req, _ := json.Marshal(api.SessionRequest{Device: dev, Nonce: ch.Nonce, Signature: base64.StdEncoding.EncodeToString(sig)})
	status, eb := raw(t, e, "POST", "/v1/auth/session", "", req)
	if status != 403 || eb.Error.Code != apierr.ProofInvalid {
		t.Fatalf("login with another key: %d %+v", status, eb.Error)
	}
	// The failed attempt consumed the challenge: retrying it fails too.
	status, eb = raw(t, e, "POST", "/v1/auth/session", "", req)
	if status != 403 || eb.Error.Code != apierr.ProofInvalid {
		t.Fatalf("retry: %d %+v", status, eb.Error)
	}
}

func TestDeviceApprovals(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			// A second security officer, enrolled on the admin's invite.
			sec, res := e.enroll(t, addUser(t, admin, "sec", "security-officer"), "sec")
			if res.Status != "active" {
				t.Fatalf("security officer's first device is %s", res.Status)
			}
			// A principal's first device needs a second approver.
			pm, res := e.enroll(t, addUser(t, admin, "pm", "principal"), "pm phone")
			if res.Status != "pending" {
				t.Fatalf("principal's first device is %s, want pending", res.Status)
			}
			if err := pm.Do(ctx, "GET", "/v1/users/pm@state.example", nil, nil); !apierr.Is(err, apierr.DevicePending) {
				t.Errorf("pending device calling the API: %v, want device_pending", err)
			}
			var ar api.ApproveResponse
			err := admin.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar)
			if !apierr.Is(err, apierr.SelfApproval) {
				t.Errorf("invite creator approving again: %v, want self_approval", err)
			}
			if err := pm.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); !apierr.Is(err, apierr.DevicePending) {
				t.Errorf("a pending device approving itself: %v, want device_pending", err)
			}
			if err := sec.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); err != nil {
				t.Fatal(err)
			}
			if !ar.Activated || ar.Needed != 2 || len(ar.Device.Approvals) != 2 {
				t.Fatalf("second approval: %+v", ar)
			}
			me, err := pm.Me(ctx)
			if err != nil || me.Device.Status != "active" || me.Credential == "" {
				t.Fatalf("principal after approval: %+v %v", me, err)
			}
			// A second device of an ordinary user: pending until the user's own
			// device approves; another ordinary user may not approve it.
			staff, _ := e.enroll(t, addUser(t, admin, "staff"), "staff desk")
			other, _ := e.enroll(t, addUser(t, admin, "other"), "other desk")
			var inv api.Invite
			if err := staff.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "staff@state.example"}, &inv); err != nil {
				t.Fatal(err)
			}
			_, res = e.enroll(t, inv.Code, "staff phone")
			if res.Status != "pending" {
				t.Fatalf("second device is %s, want pending", res.Status)
			}
			if err := other.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("another user approving: %v, want forbidden", err)
			}
			if err := other.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "staff@state.example"}, &inv); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("another user inviting: %v, want forbidden", err)
			}
			if err := staff.Do(ctx, "POST", "/v1/devices/"+res.Device+"/approve", nil, &ar); err != nil || !ar.Activated {
				t.Fatalf("own approval: %+v %v", ar, err)
			}
			// Every user's log view is clean.
			for _, c := range []*client.Client{admin, sec, pm, staff, other} {
				if rep, err := c.VerifyLog(ctx); err != nil {
					t.Errorf("%s: log verify: %v (%+v)", c.Profile().User, err, rep)
				}
			}
		})
	}
}

func TestClearanceNeedsTwoAdmins(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			admin2, _ := e.enroll(t, addUser(t, admin, "admin2", "admin"), "admin2")
			plain, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
			raise := api.ClearanceRequest{Clearance: "secret", Compartments: []string{"ALPHA"}}
			var cr api.ClearanceResponse
			if err := plain.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", raise, &cr); !apierr.Is(err, apierr.Forbidden) {
				t.Errorf("non-admin: %v, want forbidden", err)
			}
			if err := admin.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", raise, &cr); err != nil || cr.Applied || cr.RequestID == 0 {
				t.Fatalf("first admin: %+v %v", cr, err)
			}
			if err := admin.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", raise, &cr); !apierr.Is(err, apierr.SelfApproval) {
				t.Errorf("same admin again: %v, want self_approval", err)
			}
			var u api.User
			if err := admin.Do(ctx, "GET", "/v1/users/bob@state.example", nil, &u); err != nil || u.Clearance != "unclassified" {
				t.Fatalf("before second approval: %+v %v", u, err)
			}
			if err := admin2.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", raise, &cr); err != nil || !cr.Applied {
				t.Fatalf("second admin: %+v %v", cr, err)
			}
			if diff := cmp.Diff([]string{"admin@state.example", "admin2@state.example"}, cr.Approvers); diff != "" {
				t.Errorf("approvers (-want +got):\n%s", diff)
			}
			// The credential follows the directory.
			if _, err := plain.Me(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := plain.Credential()
			if err != nil || c.Clearance != identity.Secret || !c.Compartments.Contains(identity.Compartments{"ALPHA"}) {
				t.Errorf("bob's credential after the raise: %+v %v", c, err)
			}
			// Lowering is one-person.
			if err := admin.Do(ctx, "PUT", "/v1/users/bob@state.example/clearance", api.ClearanceRequest{Clearance: "confidential"}, &cr); err != nil || !cr.Applied {
				t.Fatalf("lowering: %+v %v", cr, err)
			}
			// Admins cannot approve a raise of their own clearance.
			up := api.ClearanceRequest{Clearance: "top-secret"}
			if err := admin.Do(ctx, "PUT", "/v1/users/admin2@state.example/clearance", up, &cr); err != nil || cr.Applied {
				t.Fatalf("request for admin2: %+v %v", cr, err)
			}
			if err := admin2.Do(ctx, "PUT", "/v1/users/admin2@state.example/clearance", up, &cr); !apierr.Is(err, apierr.SelfApproval) {
				t.Errorf("admin2 approving own raise: %v, want self_approval", err)
			}
		})
	}
}

// Revocation refuses the device's requests and closes its connections at
// once.
func TestRevocationClosesStreams(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			bob, res := e.enroll(t, addUser(t, admin, "bob"), "bob")
			ended := follow(t, bob)
			var d api.Device
			if err := admin.Do(ctx, "POST", "/v1/devices/"+res.Device+"/revoke", api.RevokeRequest{Reason: "lost"}, &d); err != nil {
				t.Fatal(err)
			}
			revokedStream(t, ended)
			if _, err := bob.Me(ctx); !apierr.Is(err, apierr.DeviceRevoked) && !strings.Contains(fmtErr(err), "device_revoked") {
				t.Errorf("revoked device's request: %v, want device_revoked", err)
			}
			if err := admin.Do(ctx, "POST", "/v1/devices/"+res.Device+"/revoke", nil, &d); !apierr.Is(err, apierr.Conflict) {
				t.Errorf("revoking twice: %v, want conflict", err)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Events queued while a device is offline reach it after a reconnect and
// after a server restart; acknowledged events are not delivered again.
func TestEventsResume(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			collect := func(n int) []api.StreamMessage {
				t.Helper()
				var got []api.StreamMessage
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				err := admin.Events(cctx, func(m api.StreamMessage) error {
					if m.Type != api.StreamEvent || m.Event != "device.pending" {
						return nil
					}
					got = append(got, m)
					if len(got) == n {
						return client.ErrStop
					}
					return nil
				})
				if err != nil {
					t.Fatalf("events: got %d of %d: %v", len(got), n, err)
				}
				return got
			}
			// Two users' devices enrol pending while the admin is offline.
			for _, name := range []string{"u1", "u2"} {
				inv := addUser(t, admin, name)
				c, _ := e.enroll(t, inv, name)
				var inv2 api.Invite
				if err := c.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: name + "@state.example"}, &inv2); err != nil {
					t.Fatal(err)
				}
				e.enroll(t, inv2.Code, name+" second")
			}
			got := collect(2)
			if got[0].Event != "device.pending" || got[1].Event != "device.pending" || got[0].Seq >= got[1].Seq {
				t.Fatalf("events = %+v", got)
			}
			e.restart(t)
			// The profile remembers the position, but the server URL changed
			// with the port: reopen the profile at the new address.
			admin = reopenAt(t, admin, e)
			inv := addUser(t, admin, "u3")
			c, _ := e.enroll(t, inv, "u3")
			var inv3 api.Invite
			if err := c.Do(ctx, "POST", "/v1/invites", api.InviteRequest{User: "u3@state.example"}, &inv3); err != nil {
				t.Fatal(err)
			}
			e.enroll(t, inv3.Code, "u3 second")
			got2 := collect(1)
			if got2[0].Seq <= got[1].Seq || !strings.Contains(string(got2[0].Payload), "u3@state.example") {
				t.Fatalf("after restart: %+v (earlier last seq %d)", got2, got[1].Seq)
			}
		})
	}
}

// reopenAt points a profile at the server's new address (tests restart the
// server on a new port).
func reopenAt(t *testing.T, c *client.Client, e *env) *client.Client {
	t.Helper()
	path := filepath.Join(c.Dir(), client.ProfileFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p["server"] = e.url
	b, _ = json.Marshal(p)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := client.Open(c.Dir(), client.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c2
}

// Devices renew their credentials before expiry without user action.
func TestCredentialRenewal(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.CredentialTTL = 3 * time.Hour })
	ctx := t.Context()
	admin := e.admin(t)
	c1, err := admin.Credential()
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour) // two thirds left: no renewal yet
	if _, err := admin.Me(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := admin.Credential(); !c.Expires.Equal(c1.Expires) {
		t.Fatalf("renewed too early: %v -> %v", c1.Expires, c.Expires)
	}
	e.clock.Advance(90 * time.Minute) // less than a third left
	var u api.User
	if err := admin.Do(ctx, "GET", "/v1/users/admin@state.example", nil, &u); err != nil {
		t.Fatal(err)
	}
	c2, err := admin.Credential()
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Expires.After(c1.Expires) {
		t.Fatalf("credential not renewed: expires %v, was %v", c2.Expires, c1.Expires)
	}
	// Even an expired credential renews: the device key still proves who it is.
	e.clock.Advance(4 * time.Hour)
	if err := admin.Do(ctx, "GET", "/v1/users/admin@state.example", nil, &u); err != nil {
		t.Fatal(err)
	}
	if c3, err := admin.Credential(); err != nil || !c3.Expires.After(e.clock.Now()) {
		t.Fatalf("after expiry: %+v %v", c3, err)
	}
}

func TestContactPolicyAndRefusalLogging(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			addUser(t, admin, "pm")
			amb, _ := e.enroll(t, addUser(t, admin, "amb", "counterpart"), "amb")
			duty, _ := e.enroll(t, addUser(t, admin, "duty", "duty-officer"), "duty")
			check := func(c *client.Client, to string) error {
				var res api.ContactResponse
				return c.Do(ctx, "POST", "/v1/contact", api.ContactRequest{To: to}, &res)
			}
			if err := check(amb, "duty@state.example"); err != nil {
				t.Errorf("counterpart -> duty officer: %v", err)
			}
			if err := check(duty, "amb@state.example"); err != nil {
				t.Errorf("duty officer -> counterpart: %v", err)
			}
			if err := check(amb, "pm@state.example"); !apierr.Is(err, apierr.ContactRefused) {
				t.Errorf("counterpart -> staff: %v, want contact_refused", err)
			}
			if err := check(admin, "nobody@state.example"); !apierr.Is(err, apierr.NotFound) {
				t.Errorf("contact unknown user: %v, want not_found", err)
			}
			// A flood of refusals: each is refused, but the log takes only a
			// burst and folds the rest into a count.
			const flood = 40
			for range flood {
				if err := check(amb, "pm@state.example"); !apierr.Is(err, apierr.ContactRefused) {
					t.Fatalf("refusal: %v", err)
				}
			}
			if err := e.srv.Log().Sync(ctx); err != nil {
				t.Fatal(err)
			}
			entries := logEntries(t, admin)
			logged, counted := 0, 0
			for _, en := range entries {
				if en.Type == tlog.TypeContactRefused && en.Actor == "amb@state.example" {
					logged++
					counted += en.Count
				}
			}
			if logged == 0 || logged > 6 {
				t.Errorf("%d refusal entries logged for %d refusals; want a small burst", logged, flood+1)
			}
			if counted > flood+1 {
				t.Errorf("refusal counts sum to %d, more than the %d refusals", counted, flood+1)
			}
		})
	}
}

func logEntries(t *testing.T, c *client.Client) []tlog.Entry {
	t.Helper()
	var cp api.Checkpoint
	if err := c.Do(t.Context(), "GET", "/v1/log/checkpoint", nil, &cp); err != nil {
		t.Fatal(err)
	}
	var out []tlog.Entry
	for start := int64(0); ; {
		var es api.Entries
		err := c.Do(t.Context(), "GET", "/v1/log/entries?start="+itoa(start)+"&end="+itoa(start+1000), nil, &es)
		if apierr.Is(err, apierr.BadRequest) {
			break // past the end
		} else if err != nil {
			t.Fatal(err)
		}
		for _, raw := range es.Entries {
			en, err := tlog.ParseEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, en)
		}
		start += int64(len(es.Entries))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Inclusion and consistency proofs served by the server verify against its
// checkpoints.
func TestLogProofs(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	for i := range 5 {
		addUser(t, admin, "p"+itoa(int64(i)))
	}
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := admin.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, root := rep.Checkpoint.Size, rep.Checkpoint.Hash
	entries := logEntries(t, admin)
	for i := int64(0); i < size; i++ {
		var p api.InclusionProof
		if err := admin.Do(ctx, "GET", "/v1/log/proof/inclusion?index="+itoa(i)+"&size="+itoa(size), nil, &p); err != nil {
			t.Fatal(err)
		}
		proof, err := tlog.DecodeProof(p.Proof)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := entries[i].Marshal()
		if err := tlog.VerifyInclusion(proof, i, size, data, root); err != nil {
			t.Errorf("inclusion of %d in %d: %v", i, size, err)
		}
	}
	for _, q := range []string{"index=0&size=0", "index=5&size=3", "index=0&size=999999", "index=x&size=1"} {
		var p api.InclusionProof
		if err := admin.Do(ctx, "GET", "/v1/log/proof/inclusion?"+q, nil, &p); !apierr.Is(err, apierr.BadRequest) {
			t.Errorf("inclusion %s: %v, want bad_request", q, err)
		}
	}
	var cp api.ConsistencyProof
	if err := admin.Do(ctx, "GET", "/v1/log/proof/consistency?old=1&new="+itoa(size), nil, &cp); err != nil {
		t.Fatal(err)
	}
	proof, err := tlog.DecodeProof(cp.Proof)
	if err != nil {
		t.Fatal(err)
	}
	firstHash := sumtlog.RecordHash(mustMarshal(t, entries[0])) // the root of a one-entry tree
	if err := tlog.VerifyConsistency(proof, 1, firstHash, size, root); err != nil {
		t.Errorf("consistency from 1 to %d: %v", size, err)
	}
}

func mustMarshal(t *testing.T, e tlog.Entry) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Bad input gets a stable code and changes nothing: the log does not grow.
func TestMalformedRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := admin.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"user":"` + strings.Repeat("a", api.MaxBody) + `"}`
	tests := []struct {
		method, path, body string
		code               apierr.Code
	}{
		{"POST", "/v1/users", `{`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":[],"extra":1}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":[]} {}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":"admin"}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@other.example","roles":[]}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"X Y@state.example","roles":[]}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":["emperor"]}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":[],"clearance":"cosmic"}`, apierr.BadRequest},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":[],"compartments":["no spaces"]}`, apierr.BadRequest},
		{"POST", "/v1/users", big, apierr.TooLarge},
		{"POST", "/v1/users", `{"user":"admin@state.example","roles":[]}`, apierr.Conflict},
		{"PUT", "/v1/users/nobody@state.example/roles", `{"roles":[]}`, apierr.NotFound},
		{"PUT", "/v1/users/admin@state.example/clearance", `{"clearance":"secret","compartments":["a b"]}`, apierr.BadRequest},
		{"POST", "/v1/policy", `{"rule":"any -> any"}`, apierr.BadRequest},
		{"POST", "/v1/policy", `{"rule":"role:king -> any : allow"}`, apierr.BadRequest},
		{"POST", "/v1/policy", `{"rule":"org:state.example -> org:state.example : allow"}`, apierr.Conflict},
		{"DELETE", "/v1/policy/0", ``, apierr.BadRequest},
		{"DELETE", "/v1/policy/99999", ``, apierr.NotFound},
		{"POST", "/v1/devices/zzzz/approve", ``, apierr.BadRequest},
		{"POST", "/v1/devices/aaaaaaaaaaaaaaaa/approve", ``, apierr.NotFound},
		{"POST", "/v1/devices/aaaaaaaaaaaaaaaa/revoke", `{"reason":"Not A Code!"}`, apierr.BadRequest},
		{"POST", "/v1/invites", `{"user":"nobody@state.example"}`, apierr.NotFound},
		{"POST", "/v1/contact", `{"to":""}`, apierr.BadRequest},
		{"GET", "/v1/log/entries?start=-1&end=2", ``, apierr.BadRequest},
		{"GET", "/v1/log/entries?start=0&end=0", ``, apierr.BadRequest},
		{"GET", "/v1/log/proof/consistency?old=0&new=1", ``, apierr.BadRequest},
		{"GET", "/v1/events?after=-1", ``, apierr.BadRequest},
		{"GET", "/v1/calls/zzzz", ``, apierr.BadRequest},
		{"POST", "/v1/calls/0123456789ABCDEF0123456789ABCDEF/accept", ``, apierr.BadRequest},
		{"POST", "/v1/calls/0123456789abcdef0123456789abcdef/join", ``, apierr.NotFound},
		{"POST", "/v1/conversations/AAEC/calls", ``, apierr.NotFound},
		{"POST", "/v1/conversations/not%20an%20id/calls", ``, apierr.BadRequest},
		{"POST", "/v1/media", `{"offer":"v=0"}`, apierr.BadRequest},
		{"POST", "/v1/media", `{"offer":` + strconv.Quote(strings.Repeat("a", 70<<10)) + `}`, apierr.TooLarge},
	}
	tok := token(t, e, admin)
	for _, tt := range tests {
		status, eb := raw(t, e, tt.method, tt.path, tok, []byte(tt.body))
		if eb.Error == nil || eb.Error.Code != tt.code || status != apierr.Status(tt.code) {
			t.Errorf("%s %s %.60s: %d %+v, want %s", tt.method, tt.path, tt.body, status, eb.Error, tt.code)
		}
	}
	// Malformed enrolments.
	for _, body := range []string{
		`{}`,
		`{"invite":"HL-00000-00000-00000-00000-0000","sig_key":"AAAA","kem_key":"","label":"","proof":""}`,
		`{"invite":"nonsense","sig_key":"","kem_key":"","label":"","proof":""}`,
	} {
		status, eb := raw(t, e, "POST", "/v1/enroll", "", []byte(body))
		if status < 400 || status >= 500 || eb.Error == nil {
			t.Errorf("enroll %s: %d %+v", body, status, eb.Error)
		}
	}
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := admin.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size != before.Size {
		t.Errorf("the log grew from %d to %d entries on bad input", before.Size, after.Size)
	}
}

// No plaintext content reaches the server's storage, logs or metrics.
// Nothing at this stage is content (messages arrive with the MLS issue), so
// the canaries go where a careless server would leak them: into rejected
// fields, bad rule text, invite codes, and labels of refused enrolments.
func TestCanaryNeverStored(t *testing.T) {
	// Spaces make sure no identifier (user, role, rule, code) can hold it:
	// identifiers are directory metadata and may be stored.
	const canary = "CANARY 7f3a9c the ambassador said yes"
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	attempts := []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"user":"` + canary + `@state.example","roles":[]}`},
		{"POST", "/v1/users", `{"user":"x@state.example","roles":["` + canary + `"]}`},
		{"POST", "/v1/policy", `{"rule":"` + canary + `"}`},
		{"POST", "/v1/contact", `{"to":"` + canary + `"}`},
		{"POST", "/v1/users", `{"` + canary + `":1}`},
		{"POST", "/v1/devices/aaaaaaaaaaaaaaaa/revoke", `{"reason":"` + canary + `"}`},
	}
	tok := token(t, e, admin)
	for _, a := range attempts {
		if status, _ := raw(t, e, a.method, a.path, tok, []byte(a.body)); status < 400 {
			t.Errorf("%s %s with the canary: status %d, want an error", a.method, a.path, status)
		}
	}
	raw(t, e, "POST", "/v1/enroll", "", []byte(`{"invite":"`+canary+`","sig_key":"","kem_key":"","label":"`+canary+`","proof":""}`))
	raw(t, e, "GET", "/v1/users/"+url.PathEscape(canary), tok, nil)
	raw(t, e, "GET", "/v1/log/entries?start="+url.QueryEscape(canary), tok, nil)
	if err := e.srv.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Metrics.
	hc := e.httpClient()
	resp, err := hc.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("hotline_http_requests_total")) {
		t.Fatalf("metrics look empty:\n%s", metrics)
	}
	e.stop()
	// Every file in the data directory, the database and its WAL included.
	err = filepath.Walk(e.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte(strings.ToLower(canary))) {
			t.Errorf("canary found in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.logs.String(), canary) || strings.Contains(strings.ToLower(e.logs.String()), strings.ToLower(canary)) {
		t.Errorf("canary found in the server log")
	}
	if bytes.Contains(bytes.ToLower(metrics), []byte(strings.ToLower(canary))) {
		t.Errorf("canary found in metrics")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, "sqlite")
	hc := e.httpClient()
	resp, err := hc.Get(e.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	e.admin(t)
	resp, err = hc.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hotline_http_requests_total{route="POST /v1/enroll",status="201"} 1`,
		`hotline_enrolments_total{result="active"} 1`,
		"# TYPE hotline_http_request_duration_seconds histogram",
		"hotline_log_size ",
		"hotline_event_streams 0",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestInsecureHTTPOnlyOnLoopback(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.InsecureHTTP = true })
	if !strings.HasPrefix(e.url, "http://127.0.0.1:") {
		t.Fatalf("url = %s", e.url)
	}
	admin := e.admin(t)
	if _, err := admin.Me(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(t.Context(), e.cfg)
	if err == nil {
		defer srv.Shutdown(context.Background())
		ln := &fakeListener{addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 80}}
		if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("plain HTTP on a non-loopback address: %v", err)
		}
	}
}

// fakeListener has a non-loopback address and never accepts.
type fakeListener struct{ addr net.Addr }

func (l *fakeListener) Accept() (net.Conn, error) { return nil, errors.New("closed") }
func (l *fakeListener) Close() error              { return nil }
func (l *fakeListener) Addr() net.Addr            { return l.addr }

// Audit passes on a working server's database, and a server restarted on
// the same data serves the same log.
func TestAuditAfterRestart(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			_, res := e.enroll(t, addUser(t, admin, "bob", "duty-officer"), "bob")
			var d api.Device
			if err := admin.Do(ctx, "POST", "/v1/devices/"+res.Device+"/revoke", nil, &d); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.VerifyLog(ctx); err != nil {
				t.Fatal(err)
			}
			e.restart(t)
			admin = reopenAt(t, admin, e)
			if _, err := admin.VerifyLog(ctx); err != nil {
				t.Fatalf("after restart: %v", err)
			}
			e.stop()
			dir, err := datadir.Open(e.dir)
			if err != nil {
				t.Fatal(err)
			}
			st, err := dir.OpenStore(ctx, datadir.StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			root, _ := dir.RootVerifier()
			rep, err := transparency.Audit(ctx, st, "state.example", root)
			if err != nil {
				t.Fatalf("audit: %v (%+v)", err, rep)
			}
			if rep.Devices != 2 || rep.Users != 2 || rep.Entries == 0 {
				t.Errorf("audit report %+v", rep)
			}
		})
	}
}
