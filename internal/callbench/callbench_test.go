package callbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hotline/internal/api"
	"hotline/internal/audiotest"
	"hotline/internal/netns"
	"hotline/internal/voice"
)

func TestMain(m *testing.M) {
	FarEnd() // returns unless started as a WAN run's far end
	os.Exit(m.Run())
}

// logWriter passes progress notes to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// checkRun checks that every call of res connected.
func checkRun(t *testing.T, res Result, calls int) {
	t.Helper()
	b, _ := json.Marshal(res)
	t.Logf("%s", b)
	kinds := map[string]*Figures{"warm": &res.Warm, "cold": res.Cold, "baseline": &res.Baseline}
	for name, f := range kinds {
		if f == nil {
			t.Errorf("no %s calls", name)
		} else if f.N != calls || f.Failures != 0 {
			t.Errorf("%s: %d of %d calls connected, %d failed", name, f.N, calls, f.Failures)
		}
	}
	if res.RTT.N == 0 || res.RTT.P50 <= 0 {
		t.Errorf("round trip not measured: %+v", res.RTT)
	}
}

// TestRun runs a short benchmark on loopback.
func TestRun(t *testing.T) {
	const calls = 2
	res, err := Run(t.Context(), Options{Calls: calls, Cold: true, Dir: t.TempDir(), Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, calls)
}

// TestRunWAN runs a short benchmark across the emulated WAN, as `hotline
// bench calls --wan` does: namespace and far end made by Run.
func TestRunWAN(t *testing.T) {
	const calls = 2
	wan := DefaultWAN()
	res, err := Run(t.Context(), Options{Calls: calls, Cold: true, Dir: t.TempDir(), Log: logWriter{t}, WAN: wan})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, calls)
	if res.WAN == nil || *res.WAN != *wan {
		t.Errorf("result's link %+v, want %+v", res.WAN, wan)
	}
	if res.RTT.P50 < 2*wan.Delay {
		t.Errorf("round trip p50 %v, shorter than the link's %v: the server is not behind it", res.RTT.P50, 2*wan.Delay)
	}
}

// TestCallsOverWAN puts the server behind a link of 50 ms each way with
// 1 % loss, and has two devices, on this side of it, talk: each plays a
// sentence and records what it hears, which must be the other's.
func TestCallsOverWAN(t *testing.T) {
	const delay = 50 * time.Millisecond
	n := netns.New(t, netns.Options{Delay: delay, Loss: 1})
	dir := t.TempDir()
	e, f := behindLink(t, n, dir)
	rtt, err := e.rtt(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s in %s; device-server round trip (GET /v1/me): p50 %v, shortest possible %v", f.server.URL, n.Name, rtt.P50, 2*delay)
	if rtt.P50 < 2*delay {
		t.Errorf("round trip p50 %v, shorter than the link's %v: the server is not behind it", rtt.P50, 2*delay)
	}
	if err := e.warmUp(t.Context()); err != nil {
		t.Fatal(err)
	}

	said := [2]string{"The quick brown fox jumps over the lazy dog, twice.", "She sells sea shells by the sea shore in the summer."}
	var wav, ogg [2]string
	for i, text := range said {
		wav[i], ogg[i] = audiotest.Speech(t, dir, text)
	}
	rec := [2]*voice.Recorder{voice.NewRecorder(filepath.Join(dir, "heard-by-caller.ogg")), voice.NewRecorder(filepath.Join(dir, "heard-by-callee.ogg"))}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// The caller places the call; the callee answers when rung and speaks
	// at once; the caller speaks once it sees the callee joined.
	e.callee.drain()
	t0 := time.Now()
	caller, err := e.caller.line.Place(ctx, e.conv)
	if err != nil {
		t.Fatal(err)
	}
	caller.OnAudio(rec[0].Write)
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
		t.Fatalf("answer: %v", err)
	}
	callee.OnAudio(rec[1].Write)
	answered := time.Since(t0)
	var wg sync.WaitGroup
	var playErr [2]error
	wg.Go(func() { playErr[1] = callee.PlayFile(ctx, ogg[1]) })
	if err := waitJoined(ctx, caller, 2); err != nil {
		t.Errorf("the caller never saw the callee join: %v", err)
	} else {
		wg.Go(func() { playErr[0] = caller.PlayFile(ctx, ogg[0]) })
	}
	wg.Wait()
	for i, err := range playErr {
		if err != nil {
			t.Errorf("play %s: %v", filepath.Base(ogg[i]), err)
		}
	}
	// What is still on its way: until nothing new arrived for 500 ms.
	settle(ctx, caller, callee)

	st := [2]voice.Stats{caller.Stats(), callee.Stats()}
	for i, who := range []string{"caller", "callee"} {
		if st[i].FirstAudio.IsZero() {
			t.Errorf("the %s heard nothing", who)
		} else {
			t.Logf("%s: first frame decrypted %v after the dial; sent %d frames, decrypted %d, undecryptable %d",
				who, st[i].FirstAudio.Sub(t0).Round(time.Millisecond), st[i].Sent, st[i].Received, st[i].Undecryptable)
		}
	}
	t.Logf("answered %v after the dial", answered.Round(time.Millisecond))
	hangup(ctx, caller)
	select {
	case <-callee.Ended():
	case <-ctx.Done():
		t.Errorf("the callee's call did not end when the caller hung up")
	}

	for i, who := range []string{"caller", "callee"} {
		recs := rec[i].Recordings()
		if err := rec[i].Close(); err != nil {
			t.Fatalf("%s's recording: %v", who, err)
		}
		if len(recs) != 1 {
			t.Errorf("the %s heard %d senders, want 1: %+v", who, len(recs), recs)
			continue
		}
		r := recs[0]
		heard := audiotest.Decode(t, r.Path)
		other := 1 - i
		score, lag := audiotest.Similarity(audiotest.Decode(t, wav[other]), heard)
		own, _ := audiotest.Similarity(audiotest.Decode(t, wav[i]), heard)
		t.Logf("the %s heard %q: score %.3f (lag %v), %d packets, %d lost and concealed; against its own sentence: %.3f",
			who, said[other], score, lag, r.Packets, r.Filled, own)
		if score < audiotest.Correlated {
			t.Errorf("the %s did not hear %q: score %.3f, want at least %.2f", who, said[other], score, audiotest.Correlated)
		}
		if own > audiotest.Uncorrelated {
			t.Errorf("the %s heard its own sentence: score %.3f, want at most %.2f", who, own, audiotest.Uncorrelated)
		}
	}

	// The benchmark's calls, once each, cross the link too (from quiet
	// devices: see firstAudio).
	if err := waitRotated(ctx, callee); err != nil {
		t.Fatal(err)
	}
	if d, err := e.warmCall(ctx); err != nil {
		t.Errorf("warm call: %v", err)
	} else {
		t.Logf("warm call: first frame at the callee %v after the dial (%.1f round trips)", d.Round(time.Millisecond), float64(d)/float64(rtt.P50))
	}
	if d, err := e.coldCall(ctx); err != nil {
		t.Errorf("cold call: %v", err)
	} else {
		t.Logf("cold call: first frame at the callee %v after the dial (%.1f round trips)", d.Round(time.Millisecond), float64(d)/float64(rtt.P50))
	}
}

