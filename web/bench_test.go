package web_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hotline/internal/audiotest"
	"hotline/internal/demo"
)

// The web client's benchmarks, in real Chromium against the demo server:
//
//	go test ./web -run '^$' -bench . -benchtime 20x
//
// Each reports its figures in milliseconds (p50 and p90 of the runs), from
// the page's own clock.

// readyJS resolves with the page's clock (ms since navigation) at the
// first animation frame where the app is signed in and its media line is
// up: what a user waits for after opening Hotline.
const readyJS = `new Promise((resolve) => {
	const check = () => {
		const v = window.hotlineUI?.calls?.view();
		if (v && v.lineUp && document.querySelector('[data-testid="me"]')) resolve(performance.now());
		else requestAnimationFrame(check);
	};
	check();
})`

// BenchmarkPageLoad: from navigation to ready (core instantiated, the
// passkey's assertion, the profile opened, the media line connected), for
// a browser already enrolled: a reload.
func BenchmarkPageLoad(b *testing.B) {
	d := startDemo(b)
	browser := newBrowser(b)
	enrolBrowser(b, browser, d, "principal")
	var ms []float64
	for b.Loop() {
		if err := chromedp.Do(browser, chromedp.Reload()); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(browser, 60*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](readyJS, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, v)
	}
	report(b, ms, "ready")
}

// BenchmarkDialToAudio: from the caller's place() to the first frame the
// callee's worker decrypts, browser to browser, the callee answering at
// once (so the figure is the system's, not a person's). Both pages are in
// one browser, on one clock.
func BenchmarkDialToAudio(b *testing.B) {
	dir := b.TempDir()
	wav, _ := audiotest.Speech(b, dir, "One, two, three, four.")
	d := startDemoWith(b, demo.Options{MediaUDP: "127.0.0.1:0", MediaTCP: "127.0.0.1:0"})
	browser := newBrowser(b,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	p := browser
	callee := tab(b, browser)
	enrolBrowser(b, p, d, "principal")
	enrolBrowser(b, callee, d, "duty")
	for _, ctx := range []context.Context{p, callee} {
		waitFor(b, ctx, "", `window.hotlineUI?.calls?.view().lineUp === true`)
	}
	conv := eval[string](b, p, `hotlineCore.direct("duty@demo.example").then((c) => c.id)`)
	eval[bool](b, callee, `(async () => {
		for (;;) {
			if ((await hotlineCore.conversations()).length > 0) return true;
			await new Promise((r) => setTimeout(r, 50));
		}
	})()`)
	// The callee answers every ring at once and notes when it first hears.
	eval[any](b, callee, `(() => {
		const calls = window.hotlineUI.calls;
		const now = () => performance.timeOrigin + performance.now();
		window.__heardAt = 0;
		calls.onChange((v) => {
			if (v.phase === "incoming" && !window.__ringAt) {
				window.__ringAt = now();
				calls.answer().then(() => (window.__answeredAt = now()));
			}
			if (v.heard && !window.__heardAt) window.__heardAt = now();
		});
	})()`)
	var ms, ring, answered []float64
	for b.Loop() {
		eval[any](b, callee, `window.__heardAt = 0; window.__ringAt = 0; window.__answeredAt = 0`)
		t0 := eval[float64](b, p, `(async () => {
			const t = performance.timeOrigin + performance.now();
			await window.hotlineUI.calls.place(`+jsq(conv)+`);
			return t;
		})()`)
		waitFor(b, callee, "", `window.__heardAt > 0`)
		t := eval[[]float64](b, callee, `[window.__ringAt, window.__answeredAt, window.__heardAt]`)
		ring = append(ring, t[0]-t0)
		answered = append(answered, t[1]-t0)
		ms = append(ms, t[2]-t0)

		eval[any](b, p, `window.hotlineUI.calls.hangup()`)
		waitFor(b, p, "", `window.hotlineUI.calls.view().phase === "idle"`)
		waitFor(b, callee, "", `window.hotlineUI.calls.view().phase === "idle"`)
	}
	report(b, ring, "ring")
	report(b, answered, "answered")
	report(b, ms, "first-audio")
}

func report(b *testing.B, ms []float64, what string) {
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], what+"-p50-ms")
	b.ReportMetric(ms[len(ms)*9/10], what+"-p90-ms")
	b.ReportMetric(0, "ns/op")
}
