package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestRedaction is a canary: however a private key is formatted or logged,
// directly or nested in other values, its secret bytes never appear.
func TestRedaction(t *testing.T) {
	f := newFixture(t)
	kemSeed, err := f.kem.key().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	org, orgText, err := GenerateOrgKey(testRand(5), RootKeyName(testOrg))
	if err != nil {
		t.Fatal(err)
	}
	orgRaw, _ := base64.StdEncoding.DecodeString(orgText[strings.LastIndex(orgText, "+")+1:])
	keys := []struct {
		name   string
		key    any
		secret []byte
	}{
		{"SigningKey", f.sig, f.sig.key().Seed()},
		{"CryptoSigner", f.sig.CryptoSigner(), f.sig.key().Seed()},
		{"KEMKey", f.kem, kemSeed},
		{"OrgKey", org, orgRaw[1:]},
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			s := k.secret
			dec := strings.Trim(fmt.Sprint(s[:8]), "[]")
			forbidden := []string{
				base64.StdEncoding.EncodeToString(s)[:16], base64.RawURLEncoding.EncodeToString(s)[:16],
				hex.EncodeToString(s)[:16], strings.ToUpper(hex.EncodeToString(s)[:16]),
				dec, fmt.Sprintf("%#v", s[:8])[8:], string(s[:8]),
			}
			if k.name == "OrgKey" {
				forbidden = append(forbidden, orgText)
			}
			type unexported struct{ k any }
			wrapped := []any{
				k.key, &k.key, []any{k.key}, map[string]any{"k": k.key},
				struct{ K any }{k.key}, unexported{k.key},
			}
			switch key := k.key.(type) { // concrete types in unexported fields
			case SigningKey:
				wrapped = append(wrapped, struct{ k SigningKey }{key}, struct{ k []SigningKey }{[]SigningKey{key}})
			case KEMKey:
				wrapped = append(wrapped, struct{ k KEMKey }{key}, struct{ k *KEMKey }{&key})
			case OrgKey:
				wrapped = append(wrapped, struct{ k OrgKey }{key}, struct{ k map[int]OrgKey }{map[int]OrgKey{1: key}})
			}
			var out bytes.Buffer
			for _, w := range wrapped {
				for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q"} {
					fmt.Fprintf(&out, verb+"\n", w)
				}
				fmt.Fprintln(&out, w)
				for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
					slog.New(h).Info("key", "k", w, slog.Group("g", "k", w))
				}
			}
			if !strings.Contains(out.String(), "REDACTED") {
				t.Fatal("no redacted form in the output")
			}
			for _, sec := range forbidden {
				if i := strings.Index(out.String(), sec); i >= 0 {
					t.Fatalf("output contains the secret (%q) at %d:\n%s", sec, i, out.String())
				}
			}
		})
	}
}
