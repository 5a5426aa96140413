package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func newKey(t testing.TB) (*age.HybridIdentity, *age.HybridRecipient) {
	t.Helper()
	id, rcpt, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	i, err := age.ParseHybridIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecipient(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	return i, r
}

const canary = "CANARY 31c9 the minister resigns on Friday"

func TestSealRead(t *testing.T) {
	id, to := newKey(t)
	dir := t.TempDir()
	s, err := Create(dir, to)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	recs := []Record{
		{Conversation: "c1", Seq: 2, Time: at, User: "a@x.example", Kind: "text", Text: canary},
		{Conversation: "c1", Seq: 3, Time: at, User: "b@x.example", Kind: "desk", Data: []byte(canary)},
		{Conversation: "c2", Seq: 1, Time: at, Kind: "members", Added: []string{"c@x.example"}},
	}
	want := slices.Clone(recs)
	for i := range recs {
		r := recs[i]
		r.Data = bytes.Clone(r.Data)
		if err := s.Seal(&r); err != nil {
			t.Fatal(err)
		}
		if r.Text != "" || r.Data != nil {
			t.Error("Seal left the record's content in place")
		}
		want[i].Archived = time.Time{}
	}
	// Sealing again (after a crash) rewrites the same record.
	again := recs[0]
	if err := s.Seal(&again); err != nil {
		t.Fatal(err)
	}
	cs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ID != "c1" || !slices.Equal(cs[0].Seqs, []int64{2, 3}) || !slices.Equal(cs[1].Seqs, []int64{1}) {
		t.Fatalf("list: %+v", cs)
	}
	got, err := s.ReadConversation(id, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Archived.IsZero() {
			t.Error("no archival time")
		}
		got[i].Archived = time.Time{}
		if got[i].Text != want[i].Text || !bytes.Equal(got[i].Data, want[i].Data) || got[i].Seq != want[i].Seq || got[i].User != want[i].User {
			t.Errorf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// No plaintext on disk.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte("a@x.example")) {
				t.Errorf("plaintext in %s", p)
			}
		}
		return nil
	})
	// Another key opens nothing; the store keeps its key.
	other, otherTo := newKey(t)
	if _, err := s.Read(other, "c1", 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("another key: %v", err)
	}
	if _, err := Create(dir, otherTo); !errors.Is(err, ErrRecipient) {
		t.Errorf("a second key for one store: %v", err)
	}
	if _, err := Create(dir, to); err != nil {
		t.Errorf("reopening with the same key: %v", err)
	}
	if _, err := s.ReadConversation(id, "c3"); err == nil {
		t.Error("a conversation the store does not hold")
	}
}

