package server_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hotline/internal/audiotest"
	"hotline/internal/client"
	"hotline/internal/oggopus"
	"hotline/internal/server"
	"hotline/internal/voice"
)

// Three devices in a call speak real, synthesised sentences (Ogg Opus
// files) at once; each records what it hears, one file per speaker. What
// each recorded of another correlates with what that one played; what the
// server forwarded, decoded as the Opus it would be if it were not
// encrypted, does not. (SQLite only: media does not touch the database.)
func TestVoiceAudio(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) { c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0" })
	ctx := t.Context()
	dir := t.TempDir()
	sentences := map[string]string{
		"alice": "The delegation lands at nine tomorrow; brief the minister before the press conference.",
		"bob":   "Budget figures for the northern region arrive on Friday, with four open questions.",
		"carol": "Please move the security review to Thursday afternoon and invite the embassy.",
	}
	ogg := map[string]string{}
	for name, s := range sentences {
		_, ogg[name] = audiotest.Speech(t, dir, s)
	}
	admin := e.admin(t)
	names := []string{"alice", "bob", "carol"}
	members := map[string]*member{}
	for _, n := range names {
		members[n] = newMember(t, e, admin, n)
	}
	conv, err := members["alice"].CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example", "carol@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, members["bob"], members["carol"])
	phones := map[string]*phone{}
	for _, n := range names {
		phones[n] = newPhone(t, members[n])
	}

	calls := map[string]*voice.Call{}
	calls["alice"], err = phones["alice"].line.Place(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	id := calls["alice"].ID
	for _, n := range []string{"bob", "carol"} {
		phones[n].ringing(t, id)
		if calls[n], err = phones[n].line.Answer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	recs := map[string]*voice.Recorder{}
	for _, n := range names {
		recs[n] = voice.NewRecorder(filepath.Join(dir, "heard-by-"+n+".ogg"))
		calls[n].OnAudio(recs[n].Write)
	}
	// Everyone is in before anyone speaks: wait until each hears the others
	// (a frame of silence from each is enough: an empty Opus frame).
	stopSilence := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			for {
				select {
				case <-stopSilence:
					return
				case <-time.After(20 * time.Millisecond):
				}
				calls[n].Send([]byte{0xf8}, 960)
			}
		})
	}
	defer func() {
		if t.Failed() {
			for _, n := range names {
				st := calls[n].Stats()
				t.Logf("%s: %+v epochs held %v, conv epoch %d, recordings %+v", n, st, calls[n].Epochs(), members[n].Conversation(conv.ID).Epoch, recs[n].Recordings())
			}
		}
	}()
	t0 := time.Now()
	eventually(t, "everyone to hear everyone", func() bool {
		for _, n := range names {
			heard := map[string]bool{}
			for _, r := range recs[n].Recordings() {
				heard[r.From.User] = true
			}
			if len(heard) < 2 {
				return false
			}
		}
		return true
	})
	t.Logf("everyone heard everyone after %v", time.Since(t0))
	close(stopSilence)
	wg.Wait()

	// Bob's tap keeps what the server forwarded to him from alice.
	aliceSlot := -1
	for _, sl := range phones["bob"].line.Slots().Slots {
		if sl.Device == members["alice"].Profile().Device {
			aliceSlot = sl.Index
		}
	}
	if aliceSlot < 0 {
		t.Fatalf("bob's slots do not name alice: %+v", phones["bob"].line.Slots())
	}
	phones["bob"].mu.Lock()
	phones["bob"].tapped, phones["bob"].tappedBySlot = nil, nil
	phones["bob"].mu.Unlock()

	errs := make(chan error, len(names))
	for _, n := range names {
		go func() { errs <- calls[n].PlayFile(ctx, ogg[n]) }()
	}
	t1 := time.Now()
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("played in %v", time.Since(t1))
	time.Sleep(300 * time.Millisecond) // the last frames' way
	for _, n := range names {
		calls[n].OnAudio(nil)
	}
	files := map[string]map[string]string{} // listener → speaker → file
	for _, n := range names {
		files[n] = map[string]string{}
		for _, r := range recs[n].Recordings() {
			files[n][r.From.User] = r.Path
			t.Logf("%s heard %s: %d packets, %d lost", n, r.From.User, r.Packets, r.Filled)
		}
		if err := recs[n].Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, listener := range names {
		for _, speaker := range names {
			if speaker == listener {
				continue
			}
			path := files[listener][speaker+"@state.example"]
			if path == "" {
				t.Errorf("%s recorded nothing of %s", listener, speaker)
				continue
			}
			score, lag := audiotest.Similarity(audiotest.Decode(t, ogg[speaker]), audiotest.Decode(t, path))
			t.Logf("%s's recording of %s: similarity %.3f at lag %v", listener, speaker, score, lag)
			if score < audiotest.Correlated {
				t.Errorf("%s's recording of %s: similarity %.3f, want at least %.2f", listener, speaker, score, audiotest.Correlated)
			}
		}
	}

	// What the server forwarded of alice, taken as Opus: whatever of it
	// parses as Opus packets is decoded and compared with what she said.
	phones["bob"].mu.Lock()
	tapped := phones["bob"].tappedBySlot[aliceSlot]
	phones["bob"].mu.Unlock()
	if len(tapped) < 100 {
		t.Fatalf("bob's tap saw %d payloads of alice", len(tapped))
	}
	seen := filepath.Join(dir, "server-view.ogg")
	f, err := os.Create(seen)
	if err != nil {
		t.Fatal(err)
	}
	w, err := oggopus.NewWriter(f, oggopus.Head{Channels: 1, PreSkip: 312, InputSampleRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	parsed := 0
	for _, p := range tapped {
		if err := w.WritePacket(p); err == nil {
			parsed++
		} else if !errors.Is(err, oggopus.ErrInvalidPacket) {
			t.Fatal(err)
		}
	}
	if err := errors.Join(w.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	t.Logf("of %d payloads the server forwarded from alice, %d parse as Opus packets", len(tapped), parsed)
	if parsed > 0 {
		score, _ := audiotest.Similarity(audiotest.Decode(t, ogg["alice"]), audiotest.Decode(t, seen))
		t.Logf("the server's view of alice: similarity %.3f", score)
		if score >= audiotest.Uncorrelated {
			t.Errorf("what the server forwarded decodes to audio like alice's: similarity %.3f", score)
		}
	}
	for _, n := range names {
		calls[n].Hangup(ctx)
	}
}
