// Package sframe implements SFrame (RFC 9605), the end-to-end encryption
// of Hotline's call media, keyed from the call's MLS group.
//
// SFrame protects each media frame (an encoded Opus frame, say) before it
// is packetized, so the SFU that forwards the packets sees a short header
// and ciphertext only. A protected frame, an SFrame ciphertext, is
//
//	header (1 to 17 bytes) || encrypted frame || tag (4 to 16 bytes)
//
// The header carries a key ID (KID), which names the key, and a counter
// (CTR), which makes the nonce unique; both travel in the clear and are
// authenticated. Application metadata (such as RTP header fields the SFU
// needs) can be authenticated with the frame without being encrypted or
// carried in it.
//
// The package is pure: no I/O, no goroutines, no global state. It compiles
// to WebAssembly, so the web client runs the same code as the headless
// client.
//
// # Keys from MLS
//
// A call is an MLS group, and its members get their SFrame keys from it
// (RFC 9605, section 5.2). Each member keeps an MLSContext and gives it
// every epoch as it reaches it, from its own copy of the group:
//
//	sf, err := sframe.NewMLSContext(sframe.AES128GCMSHA256_128, sframe.MLSOptions{EpochBits: 4})
//	...
//	err = sf.AddEpoch(sframe.MLSEpoch{
//		Number:    g.Epoch(),
//		Self:      uint32(g.MyLeaf()),
//		GroupSize: highestLeafIndex + 1,
//		Export:    g.Export,
//	})
//	...
//	frame, err := sf.Encrypt(metadata, opusFrame)        // to the SFU
//	opus, from, err := sf.Decrypt(metadata, frameFromSFU) // from.Leaf is the speaker
//
// AddEpoch calls the MLS exporter once,
//
//	base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)
//
// and every member's KIDs put the member's leaf index above the low E bits
// of the epoch number, under a context value the sender chooses:
//
//	KID = (context << (S + E)) + (leaf << E) + (epoch mod 2^E)
//
// where S is the smallest number of bits that holds every leaf index of
// the epoch. Each KID's key and salt are derived from base_key and the KID
// itself (section 4.4.2), so every sender, and every context of a sender,
// encrypts under its own key and nonces. Nothing about keys is sent: every
// member computes the same keys from the same MLS epoch. A member removed
// by a commit has no exporter for the epoch that commit starts, so it
// cannot decrypt what is sent in it.
//
// RFC 9605 keeps a leftover of its drafts here: the text after the KID
// layout speaks of an "sframe_epoch_secret" that the section never
// defines. The drafts exported that secret and derived a per-sender
// base_key from it, HKDF-Expand(sframe_epoch_secret, sender index, ...),
// and cisco/sframe's MLSContext still did when this package was written.
// The published text does not: base_key is the exporter output itself,
// and the KID in the key derivation separates the senders. This package
// follows the published text, so it does not interoperate with the draft
// derivation.
//
// A member sends in the newest epoch only. Frames of the previous epochs
// still decrypt for MLSOptions.RetainEpochs epochs, since media sent just
// before a commit arrive after it; DropEpochsBefore ends that sooner, on
// whatever timer the application chooses. An epoch's low E bits are all
// its KIDs carry, so a new epoch replaces the one with the same bits (as
// RFC 9605 requires), and at most 2^E epochs are held.
//
// A frame of an epoch the member has not reached yet fails with
// ErrUnknownKID: the application may hold it until it has processed the
// commit. A frame's first KID in an epoch costs a key derivation, and the
// key is kept only if the frame authenticates, so made-up KIDs hold no
// memory; MLSOptions.MaxReceiveKeys bounds the keys a misbehaving member
// can make a receiver keep.
//
// # Keys without MLS
//
// A Context is the key store of section 4.4 itself: base keys labelled
// with KIDs, added with AddSendKey or AddReceiveKey and removed with
// RemoveKey, and the Encrypt and Decrypt operations. MLSContext is built
// on it. Use it directly where keys come from elsewhere, such as the
// sender-key scheme of section 5.1 (whose ratchet this package leaves to
// the caller), tests and conformance vectors.
//
// # Nonces are never reused
//
// A key is for sending or for receiving, never both, and a send key has a
// counter that starts at 0 and goes up by one per frame. The nonce is the
// key's salt XOR the counter, so it repeats only if a counter does, and
// counters do not: the last value, 2^64-1, is never used, and a key that
// reaches it fails with ErrCounterExhausted instead of wrapping. A Context
// refuses to add a send key it has sent with before (ErrKeyReused), which
// would restart its counter, and MLSContext refuses an epoch that is not
// newer than the last. What no library can see is another process: two
// MLSContexts sending as the same member in the same epoch (a device that
// restarts mid-epoch, or two streams) must use different
// MLSOptions.ContextID values.
//
// # Replay
//
// Each receive key has a sliding window over counters (Options.ReplayWindow,
// 1,024 by default). A frame is accepted if its counter is above the
// highest accepted so far, or within the window below it and not accepted
// before; anything else fails with ErrReplay. Frames may arrive out of
// order within the window. The window moves only for frames that
// authenticate, so forged frames cannot push it ahead. RFC 9605 leaves
// replay to the application (section 7.4); this is the SRTP-style window
// media stacks expect.
//
// # Cipher suites
//
// All five suites of RFC 9605 are implemented: the AES-GCM suites
// AES128GCMSHA256_128 and AES256GCMSHA512_128, and section 4.5.1's AES-CTR
// with HMAC-SHA-256 construction with 80, 64 and 32-bit tags, whose short
// tags save bytes on small audio frames at the cost of forgery resistance
// (section 7.5: a 32-bit tag falls to about 2^32 tries, which the
// transport's own authentication and the media rate make impractical but
// not impossible). The AES-256-CTR and HMAC-SHA-512 variants
// (0x0006-0x0008) from draft-barnes-sframe-iana-256 are implemented too,
// checked against the working group's vectors; they are not in RFC 9605's
// registry table. Every session picks one suite, which all its members
// share.
//
// # Errors
//
// Decrypt fails with one of ErrShortHeader, ErrMalformedHeader,
// ErrUnknownKID, ErrAuth and ErrReplay; see their documentation. A frame
// that fails changes nothing (RFC 9605 asks receivers to drop it). Tags
// are compared in constant time; with the AES-CTR suites a frame whose tag
// fails is not decrypted, which saves time in proportion to its length, a
// length the frame shows anyway.
//
// # Key material
//
// Base keys handed to AddSendKey and AddReceiveKey are not kept; the
// caller may erase them. Derived keys and salts are erased once the AEAD
// is set up; an MLS epoch's base_key is kept, for deriving receive keys,
// until the epoch is dropped, then erased. The AES key schedules inside
// crypto/aes and crypto/cipher values cannot be erased, and with the
// AES-CTR suites crypto/cipher copies the schedule into each frame's CTR
// stream, which the garbage collector reclaims but does not wipe. No type
// prints or logs a key: Context and MLSContext format, print and log as a
// redacted summary.
package sframe
