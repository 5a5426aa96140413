package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Blob is an attachment's ciphertext, uploaded in chunks. The store never
// holds a key to it.
type Blob struct {
	ID          []byte
	OwnerDevice string
	Size        int64
	ChunkSize   int
	SHA256      []byte // set when complete
	Complete    bool
	CreatedAt   time.Time
	ExpiresAt   time.Time // incomplete uploads are deleted after this
}

// Chunks returns how many chunks a blob of this size has.
func (b Blob) Chunks() int {
	if b.Size == 0 {
		return 1
	}
	return int((b.Size + int64(b.ChunkSize) - 1) / int64(b.ChunkSize))
}

// ChunkLen returns the size chunk i must have.
func (b Blob) ChunkLen(i int) int {
	if i == b.Chunks()-1 {
		return int(b.Size - int64(i)*int64(b.ChunkSize))
	}
	return b.ChunkSize
}

// CreateBlob records a new, empty blob.
func (t *Tx) CreateBlob(ctx context.Context, b Blob) error {
	return t.insertNew(ctx, `INSERT INTO blobs (id, owner_device, size, chunk_size, complete, created_at, expires_at)
		VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT DO NOTHING`,
		b.ID, b.OwnerDevice, b.Size, b.ChunkSize, unix(b.CreatedAt), unix(b.ExpiresAt))
}

// GetBlob returns a blob's record.
func (t *Tx) GetBlob(ctx context.Context, id []byte) (Blob, error) {
	b := Blob{ID: id}
	var complete int
	var created, expires int64
	err := t.queryRow(ctx, `SELECT owner_device, size, chunk_size, sha256, complete, created_at, expires_at FROM blobs WHERE id = $1`+t.forUpdate(), id).
		Scan(&b.OwnerDevice, &b.Size, &b.ChunkSize, &b.SHA256, &complete, &created, &expires)
	b.Complete, b.CreatedAt, b.ExpiresAt = complete == 1, fromUnix(created), fromUnix(expires)
	return b, notFound(err)
}

// PutChunk stores chunk i of a blob. Storing the same bytes again is a
// no-op (uploads resume); different bytes are ErrConflict.
func (t *Tx) PutChunk(ctx context.Context, id []byte, i int, data []byte) error {
	err := t.insertNew(ctx, `INSERT INTO blob_chunks (blob_id, idx, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, i, data)
	if !errors.Is(err, ErrConflict) {
		return err
	}
	prev, err := t.Chunk(ctx, id, i)
	if err != nil {
		return err
	}
	if !bytes.Equal(prev, data) {
		return fmt.Errorf("%w: chunk %d was uploaded with other bytes", ErrConflict, i)
	}
	return nil
}

// Chunk returns chunk i of a blob.
func (t *Tx) Chunk(ctx context.Context, id []byte, i int) ([]byte, error) {
	var data []byte
	err := t.queryRow(ctx, `SELECT data FROM blob_chunks WHERE blob_id = $1 AND idx = $2`, id, i).Scan(&data)
	return data, notFound(err)
}

// ChunksPresent returns the indexes of a blob's stored chunks, in order.
func (t *Tx) ChunksPresent(ctx context.Context, id []byte) ([]int, error) {
	rows, err := t.query(ctx, `SELECT idx FROM blob_chunks WHERE blob_id = $1 ORDER BY idx`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []int{}
	for rows.Next() {
		var i int
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// CompleteBlob marks a blob complete with its ciphertext hash.
func (t *Tx) CompleteBlob(ctx context.Context, id, sha []byte) error {
	return t.execOne(ctx, `UPDATE blobs SET complete = 1, sha256 = $1 WHERE id = $2 AND complete = 0`, sha, id)
}

// ExpireBlobs deletes incomplete blobs past their deadline.
func (t *Tx) ExpireBlobs(ctx context.Context, now time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM blob_chunks WHERE blob_id IN (SELECT id FROM blobs WHERE complete = 0 AND expires_at <= $1)`, unix(now)); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM blobs WHERE complete = 0 AND expires_at <= $1`, unix(now))
	return err
}
