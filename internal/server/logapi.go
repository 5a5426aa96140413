package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	sumtlog "golang.org/x/mod/sumdb/tlog"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	var signed []byte
	err := s.store.View(r.Context(), func(tx *store.Tx) (err error) {
		_, signed, err = tx.LatestCheckpoint(r.Context())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.NotFound, "the log has no checkpoint yet")
	} else if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.Checkpoint{Checkpoint: string(signed)})
}

// logSize returns the size of the latest checkpointed tree: the entries and
// proofs served never go past what a signed checkpoint covers.
func logSize(ctx context.Context, tx *store.Tx) (int64, error) {
	n, _, err := tx.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return n, err
}

func (s *Server) entries(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	start, err := queryInt(r, "start")
	if err != nil {
		return err
	}
	end, err := queryInt(r, "end")
	if err != nil {
		return err
	}
	if start < 0 || end <= start {
		return apierr.New(apierr.BadRequest, "want 0 <= start < end")
	}
	end = min(end, start+api.MaxEntriesPerRequest)
	var out api.Entries
	err = s.store.View(r.Context(), func(tx *store.Tx) error {
		size, err := logSize(r.Context(), tx)
		if err != nil {
			return err
		}
		if start >= size {
			return apierr.New(apierr.BadRequest, "start %d is not below the log size %d", start, size)
		}
		out.Start = start
		out.Entries, err = tx.Entries(r.Context(), start, min(end, size))
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) inclusionProof(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	index, err := queryInt(r, "index")
	if err != nil {
		return err
	}
	size, err := queryInt(r, "size")
	if err != nil {
		return err
	}
	var p []tlog.Hash
	err = s.store.View(r.Context(), func(tx *store.Tx) error {
		cur, err := logSize(r.Context(), tx)
		if err != nil {
			return err
		}
		if index < 0 || index >= size || size > cur {
			return apierr.New(apierr.BadRequest, "want 0 <= index < size <= %d", cur)
		}
		p, err = sumtlog.ProveRecord(size, index, hashReader(r.Context(), tx))
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.InclusionProof{Index: index, Size: size, Proof: tlog.EncodeProof(p)})
}

func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request, _ org.Actor) error {
	oldSize, err := queryInt(r, "old")
	if err != nil {
		return err
	}
	newSize, err := queryInt(r, "new")
	if err != nil {
		return err
	}
	var p []tlog.Hash
	err = s.store.View(r.Context(), func(tx *store.Tx) error {
		cur, err := logSize(r.Context(), tx)
		if err != nil {
			return err
		}
		if oldSize < 1 || oldSize > newSize || newSize > cur {
			return apierr.New(apierr.BadRequest, "want 1 <= old <= new <= %d", cur)
		}
		p, err = sumtlog.ProveTree(newSize, oldSize, hashReader(r.Context(), tx))
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ConsistencyProof{Old: oldSize, New: newSize, Proof: tlog.EncodeProof(p)})
}

func hashReader(ctx context.Context, tx *store.Tx) sumtlog.HashReader {
	return sumtlog.HashReaderFunc(func(indexes []int64) ([]sumtlog.Hash, error) {
		hs, err := tx.Hashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]sumtlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, nil
	})
}

func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, apierr.New(apierr.BadRequest, "query parameter %s: want an integer", name)
	}
	return n, nil
}
