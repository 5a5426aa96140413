package server

import (
	"encoding/base64"
	"io"
	"net/http"
	"strconv"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/deliver"
	"hotline/internal/org"
)

func blobID(r *http.Request) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	if err != nil || len(id) != 16 {
		return nil, apierr.New(apierr.BadRequest, "blob ID: want 16 bytes in unpadded base64url")
	}
	return id, nil
}

func chunkIndex(r *http.Request) (int, error) {
	i, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || i < 0 {
		return 0, apierr.New(apierr.BadRequest, "chunk index: want a non-negative integer")
	}
	return i, nil
}

func apiBlob(st deliver.BlobStatus) api.Blob {
	return api.Blob{ID: base64.RawURLEncoding.EncodeToString(st.ID), Size: st.Size, ChunkSize: st.ChunkSize,
		Chunks: st.Chunks(), Present: st.Present, Complete: st.Complete}
}

func (s *Server) createBlob(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	var req api.BlobCreate
	if err := decode(r, &req); err != nil {
		return err
	}
	b, err := s.deliver.CreateBlob(r.Context(), a, req.Size)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiBlob(deliver.BlobStatus{Blob: b}))
}

func (s *Server) putChunk(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := blobID(r)
	if err != nil {
		return err
	}
	i, err := chunkIndex(r)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return apierr.New(apierr.TooLarge, "a chunk is at most %d bytes", deliver.BlobChunkSize)
	}
	if err := s.deliver.PutChunk(r.Context(), a, id, i, data); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) blobStatus(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := blobID(r)
	if err != nil {
		return err
	}
	st, err := s.deliver.BlobStatus(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiBlob(st))
}

func (s *Server) completeBlob(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := blobID(r)
	if err != nil {
		return err
	}
	var req api.BlobComplete
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := s.deliver.CompleteBlob(r.Context(), a, id, req.SHA256); err != nil {
		return err
	}
	st, err := s.deliver.BlobStatus(r.Context(), a, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiBlob(st))
}

func (s *Server) getChunk(w http.ResponseWriter, r *http.Request, a org.Actor) error {
	id, err := blobID(r)
	if err != nil {
		return err
	}
	i, err := chunkIndex(r)
	if err != nil {
		return err
	}
	data, err := s.deliver.GetChunk(r.Context(), a, id, i)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(data)
	return err
}
