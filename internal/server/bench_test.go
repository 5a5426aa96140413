package server_test

// Server benchmarks: enrolment, login and authenticated requests over real
// HTTPS on 127.0.0.1, against SQLite and (with HOTLINE_TEST_POSTGRES)
// PostgreSQL. Each backend's group starts one server and first measures
// GET /healthz on it, the same-process baseline the other figures are
// divided by in docs/benchmarks.md: a TLS request that reaches the handler
// and pings the database, with no authentication and no query.
//
// Client and server share the machine, so every figure includes the
// client's CPU. All parallel benchmarks run 4×GOMAXPROCS goroutines.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/server"
)

const benchParallelism = 4 // goroutines per GOMAXPROCS in RunParallel

// benchEnv starts a server for benchmarks: logs discarded (request lines
// are Debug, off in production) and no enrolment rate limit.
func benchEnv(b testing.TB, backend string) *env {
	b.Helper()
	return newEnv(b, backend, func(c *server.Config) {
		c.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("HOTLINE_BENCH_LOG") != "" { // the server's log, for a benchmark that misbehaves
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		c.EnrolRate, c.EnrolBurst = 1e9, 1e9
		c.AuthRate, c.AuthBurst = 1e9, 1e9
		c.ChainInterval = 0 // as served: every minute
	})
}

// BenchmarkEnrol measures enrolment: one op is an administrator creating a
// user (POST /v1/users) and that user's first device enrolling with the
// invite (POST /v1/enroll), which the invite vouches for, so it comes back
// active with a credential. Both write the database and append to the
// transparency log in the same transaction.
//
//   - create+enrol: the device's keys are generated before the timer
//     starts; the op is the two requests (and the client's Ed25519 proof).
//   - client.Enroll: the whole client path, as `hotline enroll` runs it:
//     GET /v1/org, key generation, writing the profile, the request.
//   - keygen: the device key generation alone (Ed25519 + ML-KEM-768+X25519),
//     for reference.
func BenchmarkEnrol(b *testing.B) {
	for _, backend := range backends() {
		b.Run(backend, func(b *testing.B) {
			e := benchEnv(b, backend)
			admin := e.admin(b)
			rc := newRawClient(b, e, nil)
			b.Run("healthz", func(b *testing.B) { benchHealthz(b, rc) })
			tok, err := rc.login(b.Context(), e.srv.Org(), admin.Profile().Device, readDeviceKeys(b, admin))
			if err != nil {
				b.Fatal(err)
			}
			var users atomic.Int64
			// newUser creates a user as the administrator and returns the
			// invite. (addUser calls Fatal, which only the benchmark's own
			// goroutine may.)
			newUser := func(ctx context.Context) (string, error) {
				var res api.CreateUserResponse
				req := api.CreateUserRequest{User: fmt.Sprintf("bench%d@%s", users.Add(1), e.srv.Org()), Roles: []string{}}
				err := rc.call(ctx, http.MethodPost, "/v1/users", tok, req, &res)
				return res.Invite.Code, err
			}
			b.Run("create+enrol", func(b *testing.B) {
				keys := make([]deviceKeys, b.N)
				for i := range keys {
					keys[i] = newDeviceKeys(b)
				}
				var next atomic.Int64
				b.SetParallelism(benchParallelism)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := keys[next.Add(1)-1]
						invite, err := newUser(b.Context())
						if err != nil {
							b.Error(err)
							return
						}
						res, err := rc.enrol(b.Context(), e.srv.Org(), invite, k)
						if err != nil {
							b.Error(err)
							return
						}
						if res.Status != "active" || res.Credential == "" {
							b.Errorf("enrolled as %q, credential %t; want active with a credential", res.Status, res.Credential != "")
							return
						}
					}
				})
			})
			b.Run("client.Enroll", func(b *testing.B) {
				dir := b.TempDir()
				var next atomic.Int64
				b.SetParallelism(benchParallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						invite, err := newUser(b.Context())
						if err != nil {
							b.Error(err)
							return
						}
						_, _, err = client.Enroll(b.Context(), client.EnrollOptions{
							Server: e.url, Invite: invite, Fingerprint: e.fp, Label: "bench", Now: e.clock.Now,
							ProfileDir: filepath.Join(dir, fmt.Sprint(next.Add(1))),
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
	b.Run("keygen", func(b *testing.B) {
		for b.Loop() {
			newDeviceKeys(b)
		}
	})
}

// BenchmarkAuthenticatedRequest measures GET /v1/me with an open session:
// the server looks the session, device and user up in one read
// transaction and answers with the device's credential.
//
//   - me: through client.Do, as the CLI and bots call the API; the client
//     also re-verifies its stored credential on every call.
//   - me-raw: the same request with a bare HTTP client and the token, so
//     only the server's work (and the HTTP round trip) is measured.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	for _, backend := range backends() {
		b.Run(backend, func(b *testing.B) {
			e := benchEnv(b, backend)
			admin := e.admin(b)
			if _, err := admin.Me(b.Context()); err != nil { // opens the session
				b.Fatal(err)
			}
			rc := newRawClient(b, e, nil)
			b.Run("healthz", func(b *testing.B) { benchHealthz(b, rc) })
			b.Run("me", func(b *testing.B) {
				b.SetParallelism(benchParallelism)
				b.RunParallel(func(pb *testing.PB) {
					var me api.Me
					for pb.Next() {
						if err := admin.Do(b.Context(), http.MethodGet, "/v1/me", nil, &me); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("me-raw", func(b *testing.B) {
				k := readDeviceKeys(b, admin)
				tok, err := rc.login(b.Context(), e.srv.Org(), admin.Profile().Device, k)
				if err != nil {
					b.Fatal(err)
				}
				b.SetParallelism(benchParallelism)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					var me api.Me
					for pb.Next() {
						if err := rc.call(b.Context(), http.MethodGet, "/v1/me", tok, nil, &me); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkLogin measures opening a session: POST /v1/auth/challenge (a
// write: the nonce is stored), the client's Ed25519 signature, then POST
// /v1/auth/session (a write: the challenge is used up and the session
// stored). The server allows 60 challenges a minute per client address, so
// the benchmark spreads its clients over many loopback addresses
// (127.1.0.0/16), each used for at most 50 logins; the TLS handshakes this
// costs are part of the figure.
func BenchmarkLogin(b *testing.B) {
	for _, backend := range backends() {
		b.Run(backend, func(b *testing.B) {
			e := benchEnv(b, backend)
			admin := e.admin(b)
			dev, k := admin.Profile().Device, readDeviceKeys(b, admin)
			rc := newRawClient(b, e, nil)
			b.Run("healthz", func(b *testing.B) { benchHealthz(b, rc) })
			var addrs atomic.Int64
			b.Run("challenge+session", func(b *testing.B) {
				b.SetParallelism(benchParallelism)
				b.RunParallel(func(pb *testing.PB) {
					var c *rawClient
					for i := 0; pb.Next(); i++ {
						if i%50 == 0 {
							if c != nil {
								c.http.CloseIdleConnections()
							}
							c = newRawClient(b, e, loopbackAddr(addrs.Add(1)))
						}
						if _, err := c.login(b.Context(), e.srv.Org(), dev, k); err != nil {
							b.Error(err)
							return
						}
					}
					if c != nil {
						c.http.CloseIdleConnections()
					}
				})
			})
		})
	}
}

// benchHealthz is the baseline: GET /healthz, in parallel.
func benchHealthz(b *testing.B, rc *rawClient) {
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		var out map[string]string
		for pb.Next() {
			if err := rc.call(b.Context(), http.MethodGet, "/healthz", "", nil, &out); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// rawClient makes API calls without internal/client's bookkeeping.
type rawClient struct {
	http *http.Client
	base string
}

// newRawClient returns a client that pins the env's certificate and, if
// local is set, connects from that address.
func newRawClient(b *testing.B, e *env, local net.Addr) *rawClient {
	b.Helper()
	t := http.DefaultTransport.(*http.Transport).Clone() // as internal/client does
	t.MaxIdleConnsPerHost = 64                           // keep one connection per goroutine
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || datadir.Fingerprint(cs.PeerCertificates[0].Raw) != e.fp {
				return fmt.Errorf("server certificate does not match the pinned fingerprint %s", e.fp)
			}
			return nil
		},
	}
	if local != nil {
		d := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
		t.DialContext = d.DialContext
	}
	return &rawClient{http: &http.Client{Transport: t, Timeout: 30 * time.Second}, base: e.url}
}

func (c *rawClient) call(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	return json.Unmarshal(data, out)
}

// login opens a session for device dev, whose signing key is k.sig.
func (c *rawClient) login(ctx context.Context, org, dev string, k deviceKeys) (string, error) {
	var ch api.ChallengeResponse
	if err := c.call(ctx, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Device: dev}, &ch); err != nil {
		return "", err
	}
	nonce, err := base64.StdEncoding.DecodeString(ch.Nonce)
	if err != nil {
		return "", err
	}
	req := api.SessionRequest{Device: dev, Nonce: ch.Nonce,
		Signature: base64.StdEncoding.EncodeToString(k.sig.Sign(identity.AuthChallengeMessage(org, dev, nonce)))}
	var s api.SessionResponse
	if err := c.call(ctx, http.MethodPost, "/v1/auth/session", "", req, &s); err != nil {
		return "", err
	}
	return s.Token, nil
}

// enrol enrols a device with keys k using invite.
func (c *rawClient) enrol(ctx context.Context, org, invite string, k deviceKeys) (api.EnrollResponse, error) {
	var res api.EnrollResponse
	code, err := identity.NormalizeInviteCode(invite)
	if err != nil {
		return res, err
	}
	hash, err := identity.HashInviteCode(code)
	if err != nil {
		return res, err
	}
	kem := k.kem.PublicBytes()
	req := api.EnrollRequest{
		Invite: code, SigKey: k.sig.Public().String(), KEMKey: base64.StdEncoding.EncodeToString(kem), Label: "bench",
		Proof: base64.StdEncoding.EncodeToString(k.sig.Sign(identity.EnrolMessage(org, hash, k.sig.Public(), kem))),
	}
	return res, c.call(ctx, http.MethodPost, "/v1/enroll", "", req, &res)
}

type deviceKeys struct {
	sig identity.SigningKey
	kem identity.KEMKey
}

func newDeviceKeys(b *testing.B) deviceKeys {
	b.Helper()
	sig, err := identity.GenerateSigningKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	kem, err := identity.GenerateKEMKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	return deviceKeys{sig, kem}
}

func readDeviceKeys(b *testing.B, c *client.Client) deviceKeys {
	b.Helper()
	sig, kem, err := identity.ReadDeviceKeys(c.Dir())
	if err != nil {
		b.Fatal(err)
	}
	return deviceKeys{sig, kem}
}

// loopbackAddr returns the n'th address in 127.1.0.0/16 (all of 127/8
// reaches the loopback interface on Linux).
func loopbackAddr(n int64) net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 1, byte(n>>8), byte(n))}
}
