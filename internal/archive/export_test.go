package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// exportFiles writes a fuzzed export: a manifest listing the three files
// of one conversation with their real hashes, so that the checks get past
// the manifest to the files' contents.
func exportFiles(t *testing.T, dir string, manifest []byte, chain, head, records []byte) {
	t.Helper()
	files := map[string][]byte{"c1/chain": chain, "c1/head.json": head, "c1/records.json": records}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if manifest == nil {
		m := Manifest{Format: ExportFormat, Conversations: []ExportedConversation{{ID: "c1"}}}
		for name, b := range files {
			h := sha256.Sum256(b)
			m.Files = append(m.Files, ExportedFile{Name: name, Size: int64(len(b)), SHA256: hex.EncodeToString(h[:])})
		}
		var err error
		if manifest, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerifyExport: whatever an export's manifest, chain index, proof and
// records hold, verifying it returns ErrMalformed (an unreadable manifest)
// or a report, never a complete one (nothing here is signed by the log),
// and reads nothing outside the export.
func FuzzVerifyExport(f *testing.F) {
	link := "2 1764000000 " + strings.Repeat("ab", 32) + " r " + strings.Repeat("cd", 32) + "\n"
	f.Add([]byte(nil), []byte(link), []byte(`{"index":3,"entry":"e30=","size":4,"proof":[]}`), []byte(`[{"conversation":"c1","seq":2,"kind":"text","text":"x","archived":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`{"format":"`+ExportFormat+`","conversations":[{"id":"../x"}],"files":[{"name":"../../etc/passwd"}]}`), []byte(""), []byte("{}"), []byte("[]"))
	f.Add([]byte(`{"format":"other"}`), []byte("x"), []byte("null"), []byte("{"))
	_, vkey, err := note.GenerateKey(nil, "log.example")
	if err != nil {
		f.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, manifest, chain, head, records []byte) {
		dir := t.TempDir()
		exportFiles(t, dir, manifest, chain, head, records)
		rep, err := VerifyExport(dir, "log.example", note.VerifierList(v))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if rep.Complete() {
			t.Fatalf("complete without a signed checkpoint: %+v", rep)
		}
		for _, c := range rep.Conversations {
			if c.Complete {
				t.Fatalf("a conversation complete without a signed checkpoint: %+v", c)
			}
		}
	})
}

// TestVerifyExportMalformed: exports that are not exports are refused with
// stable codes, and nothing else is read.
func TestVerifyExportMalformed(t *testing.T) {
	_, vkey, _ := note.GenerateKey(nil, "log.example")
	v, _ := note.NewVerifier(vkey)
	check := func(name string, manifest, chain, head, records []byte, want ...string) {
		t.Helper()
		dir := t.TempDir()
		exportFiles(t, dir, manifest, chain, head, records)
		rep, err := VerifyExport(dir, "log.example", note.VerifierList(v))
		if len(want) == 1 && want[0] == "malformed" {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %v, want ErrMalformed", name, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, p := range rep.Problems {
			got = append(got, strings.SplitN(p, ":", 2)[0])
		}
		for _, c := range rep.Conversations {
			for _, p := range c.Problems {
				got = append(got, strings.SplitN(p, ":", 2)[0])
			}
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(got, " "), w) {
				t.Errorf("%s: problems %q, want %s", name, got, w)
			}
		}
	}
	link := func(seq, mark string) string {
		return seq + " 1764000000 " + strings.Repeat("ab", 32) + " " + mark + " " + strings.Repeat("cd", 32) + "\n"
	}
	check("not JSON", []byte("{"), nil, nil, nil, "malformed")
	check("another format", []byte(`{"format":"x"}`), nil, nil, nil, "malformed")
	check("unknown field", []byte(`{"format":"`+ExportFormat+`","extra":1}`), nil, nil, nil, "malformed")
	check("a name outside", []byte(`{"format":"`+ExportFormat+`","files":[{"name":"../x","size":0,"sha256":""}]}`), nil, nil, nil, "altered", "unlisted", "signature", "checkpoint")
	check("a bad conversation ID", []byte(`{"format":"`+ExportFormat+`","conversations":[{"id":"../c1"}]}`), nil, nil, nil, "records", "unlisted")
	check("no checkpoint, no proof", nil, []byte(link("2", "r")), []byte(`{}`), []byte(`[]`), "signature", "checkpoint", "proof", "missing")
	check("a chain that does not parse", nil, []byte("2 x y r\n"), []byte(`{}`), []byte(`[]`), "chain")
	check("a broken chain", nil, []byte(link("2", "-")+link("3", "-")), []byte(`{}`), []byte(`[]`), "broken")
	check("a gap", nil, []byte(link("2", "-")+link("4", "-")), []byte(`{}`), []byte(`[]`), "gap")
	check("a record not indexed", nil, []byte(link("2", "-")), []byte(`{}`), []byte(`[{"conversation":"c1","seq":2,"kind":"text"}]`), "unindexed")
	check("records that do not parse", nil, []byte(link("2", "r")), []byte(`{}`), []byte(`{`), "records")
}
