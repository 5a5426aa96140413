package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/internal/desk"
	"hotline/internal/voice"
	"hotline/internal/workflow"
	"hotline/web/core"
)

// TestBrowserLineCheck: the line check's measurement of the media path,
// from browsers. The principal's device is a browser. A call requested by
// the counterpart's browser has browsers at both ends; one requested by
// the note-taker's headless device, with a real voice line, has a browser
// at one end and the headless client at the other, which speak the same
// probes. The desk checks each line: green, and every end measured it
// through the forwarder: every probe sent, none of the far end's lost,
// its own echoed back, a round trip. The browsers keep the desktop's
// autoplay policy, and nobody touches the counterpart's page: it cannot
// start an AudioContext, and measures all the same. A call comes first: the principal's
// browser placing one while its line is checked says it could not
// measure ("in_call"), and the next check after it is green again.
func TestBrowserLineCheck(t *testing.T) {
	d := startDemo(t)
	ctx := t.Context()
	const prUser = "principal@" + demo.Org
	duty := enrolHeadless(t, d, "duty")
	browser := newBrowser(t, chromedp.Flag("autoplay-policy", "document-user-activation-required"),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true))
	pr, cp := tab(t, browser), tab(t, browser)
	enrolBrowser(t, pr, d, "principal")
	ready := `window.hotlineUI?.calls?.view().lineUp === true && document.querySelector('` + sel("stream-status") + `')?.dataset.connected === "true"`
	waitFor(t, pr, "the principal's stream and warm line", ready)
	// The counterpart's page is only looked at, never given a gesture
	// (waitFor's polling gives one).
	authenticator(t, cp, true)
	var cpPerson demo.Person
	for _, p := range d.People {
		if p.Name == "counterpart" {
			cpPerson = p
		}
	}
	run(t, cp, "open the counterpart's address", chromedp.Navigate(d.URL(cpPerson)))
	untouchedWait(t, cp, "the counterpart's stream and warm line", `(document.querySelector('`+sel("me")+`')?.textContent ?? "").includes(`+jsq(cpPerson.User())+`) && `+ready)
	untouched := func() {
		t.Helper()
		if eval[bool](t, cp, `navigator.userActivation.hasBeenActive`) {
			t.Fatal("the counterpart's page had a user gesture")
		}
	}
	untouched()
	notes := enrolHeadless(t, d, "notes")
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	line, err := voice.Dial(dctx, notes, voice.Options{IPFilter: func(ip net.IP) bool { return ip.IsLoopback() }})
	cancel()
	if err != nil {
		t.Fatalf("the note-taker's warm line: %v", err)
	}
	t.Cleanup(func() { line.Close() })
	keepLine(t, notes) // answers line checks, measuring on its voice line

	// schedule has the desk approve a request for an hour from now.
	schedule := func(id string) {
		t.Helper()
		at := time.Now().Add(time.Hour).Truncate(time.Minute)
		for i := 0; ; i++ {
			err := duty.Sync(ctx)
			if err == nil {
				_, err = duty.DecideRequest(ctx, id, "approve", client.DecideOptions{At: at})
			}
			if err == nil {
				return
			} else if i == 100 {
				t.Fatalf("schedule request %s: %v", id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	start := time.Now().UTC().Add(time.Hour).Truncate(time.Minute)
	in, err := json.Marshal(core.RequestIn{Principal: prUser, Urgency: "routine", Zone: "UTC", Purpose: "The ferry timetable",
		Start: start.Format(time.RFC3339), End: start.Add(time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	fromBrowser := eval[string](t, cp, `hotlineCore.requestCall(`+jsq(string(in))+`).then((r) => r.id)`)
	schedule(fromBrowser)
	fromPhone, err := notes.RequestCall(ctx, client.RequestOptions{Principal: prUser, Urgency: "routine", Zone: "UTC",
		Windows: []desk.Window{{Start: start, End: start.Add(time.Hour)}}, Purpose: "The press line after the vote"})
	if err != nil {
		t.Fatal(err)
	}
	schedule(fromPhone.ID)

	for _, tc := range []struct {
		name    string
		request string
		kinds   map[string]string // side → what the device is
	}{
		{"browser to browser", fromBrowser, map[string]string{"principal": "browser", "requester": "browser"}},
		{"browser to headless", fromPhone.ID, map[string]string{"principal": "browser", "requester": "headless"}},
	} {
		lc := measuredLine(t, duty, tc.request)
		if len(lc.Ends) != 2 {
			t.Fatalf("%s: ends %+v", tc.name, lc.Ends)
		}
		for _, end := range lc.Ends {
			m := end.Media
			t.Logf("%s: the %s's %s: round trip %.2f ms median, %.2f ms max; %d of %d echoed",
				tc.name, end.Side, tc.kinds[end.Side], m.RTTMs, m.RTTMaxMs, m.Echoes, m.Sent)
		}
	}

	untouched()

	// The principal calls the note-taker while the desk checks the line.
	direct := eval[string](t, pr, `hotlineCore.direct("notes@`+demo.Org+`").then((c) => c.id)`)
	lc, err := duty.StartLineCheck(ctx, fromBrowser)
	if err != nil {
		t.Fatal(err)
	}
	eval[bool](t, pr, `window.hotlineUI.calls.place(`+jsq(direct)+`).then(() => true)`)
	lc = lineFinished(t, duty, lc)
	for _, end := range lc.Ends {
		if end.Side != "principal" {
			continue
		}
		if got := redChecks(lc); !slices.Contains(got, "principal media in_call") || end.Media == nil || end.Media.Unsupported != "in_call" {
			t.Errorf("a line check during a call: red %v, the principal's media %+v", got, end.Media)
		}
	}
	eval[bool](t, pr, `window.hotlineUI.calls.hangup().then(() => true)`)
	measuredLine(t, duty, fromBrowser)
}

// measuredLine has the desk check a request's line until it is green with
// every end's media measured in full: every probe sent, none of the far
// end's lost, echoes, a round trip. This machine's load can make a probe
// late (over 200 ms behind, which counts as lost): a check whose figures
// fall short is logged and made again, three times at most.
func measuredLine(t *testing.T, duty *client.Client, request string) api.LineCheck {
	t.Helper()
	for attempt := 1; ; attempt++ {
		lc := greenLine(t, duty, request)
		var short []string
		for _, end := range lc.Ends {
			if m := end.Media; m == nil || m.Unsupported != "" || m.Sent != workflow.LineProbes || m.Loss != 0 || m.Echoes == 0 || m.RTTMs <= 0 || m.RTTMaxMs < m.RTTMs {
				short = append(short, fmt.Sprintf("the %s's %+v", end.Side, m))
			}
		}
		switch {
		case len(short) == 0:
			return lc
		case attempt == 3:
			t.Fatalf("line check of %s: measured %v", request, short)
		}
		t.Logf("line check of %s: measured %v; again", request, short)
	}
}

// untouchedWait waits for a condition on a page as waitFor does, without
// giving the page a user gesture.
func untouchedWait(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	for deadline := time.Now().Add(45 * time.Second); !eval[bool](t, ctx, cond); {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// greenLine has the desk check a request's line until it is green (an end
// may not have joined the request's conversation yet), and returns the
// check.
func greenLine(t *testing.T, duty *client.Client, request string) api.LineCheck {
	t.Helper()
	ctx := t.Context()
	for attempt := 1; ; attempt++ {
		lc, err := duty.StartLineCheck(ctx, request)
		if err != nil {
			t.Fatal(err)
		}
		if lc = lineFinished(t, duty, lc); lc.Status == workflow.LineGreen {
			return lc
		}
		if attempt == 10 {
			t.Fatalf("line check of %s: red %v", request, redChecks(lc))
		}
		t.Logf("line check of %s: red %v; again", request, redChecks(lc))
		time.Sleep(500 * time.Millisecond)
	}
}

// lineFinished waits for a line check to finish and returns it.
func lineFinished(t *testing.T, duty *client.Client, lc api.LineCheck) api.LineCheck {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); lc.Status == workflow.LineRunning; {
		if time.Now().After(deadline) {
			t.Fatalf("line check %s still running: %+v", lc.ID, lc)
		}
		time.Sleep(50 * time.Millisecond)
		var err error
		if lc, err = duty.GetLineCheck(t.Context(), lc.ID); err != nil {
			t.Fatal(err)
		}
	}
	return lc
}

// redChecks lists a line check's red checks as "side check reason".
func redChecks(lc api.LineCheck) []string {
	var red []string
	for _, e := range lc.Ends {
		for _, p := range e.Checks {
			if p.Status != workflow.LineGreen {
				red = append(red, e.Side+" "+p.Name+" "+p.Reason)
			}
		}
	}
	return red
}

// enrolHeadless enrols a person's headless device from their demo invite,
// with key packages.
func enrolHeadless(t *testing.T, d *demo.Demo, name string) *client.Client {
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
	return c
}
