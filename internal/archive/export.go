package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"hotline/internal/attach"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/desk"
	"hotline/internal/tlog"
)

// An export is what an archivist takes away: a directory of open formats
// (JSON records, attachments as they were sent, memoranda of conversation
// rendered as HTML) with what proves it complete: for each conversation
// the archive's chain index and the transparency-log entry that commits
// the conversation's chain head, with its inclusion proof against a signed
// checkpoint. The manifest lists every file with its SHA-256; the records
// officer's device signs it, and the server logs the export (a
// records.export entry naming the manifest's SHA-256) before it is handed
// over. Layout (docs/records.md, "Export"):
//
//	manifest.json          what is in it, who made it, every file's SHA-256
//	manifest.sig           the device's Ed25519 signature of it (base64)
//	checkpoint             the signed log checkpoint the proofs are against
//	CONV/records.json      the conversation's records, opened
//	CONV/chain             the chain index, its first message to the head
//	CONV/head.json         the log entry committing the head, and its proof
//	CONV/attachments/SEQ-NAME   each attachment, decrypted
//	CONV/memcons/SEQ-ID.html    each memorandum, rendered
//	README                 how to check it

// ExportFormat names the layout.
const ExportFormat = "hotline-records-export-v1"

// Manifest is an export's manifest.json.
type Manifest struct {
	Format string    `json:"format"`
	Org    string    `json:"org"`
	Made   time.Time `json:"made"`
	// By is the records officer; Device and DeviceKey the device that
	// signs the manifest (its ID follows from the key).
	By            string                 `json:"by"`
	Device        string                 `json:"device"`
	DeviceKey     string                 `json:"device_key"`
	Conversations []ExportedConversation `json:"conversations"`
	Files         []ExportedFile         `json:"files"`
}

// ExportedConversation is one conversation of an export.
type ExportedConversation struct {
	ID string `json:"id"`
	// First and Last are the first message of the chain index and the
	// log's head, which the export reaches; Records how many records it
	// holds, Expired through which message the retention schedule let
	// them go.
	First   int64 `json:"first"`
	Last    int64 `json:"last"`
	Records int   `json:"records"`
	Expired int64 `json:"expired,omitempty"`
	// Calls: the calls on the record (not proven by the chain: see
	// docs/records.md).
	Calls int `json:"calls,omitempty"`
	// HeadIndex is the log entry that commits the head.
	HeadIndex int64 `json:"head_index"`
}

// ExportedFile is a file of the export and its SHA-256 (hex).
type ExportedFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ExportInput is what an export is made of.
type ExportInput struct {
	Store         *Store
	Identity      age.Identity
	Conversations []string
	// Proofs are the log entries committing each conversation's head, and
	// Checkpoint the signed checkpoint they are proven against.
	Proofs     map[string]client.EntryProof
	Checkpoint []byte
	// The manifest's header.
	Org, By, Device, DeviceKey string
	Made                       time.Time
}

// WriteExport writes an export into dir, which must not exist, and returns
// its manifest as written (manifest.json). Each conversation must be
// complete to the head its proof commits (Store.Verify). The caller logs
// the export and signs the manifest (manifest.sig).
func WriteExport(dir string, in ExportInput) (Manifest, []byte, error) {
	m := Manifest{Format: ExportFormat, Org: in.Org, Made: in.Made.UTC(), By: in.By, Device: in.Device, DeviceKey: in.DeviceKey}
	files := map[string][]byte{"checkpoint": in.Checkpoint}
	for _, conv := range in.Conversations {
		ec, err := exportConversation(in, conv, files)
		if err != nil {
			return Manifest{}, nil, fmt.Errorf("%s: %w", conv, err)
		}
		m.Conversations = append(m.Conversations, ec)
	}
	files["README"] = []byte(exportReadme)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Manifest{}, nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return Manifest{}, nil, err
		}
		if err := writeFile(p, b); err != nil {
			return Manifest{}, nil, err
		}
		h := sha256.Sum256(b)
		m.Files = append(m.Files, ExportedFile{Name: name, Size: int64(len(b)), SHA256: hex.EncodeToString(h[:])})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, nil, err
	}
	b = append(b, '\n')
	if err := writeFile(filepath.Join(dir, "manifest.json"), b); err != nil {
		return Manifest{}, nil, err
	}
	return m, b, nil
}

