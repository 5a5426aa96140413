package mls

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz tests for every top-level decoder, seeded from the official vectors
// and the hand-built samples: decoding never panics, every error wraps
// ErrDecode, and whatever decodes re-encodes to exactly its input. Where a
// decoded structure feeds a to-be-signed encoder, that runs too.

// seedsPerSource caps the seeds taken from one vector field, to keep the
// baseline run of each fuzz target short.
const seedsPerSource = 12

// wireSeeds returns seeds for one kind of structure, named as the fuzz
// targets are.
func wireSeeds(tb testing.TB, kind string) [][]byte {
	tb.Helper()
	var seeds [][]byte
	add := func(b []byte) { seeds = append(seeds, b) }

	var msgs []map[string]hexBytes
	loadVectors(tb, "messages", &msgs)
	msgs = msgs[:min(len(msgs), seedsPerSource)]
	field := func(name string) [][]byte {
		var out [][]byte
		for _, v := range msgs {
			out = append(out, v[name])
		}
		return out
	}
	decodeMsg := func(b []byte) *MLSMessage {
		m, err := UnmarshalMLSMessage(b)
		if err != nil {
			tb.Fatalf("seed: %v", err)
		}
		return m
	}
	publics := func() []*PublicMessage {
		var out []*PublicMessage
		for _, f := range []string{"public_message_application", "public_message_proposal", "public_message_commit"} {
			for _, b := range field(f) {
				out = append(out, decodeMsg(b).PublicMessage)
			}
		}
		return out
	}
	samples := func(keep func(v wireCodec) bool) {
		for _, v := range sampleStructures() {
			if keep(v) {
				add(marshalWire(v))
			}
		}
	}

	switch kind {
	case "MLSMessage":
		for _, f := range []string{"mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
			"public_message_proposal", "public_message_commit", "private_message"} {
			seeds = append(seeds, field(f)...)
		}
		var mpv []struct {
			ProposalPub hexBytes `json:"proposal_pub"`
			CommitPriv  hexBytes `json:"commit_priv"`
		}
		loadVectors(tb, "message-protection", &mpv)
		for _, v := range mpv {
			add(v.ProposalPub)
			add(v.CommitPriv)
		}
		samples(func(v wireCodec) bool { _, ok := v.(*MLSMessage); return ok })
	case "KeyPackage":
		for _, b := range field("mls_key_package") {
			add(decodeMsg(b).KeyPackage.Marshal())
		}
		seeds = append(seeds, field("add_proposal")...) // an Add is a KeyPackage
	case "Welcome":
		for _, b := range field("mls_welcome") {
			add(decodeMsg(b).Welcome.Marshal())
		}
		add(sampleMessages()["welcome"].Welcome.Marshal())
	case "GroupInfo":
		for _, b := range field("mls_group_info") {
			add(decodeMsg(b).GroupInfo.Marshal())
		}
		add(sampleGroupInfo().Marshal())
	case "RatchetTree":
		seeds = append(seeds, field("ratchet_tree")...)
		var tv []struct {
			Tree hexBytes `json:"tree"`
		}
		loadVectors(tb, "tree-validation", &tv)
		for _, v := range tv[:min(len(tv), seedsPerSource)] {
			add(v.Tree)
		}
		add(sampleRatchetTree().Marshal())
	case "Proposal":
		for _, f := range []struct {
			name string
			t    ProposalType
		}{
			{"add_proposal", ProposalAdd}, {"update_proposal", ProposalUpdate}, {"remove_proposal", ProposalRemove},
			{"pre_shared_key_proposal", ProposalPSK}, {"re_init_proposal", ProposalReInit},
			{"external_init_proposal", ProposalExternalInit}, {"group_context_extensions_proposal", ProposalGroupContextExtensions},
		} {
			for _, b := range field(f.name) {
				add(append([]byte{byte(f.t >> 8), byte(f.t)}, b...))
			}
		}
		var ov []struct {
			Proposal hexBytes `json:"proposal"`
		}
		loadVectors(tb, "tree-operations", &ov)
		for _, v := range ov {
			add(v.Proposal)
		}
		samples(func(v wireCodec) bool { _, ok := v.(*proposalCodec); return ok })
	case "Commit":
		seeds = append(seeds, field("commit")...)
		for _, p := range publics() {
			if p.Content.Commit != nil {
				add(marshalWire(p.Content.Commit))
			}
		}
		add(marshalWire(sampleCommit()))
	case "LeafNode":
		seeds = append(seeds, field("update_proposal")...) // an Update is a LeafNode
		for _, b := range field("mls_key_package") {
			add(marshalWire(&decodeMsg(b).KeyPackage.LeafNode))
		}
		samples(func(v wireCodec) bool { _, ok := v.(*LeafNode); return ok })
	case "GroupSecrets":
		seeds = append(seeds, field("group_secrets")...)
		samples(func(v wireCodec) bool { _, ok := v.(*GroupSecrets); return ok })
	case "UpdatePath":
		var kv []struct {
			UpdatePaths []struct {
				UpdatePath hexBytes `json:"update_path"`
			} `json:"update_paths"`
		}
		loadVectors(tb, "treekem", &kv)
		for _, v := range kv[:min(len(kv), seedsPerSource)] {
			for _, u := range v.UpdatePaths[:min(len(v.UpdatePaths), 1)] {
				add(u.UpdatePath)
			}
		}
		add(marshalWire(sampleUpdatePath()))
	case "AuthenticatedContent":
		var th []struct {
			AuthenticatedContent hexBytes `json:"authenticated_content"`
		}
		loadVectors(tb, "transcript-hashes", &th)
		for _, v := range th {
			add(v.AuthenticatedContent)
		}
		for _, p := range publics() {
			add(marshalWire(p.authenticatedContent()))
		}
		samples(func(v wireCodec) bool { _, ok := v.(*AuthenticatedContent); return ok })
	case "PrivateMessageContent": // a content type byte, then the plaintext
		for i, p := range publics() {
			var w Writer
			w.U8(uint8(p.Content.ContentType))
			encodeContent(&w, p.Content.ContentType, p.Content.ApplicationData, p.Content.Proposal, p.Content.Commit)
			p.Auth.encodeFor(&w, p.Content.ContentType)
			w.Raw(make([]byte, i%3))
			add(w.Bytes())
		}
	default:
		tb.Fatalf("no seeds for %s", kind)
	}
	return seeds
}

