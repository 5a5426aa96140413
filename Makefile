# The two commands a newcomer needs: `make run` and `make test`.
# Tests that need PostgreSQL use HOTLINE_TEST_POSTGRES, which defaults to the
# local server (trust auth, database test); .ci/run starts it if needed.

DATA   ?= hotline-data
ORG    ?= state.example
LISTEN ?= 127.0.0.1:8443
HOTLINE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export HOTLINE_TEST_POSTGRES

.PHONY: run test build

build:
	go build -o bin/hotline ./cmd/hotline

# Creates the organisation on first run (printing the first admin's invite
# code and the certificate fingerprint), then serves it.
run: build
	@test -e $(DATA)/config.json || bin/hotline init --data $(DATA) --org $(ORG)
	bin/hotline serve --data $(DATA) --listen $(LISTEN)

test:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...
	go test ./...
