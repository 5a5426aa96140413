package web_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/internal/desk"
)

// TestBrowserDesk: the duty-desk console in Chromium. The counterpart's
// browser asks for a flash call with the principal through the request
// form; the duty officer's console shows it at once, flash first, with the
// purpose its browser decrypted, and schedules it with a note; the
// counterpart sees it scheduled with the note, the principal has it on the
// schedule; a call placed meanwhile shows under "Calls under way" with its
// participants.
func TestBrowserDesk(t *testing.T) {
	d := startDemo(t)
	browser := newBrowser(t)
	cp, duty, pr := tab(t, browser), tab(t, browser), tab(t, browser)
	enrolBrowser(t, duty, d, "duty")
	enrolBrowser(t, cp, d, "counterpart")
	enrolBrowser(t, pr, d, "principal")
	connected := `document.querySelector('` + sel("stream-status") + `')?.dataset.connected === "true"`
	waitFor(t, duty, "duty's stream", connected)
	waitFor(t, cp, "counterpart's stream", connected)
	waitFor(t, pr, "principal's stream", connected)

	run(t, duty, "open the console", chromedp.Click(chromedp.CSS(sel("open-desk"))))
	waitFor(t, duty, "an empty console", `(document.querySelector('`+sel("desk-requests")+`')?.textContent ?? "").includes("No requests")`)

	const purpose = "The grain corridor before Thursday's vote"
	run(t, cp, "the counterpart asks for a call",
		chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="principal@demo.example"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel("request-form"))),
		chromedp.SetValue(chromedp.CSS(sel("request-urgency")), "flash"),
		chromedp.SendKeys(chromedp.CSS(sel("request-purpose")), purpose),
		chromedp.Click(chromedp.CSS(sel("request-send"))))
	waitFor(t, cp, "the counterpart's pending request", `document.querySelector('`+sel("my-request")+`')?.dataset.status === "pending"`)

	card := sel("request") + `[data-urgency="flash"]`
	waitFor(t, duty, "the flash request", `!!document.querySelector('`+card+`')`)
	waitFor(t, duty, "the flash request with its purpose", `(document.querySelector('`+card+` `+sel("purpose")+`')?.textContent ?? "") === `+jsq(purpose))
	screenshot(t, duty, "desktop-desk")
	run(t, duty, "the desk writes its note",
		chromedp.SendKeys(chromedp.CSS(card+` `+sel("decision-note")), "Confirmed: the principal will take it"))
	clickNow(t, duty, "the desk schedules it", card+` `+sel("approve"))
	waitFor(t, duty, "the request leaves the queue", `!document.querySelector('`+sel("request")+`')`)

	waitFor(t, cp, "the counterpart sees it scheduled", `document.querySelector('`+sel("my-request")+`')?.dataset.status === "scheduled"`)
	waitFor(t, cp, "with the desk's note", `(document.querySelector('`+sel("my-request")+`')?.textContent ?? "").includes("Confirmed: the principal will take it")`)
	// The line check: both browsers answer by themselves (log, group); the
	// server checks their credentials, that they are online and that their
	// warm media lines are up.
	sched := sel("scheduled") + ` ` + sel("linecheck")
	waitFor(t, duty, "the call in the next 24 hours", `!!document.querySelector('`+sel("scheduled")+` `+sel("check-line")+`')`)
	clickNow(t, duty, "check the line", sel("scheduled")+` `+sel("check-line")) // the console re-renders as it polls
	waitFor(t, duty, "the line check's result", `["green", "red"].includes(document.querySelector('`+sched+`')?.dataset.status)`)
	if got := eval[string](t, duty, `document.querySelector('`+sched+`').textContent`); !strings.HasPrefix(got, "LINE GREEN") {
		t.Errorf("line check: %q", got)
	}
	run(t, pr, "the principal opens the schedule", chromedp.Click(chromedp.CSS(sel("open-desk"))))
	waitFor(t, pr, "the call on the principal's schedule, with the purpose",
		`(document.querySelector('`+sel("desk-schedule")+`')?.textContent ?? "").includes(`+jsq(purpose)+`)`)

	// A call placed by the note-taker's headless device to the principal
	// shows on the console, ringing, with both people.
	var invite string
	for _, p := range d.People {
		if p.Name == "notes" {
			invite = p.Invite
		}
	}
	notes, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: "http://127.0.0.1:" + strconv.Itoa(d.Port), Invite: invite,
		ProfileDir: filepath.Join(t.TempDir(), "notes"), Label: "notes' phone"})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := notes.DirectConversation(t.Context(), "principal@"+demo.Org)
	if err != nil {
		t.Fatal(err)
	}
	var placed api.Call
	if placed, err = notes.PlaceCall(t.Context(), conv.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, duty, "the call on the console", `(() => {
		const c = document.querySelector('`+sel("live-call")+`[data-id="`+placed.ID+`"]');
		return !!c && c.textContent.includes("notes@demo.example (note-taker)") && c.textContent.includes("principal@demo.example (principal) — ringing");
	})()`)
	screenshot(t, duty, "desktop-desk-live")
	if _, err := notes.LeaveCall(t.Context(), placed.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, duty, "the call gone from the console", `!document.querySelector('`+sel("live-call")+`')`)

	// "Call me on my cell": with a rule letting the principal call the
	// counterpart directly, the principal's browser calls (signalling
	// only); the console shows the ad-hoc call owing a readout; the
	// principal's browser files it; the desk's browser reads it.
	if err := d.AddRule(t.Context(), "user:principal@demo.example -> user:counterpart@demo.example : allow"); err != nil {
		t.Fatal(err)
	}
	adhoc := eval[string](t, pr, `(async () => {
		const c = await hotlineCore.direct("counterpart@demo.example");
		const u = await hotlineCore.placeCall(c.id);
		await hotlineCore.hangup(u.call.id);
		return u.call.id;
	})()`)
	readout := sel("readout") + `[data-call="` + adhoc + `"]`
	waitFor(t, duty, "the ad-hoc call owing a readout", `document.querySelector('`+readout+`')?.dataset.status === "due"`)
	const text = "They will back the corridor if the vote passes."
	// The principal's schedule pane (open since earlier) lists it too.
	waitFor(t, pr, "the principal's readout form", `!!document.querySelector('`+readout+` `+sel("readout-input")+`')`)
	run(t, pr, "the principal files the readout",
		chromedp.SendKeys(chromedp.CSS(readout+` `+sel("readout-input")), text),
		chromedp.Click(chromedp.CSS(readout+` `+sel("readout-file"))))
	waitFor(t, duty, "the readout, read at the desk", `(() => {
		const r = document.querySelector('`+readout+`');
		return !!r && r.dataset.status === "filed" && (r.querySelector('`+sel("readout-text")+`')?.textContent ?? "") === `+jsq(text)+`;
	})()`)
	screenshot(t, duty, "desktop-desk-readout")

	// A hotline from the note-taker's headless device to a headless device
	// of the duty officer, tested every 4 seconds: green on the console
	// while both ends keep it, red (the desk told at once) when the far
	// end stops.
	dutyInvite, err := d.Invite(t.Context(), "duty@"+demo.Org)
	if err != nil {
		t.Fatal(err)
	}
	dutyPhone, _, err := client.Enroll(t.Context(), client.EnrollOptions{Server: "http://127.0.0.1:" + strconv.Itoa(d.Port), Invite: dutyInvite,
		ProfileDir: filepath.Join(t.TempDir(), "duty-phone"), Label: "duty room phone"})
	if err != nil {
		t.Fatal(err)
	}
	var me api.Me
	for i := 0; ; i++ { // the demo approves it in a moment
		if err := dutyPhone.Do(t.Context(), "GET", "/v1/me", nil, &me); err == nil && me.Device.Status == "active" {
			break
		} else if i == 200 {
			t.Fatalf("the duty room phone was not approved: %+v %v", me.Device, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := dutyPhone.EnsureKeyPackages(t.Context(), client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	line, err := notes.CreateHotline(t.Context(), "duty@"+demo.Org, me.Device.ID, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keepNear := keepLine(t, notes)
	keepFar := keepLine(t, dutyPhone)
	hl := sel("hotline") + `[data-id="` + line.ID + `"]`
	waitFor(t, duty, "the hotline green on the console", `document.querySelector('`+hl+`')?.dataset.status === "green"`)
	screenshot(t, duty, "desktop-desk-hotline")
	keepFar()
	waitFor(t, duty, "the hotline red on the console", `document.querySelector('`+hl+`')?.dataset.status === "red"`)
	keepNear()

	// The brief beside the call: the note-taker briefs the principal for
	// the scheduled call; when the desk places it, the principal's browser
	// rings with the brief on screen.
	reqID := eval[string](t, duty, `document.querySelector('`+sel("scheduled")+`').dataset.id`)
	const point = "Thank them for the convoy"
	if _, err := notes.Brief(t.Context(), reqID, desk.Briefing{TalkingPoints: []string{point},
		Questions: []desk.QA{{Question: "Will you veto?", Answer: "We have not decided"}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; !eval[bool](t, pr, `hotlineCore.request(`+jsq(reqID)+`).then((r) => !!r.brief)`); i++ {
		if i == 200 {
			t.Fatal("the brief did not reach the principal's browser")
		}
		time.Sleep(50 * time.Millisecond)
	}
	briefCall := eval[string](t, duty, `(async () => {
		const r = await hotlineCore.request(`+jsq(reqID)+`);
		const u = await hotlineCore.placeCall(r.conversation);
		return u.call.id;
	})()`)
	waitFor(t, pr, "the brief on the ring screen", `(document.querySelector('`+sel("ring-brief")+`')?.textContent ?? "").includes(`+jsq(point)+`)`)
	screenshot(t, pr, "desktop-ring-brief")
	if eval[string](t, cp, `document.querySelector('`+sel("ring-brief")+`')?.textContent ?? ""`) != "" {
		t.Error("the counterpart's ring shows a brief")
	}
	eval[bool](t, duty, `hotlineCore.hangup(`+jsq(briefCall)+`).then(() => true)`)
}

// keepLine runs a device's end of its hotlines until the returned stop.
func keepLine(t *testing.T, c *client.Client) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.KeepHotlines(ctx, nil)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}
