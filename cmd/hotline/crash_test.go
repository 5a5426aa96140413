package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/identity"
	"hotline/internal/transparency"
)

// Crash test bounds. Everything is bounded in count; the deadlines only
// stop a hung test, they are never what the test asserts.
const (
	crashCycles       = 3
	crashWriters      = 4                // devices writing concurrently
	crashPerWriter    = 2                // goroutines per device
	crashWritesToKill = 200              // successful user creations before SIGKILL
	crashCycleTimeout = 90 * time.Second // per kill-restart cycle
)

// TestCrashConsistency: a server killed with SIGKILL mid-write restarts
// with a consistent database and log. The server runs as a subprocess (this
// test binary answering to "hotline", see TestMain) so it can be killed for
// real. Several devices create users (state changes, whose log entries
// commit in the same transaction) and provoke contact refusals (log
// entries that wait in the integrator's in-memory batch) while another
// device verifies the log. After a fixed number of successful writes the
// server gets SIGKILL and is restarted on the same data directory. Then:
//
//   - transparency.Audit finds nothing wrong, before the restart (replaying
//     entries still pending) and after it;
//   - every user whose creation returned success before the kill exists,
//     in this cycle and every earlier one;
//   - VerifyLog passes for a device that verified the log before the
//     crash: the restarted log extends every checkpoint the old process
//     published (nothing a device saw was rolled back).
//
// Three kill-restart cycles run on the same directory.
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills servers; skipped with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	const org = "state.example"
	res, err := datadir.Init(t.Context(), data, datadir.InitOptions{Org: org, RootKeyPath: filepath.Join(tmp, "root.key")})
	if err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, exe, data, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(t.Context(), crashCycleTimeout)
	admin, _, err := client.Enroll(ctx, client.EnrollOptions{Server: srv.url, Invite: res.Invite.Code,
		ProfileDir: filepath.Join(tmp, "admin"), Fingerprint: res.Fingerprint})
	if err != nil {
		t.Fatalf("enrol admin: %v\n%s", err, srv.logs())
	}
	// A counterpart whom the admins may not contact, and the writers: admins
	// whose first devices the admin's invites activate.
	mustCreateUser(ctx, t, admin, "cp@"+org, "counterpart")
	writerDirs := make([]string, crashWriters)
	for i := range writerDirs {
		inv := mustCreateUser(ctx, t, admin, fmt.Sprintf("writer%d@%s", i, org), "admin")
		writerDirs[i] = filepath.Join(tmp, fmt.Sprintf("writer%d", i))
		_, er, err := client.Enroll(ctx, client.EnrollOptions{Server: srv.url, Invite: inv,
			ProfileDir: writerDirs[i], Fingerprint: res.Fingerprint})
		if err != nil || er.Status != "active" {
			t.Fatalf("enrol writer %d: %v (%s)", i, err, er.Status)
		}
	}
	cancel()

	var durable []string // users whose creation succeeded, over all cycles
	for cycle := range crashCycles {
		ctx, cancel := context.WithTimeout(t.Context(), crashCycleTimeout)
		created, writes, refusals := crashWrites(ctx, t, cycle, srv, writerDirs, filepath.Join(tmp, "admin"))
		durable = append(durable, created...)
		state := srv.wait(ctx, t)
		if !strings.Contains(state, "killed") {
			t.Fatalf("cycle %d: server ended with %q, not by SIGKILL\n%s", cycle, state, srv.logs())
		}
		t.Logf("cycle %d: killed the server after %d successful user creations (%d attempts, %d refusals)", cycle, len(created), writes, refusals)

		// The database as the kill left it: the tree, hashes and checkpoints
		// must already be whole (an integration batch is one transaction).
		checkAudit(ctx, t, data, org, fmt.Sprintf("cycle %d, before restart", cycle), true)

		srv = restartServer(ctx, t, exe, data, srv.addr)
		checkAudit(ctx, t, data, org, fmt.Sprintf("cycle %d, after restart", cycle), false)

		// Every acknowledged write survived, from this cycle and before.
		c, err := client.Open(filepath.Join(tmp, "admin"), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range created {
			var got api.User
			if err := c.Do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(u), nil, &got); err != nil {
				t.Errorf("cycle %d: user %s was created before the crash but is gone: %v", cycle, u, err)
			} else if got.ID != u {
				t.Errorf("cycle %d: GET /v1/users/%s answered %s", cycle, u, got.ID)
			}
		}
		var all []api.User
		if err := c.Do(ctx, http.MethodGet, "/v1/users", nil, &all); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, u := range all {
			have[u.ID] = true
		}
		for _, u := range durable {
			if !have[u] {
				t.Errorf("cycle %d: user %s, created in this or an earlier cycle, is missing from the user list", cycle, u)
			}
		}

		// The admin's device verified checkpoints while the writes ran; the
		// restarted log must extend them.
		rep, err := c.VerifyLog(ctx)
		if err != nil {
			t.Fatalf("cycle %d: log verify after restart: %v (report %+v)", cycle, err, rep)
		}
		t.Logf("cycle %d: log verified at size %d (%d new since the last verification before the crash)", cycle, rep.Size, rep.NewEntries)
		cancel()
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logs())
			return
		}
	}
	// A clean stop leaves a database that audits clean too.
	srv.stop(t)
	checkAudit(t.Context(), t, data, org, "after a clean stop", false)
}

