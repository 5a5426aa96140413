package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hotline/internal/client"
	"hotline/internal/demo"
	"hotline/internal/sframe"
	"hotline/web/core"
)

// browser is one web client's device and what its page would have stored.
type browser struct {
	*core.Core
	mu      sync.Mutex
	stored  map[string][]byte
	syncs   int // flushed calls: the core waiting for the page's storage
	updates []core.Update
	status  []core.Status
}

func (b *browser) persist(name string, sealed []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sealed == nil {
		delete(b.stored, name)
	} else {
		b.stored[name] = sealed
	}
}

func (b *browser) flushed(context.Context) error {
	b.mu.Lock()
	b.syncs++
	b.mu.Unlock()
	return nil
}

func (b *browser) snapshot() map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]byte{}
	for n, v := range b.stored {
		out[n] = bytes.Clone(v)
	}
	return out
}

func startDemo(t *testing.T) (*demo.Demo, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	d, err := demo.Start(t.Context(), demo.Options{Dir: dir})
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
	return d, dir
}

func person(t *testing.T, d *demo.Demo, name string) demo.Person {
	for _, p := range d.People {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no %s in the demo", name)
	return demo.Person{}
}

func enrol(t *testing.T, d *demo.Demo, name string, wrap []byte) *browser {
	t.Helper()
	b := &browser{stored: map[string][]byte{}}
	k, err := core.Enroll(t.Context(), "http://127.0.0.1:"+strconv.Itoa(d.Port), person(t, d, name).Invite, name+"'s browser", wrap, b.persist, b.flushed)
	if err != nil {
		t.Fatalf("enrol %s: %v", name, err)
	}
	b.Core = k
	return b
}

func (b *browser) follow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Follow(ctx, func(u core.Update) {
			b.mu.Lock()
			b.updates = append(b.updates, u)
			b.mu.Unlock()
		}, func(s core.Status) {
			b.mu.Lock()
			b.status = append(b.status, s)
			b.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// followConnected follows the event stream and waits until it is up
// (key packages published, so others can add this device).
func (b *browser) followConnected(t *testing.T) {
	t.Helper()
	b.follow(t)
	eventually(t, "the event stream", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return slices.ContainsFunc(b.status, func(s core.Status) bool { return s.Connected })
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebCore drives the web client's core as the page does: two browsers
// enrol in the demo organisation, message, exchange a file, and one is
// reopened from what its page stored.
func TestWebCore(t *testing.T) {
	d, dir := startDemo(t)
	ctx := t.Context()
	wrapP := bytes.Repeat([]byte{1}, 32)
	p := enrol(t, d, "principal", wrapP)
	duty := enrol(t, d, "duty", bytes.Repeat([]byte{2}, 32))
	for _, b := range []*browser{p, duty} {
		me, err := b.Me(ctx)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, me.User+"'s browser approved", func() bool {
			me, err = b.Me(ctx)
			return err == nil && !me.Pending
		})
	}
	duty.followConnected(t)
	p.followConnected(t)

	cs, err := p.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.User)
	}
	// Staff reach staff; the counterpart is not in the principal's book.
	if slices.Contains(names, "counterpart@demo.example") || !slices.Contains(names, "duty@demo.example") || !slices.Contains(names, "notes@demo.example") {
		t.Errorf("principal's contacts %v", names)
	}

	conv, err := p.Direct(ctx, "duty@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	// The UI is promised lists, never null (core.d.ts).
	me, _ := p.Me(ctx)
	convs, _ := p.Conversations()
	for _, v := range []any{me, conv, convs, cs} {
		b, _ := json.Marshal(v)
		if bytes.Contains(b, []byte(":null")) {
			t.Errorf("a list is null in %s", b)
		}
	}
	const canary = "CANARY-web-5b1f the summit moves to Thursday"
	if _, err := p.Send(ctx, conv.ID, canary); err != nil {
		t.Fatal(err)
	}
	file := bytes.Repeat([]byte("briefing "), 20000)
	if _, err := p.SendFile(ctx, conv.ID, "brief.txt", "text/plain", file); err != nil {
		t.Fatal(err)
	}
	var got []core.Message
	eventually(t, "the duty officer's browser to receive both", func() bool {
		got, _ = duty.Messages(conv.ID)
		return len(got) >= 2
	})
	if got[0].Text != canary || got[0].User != "principal@demo.example" {
		t.Errorf("first message %+v", got[0])
	}
	a := got[1].Attachment
	if got[1].Kind != "attachment" || a == nil || a.Name != "brief.txt" || a.Size != int64(len(file)) || got[1].Data != nil {
		t.Fatalf("attachment message %+v", got[1])
	}
	f, err := duty.Download(ctx, conv.ID, got[1].Seq)
	if err != nil || !bytes.Equal(f.Data, file) || f.Name != "brief.txt" {
		t.Fatalf("download: %q %d bytes, %v", f.Name, len(f.Data), err)
	}
	if _, err := duty.Download(ctx, conv.ID, got[0].Seq); err == nil || core.UIError(err).Code != "not_found" {
		t.Errorf("download of a text message: %v", err)
	}
	duty.mu.Lock()
	sawUpdate := slices.ContainsFunc(duty.updates, func(u core.Update) bool { return u.Message != nil && u.Message.Text == canary })
	duty.mu.Unlock()
	if !sawUpdate {
		t.Errorf("duty's stream brought no update with the message")
	}
	// The page's storage was waited for before anything was acknowledged.
	duty.mu.Lock()
	syncs := duty.syncs
	duty.mu.Unlock()
	if syncs == 0 {
		t.Error("the core acknowledged events without waiting for the page's storage")
	}

	// A contact the policy refuses shows its stable code.
	if _, err := p.Direct(ctx, "counterpart@demo.example"); core.UIError(err).Code != "contact_refused" {
		t.Errorf("principal → counterpart: %v, want contact_refused", err)
	}
	if _, err := p.Send(ctx, conv.ID, "  "); core.UIError(err).Code != "bad_request" {
		t.Errorf("empty message: %v", err)
	}

	// The page's store opens again, with the same history, only under the
	// same wrapping secret; no stored file holds the message in the clear.
	stored := p.snapshot()
	if _, ok := stored["device.key"]; !ok {
		t.Fatalf("the page stored no device.key: %v", slices.Sorted(mapsKeys(stored)))
	}
	for name, b := range stored {
		if bytes.Contains(b, []byte("CANARY-web")) || bytes.Contains(b, []byte("sig ")) {
			t.Errorf("stored %s holds plaintext", name)
		}
	}
	again, err := core.Open(stored, wrapP, func(string, []byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := again.Messages(conv.ID)
	if err != nil || !slices.ContainsFunc(ms, func(m core.Message) bool { return m.Text == canary }) {
		t.Errorf("reopened history lacks the message: %+v %v", ms, err)
	}
	if _, err := core.Open(stored, bytes.Repeat([]byte{9}, 32), func(string, []byte) {}, nil); !errors.Is(err, client.ErrWrapped) {
		t.Errorf("opened under another wrapping secret: %v", err)
	}

	// Nothing the server wrote holds the message.
	filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte("CANARY-web")) {
			t.Errorf("%s holds the message in the clear", path)
		}
		return nil
	})
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestWebCoreCall: the browser's core rings, answers (committing a fresh
// leaf, as the headless client does) and exports each epoch's media keys;
// SFrame keyed from one member's export opens what another member's
// encrypts, as the page's media worker does it.
func TestWebCoreCall(t *testing.T) {
	d, _ := startDemo(t)
	ctx := t.Context()
	p := enrol(t, d, "principal", bytes.Repeat([]byte{1}, 32))
	duty := enrol(t, d, "duty", bytes.Repeat([]byte{2}, 32))
	p.followConnected(t)
	duty.followConnected(t)
	conv, err := p.Direct(ctx, "duty@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "duty to join the conversation", func() bool { _, err := duty.CallKeys(conv.ID); return err == nil })

	placed, err := p.PlaceCall(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PlaceCall(ctx, conv.ID); core.UIError(err).Code != "conflict" {
		t.Errorf("a second call at once: %v, want conflict", err)
	}
	var ring core.Update
	eventually(t, "the ring at duty", func() bool {
		duty.mu.Lock()
		defer duty.mu.Unlock()
		for _, u := range duty.updates {
			if u.Kind == "call" && u.Call != nil && u.Call.Event == client.EventCallRing {
				ring = u
				return true
			}
		}
		return false
	})
	if ring.Call.Call.ID != placed.ID || len(ring.Call.Participants) != 2 {
		t.Fatalf("ring %+v", ring.Call)
	}
	for _, q := range ring.Call.Participants {
		if !q.Verified || q.Member.User == "" {
			t.Errorf("participant %+v not identified from the group", q)
		}
	}
	before := conv.Epoch
	if _, err := duty.AnswerCall(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	// Answering commits a fresh leaf: both move to a new epoch and are
	// told, so the page re-keys its worker.
	for _, b := range []*browser{p, duty} {
		eventually(t, "the epoch update", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return slices.ContainsFunc(b.updates, func(u core.Update) bool {
				return u.Kind == "epoch" && u.Conversation == conv.ID && u.Epoch > before
			})
		})
	}
	var kp, kd core.CallKeys
	eventually(t, "both at the same epoch", func() bool {
		kp, _ = p.CallKeys(conv.ID)
		kd, _ = duty.CallKeys(conv.ID)
		return kp.Epoch == kd.Epoch && kp.Epoch > before
	})
	if !bytes.Equal(kp.BaseKey, kd.BaseKey) || kp.Self == kd.Self || kp.GroupSize != kd.GroupSize {
		t.Fatalf("keys disagree: %+v / %+v", kp, kd)
	}
	seal, open := sframeFrom(t, kp, 1), sframeFrom(t, kd, 2)
	ct, err := seal.Encrypt(nil, []byte("opus frame"))
	if err != nil {
		t.Fatal(err)
	}
	pt, sender, err := open.Decrypt(nil, ct)
	if err != nil || string(pt) != "opus frame" || sender.Leaf != kp.Self || sender.Epoch != kp.Epoch {
		t.Fatalf("decrypt: %q %+v %v", pt, sender, err)
	}
	if m, err := duty.MemberAt(conv.ID, sender.Leaf); err != nil || m.User != "principal@demo.example" {
		t.Errorf("frame's sender: %+v %v", m, err)
	}

	if _, err := p.Hangup(ctx, placed.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the end at duty", func() bool {
		duty.mu.Lock()
		defer duty.mu.Unlock()
		return slices.ContainsFunc(duty.updates, func(u core.Update) bool {
			return u.Kind == "call" && u.Call != nil && u.Call.Call.State == "ended"
		})
	})
	// The core takes a new call once this one is over.
	eventually(t, "duty free again", func() bool {
		_, err := duty.PlaceCall(ctx, conv.ID)
		return err == nil
	})
}

// sframeFrom keys an SFrame session the way the page's media worker does,
// from what CallKeys exported.
func sframeFrom(t *testing.T, k core.CallKeys, context uint64) *sframe.MLSContext {
	t.Helper()
	m, err := sframe.NewMLSContext(sframe.CipherSuite(k.Suite), sframe.MLSOptions{ContextID: context, RetainEpochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	err = m.AddEpoch(sframe.MLSEpoch{Number: k.Epoch, Self: k.Self, GroupSize: k.GroupSize,
		Export: func(label string, _ []byte, n int) ([]byte, error) {
			if label != sframe.ExporterLabel || n != len(k.BaseKey) {
				t.Fatalf("export %q %d", label, n)
			}
			return k.BaseKey, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWebCoreVerification: two members see the same safety number; once
// compared, a new device of one of them changes it and the other is told
// (Changed); the new device's own user's log monitor reports it as unknown
// until accepted.
func TestWebCoreVerification(t *testing.T) {
	d, _ := startDemo(t)
	ctx := t.Context()
	p := enrol(t, d, "principal", bytes.Repeat([]byte{1}, 32))
	duty := enrol(t, d, "duty", bytes.Repeat([]byte{2}, 32))
	p.followConnected(t)
	duty.followConnected(t)
	conv, err := p.Direct(ctx, "duty@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "duty to join", func() bool { _, err := duty.Verifications(conv.ID); return err == nil })
	vp, _ := p.Verifications(conv.ID)
	vd, _ := duty.Verifications(conv.ID)
	if len(vp) != 1 || len(vd) != 1 || vp[0].User != "duty@demo.example" || vd[0].User != "principal@demo.example" {
		t.Fatalf("verifications %+v / %+v", vp, vd)
	}
	if vp[0].SafetyNumber != vd[0].SafetyNumber || vp[0].Verified {
		t.Fatalf("numbers differ or verified already: %+v / %+v", vp, vd)
	}
	if err := p.MarkVerified(conv.ID, "duty@demo.example", "00000 "+vp[0].SafetyNumber[6:]); err == nil {
		t.Error("a wrong number was accepted")
	}
	if err := p.MarkVerified(conv.ID, "duty@demo.example", vp[0].SafetyNumber); err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Verifications(conv.ID); !v[0].Verified || v[0].Changed {
		t.Fatalf("after marking: %+v", v)
	}
	contactOf := func(user string) core.Contact {
		cs, err := p.Contacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.User == user {
				return c
			}
		}
		t.Fatalf("no contact %s", user)
		return core.Contact{}
	}
	if c := contactOf("duty@demo.example"); !c.Verified || c.KeysChanged {
		t.Errorf("duty in the principal's contacts after verifying: %+v", c)
	}
	if c := contactOf("notes@demo.example"); c.Verified {
		t.Errorf("notes verified without a comparison: %+v", c)
	}
	q, err := core.SafetyQR("principal@demo.example", "duty@demo.example", vp[0].SafetyNumber)
	if err != nil || q.Size < 21 || len(q.Rows) != q.Size || len(q.Rows[0]) != q.Size {
		t.Fatalf("QR %d×%d: %v", q.Size, len(q.Rows), err)
	}
	// Duty scans the principal's code (what SafetyQR encodes): verified.
	// Someone else's code, other numbers, or not a Hotline code: refused.
	number := strings.ReplaceAll(vp[0].SafetyNumber, " ", "")
	other := "1" + number[1:] // another number: its first digit changed
	if number[0] == '1' {
		other = "2" + number[1:]
	}
	for name, payload := range map[string]string{
		"for someone else": "hotline-safety:1:principal@demo.example:notes@demo.example:" + number,
		"other numbers":    "hotline-safety:1:principal@demo.example:duty@demo.example:" + other,
		"not ours":         "https://example.org/",
		"not a member":     "hotline-safety:1:notes@demo.example:duty@demo.example:" + number,
	} {
		if _, err := duty.VerifyScanned(conv.ID, payload); !errors.Is(err, core.ErrScanMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if v, _ := duty.Verifications(conv.ID); v[0].Verified {
		t.Fatal("verified by a refused scan")
	}
	if who, err := duty.VerifyScanned(conv.ID, "hotline-safety:1:principal@demo.example:duty@demo.example:"+number); err != nil || who != "principal@demo.example" {
		t.Fatalf("scan: %s %v", who, err)
	}
	if v, _ := duty.Verifications(conv.ID); !v[0].Verified {
		t.Fatal("the scan did not verify")
	}

	// Duty enrols a second device, which the principal adds to the
	// conversation: duty's half of the number changes.
	var inv struct {
		Invite string `json:"invite"`
	}
	if err := duty.Client().Do(ctx, "POST", "/v1/invites", map[string]string{"user": "duty@demo.example"}, &inv); err != nil {
		t.Fatal(err)
	}
	second, res, err := client.Enroll(ctx, client.EnrollOptions{Server: "http://127.0.0.1:" + strconv.Itoa(d.Port), Invite: inv.Invite,
		ProfileDir: filepath.Join(t.TempDir(), "second"), Label: "duty's phone"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second device approved", func() bool {
		me, err := second.Me(ctx)
		return err == nil && me.Device.Status == "active"
	})
	if err := second.EnsureKeyPackages(ctx, client.DefaultSuite); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Client().AddMembers(ctx, conv.ID, "duty@demo.example"); err != nil {
		t.Fatal(err)
	}
	v, _ := p.Verifications(conv.ID)
	if v[0].Verified || !v[0].Changed || v[0].SafetyNumber == vp[0].SafetyNumber {
		t.Fatalf("after duty's new device: %+v", v)
	}
	if c := contactOf("duty@demo.example"); c.Verified || !c.KeysChanged {
		t.Errorf("duty in the principal's contacts after the new device: %+v", c)
	}

	// Duty's browser did not know of that device: its log monitor says so.
	devs, err := duty.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(devs.Unknown, []string{res.Device}) {
		t.Fatalf("unknown devices %v, want [%s]; report %+v", devs.Unknown, res.Device, devs)
	}
	if err := duty.AcceptDevice(res.Device); err != nil {
		t.Fatal(err)
	}
	if devs, err = duty.Devices(ctx); err != nil || len(devs.Unknown) != 0 {
		t.Fatalf("after accepting: %+v %v", devs, err)
	}
}

// TestWebCoreStoredBeforeAck: a page whose storage writes land only when
// the core waits for them (flushed), as IndexedDB's do some time later.
// Whatever the core acknowledged to the server — here a Welcome, which the
// server then forgets — is in what the page had stored when the tab
// "closed", so reopening from it finds the conversation.
func TestWebCoreStoredBeforeAck(t *testing.T) {
	d, _ := startDemo(t)
	ctx := t.Context()
	p := enrol(t, d, "principal", bytes.Repeat([]byte{1}, 32))
	p.follow(t)

	var mu sync.Mutex
	pending := map[string][]byte{} // handed to persist, not yet stored
	removed := map[string]bool{}
	stored := map[string][]byte{}
	persist := func(name string, sealed []byte) {
		mu.Lock()
		defer mu.Unlock()
		if sealed == nil {
			delete(pending, name)
			removed[name] = true
			return
		}
		pending[name] = bytes.Clone(sealed)
		delete(removed, name)
	}
	flushed := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		for n, b := range pending {
			stored[n] = b
		}
		for n := range removed {
			delete(stored, n)
		}
		clear(pending)
		clear(removed)
		return nil
	}
	wrap := bytes.Repeat([]byte{3}, 32)
	duty, err := core.Enroll(ctx, "http://127.0.0.1:"+strconv.Itoa(d.Port), person(t, d, "duty").Invite, "duty", wrap, persist, flushed)
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	var connected sync.Once
	up := make(chan struct{})
	go func() {
		defer close(done)
		duty.Follow(fctx, func(core.Update) {}, func(s core.Status) {
			if s.Connected {
				connected.Do(func() { close(up) })
			}
		})
	}()
	<-up
	conv, err := p.Direct(ctx, "duty@demo.example")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "duty to join", func() bool { _, err := duty.CallKeys(conv.ID); return err == nil })
	// The Welcome is acknowledged once handled; give the ack its way.
	eventually(t, "the Welcome acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(stored) > 0
	})
	stop()
	<-done
	// The tab closes: what was never flushed is lost.
	mu.Lock()
	kept := map[string][]byte{}
	for n, b := range stored {
		kept[n] = bytes.Clone(b)
	}
	mu.Unlock()
	again, err := core.Open(kept, wrap, func(string, []byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := again.Conversations()
	if err != nil || !slices.ContainsFunc(cs, func(c client.ConversationInfo) bool { return c.ID == conv.ID }) {
		t.Fatalf("the reopened profile lacks the conversation whose Welcome was acknowledged: %+v %v", cs, err)
	}
}
