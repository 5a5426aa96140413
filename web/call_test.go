package web_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hotline/internal/api"
	"hotline/internal/audiotest"
	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/internal/sframe"
	"hotline/internal/voice"
)

// Sentences the callers speak: short (Chromium loops its fake microphone,
// and audiotest.Similarity looks for what was played within 3 s).
var sentences = map[string]string{
	"principal": "Move the summit to Thursday morning.",
	"duty":      "The delegation lands at nine.",
	"notes":     "Four questions remain open.",
}

// callBrowser starts a browser whose microphone plays wav.
func callBrowser(t *testing.T, wav string) context.Context {
	return newBrowser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
}

// phone is a headless device (internal/voice) in the demo organisation.
type phone struct {
	c      *client.Client
	line   *voice.Line
	mu     sync.Mutex
	ring   []api.Call
	tapped [][]byte // payloads as the server forwarded them, before decryption
}

func newPhone(t *testing.T, d *demo.Demo, name string) *phone {
	t.Helper()
	var invite string
	for _, p := range d.People {
		if p.Name == name {
			invite = p.Invite
		}
	}
	c, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: "http://127.0.0.1:" + strconv.Itoa(d.Port), Invite: invite,
		ProfileDir: filepath.Join(t.TempDir(), name), Label: name + "'s phone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureKeyPackages(t.Context(), client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	p := &phone{c: c}
	p.line, err = voice.Dial(t.Context(), c, voice.Options{
		IPFilter: func(ip net.IP) bool { return ip.IsLoopback() },
		Tap: func(_ int, payload []byte) {
			p.mu.Lock()
			if len(p.tapped) < 2000 {
				p.tapped = append(p.tapped, payload)
			}
			p.mu.Unlock()
		},
		OnCall: func(event string, v api.Call) {
			if event == client.EventCallRing {
				p.mu.Lock()
				p.ring = append(p.ring, v)
				p.mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Events(ctx, func(m api.StreamMessage) error { p.line.Handle(m); return nil })
	}()
	t.Cleanup(func() { p.line.Close(); cancel(); <-done })
	return p
}

func (p *phone) ringing(t *testing.T) api.Call {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.ring)
		var v api.Call
		if n > 0 {
			v = p.ring[n-1]
		}
		p.mu.Unlock()
		if n > 0 {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the headless phone never rang")
	return api.Call{}
}

// recordPage records, in the page, what the call's audio elements play for
// d, and returns it as a WebM file.
func recordPage(t *testing.T, ctx context.Context, dir, name string, d time.Duration) string {
	t.Helper()
	b64 := eval[string](t, ctx, fmt.Sprintf(`(async () => {
		const ac = new AudioContext();
		await ac.resume();
		const dest = ac.createMediaStreamDestination();
		for (const el of document.querySelectorAll('[data-testid="call-audio"]')) {
			if (el.srcObject && el.srcObject.getAudioTracks().length) ac.createMediaStreamSource(el.srcObject).connect(dest);
		}
		const rec = new MediaRecorder(dest.stream, { mimeType: "audio/webm;codecs=opus" });
		const chunks = [];
		rec.ondataavailable = (e) => chunks.push(e.data);
		const stopped = new Promise((r) => (rec.onstop = r));
		rec.start(250);
		await new Promise((r) => setTimeout(r, %d));
		rec.stop();
		await stopped;
		const buf = new Uint8Array(await new Blob(chunks).arrayBuffer());
		let s = "";
		for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
		return btoa(s);
	})()`, d.Milliseconds()))
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".webm")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// heardLike checks a recording against what was played: energy, and a
// similarity of at least audiotest.Correlated; against anything else
// (other, if given), at most audiotest.Uncorrelated.
func heardLike(t *testing.T, what, recording, played, other string) {
	t.Helper()
	rec := audiotest.Decode(t, recording)
	rms := rootMeanSquare(rec)
	score, lag := audiotest.Similarity(audiotest.Decode(t, played), rec)
	t.Logf("%s: %.1f s recorded, RMS %.4f, similarity %.3f at lag %v", what, float64(len(rec))/audiotest.Rate, rms, score, lag)
	if rms < 0.005 {
		t.Errorf("%s: the recording is silent (RMS %.4f)", what, rms)
	}
	if score < audiotest.Correlated {
		t.Errorf("%s: similarity %.3f with what was played, want at least %.2f", what, score, audiotest.Correlated)
	}
	if other != "" {
		if s, _ := audiotest.Similarity(audiotest.Decode(t, other), rec); s > audiotest.Uncorrelated {
			t.Errorf("%s: similarity %.3f with another sentence, want at most %.2f", what, s, audiotest.Uncorrelated)
		}
	}
}

// phoneScreenshot saves the page at a phone's width, then puts the
// desktop width back.
func phoneScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	run(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, ctx, name)
	run(t, ctx, "desktop width", chromedp.EmulateViewport(1280, 800))
}

// rmsOf is a recording's loudness.
func rmsOf(t *testing.T, path string) float64 { return rootMeanSquare(audiotest.Decode(t, path)) }

func rootMeanSquare(pcm []float32) float64 {
	var e float64
	for _, s := range pcm {
		e += float64(s) * float64(s)
	}
	return math.Sqrt(e / float64(max(len(pcm), 1)))
}

func callView(t *testing.T, ctx context.Context, field string) string {
	return eval[string](t, ctx, `String(window.hotlineUI.calls.view().`+field+`)`)
}

// TestBrowserCalls: end-to-end encrypted calls from the browser, with
// audio from files: browser to browser, browser to a headless device, and
// a headless device to a browser. What each callee hears is recorded and
// compared with what the caller's microphone played.
func TestBrowserCalls(t *testing.T) {
	dir := t.TempDir()
	wav := map[string]string{}
	ogg := map[string]string{}
	for name, s := range sentences {
		wav[name], ogg[name] = audiotest.Speech(t, dir, s)
	}
	d := startDemoWith(t, demo.Options{MediaUDP: "127.0.0.1:0", MediaTCP: "127.0.0.1:0"})
	p := callBrowser(t, wav["principal"])
	duty := callBrowser(t, wav["duty"])
	enrolBrowser(t, p, d, "principal")
	enrolBrowser(t, duty, d, "duty")
	for name, ctx := range map[string]context.Context{"principal": p, "duty": duty} {
		waitFor(t, ctx, name+"'s media line", `window.hotlineUI?.calls?.view().lineUp === true`)
	}
	notes := newPhone(t, d, "notes")

	t.Run("browser to browser", func(t *testing.T) {
		run(t, p, "open duty", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="duty@demo.example"]`)), chromedp.WaitVisible(chromedp.CSS(sel("conversation-pane"))))
		waitFor(t, p, "the call button", `!document.querySelector('`+sel("call")+`').disabled`)
		clickNow(t, p, "call", sel("call"))
		waitFor(t, duty, "the ring", `!!document.querySelector('`+sel("ring")+`')`)
		screenshot(t, duty, "desktop-ring")
		phoneScreenshot(t, duty, "phone-ring")
		run(t, duty, "answer", chromedp.Click(chromedp.CSS(sel("answer"))))
		for name, ctx := range map[string]context.Context{"principal": p, "duty": duty} {
			waitFor(t, ctx, name+" hearing the other", `window.hotlineUI.calls.view().phase === "active" && window.hotlineUI.calls.view().heard`)
		}
		screenshot(t, p, "desktop-call")
		phoneScreenshot(t, p, "phone-call")
		var recs sync.Map
		var wg sync.WaitGroup
		for name, ctx := range map[string]context.Context{"principal": p, "duty": duty} {
			wg.Go(func() { recs.Store(name, recordPage(t, ctx, dir, "b2b-heard-by-"+name, 6*time.Second)) })
		}
		wg.Wait()
		dutyRec, _ := recs.Load("duty")
		pRec, _ := recs.Load("principal")
		heardLike(t, "duty hearing the principal", dutyRec.(string), wav["principal"], wav["duty"])
		heardLike(t, "the principal hearing duty", pRec.(string), wav["duty"], wav["principal"])
		if st := callView(t, duty, "stats.undecryptable"); st != "0" {
			t.Logf("duty dropped %s undecryptable frames (frames of an epoch before the rotation are expected)", st)
		}
		// The server's quality report reaches the panel (every 5 s).
		waitFor(t, p, "the quality indicator", `["good", "fair", "poor"].includes(document.querySelector('`+sel("call-quality")+`')?.dataset.level)`)
		// Muted, the principal sends silence.
		run(t, p, "mute", chromedp.Click(chromedp.CSS(sel("mute"))))
		if pressed := eval[string](t, p, `document.querySelector('`+sel("mute")+`').getAttribute("aria-pressed")`); pressed != "true" {
			t.Errorf("mute button aria-pressed %q", pressed)
		}
		time.Sleep(300 * time.Millisecond) // what was on its way before the mute
		if rms := rmsOf(t, recordPage(t, duty, dir, "muted", 2*time.Second)); rms > 0.005 {
			t.Errorf("duty still hears the principal after mute: RMS %.4f", rms)
		}
		run(t, p, "unmute", chromedp.Click(chromedp.CSS(sel("mute"))))
		run(t, p, "hang up", chromedp.Click(chromedp.CSS(sel("hangup"))))
		waitFor(t, duty, "the call's end at duty", `["ended", "idle"].includes(window.hotlineUI.calls.view().phase)`)
		waitFor(t, p, "idle again", `window.hotlineUI.calls.view().phase === "idle"`)
		waitFor(t, duty, "idle again", `window.hotlineUI.calls.view().phase === "idle"`)
	})

	t.Run("browser to headless", func(t *testing.T) {
		run(t, p, "open notes", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="notes@demo.example"]`)))
		waitFor(t, p, "the conversation with notes", `[...document.querySelectorAll('`+sel("conversation-pane")+` `+sel("participant")+`')].some(e => e.dataset.user === "notes@demo.example")`)
		waitFor(t, p, "the call button", `!document.querySelector('`+sel("call")+`').disabled`)
		clickNow(t, p, "call", sel("call"))
		v := notes.ringing(t)
		call, err := notes.line.Answer(t.Context(), v.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec := voice.NewRecorder(filepath.Join(dir, "heard-by-notes.ogg"))
		call.OnAudio(rec.Write)
		select {
		case <-call.Heard():
		case <-time.After(30 * time.Second):
			t.Fatalf("the headless phone heard nothing: %+v", call.Stats())
		}
		time.Sleep(6 * time.Second) // recording what the browser's microphone plays, looped
		call.OnAudio(nil)
		// What the server forwarded from the browser was SFrame, never the
		// Opus the browser encoded: every payload parses as an SFrame
		// header, and none is a frame as decrypted.
		var heardMu sync.Mutex
		heard := map[string]bool{}
		call.OnAudio(func(f voice.Frame) {
			heardMu.Lock()
			heard[string(f.Opus)] = true
			heardMu.Unlock()
		})
		time.Sleep(500 * time.Millisecond) // half a second of frames, both as forwarded and as decrypted
		call.OnAudio(nil)
		heardMu.Lock()
		defer heardMu.Unlock()
		notes.mu.Lock()
		tapped := notes.tapped
		notes.mu.Unlock()
		if len(tapped) == 0 || len(heard) == 0 {
			t.Fatalf("tapped %d payloads, heard %d frames", len(tapped), len(heard))
		}
		for _, pl := range tapped {
			if _, _, err := sframe.ParseHeader(pl); err != nil {
				t.Fatalf("a forwarded payload is not SFrame: %v (% x)", err, pl[:min(8, len(pl))])
			}
			if heard[string(pl)] {
				t.Fatal("the server forwarded a frame in the clear")
			}
		}
		t.Logf("%d forwarded payloads checked: all SFrame", len(tapped))
		rs := rec.Recordings() // before Close, which forgets them
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].From.User != "principal@demo.example" {
			t.Fatalf("recordings %+v, want one, from the principal's verified credential", rs)
		}
		heardLike(t, "the headless phone hearing the principal's browser", rs[0].Path, wav["principal"], wav["notes"])
		if err := call.Hangup(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, p, "idle again", `window.hotlineUI.calls.view().phase === "idle"`)
	})

	t.Run("headless to browser", func(t *testing.T) {
		conv, err := notes.c.DirectConversation(t.Context(), "duty@demo.example")
		if err != nil {
			t.Fatal(err)
		}
		call, err := notes.line.Place(t.Context(), conv.ID)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, duty, "the ring", `!!document.querySelector('`+sel("ring")+`')`)
		// A page reloaded while its device rings shows the ring again.
		run(t, duty, "reload while ringing", chromedp.Reload())
		waitFor(t, duty, "the ring after the reload", `!!document.querySelector('`+sel("ring")+`')`)
		waitFor(t, duty, "duty's media line after the reload", `window.hotlineUI?.calls?.view().lineUp === true`)
		ringer := eval[string](t, duty, `document.querySelector('`+sel("ring")+`').textContent`)
		// The caller is a note-taker: on the record, shown before answering.
		if rec := eval[string](t, duty, `document.querySelector('`+sel("ring-on-record")+`')?.textContent ?? ""`); !strings.Contains(rec, "notes@demo.example") {
			t.Errorf("the ring does not show the note-taker on the record: %q", rec)
		}
		if !strings.Contains(ringer, "notes@demo.example") {
			t.Errorf("the ring panel does not name the caller: %q", ringer)
		}
		run(t, duty, "answer", chromedp.Click(chromedp.CSS(sel("answer"))))
		waitFor(t, duty, "active", `window.hotlineUI.calls.view().phase === "active"`)
		// The browser's answer rotates the keys; play once both hear each
		// other under them.
		select {
		case <-call.Heard():
		case <-time.After(30 * time.Second):
			t.Fatalf("the headless phone heard nothing from the browser: %+v; its slots %+v; the browser's call %s",
				call.Stats(), notes.line.Slots(), eval[string](t, duty, `JSON.stringify(window.hotlineUI.calls.view())`))
		}
		recorded := make(chan string, 1)
		go func() { recorded <- recordPage(t, duty, dir, "h2b-heard-by-duty", 5*time.Second) }()
		time.Sleep(300 * time.Millisecond)
		if err := call.PlayFile(t.Context(), ogg["notes"]); err != nil {
			t.Fatal(err)
		}
		heardLike(t, "duty's browser hearing the headless phone", <-recorded, wav["notes"], wav["principal"])
		run(t, duty, "hang up", chromedp.Click(chromedp.CSS(sel("hangup"))))
		select {
		case <-call.Ended():
		case <-time.After(30 * time.Second):
			t.Fatal("the headless phone's call did not end when the browser hung up")
		}
	})
}
