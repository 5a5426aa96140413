// Package web holds the web client, built into dist/ by `make web` (the
// TypeScript UI bundled by esbuild, the protocol core compiled to
// WebAssembly, and Go's wasm_exec.js) and embedded in the hotline binary.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built web client, or nil when dist/ holds no build (a
// checkout where `make web` has not run).
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil
	}
	if _, err := fs.Stat(sub, "hotline.wasm"); err != nil {
		return nil
	}
	return sub
}
