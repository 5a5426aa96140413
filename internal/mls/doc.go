// Package mls implements the Messaging Layer Security protocol (RFC 9420)
// as Hotline's conversations need it.
//
// It is pure: no I/O, no goroutines, no globals, and it compiles to
// WebAssembly, so the web client and the headless client run the same
// code. Randomness comes from an io.Reader the caller passes (nil means
// crypto/rand); tests pass a deterministic one.
//
// The package is built in layers, each checked against the official
// conformance vectors of mlswg/mls-implementations (../shared/vectors/mls;
// the TestConformance* tests, which log how many vectors of each file they
// checked and which suites they skipped):
//
//   - codec.go: the TLS presentation language with MLS variable-length
//     integers; every decoder is strict (canonical encodings only) and
//     fuzzed.
//   - cipher suites and the labelled primitives built on them
//     (ExpandWithLabel, DeriveSecret, SignWithLabel, EncryptWithLabel,
//     RefHash), the key schedule, pre-shared keys and the secret tree.
//   - tree math and the wire structures: key packages, leaf nodes,
//     proposals, commits, Welcome, GroupInfo, PublicMessage and
//     PrivateMessage.
//
// Later layers (the ratchet tree with TreeKEM, message protection, the
// group state machine) build on these.
package mls