func exportConversation(in ExportInput, conv string, files map[string][]byte) (ExportedConversation, error) {
	proof, ok := in.Proofs[conv]
	if !ok {
		return ExportedConversation{}, errors.New("no log entry commits its head")
	}
	head, err := chainEntry(proof.Entry, conv)
	if err != nil {
		return ExportedConversation{}, err
	}
	seqs, err := in.Store.seqsOf(conv)
	if errors.Is(err, fs.ErrNotExist) {
		return ExportedConversation{}, fmt.Errorf("the archive holds no conversation %s", conv)
	} else if err != nil {
		return ExportedConversation{}, err
	}
	check := in.Store.verifyOne(Conversation{ID: conv, Seqs: seqs}, map[string]Head{conv: {Seq: head.Seq, Chain: head.Chain, Index: proof.Index}}, nil)
	if !check.Complete {
		return ExportedConversation{}, fmt.Errorf("not proven complete to the log's head #%d: %s", head.Seq, strings.Join(check.Problems, "; "))
	}
	links, err := in.Store.ChainIndex(conv)
	if err != nil {
		return ExportedConversation{}, err
	}
	var chain strings.Builder
	for _, l := range links {
		if l.Seq <= head.Seq {
			chain.WriteString(l.line())
		}
	}
	recs, err := in.Store.ReadConversation(in.Identity, conv)
	if err != nil && check.Records > 0 {
		return ExportedConversation{}, err
	}
	recs = slices.DeleteFunc(recs, func(r Record) bool { return r.Seq > head.Seq })
	rb, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return ExportedConversation{}, err
	}
	pb, err := json.MarshalIndent(proof, "", "  ")
	if err != nil {
		return ExportedConversation{}, err
	}
	files[conv+"/records.json"] = append(rb, '\n')
	files[conv+"/chain"] = []byte(chain.String())
	files[conv+"/head.json"] = append(pb, '\n')
	for _, r := range recs {
		switch r.Kind {
		case "attachment":
			name, b, err := openAttachment(in.Store, r)
			if err != nil {
				return ExportedConversation{}, fmt.Errorf("#%d: %w", r.Seq, err)
			}
			files[fmt.Sprintf("%s/attachments/%d-%s", conv, r.Seq, name)] = b
		case "desk":
			if d, err := desk.ParseDoc(r.Data); err == nil && d.MemCon != nil {
				var b bytes.Buffer
				if err := memconPage.Execute(&b, memconView{Record: r, MemCon: d.MemCon, Conversation: conv}); err != nil {
					return ExportedConversation{}, err
				}
				files[fmt.Sprintf("%s/memcons/%d-%s.html", conv, r.Seq, SafeName(d.MemCon.ID))] = b.Bytes()
			}
		}
	}
	calls, err := in.Store.ReadCalls(in.Identity, conv)
	if err != nil {
		return ExportedConversation{}, err
	}
	if len(calls) > 0 {
		cb, err := json.MarshalIndent(calls, "", "  ")
		if err != nil {
			return ExportedConversation{}, err
		}
		files[conv+"/calls.json"] = append(cb, '\n')
		for _, r := range calls {
			for _, a := range r.Call.Audio {
				b, err := in.Store.ReadAudio(in.Identity, conv, a.File)
				if err != nil {
					return ExportedConversation{}, fmt.Errorf("call %s: %w", r.Call.ID, err)
				}
				files[conv+"/calls/"+AudioName(a.File)] = b
			}
		}
	}
	return ExportedConversation{ID: conv, First: check.First, Last: head.Seq, Records: len(recs), Expired: check.Expired, Calls: len(calls), HeadIndex: proof.Index}, nil
}

// ReadAudio opens a call's sealed audio whole. An unfinished stream (the
// archive stopped mid-call) reads as far as it opens: Ogg pages are
// self-delimiting, so players read it to there.
func (s *Store) ReadAudio(id age.Identity, conv, file string) ([]byte, error) {
	rc, err := s.OpenAudio(id, conv, file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxExportFile+1))
	if err != nil && !errors.Is(err, ErrMalformed) {
		return nil, err
	}
	if len(b) > maxExportFile {
		return nil, fmt.Errorf("%s: over %d bytes", file, maxExportFile)
	}
	return b, nil
}

