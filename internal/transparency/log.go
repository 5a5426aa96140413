// Package transparency runs the server side of the transparency log: it
// sequences entries, stores the Merkle tree, and signs checkpoints.
//
// Entries reach the log two ways. A state change (a device enrolled, a
// clearance raised) writes its entry with Tx.AppendPending in the same
// transaction as the change, so the two commit or vanish together, then
// calls Kick. Standalone events (a refused contact) call Add, which batches
// them in memory and returns a Future.
//
// One goroutine, the integrator, moves entries into the tree in batches.
// Each batch is one transaction: lock the head, assign indexes, store
// entries and stored hashes (golang.org/x/mod/sumdb/tlog layout), sign a
// C2SP checkpoint and store it. A crash at any point leaves the database
// either before or after the whole batch. Several nodes on one PostgreSQL
// database may each run an integrator; the head lock makes them take turns.
//
// Shutdown order: Close stops accepting Add, integrates what is queued, then
// returns. Close the Log before closing the store.
package transparency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Errors returned by Add.
var (
	ErrClosed   = errors.New("transparency log closed")
	ErrPushback = errors.New("transparency log busy: too many entries waiting; retry later")
)

// Options tune the integrator. Zero values take the defaults.
type Options struct {
	MaxBatch int           // entries per transaction (default 4096)
	MaxQueue int           // entries waiting in memory before Add pushes back (default 65536)
	Poll     time.Duration // how often to look for pending entries written by other nodes (default 250ms)
	// OnCheckpoint is called, from the integrator goroutine, after each new
	// checkpoint commits. It must not block for long.
	OnCheckpoint func(size int64, signed []byte)
	Now          func() time.Time
	Logger       *slog.Logger
}

// Log is the running integrator.
type Log struct {
	st     *store.Store
	origin string
	signer note.Signer
	opts   Options
	log    *slog.Logger

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards the fields below
	queue   []queued
	syncs   []chan struct{}
	closed  bool
	lastErr error

	frontier map[int64]tlog.Hash // integrator goroutine only: hashes that extend the tree
}

type queued struct {
	data []byte
	done chan result
}

type result struct {
	index int64
	err   error
}

// Future resolves to an entry's index once its checkpoint has committed.
type Future func(ctx context.Context) (int64, error)

