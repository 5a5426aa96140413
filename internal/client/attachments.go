package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/attach"
)

// UploadDir is the profile directory journaling unfinished uploads: the
// encrypted file and its descriptor, so an interrupted upload resumes.
const UploadDir = "uploads"

type uploadJournal struct {
	Descriptor []byte `json:"descriptor"`
	Ciphertext string `json:"ciphertext"` // file name inside UploadDir
}

// UploadAttachment encrypts r under a fresh key, uploads the ciphertext and
// returns the descriptor to send inside the conversation (it holds the
// key; the server never sees it). If the upload is interrupted, call
// ResumeUploads.
func (c *Client) UploadAttachment(ctx context.Context, r io.Reader, name, mediaType string) (attach.Descriptor, error) {
	if err := attach.CheckNames(name, mediaType); err != nil {
		return attach.Descriptor{}, err
	}
	ct := "ciphertext-" + rand.Text()
	f, err := c.st.Create(path.Join(UploadDir, ct))
	if err != nil {
		return attach.Descriptor{}, err
	}
	d, err := attach.Encrypt(f, r, nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.st.Remove(path.Join(UploadDir, ct))
		return attach.Descriptor{}, err
	}
	var b api.Blob
	if err := c.Do(ctx, http.MethodPost, "/v1/blobs", api.BlobCreate{Size: d.CiphertextSize}, &b); err != nil {
		c.st.Remove(path.Join(UploadDir, ct))
		return attach.Descriptor{}, fmt.Errorf("start upload: %w", err)
	}
	if d.BlobID, err = base64.RawURLEncoding.DecodeString(b.ID); err != nil {
		return attach.Descriptor{}, fmt.Errorf("server's blob ID: %w", err)
	}
	d.Name, d.MediaType = name, mediaType
	if err := d.Validate(); err != nil {
		c.st.Remove(path.Join(UploadDir, ct))
		return attach.Descriptor{}, err
	}
	j, _ := json.Marshal(uploadJournal{Descriptor: d.Marshal(), Ciphertext: ct})
	if err := c.st.WriteFile(path.Join(UploadDir, b.ID+".json"), j); err != nil {
		return attach.Descriptor{}, err
	}
	return d, c.finishUpload(ctx, b.ID)
}