// fuzzWire runs the common property on a decoder.
func fuzzWire(f *testing.F, kind string, decode func(b []byte) (wireEncoder, error)) {
	for _, s := range wireSeeds(f, kind) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error does not wrap ErrDecode: %v", err)
			}
			return
		}
		if got := marshalWire(v); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, got)
		}
		exerciseDecoded(v)
	})
}

// decodeAs returns a decode function for fuzzWire over a plain decoder.
func decodeAs[T any, P interface {
	*T
	wireCodec
}]() func(b []byte) (wireEncoder, error) {
	return func(b []byte) (wireEncoder, error) {
		v := P(new(T))
		return v, unmarshalWire(b, v)
	}
}

// exercise runs the to-be-signed encoders and extension decoders over a
// decoded structure: they must not panic on anything that decodes.
func exerciseDecoded(v any) {
	ctx := sampleGroupContext()
	switch v := v.(type) {
	case *MLSMessage:
		switch {
		case v.PublicMessage != nil:
			ac := v.PublicMessage.authenticatedContent()
			ac.tbs(&ctx)
			ac.tbm(&ctx)
		case v.KeyPackage != nil:
			exerciseDecoded(v.KeyPackage)
		case v.GroupInfo != nil:
			exerciseDecoded(v.GroupInfo)
		}
	case *KeyPackage:
		v.tbs()
		v.LeafNode.tbs(bytesOf("group"), 1)
	case *LeafNode:
		v.tbs(bytesOf("group"), 1)
	case *GroupInfo:
		v.tbs()
	case *AuthenticatedContent:
		v.tbs(&ctx)
		v.tbm(&ctx)
	}
	checkExtensionsIn(v, map[ExtensionType]int{})
}

func FuzzMLSMessage(f *testing.F) {
	fuzzWire(f, "MLSMessage", func(b []byte) (wireEncoder, error) { return UnmarshalMLSMessage(b) })
}

func FuzzKeyPackage(f *testing.F) {
	fuzzWire(f, "KeyPackage", func(b []byte) (wireEncoder, error) { return UnmarshalKeyPackage(b) })
}

func FuzzWelcome(f *testing.F) {
	fuzzWire(f, "Welcome", func(b []byte) (wireEncoder, error) { return UnmarshalWelcome(b) })
}

func FuzzGroupInfo(f *testing.F) {
	fuzzWire(f, "GroupInfo", func(b []byte) (wireEncoder, error) { return UnmarshalGroupInfo(b) })
}

func FuzzRatchetTree(f *testing.F) {
	fuzzWire(f, "RatchetTree", func(b []byte) (wireEncoder, error) { return UnmarshalRatchetTree(b) })
}

func FuzzProposal(f *testing.F) { fuzzWire(f, "Proposal", decodeAs[proposalCodec]()) }

func FuzzCommit(f *testing.F) { fuzzWire(f, "Commit", decodeAs[Commit]()) }

func FuzzLeafNode(f *testing.F) { fuzzWire(f, "LeafNode", decodeAs[LeafNode]()) }

func FuzzGroupSecrets(f *testing.F) { fuzzWire(f, "GroupSecrets", decodeAs[GroupSecrets]()) }

func FuzzUpdatePath(f *testing.F) { fuzzWire(f, "UpdatePath", decodeAs[UpdatePath]()) }

func FuzzAuthenticatedContent(f *testing.F) {
	fuzzWire(f, "AuthenticatedContent", decodeAs[AuthenticatedContent]())
}

// privateMessageContentCodec decodes a content type byte, then a
// PrivateMessageContent of that type.
type privateMessageContentCodec struct {
	t ContentType
	c PrivateMessageContent
}

func (p *privateMessageContentCodec) encode(w *Writer) {
	w.U8(uint8(p.t))
	p.c.encodeFor(w, p.t)
}

func (p *privateMessageContentCodec) decode(r *Reader) {
	p.t = ContentType(r.U8())
	p.c.decodeFor(r, p.t)
}

func FuzzPrivateMessageContent(f *testing.F) {
	fuzzWire(f, "PrivateMessageContent", decodeAs[privateMessageContentCodec]())
}
