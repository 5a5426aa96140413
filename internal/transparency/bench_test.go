package transparency_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/store/postgres"
	"hotline/internal/store/sqlite"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

// The targets, for the figures in docs/benchmarks.md: at least
// 10,000 appends a second sustained, with at most a second from Add to the
// signed checkpoint that covers the entry.
const (
	targetRate = 10000
	appenders  = 64
	// window bounds the entries each appender has in flight in the
	// saturation run; 64×128 = 8192 is two default batches, so the
	// integrator always has a full batch waiting while one commits.
	window = 128
)

// BenchmarkLogAppend measures the transparency log's Add path end to end:
// batching, hashing, signing and committing a checkpoint. One op is one
// entry. Each backend runs four sub-benchmarks in the same process:
//
//   - baseline: the same rows inserted with Tx.AppendPending, 4096 per
//     transaction, from one goroutine: how fast this database takes rows at
//     all. Divide the other figures by it.
//   - max: 64 appenders, each with up to 128 entries in flight, as fast as
//     the log accepts them (the saturation throughput).
//   - rate=10000: 64 appenders offering 10,000 entries a second in total,
//     open loop, whatever the log's progress (the target's load). If the log
//     keeps up, appends/s is 10,000 and the latency is what a client sees.
//   - pending: the other way in. b.N entries are written with
//     AppendPending before the timer starts, as state changes write them;
//     the op is integrating them (Kick, then Sync until all are in).
//
// Time-to-checkpoint (ttc-p50-ms, ttc-p99-ms, ttc-max-ms) runs from just
// before Add to the moment its Future resolves, which is after the batch
// with its signed checkpoint committed. Run with -benchtime=Nx; the
// rate=10000 runs take N/10,000 seconds.
func BenchmarkLogAppend(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			b.Run("baseline", func(b *testing.B) { benchBaseline(b, backend) })
			b.Run("max", func(b *testing.B) { benchAppend(b, backend, 0) })
			b.Run(fmt.Sprintf("rate=%d", targetRate), func(b *testing.B) { benchAppend(b, backend, targetRate) })
			b.Run("pending", func(b *testing.B) { benchPending(b, backend) })
		})
	}
}

