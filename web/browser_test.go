package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/web"
)

// The web client's tests drive Debian's Chromium (installed by .ci/run)
// against the demo organisation, through the UI's data-testid hooks.

const chromiumPath = "/usr/bin/chromium"

// startDemo serves the built web client from a fresh demo organisation.
func startDemo(t testing.TB) *demo.Demo { return startDemoWith(t, demo.Options{}) }

func startDemoWith(t testing.TB, o demo.Options) *demo.Demo {
	t.Helper()
	files := web.Files()
	if files == nil {
		t.Fatal("web/dist holds no build of the web client: run `make web` (make test does)")
	}
	o.Dir, o.Web = filepath.Join(t.TempDir(), "demo"), files
	d, err := demo.Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("close demo: %v", err)
		}
	})
	return d
}

// newBrowser starts a headless Chromium with a fresh profile and returns
// a context for its first tab; more tabs come from chromedp.NewContext on
// it.
func newBrowser(t testing.TB, extraFlags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("Chromium is needed for the web client's tests (apt-get install chromium; .ci/run does): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extraFlags...)...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// tab opens a new tab in the browser of ctx.
func tab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// run runs steps with a deadline, failing the test with what was being
// done.
func run(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t testing.TB, ctx context.Context, what, cond string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// clickNow clicks the element selector finds, in one step in the page: the
// views re-render, and a node found by one protocol call may be gone by
// the next (chromedp.Click's "Could not find node with given id").
func clickNow(t testing.TB, ctx context.Context, what, selector string) {
	t.Helper()
	if !eval[bool](t, ctx, `(() => { const e = document.querySelector(`+jsq(selector)+`); if (!e || e.disabled) return false; e.click(); return true })()`) {
		t.Fatalf("%s: no enabled %s to click", what, selector)
	}
}

func sel(testid string) string { return `[data-testid="` + testid + `"]` }

func jsq(s string) string { return fmt.Sprintf("%q", s) }

// screenshot saves the page, for the README and for looking at a failure.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("HOTLINE_SCREENSHOTS")
	if dir == "" {
		dir = "screenshots"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var png []byte
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// authenticator gives the tab a virtual authenticator with the PRF
// extension (a platform authenticator with user verification), as a
// passkey-capable device would have.
func authenticator(t testing.TB, ctx context.Context, prf bool) webauthn.AuthenticatorID {
	t.Helper()
	id, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (webauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return "", err
		}
		r, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, HasPrf: prf, AutomaticPresenceSimulation: true,
		}})
		return r.AuthenticatorID, err
	})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

