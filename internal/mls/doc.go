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
//
//   - suite.go, crypto.go, keys.go: cipher suites and the labelled
//     primitives built on them (ExpandWithLabel, DeriveSecret,
//     SignWithLabel, EncryptWithLabel, RefHash); psk.go, keyschedule.go,
//     secrettree.go: pre-shared keys, the key schedule and the secret tree.
//
//   - treemath.go and the wire structures: key packages, leaf nodes,
//     proposals, commits, Welcome, GroupInfo, PublicMessage and
//     PrivateMessage; keypackage_new.go makes and validates key packages.
//
//   - tree.go, tree_validate.go, treekem.go: the ratchet tree with tree
//     and parent hashes, validation for joiners, and TreeKEM update paths.
//
//   - transcript.go, protection.go, welcome_process.go: transcript hashes,
//     signing, MACing and encrypting messages, and Welcome/GroupInfo.
//
//   - group.go, group_commit.go, group_process.go, group_join.go,
//     group_state.go: the group state machine (RFC 9420, sections 11 and
//     12): a member's Group, made by NewGroup, JoinFromWelcome or
//     ExternalJoin; proposals and commits, validated in full, with the
//     committer's new epoch pending until the delivery service accepted
//     the commit (MergePending); Process for every message of the group;
//     application data by Encrypt; the state stored and restored
//     (MarshalState, UnmarshalGroupState). Checked against the
//     passive-client vectors, and against ts-mls (interop_tsmls_test.go).
//
//   - group_public.go, group_public_state.go: the delivery service's
//     PublicGroup, following a group from its PublicMessage handshakes
//     without any secret, and proposing its Removes.
//
// A messenger uses the Group only. Hotline's rules on top of RFC 9420
// (handshakes as PublicMessage, the server's Removes accepted and its Adds
// refused, pending proposals committed before application data, every
// leaf passed to the application's credential check) are in group.go.
package mls
