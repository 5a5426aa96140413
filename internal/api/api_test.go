package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		code     apierr.Code // "" for success
	}{
		{"ok", `{"user":"a@b.example","roles":["admin"]}`, ""},
		{"ok with spaces", " \n{\"user\":\"a@b.example\",\"roles\":[]}\n ", ""},
		{"empty", ``, apierr.BadRequest},
		{"truncated", `{"user":`, apierr.BadRequest},
		{"unknown field", `{"user":"a","nope":1}`, apierr.BadRequest},
		{"wrong type", `{"user":1}`, apierr.BadRequest},
		{"array", `[]`, apierr.BadRequest},
		{"trailing value", `{} {}`, apierr.BadRequest},
		{"trailing garbage", `{}x`, apierr.BadRequest},
		{"too large", `{"user":"` + strings.Repeat("x", 100) + `"}`, apierr.TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v api.CreateUserRequest
			err := api.Decode(strings.NewReader(tt.in), 80, &v)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			if !apierr.Is(err, tt.code) {
				t.Fatalf("Decode = %v, want %s", err, tt.code)
			}
		})
	}
}

// The server wraps bodies in http.MaxBytesReader; its error must read as
// too_large, not as malformed JSON.
func TestDecodeMaxBytesReader(t *testing.T) {
	body := `{"user":"` + strings.Repeat("x", 200) + `"}`
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	rec := httptest.NewRecorder()
	rb := http.MaxBytesReader(rec, r.Body, 100)
	var v api.CreateUserRequest
	if err := api.Decode(rb, 1000, &v); !apierr.Is(err, apierr.TooLarge) {
		t.Fatalf("Decode = %v, want too_large", err)
	}
}

// Every request type decodes what it encodes.
func TestRoundTrip(t *testing.T) {
	for _, v := range []any{
		&api.EnrollRequest{Invite: "HL-1", SigKey: "k", KEMKey: "m", Label: "l", Proof: "p"},
		&api.ChallengeRequest{Device: "d"},
		&api.SessionRequest{Device: "d", Nonce: "n", Signature: "s"},
		&api.SessionRequest{Device: "d", Nonce: "n", Signature: "s", Unlock: "u"},
		&api.PasskeyRegisterRequest{},
		&api.PasskeyUnlockRequest{Device: "d"},
		&api.CreateUserRequest{User: "u@o.example", Roles: []string{"admin"}, Clearance: "secret", Compartments: []string{"A"}},
		&api.RolesRequest{Roles: []string{"principal"}},
		&api.ClearanceRequest{Clearance: "secret", Compartments: []string{"A"}},
		&api.InviteRequest{User: "u@o.example"},
		&api.RevokeRequest{Reason: "lost"},
		&api.AddRuleRequest{Rule: "any -> any : deny"},
		&api.ContactRequest{To: "u@o.example"},
		&api.StreamMessage{Type: api.StreamAck, Seq: 7},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.Decode(bytes.NewReader(b), api.MaxBody, v); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder of every request type: it
// must never panic, and every error must be a known *apierr.Error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"user":"a@b.example","roles":[]}`, `{"invite":"HL-0","sig_key":"","kem_key":"","label":"","proof":""}`,
		`{"type":"ack","seq":1}`, `[`, `{"roles":[1]}`, "\x00", `{"a":` + strings.Repeat("[", 100)} {
		f.Add([]byte(s))
	}
	known := map[apierr.Code]bool{}
	for _, c := range apierr.Codes {
		known[c.Code] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&api.EnrollRequest{}, &api.ChallengeRequest{}, &api.SessionRequest{}, &api.CreateUserRequest{},
			&api.RolesRequest{}, &api.ClearanceRequest{}, &api.InviteRequest{}, &api.RevokeRequest{}, &api.AddRuleRequest{},
			&api.ContactRequest{}, &api.StreamMessage{}, &api.PasskeyRegisterRequest{}, &api.PasskeyUnlockRequest{}} {
			err := api.Decode(io.LimitReader(bytes.NewReader(b), 1<<20), 4096, v)
			if err == nil {
				continue
			}
			e := apierr.From(err)
			if !known[e.Code] || e.Code == apierr.Internal {
				t.Fatalf("%T: error %v has code %q", v, err, e.Code)
			}
		}
	})
}
