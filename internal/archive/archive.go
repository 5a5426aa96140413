// Package archive is the organisation's archive device and its sealed
// store of records.
//
// The archive device is an ordinary member of every conversation whose
// classification requires it: visible to every member as the archive (its
// account holds the archive role), and impossible for members to remove
// (the server refuses the commit). It decrypts what it receives as a
// member, and at once seals each message to the organisation's records key
// (an age ML-KEM-768+X25519 hybrid recipient, post-quantum) and drops the
// plaintext: its device keeps no message history. The records officer
// holds the private records key, away from the archive host, so a stolen
// archive disk, or the server, yields no past content.
//
// While it runs (Run), the archive device also answers every call of a
// conversation on the record, listening, and seals each speaker's audio as
// it arrives, with a call record when the call ends (recorder.go,
// calls.go).
//
// A Store is a directory:
//
//	recipient            the records key's recipient (age1pq1…), fixed on first use
//	CONV/SEQ.age         one message of conversation CONV, sealed (age format)
//	CONV/call-CALL.age   a call of CONV that the archive listened to: who
//	                     took part, when, and its audio files (see Call)
//	CONV/call-CALL-N.ogg.age  one speaker's audio of that call, Ogg Opus,
//	                     sealed as it was heard
//	blobs/BLOB           an attachment's ciphertext, as the server held it
//	                     (its key is inside the sealed message that sent it)
//	pending-blobs.json   attachments still to fetch: blob names and sizes, no keys
//
// Every record is a standard age file: `age -d -i records.key
// CONV/SEQ.age` opens one without Hotline.
package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
)

// Errors with stable meanings.
var (
	// ErrRecipient: the records key given is not the one this store seals to.
	ErrRecipient = errors.New("archive: the store seals to a different records key")
	// ErrMalformed wraps every error decoding a record.
	ErrMalformed = errors.New("archive: malformed record")
)

// Record is one message as the archive received it. Its JSON is what a
// sealed record holds.
type Record struct {
	Conversation string    `json:"conversation"`
	Seq          int64     `json:"seq"`
	Epoch        uint64    `json:"epoch"`
	Time         time.Time `json:"time"`
	User         string    `json:"user,omitempty"`
	Device       string    `json:"device,omitempty"`
	Kind         string    `json:"kind"` // text, attachment, title, desk, members, call
	Text         string    `json:"text,omitempty"`
	Data         []byte    `json:"data,omitempty"`
	Added        []string  `json:"added,omitempty"`
	Removed      []string  `json:"removed,omitempty"`
	// Call is a call record's call (Kind "call", Seq 0: not a message).
	Call *Call `json:"call,omitempty"`
	// Archived is when the archive sealed it.
	Archived time.Time `json:"archived"`
	// Digest is the SHA-256 of the message as the server held it: the
	// hash the conversation's message chain links (records sealed before
	// it was kept have none).
	Digest []byte `json:"message_sha256,omitempty"`
}

// maxRecord bounds a sealed record's plaintext (a message is at most
// 64 KiB of content; its JSON, base64 and all, stays well under this).
const maxRecord = 1 << 20

// convName is what a conversation ID looks like (base64url of a group ID).
var convName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Store is an archive's directory of sealed records.
type Store struct {
	dir string
	to  *age.HybridRecipient
	mu  sync.Mutex // guards pending-blobs.json
}

// GenerateKey makes a records key: the identity (AGE-SECRET-KEY-PQ-1…,
// for the records officer alone) and its recipient (age1pq1…, for the
// archive).
func GenerateKey() (identity, recipient string, err error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return "", "", err
	}
	return id.String(), id.Recipient().String(), nil
}

// ParseRecipient reads a records key's recipient: the age1pq1… string or
// the name of a file holding it (comment lines starting with # skipped).
func ParseRecipient(s string) (*age.HybridRecipient, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "age1pq1") {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("records key: not an age1pq1… recipient, nor a file holding one: %w", err)
		}
		s = firstLine(string(b))
	}
	r, err := age.ParseHybridRecipient(s)
	if err != nil {
		return nil, fmt.Errorf("records key: %w (a records key is a post-quantum age recipient, age1pq1…; make one with hotline records keygen)", err)
	}
	return r, nil
}

// ParseIdentity reads the records officer's identity from a file
// (AGE-SECRET-KEY-PQ-1…; comment lines skipped).
func ParseIdentity(file string) (*age.HybridIdentity, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	id, err := age.ParseHybridIdentity(firstLine(string(b)))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (a records identity is AGE-SECRET-KEY-PQ-1…)", file, err)
	}
	return id, nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// Create opens the store in dir for sealing to the recipient to, making
// it if need be. The first use fixes the records key; a store made for
// another key refuses (ErrRecipient): rotating the key starts a new store.
func Create(dir string, to *age.HybridRecipient) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "recipient")
	want := to.String()
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFile(path, []byte(want+"\n")); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case strings.TrimSpace(string(b)) != want:
		return nil, fmt.Errorf("%w: %s holds %.20s…", ErrRecipient, path, strings.TrimSpace(string(b)))
	}
	return &Store{dir: dir, to: to}, nil
}

