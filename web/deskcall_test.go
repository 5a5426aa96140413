package web_test

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/audiotest"
	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/internal/desk"
	"hotline/internal/voice"
)

// serverCall polls the server's view of a call, as a member of its
// conversation sees it, until ok holds.
func serverCall(t *testing.T, c *client.Client, id, what string, ok func(api.Call) bool) api.Call {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := c.GetCall(t.Context(), id)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: the server's view %+v, %v", what, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partOf is a user's joined (else ringing) participation in a call.
func partOf(v api.Call, user string) (api.CallParticipant, bool) {
	var ringing *api.CallParticipant
	for i, p := range v.Participants {
		if p.User == user && p.State == "joined" {
			return p, true
		}
		if p.User == user && p.State == "ringing" && ringing == nil {
			ringing = &v.Participants[i]
		}
	}
	if ringing != nil {
		return *ringing, true
	}
	return api.CallParticipant{}, false
}

func stateOf(v api.Call, user string) string {
	p, _ := partOf(v, user)
	return p.State
}

// nextRing waits for the headless phone to ring for a call other than
// those in seen.
func (p *phone) nextRing(t *testing.T, seen ...string) api.Call {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		var v api.Call
		if n := len(p.ring); n > 0 {
			v = p.ring[n-1]
		}
		p.mu.Unlock()
		if v.ID != "" && !strings.Contains(strings.Join(seen, " "), v.ID) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the headless phone did not ring")
	return api.Call{}
}

// tone is what a page's preemption tone sent to its speakers, as its
// analyser saw it: within 8 bins (±94 Hz) of 440 and of 620 Hz, the
// loudest bin's level and frequency; the loudest bin elsewhere from 100 Hz
// to 4 kHz (levels in dB, -1000 for silence); Since is how long after the
// tone began (ms).
type tone struct {
	F440, F620, Rest float64
	Peak440, Peak620 float64
	Bin, Since       float64
	State            string
}

// measureTone reads the page's latest preemption tone 0.4 s after it began
// ("during") or 0.8 s after its 3 s ("after").
func measureTone(t *testing.T, ctx context.Context, when string) tone {
	t.Helper()
	js := eval[string](t, ctx, `(async (when) => {
		const t = globalThis.hotlineTone;
		if (!t) return "{}";
		const at = when === "during" ? t.started + 400 : t.started + t.ms + 800;
		await new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
		const a = t.analyser;
		const db = new Float32Array(a.frequencyBinCount);
		a.getFloatFrequencyData(db);
		const bin = a.context.sampleRate / a.fftSize;
		const db0 = (x) => (Number.isFinite(x) ? x : -1000);
		const near = (hz) => {
			const i = Math.round(hz / bin);
			let best = i - 8;
			for (let j = i - 8; j <= i + 8; j++) if (db[j] > db[best]) best = j;
			return [db0(db[best]), best * bin];
		};
		const [f440, p440] = near(440), [f620, p620] = near(620);
		let rest = -1000;
		for (let i = Math.round(100 / bin); i < Math.round(4000 / bin); i++) {
			if (Math.abs(i - 440 / bin) > 8 && Math.abs(i - 620 / bin) > 8) rest = Math.max(rest, db0(db[i]));
		}
		return JSON.stringify({ F440: f440, F620: f620, Rest: rest, Peak440: p440, Peak620: p620, Bin: bin, Since: performance.now() - t.started, State: a.context.state });
	})(`+jsq(when)+`)`)
	var m tone
	if err := json.Unmarshal([]byte(js), &m); err != nil || m.State == "" {
		t.Fatalf("%s: no preemption tone to measure (%s, %v)", when, js, err)
	}
	return m
}

// TestBrowserDeskPlaces: the duty officer places a scheduled call from the
// console in Chromium. The counterpart asked, from a headless device with
// a real voice line, for a flash call; the principal's browser is on a
// routine call with the note-taker's. The desk's browser places the call
// with its own media, ringing the counterpart only; they answer; the desk
// holds and resumes them (the server's view says Held); connecting the
// principal is refused while they are busy (the reason shown in words),
// and with "Preempt" takes them out of the routine call and rings them;
// both the principal's browser and the note-taker's show who was taken out
// and sound the preemption tone; the principal answers and the desk
// leaves: the counterpart hears the principal.
// Placed again, the desk transfers the call to the principal and is out.
func TestBrowserDeskPlaces(t *testing.T) {
	dir := t.TempDir()
	wav := map[string]string{}
	for name, s := range sentences {
		wav[name], _ = audiotest.Speech(t, dir, s)
	}
	d := startDemoWith(t, demo.Options{MediaUDP: "127.0.0.1:0", MediaTCP: "127.0.0.1:0"})
	duty := callBrowser(t, wav["duty"])
	pr := callBrowser(t, wav["principal"])
	notes := callBrowser(t, wav["notes"])
	enrolBrowser(t, duty, d, "duty")
	enrolBrowser(t, pr, d, "principal")
	enrolBrowser(t, notes, d, "notes")
	for name, ctx := range map[string]context.Context{"duty": duty, "principal": pr, "notes": notes} {
		waitFor(t, ctx, name+"'s media line", `window.hotlineUI?.calls?.view().lineUp === true`)
	}
	cp := newPhone(t, d, "counterpart")
	const (
		cpUser   = "counterpart@" + demo.Org
		prUser   = "principal@" + demo.Org
		dutyUser = "duty@" + demo.Org
	)

	// The counterpart asks for a flash call; the desk schedules it.
	start := time.Now().Add(time.Hour).Truncate(time.Minute).UTC()
	req, err := cp.c.RequestCall(t.Context(), client.RequestOptions{Principal: prUser, Urgency: desk.Flash, Zone: "UTC",
		Windows: []desk.Window{{Start: start, End: start.Add(2 * time.Hour)}}, Purpose: "The strait, before the markets open"})
	if err != nil {
		t.Fatal(err)
	}
	clickNow(t, duty, "open the console", sel("open-desk"))
	card := sel("request") + `[data-id="` + req.ID + `"]`
	waitFor(t, duty, "the request on the console", `!!document.querySelector('`+card+` `+sel("approve")+`')`)
	clickNow(t, duty, "schedule it", card+` `+sel("approve"))
	place := sel("scheduled") + `[data-id="` + req.ID + `"] ` + sel("place-call")
	waitFor(t, duty, "Place call, enabled", `!!document.querySelector('`+place+`:not([disabled])')`)

	// The principal is on a routine call with the note-taker.
	clickNow(t, pr, "open notes", sel("contact")+`[data-user="notes@demo.example"]`)
	waitFor(t, pr, "the call button", `!!document.querySelector('`+sel("call")+`') && !document.querySelector('`+sel("call")+`').disabled`)
	clickNow(t, pr, "call notes", sel("call"))
	waitFor(t, notes, "the ring", `!!document.querySelector('`+sel("answer")+`')`)
	clickNow(t, notes, "answer", sel("answer"))
	routine := eval[string](t, pr, `(async () => { for (;;) { const v = window.hotlineUI.calls.view(); if (v.phase === "active") return v.call.id; await new Promise((r) => setTimeout(r, 50)); } })()`)

	// The desk places the flash call: the counterpart rings, nobody else.
	clickNow(t, duty, "place the call", place)
	rung := cp.nextRing(t)
	if stateOf(rung, cpUser) != "ringing" || stateOf(rung, prUser) != "" || stateOf(rung, dutyUser) != "joined" {
		t.Fatalf("placed: %+v", rung.Participants)
	}
	waitFor(t, duty, "the place line ringing the counterpart", `(document.querySelector('`+sel("scheduled")+`[data-id="`+req.ID+`"] `+sel("place-status")+`')?.textContent ?? "").includes("Ringing counterpart@demo.example")`)
	call, err := cp.line.Answer(t.Context(), rung.ID)
	if err != nil {
		t.Fatal(err)
	}
	mine := sel("live-call") + `[data-id="` + rung.ID + `"][data-mine="true"]`
	waitFor(t, duty, "the desk's call on the console, the counterpart on the line", `!!document.querySelector('`+mine+` `+sel("hold")+`[data-user="`+cpUser+`"]')`)
	if got := callView(t, duty, "phase"); got != "active" {
		t.Errorf("the desk's browser's call: %s, want active", got)
	}
	select {
	case <-call.Heard(): // the desk's browser's media reaches the counterpart
	case <-time.After(30 * time.Second):
		t.Fatalf("the counterpart heard nothing from the desk's browser: %+v", call.Stats())
	}

	// "Please hold for the principal."
	clickNow(t, duty, "hold the counterpart", mine+` `+sel("hold")+`[data-user="`+cpUser+`"]`)
	serverCall(t, cp.c, rung.ID, "the counterpart held", func(v api.Call) bool { p, _ := partOf(v, cpUser); return p.Held })
	waitFor(t, duty, "Resume on the console", `!!document.querySelector('`+mine+` `+sel("resume")+`[data-user="`+cpUser+`"]')`)
	eval[bool](t, duty, `(document.querySelector('`+mine+`').scrollIntoView({ block: "center" }), true)`)
	screenshot(t, duty, "desktop-desk-place")
	clickNow(t, duty, "resume the counterpart", mine+` `+sel("resume")+`[data-user="`+cpUser+`"]`)
	serverCall(t, cp.c, rung.ID, "the counterpart resumed", func(v api.Call) bool { p, ok := partOf(v, cpUser); return ok && p.State == "joined" && !p.Held })

	// The principal is busy: without precedence, not rung; the reason in words.
	waitFor(t, duty, "Connect principal", `!!document.querySelector('`+mine+` `+sel("connect")+`:not([disabled])')`)
	clickNow(t, duty, "connect the principal", mine+` `+sel("connect"))
	status := sel("live-call") + `[data-id="` + rung.ID + `"] ` + sel("desk-call-status")
	waitFor(t, duty, "the refusal", `document.querySelector('`+status+`')?.dataset.code === "conflict"`)
	if got := eval[string](t, duty, `document.querySelector('`+status+`').textContent`); !strings.HasPrefix(got, "Not possible now: ") || !strings.Contains(got, "in another call") {
		t.Errorf("the refusal reads %q", got)
	}
	if stateOf(serverCall(t, cp.c, rung.ID, "the call", func(api.Call) bool { return true }), prUser) != "" {
		t.Fatal("a busy principal was rung without precedence")
	}
	// With "Preempt": taken out of the routine call and rung.
	if !eval[bool](t, duty, `(() => {
		const box = document.querySelector('`+mine+` `+sel("preempt")+`');
		const b = document.querySelector('`+mine+` `+sel("connect")+`');
		if (!box || !b || b.disabled) return false;
		box.checked = true;
		b.click();
		return true;
	})()`) {
		t.Fatal("no Preempt choice beside Connect principal")
	}
	// The preemption warning: the principal's browser, taken out, and the
	// note-taker's, left on the routine call, show who went and sound the
	// tone (440 Hz + 620 Hz, about 3 s).
	banners := map[string]string{"principal": "Preempted: taken out for a flash call", "notes": prUser + " was taken out for a flash call"}
	for name, ctx := range map[string]context.Context{"principal": pr, "notes": notes} {
		waitFor(t, ctx, name+"'s preemption banner", `(document.querySelector('`+sel("preempt-banner")+`')?.textContent ?? "").includes(`+jsq(banners[name])+`)`)
	}
	waitFor(t, notes, "the routine call's end, preempted, at the note-taker's", `(() => {
		const v = window.hotlineUI.calls.view();
		return v.call?.id === `+jsq(routine)+` && v.phase === "ended" && v.endedReason === "preempted";
	})()`)
	during := map[string]tone{"principal": measureTone(t, pr, "during"), "notes": measureTone(t, notes, "during")}
	after := map[string]tone{"principal": measureTone(t, pr, "after"), "notes": measureTone(t, notes, "after")}
	for name, m := range during {
		t.Logf("%s's preemption tone: during %+v; after %+v", name, m, after[name])
		if m.F440-m.Rest < 40 || m.F620-m.Rest < 40 || m.F440 < -50 || m.F620 < -50 ||
			math.Abs(m.Peak440-440) > m.Bin || math.Abs(m.Peak620-620) > m.Bin {
			t.Errorf("%s: no preemption tone at 440 and 620 Hz well above the rest: %+v", name, m)
		}
		if a := after[name]; a.F440-a.Rest > 20 || a.F620-a.Rest > 20 {
			t.Errorf("%s: the tone still sounds %.1f s after it began: %+v", name, a.Since/1000, a)
		}
	}
	waitFor(t, pr, "the flash call ringing the principal", `!!document.querySelector('`+sel("ring")+`[data-call="`+rung.ID+`"]')`)
	screenshot(t, pr, "desktop-preempted")
	serverCall(t, cp.c, rung.ID, "the principal rung", func(v api.Call) bool { return stateOf(v, prUser) == "ringing" })
	clickNow(t, pr, "the principal answers", sel("ring")+`[data-call="`+rung.ID+`"] `+sel("answer"))
	serverCall(t, cp.c, rung.ID, "the principal on the line", func(v api.Call) bool { return stateOf(v, prUser) == "joined" })

	// The desk leaves; the principal and the counterpart talk on.
	waitFor(t, duty, "Leave", `!!document.querySelector('`+mine+` `+sel("desk-leave")+`:not([disabled])')`)
	clickNow(t, duty, "the desk leaves", mine+` `+sel("desk-leave"))
	v := serverCall(t, cp.c, rung.ID, "the desk gone", func(v api.Call) bool { return stateOf(v, dutyUser) == "" })
	if v.State != "active" || stateOf(v, prUser) != "joined" || stateOf(v, cpUser) != "joined" {
		t.Fatalf("after the desk left: %+v", v)
	}
	waitFor(t, duty, "the desk's browser out of the call", `["ended", "idle"].includes(window.hotlineUI.calls.view().phase)`)
	rec := voice.NewRecorder(filepath.Join(dir, "cp-hears.ogg"))
	call.OnAudio(rec.Write)
	time.Sleep(6 * time.Second) // the principal's microphone, looped
	call.OnAudio(nil)
	rs := rec.Recordings()
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	heardPrincipal := false
	for _, r := range rs {
		if r.From.User == prUser {
			heardPrincipal = true
			heardLike(t, "the counterpart hearing the principal", r.Path, wav["principal"], wav["duty"])
		}
	}
	if !heardPrincipal {
		t.Fatalf("the counterpart did not hear the principal: recordings %+v", rs)
	}
	clickNow(t, pr, "the principal hangs up", sel("hangup"))
	select {
	case <-call.Ended():
	case <-time.After(30 * time.Second):
		t.Fatal("the counterpart's call did not end")
	}

	// Placed again and handed over: the principal rings, the desk is out.
	waitFor(t, duty, "Place call, enabled again", `!!document.querySelector('`+place+`:not([disabled])')`)
	clickNow(t, duty, "place the call again", place)
	rung2 := cp.nextRing(t, rung.ID)
	call2, err := cp.line.Answer(t.Context(), rung2.ID)
	if err != nil {
		t.Fatal(err)
	}
	mine2 := sel("live-call") + `[data-id="` + rung2.ID + `"][data-mine="true"]`
	waitFor(t, duty, "the principal among those to transfer to", `!!document.querySelector('`+mine2+` `+sel("transfer-to")+` option[value="`+prUser+`"]')`)
	if !eval[bool](t, duty, `(() => {
		const s = document.querySelector('`+mine2+` `+sel("transfer-to")+`');
		const b = document.querySelector('`+mine2+` `+sel("transfer")+`');
		if (!s || !b || b.disabled) return false;
		s.value = `+jsq(prUser)+`;
		b.click();
		return true;
	})()`) {
		t.Fatal("no Transfer on the console")
	}
	waitFor(t, pr, "the transferred call ringing the principal", `!!document.querySelector('`+sel("ring")+`[data-call="`+rung2.ID+`"]')`)
	waitFor(t, duty, "the desk's browser out of the call", `["ended", "idle"].includes(window.hotlineUI.calls.view().phase)`)
	clickNow(t, pr, "the principal answers", sel("ring")+`[data-call="`+rung2.ID+`"] `+sel("answer"))
	v = serverCall(t, cp.c, rung2.ID, "the principal on the transferred call", func(v api.Call) bool { return stateOf(v, prUser) == "joined" })
	if v.State != "active" || stateOf(v, dutyUser) != "" || stateOf(v, cpUser) != "joined" {
		t.Fatalf("after the transfer: %+v", v)
	}
	if err := call2.Hangup(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pr, "the principal's call over", `["ended", "idle"].includes(window.hotlineUI.calls.view().phase)`)
}