// openAttachment decrypts an attachment the store holds the ciphertext of.
func openAttachment(s *Store, r Record) (string, []byte, error) {
	d, err := attach.UnmarshalDescriptor(r.Data)
	if err != nil {
		return "", nil, err
	}
	ct, err := s.ReadBlob(base64.RawURLEncoding.EncodeToString(d.BlobID))
	if err != nil {
		return "", nil, fmt.Errorf("the archive does not hold the attachment's ciphertext yet: %w", err)
	}
	var out bytes.Buffer
	if err := attach.Decrypt(&out, bytes.NewReader(ct), d); err != nil {
		return "", nil, err
	}
	return SafeName(d.Name), out.Bytes(), nil
}

// SafeName makes a sender's file name safe as one path element.
func SafeName(s string) string {
	s = strings.Map(func(c rune) rune {
		if c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
			return '_'
		}
		return c
	}, path.Base(s))
	if s == "." || s == ".." || s == "" {
		s = "_"
	}
	return s
}

// chainEntry parses a log entry that must commit conv's chain head.
func chainEntry(b []byte, conv string) (Head, error) {
	e, err := tlog.ParseEntry(b)
	if err != nil {
		return Head{}, err
	}
	if e.Type != tlog.TypeConversationChain || e.Conversation != conv {
		return Head{}, fmt.Errorf("the log entry is a %s entry of %q, not the chain head of %s", e.Type, e.Conversation, conv)
	}
	chain, err := base64.StdEncoding.DecodeString(e.Chain)
	if err != nil || len(chain) != sha256.Size {
		return Head{}, fmt.Errorf("%w: the entry's chain", ErrMalformed)
	}
	return Head{Seq: int64(e.Count), Chain: chain}, nil
}

type memconView struct {
	Record       Record
	MemCon       *desk.MemCon
	Conversation string
}

