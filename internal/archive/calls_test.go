package archive

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A call's audio is sealed as it is written, in age's 64 KiB chunks: at no
// time is any of it in the clear on disk, and the records key opens it
// whole. Call files sit beside the messages' records without being taken
// for any: the list, the proof of completeness and expiry see only the
// messages, and the transcript places the call after the message before it.
func TestSealCall(t *testing.T) {
	chain := chainOf(12)
	key, to := newKey(t)
	s, err := Create(t.TempDir(), to)
	if err != nil {
		t.Fatal(err)
	}
	for seq := int64(3); seq <= 10; seq++ {
		if err := s.Seal(&Record{Conversation: "c1", Seq: seq, Kind: "text", Text: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Index(Link{Conversation: "c1", Seq: seq, Time: time.Unix(1000*seq, 0), Chain: chain[seq], Recorded: true}); err != nil {
			t.Fatal(err)
		}
	}

	// 200 KiB of "audio", a canary every 4 KiB: several chunks. While it
	// is being written, and after, no canary is on disk.
	const call = "0123abcd"
	if err := s.NoteCall("c1", call, 6); err != nil {
		t.Fatal(err)
	}
	var audio []byte
	for len(audio) < 200<<10 {
		audio = append(audio, "OggS "+canary+" "+strings.Repeat("\x00", 4<<10)...)
	}
	w, name, err := s.SealAudio("c1", call)
	if err != nil {
		t.Fatal(err)
	}
	if name != "call-"+call+"-1.ogg.age" {
		t.Errorf("first audio file %q", name)
	}
	for chunk := range slices.Chunk(audio, 10<<10) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		noPlain(t, s.Dir())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, name2, err := s.SealAudio("c1", call)
	if err != nil {
		t.Fatal(err)
	}
	w2.Write([]byte("OggS " + canary))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if name2 != "call-"+call+"-2.ogg.age" {
		t.Errorf("second audio file %q", name2)
	}
	at := time.Unix(6500, 0).UTC()
	c := &Call{ID: call, Caller: "a@x.example", After: 6, Rang: at, Ended: at.Add(time.Minute), Reason: "hangup",
		Participants: []CallParticipant{{User: "a@x.example", Role: "member", State: "left"}, {User: "archive@x.example", Role: "archive", State: "left", Listening: true}},
		Audio:        []Audio{{File: name, User: "a@x.example", Duration: time.Minute}, {File: name2, User: "b@x.example"}}}
	if err := s.SealCall(&Record{Conversation: "c1", Kind: "call", Time: at, Call: c}); err != nil {
		t.Fatal(err)
	}
	noPlain(t, s.Dir())

	// The records officer opens the call and its audio.
	calls, err := s.ReadCalls(key, "c1")
	if err != nil || len(calls) != 1 || calls[0].Call.ID != call || len(calls[0].Call.Audio) != 2 || !calls[0].Call.Participants[1].Listening {
		t.Fatalf("calls: %+v, %v", calls, err)
	}
	r, err := s.OpenAudio(key, "c1", name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, audio) {
		t.Errorf("the audio opened to %d bytes (%v), %d written", len(got), err, len(audio))
	}
	other, _ := newKey(t)
	if _, err := s.OpenAudio(other, "c1", name); !errors.Is(err, ErrMalformed) {
		t.Errorf("another key opened the audio: %v", err)
	}
	if _, err := s.ReadCall(other, "c1", call); !errors.Is(err, ErrMalformed) {
		t.Errorf("another key opened the call: %v", err)
	}

	// Not messages: the list, the proof, the transcript.
	cs, err := s.List()
	if err != nil || len(cs) != 1 || !slices.Equal(cs[0].Seqs, []int64{3, 4, 5, 6, 7, 8, 9, 10}) || !slices.Equal(cs[0].Calls, []string{call}) {
		t.Fatalf("list: %+v, %v", cs, err)
	}
	checks, err := s.Verify(map[string]Head{"c1": {Seq: 10, Chain: chain[10]}}, nil)
	if err != nil || !checks[0].Complete || checks[0].Records != 8 {
		t.Errorf("verify with a call: %+v %v", checks, err)
	}
	msgs, err := s.ReadConversation(key, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range Transcript(msgs, calls) {
		order = append(order, r.Kind+map[bool]string{true: " " + call}[r.Kind == "call"])
	}
	if k := slices.Index(order, "call "+call); k != 4 || len(order) != 9 {
		t.Errorf("transcript %v: the call is not after #6", order)
	}
	// The call expires with the messages before it: kept while #6, the
	// last before it rang, is the last let go; gone, record and audio,
	// with #7.
	if err := s.Expire("c1", 6); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Calls("c1"); !slices.Equal(ids, []string{call}) {
		t.Errorf("calls after the expiry through #6: %v", ids)
	}
	if err := s.Expire("c1", 7); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Calls("c1"); len(ids) != 0 {
		t.Errorf("calls after the expiry through #7: %v", ids)
	}
	if m, _ := filepath.Glob(filepath.Join(s.Dir(), "c1", "call-*")); len(m) != 0 {
		t.Errorf("call files after their expiry: %v", m)
	}
	if err := s.NoteCall("c1", "../x", 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("a call named ../x: %v", err)
	}
	// A note that does not read is an error, and the calls stay.
	for _, bad := range []string{"x\n", "abc -1\n", "../x 3\n", "abc 3 4\n"} {
		os.WriteFile(filepath.Join(s.Dir(), "c1", "calls"), []byte(bad), 0o600)
		if err := s.Expire("c1", 8); !errors.Is(err, ErrMalformed) {
			t.Errorf("calls note %q: %v", bad, err)
		}
	}
}

// noPlain fails the test if any file under dir holds the canary or an Ogg
// page's magic.
func noPlain(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte("OggS")) {
			t.Errorf("plaintext in %s", p)
		}
		return nil
	})
}