// Open opens a store to read (the records officer's side).
func Open(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, "recipient")); err != nil {
		return nil, fmt.Errorf("%s is not an archive store: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func recordName(seq int64) string { return fmt.Sprintf("%012d.age", seq) }

// Seal seals r to the records key and writes it, durably, before it
// returns; then it clears r's content. Sealing a message twice (after a
// crash between sealing and the device saving its state) rewrites the
// same record.
func (s *Store) Seal(r *Record) error {
	if s.to == nil {
		return errors.New("archive: store opened read-only")
	}
	if !convName.MatchString(r.Conversation) || r.Seq <= 0 {
		return fmt.Errorf("%w: conversation %q, seq %d", ErrMalformed, r.Conversation, r.Seq)
	}
	if r.Archived.IsZero() {
		r.Archived = time.Now().UTC()
	}
	b, err := sealJSON(s.to, r)
	if err != nil {
		return err
	}
	clear(r.Data)
	r.Text, r.Data = "", nil
	dir := filepath.Join(s.dir, r.Conversation)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, recordName(r.Seq)), b)
}

// sealJSON returns r as JSON, sealed to the records key.
func sealJSON(to age.Recipient, r *Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, to)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeFile writes b to path atomically and durably.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Conversation is one conversation's records in a store: what anyone
// with the disk sees without the records key.
type Conversation struct {
	ID   string  `json:"conversation"`
	Seqs []int64 `json:"seqs"`
	// Calls are the IDs of the calls the store holds records of.
	Calls []string `json:"calls,omitempty"`
}

// List returns the store's conversations and the sequence numbers of the
// records it holds of each, in order.
func (s *Store) List() ([]Conversation, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "blobs" || !convName.MatchString(e.Name()) {
			continue
		}
		seqs, err := s.seqsOf(e.Name())
		if err != nil {
			return nil, err
		}
		calls, err := s.Calls(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Conversation{ID: e.Name(), Seqs: seqs, Calls: calls})
	}
	return out, nil
}

// seqsOf returns the sequence numbers of the records the store holds of a
// conversation, in order; fs.ErrNotExist if it holds nothing of it.
func (s *Store) seqsOf(conv string) ([]int64, error) {
	if !convName.MatchString(conv) {
		return nil, fmt.Errorf("%w: conversation %q", ErrMalformed, conv)
	}
	files, err := os.ReadDir(filepath.Join(s.dir, conv))
	if err != nil {
		return nil, err
	}
	var seqs []int64
	for _, f := range files {
		name, ok := strings.CutSuffix(f.Name(), ".age")
		if !ok {
			continue
		}
		if seq, err := strconv.ParseInt(name, 10, 64); err == nil && seq > 0 {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// HasConversation reports whether the store holds anything of a
// conversation.
func (s *Store) HasConversation(conv string) bool {
	if !convName.MatchString(conv) {
		return false
	}
	st, err := os.Stat(filepath.Join(s.dir, conv))
	return err == nil && st.IsDir()
}

// Read opens one record with the records officer's identity.
func (s *Store) Read(id age.Identity, conv string, seq int64) (Record, error) {
	if !convName.MatchString(conv) {
		return Record{}, fmt.Errorf("%w: conversation %q", ErrMalformed, conv)
	}
	f, err := os.Open(filepath.Join(s.dir, conv, recordName(seq)))
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	return Unseal(f, id)
}

// Unseal decrypts and decodes one sealed record.
func Unseal(r io.Reader, id age.Identity) (Record, error) {
	pr, err := age.Decrypt(r, id)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b, err := io.ReadAll(io.LimitReader(pr, maxRecord+1))
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	defer clear(b)
	if len(b) > maxRecord {
		return Record{}, fmt.Errorf("%w: over %d bytes", ErrMalformed, maxRecord)
	}
	return decodeRecord(b)
}

func decodeRecord(b []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Record{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	isCall := rec.Kind == "call"
	if !convName.MatchString(rec.Conversation) || rec.Kind == "" || (rec.Seq <= 0) != isCall || (rec.Call != nil) != isCall {
		return Record{}, fmt.Errorf("%w: conversation %q, seq %d, kind %q", ErrMalformed, rec.Conversation, rec.Seq, rec.Kind)
	}
	return rec, nil
}

// ReadConversation opens every record of a conversation, in order.
func (s *Store) ReadConversation(id age.Identity, conv string) ([]Record, error) {
	seqs, err := s.seqsOf(conv)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the archive holds no conversation %s", conv)
	} else if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(seqs))
	for _, seq := range seqs {
		r, err := s.Read(id, conv, seq)
		if err != nil {
			return out, fmt.Errorf("%s/%s: %w", conv, recordName(seq), err)
		}
		out = append(out, r)
	}
	return out, nil
}
