package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/identity"
	"hotline/internal/server"
)

// A WebAuthn authenticator in software, and the part of a browser that
// talks to it (navigator.credentials.create and get, and toJSON), so that
// the server's passkey routes are tested against real WebAuthn data: CBOR
// attestation objects, authenticator data, ECDSA P-256 signatures and the
// PRF extension, built here from the specifications, not by go-webauthn.

// softAuthenticator holds one ES256 credential with a PRF (hmac-secret).
type softAuthenticator struct {
	key        *ecdsa.PrivateKey
	credID     []byte
	credRandom []byte // the secret the PRF is keyed with (CTAP2 CredRandom)
	counter    uint32 // incremented before each signature; stays 0 with noCounter
	noCounter  bool
	noPRF      bool // reports prf.enabled = false at registration
	backup     bool // a synced passkey: backup eligible and backed up
}

func newSoftAuthenticator(t testing.TB) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &softAuthenticator{key: key, credID: make([]byte, 32), credRandom: make([]byte, 32)}
	rand.Read(a.credID)
	rand.Read(a.credRandom)
	return a
}

var b64u = base64.RawURLEncoding

// aaguid of the soft authenticator (any 16 bytes; "none" attestation).
var softAAGUID = []byte("hotline-softauth")

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func (a *softAuthenticator) flags() byte {
	f := byte(flagUP | flagUV)
	if a.backup {
		f |= flagBE | flagBS
	}
	return f
}

func (a *softAuthenticator) nextCount() uint32 {
	if !a.noCounter {
		a.counter++
	}
	return a.counter
}

// prf evaluates the PRF as a browser and authenticator do for eval.first
// (WebAuthn §10.1.4 and CTAP2 hmac-secret): HMAC-SHA-256 under the
// credential's secret of SHA-256("WebAuthn PRF" || 0x00 || salt).
func (a *softAuthenticator) prf(salt []byte) []byte {
	h := sha256.Sum256(append([]byte("WebAuthn PRF\x00"), salt...))
	m := hmac.New(sha256.New, a.credRandom)
	m.Write(h[:])
	return m.Sum(nil)
}

// coseKey is the credential's public key as a COSE_Key (RFC 9053 EC2).
func (a *softAuthenticator) coseKey(t testing.TB) []byte {
	t.Helper()
	pub, err := a.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return mustCBOR(t, map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:]})
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	em, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func authData(rpID string, flags byte, count uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	b := append(h[:], flags)
	b = binary.BigEndian.AppendUint32(b, count)
	return append(b, attested...)
}

// clientData is what the browser signs over: the ceremony type, the
// challenge and the origin the page runs at.
func clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// creationOptions and requestOptions are the parts of the server's
// options the browser and authenticator use.
type creationOptions struct {
	RP        struct{ ID string } `json:"rp"`
	User      struct{ ID, Name, DisplayName string }
	Challenge string `json:"challenge"`
	Params    []struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	} `json:"pubKeyCredParams"`
	Selection struct {
		ResidentKey      string `json:"residentKey"`
		UserVerification string `json:"userVerification"`
	} `json:"authenticatorSelection"`
	Attestation string     `json:"attestation"`
	Extensions  extensions `json:"extensions"`
}