// memconPage renders a memorandum for an archivist; html/template escapes
// every field.
var memconPage = template.Must(template.New("memcon").Funcs(template.FuncMap{
	"paragraphs": func(s string) []string { return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n\n") },
	"date":       func(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Memorandum of conversation: {{.MemCon.Subject}}</title>
<style>body{font-family:serif;max-width:42em;margin:2em auto;line-height:1.5}th,td{text-align:left;padding:.2em .6em;vertical-align:top}.meta{color:#444}</style></head>
<body>
<h1>Memorandum of conversation</h1>
<p class="meta">Subject: {{.MemCon.Subject}}<br>
Held: {{date .MemCon.HeldAt}}<br>
Participants: {{range $i, $p := .MemCon.Participants}}{{if $i}}, {{end}}{{$p}}{{end}}<br>
MemCon {{.MemCon.ID}}; record #{{.Record.Seq}} of conversation {{.Conversation}}, sent by {{.Record.User}} on {{date .Record.Time}}</p>
<h2>Summary</h2>
{{range paragraphs .MemCon.Summary}}<p>{{.}}</p>
{{end}}{{if .MemCon.Commitments}}<h2>Commitments</h2>
<table><tr><th>Owner</th><th>Due</th><th>Commitment</th></tr>
{{range .MemCon.Commitments}}<tr><td>{{.Owner}}</td><td>{{date .Due}}</td><td>{{.Text}}</td></tr>
{{end}}</table>
{{end}}</body>
</html>
`))

const exportReadme = `A Hotline records export (` + ExportFormat + `).

manifest.json lists every file with its SHA-256; manifest.sig is the
records officer's device's Ed25519 signature of it. For each conversation,
CONV/records.json holds its records, CONV/chain the archive's index of
every message (SEQ TIME CHAIN r|- DIGEST: the chain after each message
follows from the one before it and the message's SHA-256), and
CONV/head.json the transparency-log entry that commits the conversation's
chain head, with its inclusion proof against the signed checkpoint.
CONV/attachments holds the attachments, CONV/memcons the memoranda of
conversation as HTML, CONV/calls.json the calls on the record and
CONV/calls their audio, one Ogg Opus file per speaker.

To check it, with any enrolled device of the organisation:

    hotline records verify-export DIR --profile DEVICE

It checks the files, the signature, the checkpoint's signature, each
proof, the chain from the first message to the head, that every message
the index says was recorded is in records.json, and that the log holds
the export's own records.export entry. See docs/records.md.
`

// ExportReport is what VerifyExport found.
type ExportReport struct {
	Manifest Manifest `json:"manifest"`
	// Digest is the manifest's SHA-256 (hex): the export's name in the
	// log's records.export entries.
	Digest string `json:"digest"`
	// Problems with the export as a whole, each starting with a stable
	// code: altered, absent, unlisted, signature, checkpoint.
	Problems      []string      `json:"problems,omitempty"`
	Conversations []ExportCheck `json:"conversations"`
}

// ExportCheck is what VerifyExport found of one conversation.
type ExportCheck struct {
	Conversation string `json:"conversation"`
	First        int64  `json:"first"`
	Last         int64  `json:"last"`
	Records      int    `json:"records"`
	// Anchored: the chain starts from the group's own start, so the
	// first message is proven too; otherwise it starts from the chain the
	// server gave for the archive's first message.
	Anchored bool `json:"anchored"`
	Complete bool `json:"complete"`
	// Problems each start with a stable code: proof, chain, gap, broken,
	// unbound, mismatch, short, records, missing, unindexed, digest.
	Problems []string `json:"problems,omitempty"`
}

// Complete reports whether the export and every conversation in it are
// proven whole.
func (r ExportReport) Complete() bool {
	if len(r.Problems) > 0 || len(r.Conversations) == 0 {
		return false
	}
	for _, c := range r.Conversations {
		if !c.Complete {
			return false
		}
	}
	return true
}

// maxExportFile bounds a file VerifyExport reads into memory.
const maxExportFile = 1 << 30

// VerifyExport checks an export against the organisation's log keys (its
// origin and verifiers, as an enrolled device trusts them). A manifest
// that cannot be read is an error; everything else found wrong is in the
// report. It does not consult the log itself: whether the log holds the
// export's records.export entry is the caller's to check (by Digest).
func VerifyExport(dir, origin string, logKeys note.Verifiers) (ExportReport, error) {
	var rep ExportReport
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return rep, err
	}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep.Manifest); err != nil || rep.Manifest.Format != ExportFormat {
		return rep, fmt.Errorf("%w: manifest.json is not a %s manifest (%v)", ErrMalformed, ExportFormat, err)
	}
	m := rep.Manifest
	digest := sha256.Sum256(mb)
	rep.Digest = hex.EncodeToString(digest[:])
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	// The signature.
	sig, err := os.ReadFile(filepath.Join(dir, "manifest.sig"))
	if err != nil {
		problem("signature: %v", err)
	} else if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig))); err != nil {
		problem("signature: manifest.sig is not base64")
	} else if dev, err := client.VerifyExportSignature(digest, m.DeviceKey, raw); err != nil {
		problem("signature: %v", err)
	} else if dev != m.Device {
		problem("signature: the key is device %s's, the manifest names %s", dev, m.Device)
	}

	// The files: each listed one as listed, and nothing else.
	files := map[string][]byte{}
	listed := map[string]bool{"manifest.json": true, "manifest.sig": true}
	for _, f := range m.Files {
		if !fs.ValidPath(f.Name) || listed[f.Name] {
			problem("altered: the manifest lists %q", f.Name)
			continue
		}
		listed[f.Name] = true
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		st, err := os.Stat(p)
		if err != nil {
			problem("absent: %s", f.Name)
			continue
		}
		if st.Size() > maxExportFile {
			problem("altered: %s is %d bytes, the manifest says %d", f.Name, st.Size(), f.Size)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			problem("absent: %s: %v", f.Name, err)
			continue
		}
		// What is there is checked below as it is, altered or not.
		if h := sha256.Sum256(b); int64(len(b)) != f.Size || hex.EncodeToString(h[:]) != f.SHA256 {
			problem("altered: %s is not the file the manifest lists (its size or SHA-256 differs)", f.Name)
		}
		files[f.Name] = b
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !listed[filepath.ToSlash(rel)] {
			problem("unlisted: %s is not in the manifest", filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return rep, err
	}

	// The checkpoint.
	cp, _, err := tlog.OpenCheckpoint(files["checkpoint"], origin, logKeys)
	if err != nil {
		problem("checkpoint: %v", err)
	}
	for _, ec := range m.Conversations {
		rep.Conversations = append(rep.Conversations, verifyExported(ec, files, cp, err == nil))
	}
	return rep, nil
}

// verifyExported checks one conversation of an export from its files (as
// read; a file that was absent reads as empty).
func verifyExported(ec ExportedConversation, files map[string][]byte, cp tlog.Checkpoint, cpOK bool) (ch ExportCheck) {
	ch.Conversation = ec.ID
	problem := func(format string, args ...any) { ch.Problems = append(ch.Problems, fmt.Sprintf(format, args...)) }
	defer func() { ch.Complete = len(ch.Problems) == 0 }()
	if !convName.MatchString(ec.ID) {
		problem("records: %q is not a conversation ID", ec.ID)
		return ch
	}
	// The head, as the log commits it.
	var proof client.EntryProof
	var head Head
	if err := json.Unmarshal(files[ec.ID+"/head.json"], &proof); err != nil {
		problem("proof: head.json: %v", err)
	} else if h, err := chainEntry(proof.Entry, ec.ID); err != nil {
		problem("proof: %v", err)
	} else if !cpOK {
		problem("proof: without a checkpoint that verifies, the head is not proven")
	} else if err := proof.Verify(cp); err != nil {
		problem("proof: the checkpoint does not include the head's entry: %v", err)
	} else {
		head = h
	}

	// The chain, link by link.
	var links []Link
	for n, line := range strings.SplitAfter(string(files[ec.ID+"/chain"]), "\n") {
		if line == "" {
			continue
		}
		l, err := parseLink(strings.TrimSuffix(line, "\n"))
		if err != nil {
			problem("chain: line %d: %v", n+1, err)
			return ch
		}
		links = append(links, l)
	}
	if len(links) == 0 {
		problem("chain: no chain index")
		return ch
	}
	ch.First, ch.Last = links[0].Seq, links[len(links)-1].Seq
	gid, _ := base64.RawURLEncoding.DecodeString(ec.ID)
	if d := links[0].Digest; links[0].Seq == 1 && d != nil {
		ch.Anchored = bytes.Equal(chainAfter(conversation.ChainStart(gid), d), links[0].Chain)
		if !ch.Anchored {
			problem("broken: #1 does not follow from the conversation's start")
		}
	}
	byseq := map[int64]Link{}
	for i, l := range links {
		byseq[l.Seq] = l
		if i == 0 {
			continue
		}
		prev := links[i-1]
		switch {
		case l.Seq != prev.Seq+1:
			problem("gap: #%d follows #%d", l.Seq, prev.Seq)
		case l.Digest == nil:
			problem("unbound: #%d carries no message digest, so its link cannot be recomputed", l.Seq)
		case !bytes.Equal(chainAfter(prev.Chain, l.Digest), l.Chain):
			problem("broken: #%d does not follow from #%d and its message's digest", l.Seq, prev.Seq)
		}
	}
	switch {
	case head.Chain == nil:
	case head.Seq != ch.Last:
		problem("short: the chain ends at #%d, the log's head is #%d", ch.Last, head.Seq)
	case !bytes.Equal(byseq[head.Seq].Chain, head.Chain):
		problem("mismatch: at #%d the chain differs from the log's head", head.Seq)
	}

	// The records against the index.
	var recs []Record
	if err := json.Unmarshal(files[ec.ID+"/records.json"], &recs); err != nil {
		problem("records: records.json: %v", err)
		return ch
	}
	ch.Records = len(recs)
	have := map[int64]Record{}
	for _, r := range recs {
		if r.Conversation != ec.ID {
			problem("records: #%d is of conversation %q", r.Seq, r.Conversation)
		}
		have[r.Seq] = r
		l, ok := byseq[r.Seq]
		switch {
		case !ok || !l.Recorded:
			problem("unindexed: record #%d is not a recorded message of the index", r.Seq)
		case r.Digest != nil && l.Digest != nil && !bytes.Equal(r.Digest, l.Digest):
			problem("digest: record #%d is of another message than the index's #%d", r.Seq, r.Seq)
		}
	}
	for _, l := range links {
		if _, ok := have[l.Seq]; l.Recorded && l.Seq > ec.Expired && !ok {
			problem("missing: record #%d is not in the export", l.Seq)
		}
	}
	return ch
}

// chainAfter is conversation.ChainNext from a message's digest.
func chainAfter(prev, digest []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(digest)
	return h.Sum(nil)
}