// crashWrites runs the writers and the verifier against srv until
// crashWritesToKill user creations have succeeded, then kills srv with
// SIGKILL while the rest are in flight. It returns the users whose
// creation succeeded, the number of attempts and the number of refusals.
func crashWrites(ctx context.Context, t *testing.T, cycle int, srv *serverProc, writerDirs []string, verifierDir string) (created []string, attempts, refusals int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu                 sync.Mutex
		okCount            atomic.Int64
		nAttempt, nRefused atomic.Int64
		killed             atomic.Bool
		once               sync.Once
		wg                 sync.WaitGroup
	)
	kill := func() {
		once.Do(func() {
			killed.Store(true)
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("kill server: %v", err)
			}
			cancel()
		})
	}
	// fail reports an error unless the server is already dead, when
	// failing requests are the point.
	fail := func(format string, args ...any) {
		if !killed.Load() {
			t.Errorf("cycle %d: "+format, append([]any{cycle}, args...)...)
			kill() // stop the cycle
		}
	}
	// Open every profile before starting any goroutine, so a failure here
	// leaves nothing running.
	writers := make([]*client.Client, len(writerDirs))
	for w, dir := range writerDirs {
		c, err := client.Open(dir, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		writers[w] = c
	}
	v, err := client.Open(verifierDir, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for w, c := range writers {
		for g := range crashPerWriter {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					if i%4 == 3 {
						// A refusal: its log entry waits in memory for the
						// integrator, so the kill may catch a batch.
						err := c.Do(ctx, http.MethodPost, "/v1/contact", api.ContactRequest{To: "cp@state.example"}, nil)
						if apierr.Is(err, apierr.ContactRefused) {
							nRefused.Add(1)
						} else {
							fail("contact: %v", err)
							return
						}
						continue
					}
					u := fmt.Sprintf("u%d-%d-%d-%d@state.example", cycle, w, g, i)
					nAttempt.Add(1)
					var res api.CreateUserResponse
					err := c.Do(ctx, http.MethodPost, "/v1/users", api.CreateUserRequest{User: u, Roles: []string{}}, &res)
					if err != nil {
						fail("create %s: %v", u, err)
						return
					}
					if res.User.ID != u {
						fail("create %s: server answered %s", u, res.User.ID)
						return
					}
					// A success answers a committed transaction, even one
					// racing the signal: it must survive.
					mu.Lock()
					created = append(created, u)
					mu.Unlock()
					if okCount.Add(1) >= crashWritesToKill {
						kill()
					}
				}
			})
		}
	}
	// A verifier follows the log while it grows, so its device holds
	// checkpoints from just before the crash.
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := v.VerifyLog(ctx); err != nil {
				if errors.Is(err, client.ErrLogProblem) {
					t.Errorf("cycle %d: log verify during writes: %v", cycle, err)
					kill()
				} else {
					fail("log verify during writes: %v", err)
				}
				return
			}
		}
	})
	wg.Wait()
	if !killed.Load() {
		t.Fatalf("cycle %d: the writers stopped before %d writes (context: %v)", cycle, crashWritesToKill, ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	return created, nAttempt.Load(), nRefused.Load()
}

// checkAudit runs transparency.Audit on the data directory's store. The
// server may be running: the audit reads one consistent snapshot. With
// crashed set, the directory is as SIGKILL left it: entries committed to
// tlog_pending but not yet integrated may remain, and the audit replays them
// after the tree; any finding at all fails the test.
func checkAudit(ctx context.Context, t *testing.T, data, org, when string, crashed bool) {
	t.Helper()
	d, err := datadir.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	root, err := d.RootVerifier()
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.OpenStore(ctx, datadir.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := transparency.Audit(ctx, st, identity.LogKeyName(org), root)
	if err != nil {
		t.Fatalf("audit %s: %v", when, err)
	}
	if !crashed && rep.Pending != 0 {
		t.Fatalf("audit %s: %d entries still pending", when, rep.Pending)
	}
	t.Logf("audit %s: %d entries (%d pending), %d checkpoints, %d users, %d devices",
		when, rep.Entries, rep.Pending, rep.Checkpoints, rep.Users, rep.Devices)
}

func mustCreateUser(ctx context.Context, t *testing.T, c *client.Client, user string, roles ...string) string {
	t.Helper()
	var res api.CreateUserResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/users", api.CreateUserRequest{User: user, Roles: roles}, &res); err != nil {
		t.Fatalf("create %s: %v", user, err)
	}
	return res.Invite.Code
}

// serverProc is `hotline serve` running as a subprocess.
type serverProc struct {
	cmd  *exec.Cmd
	url  string // https://127.0.0.1:PORT
	addr string // 127.0.0.1:PORT
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, once done
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (s *serverProc) logs() string { return s.out.String() }

// startServer starts `hotline serve` and waits until it has written its
// address; it fails the test if the server exits first.
func startServer(t *testing.T, exe, data, listen string) *serverProc {
	t.Helper()
	s, err := tryStartServer(t, exe, data, listen)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// restartServer starts the server again on the address its devices know.
// The port was just released; should another process have taken it in the
// meantime, try again a bounded number of times.
func restartServer(ctx context.Context, t *testing.T, exe, data, addr string) *serverProc {
	t.Helper()
	var err error
	for range 20 {
		var s *serverProc
		if s, err = tryStartServer(t, exe, data, addr); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restart: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("restart: %v", err)
	return nil
}

func tryStartServer(t *testing.T, exe, data, listen string) (*serverProc, error) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(exe, "serve", "--data", data, "--listen", listen, "--addr-file", addrFile, "--log-level", "warn")
	cmd.Args[0] = "hotline" // TestMain runs the command named by argv[0]
	s := &serverProc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			s.url = strings.TrimSpace(string(b))
			u, err := url.Parse(s.url)
			if err != nil {
				return nil, err
			}
			s.addr = u.Host
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("server exited before listening (%v): %s", s.err, s.logs())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("server did not listen within 30s: %s", s.logs())
		}
	}
}

// wait waits for the process to exit and returns how it ended.
func (s *serverProc) wait(ctx context.Context, t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
	case <-ctx.Done():
		t.Fatalf("server did not exit: %v", ctx.Err())
	}
	if s.err == nil {
		return "exit status 0"
	}
	return s.err.Error()
}

// stop shuts the server down gracefully and checks it exits cleanly.
func (s *serverProc) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if state := s.wait(ctx, t); state != "exit status 0" {
		t.Fatalf("server stopped with %s:\n%s", state, s.logs())
	}
}