func removeAuthenticator(t testing.TB, ctx context.Context, id webauthn.AuthenticatorID) {
	t.Helper()
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// enrolBrowser opens a person's demo address, with a passkey-capable
// authenticator, and waits until the app shows them signed in with an
// approved device.
func enrolBrowser(t testing.TB, ctx context.Context, d *demo.Demo, name string) webauthn.AuthenticatorID {
	t.Helper()
	id := authenticator(t, ctx, true)
	var p demo.Person
	for _, q := range d.People {
		if q.Name == name {
			p = q
		}
	}
	run(t, ctx, "open "+name+"'s address", chromedp.Navigate(d.URL(p)))
	waitFor(t, ctx, name+" signed in", `(() => { const e = document.querySelector('`+sel("me")+`'); return !!e && e.textContent.includes(`+jsq(p.User())+`) })()`)
	if h := eval[string](t, ctx, "location.hash"); strings.Contains(h, "invite") {
		t.Errorf("the invite stays in the address bar: %q", h)
	}
	return id
}

// metaKeys lists what the page keeps in the clear beside the sealed files.
func metaKeys(t testing.TB, ctx context.Context) string {
	return eval[string](t, ctx, `new Promise((resolve, reject) => {
		const req = indexedDB.open("hotline");
		req.onerror = () => reject(req.error);
		req.onsuccess = () => {
			const r = req.result.transaction("meta").objectStore("meta").getAllKeys();
			r.onsuccess = () => resolve(r.result.sort().join(","));
			r.onerror = () => reject(r.error);
		};
	})`)
}

// TestBrowsersMessage: two people's browsers enrol from their demo
// addresses, message each other, exchange a file, and keep everything
// across a reload; a contact the policy refuses shows its stable code.
func TestBrowsersMessage(t *testing.T) {
	d := startDemo(t)
	browser := newBrowser(t)
	p := tab(t, browser)
	duty := tab(t, browser)
	pKey := enrolBrowser(t, p, d, "principal")
	enrolBrowser(t, duty, d, "duty")
	waitFor(t, p, "principal's stream", `document.querySelector('`+sel("stream-status")+`')?.dataset.connected === "true"`)
	waitFor(t, duty, "duty's stream", `document.querySelector('`+sel("stream-status")+`')?.dataset.connected === "true"`)

	// The principal's contacts are the staff, not the counterpart.
	waitFor(t, p, "principal's contacts", `!!document.querySelector('`+sel("contact")+`[data-user="duty@demo.example"]')`)
	if n := eval[int](t, p, `document.querySelectorAll('`+sel("contact")+`[data-user="counterpart@demo.example"]').length`); n != 0 {
		t.Errorf("the principal's contacts list the counterpart")
	}

	const text = "The summit moves to Thursday, 09:00."
	run(t, p, "principal opens the duty officer",
		chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="duty@demo.example"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel("conversation-pane"))),
		chromedp.WaitVisible(chromedp.CSS(sel("banner"))),
		chromedp.SendKeys(chromedp.CSS(sel("compose")), text),
		chromedp.Click(chromedp.CSS(sel("send"))))
	hasText := `[...document.querySelectorAll('` + sel("message") + ` ` + sel("text") + `')].some(e => e.textContent.includes(` + jsq(text) + `))`
	waitFor(t, p, "the principal's own message", hasText)

	// The duty officer's browser learns of the conversation from the
	// stream, and shows the message.
	waitFor(t, duty, "the conversation in duty's list", `!!document.querySelector('`+sel("conversation")+`')`)
	run(t, duty, "duty opens it", chromedp.Click(chromedp.CSS(sel("conversation"))), chromedp.WaitVisible(chromedp.CSS(sel("conversation-pane"))))
	waitFor(t, duty, "the message at duty", hasText)
	level := eval[string](t, duty, `document.querySelector('`+sel("level")+`').textContent`)
	if strings.TrimSpace(level) == "" || level != strings.ToUpper(level) {
		t.Errorf("banner level %q", level)
	}
	if all := eval[string](t, duty, `document.querySelector('`+sel("verified")+`').dataset.all`); all != "false" {
		t.Errorf("banner says every identity is verified (%q) though nobody compared safety numbers", all)
	}

	// A file, through the attach input; the duty officer's browser shows
	// it and its core decrypts it to the same bytes.
	file := filepath.Join(t.TempDir(), "briefing.txt")
	content := bytes.Repeat([]byte("Briefing for the principal. "), 3000)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, p, "attach a file", chromedp.SetUploadFiles(chromedp.CSS(sel("attach-input")), []string{file}))
	hasFile := `!!document.querySelector('` + sel("attachment") + `') && document.querySelector('` + sel("attachment") + `').textContent.includes("briefing.txt")`
	waitFor(t, duty, "the attachment at duty", hasFile)
	sum := sha256.Sum256(content)
	got := eval[string](t, duty, `(async () => {
		const pane = document.querySelector('`+sel("conversation-pane")+`');
		const msg = document.querySelector('`+sel("attachment")+`').closest('`+sel("message")+`');
		const f = await hotlineCore.download(pane.dataset.id, Number(msg.dataset.seq));
		const h = new Uint8Array(await crypto.subtle.digest("SHA-256", f.data));
		return [...h].map(b => b.toString(16).padStart(2, "0")).join("");
	})()`)
	if got != hex.EncodeToString(sum[:]) {
		t.Errorf("downloaded file's SHA-256 %s, want %x", got, sum)
	}
	screenshot(t, duty, "desktop-conversation")

	// A reload opens the profile from IndexedDB: same person, same history.
	eval[any](t, p, `window.hotlineUI.flushed()`)
	run(t, p, "reload", chromedp.Reload())
	waitFor(t, p, "principal signed in again", `(document.querySelector('`+sel("me")+`')?.textContent ?? "").includes("principal@demo.example")`)
	run(t, p, "reopen the conversation", chromedp.WaitVisible(chromedp.CSS(sel("conversation"))), chromedp.Click(chromedp.CSS(sel("conversation"))))
	waitFor(t, p, "history after reload", hasText)

	// The keys are sealed by the passkey's PRF alone: beside the files the
	// page keeps only the device ID and how they are protected. Without
	// the authenticator the profile stays locked, and the server would
	// not open a session for the device anyway (passkey_required, tested
	// in internal/server).
	if keys := metaKeys(t, p); keys != "device,protection" {
		t.Errorf("the page keeps %q beside its files, want only device,protection", keys)
	}
	removeAuthenticator(t, p, pKey)
	authenticator(t, p, true) // another authenticator: it holds no passkey of this device
	run(t, p, "reload without the authenticator", chromedp.Reload())
	waitFor(t, p, "the locked screen", `document.getElementById("app").dataset.state === "locked" && !!document.querySelector('`+sel("error")+`')`)
	if code := eval[string](t, p, `document.querySelector('`+sel("error")+`').dataset.code`); !strings.HasPrefix(code, "passkey_") {
		t.Errorf("locked without the authenticator, error code %q", code)
	}
	screenshot(t, p, "desktop-locked")

	// The counterpart reaches the principal only through a call request:
	// the stable code shows in the UI.
	// The counterpart's authenticator has no PRF, so it cannot protect
	// keys: the server refuses it, and the user goes on without a passkey,
	// which the app then says on every screen.
	cp := tab(t, browser)
	authenticator(t, cp, false)
	var c demo.Person
	for _, q := range d.People {
		if q.Name == "counterpart" {
			c = q
		}
	}
	run(t, cp, "open the counterpart's address", chromedp.Navigate(d.URL(c)))
	waitFor(t, cp, "the refused passkey", `document.getElementById("app").dataset.state === "protect" && document.querySelector('`+sel("error")+`')?.dataset.code === "passkey_invalid"`)
	screenshot(t, cp, "desktop-protect")
	run(t, cp, "go on without a passkey", chromedp.Click(chromedp.CSS(sel("passkey-skip"))))
	waitFor(t, cp, "the counterpart signed in", `(document.querySelector('`+sel("me")+`')?.textContent ?? "").includes("counterpart@demo.example")`)
	waitFor(t, cp, "the warning", `!!document.querySelector('`+sel("unprotected")+`')`)
	run(t, cp, "dismiss the passkey error", chromedp.Click(chromedp.CSS(sel("error-dismiss"))))
	waitFor(t, cp, "counterpart's contacts", `!!document.querySelector('`+sel("contact")+`[data-user="principal@demo.example"]')`)
	// The policy lets the counterpart reach the principal only through the
	// duty desk: the contact opens the request form, not a conversation.
	run(t, cp, "counterpart opens the principal", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="principal@demo.example"]`)))
	waitFor(t, cp, "the request form", `!!document.querySelector('`+sel("request-form")+`') && !document.querySelector('`+sel("conversation-pane")+`')`)
	// A contact the policy refuses after the list was shown (an admin adds
	// a deny rule): the attempt shows the server's stable code.
	if err := d.AddRule(t.Context(), "user:counterpart@demo.example -> user:duty@demo.example : deny"); err != nil {
		t.Fatal(err)
	}
	run(t, cp, "counterpart opens the duty officer", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="duty@demo.example"]`)))
	waitFor(t, cp, "the refusal", `document.querySelector('`+sel("error")+`')?.dataset.code === "contact_refused"`)
	screenshot(t, cp, "desktop-refused")

	// Phone width.
	run(t, duty, "phone width", chromedp.EmulateViewport(390, 844))
	screenshot(t, duty, "phone-conversation")
}

