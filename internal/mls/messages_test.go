package mls

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// wireCodec is a wire structure that decodes and encodes itself.
type wireCodec interface {
	wireEncoder
	wireDecoder
}

// proposalCodec gives the Proposal interface the encode/decode pair of the
// other wire structures: a type, then the body.
type proposalCodec struct{ p Proposal }

func (c *proposalCodec) encode(w *Writer) { encodeProposal(w, c.p) }
func (c *proposalCodec) decode(r *Reader) { c.p = decodeProposal(r) }

// roundTrip decodes all of b into v, then checks that v encodes to exactly
// b.
func wireRoundTrip(b []byte, v wireCodec) error {
	if err := unmarshalWire(b, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if got := marshalWire(v); !bytes.Equal(got, b) {
		return fmt.Errorf("re-encoding differs: %d bytes, want %d; first difference at byte %d",
			len(got), len(b), firstDifference(got, b))
	}
	return nil
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// mlsMessageOf returns a check that v is an MLSMessage of wire format wf
// and, for public messages, of content type ct.
func mlsMessageOf(wf WireFormat, ct ContentType) func(v wireCodec) error {
	return func(v wireCodec) error {
		m := v.(*MLSMessage)
		if m.WireFormat != wf {
			return fmt.Errorf("wire format %d, want %d", m.WireFormat, wf)
		}
		if ct != 0 && m.PublicMessage.Content.ContentType != ct {
			return fmt.Errorf("content type %d, want %d", m.PublicMessage.Content.ContentType, ct)
		}
		return nil
	}
}

// messageFields maps each field of messages.json to the structure it
// encodes, and to an extra check of what it decodes to.
var messageFields = map[string]struct {
	new   func() wireCodec
	check func(v wireCodec) error
}{
	"mls_welcome":                       {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatWelcome, 0)},
	"mls_group_info":                    {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatGroupInfo, 0)},
	"mls_key_package":                   {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatKeyPackage, 0)},
	"ratchet_tree":                      {func() wireCodec { return new(RatchetTree) }, nil},
	"group_secrets":                     {func() wireCodec { return new(GroupSecrets) }, nil},
	"add_proposal":                      {func() wireCodec { return new(AddProposal) }, nil},
	"update_proposal":                   {func() wireCodec { return new(UpdateProposal) }, nil},
	"remove_proposal":                   {func() wireCodec { return new(RemoveProposal) }, nil},
	"pre_shared_key_proposal":           {func() wireCodec { return new(PreSharedKeyProposal) }, nil},
	"re_init_proposal":                  {func() wireCodec { return new(ReInitProposal) }, nil},
	"external_init_proposal":            {func() wireCodec { return new(ExternalInitProposal) }, nil},
	"group_context_extensions_proposal": {func() wireCodec { return new(GroupContextExtensionsProposal) }, nil},
	"commit":                            {func() wireCodec { return new(Commit) }, nil},
	"public_message_application":        {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatPublicMessage, ContentApplication)},
	"public_message_proposal":           {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatPublicMessage, ContentProposal)},
	"public_message_commit":             {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatPublicMessage, ContentCommit)},
	"private_message":                   {func() wireCodec { return new(MLSMessage) }, mlsMessageOf(WireFormatPrivateMessage, 0)},
}

// TestConformanceMessages checks messages.json: every field of every
// vector decodes as its structure, strictly, and re-encodes to exactly its
// bytes. The known extensions inside (see extensionsIn) must round-trip
// too.
func TestConformanceMessages(t *testing.T) {
	var vs []map[string]hexBytes
	loadVectors(t, "messages", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	counts := map[string]int{}
	exts := map[ExtensionType]int{}
	for i, v := range vs {
		if !slices.Equal(slices.Sorted(maps.Keys(v)), slices.Sorted(maps.Keys(messageFields))) {
			t.Fatalf("vector %d has fields %v", i, slices.Sorted(maps.Keys(v)))
		}
		for field, b := range v {
			f := messageFields[field]
			x := f.new()
			err := wireRoundTrip(b, x)
			if err == nil && f.check != nil {
				err = f.check(x)
			}
			if err == nil {
				err = checkExtensionsIn(x, exts)
			}
			if err != nil {
				t.Errorf("vector %d, %s: %v", i, field, err)
				continue
			}
			counts[field]++
		}
	}
	for _, field := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("messages.json %s: %d round trips", field, counts[field])
	}
	logExtensionCounts(t, "messages.json", exts)
}

