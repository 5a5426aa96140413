package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hotline/internal/archive"
	"hotline/internal/audiotest"
	"hotline/internal/client"
	"hotline/internal/conversation"
	"hotline/internal/oggopus"
	"hotline/internal/server"
	"hotline/internal/voice"
)

// In a conversation on the record, the archive device answers the call as
// a listener, and every participant sees it in the call as the archive,
// listening; nobody hears it. Two members speak real sentences; the
// archive seals what each says as it arrives, one sealed Ogg Opus file per
// speaker and a call record at the end, and nothing of the audio is in the
// clear on its disk: no Ogg page, no Opus packet that was sent, no message
// text. The records key opens the call: its record names the
// participants, and each speaker's audio decodes to what they said, about
// as long as they spoke. Calls do not disturb the store's list or its
// proof of completeness. (SQLite only: media does not touch the
// database.)
func TestArchiveRecordsCall(t *testing.T) {
	const canary = "CANARY 3b61 the summit moves to Thursday"
	e := newEnv(t, "sqlite", func(c *server.Config) { c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0" })
	ctx := t.Context()
	dir := t.TempDir()
	sentences := map[string]string{
		"alice": "The delegation lands at nine tomorrow; brief the minister before the press conference.",
		"bob":   "Budget figures for the northern region arrive on Friday, with four open questions.",
	}
	ogg := map[string]string{}
	for name, s := range sentences {
		_, ogg[name] = audiotest.Speech(t, dir, s)
	}
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	arch := newMember(t, e, admin, "archive", "archive")
	const archUser = "archive@state.example"
	s, storeDir, id := newRecords(t)

	events := make(chan archive.Event, 1000)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- archive.Run(runCtx, arch.Client, s, func(ev archive.Event) { events <- ev }) }()
	var sealed archive.Event
	wait := func(what string, ok func(archive.Event) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Kind == "problem" {
					t.Errorf("archive problem: %s %s %v", ev.Conversation, ev.Call, ev.Err)
				}
				if ev.Kind == "call sealed" {
					sealed = ev
				}
				if ok(ev) {
					return
				}
			case <-deadline:
				t.Fatalf("the archive never reported %s", what)
			}
		}
	}
	wait("its media connected", func(ev archive.Event) bool { return ev.Kind == "media" })

	info, err := alice.CreateConversation(ctx, client.CreateOptions{Title: "Visit", Members: []string{"bob@state.example"},
		Classification: conversation.Classification{ArchiveRequired: true}})
	if err != nil {
		t.Fatal(err)
	}
	wait("the conversation joined", func(ev archive.Event) bool { return ev.Kind == "joined" && ev.Conversation == info.ID })
	send(t, alice, info.ID, canary)
	sync1(t, bob)
	pa, pb := newPhone(t, alice), newPhone(t, bob)

	ca, err := pa.line.Place(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	pb.ringing(t, ca.ID)
	cb, err := pb.line.Answer(ctx, ca.ID)
	if err != nil {
		t.Fatal(err)
	}
	wait("the call answered", func(ev archive.Event) bool { return ev.Kind == "call" && ev.Call == ca.ID })

	// Everyone sees the archive in the call, listening, and the two
	// speakers not; the speakers' devices find it in the conversation's
	// group, with its verified credential.
	for _, m := range []*member{alice, bob, arch} {
		eventually(t, m.name+" to see the archive in the call", func() bool {
			v, err := m.GetCall(ctx, ca.ID)
			return err == nil && stateOf(v, archUser) == "joined" && stateOf(v, "bob@state.example") == "joined"
		})
		v, _ := m.GetCall(ctx, ca.ID)
		listening := map[string]bool{}
		for _, p := range v.Participants {
			if p.State == "joined" {
				listening[p.User+" ("+p.Role+")"] = p.Listening
			}
		}
		if want := map[string]bool{"alice@state.example (member)": false, "bob@state.example (member)": false, archUser + " (archive)": true}; !maps.Equal(listening, want) {
			t.Errorf("%s sees %v, want %v", m.name, listening, want)
		}
	}
	for _, c := range []*voice.Call{ca, cb} {
		ps, _, _ := c.Participants()
		i := slices.IndexFunc(ps, func(p voice.Participant) bool { return p.Member.User == archUser })
		if i < 0 || !ps[i].Verified || ps[i].State != "joined" || !slices.Contains(ps[i].Member.Roles, "archive") {
			t.Errorf("a speaker's device does not find the archive in the group: %+v", ps)
		}
	}

	// Everyone is in before anyone speaks: a frame of silence each until
	// the two hear each other and the archive has opened a sealed file for
	// each.
	pa.listen(ca)
	pb.listen(cb)
	audioFiles := func() []string {
		m, _ := filepath.Glob(filepath.Join(storeDir, info.ID, "call-"+ca.ID+"-*.ogg.age"))
		return m
	}
	warm, warmed := context.WithCancel(ctx)
	go func() {
		for warm.Err() == nil {
			ca.Send([]byte{0xf8}, 960)
			cb.Send([]byte{0xf8}, 960)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	eventually(t, "everyone to hear everyone", func() bool {
		a, _ := pa.heardFrom("bob@state.example")
		b, _ := pb.heardFrom("alice@state.example")
		return len(a) > 0 && len(b) > 0 && len(audioFiles()) == 2
	})
	warmed()

	errs := make(chan error, 2)
	go func() { errs <- ca.PlayFile(ctx, ogg["alice"]) }()
	go func() { errs <- cb.PlayFile(ctx, ogg["bob"]) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the last frames' way
	for _, p := range []*phone{pa, pb} {
		if fs, _ := p.heardFrom(archUser); len(fs) != 0 {
			t.Errorf("%s heard the archive: %d frames", p.name, len(fs))
		}
	}
	if err := ca.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	wait("the call sealed", func(ev archive.Event) bool { return ev.Kind == "call sealed" && ev.Call == ca.ID })
	if sealed.Speakers != 2 {
		t.Errorf("the call sealed holds %d speakers, want 2", sealed.Speakers)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Nothing in the clear on the archive's side: no Ogg page, no Opus
	// packet either speaker sent, no message text.
	canaries := []string{canary, "OggS"}
	for _, name := range []string{"alice", "bob"} {
		canaries = append(canaries, opusPackets(t, ogg[name], 40)...)
	}
	for _, d := range []string{storeDir, arch.Dir()} {
		if scanFor(t, d, canaries...) == 0 {
			t.Errorf("nothing to scan in %s", d)
		}
	}

	// The records officer opens the call.
	ro, err := archive.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := ro.ReadCalls(id, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Kind != "call" || calls[0].Call.ID != ca.ID {
		t.Fatalf("call records: %+v", calls)
	}
	c := calls[0].Call
	var ps []string
	for _, p := range c.Participants {
		ps = append(ps, p.User+" "+p.Role+" "+map[bool]string{true: "listening", false: "speaking"}[p.Listening])
	}
	slices.Sort(ps)
	if want := []string{"alice@state.example member speaking", archUser + " archive listening", "bob@state.example member speaking"}; !slices.Equal(ps, want) {
		t.Errorf("the call record's participants: %q, want %q", ps, want)
	}
	if c.Caller != "alice@state.example" || c.Answered == nil || c.Reason != "hangup" || c.Ended.Before(c.Rang) || c.After < 1 {
		t.Errorf("the call record: %+v", c)
	}
	if len(c.Audio) != 2 {
		t.Fatalf("the call record's audio: %+v", c.Audio)
	}
	for _, a := range c.Audio {
		name := strings.TrimSuffix(a.User, "@state.example")
		if ogg[name] == "" {
			t.Errorf("audio of %s, who did not speak", a.User)
			continue
		}
		r, err := ro.OpenAudio(id, info.ID, a.File)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(plain, []byte("OggS")) {
			t.Fatalf("%s does not open to Ogg", a.File)
		}
		out := filepath.Join(dir, archive.AudioName(a.File))
		if err := os.WriteFile(out, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		played, heard := audiotest.Decode(t, ogg[name]), audiotest.Decode(t, out)
		pd, hd := seconds(len(played)), seconds(len(heard))
		score, lag := audiotest.Similarity(played, heard)
		t.Logf("the archive's %s of %s: %d packets, %d lost, %.2f s (%v in the record) for %.2f s played; similarity %.3f at lag %v",
			a.File, name, a.Packets, a.Lost, hd, a.Duration, pd, score, lag)
		if score < audiotest.Correlated {
			t.Errorf("the archive's audio of %s: similarity %.3f, want at least %.2f", name, score, audiotest.Correlated)
		}
		if hd < pd-0.5 || hd > pd+4 {
			t.Errorf("the archive's audio of %s lasts %.2f s; %.2f s were played", name, hd, pd)
		}
		if d := a.Duration.Seconds(); d < hd-0.5 || d > hd+0.5 {
			t.Errorf("the call record says %s of %s, the audio lasts %.2f s", a.Duration, name, hd)
		}
	}

	// Another key opens nothing.
	wrong, _ := recordsKey(t)
	if _, err := ro.OpenAudio(wrong, info.ID, c.Audio[0].File); !errors.Is(err, archive.ErrMalformed) {
		t.Errorf("another key opened the audio: %v", err)
	}
	if _, err := ro.ReadCall(wrong, info.ID, ca.ID); !errors.Is(err, archive.ErrMalformed) {
		t.Errorf("another key opened the call record: %v", err)
	}

	// The call is not taken for a message: the list counts the messages'
	// records and the call, the transcript places the call after the
	// messages before it, and the store is proven complete.
	cs, err := ro.List()
	if err != nil || len(cs) != 1 || !slices.Equal(cs[0].Calls, []string{ca.ID}) {
		t.Fatalf("list: %+v, %v", cs, err)
	}
	recs, err := ro.ReadConversation(id, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cs[0].Seqs, seqsOf(recs)) {
		t.Errorf("list: records %v, the messages' %v", cs[0].Seqs, seqsOf(recs))
	}
	tr := archive.Transcript(recs, calls)
	if k := slices.IndexFunc(tr, func(r archive.Record) bool { return r.Kind == "call" }); k != len(tr)-1 || tr[k-1].Text != canary {
		t.Errorf("the call is at %d of the transcript of %d", k, len(tr))
	}
	if n, err := e.srv.CommitChains(ctx); err != nil || n == 0 {
		t.Fatalf("commit chains: %d, %v", n, err)
	}
	if _, err := alice.VerifyLog(ctx); err != nil {
		t.Fatal(err)
	}
	hs, err := alice.ChainHeads()
	if err != nil {
		t.Fatal(err)
	}
	checks, err := ro.Verify(hs, nil)
	if err != nil || len(checks) != 1 || !checks[0].Complete {
		t.Errorf("verify with a call in the store: %+v, %v", checks, err)
	}
	// The log records the call, answered: the store must hold it, and
	// does; without its files, the gap shows.
	logged, err := alice.LoggedCalls()
	if err != nil {
		t.Fatal(err)
	}
	if checks, err = ro.Verify(hs, logged); err != nil || !checks[0].Complete || checks[0].Calls != 1 {
		t.Errorf("verify the calls: %+v, %v", checks, err)
	}
	files, _ := filepath.Glob(filepath.Join(ro.Dir(), info.ID, "call-*"))
	for _, f := range files {
		os.Remove(f)
	}
	if checks, err = ro.Verify(hs, logged); err != nil || checks[0].Complete || len(checks[0].Problems) != 1 || !strings.HasPrefix(checks[0].Problems[0], "unrecorded: call ") {
		t.Errorf("verify without the call's files (%d removed): %+v, %v", len(files), checks, err)
	}
	e.noCanary(t, canary, "conversation_messages")
}

func seconds(samples int) float64 { return float64(samples) / audiotest.Rate }

func seqsOf(recs []archive.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// opusPackets returns up to n Opus packets of the Ogg Opus file path, of
// 40 bytes or more (short ones could turn up in any file by chance).
func opusPackets(t *testing.T, path string, n int) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := oggopus.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for len(out) < n {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(p) >= 40 {
			out = append(out, string(p))
		}
	}
	if len(out) < n/2 {
		t.Fatalf("%s has only %d packets to look for", path, len(out))
	}
	return out
}