type requestOptions struct {
	Challenge        string `json:"challenge"`
	RPID             string `json:"rpId"`
	AllowCredentials []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"allowCredentials"`
	UserVerification string     `json:"userVerification"`
	Extensions       extensions `json:"extensions"`
}

type extensions struct {
	PRF *struct {
		Eval struct {
			First string `json:"first"`
		} `json:"eval"`
	} `json:"prf"`
}

func (x extensions) salt(t testing.TB) []byte {
	t.Helper()
	if x.PRF == nil {
		t.Fatal("the options do not request the PRF extension")
	}
	salt, err := b64u.DecodeString(x.PRF.Eval.First)
	if err != nil {
		t.Fatalf("prf.eval.first: %v", err)
	}
	return salt
}

// credentialJSON is a PublicKeyCredential as toJSON() gives it.
type credentialJSON struct {
	ID                      string         `json:"id"`
	RawID                   string         `json:"rawId"`
	Type                    string         `json:"type"`
	Response                map[string]any `json:"response"`
	ClientExtensionResults  map[string]any `json:"clientExtensionResults"`
	AuthenticatorAttachment string         `json:"authenticatorAttachment"`
}

// create is navigator.credentials.create({publicKey}) at origin: a new
// credential with "none" attestation, the PRF enabled and evaluated over
// the salt the options carry. It returns the credential and the PRF output.
func (a *softAuthenticator) create(t testing.TB, origin string, options json.RawMessage) (credentialJSON, []byte) {
	t.Helper()
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("creation options: %v", err)
	}
	es256 := false
	for _, p := range o.Params {
		es256 = es256 || p.Type == "public-key" && p.Alg == -7
	}
	if !es256 {
		t.Fatalf("the options do not offer ES256: %s", options)
	}
	cd := clientData("webauthn.create", o.Challenge, origin)
	attested := append(append([]byte{}, softAAGUID...), byte(len(a.credID)>>8), byte(len(a.credID)))
	attested = append(append(attested, a.credID...), a.coseKey(t)...)
	ad := authData(o.RP.ID, a.flags()|flagAT, a.nextCount(), attested)
	spki, err := x509.MarshalPKIXPublicKey(&a.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	att := mustCBOR(t, map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	var out []byte
	prf := map[string]any{"enabled": !a.noPRF}
	if !a.noPRF {
		out = a.prf(o.Extensions.salt(t))
		prf["results"] = map[string]any{"first": b64u.EncodeToString(out)}
	}
	return credentialJSON{
		ID: b64u.EncodeToString(a.credID), RawID: b64u.EncodeToString(a.credID), Type: "public-key",
		Response: map[string]any{
			"clientDataJSON": b64u.EncodeToString(cd), "attestationObject": b64u.EncodeToString(att),
			"authenticatorData": b64u.EncodeToString(ad), "publicKey": b64u.EncodeToString(spki), "publicKeyAlgorithm": -7,
			"transports": []string{"internal"},
		},
		ClientExtensionResults:  map[string]any{"prf": prf},
		AuthenticatorAttachment: "platform",
	}, out
}

// get is navigator.credentials.get({publicKey}) at origin: an assertion
// signed with the credential, and the PRF evaluated over the salt.
func (a *softAuthenticator) get(t testing.TB, origin string, options json.RawMessage) (credentialJSON, []byte) {
	t.Helper()
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("request options: %v", err)
	}
	allowed := false
	for _, c := range o.AllowCredentials {
		allowed = allowed || c.ID == b64u.EncodeToString(a.credID)
	}
	if !allowed {
		t.Fatalf("the options do not allow this credential: %s", options)
	}
	cd := clientData("webauthn.get", o.Challenge, origin)
	ad := authData(o.RPID, a.flags(), a.nextCount(), nil)
	h := sha256.Sum256(cd)
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, sha256Sum(append(append([]byte{}, ad...), h[:]...)))
	if err != nil {
		t.Fatal(err)
	}
	out := a.prf(o.Extensions.salt(t))
	return credentialJSON{
		ID: b64u.EncodeToString(a.credID), RawID: b64u.EncodeToString(a.credID), Type: "public-key",
		Response: map[string]any{
			"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(ad),
			"signature": b64u.EncodeToString(sig),
		},
		ClientExtensionResults:  map[string]any{"prf": map[string]any{"results": map[string]any{"first": b64u.EncodeToString(out)}}},
		AuthenticatorAttachment: "platform",
	}, out
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

// withoutSecret is what the web client posts: the credential without the
// PRF output, which must never leave the browser.
func withoutSecret(c credentialJSON) credentialJSON {
	ext := map[string]any{}
	for k, v := range c.ClientExtensionResults {
		ext[k] = v
	}
	if prf, ok := ext["prf"].(map[string]any); ok {
		p := map[string]any{}
		for k, v := range prf {
			if k != "results" {
				p[k] = v
			}
		}
		ext["prf"] = p
	}
	c.ClientExtensionResults = ext
	return c
}

// browser makes the web client's requests from an origin.
type browser struct {
	e      *env
	origin string
	hc     *http.Client
}

func newBrowser(e *env, origin string) *browser {
	return &browser{e: e, origin: origin, hc: e.httpClient()}
}

// post sends in as JSON (raw bytes as they are) and returns the status and
// body.
func (b *browser) post(t testing.TB, path, token string, in any) (int, []byte) {
	t.Helper()
	body, ok := in.([]byte)
	if !ok {
		var err error
		if body, err = json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", b.e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// call posts and decodes a success into out, failing the test otherwise.
func (b *browser) call(t testing.TB, path, token string, in, out any) {
	t.Helper()
	status, body := b.post(t, path, token, in)
	if status >= 300 {
		t.Fatalf("POST %s: HTTP %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
}

// register runs the registration ceremony for the device whose session is
// token and returns the PRF output of the created credential.
func (b *browser) register(t testing.TB, a *softAuthenticator, token string) []byte {
	t.Helper()
	var cer api.PasskeyCeremony
	b.call(t, "/v1/passkeys/register", token, struct{}{}, &cer)
	cred, out := a.create(t, b.origin, cer.PublicKey)
	var p api.Passkey
	b.call(t, "/v1/passkeys/register/"+cer.Ceremony, token, withoutSecret(cred), &p)
	return out
}

// beginUnlock starts an unlock ceremony for device.
func (b *browser) beginUnlock(t testing.TB, device string) api.PasskeyCeremony {
	t.Helper()
	var cer api.PasskeyCeremony
	b.call(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: device}, &cer)
	return cer
}

// unlock proves the passkey and returns the ticket and the PRF output.
func (b *browser) unlock(t testing.TB, a *softAuthenticator, device string) (api.PasskeyUnlock, []byte) {
	t.Helper()
	cer := b.beginUnlock(t, device)
	cred, out := a.get(t, b.origin, cer.PublicKey)
	var u api.PasskeyUnlock
	b.call(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred), &u)
	return u, out
}

// wantError fails the test unless the answer is an error with this code.
func wantError(t testing.TB, what string, status int, body []byte, code apierr.Code) {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Errorf("%s: HTTP %d %s, want %s", what, status, body, code)
		return
	}
	if eb.Error.Code != code || status != apierr.Status(code) {
		t.Errorf("%s: HTTP %d %s (%s), want %s", what, status, eb.Error.Code, eb.Error.Message, code)
	}
}

// sessionWith opens a session for c's device by hand, presenting ticket.
func sessionWith(t testing.TB, e *env, c *client.Client, ticket string) (int, []byte) {
	t.Helper()
	sig, _, err := identity.ReadDeviceKeys(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	dev := c.Profile().Device
	b := newBrowser(e, "")
	var ch api.ChallengeResponse
	b.call(t, "/v1/auth/challenge", "", api.ChallengeRequest{Device: dev}, &ch)
	nonce, _ := base64.StdEncoding.DecodeString(ch.Nonce)
	return b.post(t, "/v1/auth/session", "", api.SessionRequest{Device: dev, Nonce: ch.Nonce, Unlock: ticket,
		Signature: base64.StdEncoding.EncodeToString(sig.Sign(identity.AuthChallengeMessage("state.example", dev, nonce)))})
}

const (
	webOrigin   = "https://hotline.test"
	localOrigin = "http://bob.localhost:8080"
)

func withWebOrigins(c *server.Config) {
	c.WebOrigins = []string{webOrigin, "http://*.localhost:8080"}
}

// passkeyUser adds a user and enrols their device (active at once).
func passkeyUser(t testing.TB, e *env, admin *client.Client, name string) *client.Client {
	t.Helper()
	c, res := e.enroll(t, addUser(t, admin, name), name+" browser")
	if res.Status != "active" {
		t.Fatalf("%s's device is %s", name, res.Status)
	}
	return c
}

func TestPasskeys(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, withWebOrigins)
			admin := e.admin(t)
			alice := passkeyUser(t, e, admin, "alice")
			dev := alice.Profile().Device
			b, auth := newBrowser(e, webOrigin), newSoftAuthenticator(t)

			// The registration options ask for what protects keys.
			tok := token(t, e, alice)
			var cer api.PasskeyCeremony
			b.call(t, "/v1/passkeys/register", tok, struct{}{}, &cer)
			var o creationOptions
			if err := json.Unmarshal(cer.PublicKey, &o); err != nil {
				t.Fatal(err)
			}
			if o.RP.ID != "hotline.test" || o.User.ID != b64u.EncodeToString([]byte(dev)) || o.User.Name != "alice@state.example" ||
				o.Selection.ResidentKey != "preferred" || o.Selection.UserVerification != "preferred" || o.Attestation != "none" ||
				len(o.Extensions.salt(t)) != 32 {
				t.Errorf("creation options: %s", cer.PublicKey)
			}
			cred, created := auth.create(t, webOrigin, cer.PublicKey)
			var p api.Passkey
			b.call(t, "/v1/passkeys/register/"+cer.Ceremony, tok, withoutSecret(cred), &p)
			if p.Device != dev || !p.CreatedAt.Equal(e.clock.Now()) {
				t.Errorf("registered %+v", p)
			}

			// A new session of the device needs the passkey now; the
			// session it registered with carries on.
			fresh, err := client.Open(alice.Dir(), client.Options{Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fresh.Me(t.Context()); !apierr.Is(err, apierr.PasskeyRequired) {
				t.Errorf("session without unlocking: %v, want passkey_required", err)
			}
			if status, body := b.post(t, "/v1/passkeys/register", tok, struct{}{}); status != http.StatusConflict {
				t.Errorf("registering a second passkey: HTTP %d %s, want conflict", status, body)
			}

			// The client library unlocks for each new session; the PRF
			// output, the wrapping secret, is the same every time.
			var prfs [][]byte
			fresh.SetUnlock(func(ctx context.Context) (string, error) {
				u, out := b.unlock(t, auth, dev)
				prfs = append(prfs, out)
				return u.Unlock, nil
			})
			for range 2 {
				if _, err := fresh.Me(t.Context()); err != nil {
					t.Fatalf("session with a ticket: %v", err)
				}
				if err := fresh.Do(t.Context(), "DELETE", "/v1/auth/session", nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if len(prfs) != 2 {
				t.Fatalf("%d unlocks for two sessions", len(prfs))
			}
			if !bytes.Equal(prfs[0], prfs[1]) || !bytes.Equal(prfs[0], created) || len(prfs[0]) != 32 {
				t.Errorf("PRF outputs differ: %x, %x, at registration %x", prfs[0], prfs[1], created)
			}
			if _, err := client.NewWrapKey(prfs[0]); err != nil {
				t.Errorf("the PRF output is no wrapping secret: %v", err)
			}

			// A headless device without a passkey is unaffected, and
			// ignores a ticket.
			if _, err := admin.Me(t.Context()); err != nil {
				t.Errorf("admin: %v", err)
			}
			u, _ := b.unlock(t, auth, dev)
			if status, body := sessionWith(t, e, admin, u.Unlock); status != http.StatusOK {
				t.Errorf("headless session with a stray ticket: HTTP %d %s", status, body)
			}
		})
	}
}

func TestPasskeyTickets(t *testing.T) {
	e := newEnv(t, "sqlite", withWebOrigins)
	admin := e.admin(t)
	alice, bob := passkeyUser(t, e, admin, "alice"), passkeyUser(t, e, admin, "bob")
	aliceAuth, bobAuth := newSoftAuthenticator(t), newSoftAuthenticator(t)
	bobAuth.backup = true // a synced passkey
	b, bb := newBrowser(e, webOrigin), newBrowser(e, localOrigin)
	b.register(t, aliceAuth, token(t, e, alice))
	bb.register(t, bobAuth, token(t, e, bob))
	aliceDev, bobDev := alice.Profile().Device, bob.Profile().Device

	t.Run("wildcard origin", func(t *testing.T) {
		cer := bb.beginUnlock(t, bobDev)
		var o requestOptions
		json.Unmarshal(cer.PublicKey, &o)
		if o.RPID != "bob.localhost" || o.UserVerification != "preferred" || len(o.AllowCredentials) != 1 {
			t.Errorf("request options: %s", cer.PublicKey)
		}
	})
	t.Run("reuse", func(t *testing.T) {
		u, _ := b.unlock(t, aliceAuth, aliceDev)
		if u.Device != aliceDev || !u.Expires.Equal(e.clock.Now().Add(2*time.Minute)) {
			t.Errorf("unlock = %+v", u)
		}
		if status, body := sessionWith(t, e, alice, u.Unlock); status != http.StatusOK {
			t.Fatalf("session with a ticket: HTTP %d %s", status, body)
		}
		status, body := sessionWith(t, e, alice, u.Unlock)
		wantError(t, "a used ticket", status, body, apierr.PasskeyRequired)
	})
	t.Run("another device's", func(t *testing.T) {
		u, _ := bb.unlock(t, bobAuth, bobDev)
		status, body := sessionWith(t, e, alice, u.Unlock)
		wantError(t, "bob's ticket for alice", status, body, apierr.PasskeyRequired)
		// Refused, it was not consumed.
		if status, body := sessionWith(t, e, bob, u.Unlock); status != http.StatusOK {
			t.Errorf("bob's own ticket after alice tried it: HTTP %d %s", status, body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		u, _ := b.unlock(t, aliceAuth, aliceDev)
		e.clock.Advance(2 * time.Minute)
		status, body := sessionWith(t, e, alice, u.Unlock)
		wantError(t, "an expired ticket", status, body, apierr.PasskeyRequired)
	})
	t.Run("missing or made up", func(t *testing.T) {
		for _, tk := range []string{"", "nonsense", b64u.EncodeToString(make([]byte, 32))} {
			status, body := sessionWith(t, e, alice, tk)
			wantError(t, "ticket "+tk, status, body, apierr.PasskeyRequired)
		}
	})

	// Nothing secret reaches the log: no ticket, salt, challenge, PRF
	// output or credential.
	u, out := b.unlock(t, aliceAuth, aliceDev)
	cer := b.beginUnlock(t, aliceDev)
	var o requestOptions
	json.Unmarshal(cer.PublicKey, &o)
	salt := o.Extensions.salt(t)
	logs := e.logs.String()
	for name, canary := range map[string]string{
		"ticket": u.Unlock, "challenge": o.Challenge, "ceremony": cer.Ceremony,
		"salt": b64u.EncodeToString(salt), "salt (std)": base64.StdEncoding.EncodeToString(salt),
		"PRF output": b64u.EncodeToString(out), "PRF output (std)": base64.StdEncoding.EncodeToString(out),
		"credential ID": b64u.EncodeToString(aliceAuth.credID),
	} {
		if strings.Contains(logs, canary) {
			t.Errorf("the server log holds the %s", name)
		}
	}
	if !strings.Contains(logs, `"msg":"passkey registered","device":"`+aliceDev+`"`) {
		t.Errorf("no log line for alice's passkey")
	}

	// Metrics count ceremonies by outcome, naming no device.
	resp, err := e.httpClient().Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`hotline_passkey_ceremonies_total{step="register",result="ok"} 2`, `hotline_passkey_ceremonies_total{step="unlock",result="ok"}`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, d := range []string{aliceDev, bobDev} {
		if bytes.Contains(m, []byte(d)) {
			t.Errorf("metrics name device %s", d)
		}
	}
}

func TestPasskeyRefusals(t *testing.T) {
	e := newEnv(t, "sqlite", withWebOrigins)
	admin := e.admin(t)
	alice := passkeyUser(t, e, admin, "alice")
	dev := alice.Profile().Device
	b, auth := newBrowser(e, webOrigin), newSoftAuthenticator(t)
	b.register(t, auth, token(t, e, alice))

	t.Run("origin", func(t *testing.T) {
		for _, origin := range []string{"", "null", "https://evil.test", "http://hotline.test", "https://hotline.test:8443",
			"http://localhost:8080", "http://a.b.localhost:8080", "http://bob.localhost:8081", "https://hotline.test/path"} {
			status, body := newBrowser(e, origin).post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: dev})
			wantError(t, "origin "+origin, status, body, apierr.Forbidden)
		}
		// The default port is the same origin.
		newBrowser(e, "https://hotline.test:443").beginUnlock(t, dev)
	})
	t.Run("client data from another origin", func(t *testing.T) {
		// A page elsewhere relays the server's options to the
		// authenticator: the browser names that page's origin.
		cer := b.beginUnlock(t, dev)
		cred, _ := auth.get(t, "https://evil.test", cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "origin in client data", status, body, apierr.PasskeyInvalid)
	})
	t.Run("tampered signature", func(t *testing.T) {
		cer := b.beginUnlock(t, dev)
		cred, _ := auth.get(t, webOrigin, cer.PublicKey)
		sig, _ := b64u.DecodeString(cred.Response["signature"].(string))
		sig[len(sig)-1] ^= 1
		cred.Response["signature"] = b64u.EncodeToString(sig)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "tampered signature", status, body, apierr.PasskeyInvalid)
		// The ceremony is spent: even a good answer is too late.
		cred, _ = auth.get(t, webOrigin, cer.PublicKey)
		status, body = b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "a spent ceremony", status, body, apierr.NotFound)
	})
	t.Run("wrong challenge", func(t *testing.T) {
		cer := b.beginUnlock(t, dev)
		var o map[string]any
		json.Unmarshal(cer.PublicKey, &o)
		o["challenge"] = b64u.EncodeToString([]byte("a challenge of our own choosing"))
		other, _ := json.Marshal(o)
		cred, _ := auth.get(t, webOrigin, other)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "wrong challenge", status, body, apierr.PasskeyInvalid)
	})
	t.Run("another ceremony's answer", func(t *testing.T) {
		first, second := b.beginUnlock(t, dev), b.beginUnlock(t, dev)
		cred, _ := auth.get(t, webOrigin, first.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+second.Ceremony, "", withoutSecret(cred))
		wantError(t, "the first ceremony's answer to the second", status, body, apierr.PasskeyInvalid)
	})
	t.Run("counter going backwards", func(t *testing.T) {
		b.unlock(t, auth, dev)
		auth.counter -= 2 // a clone that fell behind
		cer := b.beginUnlock(t, dev)
		cred, _ := auth.get(t, webOrigin, cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "a counter that went backwards", status, body, apierr.PasskeyInvalid)
		if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"passkey signature counter did not increase: the authenticator may be cloned","device":"`+dev+`"`) {
			t.Errorf("no warning in the log")
		}
		auth.counter += 10 // the real one, further on, still works
		b.unlock(t, auth, dev)
	})
	t.Run("backup eligibility changed", func(t *testing.T) {
		auth.backup = true
		defer func() { auth.backup = false }()
		cer := b.beginUnlock(t, dev)
		cred, _ := auth.get(t, webOrigin, cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "BE flag set after registration", status, body, apierr.PasskeyInvalid)
	})
	t.Run("the PRF output is never sent", func(t *testing.T) {
		cer := b.beginUnlock(t, dev)
		cred, _ := auth.get(t, webOrigin, cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", cred)
		wantError(t, "an assertion with prf.results", status, body, apierr.BadRequest)
		// Refused before the ceremony was taken: it still works.
		var u api.PasskeyUnlock
		b.call(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred), &u)
	})
	t.Run("expired ceremony", func(t *testing.T) {
		cer := b.beginUnlock(t, dev)
		e.clock.Advance(5 * time.Minute)
		cred, _ := auth.get(t, webOrigin, cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "an expired ceremony", status, body, apierr.NotFound)
	})
	t.Run("unknown, without a passkey, revoked", func(t *testing.T) {
		bob := passkeyUser(t, e, admin, "bob")
		carol := passkeyUser(t, e, admin, "carol")
		bb := newBrowser(e, localOrigin)
		bobAuth := newSoftAuthenticator(t)
		bb.register(t, bobAuth, token(t, e, bob))
		pending := bb.beginUnlock(t, bob.Profile().Device)
		if err := admin.Do(t.Context(), "POST", "/v1/devices/"+bob.Profile().Device+"/revoke", nil, nil); err != nil {
			t.Fatal(err)
		}
		unknown := strings.Repeat("a", 16)
		if !identity.ValidDeviceID(unknown) {
			t.Fatal("test device ID is invalid")
		}
		var first []byte
		for name, d := range map[string]string{"unknown": unknown, "without a passkey": carol.Profile().Device, "revoked": bob.Profile().Device} {
			status, body := bb.post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: d})
			wantError(t, name, status, body, apierr.NotFound)
			if first != nil && !bytes.Equal(first, body) {
				t.Errorf("%s: %s, unlike %s", name, body, first)
			}
			first = body
		}
		// A ceremony begun before the revocation does not finish.
		cred, _ := bobAuth.get(t, localOrigin, pending.PublicKey)
		status, body := bb.post(t, "/v1/passkeys/unlock/"+pending.Ceremony, "", withoutSecret(cred))
		wantError(t, "unlocking a device revoked during the ceremony", status, body, apierr.NotFound)
	})
}

