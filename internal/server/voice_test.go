package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/call"
	"hotline/internal/client"
	"hotline/internal/server"
	"hotline/internal/tlog"
	"hotline/internal/voice"
)

// phone is a test member with a warm line and its event stream running, as
// an app keeps them while open.
type phone struct {
	*member
	line *voice.Line

	mu     sync.Mutex
	frames []voice.Frame
	tapped [][]byte // what the server forwarded, before decryption
	// tappedBySlot is tapped, by receiving slot.
	tappedBySlot map[int][][]byte
	calls        []api.Call
}

func newPhone(t *testing.T, m *member, opts ...func(*voice.Options)) *phone {
	t.Helper()
	p := &phone{member: m}
	ctx, cancel := context.WithCancel(context.Background())
	o := voice.Options{
		IPFilter: func(ip net.IP) bool { return ip.IsLoopback() },
		Tap: func(slot int, payload []byte) {
			p.mu.Lock()
			p.tapped = append(p.tapped, payload)
			if p.tappedBySlot == nil {
				p.tappedBySlot = map[int][][]byte{}
			}
			p.tappedBySlot[slot] = append(p.tappedBySlot[slot], payload)
			p.mu.Unlock()
		},
		OnCall: func(_ string, v api.Call) {
			p.mu.Lock()
			p.calls = append(p.calls, v)
			p.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	var err error
	p.line, err = voice.Dial(t.Context(), m.Client, o)
	if err != nil {
		cancel()
		t.Fatalf("%s dial: %v", m.name, err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		m.Events(ctx, func(sm api.StreamMessage) error {
			if sm.Type == api.StreamIdle {
				once.Do(func() { close(ready) })
			}
			p.line.Handle(sm)
			return nil
		})
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s's stream did not open", m.name)
	}
	t.Cleanup(func() {
		t0 := time.Now()
		p.line.Close()
		t1 := time.Now()
		cancel()
		<-done
		if d := time.Since(t0); d > time.Second {
			t.Logf("%s's line closed in %v, events in %v", m.name, t1.Sub(t0), time.Since(t1))
		}
	})
	return p
}

// ringing waits for call id to ring on p.
func (p *phone) ringing(t *testing.T, id string) {
	t.Helper()
	eventually(t, p.name+" to ring", func() bool {
		return slices.ContainsFunc(p.line.Ringing(), func(v api.Call) bool { return v.ID == id })
	})
}

// listen records p's decrypted frames.
func (p *phone) listen(c *voice.Call) {
	c.OnAudio(func(f voice.Frame) {
		p.mu.Lock()
		p.frames = append(p.frames, f)
		p.mu.Unlock()
	})
}

// heardFrom returns the frames p decrypted from user, and the epochs they
// were sent in.
func (p *phone) heardFrom(user string) (frames []voice.Frame, epochs []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frames {
		if f.From.User == user {
			frames = append(frames, f)
			if !slices.Contains(epochs, f.Epoch) {
				epochs = append(epochs, f.Epoch)
			}
		}
	}
	return frames, epochs
}

// voiceCanary is in every frame a talker sends: no server storage, log or
// metric may hold it.
const voiceCanary = "CANARY-v01ce-7d3a"

// talker sends numbered Opus-framed packets (a TOC byte for one 20 ms
// CELT frame, then text) every 20 ms until stopped.
func talker(t *testing.T, c *voice.Call, who string) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-c.Ended():
				return
			case <-tick.C:
			}
			c.Send(fmt.Appendf([]byte{0xfc}, "%s says %d %s", who, i, voiceCanary), 960)
		}
	}()
	return func() { cancel(); <-done }
}

