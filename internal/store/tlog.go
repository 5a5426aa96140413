package store

import (
	"context"
	"fmt"
	"time"
)

// The transparency log lives in four tables. A state change writes its log
// entry into tlog_pending in the same transaction, so a change and its entry
// commit or vanish together. The integrator (internal/transparency) moves
// pending entries into tlog_entries in order, stores the Merkle tree's
// hashes (golang.org/x/mod/sumdb/tlog's stored-hash layout) in tlog_hashes,
// advances tlog_head and stores the signed checkpoint, all in one
// transaction.

// AppendPending queues a log entry for integration.
func (t *Tx) AppendPending(ctx context.Context, data []byte) error {
	_, err := t.exec(ctx, `INSERT INTO tlog_pending (data) VALUES ($1)`, data)
	return err
}

// PendingEntry is an entry waiting to be integrated.
type PendingEntry struct {
	ID   int64
	Data []byte
}

// Pending returns up to limit pending entries in the order they were queued.
func (t *Tx) Pending(ctx context.Context, limit int) ([]PendingEntry, error) {
	rows, err := t.query(ctx, `SELECT id, data FROM tlog_pending ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ps []PendingEntry
	for rows.Next() {
		var p PendingEntry
		if err := rows.Scan(&p.ID, &p.Data); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// DeletePending removes integrated entries. It deletes by ID, not by range:
// on PostgreSQL a lower ID can commit after a higher one was integrated.
func (t *Tx) DeletePending(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if err := t.execOne(ctx, `DELETE FROM tlog_pending WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete pending entry %d: %w", id, err)
		}
	}
	return nil
}

// LockLogHead returns the log's size and locks the head row until the
// transaction ends, so only one integrator (on any node) extends the log at
// a time.
func (t *Tx) LockLogHead(ctx context.Context) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `SELECT size FROM tlog_head WHERE id = 1`+t.forUpdate()).Scan(&n)
	return n, err
}

// LogSize returns the number of integrated entries.
func (t *Tx) LogSize(ctx context.Context) (int64, error) {
	var n int64
	err := t.queryRow(ctx, `SELECT size FROM tlog_head WHERE id = 1`).Scan(&n)
	return n, err
}

// SetLogSize advances the head.
func (t *Tx) SetLogSize(ctx context.Context, n int64) error {
	return t.execOne(ctx, `UPDATE tlog_head SET size = $1 WHERE id = 1`, n)
}

// PutEntry stores the entry at index idx.
func (t *Tx) PutEntry(ctx context.Context, idx int64, data []byte) error {
	_, err := t.exec(ctx, `INSERT INTO tlog_entries (idx, data) VALUES ($1, $2)`, idx, data)
	return err
}

// Entries returns the entries with start <= index < end.
func (t *Tx) Entries(ctx context.Context, start, end int64) ([][]byte, error) {
	rows, err := t.query(ctx, `SELECT idx, data FROM tlog_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, start, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([][]byte, 0, end-start)
	for rows.Next() {
		var (
			idx  int64
			data []byte
		)
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, err
		}
		if idx != start+int64(len(out)) {
			return nil, fmt.Errorf("log entry %d missing", start+int64(len(out)))
		}
		out = append(out, data)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if int64(len(out)) != end-start {
		return nil, fmt.Errorf("log entry %d missing", start+int64(len(out)))
	}
	return out, nil
}

// PutHashes stores Merkle tree hashes at consecutive stored-hash indexes
// starting at first.
func (t *Tx) PutHashes(ctx context.Context, first int64, hashes [][32]byte) error {
	for i, h := range hashes {
		if _, err := t.exec(ctx, `INSERT INTO tlog_hashes (idx, hash) VALUES ($1, $2)`, first+int64(i), h[:]); err != nil {
			return err
		}
	}
	return nil
}

// Hashes returns the stored hashes at the given indexes, in that order.
func (t *Tx) Hashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	out := make([][32]byte, len(indexes))
	for i, idx := range indexes {
		var b []byte
		if err := t.queryRow(ctx, `SELECT hash FROM tlog_hashes WHERE idx = $1`, idx).Scan(&b); err != nil {
			return nil, fmt.Errorf("stored hash %d: %w", idx, notFound(err))
		}
		if len(b) != 32 {
			return nil, fmt.Errorf("stored hash %d: %d bytes", idx, len(b))
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// PutCheckpoint stores the signed checkpoint for a tree size.
func (t *Tx) PutCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO tlog_checkpoints (size, note, created_at) VALUES ($1, $2, $3)`, size, note, unix(at))
	return err
}

// LatestCheckpoint returns the checkpoint of the largest tree.
func (t *Tx) LatestCheckpoint(ctx context.Context) (size int64, note []byte, err error) {
	err = t.queryRow(ctx, `SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &note)
	return size, note, notFound(err)
}

// Checkpoints calls fn for every stored checkpoint in size order.
func (t *Tx) Checkpoints(ctx context.Context, fn func(size int64, note []byte) error) error {
	rows, err := t.query(ctx, `SELECT size, note FROM tlog_checkpoints ORDER BY size`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			size int64
			note []byte
		)
		if err := rows.Scan(&size, &note); err != nil {
			return err
		}
		if err := fn(size, note); err != nil {
			return err
		}
	}
	return rows.Err()
}