// Open starts the integrator. It integrates anything left pending by an
// earlier run before returning, so a restarted server serves a complete log.
func Open(ctx context.Context, st *store.Store, origin string, signer note.Signer, opts Options) (*Log, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 65536
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		st: st, origin: origin, signer: signer, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		frontier: map[int64]tlog.Hash{},
	}
	for {
		n, err := l.integrate(ctx)
		if err != nil {
			return nil, fmt.Errorf("integrate pending log entries: %w", err)
		}
		if n == 0 {
			break
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	go l.run(runCtx)
	return l, nil
}

// Add queues an entry. The Future waits for it to be integrated.
func (l *Log) Add(e tlog.Entry) Future {
	data, err := e.Marshal()
	if err != nil {
		return failed(fmt.Errorf("log entry: %w", err))
	}
	q := queued{data: data, done: make(chan result, 1)}
	l.mu.Lock()
	switch {
	case l.closed:
		err = ErrClosed
	case len(l.queue) >= l.opts.MaxQueue:
		err = ErrPushback
	default:
		l.queue = append(l.queue, q)
	}
	l.mu.Unlock()
	if err != nil {
		return failed(err)
	}
	l.Kick()
	return func(ctx context.Context) (int64, error) {
		select {
		case r := <-q.done:
			q.done <- r // let the future be called again
			return r.index, r.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func failed(err error) Future {
	return func(context.Context) (int64, error) { return 0, err }
}

// Kick tells the integrator that pending entries were committed.
func (l *Log) Kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Sync waits until every entry committed or added before the call is
// integrated and checkpointed.
func (l *Log) Sync(ctx context.Context) error {
	ch := make(chan struct{})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.syncs = append(l.syncs, ch)
	l.mu.Unlock()
	l.Kick()
	select {
	case <-ch:
		l.mu.Lock()
		err := l.lastErr
		l.mu.Unlock()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the integrator after integrating what is queued.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.Kick()
	l.cancel()
	<-l.done
	return nil
}

func (l *Log) run(ctx context.Context) {
	defer close(l.done)
	tick := time.NewTicker(l.opts.Poll)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-l.wake:
		case <-tick.C:
		case <-ctx.Done():
			stopping = true
		}
		l.drain(context.WithoutCancel(ctx), stopping)
		if stopping {
			return
		}
	}
}

// drain integrates until nothing is waiting, then releases Sync callers that
// registered before it started. When stopping, it fails what it cannot write.
func (l *Log) drain(ctx context.Context, stopping bool) {
	l.mu.Lock()
	syncs := l.syncs
	l.syncs = nil
	l.mu.Unlock()
	var err error
	for attempt := 0; ; {
		var n int
		n, err = l.integrate(ctx)
		if err != nil {
			l.log.Error("integrate log entries", "err", err)
			attempt++
			if attempt >= 5 || !stopping && attempt >= 3 {
				break
			}
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			continue
		}
		if n == 0 {
			break
		}
	}
	l.mu.Lock()
	l.lastErr = err
	if stopping {
		for _, q := range l.queue {
			q.done <- result{err: ErrClosed}
		}
		l.queue = nil
		syncs = append(syncs, l.syncs...)
		l.syncs = nil
	}
	l.mu.Unlock()
	for _, ch := range syncs {
		close(ch)
	}
}

// integrate writes one batch and returns how many entries it integrated.
func (l *Log) integrate(ctx context.Context) (int, error) {
	l.mu.Lock()
	take := min(len(l.queue), l.opts.MaxBatch)
	batch := l.queue[:take:take]
	l.mu.Unlock()

	var (
		size, newSize int64
		signed        []byte
		written       map[int64]tlog.Hash
	)
	err := l.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if size, err = tx.LockLogHead(ctx); err != nil {
			return err
		}
		pending, err := tx.Pending(ctx, l.opts.MaxBatch-take)
		if err != nil {
			return err
		}
		if len(pending)+len(batch) == 0 {
			newSize = size
			return nil
		}
		written = map[int64]tlog.Hash{}
		r := l.reader(ctx, tx, written)
		n := size
		// Stored hashes of consecutive entries are consecutive, so the
		// batch's entries and hashes go in with a few multi-row INSERTs.
		var (
			datas     [][]byte
			hs        [][32]byte
			firstHash = sumtlog.StoredHashIndex(0, size)
		)
		appendOne := func(data []byte) error {
			hashes, err := sumtlog.StoredHashes(n, data, r)
			if err != nil {
				return fmt.Errorf("hash entry %d: %w", n, err)
			}
			first := sumtlog.StoredHashIndex(0, n)
			for i, h := range hashes {
				hs = append(hs, h)
				written[first+int64(i)] = h
			}
			datas = append(datas, data)
			n++
			return nil
		}
		ids := make([]int64, len(pending))
		for i, p := range pending {
			ids[i] = p.ID
			if err := appendOne(p.Data); err != nil {
				return err
			}
		}
		if err := tx.DeletePending(ctx, ids); err != nil {
			return err
		}
		for _, q := range batch {
			if err := appendOne(q.data); err != nil {
				return err
			}
		}
		if err := tx.PutEntries(ctx, size, datas); err != nil {
			return err
		}
		if err := tx.PutHashes(ctx, firstHash, hs); err != nil {
			return err
		}
		root, err := tlog.TreeHash(n, r)
		if err != nil {
			return fmt.Errorf("tree hash at %d: %w", n, err)
		}
		signed, err = tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.origin, Size: n, Hash: root}, l.signer)
		if err != nil {
			return fmt.Errorf("sign checkpoint: %w", err)
		}
		if err := tx.PutCheckpoint(ctx, n, signed, l.opts.Now()); err != nil {
			return err
		}
		newSize = n
		return tx.SetLogSize(ctx, n)
	})
	if err != nil {
		return 0, err
	}
	// Committed: resolve futures in order, keep only the frontier.
	l.mu.Lock()
	l.queue = l.queue[take:]
	l.mu.Unlock()
	pendingCount := int(newSize-size) - take
	for i, q := range batch {
		q.done <- result{index: size + int64(pendingCount+i)}
	}
	if newSize == size {
		return 0, nil
	}
	l.keepFrontier(newSize, written)
	if l.opts.OnCheckpoint != nil {
		l.opts.OnCheckpoint(newSize, signed)
	}
	return int(newSize - size), nil
}

// reader reads stored hashes from this batch, the cached frontier, then the
// database.
func (l *Log) reader(ctx context.Context, tx *store.Tx, written map[int64]tlog.Hash) sumtlog.HashReader {
	return sumtlog.HashReaderFunc(func(indexes []int64) ([]sumtlog.Hash, error) {
		out := make([]sumtlog.Hash, len(indexes))
		var missing []int64
		for i, idx := range indexes {
			if h, ok := written[idx]; ok {
				out[i] = h
			} else if h, ok := l.frontier[idx]; ok {
				out[i] = h
			} else {
				missing = append(missing, idx)
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		hs, err := tx.Hashes(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, idx := range indexes {
			if _, ok := written[idx]; ok {
				continue
			}
			if _, ok := l.frontier[idx]; ok {
				continue
			}
			out[i], hs = hs[0], hs[1:]
			written[idx] = out[i] // remember for the rest of the batch
		}
		return out, nil
	})
}

// keepFrontier caches the roots of the perfect subtrees that make up a tree
// of size n: exactly the hashes StoredHashes and TreeHash read next.
func (l *Log) keepFrontier(n int64, written map[int64]tlog.Hash) {
	next := map[int64]tlog.Hash{}
	for level := 0; n>>level > 0; level++ {
		if (n>>level)&1 == 0 {
			continue
		}
		idx := sumtlog.StoredHashIndex(level, n>>level-1)
		if h, ok := written[idx]; ok {
			next[idx] = h
		} else if h, ok := l.frontier[idx]; ok {
			next[idx] = h
		}
	}
	l.frontier = next
}
