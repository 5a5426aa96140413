package store

import (
	"context"
	"fmt"
	"strings"
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
	for start := 0; start < len(ids); start += maxRowsPerInsert {
		chunk := ids[start:min(start+maxRowsPerInsert, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		res, err := t.exec(ctx, `DELETE FROM tlog_pending WHERE id IN `+valuesList(1, len(chunk)), args...)
		if err != nil {
			return fmt.Errorf("delete pending entries %d…: %w", chunk[0], err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != int64(len(chunk)) {
			return fmt.Errorf("delete pending entries %d…: %w", chunk[0], ErrNotFound)
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
	for start := 0; start < len(hashes); start += maxRowsPerInsert {
		chunk := hashes[start:min(start+maxRowsPerInsert, len(hashes))]
		args := make([]any, 0, 2*len(chunk))
		for i, h := range chunk {
			args = append(args, first+int64(start+i), h[:])
		}
		if _, err := t.exec(ctx, `INSERT INTO tlog_hashes (idx, hash) VALUES `+valuesList(len(chunk), 2), args...); err != nil {
			return err
		}
	}
	return nil
}

// PutEntries stores entries at consecutive indexes starting at first.
func (t *Tx) PutEntries(ctx context.Context, first int64, data [][]byte) error {
	for start := 0; start < len(data); start += maxRowsPerInsert {
		chunk := data[start:min(start+maxRowsPerInsert, len(data))]
		args := make([]any, 0, 2*len(chunk))
		for i, d := range chunk {
			args = append(args, first+int64(start+i), d)
		}
		if _, err := t.exec(ctx, `INSERT INTO tlog_entries (idx, data) VALUES `+valuesList(len(chunk), 2), args...); err != nil {
			return err
		}
	}
	return nil
}

// maxRowsPerInsert bounds the rows of one multi-row statement. SQLite looks
// numbered parameters ($n) up by name in a list, so a statement's cost grows
// with the square of its parameters: 100 two-column rows is the sweet spot
// measured in docs/benchmarks.md (1000 was 2–8× slower than one row at a
// time); PostgreSQL gains little beyond it.
const maxRowsPerInsert = 100

// valuesList returns "($1, $2), ($3, $4), …" for rows of cols parameters.
func valuesList(rows, cols int) string {
	var b strings.Builder
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", n)
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Hashes returns the stored hashes at the given indexes, in that order.
func (t *Tx) Hashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	found := make(map[int64][32]byte, len(indexes))
	for start := 0; start < len(indexes); start += maxRowsPerInsert {
		chunk := indexes[start:min(start+maxRowsPerInsert, len(indexes))]
		args := make([]any, len(chunk))
		for i, idx := range chunk {
			args[i] = idx
		}
		rows, err := t.query(ctx, `SELECT idx, hash FROM tlog_hashes WHERE idx IN `+valuesList(1, len(chunk)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				idx int64
				b   []byte
			)
			if err := rows.Scan(&idx, &b); err != nil {
				rows.Close()
				return nil, err
			}
			if len(b) != 32 {
				rows.Close()
				return nil, fmt.Errorf("stored hash %d: %d bytes", idx, len(b))
			}
			found[idx] = [32]byte(b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([][32]byte, len(indexes))
	for i, idx := range indexes {
		h, ok := found[idx]
		if !ok {
			return nil, fmt.Errorf("stored hash %d: %w", idx, ErrNotFound)
		}
		out[i] = h
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