func TestPasskeyRegistration(t *testing.T) {
	e := newEnv(t, "sqlite", withWebOrigins)
	admin := e.admin(t)
	b := newBrowser(e, webOrigin)

	t.Run("PRF not enabled", func(t *testing.T) {
		alice := passkeyUser(t, e, admin, "alice")
		tok, dev := token(t, e, alice), alice.Profile().Device
		for _, ext := range []map[string]any{{"prf": map[string]any{"enabled": false}}, {"prf": map[string]any{}}, {}} {
			var cer api.PasskeyCeremony
			b.call(t, "/v1/passkeys/register", tok, struct{}{}, &cer)
			auth := newSoftAuthenticator(t)
			auth.noPRF = true
			cred, _ := auth.create(t, webOrigin, cer.PublicKey)
			cred.ClientExtensionResults = ext
			status, body := b.post(t, "/v1/passkeys/register/"+cer.Ceremony, tok, cred)
			wantError(t, "registering without PRF", status, body, apierr.PasskeyInvalid)
		}
		// Nothing was stored: no unlock, sessions as before, and a
		// passkey with PRF can still be registered.
		status, body := b.post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: dev})
		wantError(t, "unlocking after a refused registration", status, body, apierr.NotFound)
		if status, body := sessionWith(t, e, alice, ""); status != http.StatusOK {
			t.Errorf("session after a refused registration: HTTP %d %s", status, body)
		}
		b.register(t, newSoftAuthenticator(t), tok)
	})
	t.Run("twice", func(t *testing.T) {
		bob := passkeyUser(t, e, admin, "bob")
		tok := token(t, e, bob)
		var first, second api.PasskeyCeremony
		b.call(t, "/v1/passkeys/register", tok, struct{}{}, &first)
		b.call(t, "/v1/passkeys/register", tok, struct{}{}, &second)
		cred, _ := newSoftAuthenticator(t).create(t, webOrigin, first.PublicKey)
		var p api.Passkey
		b.call(t, "/v1/passkeys/register/"+first.Ceremony, tok, withoutSecret(cred), &p)
		cred, _ = newSoftAuthenticator(t).create(t, webOrigin, second.PublicKey)
		status, body := b.post(t, "/v1/passkeys/register/"+second.Ceremony, tok, withoutSecret(cred))
		wantError(t, "finishing a second registration", status, body, apierr.Conflict)
		status, body = b.post(t, "/v1/passkeys/register", tok, struct{}{})
		wantError(t, "beginning a third", status, body, apierr.Conflict)
	})
	t.Run("bound to the device", func(t *testing.T) {
		carol, dave := passkeyUser(t, e, admin, "carol"), passkeyUser(t, e, admin, "dave")
		carolTok, daveTok := token(t, e, carol), token(t, e, dave)
		var cer api.PasskeyCeremony
		b.call(t, "/v1/passkeys/register", carolTok, struct{}{}, &cer)
		cred, _ := newSoftAuthenticator(t).create(t, webOrigin, cer.PublicKey)
		status, body := b.post(t, "/v1/passkeys/register/"+cer.Ceremony, daveTok, withoutSecret(cred))
		wantError(t, "finishing another device's ceremony", status, body, apierr.NotFound)
		status, body = b.post(t, "/v1/passkeys/register/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "finishing without a session", status, body, apierr.Unauthenticated)
		status, body = b.post(t, "/v1/passkeys/unlock/"+cer.Ceremony, "", withoutSecret(cred))
		wantError(t, "finishing a registration as an unlock", status, body, apierr.NotFound)
		var p api.Passkey
		b.call(t, "/v1/passkeys/register/"+cer.Ceremony, carolTok, withoutSecret(cred), &p)
	})
	t.Run("wrong relying party", func(t *testing.T) {
		erin := passkeyUser(t, e, admin, "erin")
		tok := token(t, e, erin)
		var cer api.PasskeyCeremony
		b.call(t, "/v1/passkeys/register", tok, struct{}{}, &cer)
		var o map[string]any
		json.Unmarshal(cer.PublicKey, &o)
		o["rp"] = map[string]any{"id": "evil.test", "name": "x"}
		other, _ := json.Marshal(o)
		cred, _ := newSoftAuthenticator(t).create(t, webOrigin, other)
		status, body := b.post(t, "/v1/passkeys/register/"+cer.Ceremony, tok, withoutSecret(cred))
		wantError(t, "an rpIdHash of another relying party", status, body, apierr.PasskeyInvalid)
	})
	t.Run("pending device", func(t *testing.T) {
		// A browser registers right after enrolling, before approval.
		frank := passkeyUser(t, e, admin, "frank")
		var inv api.Invite
		if err := frank.Do(t.Context(), "POST", "/v1/invites", api.InviteRequest{User: "frank@state.example"}, &inv); err != nil {
			t.Fatal(err)
		}
		second, res := e.enroll(t, inv.Code, "frank's second browser")
		if res.Status != "pending" {
			t.Fatalf("second device is %s", res.Status)
		}
		auth := newSoftAuthenticator(t)
		b.register(t, auth, token(t, e, second))
		u, _ := b.unlock(t, auth, second.Profile().Device)
		if status, body := sessionWith(t, e, second, u.Unlock); status != http.StatusOK {
			t.Errorf("pending device's session: HTTP %d %s", status, body)
		}
	})
}

