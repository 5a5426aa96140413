package tlog

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"
)

// benchTrees holds the stored hashes of trees of 1e3 and 1e6 leaves
// (about 64 MB), built once.
var benchTrees = sync.OnceValue(func() map[int64]hashStore {
	trees := make(map[int64]hashStore)
	for _, n := range []int64{1e3, 1e6} {
		trees[n] = buildTree(&testing.B{}, n)
	}
	return trees
})

func BenchmarkVerifyInclusion(b *testing.B) {
	for n, store := range benchTrees() {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			root, err := TreeHash(n, store)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, uint64(n)))
			type job struct {
				index int64
				proof []Hash
			}
			jobs := make([]job, 256)
			for i := range jobs {
				index := r.Int64N(n)
				p, err := sumtlog.ProveRecord(n, index, store)
				if err != nil {
					b.Fatal(err)
				}
				jobs[i] = job{index, p}
			}
			i := 0
			for b.Loop() {
				j := jobs[i%len(jobs)]
				if err := VerifyInclusion(j.proof, j.index, n, leafData(j.index), root); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkProveRecord(b *testing.B) {
	for n, store := range benchTrees() {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(2, uint64(n)))
			for b.Loop() {
				if _, err := sumtlog.ProveRecord(n, r.Int64N(n), store); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyConsistency(b *testing.B) {
	for n, store := range benchTrees() {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			root, err := TreeHash(n, store)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, uint64(n)))
			type job struct {
				size  int64
				root  Hash
				proof []Hash
			}
			jobs := make([]job, 256)
			for i := range jobs {
				m := 1 + r.Int64N(n)
				old, err := TreeHash(m, store)
				if err != nil {
					b.Fatal(err)
				}
				p, err := sumtlog.ProveTree(n, m, store)
				if err != nil {
					b.Fatal(err)
				}
				jobs[i] = job{m, old, p}
			}
			i := 0
			for b.Loop() {
				j := jobs[i%len(jobs)]
				if err := VerifyConsistency(j.proof, j.size, j.root, n, root); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkMonitorUpdate measures a client catching up on 1000 typical
// entries: one checkpoint signature, then hashing, parsing and applying
// every entry.
func BenchmarkMonitorUpdate(b *testing.B) {
	const n = 1000
	l, v := newTestLog(b)
	l.append(orgCreate())
	for i := 1; i < n; i++ {
		user := fmt.Sprintf("user%d@org.example", i/4)
		switch i % 4 {
		case 0:
			l.append(Entry{Type: TypeUserCreate, Time: int64(i), Actor: "admin@org.example", User: user, Roles: []string{"staff"}, Clearance: "secret"})
		case 1:
			l.append(enrol(user, "phone", StatusActive))
		case 2:
			l.append(enrol(user, "laptop", StatusPending))
		case 3:
			l.append(approve(user, "laptop", "sec1@org.example", "sec2@org.example"))
		}
	}
	signed, entries := l.update(0, n)
	bytes := 0
	for _, e := range entries {
		bytes += len(e)
	}
	b.SetBytes(int64(bytes))
	for b.Loop() {
		m, err := NewMonitor(testOrigin, v, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Update(signed, entries); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkOpenCheckpoint(b *testing.B) {
	signer, verifier := testKey(b, testOrigin, 1)
	signed, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 123456, Hash: Hash{1}}, signer)
	if err != nil {
		b.Fatal(err)
	}
	v := note.VerifierList(verifier)
	for b.Loop() {
		if _, _, err := OpenCheckpoint(signed, testOrigin, v); err != nil {
			b.Fatal(err)
		}
	}
}
