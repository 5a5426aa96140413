package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"hotline/internal/apierr"
)

// The web client's files are served from Config.Web with a strict content
// security policy: only this origin's scripts, WebAssembly allowed to
// compile, nothing framed, no third party anywhere.
const webCSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type webFiles struct {
	fsys  fs.FS
	cache sync.Map // name -> *webFile, made on first request
}

type webFile struct {
	etag string
	gz   []byte
}

func (s *Server) webHandler() http.Handler {
	if s.cfg.Web == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v1/") {
				writeError(w, apierr.New(apierr.NotFound, "no such endpoint"))
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("The web client is not built into this binary: run `make web`, then build hotline again.\n"))
		})
	}
	wf := &webFiles{fsys: s.cfg.Web}
	return http.HandlerFunc(wf.serve)
}

func (wf *webFiles) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		writeError(w, apierr.New(apierr.NotFound, "no such endpoint"))
		return
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(wf.fsys, name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", webCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Add("Vary", "Accept-Encoding")
	f := wf.file(name, b)
	h.Set("ETag", f.etag)
	if len(b) > 1024 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		b = f.gz
		h.Set("Content-Encoding", "gzip")
		h.Set("ETag", strings.TrimSuffix(f.etag, `"`)+`-gz"`)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func (wf *webFiles) file(name string, b []byte) *webFile {
	if f, ok := wf.cache.Load(name); ok {
		return f.(*webFile)
	}
	sum := sha256.Sum256(b)
	f := &webFile{etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if len(b) > 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		f.gz = buf.Bytes()
	}
	wf.cache.Store(name, f)
	return f
}