// An audio file the archive never finished (the host failed mid-call)
// opens as far as its last whole chunk, then fails with ErrMalformed;
// names that are not a call's are refused.
func TestCallAudioRefuses(t *testing.T) {
	key, to := newKey(t)
	s, err := Create(t.TempDir(), to)
	if err != nil {
		t.Fatal(err)
	}
	w, name, err := s.SealAudio("c1", "ab")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte{7}, 150<<10))
	w.(*sealedFile).f.Close() // the host fails: the stream is never finished
	r, err := s.OpenAudio(key, "c1", name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrMalformed) || len(got) != 128<<10 {
		t.Errorf("an unfinished file opened to %d bytes, %v; want two whole chunks and ErrMalformed", len(got), err)
	}
	for _, tc := range []struct{ conv, file string }{
		{"c1", "000000000003.age"},
		{"c1", "call-ab.age"},
		{"c1", "call-ab-0.ogg.age"},
		{"c1", "call-a/b-1.ogg.age"},
		{"../c1", name},
	} {
		if _, err := s.OpenAudio(key, tc.conv, tc.file); !errors.Is(err, ErrMalformed) {
			t.Errorf("opened %s/%s: %v", tc.conv, tc.file, err)
		}
	}
	for _, call := range []string{"", "a-b", "../x", strings.Repeat("a", 65)} {
		if _, _, err := s.SealAudio("c1", call); !errors.Is(err, ErrMalformed) {
			t.Errorf("sealed audio of call %q: %v", call, err)
		}
	}
	for _, r := range []Record{
		{Conversation: "c1", Kind: "call"},
		{Conversation: "c1", Kind: "text", Call: &Call{ID: "ab"}},
		{Conversation: "c1", Kind: "call", Call: &Call{ID: "a-b"}},
	} {
		if err := s.SealCall(&r); !errors.Is(err, ErrMalformed) {
			t.Errorf("sealed %+v: %v", r, err)
		}
	}
	ro, _ := Open(s.Dir())
	if _, _, err := ro.SealAudio("c1", "ab"); err == nil {
		t.Error("a read-only store sealed audio")
	}
}

// FuzzCallsNote: a conversation's calls note (CALL AFTER per line) reads
// as calls with valid IDs and places, or ErrMalformed.
func FuzzCallsNote(f *testing.F) {
	f.Add("0123abcd 6\n")
	f.Add("a 0\nb 12\n")
	f.Add("abc -1\n")
	f.Add("../x 3\n")
	f.Add("")
	_, to := newKey(f)
	s, err := Create(f.TempDir(), to)
	if err != nil {
		f.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), "c1"), 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, note string) {
		if err := os.WriteFile(filepath.Join(s.Dir(), "c1", "calls"), []byte(note), 0o600); err != nil {
			t.Fatal(err)
		}
		calls, err := s.callsAfter("c1")
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		for id, after := range calls {
			if !callID.MatchString(id) || after < 0 {
				t.Fatalf("accepted call %q after #%d", id, after)
			}
		}
	})
}
