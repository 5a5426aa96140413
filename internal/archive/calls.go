package archive

import (
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
	"time"

	"filippo.io/age"

	"hotline/internal/client"
)

// A call on the record is kept as files beside its conversation's
// messages, never named like one (a message's record is all digits), so
// that List, Verify and Expire take no call for a message:
//
//	CONV/call-CALL.age          the call record: a Record of kind "call"
//	CONV/call-CALL-N.ogg.age    what one speaker said, Ogg Opus, sealed as it came
//	CONV/calls                  CALL AFTER per line: each call, and the conversation's
//	                            last message when it rang, so that retention lets the
//	                            call go with the messages around it (no key needed)
//
// The audio is sealed as it is written: age encrypts in chunks of 64 KiB,
// so at most one chunk of a speaker's audio is ever in the archive's
// memory, and none in the clear on its disk.

// Call is what a call record holds: the call as the server described it to
// the archive device when it ended, and the audio the archive sealed.
type Call struct {
	ID     string `json:"id"`
	Caller string `json:"caller"`
	// After is the conversation's last message when the call rang: the
	// call comes after it in the transcript.
	After    int64      `json:"after"`
	Rang     time.Time  `json:"rang"`
	Answered *time.Time `json:"answered,omitempty"`
	// Ended is when the call ended, or, if the archive left first (it was
	// stopped), when it left; Reason says which ("archive_stopped").
	Ended        time.Time         `json:"ended"`
	Reason       string            `json:"reason,omitempty"`
	Participants []CallParticipant `json:"participants"`
	Audio        []Audio           `json:"audio,omitempty"`
}

// CallParticipant is a device rung into a call, as the server said.
type CallParticipant struct {
	User      string `json:"user"`
	Device    string `json:"device"`
	Role      string `json:"role"`
	State     string `json:"state"` // its last: left, missed, declined…
	Listening bool   `json:"listening,omitempty"`
}

// Audio is one speaker's audio of a call: the sealed file that holds it,
// who spoke (from their device's verified credential in the
// conversation's group), and how long it lasts.
type Audio struct {
	File     string        `json:"file"` // call-CALL-N.ogg.age, in the conversation's folder
	User     string        `json:"user"`
	Device   string        `json:"device"`
	Duration time.Duration `json:"duration"`
	Packets  int           `json:"packets"`
	Lost     int           `json:"lost,omitempty"` // packets lost on the way, written as silence
}

var (
	// callID is what a call's ID looks like (hex, from the server).
	callID     = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	callRecord = regexp.MustCompile(`^call-([A-Za-z0-9]{1,64})\.age$`)
	callAudio  = regexp.MustCompile(`^call-([A-Za-z0-9]{1,64})-([1-9][0-9]{0,5})\.ogg\.age$`)
)

func callName(id string) string { return "call-" + id + ".age" }

// IsCallFile says whether name, a file of a conversation's folder, belongs
// to a call (its record or its audio) rather than to a message.
func IsCallFile(name string) bool {
	return callRecord.MatchString(name) || callAudio.MatchString(name)
}

// NoteCall notes, before anything of it is sealed, that a call rang in a
// conversation after its message after (CONV/calls), so that the call's
// files expire with the messages before it (Expire).
func (s *Store) NoteCall(conv, call string, after int64) error {
	if !convName.MatchString(conv) || !callID.MatchString(call) || after < 0 {
		return fmt.Errorf("%w: call %q of %s after #%d", ErrMalformed, call, conv, after)
	}
	return s.appendLine(conv, "calls", fmt.Sprintf("%s %d\n", call, after))
}

// callsAfter reads CONV/calls: for each call noted, the message it rang
// after.
func (s *Store) callsAfter(conv string) (map[string]int64, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, conv, "calls"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for n, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		var after int64
		if len(f) == 2 {
			after, err = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) != 2 || err != nil || after < 0 || !callID.MatchString(f[0]) {
			return nil, fmt.Errorf("%w: %s/calls line %d", ErrMalformed, conv, n+1)
		}
		out[f[0]] = after
	}
	return out, nil
}