func TestPasskeyLimits(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		e := newEnv(t, "sqlite")
		admin := e.admin(t)
		b := newBrowser(e, webOrigin)
		status, body := b.post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: admin.Profile().Device})
		wantError(t, "passkeys without web origins", status, body, apierr.Unavailable)
		status, body = b.post(t, "/v1/passkeys/register", token(t, e, admin), struct{}{})
		wantError(t, "registering without web origins", status, body, apierr.Unavailable)
	})
	t.Run("bad configuration", func(t *testing.T) {
		for _, o := range []string{"hotline.test", "ftp://hotline.test", "https://127.0.0.1:8443", "https://[::1]", "https://hotline.test/app", "https://*"} {
			cfg := server.Config{DataDir: t.TempDir(), WebOrigins: []string{o}}
			if _, err := server.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "web origin") {
				t.Errorf("web origin %q: %v", o, err)
			}
		}
	})
	t.Run("pending ceremonies", func(t *testing.T) {
		e := newEnv(t, "sqlite", withWebOrigins, func(c *server.Config) { c.MaxPasskeyCeremonies = 3 })
		admin := e.admin(t)
		alice := passkeyUser(t, e, admin, "alice")
		b, auth := newBrowser(e, webOrigin), newSoftAuthenticator(t)
		b.register(t, auth, token(t, e, alice))
		dev := alice.Profile().Device
		for range 3 {
			b.beginUnlock(t, dev)
		}
		status, body := b.post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: dev})
		wantError(t, "a fourth pending ceremony", status, body, apierr.RateLimited)
		// Expired ones make room.
		e.clock.Advance(5 * time.Minute)
		b.unlock(t, auth, dev)
	})
	t.Run("rate limit", func(t *testing.T) {
		e := newEnv(t, "sqlite", withWebOrigins, func(c *server.Config) { c.AuthRate, c.AuthBurst = 0.001, 2 })
		b := newBrowser(e, webOrigin)
		for i := range 3 {
			status, body := b.post(t, "/v1/passkeys/unlock", "", api.PasskeyUnlockRequest{Device: strings.Repeat("a", 16)})
			want := apierr.NotFound
			if i == 2 {
				want = apierr.RateLimited
			}
			wantError(t, "unlock attempt", status, body, want)
		}
	})
}
