package deliver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"time"

	"hotline/internal/apierr"
	"hotline/internal/attach"
	"hotline/internal/org"
	"hotline/internal/store"
)

// Blob limits.
const (
	// BlobChunkSize is the size of every uploaded chunk but the last.
	BlobChunkSize = 1 << 20
	// MaxBlobSize is the largest ciphertext accepted: a 1 GiB attachment.
	MaxBlobSize = 1<<30 + (1<<30/attach.ChunkSize)*attach.Overhead
	// blobUploadWindow is how long an incomplete upload may take.
	blobUploadWindow = 24 * time.Hour
)

// BlobStatus says how far an upload got.
type BlobStatus struct {
	store.Blob
	Present []int // chunk indexes stored
}

// CreateBlob starts an upload of size ciphertext bytes and returns its ID,
// 128 random bits. Until conversations scope downloads to their members, a
// blob ID is a capability: any active device of the organisation that knows
// it may download the (encrypted) blob.
func (s *Service) CreateBlob(ctx context.Context, a org.Actor, size int64) (store.Blob, error) {
	if size < 0 || size > MaxBlobSize {
		return store.Blob{}, apierr.New(apierr.TooLarge, "attachments are at most %d bytes of ciphertext", int64(MaxBlobSize))
	}
	id := make([]byte, 16)
	rand.Read(id)
	now := s.cfg.Now()
	b := store.Blob{ID: id, OwnerDevice: a.Device.ID, Size: size, ChunkSize: BlobChunkSize, CreatedAt: now, ExpiresAt: now.Add(blobUploadWindow)}
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.CreateBlob(ctx, b) })
	return b, storeErr(err)
}

// ownBlob returns a blob the actor is uploading.
func ownBlob(ctx context.Context, tx *store.Tx, a org.Actor, id []byte) (store.Blob, error) {
	b, err := tx.GetBlob(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && b.OwnerDevice != a.Device.ID {
		return store.Blob{}, apierr.New(apierr.NotFound, "no upload with this ID from this device")
	}
	if err != nil {
		return store.Blob{}, err
	}
	if b.Complete {
		return store.Blob{}, apierr.New(apierr.Conflict, "the upload is complete")
	}
	return b, nil
}

// PutChunk stores chunk i of an upload. Repeating a chunk with the same
// bytes is harmless, so an interrupted upload can resend what it is unsure of.
func (s *Service) PutChunk(ctx context.Context, a org.Actor, id []byte, i int, data []byte) error {
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		b, err := ownBlob(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if i < 0 || i >= b.Chunks() {
			return apierr.New(apierr.BadRequest, "chunk %d of an upload of %d chunks", i, b.Chunks())
		}
		if len(data) != b.ChunkLen(i) {
			return apierr.New(apierr.BadRequest, "chunk %d must be %d bytes, not %d", i, b.ChunkLen(i), len(data))
		}
		if err := tx.PutChunk(ctx, id, i, data); errors.Is(err, store.ErrConflict) {
			return apierr.New(apierr.Conflict, "chunk %d was uploaded before with other bytes", i)
		} else if err != nil {
			return err
		}
		return nil
	})
	return storeErr(err)
}

// BlobStatus reports an upload's progress to its uploader, or a complete
// blob's size to anyone.
func (s *Service) BlobStatus(ctx context.Context, a org.Actor, id []byte) (BlobStatus, error) {
	var st BlobStatus
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		b, err := tx.GetBlob(ctx, id)
		if errors.Is(err, store.ErrNotFound) || err == nil && !b.Complete && b.OwnerDevice != a.Device.ID {
			return apierr.New(apierr.NotFound, "no blob with this ID")
		} else if err != nil {
			return err
		}
		st.Blob = b
		st.Present, err = tx.ChunksPresent(ctx, id)
		return err
	})
	return st, storeErr(err)
}

// CompleteBlob checks that every chunk is there and that the ciphertext
// hashes to sum, and makes the blob downloadable.
func (s *Service) CompleteBlob(ctx context.Context, a org.Actor, id, sum []byte) error {
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		b, err := ownBlob(ctx, tx, a, id)
		if err != nil {
			return err
		}
		h := sha256.New()
		for i := range b.Chunks() {
			data, err := tx.Chunk(ctx, id, i)
			if errors.Is(err, store.ErrNotFound) {
				return apierr.New(apierr.Conflict, "chunk %d is missing", i).WithHint("upload it, then complete again")
			} else if err != nil {
				return err
			}
			h.Write(data)
		}
		if string(h.Sum(nil)) != string(sum) {
			return apierr.New(apierr.Conflict, "the uploaded bytes do not hash to the given SHA-256")
		}
		return tx.CompleteBlob(ctx, id, sum)
	})
	return storeErr(err)
}

// GetChunk returns chunk i of a complete blob.
func (s *Service) GetChunk(ctx context.Context, a org.Actor, id []byte, i int) ([]byte, error) {
	var data []byte
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		b, err := tx.GetBlob(ctx, id)
		if errors.Is(err, store.ErrNotFound) || err == nil && !b.Complete {
			return apierr.New(apierr.NotFound, "no complete blob with this ID")
		} else if err != nil {
			return err
		}
		if i < 0 || i >= b.Chunks() {
			return apierr.New(apierr.BadRequest, "chunk %d of a blob of %d chunks", i, b.Chunks())
		}
		data, err = tx.Chunk(ctx, id, i)
		return err
	})
	return data, storeErr(err)
}

// ExpireBlobs deletes uploads not completed in time.
func (s *Service) ExpireBlobs(ctx context.Context) error {
	return s.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.ExpireBlobs(ctx, s.cfg.Now()) })
}