// The other vector files hold wire structures too. Their cryptographic
// checks belong to later layers; here every encoded structure in them must
// decode and re-encode exactly.

func TestConformanceWireInOtherVectors(t *testing.T) {
	type hexList []hexBytes
	counts := map[string]int{}
	exts := map[ExtensionType]int{}
	check := func(file, field string, b []byte, v wireCodec) {
		t.Helper()
		err := wireRoundTrip(b, v)
		if err == nil {
			err = checkExtensionsIn(v, exts)
		}
		if err != nil {
			t.Errorf("%s %s: %v", file, field, err)
			return
		}
		counts[file+" "+field]++
	}
	msg := func() wireCodec { return new(MLSMessage) }
	tree := func() wireCodec { return new(RatchetTree) }

	var tv []struct {
		Tree hexBytes `json:"tree"`
	}
	loadVectors(t, "tree-validation", &tv)
	for _, v := range tv {
		check("tree-validation.json", "tree", v.Tree, tree())
	}

	var wv []struct {
		KeyPackage hexBytes `json:"key_package"`
		Welcome    hexBytes `json:"welcome"`
	}
	loadVectors(t, "welcome", &wv)
	for _, v := range wv {
		check("welcome.json", "key_package", v.KeyPackage, msg())
		check("welcome.json", "welcome", v.Welcome, msg())
	}

	var ov []struct {
		Proposal   hexBytes `json:"proposal"`
		TreeBefore hexBytes `json:"tree_before"`
		TreeAfter  hexBytes `json:"tree_after"`
	}
	loadVectors(t, "tree-operations", &ov)
	for _, v := range ov {
		check("tree-operations.json", "proposal", v.Proposal, new(proposalCodec))
		check("tree-operations.json", "tree_before", v.TreeBefore, tree())
		check("tree-operations.json", "tree_after", v.TreeAfter, tree())
	}

	var kv []struct {
		RatchetTree hexBytes `json:"ratchet_tree"`
		UpdatePaths []struct {
			UpdatePath hexBytes `json:"update_path"`
		} `json:"update_paths"`
	}
	loadVectors(t, "treekem", &kv)
	for _, v := range kv {
		check("treekem.json", "ratchet_tree", v.RatchetTree, tree())
		for _, u := range v.UpdatePaths {
			check("treekem.json", "update_path", u.UpdatePath, new(UpdatePath))
		}
	}

	for _, file := range []string{"passive-client-welcome", "passive-client-handling-commit", "passive-client-random"} {
		var pv []struct {
			KeyPackage  hexBytes  `json:"key_package"`
			Welcome     hexBytes  `json:"welcome"`
			RatchetTree *hexBytes `json:"ratchet_tree"`
			Epochs      []struct {
				Proposals hexList  `json:"proposals"`
				Commit    hexBytes `json:"commit"`
			} `json:"epochs"`
		}
		loadVectors(t, file, &pv)
		file += ".json"
		for _, v := range pv {
			check(file, "key_package", v.KeyPackage, msg())
			check(file, "welcome", v.Welcome, msg())
			if v.RatchetTree != nil {
				check(file, "ratchet_tree", *v.RatchetTree, tree())
			}
			for _, e := range v.Epochs {
				for _, p := range e.Proposals {
					check(file, "proposals", p, msg())
				}
				check(file, "commit", e.Commit, msg())
			}
		}
	}

	var mp []struct {
		Proposal        hexBytes `json:"proposal"`
		ProposalPub     hexBytes `json:"proposal_pub"`
		ProposalPriv    hexBytes `json:"proposal_priv"`
		Commit          hexBytes `json:"commit"`
		CommitPub       hexBytes `json:"commit_pub"`
		CommitPriv      hexBytes `json:"commit_priv"`
		ApplicationPriv hexBytes `json:"application_priv"`
	}
	loadVectors(t, "message-protection", &mp)
	for _, v := range mp {
		check("message-protection.json", "proposal", v.Proposal, new(proposalCodec))
		check("message-protection.json", "commit", v.Commit, new(Commit))
		check("message-protection.json", "proposal_pub", v.ProposalPub, msg())
		check("message-protection.json", "proposal_priv", v.ProposalPriv, msg())
		check("message-protection.json", "commit_pub", v.CommitPub, msg())
		check("message-protection.json", "commit_priv", v.CommitPriv, msg())
		check("message-protection.json", "application_priv", v.ApplicationPriv, msg())
	}

	var th []struct {
		AuthenticatedContent hexBytes `json:"authenticated_content"`
	}
	loadVectors(t, "transcript-hashes", &th)
	for _, v := range th {
		check("transcript-hashes.json", "authenticated_content", v.AuthenticatedContent, new(AuthenticatedContent))
	}

	var ks []struct {
		Epochs []struct {
			GroupContext hexBytes `json:"group_context"`
		} `json:"epochs"`
	}
	loadVectors(t, "key-schedule", &ks)
	for _, v := range ks {
		for _, e := range v.Epochs {
			check("key-schedule.json", "group_context", e.GroupContext, new(GroupContext))
		}
	}

	for _, k := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("%s: %d round trips", k, counts[k])
	}
	logExtensionCounts(t, "other vectors", exts)
}