// Calls end to end through the server's forwarder: frames are SFrame
// ciphertexts on the wire, decrypt at the others and name their sender
// from its credential; keys rotate when someone joins and when someone
// leaves; a revoked device's call ends; a member whose clearance fell
// short cannot join. (SQLite only: media does not touch the database.)
func TestVoiceCalls(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *server.Config) {
		c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0"
		c.QualityInterval = 100 * time.Millisecond
	})
	ctx := t.Context()
	admin := e.admin(t)
	alice := newMember(t, e, admin, "alice")
	bob := newMember(t, e, admin, "bob")
	carol := newMember(t, e, admin, "carol")
	conv, err := alice.CreateConversation(ctx, client.CreateOptions{Members: []string{"bob@state.example", "carol@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, bob, carol)
	pa, pb, pc := newPhone(t, alice), newPhone(t, bob), newPhone(t, carol)

	ca, err := pa.line.Place(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pa.line.Place(ctx, conv.ID); err != voice.ErrBusy {
		t.Errorf("a second call on a busy line: %v", err)
	}
	pa.listen(ca)
	startEpoch := conv.Epoch
	stopA := talker(t, ca, "alice")
	defer stopA()
	pb.ringing(t, ca.ID)
	pc.ringing(t, ca.ID)
	// A device that was not listening learns of the call by asking.
	mine, err := carol.Calls(ctx)
	if err != nil || len(mine) != 1 || mine[0].ID != ca.ID || states(mine[0])[carol.Profile().Device] != "ringing" {
		t.Errorf("carol's calls: %+v, %v", mine, err)
	}
	cb, err := pb.line.Answer(ctx, ca.ID)
	if err != nil {
		t.Fatal(err)
	}
	pb.listen(cb)
	stopB := talker(t, cb, "bob")
	defer stopB()

	// Both hear each other, attributed from the credential; bob's joining
	// moved the conversation on, and both then speak in the new epoch.
	eventually(t, "bob to hear alice after his commit", func() bool {
		_, ep := pb.heardFrom("alice@state.example")
		return slices.ContainsFunc(ep, func(e uint64) bool { return e > startEpoch })
	})
	eventually(t, "alice to hear bob after his commit", func() bool {
		_, ep := pa.heardFrom("bob@state.example")
		return slices.ContainsFunc(ep, func(e uint64) bool { return e > startEpoch })
	})
	if st := cb.Stats(); st.Rotations != 1 {
		t.Errorf("bob's commits for the call: %d, want 1", st.Rotations)
	}
	fs, _ := pb.heardFrom("alice@state.example")
	if f := fs[0]; f.From.Device != alice.Profile().Device || !bytes.HasPrefix(f.Opus[1:], []byte("alice says ")) {
		t.Errorf("bob's first frame from alice: %+v", f)
	}
	// What the server forwarded is ciphertext: no frame's text is in it.
	pb.mu.Lock()
	for _, w := range pb.tapped {
		if bytes.Contains(w, []byte("says")) {
			t.Errorf("the server forwarded plaintext: %q", w)
			break
		}
	}
	if len(pb.tapped) == 0 {
		t.Error("bob's tap saw nothing")
	}
	pb.mu.Unlock()

	// Both are told their media quality, round trips included once the
	// receiver reports measure them; the metrics have it too.
	defer func() {
		if t.Failed() {
			t.Logf("alice's last quality report: %+v", ca.Quality())
		}
	}()
	eventually(t, "alice to learn the call's quality with round trips", func() bool {
		q := ca.Quality()
		return len(q.Participants) == 2 && q.Participants[0].RTTMs > 0 && q.Participants[1].RTTMs > 0
	})
	for _, mq := range ca.Quality().Participants {
		if mq.LossIn > 0.05 || mq.LossOut > 0.05 || mq.RTTMs > 200 {
			t.Errorf("loopback media quality: %+v", mq)
		}
	}
	resp, err := e.httpClient().Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scraped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{"hotline_call_media_rtt_seconds_count ", "hotline_call_media_loss_ratio_count ", "hotline_call_media_jitter_seconds_count "} {
		if !bytes.Contains(scraped, []byte(series)) || bytes.Contains(scraped, []byte(series+"0\n")) {
			t.Errorf("metrics lack %s observations", series)
		}
	}

	// Carol joins: another epoch, and she hears both.
	epochBefore := maxEpoch(pa, "bob@state.example")
	cc, err := pc.line.Join(ctx, ca.ID)
	if err != nil {
		t.Fatal(err)
	}
	pc.listen(cc)
	stopC := talker(t, cc, "carol")
	defer stopC()
	eventually(t, "carol to hear alice and bob in a new epoch", func() bool {
		_, ea := pc.heardFrom("alice@state.example")
		_, eb := pc.heardFrom("bob@state.example")
		return slices.Max(append(ea, 0)) > epochBefore && slices.Max(append(eb, 0)) > epochBefore
	})
	eventually(t, "alice to hear carol", func() bool { f, _ := pa.heardFrom("carol@state.example"); return len(f) > 0 })
	// Alice sees every participant identified from the group's verified
	// credentials, and the call's level from the group state.
	eventually(t, "alice to see three joined", func() bool {
		n := 0
		for _, st := range states(ca.View()) {
			if st == "joined" {
				n++
			}
		}
		return n == 3
	})
	ps, level, _ := ca.Participants()
	for _, p := range ps {
		if !p.Verified || p.Member.Org != "state.example" || p.Member.Device != p.Device {
			t.Errorf("alice's view of a participant: %+v", p)
		}
	}
	if want := conv.Clearance; level != want || level == "" {
		t.Errorf("the call's level from the group: %q, want %q", level, want)
	}

	// Bob hangs up: whoever of alice and carol has the lower device ID
	// commits, and the two go on in a newer epoch.
	eventually(t, "carol's commit for joining to reach alice", func() bool {
		return cc.Stats().Rotations == 1 && alice.Conversation(conv.ID).Epoch == carol.Conversation(conv.ID).Epoch
	})
	epochBefore = alice.Conversation(conv.ID).Epoch
	rotationsBefore := ca.Stats().Rotations + cc.Stats().Rotations
	stopB()
	if err := cb.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cb.Ended():
	case <-time.After(5 * time.Second):
		t.Fatal("bob's call did not end on hanging up")
	}
	eventually(t, "a commit for bob's leaving", func() bool { return ca.Stats().Rotations+cc.Stats().Rotations > rotationsBefore })
	eventually(t, "alice to hear carol in an epoch after bob left", func() bool { return maxEpoch(pa, "carol@state.example") > epochBefore })
	if n := ca.Stats().Rotations + cc.Stats().Rotations - rotationsBefore; n != 1 {
		t.Errorf("commits for bob's leaving: %d, want 1", n)
	}

	// Carol's device is revoked: her call ends, and alice's with it (she
	// is alone).
	if err := admin.Do(ctx, "POST", "/v1/devices/"+carol.Profile().Device+"/revoke", api.RevokeRequest{Reason: "lost"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ca.Ended():
	case <-time.After(10 * time.Second):
		t.Fatal("alice's call did not end when the other participant was revoked")
	}
	if r := ca.Reason(); r != "hangup" {
		t.Errorf("alice's call ended: %q", r)
	}
	// Carol's device loses its media connection and may not make another.
	select {
	case <-cc.Ended():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's call did not end")
	}
	if r := cc.Reason(); r != "revoked" {
		t.Errorf("carol's call ended: %q, want revoked", r)
	}
	if pa.line.Current() != nil {
		t.Error("alice's line still holds a call")
	}

	// Nothing of what was said is in the server's files, log or metrics.
	err = filepath.Walk(e.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(voiceCanary)) {
			t.Errorf("call audio's canary in %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.logs.String(), voiceCanary) {
		t.Error("call audio's canary in the server log")
	}
	if resp, err := e.httpClient().Get(e.url + "/metrics"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(voiceCanary)) {
			t.Error("call audio's canary in the metrics")
		}
	}
}

// maxEpoch is the newest epoch p heard user in.
func maxEpoch(p *phone, user string) uint64 {
	_, ep := p.heardFrom(user)
	return slices.Max(append(ep, 0))
}

// A server that restarts brings a call back without anyone doing
// anything: both lines notice the dead path, connect again, are put back
// in their call, and audio flows again.
func TestVoiceSurvivesServerRestart(t *testing.T) {
	e, _, alice, bob, conv := twoMembers(t)
	pa, pb := newPhone(t, alice), newPhone(t, bob)
	ca, _ := answeredCall(t, pa, pb, conv)
	defer talker(t, ca, "alice")()
	eventually(t, "bob to hear alice", func() bool { f, _ := pb.heardFrom("alice@state.example"); return len(f) > 0 })

	e.restart(t)
	before, _ := pb.heardFrom("alice@state.example")
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, _ := pb.heardFrom("alice@state.example")
		if len(now) > len(before)+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob heard nothing more of alice in 30 s after the restart (lines reconnected: alice %d, bob %d)", pa.line.Reconnects(), pb.line.Reconnects())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pa.line.Reconnects() == 0 || pb.line.Reconnects() == 0 {
		t.Errorf("reconnects: alice %d, bob %d", pa.line.Reconnects(), pb.line.Reconnects())
	}
	select {
	case <-ca.Ended():
		t.Errorf("alice's call ended: %s", ca.Reason())
	default:
	}
}

// A participant whose device vanishes (its media connection gone and not
// made again) is dropped after the bounded time, and the log says why.
func TestVoiceVanishedParticipantDropped(t *testing.T) {
	e, admin, alice, bob, conv := twoMembers(t, func(c *server.Config) { c.MediaDropAfter = 500 * time.Millisecond })
	ctx := t.Context()
	pa := newPhone(t, alice)
	bobMedia := newMediaPeer(t, e, bob.Client, "bob") // a bare peer: it can vanish
	ca, err := pa.line.Place(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	callDo(t, bob.Client, "accept", ca.ID)
	eventually(t, "alice to see bob joined", func() bool { return states(ca.View())[bob.Profile().Device] == "joined" })
	start := time.Now()
	bobMedia.pc.Close()
	select {
	case <-ca.Ended():
	case <-time.After(15 * time.Second):
		t.Fatal("the call went on after bob's device vanished")
	}
	t.Logf("bob dropped and the call ended %v after his device vanished", time.Since(start))
	eventually(t, "bob's leaving in the log, as dropped", func() bool {
		for _, en := range logEntries(t, admin) {
			if en.Call == ca.ID && en.Type == tlog.TypeCallLeave && en.Reason == call.ReasonDropped {
				return true
			}
		}
		return false
	})
}

// Where UDP does not get through, media takes the server's ICE-TCP
// listener: two devices that offer only TCP candidates talk.
func TestVoiceOverICETCP(t *testing.T) {
	_, _, alice, bob, conv := twoMembers(t)
	tcpOnly := func(o *voice.Options) { o.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeTCP4} }
	pa, pb := newPhone(t, alice, tcpOnly), newPhone(t, bob, tcpOnly)
	ca, _ := answeredCall(t, pa, pb, conv)
	defer talker(t, ca, "alice")()
	eventually(t, "bob to hear alice over TCP", func() bool { f, _ := pb.heardFrom("alice@state.example"); return len(f) >= 10 })
}

// twoMembers starts a server with call media on loopback (and opts), and
// enrols alice and bob, who share a conversation.
func twoMembers(t *testing.T, opts ...envOption) (e *env, admin *client.Client, alice, bob *member, conv string) {
	t.Helper()
	e = newEnv(t, "sqlite", append([]envOption{func(c *server.Config) { c.MediaUDP, c.MediaTCP = "127.0.0.1:0", "127.0.0.1:0" }}, opts...)...)
	admin = e.admin(t)
	alice = newMember(t, e, admin, "alice")
	bob = newMember(t, e, admin, "bob")
	info, err := alice.CreateConversation(t.Context(), client.CreateOptions{Members: []string{"bob@state.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sync1(t, bob)
	return e, admin, alice, bob, info.ID
}

// answeredCall has caller place a call in conv and callee answer it when
// rung; the callee's frames are recorded (listen).
func answeredCall(t *testing.T, caller, callee *phone, conv string) (placed, answered *voice.Call) {
	t.Helper()
	placed, err := caller.line.Place(t.Context(), conv)
	if err != nil {
		t.Fatal(err)
	}
	callee.ringing(t, placed.ID)
	if answered, err = callee.line.Answer(t.Context(), placed.ID); err != nil {
		t.Fatal(err)
	}
	callee.listen(answered)
	return placed, answered
}
