package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// writeY4M writes a video file of one frame showing a QR code (its modules
// as rows of '1' and '0'), for Chromium's fake camera.
func writeY4M(t *testing.T, path string, rows []string) {
	t.Helper()
	const w, h, scale = 480, 480, 8
	size := len(rows)
	off := (w - size*scale) / 2
	if off < 4*scale {
		t.Fatalf("a %d-module code does not fit %d pixels with its quiet zone", size, w)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", w, h)
	for range 2 {
		b.WriteString("FRAME\n")
		for y := range h {
			for x := range w {
				my, mx := (y-off)/scale, (x-off)/scale
				dark := y >= off && x >= off && my < size && mx < size && rows[my][mx] == '1'
				if dark {
					b.WriteByte(16)
				} else {
					b.WriteByte(235)
				}
			}
		}
		b.Write(bytes.Repeat([]byte{128}, w*h/2)) // U and V: no colour
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserScanQR: the duty officer's browser scans the principal's
// safety-number code with its camera (Chromium's fake camera showing the
// code the principal's browser draws); the core checks it against its own
// number and marks the principal verified.
func TestBrowserScanQR(t *testing.T) {
	d := startDemo(t)
	video := filepath.Join(t.TempDir(), "camera.y4m")
	pb := newBrowser(t)
	db := newBrowser(t, chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-video-capture", video))
	p, duty := tab(t, pb), tab(t, db)
	enrolBrowser(t, p, d, "principal")
	enrolBrowser(t, duty, d, "duty")
	waitFor(t, duty, "duty's stream", `document.querySelector('`+sel("stream-status")+`')?.dataset.connected === "true"`)
	run(t, p, "open duty", chromedp.Click(chromedp.CSS(sel("contact")+`[data-user="duty@demo.example"]`)))
	waitFor(t, duty, "the conversation at duty", `!!document.querySelector('`+sel("conversation")+`')`)
	run(t, duty, "duty opens it", chromedp.Click(chromedp.CSS(sel("conversation"))))
	waitFor(t, duty, "duty's banner", `!!document.querySelector('`+sel("conversation-pane")+` `+sel("verified")+`')`)

	// What the principal's screen shows for duty to scan.
	rowsJSON := eval[string](t, p, `(async () => {
		const cs = await hotlineCore.conversations();
		const vs = await hotlineCore.verifications(cs[0].id);
		const q = await hotlineCore.safetyQR(vs[0].user, vs[0].safety_number);
		return JSON.stringify(q.rows);
	})()`)
	var rows []string
	if err := json.Unmarshal([]byte(rowsJSON), &rows); err != nil || len(rows) < 21 {
		t.Fatalf("the principal's code: %v %q", err, rowsJSON)
	}
	writeY4M(t, video, rows)

	section := sel("verify-dialog") + ` ` + sel("verify-user") + `[data-user="principal@demo.example"]`
	run(t, duty, "duty opens verification", chromedp.Click(chromedp.CSS(sel("conversation-pane")+` `+sel("verified"))))
	waitFor(t, duty, "the scan button", `!!document.querySelector('`+section+` `+sel("scan-qr")+`')`)
	if v := eval[string](t, duty, `document.querySelector('`+section+`').dataset.verified`); v != "false" {
		t.Fatalf("verified before scanning: %s", v)
	}
	run(t, duty, "scan the principal's code", chromedp.Click(chromedp.CSS(section+` `+sel("scan-qr"))))
	waitFor(t, duty, "the principal verified by the scan", `document.querySelector('`+section+`')?.dataset.verified === "true"`)
	screenshot(t, duty, "desktop-verify-scanned")
}