func logExtensionCounts(t *testing.T, where string, exts map[ExtensionType]int) {
	var parts []string
	for _, e := range slices.Sorted(maps.Keys(exts)) {
		parts = append(parts, fmt.Sprintf("%#04x: %d", uint16(e), exts[e]))
	}
	t.Logf("%s: known extensions round-tripped by type: %s", where, strings.Join(parts, ", "))
}

// checkExtensionsIn round-trips the data of every extension of a type RFC
// 9420 defines found anywhere in v, counting them by type.
func checkExtensionsIn(v any, counts map[ExtensionType]int) error {
	for _, list := range extensionsIn(v) {
		for _, e := range list {
			var x wireCodec
			switch e.Type {
			case ExtApplicationID:
				x = new(ApplicationID)
			case ExtRatchetTree:
				x = new(RatchetTree)
			case ExtRequiredCapabilities:
				x = new(RequiredCapabilities)
			case ExtExternalPub:
				x = new(ExternalPub)
			case ExtExternalSenders:
				x = new(ExternalSenders)
			default:
				continue
			}
			if err := wireRoundTrip(e.Data, x); err != nil {
				return fmt.Errorf("extension %#04x: %w", uint16(e.Type), err)
			}
			counts[e.Type]++
		}
	}
	return nil
}

// extensionsIn returns every extension list inside v that is visible
// without decryption.
func extensionsIn(v any) [][]Extension {
	var out [][]Extension
	var walk func(v any)
	walkLeaf := func(l *LeafNode) { out = append(out, l.Extensions) }
	walkKP := func(k *KeyPackage) {
		out = append(out, k.Extensions)
		walkLeaf(&k.LeafNode)
	}
	walkProposal := func(p Proposal) {
		switch p := p.(type) {
		case *AddProposal:
			walkKP(&p.KeyPackage)
		case *UpdateProposal:
			walkLeaf(&p.LeafNode)
		case *ReInitProposal:
			out = append(out, p.Extensions)
		case *GroupContextExtensionsProposal:
			out = append(out, p.Extensions)
		}
	}
	walkCommit := func(c *Commit) {
		for _, p := range c.Proposals {
			if p.Proposal != nil {
				walkProposal(p.Proposal)
			}
		}
		if c.Path != nil {
			walkLeaf(&c.Path.LeafNode)
		}
	}
	walkContent := func(f *FramedContent) {
		if f.Proposal != nil {
			walkProposal(f.Proposal)
		}
		if f.Commit != nil {
			walkCommit(f.Commit)
		}
	}
	walk = func(v any) {
		switch v := v.(type) {
		case *MLSMessage:
			switch {
			case v.PublicMessage != nil:
				walkContent(&v.PublicMessage.Content)
			case v.GroupInfo != nil:
				walk(v.GroupInfo)
			case v.KeyPackage != nil:
				walkKP(v.KeyPackage)
			}
		case *GroupInfo:
			out = append(out, v.Extensions, v.GroupContext.Extensions)
		case *GroupContext:
			out = append(out, v.Extensions)
		case *KeyPackage:
			walkKP(v)
		case *RatchetTree:
			for _, n := range *v {
				if n != nil && n.Leaf != nil {
					walkLeaf(n.Leaf)
				}
			}
		case *UpdatePath:
			walkLeaf(&v.LeafNode)
		case *Commit:
			walkCommit(v)
		case *AuthenticatedContent:
			walkContent(&v.Content)
		case *proposalCodec:
			walkProposal(v.p)
		case Proposal:
			walkProposal(v)
		}
	}
	walk(v)
	return out
}