// expireCalls deletes the files of the calls that rang before message
// through+1 (after a message through or earlier): they expire with it.
func (s *Store) expireCalls(conv string, through int64) error {
	after, err := s.callsAfter(conv)
	if err != nil {
		return err
	}
	files, err := s.callFiles(conv)
	if err != nil {
		return err
	}
	for call, names := range files {
		if a, ok := after[call]; !ok || a >= through {
			continue
		}
		for _, name := range names {
			if err := os.Remove(filepath.Join(s.dir, conv, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// SealAudio opens a new sealed audio file of call in conversation conv:
// what is written to it is encrypted to the records key as it comes, and
// Close finishes the age stream and makes the file durable. It returns
// the file's name (call-CALL-N.ogg.age, N the first free). A file whose
// writer was never closed (the archive host failed) is a truncated age
// stream: what it holds opens up to its last whole chunk, then fails.
func (s *Store) SealAudio(conv, call string) (io.WriteCloser, string, error) {
	if s.to == nil {
		return nil, "", errors.New("archive: store opened read-only")
	}
	if !convName.MatchString(conv) || !callID.MatchString(call) {
		return nil, "", fmt.Errorf("%w: conversation %q, call %q", ErrMalformed, conv, call)
	}
	dir := filepath.Join(s.dir, conv)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	for n := 1; n < 1000; n++ {
		name := fmt.Sprintf("call-%s-%d.ogg.age", call, n)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		} else if err != nil {
			return nil, "", err
		}
		w, err := age.Encrypt(f, s.to)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, "", err
		}
		return &sealedFile{f: f, w: w}, name, nil
	}
	return nil, "", fmt.Errorf("call %s: a thousand audio files already", call)
}

// sealedFile is an age stream into a file.
type sealedFile struct {
	f *os.File
	w io.WriteCloser
}

func (s *sealedFile) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close finishes the stream, then syncs and closes the file and its
// folder.
func (s *sealedFile) Close() error {
	err := s.w.Close()
	if err == nil {
		err = s.f.Sync()
	}
	err = errors.Join(err, s.f.Close())
	if d, derr := os.Open(filepath.Dir(s.f.Name())); derr == nil {
		d.Sync()
		d.Close()
	}
	return err
}

// SealCall seals a call record (Kind "call", Call set) to the records key
// and writes it, durably, as CONV/call-CALL.age. Sealing a call twice
// rewrites its record.
func (s *Store) SealCall(r *Record) error {
	if s.to == nil {
		return errors.New("archive: store opened read-only")
	}
	if r.Kind != "call" || r.Call == nil || !convName.MatchString(r.Conversation) || !callID.MatchString(r.Call.ID) {
		return fmt.Errorf("%w: not a call record", ErrMalformed)
	}
	if r.Archived.IsZero() {
		r.Archived = time.Now().UTC()
	}
	b, err := sealJSON(s.to, r)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, r.Conversation)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, callName(r.Call.ID)), b)
}

// Calls returns the IDs of the calls whose records the store holds of a
// conversation, in file name order.
func (s *Store) Calls(conv string) ([]string, error) {
	if !convName.MatchString(conv) {
		return nil, fmt.Errorf("%w: conversation %q", ErrMalformed, conv)
	}
	files, err := os.ReadDir(filepath.Join(s.dir, conv))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range files {
		if m := callRecord.FindStringSubmatch(f.Name()); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids, nil
}

// ReadCall opens one call record.
func (s *Store) ReadCall(id age.Identity, conv, call string) (Record, error) {
	if !convName.MatchString(conv) || !callID.MatchString(call) {
		return Record{}, fmt.Errorf("%w: conversation %q, call %q", ErrMalformed, conv, call)
	}
	f, err := os.Open(filepath.Join(s.dir, conv, callName(call)))
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	r, err := Unseal(f, id)
	if err == nil && (r.Kind != "call" || r.Call.ID != call || r.Conversation != conv) {
		err = fmt.Errorf("%w: %s holds another record (%s, %q)", ErrMalformed, callName(call), r.Kind, r.Conversation)
	}
	return r, err
}

// ReadCalls opens every call record of a conversation, in the order the
// calls rang.
func (s *Store) ReadCalls(id age.Identity, conv string) ([]Record, error) {
	ids, err := s.Calls(conv)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(ids))
	for _, c := range ids {
		r, err := s.ReadCall(id, conv, c)
		if err != nil {
			return out, fmt.Errorf("%s/%s: %w", conv, callName(c), err)
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.Call.Rang.Compare(b.Call.Rang) })
	return out, nil
}