// TestBrowsersVerify: two browsers compare safety numbers (the same 60
// digits on both sides, and a QR code), mark each other verified, and the
// banner says so; a new device of one of them then shows as a key change to
// the other, and as an unknown device to its own user's log monitor until
// accepted.
func TestBrowsersVerify(t *testing.T) {
	d := startDemo(t)
	browser := newBrowser(t)
	p := tab(t, browser)
	duty := tab(t, browser)
	enrolBrowser(t, p, d, "principal")
	enrolBrowser(t, duty, d, "duty")
	waitFor(t, duty, "duty's stream", `document.querySelector('`+sel("stream-status")+`')?.dataset.connected === "true"`)
	run(t, p, "open duty", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="duty@demo.example"]`)))
	waitFor(t, p, "the conversation", `!!document.querySelector('`+sel("conversation-pane")+` `+sel("verified")+`')`)
	waitFor(t, duty, "the conversation at duty", `!!document.querySelector('`+sel("conversation")+`')`)
	run(t, duty, "duty opens it", chromedp.Click(chromedp.CSS(sel("conversation"))))
	waitFor(t, duty, "duty's banner", `!!document.querySelector('`+sel("conversation-pane")+` `+sel("verified")+`')`)

	numbers := map[string]string{}
	for name, c := range map[string]struct {
		ctx   context.Context
		other string
	}{"principal": {p, "duty@demo.example"}, "duty": {duty, "principal@demo.example"}} {
		run(t, c.ctx, name+" opens verification", chromedp.Click(chromedp.CSS(sel("conversation-pane")+` `+sel("verified"))))
		section := sel("verify-dialog") + ` ` + sel("verify-user") + `[data-user="` + c.other + `"]`
		waitFor(t, c.ctx, name+"'s safety number", `/\d{5}/.test(document.querySelector('`+section+` `+sel("safety-number")+`')?.textContent ?? "")`)
		numbers[name] = eval[string](t, c.ctx, `document.querySelector('`+section+` `+sel("safety-number")+`').textContent.replace(/\D/g, "")`)
		if n := eval[int](t, c.ctx, `document.querySelectorAll('`+section+` `+sel("safety-qr")+` rect, `+section+` `+sel("safety-qr")+` path').length`); n == 0 {
			t.Errorf("%s's dialog draws no QR code", name)
		}
		if name == "principal" {
			screenshot(t, c.ctx, "desktop-verify")
		}
		run(t, c.ctx, name+" marks verified", chromedp.Click(chromedp.CSS(section+` `+sel("mark-verified"))))
	}
	if len(numbers["principal"]) != 60 || numbers["principal"] != numbers["duty"] {
		t.Fatalf("safety numbers: principal sees %q, duty %q", numbers["principal"], numbers["duty"])
	}
	for name, ctx := range map[string]context.Context{"principal": p, "duty": duty} {
		run(t, ctx, "close the dialog", chromedp.KeyEvent("\x1b"))
		waitFor(t, ctx, name+"'s banner verified", `document.querySelector('`+sel("conversation-pane")+` `+sel("verified")+`')?.dataset.all === "true"`)
	}

	// Duty adds a phone (a headless device); the demo approves it.
	code, err := d.Invite(t.Context(), "duty@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	phone, res, err := client.Enroll(t.Context(), client.EnrollOptions{Server: "http://127.0.0.1:" + strconv.Itoa(d.Port), Invite: code,
		ProfileDir: filepath.Join(t.TempDir(), "phone"), Label: "duty's phone"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		me, err := phone.Me(t.Context())
		if err == nil && me.Device.Status == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("duty's phone never approved: %+v %v", me, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := phone.EnsureKeyPackages(t.Context(), client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	// A new conversation with duty holds the phone too: its safety number
	// is not the one the principal compared. The banner says so.
	conv := eval[string](t, p, `hotlineCore.create({ title: "Second", members: ["duty@demo.example"] }).then((c) => c.id)`)
	waitFor(t, p, "the new conversation in the list", `!!document.querySelector('`+sel("conversation")+`[data-id="`+conv+`"]')`)
	run(t, p, "open it", chromedp.Click(chromedp.CSS(sel("conversation")+`[data-id="`+conv+`"]`)))
	waitFor(t, p, "the key-change warning", `!!document.querySelector('`+sel("conversation-pane")+`[data-id="`+conv+`"] `+sel("key-changed")+`')`)
	if all := eval[string](t, p, `document.querySelector('`+sel("conversation-pane")+` `+sel("verified")+`').dataset.all`); all != "false" {
		t.Errorf("the banner says every identity is verified after a key change")
	}
	screenshot(t, p, "desktop-key-changed")

	// Duty's own browser did not know of the phone: its log monitor alerts
	// (on the next check: at start, so a reload) until duty accepts it.
	run(t, duty, "reload", chromedp.Reload())
	waitFor(t, duty, "the unknown-device alert", `!!document.querySelector('`+sel("device-alert")+`')`)
	waitFor(t, duty, "the principal verified in duty's contacts", `document.querySelector('`+sel("contact")+`[data-user="principal@demo.example"]')?.dataset.verified === "true"`)
	if txt := eval[string](t, duty, `document.querySelector('`+sel("device-alert")+`').textContent`); !strings.Contains(txt, res.Device) {
		t.Errorf("the alert does not name the device %s: %q", res.Device, txt)
	}
	run(t, duty, "it's mine", chromedp.Click(chromedp.CSS(sel("accept-device")+`[data-device="`+res.Device+`"]`)))
	waitFor(t, duty, "the alert gone", `!document.querySelector('`+sel("device-alert")+`')`)
}

// TestBrowserPendingApproval: a further device of a user waits for
// approval; the browser says so, with the device ID to compare, and opens
// the app once another device of the user approves it.
func TestBrowserPendingApproval(t *testing.T) {
	d := startDemo(t)
	ctx := tab(t, newBrowser(t))
	authenticator(t, ctx, true)
	// The demo's security officer is not one of the people it approves
	// automatically: a browser enrolled as them waits.
	code, err := d.Invite(t.Context(), "security@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "open the invite", chromedp.Navigate("http://sec.localhost:"+strconv.Itoa(d.Port)+"/#invite="+code))
	waitFor(t, ctx, "the pending screen", `document.getElementById("app").dataset.state === "pending" && !!document.querySelector('`+sel("device")+`')`)
	device := strings.TrimSpace(eval[string](t, ctx, `document.querySelector('`+sel("device")+`').textContent`))
	screenshot(t, ctx, "desktop-pending")
	if err := d.Approve(t.Context(), device); err != nil {
		t.Fatalf("approve %q: %v", device, err)
	}
	waitFor(t, ctx, "the app once approved", `(document.querySelector('`+sel("me")+`')?.textContent ?? "").includes("security@demo.example")`)
}
