package transparency_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/store/sqlite"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

const origin = "state.example"

type fixture struct {
	st     *store.Store
	path   string
	logKey identity.OrgKey
	root   identity.OrgKey
	ks     []byte
}

// newFixture opens a SQLite store whose log starts with an org.create entry
// naming a fresh key set, as hotline init leaves it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "h.db")}
	var err error
	if f.st, err = sqlite.Open(t.Context(), f.path, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	f.root, _, _ = identity.GenerateOrgKey(nil, identity.RootKeyName(origin))
	issuer, _, _ := identity.GenerateOrgKey(nil, identity.IssuerKeyName(origin))
	f.logKey, _, _ = identity.GenerateOrgKey(nil, identity.LogKeyName(origin))
	delivery, _, _ := identity.GenerateOrgKey(nil, identity.DeliveryKeyName(origin))
	f.ks, err = identity.KeySet{Org: origin, Serial: 1, Issuer: issuer.VerifierKey, Log: f.logKey.VerifierKey,
		Delivery: delivery.VerifierKey, Issued: time.Now().UTC().Truncate(time.Second)}.Sign(f.root.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(t.Context(), func(tx *store.Tx) error { return tx.PutKeySet(t.Context(), 1, f.ks, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	f.pending(t, tlog.Entry{Type: tlog.TypeOrgCreate, Time: 1, Actor: "system", KeySet: string(f.ks)})
	return f
}

func (f *fixture) pending(t *testing.T, es ...tlog.Entry) {
	t.Helper()
	err := f.st.Update(t.Context(), func(tx *store.Tx) error {
		for _, e := range es {
			b, err := e.Marshal()
			if err != nil {
				return err
			}
			if err := tx.AppendPending(t.Context(), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func refusal(i int) tlog.Entry {
	return tlog.Entry{Type: tlog.TypeContactRefused, Time: 1, Actor: "a@state.example", ActorDevice: "aaaaaaaaaaaaaaaa",
		Target: fmt.Sprintf("u%d@state.example", i), Reason: "contact_refused", Count: 1}
}

func (f *fixture) open(t *testing.T, opts transparency.Options) *transparency.Log {
	t.Helper()
	l, err := transparency.Open(t.Context(), f.st, origin, f.logKey.Signer, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) audit(t *testing.T) *transparency.AuditReport {
	t.Helper()
	rep, err := transparency.Audit(t.Context(), f.st, origin, f.root.Verifier)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

// Pending entries left by a crash are integrated before Open returns.
func TestOpenIntegratesLeftovers(t *testing.T) {
	f := newFixture(t)
	f.pending(t, refusal(1), refusal(2))
	l := f.open(t, transparency.Options{})
	defer l.Close()
	if rep := f.audit(t); rep.Entries != 3 || rep.Pending != 0 {
		t.Fatalf("after Open: %+v", rep)
	}
}

// Concurrent Adds each get a distinct index, every index is covered by a
// verified checkpoint, and the audit passes.
func TestAddConcurrently(t *testing.T) {
	f := newFixture(t)
	var (
		mu      sync.Mutex
		signed  []byte
		batches int
	)
	l := f.open(t, transparency.Options{MaxBatch: 64, OnCheckpoint: func(_ int64, s []byte) {
		mu.Lock()
		signed, batches = s, batches+1
		mu.Unlock()
	}})
	defer l.Close()
	const n = 500
	indexes := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			idx, err := l.Add(refusal(i))(t.Context())
			if err != nil {
				t.Errorf("add %d: %v", i, err)
			}
			indexes[i] = idx
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, idx := range indexes {
		if idx < 1 || idx > n || seen[idx] {
			t.Fatalf("index %d duplicated or out of range", idx)
		}
		seen[idx] = true
	}
	mu.Lock()
	defer mu.Unlock()
	cp, _, err := tlog.OpenCheckpoint(signed, origin, note.VerifierList(f.logKey.Verifier))
	if err != nil || cp.Size != n+1 {
		t.Fatalf("last checkpoint %+v, %v; want size %d", cp, err, n+1)
	}
	if batches < 2 || batches > n {
		t.Errorf("%d batches for %d entries with MaxBatch 64", batches, n)
	}
	// Open integrated the org.create entry: that checkpoint counts too.
	if rep := f.audit(t); rep.Entries != n+1 || rep.Checkpoints != batches {
		t.Errorf("audit: %+v (batches %d)", rep, batches)
	}
}

func TestSyncCloseAndPushback(t *testing.T) {
	f := newFixture(t)
	l := f.open(t, transparency.Options{MaxQueue: 1, Poll: time.Hour})
	f.pending(t, refusal(1))
	l.Kick()
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rep := f.audit(t); rep.Entries != 2 {
		t.Fatalf("Sync returned before the pending entry was integrated: %+v", rep)
	}
	// Invalid entries are refused before they are queued.
	if _, err := l.Add(tlog.Entry{Type: "nonsense"})(t.Context()); err == nil {
		t.Error("Add accepted an invalid entry")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(refusal(2))(t.Context()); !errors.Is(err, transparency.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if err := l.Sync(t.Context()); !errors.Is(err, transparency.ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
}

// A queue over MaxQueue pushes back instead of growing without bound.
func TestPushback(t *testing.T) {
	f := newFixture(t)
	// Hold the integrator in a long write transaction so the queue fills.
	l := f.open(t, transparency.Options{MaxQueue: 2})
	defer l.Close()
	release := make(chan struct{})
	held := make(chan struct{})
	go f.st.Update(context.Background(), func(tx *store.Tx) error {
		close(held)
		<-release
		return nil
	})
	<-held
	var futures []transparency.Future
	pushedBack := false
	for i := range 20 {
		fu := l.Add(refusal(i))
		futures = append(futures, fu)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		_, err := fu(ctx)
		cancel()
		if errors.Is(err, transparency.ErrPushback) {
			pushedBack = true
			break
		}
	}
	close(release)
	if !pushedBack {
		t.Fatal("20 Adds against a blocked integrator with MaxQueue 2 never pushed back")
	}
	for _, fu := range futures[:len(futures)-1] {
		if _, err := fu(t.Context()); err != nil && !errors.Is(err, transparency.ErrPushback) {
			t.Errorf("queued add: %v", err)
		}
	}
}

// The audit names an edited entry, a deleted hash and a forged checkpoint.
func TestAuditFindsTampering(t *testing.T) {
	for _, tt := range []struct{ name, sql string }{
		{"edited entry", `UPDATE tlog_entries SET data = CAST(replace(CAST(data AS TEXT), 'contact_refused', 'contact_refusex') AS BLOB) WHERE idx = 3`},
		{"deleted hash", `DELETE FROM tlog_hashes WHERE idx = 2`},
		{"replaced checkpoint", `UPDATE tlog_checkpoints SET note = (SELECT note FROM tlog_checkpoints ORDER BY size LIMIT 1) WHERE size = (SELECT MAX(size) FROM tlog_checkpoints)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			l := f.open(t, transparency.Options{})
			for i := range 6 {
				if _, err := l.Add(refusal(i))(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			f.audit(t)
			f.st.Close()
			db, err := sqlite.Open(t.Context(), f.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.st = db
			if err := execSQL(f.path, tt.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := transparency.Audit(t.Context(), f.st, origin, f.root.Verifier)
			if !errors.Is(err, transparency.ErrAudit) || len(rep.Findings) == 0 {
				t.Fatalf("audit after %s: %v %+v", tt.name, err, rep)
			}
			t.Logf("findings: %q", rep.Findings)
		})
	}
}
