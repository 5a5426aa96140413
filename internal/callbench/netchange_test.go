package callbench

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/netns"
	"hotline/internal/voice"
)

// TestNetworkGoesAway cuts the link to the server for 9 seconds in the
// middle of a call, as when a phone walks out of Wi-Fi range: the lines'
// ICE fails (after 3 s without an answer it is disconnected, 3 s later
// failed), they restart ICE once the network is back (keeping DTLS and
// the call's state), and the call goes on by itself, audio flowing again.
// (A cut shorter than 6 s needs no restart: ICE's keep-alives find the
// path again by themselves.)
func TestNetworkGoesAway(t *testing.T) {
	n := netns.New(t, netns.Options{Delay: 10 * time.Millisecond})
	e, _ := behindLink(t, n, t.TempDir())
	if err := e.warmUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	e.callee.drain()
	caller, err := e.caller.line.Place(ctx, e.conv)
	if err != nil {
		t.Fatal(err)
	}
	var ring api.StreamMessage
	select {
	case ring = <-e.callee.raw:
	case <-ctx.Done():
		t.Fatal("the callee was never rung")
	}
	var v api.Call
	if err := json.Unmarshal(ring.Payload, &v); err != nil {
		t.Fatal(err)
	}
	callee, err := e.callee.line.Answer(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var heard atomic.Int64
	callee.OnAudio(func(voice.Frame) { heard.Add(1) })
	stop := make(chan struct{})
	defer close(stop)
	go talk(func() *voice.Line { return e.caller.line }, time.Now(), stop)
	waitHeard := func(what string, more int64, within time.Duration) {
		t.Helper()
		from := heard.Load()
		deadline := time.Now().Add(within)
		for heard.Load() < from+more {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the callee heard %d frames in %v, want %d (caller line: %d ICE restarts, %d reconnects; callee line: %d, %d)",
					what, heard.Load()-from, within, more, e.caller.line.ICERestarts(), e.caller.line.Reconnects(),
					e.callee.line.ICERestarts(), e.callee.line.Reconnects())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHeard("before the cut", 25, 10*time.Second)

	n.SetDown(true)
	time.Sleep(9 * time.Second) // longer than a line waits (6 s) before it restarts
	n.SetDown(false)
	back := time.Now()
	waitHeard("after the network came back", 25, 20*time.Second)
	t.Logf("audio flowed again %v after the network came back; caller line: %d ICE restarts, %d reconnects; callee line: %d, %d",
		time.Since(back).Round(time.Millisecond), e.caller.line.ICERestarts(), e.caller.line.Reconnects(),
		e.callee.line.ICERestarts(), e.callee.line.Reconnects())
	if e.caller.line.ICERestarts()+e.callee.line.ICERestarts() == 0 {
		t.Error("no line restarted ICE: the calls came back by new connections")
	}
	select {
	case <-caller.Ended():
		t.Errorf("the call ended: %s", caller.Reason())
	default:
	}
}
