package voice

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"hotline/internal/api"
	"hotline/internal/audiotest"
	"hotline/internal/client"
)

// The recorder writes one file per sender, fills a gap in a sender's
// timestamps with empty frames (so decoders conceal it and the timing
// holds), drops late frames, and starts a new stream's timing afresh
// after a jump. ffmpeg decodes what it writes to the expected length.
func TestRecorder(t *testing.T) {
	dir := t.TempDir()
	r := NewRecorder(filepath.Join(dir, "heard.ogg"))
	alice := client.Member{User: "alice@state.example", Device: "a"}
	bob := client.Member{User: "bob@state.example", Device: "b"}
	// A CELT 20 ms mono frame: TOC 0xf8 (config 31, code 0) and a few
	// bytes; libopus decodes it (as noise or silence, whatever it says).
	frame := func(from client.Member, ts uint32) Frame {
		return Frame{From: from, Timestamp: ts, Opus: []byte{0xf8, 0xff, 0xfe}}
	}
	for i := range uint32(50) {
		if i >= 10 && i < 15 {
			continue // alice's frames 10 to 14 are lost
		}
		r.Write(frame(alice, 1000+i*960))
	}
	r.Write(frame(alice, 1000+3*960))   // late: its place was filled
	r.Write(frame(alice, 1000+500*960)) // a jump of 10 s: a new stream, not loss
	for i := range uint32(25) {
		r.Write(frame(bob, 7+i*960))
	}
	r.Write(Frame{From: bob, Timestamp: 99, Opus: []byte{}}) // not Opus: skipped
	recs := r.Recordings()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("recordings: %+v", recs)
	}
	if a := recs[0]; a.From.User != alice.User || a.Path != filepath.Join(dir, "heard.ogg") || a.Packets != 46 || a.Filled != 5 {
		t.Errorf("alice's recording: %+v, want 46 packets with 5 filled", a)
	}
	if b := recs[1]; b.From.User != bob.User || b.Path != filepath.Join(dir, "heard-2.ogg") || b.Packets != 25 || b.Filled != 0 {
		t.Errorf("bob's recording: %+v", b)
	}
	// 51 frames of 20 ms for alice (46 + 5 filled), 25 for bob, less the
	// pre-skip of 312 samples, at audiotest's 16 kHz.
	for path, frames := range map[string]int{recs[0].Path: 51, recs[1].Path: 25} {
		got := len(audiotest.Decode(t, path))
		want := (frames*960 - 312) / 3
		if got < want-10 || got > want+10 {
			t.Errorf("%s decodes to %d samples, want about %d", filepath.Base(path), got, want)
		}
	}
	r.Write(frame(alice, 0)) // after Close: ignored
}

// Whatever arrives on the event stream, a line handles it without
// panicking, and a malformed call event or notice changes nothing.
func FuzzHandle(f *testing.F) {
	good, _ := json.Marshal(api.Call{ID: "c1", Conversation: "x", State: "ringing",
		Participants: []api.CallParticipant{{User: "u", Device: "d", State: "ringing"}}})
	slots, _ := json.Marshal(api.CallSlots{Call: "c1", Slots: []api.Slot{{Index: 0, Mid: "1", Device: "d"}}})
	f.Add(api.StreamEvent, client.EventCallRing, string(good), "", "")
	f.Add(api.StreamEvent, client.EventCallEnded, `{"id":`, "", "")
	f.Add(api.StreamNotice, "", "", api.NoticeCallSlots, string(slots))
	f.Add(api.StreamNotice, "", "", api.NoticeCallQuality, `{"call":1}`)
	f.Fuzz(func(t *testing.T, typ, event, payload, kind, data string) {
		l := &Line{ringing: map[string]api.Call{}, log: slog.New(slog.DiscardHandler)}
		l.Handle(api.StreamMessage{Type: typ, Event: event, Payload: json.RawMessage(payload), Kind: kind, Data: data})
		var v api.Call
		if typ == api.StreamEvent && event == client.EventCallRing && json.Unmarshal([]byte(payload), &v) == nil && v.State == "ringing" {
			if _, ok := l.ringing[v.ID]; !ok {
				t.Errorf("a well-formed ring was not recorded: %q", payload)
			}
		} else if len(l.ringing) > 0 {
			t.Errorf("a ringing call from %q %q %q", typ, event, payload)
		}
	})
}
