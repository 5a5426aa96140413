package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/deliver"
)

func TestAttachments(t *testing.T) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			admin := e.admin(t)
			bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
			for _, n := range []int{0, 1, deliver.BlobChunkSize - 40, 2*deliver.BlobChunkSize + 12345} {
				file := make([]byte, n)
				rand.Read(file)
				d, err := admin.UploadAttachment(ctx, bytes.NewReader(file), "briefing.pdf", "application/pdf")
				if err != nil {
					t.Fatalf("%d bytes: %v", n, err)
				}
				var got bytes.Buffer
				if err := bob.DownloadAttachment(ctx, d, &got); err != nil {
					t.Fatalf("%d bytes: download: %v", n, err)
				}
				if !bytes.Equal(got.Bytes(), file) {
					t.Fatalf("%d bytes: the downloaded file differs", n)
				}
			}
			// A wrong key is a decryption failure, not garbage.
			d, err := admin.UploadAttachment(ctx, strings.NewReader("the ambassador agreed"), "memcon.txt", "text/plain")
			if err != nil {
				t.Fatal(err)
			}
			d.Key = bytes.Repeat([]byte{1}, 32)
			if err := bob.DownloadAttachment(ctx, d, &bytes.Buffer{}); !errors.Is(err, attach.ErrDecrypt) {
				t.Errorf("download with the wrong key: %v, want ErrDecrypt", err)
			}
		})
	}
}

// An interrupted upload resumes: only the missing chunks are sent.
func TestAttachmentUploadResumes(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
	file := make([]byte, 3*deliver.BlobChunkSize)
	rand.Read(file)
	// Start an upload and send one chunk by hand, as a process killed
	// midway would have.
	var ct bytes.Buffer
	d, err := attach.Encrypt(&ct, bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	var blob api.Blob
	if err := admin.Do(ctx, "POST", "/v1/blobs", api.BlobCreate{Size: d.CiphertextSize}, &blob); err != nil {
		t.Fatal(err)
	}
	d.BlobID, _ = base64.RawURLEncoding.DecodeString(blob.ID)
	d.Name, d.MediaType = "big.bin", "application/octet-stream"
	status, eb := raw(t, e, "PUT", "/v1/blobs/"+blob.ID+"/chunks/1", token(t, e, admin), ct.Bytes()[blob.ChunkSize:2*blob.ChunkSize])
	if status != 204 {
		t.Fatalf("chunk 1: %d %+v", status, eb.Error)
	}
	// Not downloadable until complete.
	if err := bob.DownloadAttachment(ctx, d, &bytes.Buffer{}); err == nil {
		t.Fatal("an incomplete upload was downloadable")
	}
	// Journal it as UploadAttachment would, then resume.
	dir := filepath.Join(admin.Dir(), client.UploadDir)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "ciphertext-x"), ct.Bytes(), 0o600)
	j, _ := json.Marshal(map[string]any{"descriptor": d.Marshal(), "ciphertext": "ciphertext-x"})
	os.WriteFile(filepath.Join(dir, blob.ID+".json"), j, 0o600)
	ds, err := admin.ResumeUploads(ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("resume: %v %v", ds, err)
	}
	var got bytes.Buffer
	if err := bob.DownloadAttachment(ctx, ds[0], &got); err != nil || !bytes.Equal(got.Bytes(), file) {
		t.Fatalf("after resume: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("journal left behind: %v", left)
	}
}

// Bad chunks and completions are refused with stable codes and change
// nothing; only the uploader may upload.
func TestBlobRefusals(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	bob, _ := e.enroll(t, addUser(t, admin, "bob"), "bob")
	var blob api.Blob
	if err := admin.Do(ctx, "POST", "/v1/blobs", api.BlobCreate{Size: 100}, &blob); err != nil {
		t.Fatal(err)
	}
	tok, bobTok := token(t, e, admin), token(t, e, bob)
	cases := []struct {
		name, method, path, tok string
		body                    []byte
		code                    apierr.Code
	}{
		{"too big", "POST", "/v1/blobs", tok, []byte(fmt.Sprintf(`{"size":%d}`, int64(deliver.MaxBlobSize)+1)), apierr.TooLarge},
		{"negative", "POST", "/v1/blobs", tok, []byte(`{"size":-1}`), apierr.TooLarge},
		{"short chunk", "PUT", "/v1/blobs/" + blob.ID + "/chunks/0", tok, make([]byte, 99), apierr.BadRequest},
		{"chunk past the end", "PUT", "/v1/blobs/" + blob.ID + "/chunks/1", tok, make([]byte, 100), apierr.BadRequest},
		{"not the uploader", "PUT", "/v1/blobs/" + blob.ID + "/chunks/0", bobTok, make([]byte, 100), apierr.NotFound},
		{"bad ID", "PUT", "/v1/blobs/xyz/chunks/0", tok, make([]byte, 100), apierr.BadRequest},
		{"oversized body", "PUT", "/v1/blobs/" + blob.ID + "/chunks/0", tok, make([]byte, deliver.BlobChunkSize+1), apierr.TooLarge},
		{"complete with a chunk missing", "POST", "/v1/blobs/" + blob.ID + "/complete", tok, []byte(`{"sha256":"AAAA"}`), apierr.Conflict},
		{"status for someone else", "GET", "/v1/blobs/" + blob.ID, bobTok, nil, apierr.NotFound},
		{"download incomplete", "GET", "/v1/blobs/" + blob.ID + "/chunks/0", bobTok, nil, apierr.NotFound},
	}
	for _, c := range cases {
		status, eb := raw(t, e, c.method, c.path, c.tok, c.body)
		if eb.Error == nil || eb.Error.Code != c.code || status != apierr.Status(c.code) {
			t.Errorf("%s: %d %+v, want %s", c.name, status, eb.Error, c.code)
		}
	}
	if status, _ := raw(t, e, "PUT", "/v1/blobs/"+blob.ID+"/chunks/0", tok, make([]byte, 100)); status != 204 {
		t.Fatalf("good chunk: %d", status)
	}
	if status, eb := raw(t, e, "PUT", "/v1/blobs/"+blob.ID+"/chunks/0", tok, bytes.Repeat([]byte{1}, 100)); eb.Error == nil || eb.Error.Code != apierr.Conflict {
		t.Errorf("chunk 0 again with other bytes: %d %+v", status, eb.Error)
	}
	if status, eb := raw(t, e, "POST", "/v1/blobs/"+blob.ID+"/complete", tok, []byte(`{"sha256":"AAAA"}`)); eb.Error == nil || eb.Error.Code != apierr.Conflict {
		t.Errorf("complete with a wrong hash: %d %+v", status, eb.Error)
	}
}

// The server stores attachments' ciphertext only: a canary in the file is
// nowhere in the data directory, and nothing of the descriptor (name, key)
// reaches it.
func TestAttachmentCanary(t *testing.T) {
	const canary = "CANARY 4be1 the summit moves to Tuesday"
	e := newEnv(t, "sqlite")
	ctx := t.Context()
	admin := e.admin(t)
	file := []byte(strings.Repeat(canary+"\n", 5000))
	d, err := admin.UploadAttachment(ctx, bytes.NewReader(file), canary+".txt", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	e.stop()
	secrets := map[string][]byte{"canary": []byte(canary), "key": d.Key, "key (base64)": []byte(base64.StdEncoding.EncodeToString(d.Key))}
	err = filepath.Walk(e.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s found in %s", what, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.logs.String(), canary) {
		t.Error("canary in the server log")
	}
}