func TestSealRefuses(t *testing.T) {
	_, to := newKey(t)
	s, err := Create(t.TempDir(), to)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{
		{Conversation: "../etc", Seq: 1, Kind: "text"},
		{Conversation: "", Seq: 1, Kind: "text"},
		{Conversation: "c1", Seq: 0, Kind: "text"},
		{Conversation: "c1", Seq: -4, Kind: "text"},
	} {
		if err := s.Seal(&r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	ro, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Seal(&Record{Conversation: "c1", Seq: 1, Kind: "text"}); err == nil {
		t.Error("a store opened to read sealed a record")
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("opened a directory that is no store")
	}
}

// sealRaw seals arbitrary bytes as a record file would be.
func sealRaw(t testing.TB, to age.Recipient, plain []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := age.Encrypt(&out, to)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestUnsealMalformed(t *testing.T) {
	id, to := newKey(t)
	good := sealRaw(t, to, []byte(`{"conversation":"c1","seq":1,"epoch":0,"time":"2026-12-04T09:00:00Z","kind":"text","text":"hi","archived":"2026-12-04T09:00:01Z"}`))
	if _, err := Unseal(bytes.NewReader(good), id); err != nil {
		t.Fatalf("good record: %v", err)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"not age":          []byte("hello"),
		"truncated":        good[:len(good)-10],
		"flipped":          append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1),
		"not JSON":         sealRaw(t, to, []byte("plain words")),
		"unknown field":    sealRaw(t, to, []byte(`{"conversation":"c1","seq":1,"kind":"text","extra":1}`)),
		"trailing":         sealRaw(t, to, []byte(`{"conversation":"c1","seq":1,"kind":"text"} {}`)),
		"no kind":          sealRaw(t, to, []byte(`{"conversation":"c1","seq":1}`)),
		"bad conversation": sealRaw(t, to, []byte(`{"conversation":"a/b","seq":1,"kind":"text"}`)),
		"seq 0":            sealRaw(t, to, []byte(`{"conversation":"c1","seq":0,"kind":"text"}`)),
		"too large":        sealRaw(t, to, bytes.Repeat([]byte(" "), maxRecord+1)),
	}
	for name, b := range cases {
		if _, err := Unseal(bytes.NewReader(b), id); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKeys(t *testing.T) {
	idStr, rcpt, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(idStr, "AGE-SECRET-KEY-PQ-1") || !strings.HasPrefix(rcpt, "age1pq1") {
		t.Fatalf("key %.24s…, recipient %.12s…", idStr, rcpt)
	}
	f := filepath.Join(t.TempDir(), "r.txt")
	os.WriteFile(f, []byte("# the records key\n\n"+rcpt+"\n"), 0o644)
	if r, err := ParseRecipient(f); err != nil || r.String() != rcpt {
		t.Errorf("recipient from a file: %v", err)
	}
	for _, bad := range []string{"", "age1qqqq", "/no/such/file", "age1pq1notbech32"} {
		if _, err := ParseRecipient(bad); err == nil {
			t.Errorf("recipient %q accepted", bad)
		}
	}
	// A classical (X25519) age key is not a records key.
	x, _ := age.GenerateX25519Identity()
	if _, err := ParseRecipient(x.Recipient().String()); err == nil {
		t.Error("an X25519 recipient accepted as a records key")
	}
	kf := filepath.Join(t.TempDir(), "k.txt")
	os.WriteFile(kf, []byte(x.String()), 0o600)
	if _, err := ParseIdentity(kf); err == nil {
		t.Error("an X25519 identity accepted")
	}
}

func TestBlobs(t *testing.T) {
	_, to := newKey(t)
	s, err := Create(t.TempDir(), to)
	if err != nil {
		t.Fatal(err)
	}
	ct := []byte("ciphertext bytes")
	h := sha256.Sum256(ct)
	b := Blob{ID: base64.RawURLEncoding.EncodeToString([]byte("blob-1")), Size: int64(len(ct)), Hash: h[:]}
	for range 2 { // wanting twice lists once
		if err := s.Want(b); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ := s.Pending(); len(p) != 1 || p[0].ID != b.ID {
		t.Fatalf("pending: %+v", p)
	}
	if err := s.PutBlob(b, ct[:3]); !errors.Is(err, ErrMalformed) {
		t.Errorf("a short ciphertext: %v", err)
	}
	if err := s.PutBlob(b, ct); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	if got, err := s.ReadBlob(b.ID); err != nil || !bytes.Equal(got, ct) {
		t.Errorf("read blob: %q %v", got, err)
	}
	if err := s.Want(b); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Error("a blob held is wanted again")
	}
	for _, bad := range []Blob{{ID: "../x", Size: 1, Hash: h[:]}, {ID: "ok", Size: -1, Hash: h[:]}, {ID: "ok", Size: 1, Hash: h[:5]}} {
		if err := s.Want(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("want %+v: %v", bad, err)
		}
	}
	if _, err := s.ReadBlob("../recipient"); !errors.Is(err, ErrMalformed) {
		t.Errorf("read outside the store: %v", err)
	}
}

// FuzzDecodeRecord: whatever a record decrypts to, decoding it returns a
// record that names a conversation, a sequence number and a kind (a call
// record: no sequence number, and its call), or ErrMalformed; it never
// panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"conversation":"c1","seq":1,"epoch":0,"time":"2026-12-04T09:00:00Z","kind":"text","text":"hi","archived":"2026-12-04T09:00:01Z"}`))
	f.Add([]byte(`{"conversation":"c1","seq":1,"kind":"members","added":["a@b.example"]}`))
	f.Add([]byte(`{"conversation":"c1","seq":0,"kind":"call","call":{"id":"ab12","after":3,"participants":[]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		isCall := r.Kind == "call"
		if !convName.MatchString(r.Conversation) || r.Kind == "" || (r.Seq <= 0) != isCall || (r.Call != nil) != isCall {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzUnseal: arbitrary bytes as a sealed record are refused with
// ErrMalformed, never a panic.
func FuzzUnseal(f *testing.F) {
	id, to := newKey(f)
	f.Add(sealRaw(f, to, []byte(`{"conversation":"c1","seq":1,"kind":"text"}`)))
	f.Add([]byte("age-encryption.org/v1\n-> mlkem768x25519 AAAA\n--- AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Unseal(bytes.NewReader(b), id); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
	})
}

// chainOf folds conversation-style links over n fake messages.
func chainOf(n int) [][]byte {
	out := make([][]byte, n+1)
	out[0] = make([]byte, 32)
	for i := 1; i <= n; i++ {
		out[i] = chainAfter(out[i-1], digestOf(i))
	}
	return out
}

// digestOf stands for the SHA-256 of message i.
func digestOf[T int | int64](i T) []byte {
	h := sha256.Sum256([]byte{byte(i)})
	return h[:]
}

// storeWith makes a store holding messages 3..10 of conversation c1: the
// odd ones sealed as records, the even ones indexed only.
func storeWith(t *testing.T) (*Store, [][]byte) {
	t.Helper()
	_, to := newKey(t)
	s, err := Create(t.TempDir(), to)
	if err != nil {
		t.Fatal(err)
	}
	chain := chainOf(12)
	for seq := int64(3); seq <= 10; seq++ {
		rec := seq%2 == 1
		if rec {
			if err := s.Seal(&Record{Conversation: "c1", Seq: seq, Kind: "text", Text: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Index(Link{Conversation: "c1", Seq: seq, Time: time.Unix(1000*seq, 0), Chain: chain[seq], Digest: digestOf(seq), Recorded: rec}); err != nil {
			t.Fatal(err)
		}
	}
	return s, chain
}

func codes(ch Check) []string {
	var out []string
	for _, p := range ch.Problems {
		code, _, _ := strings.Cut(p, ":")
		out = append(out, code)
	}
	return out
}

func TestVerify(t *testing.T) {
	verify := func(s *Store, heads map[string]Head) Check {
		t.Helper()
		cs, err := s.Verify(heads, nil)
		if err != nil || len(cs) != 1 {
			t.Fatalf("verify: %v %v", cs, err)
		}
		return cs[0]
	}
	t.Run("complete", func(t *testing.T) {
		s, chain := storeWith(t)
		// A message handled twice (a crash before the state was saved).
		if err := s.Index(Link{Conversation: "c1", Seq: 10, Time: time.Unix(10000, 0), Chain: chain[10]}); err != nil {
			t.Fatal(err)
		}
		ch := verify(s, map[string]Head{"c1": {Seq: 8, Chain: chain[8], Index: 40}})
		if !ch.Complete || ch.First != 3 || ch.Last != 10 || ch.Records != 4 || ch.HeadSeq != 8 {
			t.Errorf("%+v", ch)
		}
	})
	cases := []struct {
		name  string
		harm  func(t *testing.T, s *Store)
		head  Head
		want  []string
		heads bool
	}{
		{name: "a record deleted", harm: func(t *testing.T, s *Store) {
			os.Remove(filepath.Join(s.Dir(), "c1", recordName(5)))
		}, want: []string{"missing"}},
		{name: "a record added", harm: func(t *testing.T, s *Store) {
			s.Seal(&Record{Conversation: "c1", Seq: 6, Kind: "text", Text: "forged"})
		}, want: []string{"unindexed"}},
		{name: "a message left out", harm: func(t *testing.T, s *Store) {
			rewriteIndex(t, s, func(l string) bool { return !strings.HasPrefix(l, "6 ") })
		}, want: []string{"gap"}},
		{name: "a record and its line deleted", harm: func(t *testing.T, s *Store) {
			os.Remove(filepath.Join(s.Dir(), "c1", recordName(7)))
			rewriteIndex(t, s, func(l string) bool { return !strings.HasPrefix(l, "7 ") })
		}, want: []string{"gap"}},
		{name: "another message's digest", harm: func(t *testing.T, s *Store) {
			p := filepath.Join(s.Dir(), "c1", "chain")
			b, _ := os.ReadFile(p)
			b = bytes.Replace(b, fmt.Appendf(nil, "%x", digestOf(6)), fmt.Appendf(nil, "%x", digestOf(99)), 1)
			os.WriteFile(p, b, 0o600)
		}, want: []string{"broken"}},
		{name: "the tail cut", harm: func(t *testing.T, s *Store) {
			os.Remove(filepath.Join(s.Dir(), "c1", recordName(9)))
			rewriteIndex(t, s, func(l string) bool { return !strings.HasPrefix(l, "9 ") && !strings.HasPrefix(l, "10 ") })
		}, want: []string{"behind"}},
		{name: "other messages", head: Head{Seq: 8, Chain: chainOf(9)[9]}, want: []string{"mismatch"}},
		{name: "no head", want: []string{"unlogged"}, heads: true},
		{name: "joined after the head", head: Head{Seq: 2}, want: []string{"before"}},
		{name: "a bad line", harm: func(t *testing.T, s *Store) {
			f, _ := os.OpenFile(filepath.Join(s.Dir(), "c1", "chain"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("11 11000 zz r\n")
			f.Close()
		}, want: []string{"index"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, chain := storeWith(t)
			if tc.harm != nil {
				tc.harm(t, s)
			}
			heads := map[string]Head{"c1": {Seq: 10, Chain: chain[10]}}
			if tc.head.Seq != 0 {
				heads["c1"] = tc.head
			}
			if tc.heads {
				heads = nil
			}
			ch := verify(s, heads)
			if ch.Complete || !slices.Equal(codes(ch), tc.want) {
				t.Errorf("got %v (complete %v), want %v", ch.Problems, ch.Complete, tc.want)
			}
		})
	}
}

func rewriteIndex(t *testing.T, s *Store, keep func(string) bool) {
	t.Helper()
	p := filepath.Join(s.Dir(), "c1", "chain")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" && keep(l) {
			out = append(out, l)
		}
	}
	if err := os.WriteFile(p, []byte(strings.Join(out, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseLink: an index line is a link with a positive seq and a
// 32-byte chain, or ErrMalformed.
func FuzzParseLink(f *testing.F) {
	f.Add("12 1764000000 " + strings.Repeat("ab", 32) + " r")
	f.Add("12 1764000000 " + strings.Repeat("ab", 32) + " - " + strings.Repeat("cd", 32))
	f.Add("12 1764000000 " + strings.Repeat("ab", 32) + " r cd")
	f.Add("1 0 00 -")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		l, err := parseLink(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if l.Seq <= 0 || len(l.Chain) != 32 || (l.Digest != nil && len(l.Digest) != 32) {
			t.Fatalf("accepted %+v", l)
		}
		// What parses writes back as a line that parses to the same.
		again, err := parseLink(strings.TrimSuffix(l.line(), "\n"))
		if err != nil || again.Seq != l.Seq || !bytes.Equal(again.Chain, l.Chain) || !bytes.Equal(again.Digest, l.Digest) || again.Recorded != l.Recorded {
			t.Fatalf("%q: wrote %q, read back %+v, %v", line, l.line(), again, err)
		}
	})
}

func TestRetention(t *testing.T) {
	s, chain := storeWith(t) // messages 3..10 at 3000 s .. 10000 s; odd ones records
	ct := []byte("attachment ciphertext")
	h := sha256.Sum256(ct)
	b := Blob{ID: "blob-5", Size: int64(len(ct)), Hash: h[:]}
	if err := s.NoteBlob("c1", 5, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(b, ct); err != nil {
		t.Fatal(err)
	}
	level := func(string) string { return "secret" }
	now := time.Unix(10500, 0)
	p := Policy{Retention: map[string]time.Duration{"secret": 4000 * time.Second}}

	// Messages before 6500 s go: 3..6, of which records 3 and 5.
	es, err := s.Expirable(p, level, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Through != 6 || !slices.Equal(es[0].Records, []int64{3, 5}) {
		t.Fatalf("expirable: %+v", es)
	}
	// A hold on the conversation, or on everything, keeps them; so does
	// a level without a schedule.
	for _, holds := range []map[string]string{{"h1": "c1"}, {"h2": ""}} {
		held := Policy{Retention: p.Retention, Holds: holds}
		if es, _ := s.Expirable(held, level, now); len(es) != 0 {
			t.Errorf("held %v: %+v", holds, es)
		}
	}
	if es, _ := s.Expirable(p, func(string) string { return "unclassified" }, now); len(es) != 0 {
		t.Errorf("no schedule: %+v", es)
	}

	if err := s.Expire("c1", 6); err != nil {
		t.Fatal(err)
	}
	cs, _ := s.List()
	if !slices.Equal(cs[0].Seqs, []int64{7, 9}) || s.HasBlob(b.ID) {
		t.Errorf("after expiry: %v, blob kept %v", cs[0].Seqs, s.HasBlob(b.ID))
	}
	if es, _ := s.Expirable(p, level, now); len(es) != 0 {
		t.Errorf("expired twice: %+v", es)
	}
	checks, err := s.Verify(map[string]Head{"c1": {Seq: 10, Chain: chain[10]}}, nil)
	if err != nil || !checks[0].Complete || checks[0].Expired != 6 || checks[0].Records != 2 {
		t.Errorf("verify after expiry: %+v %v", checks, err)
	}
	// A record back after its expiry shows.
	if err := s.Seal(&Record{Conversation: "c1", Seq: 3, Kind: "text", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if checks, _ := s.Verify(map[string]Head{"c1": {Seq: 10, Chain: chain[10]}}, nil); checks[0].Complete || !slices.Equal(codes(checks[0]), []string{"unexpired"}) {
		t.Errorf("a record kept past its expiry: %+v", checks[0].Problems)
	}
}

func TestBlobsIndexMalformed(t *testing.T) {
	s, _ := storeWith(t)
	for _, line := range []string{"x blob-1\n", "5\n", "5 ../recipient\n"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), "c1", "blobs"), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Expire("c1", 4); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", line, err)
		}
	}
}

// BenchmarkSeal: what sealing one message to the records key costs the
// archive (age with the ML-KEM-768+X25519 recipient, written and synced,
// and its index line), against writing and syncing the same bytes in the
// clear as a baseline in the same run.
func BenchmarkSeal(b *testing.B) {
	_, to := newKey(b)
	text := strings.Repeat("The delegation lands at 0600; the minister meets them. ", 18) // ~1 KB
	chain := make([]byte, 32)
	b.Run("plain-write", func(b *testing.B) {
		dir := b.TempDir()
		for i := range b.N {
			if err := writeFile(filepath.Join(dir, recordName(int64(i+1))), []byte(text)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seal-and-index", func(b *testing.B) {
		s, err := Create(b.TempDir(), to)
		if err != nil {
			b.Fatal(err)
		}
		for i := range b.N {
			r := Record{Conversation: "c1", Seq: int64(i + 1), Kind: "text", Text: text}
			if err := s.Seal(&r); err != nil {
				b.Fatal(err)
			}
			if err := s.Index(Link{Conversation: "c1", Seq: int64(i + 1), Time: time.Now(), Chain: chain, Recorded: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
