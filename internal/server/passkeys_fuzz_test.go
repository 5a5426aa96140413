package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/server"
)

// FuzzPasskeyFinish sends arbitrary bodies to the two steps that parse a
// browser's WebAuthn answer (JSON carrying base64url CBOR and authenticator
// data), for a ceremony begun for the purpose or an arbitrary ID. Whatever
// it sends, the server answers with a known 4xx code (bad_request for
// anything that is not JSON), never succeeds, and changes nothing: unless
// the answer says a verification ran and failed (passkey_invalid), the
// ceremony is still there to finish.
func FuzzPasskeyFinish(f *testing.F) {
	e := newEnv(f, "sqlite", withWebOrigins, func(c *server.Config) { c.AuthRate, c.AuthBurst = 1e6, 1e6 })
	admin := e.admin(f)
	alice, bob := passkeyUser(f, e, admin, "alice"), passkeyUser(f, e, admin, "bob")
	aliceTok, bobDev := token(f, e, alice), bob.Profile().Device
	b, auth := newBrowser(e, webOrigin), newSoftAuthenticator(f)
	b.register(f, auth, token(f, e, bob))
	known := map[apierr.Code]bool{}
	for _, c := range apierr.Codes {
		known[c.Code] = true
	}

	// The steps: path, session, how to begin a ceremony, and a stale
	// answer (to another ceremony) that parses and fails to verify.
	type step struct {
		path, token string
		begin       func(t testing.TB) api.PasskeyCeremony
		stale       []byte
	}
	beginRegister := func(t testing.TB) api.PasskeyCeremony {
		var cer api.PasskeyCeremony
		b.call(t, "/v1/passkeys/register", aliceTok, struct{}{}, &cer)
		return cer
	}
	beginUnlock := func(t testing.TB) api.PasskeyCeremony { return b.beginUnlock(t, bobDev) }
	created, _ := newSoftAuthenticator(f).create(f, webOrigin, beginRegister(f).PublicKey)
	asserted, _ := auth.get(f, webOrigin, beginUnlock(f).PublicKey)
	staleCreated, _ := json.Marshal(withoutSecret(created))
	staleAsserted, _ := json.Marshal(withoutSecret(asserted))
	steps := []step{
		{"/v1/passkeys/register/", aliceTok, beginRegister, staleCreated},
		{"/v1/passkeys/unlock/", "", beginUnlock, staleAsserted},
	}

	for i, s := range steps {
		for _, fresh := range []bool{true, false} {
			f.Add(uint8(i), fresh, "x", s.stale)
			f.Add(uint8(i), fresh, "x", []byte(`{}`))
			f.Add(uint8(i), fresh, "x", []byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{}}`))
			f.Add(uint8(i), fresh, "x", bytes.Replace(s.stale, []byte(`"type":"public-key"`), []byte(`"type":"public-key ","x":[`), 1))
			// Broken base64 and broken CBOR inside well-formed JSON.
			var c credentialJSON
			json.Unmarshal(s.stale, &c)
			for _, field := range []string{"attestationObject", "authenticatorData", "clientDataJSON"} {
				if v, ok := c.Response[field].(string); ok {
					for _, mangled := range []string{v[:len(v)/2], v + "!", "o" + v[1:], strings.Repeat("_", len(v))} {
						c2 := c
						c2.Response = map[string]any{}
						for k, x := range c.Response {
							c2.Response[k] = x
						}
						c2.Response[field] = mangled
						body, _ := json.Marshal(c2)
						f.Add(uint8(i), fresh, "x", body)
					}
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, fresh bool, param string, body []byte) {
		s := steps[int(which)%len(steps)]
		id := url.PathEscape(param)
		if fresh {
			id = s.begin(t).Ceremony
		}
		status, answer := b.post(t, s.path+id, s.token, body)
		if status < 400 || status >= 500 {
			t.Fatalf("POST %s %q: HTTP %d %s", s.path, body, status, answer)
		}
		var eb api.ErrorBody
		if err := json.Unmarshal(answer, &eb); err != nil || eb.Error == nil || !known[eb.Error.Code] {
			t.Fatalf("POST %s: HTTP %d with body %s", s.path, status, answer)
		}
		if !json.Valid(body) && len(body) <= api.MaxBody && eb.Error.Code != apierr.BadRequest {
			t.Fatalf("POST %s %q (not JSON): %s, want bad_request", s.path, body, eb.Error.Code)
		}
		if fresh && eb.Error.Code != apierr.PasskeyInvalid {
			// Nothing happened to the ceremony: it still verifies
			// (and refuses) an answer.
			status, answer := b.post(t, s.path+id, s.token, s.stale)
			if status != http.StatusForbidden || !bytes.Contains(answer, []byte(apierr.PasskeyInvalid)) {
				t.Fatalf("after %s for %q, the ceremony answers HTTP %d %s", eb.Error.Code, body, status, answer)
			}
		}
	})
}
