package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/server"
	"hotline/internal/store/postgres"
)

// clock is a settable clock shared by a test's server and clients.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink tests can scan for canaries.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is an organisation with a running server on 127.0.0.1:0.
type env struct {
	dir, url, fp string
	invite       string // the first admin's invite
	srv          *server.Server
	clock        *clock
	logs         *syncBuffer
	database     string // PostgreSQL URL, or "" for SQLite
	addr         string // the listener's address, kept across restarts
	cfg          server.Config
	stop         func() // shuts the current server down
}

type envOption func(*server.Config)

// backend is "sqlite" or "postgres".
func newEnv(t testing.TB, backend string, opts ...envOption) *env {
	t.Helper()
	return newEnvAt(t, backend, "", opts...)
}

// newEnvAt is newEnv with the server listening on addr ("": 127.0.0.1:0).
func newEnvAt(t testing.TB, backend, addr string, opts ...envOption) *env {
	t.Helper()
	e := &env{dir: filepath.Join(t.TempDir(), "data"), clock: newClock(), logs: &syncBuffer{}, addr: addr}
	if backend == "postgres" {
		e.database = pgDatabase(t)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := datadir.Init(t.Context(), e.dir, datadir.InitOptions{Org: "state.example", Database: e.database, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.invite = res.Invite.Code
	// Tests commit message chains to the log when they mean to
	// (Server.CommitChains), not when a minute has passed.
	e.cfg = server.Config{DataDir: e.dir, Logger: log, Now: e.clock.Now, EnrolRate: 1000, EnrolBurst: 1000, ChainInterval: -1}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start(t)
	return e
}

// start runs the server (again), on the address it had before if it ran
// already, so that clients find it there.
func (e *env) start(t testing.TB) {
	t.Helper()
	srv, err := server.New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:0"
	if e.addr != "" {
		addr = e.addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.srv, e.fp = srv, srv.Fingerprint()
	e.url = "https://" + ln.Addr().String()
	if e.cfg.InsecureHTTP {
		e.url = "http://" + ln.Addr().String()
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	e.stop = stop
}

// restart stops the server and starts it again on the same data.
func (e *env) restart(t testing.TB) {
	t.Helper()
	e.stop()
	e.start(t)
}

// httpClient makes raw requests to the test server, pinning its certificate.
func (e *env) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if datadir.Fingerprint(cs.PeerCertificates[0].Raw) != e.fp {
				return errors.New("not the test server's certificate")
			}
			return nil
		},
	}}}
}

// enroll enrols a new device with an invite into a fresh profile.
func (e *env) enroll(t testing.TB, invite, label string) (*client.Client, api.EnrollResponse) {
	t.Helper()
	c, res, err := client.Enroll(t.Context(), client.EnrollOptions{
		Server: e.url, Invite: invite, ProfileDir: filepath.Join(t.TempDir(), "profile"), Fingerprint: e.fp, Label: label, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatalf("enroll %s: %v", label, err)
	}
	return c, res
}

// admin enrols the first administrator's device.
func (e *env) admin(t testing.TB) *client.Client {
	t.Helper()
	c, _ := e.enroll(t, e.invite, "admin laptop")
	return c
}

// addUser creates a user through admin and returns the invite code.
func addUser(t testing.TB, admin *client.Client, name string, roles ...string) string {
	t.Helper()
	var res api.CreateUserResponse
	if roles == nil {
		roles = []string{}
	}
	if err := admin.Do(t.Context(), "POST", "/v1/users", api.CreateUserRequest{User: name + "@state.example", Roles: roles}, &res); err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
	return res.Invite.Code
}

// pgDatabase returns a PostgreSQL URL whose search path is a fresh schema,
// dropped at the end of the test; it skips the test if
// HOTLINE_TEST_POSTGRES is unset.
func pgDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("HOTLINE_TEST_POSTGRES")
	if base == "" {
		t.Skip("HOTLINE_TEST_POSTGRES is not set; .ci/run sets it to the local PostgreSQL")
	}
	schema := fmt.Sprintf("t_%x", rand.Text()[:12])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), base, schema); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// follow opens c's event stream and returns once the server says it is
// ready; the channel receives how the stream ended.
func follow(t *testing.T, c *client.Client) <-chan error {
	t.Helper()
	ended := make(chan error, 1)
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		ended <- c.Events(t.Context(), func(m api.StreamMessage) error {
			if m.Type == api.StreamReady {
				once.Do(func() { close(ready) })
			}
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-ended:
		t.Fatalf("event stream of %s ended before it opened: %v", c.Profile().Device, err)
	}
	return ended
}

// revokedStream fails the test unless the stream ends, within 15 seconds,
// because its device was revoked or its user disabled.
func revokedStream(t *testing.T, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		if !errors.Is(err, client.ErrStreamRevoked) && !apierr.Is(err, apierr.DeviceRevoked) && !apierr.Is(err, apierr.UserDisabled) {
			t.Errorf("stream ended with %v, want revocation", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream stayed open")
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backends returns the backends to run a test on.
func backends() []string { return []string{"sqlite", "postgres"} }

// metricsText returns the server's /metrics page.
func (e *env) metricsText(t testing.TB) string {
	t.Helper()
	resp, err := e.httpClient().Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noCanary stops the server and fails the test if canary is in its
// metrics, its log, any file of its data directory (the SQLite database
// with its -wal and -shm files) or, on PostgreSQL, a dump of its schema,
// which must mention table to show the dump holds the data.
func (e *env) noCanary(t *testing.T, canary, table string) {
	t.Helper()
	if strings.Contains(e.metricsText(t), canary) {
		t.Error("canary in the metrics")
	}
	e.stop()
	scanned := 0
	err := filepath.Walk(e.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("canary in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.database == "" && scanned < 3 {
		t.Errorf("scanned only %d files", scanned)
	}
	if e.database != "" {
		dump, err := exec.Command("pg_dump", e.pgDumpArgs(t)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_dump: %v\n%s", err, dump)
		}
		if !bytes.Contains(dump, []byte(table)) {
			t.Fatalf("the dump holds no %s:\n%.2000s", table, dump)
		}
		if bytes.Contains(dump, []byte(canary)) {
			t.Error("canary in the PostgreSQL dump")
		}
	}
	if strings.Contains(e.logs.String(), canary) {
		t.Error("canary in the server log")
	}
}
