# The two commands a newcomer needs: `make run` (the demo, in a browser) and
# `make test`. Tests that need PostgreSQL use HOTLINE_TEST_POSTGRES, which
# defaults to the local server (trust auth, database test); .ci/run starts
# it if needed.

DATA   ?= hotline-data
ORG    ?= state.example
LISTEN ?= 127.0.0.1:8443
DEMO_LISTEN ?= 127.0.0.1:8080
HOTLINE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export HOTLINE_TEST_POSTGRES

.PHONY: run serve test build web bench-wasm

# The web client: the TypeScript UI (type-checked, bundled by esbuild), the
# protocol core and the media worker's SFrame compiled to WebAssembly, and
# Go's loader for them, all in web/dist, which the hotline binary embeds.
web: web/node_modules/.installed
	cd web && npm run --silent build
	cp "$$(go env GOROOT)/lib/wasm/wasm_exec.js" web/dist/wasm_exec.js
	GOOS=js GOARCH=wasm go build -trimpath -ldflags=-s -o web/dist/hotline.wasm ./web/wasm
	GOOS=js GOARCH=wasm go build -trimpath -ldflags=-s -o web/dist/sframe.wasm ./web/sframe

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --silent
	touch $@

build: web
	go build -o bin/hotline ./cmd/hotline

# A demo organisation on this machine: prints one browser address per
# person (principal, duty officer, note-taker, counterpart).
run: build
	bin/hotline demo --listen $(DEMO_LISTEN)

# A real organisation: created on first run (printing the first admin's
# invite code and the certificate fingerprint), then served.
serve: build
	@test -e $(DATA)/config.json || bin/hotline init --data $(DATA) --org $(ORG)
	bin/hotline serve --data $(DATA) --listen $(LISTEN)

test: web
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...
	GOOS=js GOARCH=wasm go vet ./web/wasm ./web/sframe
	go test ./...

# The protocol core's cost in a browser: the MLS benchmarks per message and
# per commit (a group of 16), natively and compiled to WebAssembly, run by
# Node.js's V8 (Chromium's engine). docs/benchmarks.md has the figures.
WASM_BENCH = GroupMessage|Commit/.*/16/update|ProcessCommit/.*/16/update
bench-wasm:
	go test ./internal/mls -run '^$$' -bench '$(WASM_BENCH)' -benchtime 1s -count 3 | tee bench-native.txt
	PATH="$$PATH:$$(go env GOROOT)/lib/wasm" GOOS=js GOARCH=wasm go test ./internal/mls -run '^$$' -bench '$(WASM_BENCH)' -benchtime 1s -count 3 | tee bench-wasm.txt