// benchBaseline inserts b.N entries with AppendPending, 4096 per Update.
func benchBaseline(b *testing.B, backend string) {
	st := openStore(b, backend)
	data := sampleEntries(b, 256)
	ctx := b.Context()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(4096, b.N-done)
		err := st.Update(ctx, func(tx *store.Tx) error {
			for i := range n {
				if err := tx.AppendPending(ctx, data[(done+i)%len(data)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// proofLogSize is the size of the log BenchmarkProof proves against.
const proofLogSize = 1 << 16

// BenchmarkProof measures proofs against a log of 65,536 entries held in
// the database, as the server makes them (GET /v1/log/proof/…) and as a
// client checks them:
//
//   - prove-inclusion, prove-consistency: a read transaction that reads
//     the stored hashes the proof needs (tx.Hashes) and builds it.
//   - verify-inclusion: a client checking an inclusion proof against a
//     tree hash it already trusts (pure hashing, no I/O).
//   - verify-inclusion+checkpoint: the same after first verifying the
//     signed checkpoint that carries the tree hash (one Ed25519
//     verification), what a client does for a proof against a checkpoint it
//     has not seen.
func BenchmarkProof(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			st := openStore(b, backend)
			ctx := b.Context()
			k := logSigner(b)
			origin := identity.LogKeyName("state.example")
			l, err := transparency.Open(ctx, st, origin, k.Signer, transparency.Options{MaxQueue: 2 * proofLogSize})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			entries := sampleEntryValues(b, 256)
			for i := range proofLogSize {
				if _, err := l.Add(entries[i%len(entries)])(doneCtx); err != nil && !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
			}
			if err := l.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			var signed []byte
			if err := st.View(ctx, func(tx *store.Tx) (err error) {
				_, signed, err = tx.LatestCheckpoint(ctx)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			verifiers := note.VerifierList(k.Verifier)
			cp, _, err := tlog.OpenCheckpoint(signed, origin, verifiers)
			if err != nil {
				b.Fatal(err)
			}
			if cp.Size != proofLogSize {
				b.Fatalf("checkpoint size %d, want %d", cp.Size, proofLogSize)
			}
			r := mrand.New(mrand.NewPCG(1, 2))

			b.Run("prove-inclusion", func(b *testing.B) {
				for b.Loop() {
					if _, err := prove(ctx, st, func(hr sumtlog.HashReader) ([]tlog.Hash, error) {
						return sumtlog.ProveRecord(cp.Size, r.Int64N(cp.Size), hr)
					}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("prove-consistency", func(b *testing.B) {
				for b.Loop() {
					if _, err := prove(ctx, st, func(hr sumtlog.HashReader) ([]tlog.Hash, error) {
						return sumtlog.ProveTree(cp.Size, 1+r.Int64N(cp.Size), hr)
					}); err != nil {
						b.Fatal(err)
					}
				}
			})

			// Inclusion proofs for 256 random entries, with the entries.
			type job struct {
				index int64
				data  []byte
				proof []tlog.Hash
			}
			jobs := make([]job, 256)
			for i := range jobs {
				j := job{index: r.Int64N(cp.Size)}
				if j.proof, err = prove(ctx, st, func(hr sumtlog.HashReader) ([]tlog.Hash, error) {
					return sumtlog.ProveRecord(cp.Size, j.index, hr)
				}); err != nil {
					b.Fatal(err)
				}
				if err := st.View(ctx, func(tx *store.Tx) error {
					es, err := tx.Entries(ctx, j.index, j.index+1)
					if err == nil {
						j.data = es[0]
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
				jobs[i] = j
			}
			b.Run("verify-inclusion", func(b *testing.B) {
				i := 0
				for b.Loop() {
					j := jobs[i%len(jobs)]
					if err := tlog.VerifyInclusion(j.proof, j.index, cp.Size, j.data, cp.Hash); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run("verify-inclusion+checkpoint", func(b *testing.B) {
				i := 0
				for b.Loop() {
					j := jobs[i%len(jobs)]
					c, _, err := tlog.OpenCheckpoint(signed, origin, verifiers)
					if err != nil {
						b.Fatal(err)
					}
					if err := tlog.VerifyInclusion(j.proof, j.index, c.Size, j.data, c.Hash); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// prove runs fn in a read transaction with a HashReader over the stored
// hashes, as the server's proof endpoints do.
func prove(ctx context.Context, st *store.Store, fn func(sumtlog.HashReader) ([]tlog.Hash, error)) ([]tlog.Hash, error) {
	var p []tlog.Hash
	err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = fn(sumtlog.HashReaderFunc(func(indexes []int64) ([]sumtlog.Hash, error) {
			hs, err := tx.Hashes(ctx, indexes)
			if err != nil {
				return nil, err
			}
			out := make([]sumtlog.Hash, len(hs))
			for i, h := range hs {
				out[i] = h
			}
			return out, nil
		}))
		return err
	})
	return p, err
}

// benchPending integrates b.N entries left by AppendPending.
func benchPending(b *testing.B, backend string) {
	st := openStore(b, backend)
	ctx := b.Context()
	// No polling: the integrator must not start before the timer does.
	l, err := transparency.Open(ctx, st, identity.LogKeyName("state.example"), logSigner(b).Signer, transparency.Options{Poll: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := sampleEntries(b, 256)
	for done := 0; done < b.N; {
		n := min(4096, b.N-done)
		err := st.Update(ctx, func(tx *store.Tx) error {
			for i := range n {
				if err := tx.AppendPending(ctx, data[(done+i)%len(data)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.ResetTimer()
	l.Kick()
	if err := l.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var size int64
	if err := st.View(ctx, func(tx *store.Tx) error {
		size, err = tx.LogSize(ctx)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if size != int64(b.N) {
		b.Fatalf("log size %d after Sync, want %d", size, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// benchAppend adds b.N entries through the log. rate 0 means as fast as
// the log takes them, with a bounded window per appender; otherwise the
// appenders together offer rate entries a second.
func benchAppend(b *testing.B, backend string, rate int) {
	st := openStore(b, backend)
	signer := logSigner(b)
	var checkpoints atomic.Int64
	l, err := transparency.Open(b.Context(), st, identity.LogKeyName("state.example"), signer.Signer, transparency.Options{
		OnCheckpoint: func(int64, []byte) { checkpoints.Add(1) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	entries := sampleEntryValues(b, 256)
	// Warm up: the first batch pays for connection set-up and page cache.
	if _, err := l.Add(entries[0])(b.Context()); err != nil {
		b.Fatal(err)
	}
	checkpoints.Store(0)

	lat := make([][]time.Duration, appenders)
	var (
		pushbacks atomic.Int64
		mu        sync.Mutex
		firstErr  error
	)
	fail := func(err error) {
		mu.Lock()
		firstErr = cmp.Or(firstErr, err)
		mu.Unlock()
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for a := range appenders {
		share := b.N / appenders
		if a < b.N%appenders {
			share++
		}
		lat[a] = make([]time.Duration, 0, share)
		capacity := window
		if rate > 0 {
			capacity = share + 1 // open loop: never block the appender
		}
		type inflight struct {
			f  transparency.Future
			t0 time.Time
		}
		ch := make(chan inflight, capacity)
		wg.Go(func() { // waiter: resolves futures in the order they were added
			for x := range ch {
				if _, err := x.f(context.Background()); err != nil {
					fail(err)
				}
				lat[a] = append(lat[a], time.Since(x.t0))
			}
		})
		wg.Go(func() { // appender
			defer close(ch)
			for k := range share {
				if rate > 0 {
					// Entry number k*appenders+a is due at this offset.
					due := start.Add(time.Duration(float64(k*appenders+a) / float64(rate) * float64(time.Second)))
					if d := time.Until(due); d > time.Millisecond {
						time.Sleep(d)
					}
				}
				t0 := time.Now()
				e := entries[(k*appenders+a)%len(entries)]
				var f transparency.Future
				for {
					f = l.Add(e)
					_, err := f(doneCtx)
					if !errors.Is(err, transparency.ErrPushback) {
						break
					}
					pushbacks.Add(1)
					time.Sleep(time.Millisecond)
				}
				ch <- inflight{f, t0}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(ms(all[len(all)/2]), "ttc-p50-ms")
	b.ReportMetric(ms(all[len(all)*99/100]), "ttc-p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "ttc-max-ms")
	if n := checkpoints.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "entries/checkpoint")
	}
	b.ReportMetric(float64(pushbacks.Load()), "pushbacks")
}

// doneCtx is already cancelled: calling a Future with it returns at once,
// with the Add error if Add failed and ctx.Err() if the entry is queued.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// openStore opens a fresh database: SQLite in a temporary directory, or a
// new schema on HOTLINE_TEST_POSTGRES (skipping if it is unset). It is
// closed, and the schema dropped, when the benchmark ends.
func openStore(b *testing.B, backend string) *store.Store {
	b.Helper()
	ctx := context.Background()
	switch backend {
	case "sqlite":
		st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	case "postgres":
		url := os.Getenv("HOTLINE_TEST_POSTGRES")
		if url == "" {
			b.Skip("HOTLINE_TEST_POSTGRES is not set; set it to a PostgreSQL URL to benchmark PostgreSQL")
		}
		schema := "bench_" + strings.ToLower(rand.Text()[:12])
		st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			st.Close()
			if err := postgres.DropSchema(ctx, url, schema); err != nil {
				b.Errorf("drop schema %s: %v", schema, err)
			}
		})
		return st
	}
	b.Fatalf("unknown backend %q", backend)
	return nil
}

func logSigner(b *testing.B) identity.OrgKey {
	b.Helper()
	k, _, err := identity.GenerateOrgKey(nil, identity.LogKeyName("state.example"))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// sampleEntryValues returns n valid contact.refused entries from distinct
// devices, the kind of entry that reaches the log through Add.
func sampleEntryValues(b *testing.B, n int) []tlog.Entry {
	b.Helper()
	es := make([]tlog.Entry, n)
	now := time.Now().Unix()
	for i := range es {
		k, err := identity.GenerateSigningKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		es[i] = tlog.Entry{Type: tlog.TypeContactRefused, Time: now, Actor: fmt.Sprintf("user%d@state.example", i),
			ActorDevice: k.Public().DeviceID(), Target: "b@state.example", Reason: "contact_refused", Count: 1}
	}
	return es
}

// sampleEntries returns the encodings of sampleEntryValues.
func sampleEntries(b *testing.B, n int) [][]byte {
	b.Helper()
	es := sampleEntryValues(b, n)
	out := make([][]byte, n)
	for i, e := range es {
		var err error
		if out[i], err = e.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
	return out
}