// ResumeUploads finishes every journaled upload and returns their
// descriptors.
func (c *Client) ResumeUploads(ctx context.Context) ([]attach.Descriptor, error) {
	names, err := c.st.List(UploadDir)
	if err != nil {
		return nil, err
	}
	var out []attach.Descriptor
	for _, n := range names {
		id, ok := strings.CutSuffix(n, ".json")
		if !ok {
			continue
		}
		j, err := c.readJournal(id)
		if err != nil {
			return out, err
		}
		d, err := attach.UnmarshalDescriptor(j.Descriptor)
		if err != nil {
			return out, err
		}
		if err := c.finishUpload(ctx, id); err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (c *Client) readJournal(id string) (uploadJournal, error) {
	var j uploadJournal
	b, err := c.st.ReadFile(path.Join(UploadDir, id+".json"))
	if err != nil {
		return j, err
	}
	return j, json.Unmarshal(b, &j)
}

// finishUpload sends the chunks the server lacks, completes the blob and
// removes the journal.
func (c *Client) finishUpload(ctx context.Context, id string) error {
	j, err := c.readJournal(id)
	if err != nil {
		return err
	}
	d, err := attach.UnmarshalDescriptor(j.Descriptor)
	if err != nil {
		return err
	}
	var st api.Blob
	if err := c.Do(ctx, http.MethodGet, "/v1/blobs/"+id, nil, &st); err != nil {
		return fmt.Errorf("upload status: %w", err)
	}
	if !st.Complete {
		have := map[int]bool{}
		for _, i := range st.Present {
			have[i] = true
		}
		f, err := c.st.Open(path.Join(UploadDir, j.Ciphertext))
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, st.ChunkSize)
		for i := range st.Chunks {
			if have[i] {
				continue
			}
			n, err := f.ReadAt(buf, int64(i)*int64(st.ChunkSize))
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if err := c.putChunk(ctx, id, i, buf[:n]); err != nil {
				return err
			}
		}
		if err := c.Do(ctx, http.MethodPost, "/v1/blobs/"+id+"/complete", api.BlobComplete{SHA256: d.CiphertextHash}, &st); err != nil {
			return fmt.Errorf("complete upload: %w", err)
		}
	}
	c.st.Remove(path.Join(UploadDir, j.Ciphertext))
	return c.st.Remove(path.Join(UploadDir, id+".json"))
}

// putChunk sends one chunk, retrying a few times on network trouble.
func (c *Client) putChunk(ctx context.Context, id string, i int, data []byte) error {
	var err error
	for attempt := range 3 {
		err = c.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/blobs/%s/chunks/%d", id, i), raw(data), nil)
		var ae *apierr.Error
		if err == nil || errors.As(err, &ae) { // the server answered: retrying will not help
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return fmt.Errorf("upload chunk %d: %w", i, err)
}

// DownloadAttachment fetches an attachment's ciphertext and writes the
// decrypted file to w. On error w may hold a prefix of the file: write to a
// temporary place and keep it only on success.
func (c *Client) DownloadAttachment(ctx context.Context, d attach.Descriptor, w io.Writer) error {
	if err := d.Validate(); err != nil {
		return err
	}
	var st api.Blob
	id := base64.RawURLEncoding.EncodeToString(d.BlobID)
	if err := c.Do(ctx, http.MethodGet, "/v1/blobs/"+id, nil, &st); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	if !st.Complete || st.Size != d.CiphertextSize {
		return fmt.Errorf("attachment: the server holds %d bytes (complete %v), the descriptor says %d", st.Size, st.Complete, d.CiphertextSize)
	}
	return attach.Decrypt(w, &blobReader{ctx: ctx, c: c, id: id, chunks: st.Chunks}, d)
}

// DownloadBlob fetches an attachment's ciphertext as the server holds it,
// without decrypting it, and writes it to w once its size and SHA-256
// match the descriptor's (the archive keeps attachments this way: their
// keys are inside the sealed message that sent them). The ciphertext is
// held in memory: attachments are at most a few hundred MiB.
func (c *Client) DownloadBlob(ctx context.Context, blobID []byte, size int64, hash []byte, w io.Writer) error {
	var st api.Blob
	id := base64.RawURLEncoding.EncodeToString(blobID)
	if err := c.Do(ctx, http.MethodGet, "/v1/blobs/"+id, nil, &st); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	if !st.Complete || st.Size != size {
		return fmt.Errorf("attachment: the server holds %d bytes (complete %v), the descriptor says %d", st.Size, st.Complete, size)
	}
	h := sha256.New()
	var buf bytes.Buffer
	if _, err := io.Copy(io.MultiWriter(h, &buf), &blobReader{ctx: ctx, c: c, id: id, chunks: st.Chunks}); err != nil {
		return err
	}
	if int64(buf.Len()) != size || !bytes.Equal(h.Sum(nil), hash) {
		return errors.New("attachment: the ciphertext the server sent does not match the descriptor's size and hash")
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// blobReader reads a blob's chunks from the server in order, one request
// at a time, as the reader asks.
type blobReader struct {
	ctx    context.Context
	c      *Client
	id     string
	chunks int
	next   int
	buf    []byte
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.next == r.chunks {
			return 0, io.EOF
		}
		var data raw
		if err := r.c.Do(r.ctx, http.MethodGet, fmt.Sprintf("/v1/blobs/%s/chunks/%d", r.id, r.next), nil, &data); err != nil {
			return 0, fmt.Errorf("attachment chunk %d: %w", r.next, err)
		}
		r.buf, r.next = data, r.next+1
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