// waitJoined waits until c's view has n participants joined.
func waitJoined(ctx context.Context, c *voice.Call, n int) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		joined := 0
		for _, p := range c.View().Participants {
			if p.State == "joined" {
				joined++
			}
		}
		if joined >= n {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Ended():
			return fmt.Errorf("call ended: %s", c.Reason())
		}
	}
}

// settle waits until none of calls has decrypted a frame for 500 ms, or
// 5 s have passed.
func settle(ctx context.Context, calls ...*voice.Call) {
	count := func() (n uint64) {
		for _, c := range calls {
			n += c.Stats().Received
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	last, since := count(), time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) && time.Since(since) < 500*time.Millisecond {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if n := count(); n != last {
			last, since = n, time.Now()
		}
	}
}

// BenchmarkCallSetup times call setup on loopback: warm, cold and the
// bare pion baseline, one of each per iteration (see Run).
func BenchmarkCallSetup(b *testing.B) { benchCalls(b, nil) }

// BenchmarkCallSetupWAN times call setup with the server behind a link of
// 50 ms each way and 1 % loss ([DefaultWAN]); the baseline's handshake
// crosses it too. For the figures in the docs:
//
//	go test -run '^$' -bench CallSetupWAN -benchtime 100x ./internal/callbench/
func BenchmarkCallSetupWAN(b *testing.B) { benchCalls(b, DefaultWAN()) }

func benchCalls(b *testing.B, wan *netns.Options) {
	r, err := open(b.Context(), Options{Cold: true, Dir: b.TempDir(), Log: logWriter{b}, WAN: wan})
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	i := 0
	for b.Loop() {
		if err := r.round(b.Context(), i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	res := r.result()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op") // an iteration is three calls: its time says nothing
	b.ReportMetric(ms(res.RTT.P50), "rtt-ms")
	failed := 0
	for _, k := range []struct {
		name string
		f    *Figures
	}{{"warm", &res.Warm}, {"cold", res.Cold}, {"base", &res.Baseline}} {
		failed += k.f.Failures
		if k.f.N == 0 {
			continue
		}
		b.ReportMetric(ms(k.f.P50), k.name+"-p50-ms")
		b.ReportMetric(ms(k.f.P99), k.name+"-p99-ms")
		b.ReportMetric(float64(k.f.P50)/float64(res.RTT.P50), k.name+"-p50-rtts")
		if k.name != "base" && res.Baseline.N > 0 {
			b.ReportMetric(float64(k.f.P50)/float64(res.Baseline.P50), k.name+"-p50/base")
			b.ReportMetric(float64(k.f.P99)/float64(res.Baseline.P99), k.name+"-p99/base")
		}
	}
	b.ReportMetric(float64(failed), "failed")
}

// behindLink starts the server in n's namespace, with its data in dir, and
// the two devices on this side of the link.
func behindLink(t *testing.T, n *netns.Net, dir string) (*env, *far) {
	t.Helper()
	f, err := startFar(t.Context(), n, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.close(); err != nil {
			t.Error(err)
		}
	})
	e, err := start(t.Context(), Options{Dir: dir, Host: n.HostAddr, Server: &f.server})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e, f
}