// Transcript puts calls (ReadCalls) among messages (ReadConversation):
// each call after the message that was the conversation's last when it
// rang.
func Transcript(messages, calls []Record) []Record {
	out := make([]Record, 0, len(messages)+len(calls))
	i := 0
	for _, m := range messages {
		for ; i < len(calls) && calls[i].Call.After < m.Seq; i++ {
			out = append(out, calls[i])
		}
		out = append(out, m)
	}
	return append(out, calls[i:]...)
}

// OpenAudio opens a call's sealed audio file (an Audio's File) of
// conversation conv with the records officer's identity: the reader
// yields the Ogg Opus stream as the archive heard it. A file the archive
// never finished (see SealAudio) reads up to its last whole chunk, then
// fails with ErrMalformed.
func (s *Store) OpenAudio(id age.Identity, conv, file string) (io.ReadCloser, error) {
	if !convName.MatchString(conv) || !callAudio.MatchString(file) {
		return nil, fmt.Errorf("%w: conversation %q, audio %q", ErrMalformed, conv, file)
	}
	f, err := os.Open(filepath.Join(s.dir, conv, file))
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(f, id)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, file, err)
	}
	return &openedAudio{r: r, f: f, name: file}, nil
}

type openedAudio struct {
	r    io.Reader
	f    *os.File
	name string
}

func (o *openedAudio) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %s: %v", ErrMalformed, o.name, err)
	}
	return n, err
}

func (o *openedAudio) Close() error { return o.f.Close() }

// AudioName is an audio file's name with its seal taken off: what
// records read --audio writes it as.
func AudioName(file string) string { return strings.TrimSuffix(file, ".age") }

// verifyCalls checks a conversation's calls as the log records them
// (logged) against the store: each call that someone answered, from the
// archive's first message on (links: the chain index), must be in the
// store (its record, or at least its audio), unless it has expired. A call
// missing is a gap in the records: "unrecorded" (the archive was not
// running, was in another call, or could not join), with the log entry
// that shows it.
func (s *Store) verifyCalls(ch *Check, links []Link, logged []client.LoggedCall) error {
	if len(logged) == 0 {
		return nil
	}
	have, err := s.callFiles(ch.Conversation)
	if err != nil {
		return err
	}
	since := links[0].Time
	// The calls that rang before the last message let go expired with it
	// (to the second the log keeps: one in that second is not asked for).
	var until time.Time
	for _, l := range links {
		if l.Seq == ch.Expired {
			until = l.Time
		}
	}
	for _, lc := range logged {
		if !lc.Answered || lc.Start.Before(since) || (!until.IsZero() && !lc.Start.After(until)) {
			continue
		}
		ch.Calls++
		if len(have[lc.ID]) == 0 {
			ch.Problems = append(ch.Problems, fmt.Sprintf("unrecorded: call %s (log entry %d, %s) is not in the store", lc.ID, lc.Index, lc.Start.Format(time.RFC3339)))
		}
	}
	return nil
}

// callFiles returns the files the store holds of each call of a
// conversation (its record and its audio), by call ID.
func (s *Store) callFiles(conv string) (map[string][]string, error) {
	files, err := os.ReadDir(filepath.Join(s.dir, conv))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range files {
		m := callRecord.FindStringSubmatch(f.Name())
		if m == nil {
			m = callAudio.FindStringSubmatch(f.Name())
		}
		if m != nil {
			out[m[1]] = append(out[m[1]], f.Name())
		}
	}
	return out, nil
}
