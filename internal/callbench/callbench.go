// Package callbench measures call setup end to end: from the moment a
// caller dials to the first frame the callee decrypts, through a real
// server (in this process) and real WebRTC connections, as `hotline bench
// calls` reports it.
//
// Three ways are timed, call after call, in the same run:
//
//   - warm: both devices' media connections are up in advance (the warm
//     line), so a call is signalling only: place, ring, accept.
//   - cold: neither device has a media connection: the caller connects as
//     it dials, the callee when it is rung, then answers.
//   - baseline: two bare pion peers in this process, offer and answer
//     handed over in memory, from nothing to the first RTP packet: a fresh
//     ICE and DTLS handshake, the cost the warm line avoids.
//
// The callee answers at once (auto-answer); the caller sends a 20 ms frame
// every 20 ms from the moment it dials, as a phone's microphone would.
// Figures are also given in device-to-server round trips, measured in the
// same run as the median of authenticated HTTPS requests (GET /v1/me).
package callbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/server"
	"hotline/internal/voice"
)

// Options configure a run.
type Options struct {
	Calls int       // calls of each kind (0: 100)
	Dir   string    // where the server's data and profiles go (a new temporary directory if empty)
	Log   io.Writer // progress notes (nil: none)
	// Host is the address the server listens on, for HTTPS and media
	// (zero: 127.0.0.1).
	Host netip.Addr
	// Cold adds cold calls (each makes two media connections).
	Cold bool
}

// Figures summarise one kind of call.
type Figures struct {
	N        int           `json:"n"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Mean     time.Duration `json:"mean"`
	Failures int           `json:"failures"`
}

// Result is a run's figures.
type Result struct {
	Host     string   `json:"host"`
	RTT      Figures  `json:"rtt"` // one authenticated HTTPS request, device to server
	Warm     Figures  `json:"warm"`
	Cold     *Figures `json:"cold,omitempty"`
	Baseline Figures  `json:"baseline"`
}

func summarise(ds []time.Duration, failures int) Figures {
	f := Figures{N: len(ds), Failures: failures}
	if len(ds) == 0 {
		return f
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	f.P50 = s[len(s)/2]
	f.P99 = s[min(len(s)-1, (len(s)*99+99)/100-1)]
	f.Mean = sum / time.Duration(len(s))
	return f
}

// Run sets up a server with two users and measures.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Calls <= 0 {
		o.Calls = 100
	}
	if !o.Host.IsValid() {
		o.Host = netip.MustParseAddr("127.0.0.1")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "hotline-bench-calls-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	res := Result{Host: o.Host.String()}
	env, err := start(ctx, o)
	if err != nil {
		return res, err
	}
	defer env.close()
	if res.RTT, err = env.rtt(ctx, 50); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Log, "device-server round trip (GET /v1/me): p50 %v\n", res.RTT.P50)

	// The kinds alternate, call by call, so that a slow spell of the
	// machine falls on all of them.
	var warm, cold, base []time.Duration
	var warmFail, coldFail, baseFail int
	if err := env.warmUp(ctx); err != nil {
		return res, err
	}
	for i := range o.Calls {
		if d, err := env.warmCall(ctx); err != nil {
			warmFail++
			fmt.Fprintf(o.Log, "warm call %d: %v\n", i, err)
		} else {
			warm = append(warm, d)
		}
		if o.Cold {
			if d, err := env.coldCall(ctx); err != nil {
				coldFail++
				fmt.Fprintf(o.Log, "cold call %d: %v\n", i, err)
			} else {
				cold = append(cold, d)
			}
		}
		if d, err := bareHandshake(ctx, o.Host); err != nil {
			baseFail++
			fmt.Fprintf(o.Log, "baseline %d: %v\n", i, err)
		} else {
			base = append(base, d)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if (i+1)%10 == 0 {
			fmt.Fprintf(o.Log, "%d of %d calls\n", i+1, o.Calls)
		}
	}
	res.Warm, res.Baseline = summarise(warm, warmFail), summarise(base, baseFail)
	if o.Cold {
		f := summarise(cold, coldFail)
		res.Cold = &f
	}
	return res, nil
}

// env is the server and the two devices.
type env struct {
	o      Options
	srv    *server.Server
	done   chan error
	caller *device
	callee *device
	conv   string
}

// device is a user's device with its event stream running.
type device struct {
	c      *client.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	line *voice.Line   // the warm line (nil when cold)
	ring chan api.Call // rings, for cold answering
	raw  chan api.StreamMessage
}

func start(ctx context.Context, o Options) (*env, error) {
	quiet := slog.New(slog.DiscardHandler)
	data := filepath.Join(o.Dir, "data")
	init, err := datadir.Init(ctx, data, datadir.InitOptions{Org: "bench.example", Hosts: []string{o.Host.String()}, Logger: quiet})
	if err != nil {
		return nil, err
	}
	host := o.Host.String()
	if o.Host.Is6() {
		host = "[" + host + "]"
	}
	srv, err := server.New(ctx, server.Config{DataDir: data, Logger: quiet, EnrolRate: 1000, EnrolBurst: 1000,
		MediaUDP: host + ":0", MediaTCP: host + ":0"})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		srv.Shutdown(ctx)
		return nil, err
	}
	e := &env{o: o, srv: srv, done: make(chan error, 1)}
	go func() { e.done <- srv.Serve(ln) }()
	url := "https://" + ln.Addr().String()
	enrol := func(invite, name string) (*client.Client, error) {
		c, _, err := client.Enroll(ctx, client.EnrollOptions{Server: url, Invite: invite, ProfileDir: filepath.Join(o.Dir, name), Fingerprint: srv.Fingerprint(), Label: name})
		if err != nil {
			return nil, fmt.Errorf("enrol %s: %w", name, err)
		}
		return c, c.EnsureKeyPackages(ctx, client.DefaultSuite)
	}
	admin, err := enrol(init.Invite.Code, "admin")
	if err != nil {
		e.close()
		return nil, err
	}
	var users [2]*client.Client
	for i, name := range []string{"caller", "callee"} {
		var r api.CreateUserResponse
		if err := admin.Do(ctx, "POST", "/v1/users", api.CreateUserRequest{User: name + "@bench.example", Roles: []string{}}, &r); err != nil {
			e.close()
			return nil, err
		}
		if users[i], err = enrol(r.Invite.Code, name); err != nil {
			e.close()
			return nil, err
		}
	}
	info, err := users[0].CreateConversation(ctx, client.CreateOptions{Members: []string{"callee@bench.example"}})
	if err != nil {
		e.close()
		return nil, err
	}
	e.conv = info.ID
	if err := users[1].Sync(ctx); err != nil {
		e.close()
		return nil, err
	}
	e.caller, e.callee = e.device(users[0]), e.device(users[1])
	return e, nil
}

// device starts a device's event stream; rings go to its line, if it has
// one, and to d.ring.
func (e *env) device(c *client.Client) *device {
	ctx, cancel := context.WithCancel(context.Background())
	d := &device{c: c, cancel: cancel, done: make(chan struct{}), ring: make(chan api.Call, 4), raw: make(chan api.StreamMessage, 4)}
	go func() {
		defer close(d.done)
		c.Events(ctx, func(m api.StreamMessage) error {
			d.mu.Lock()
			line := d.line
			d.mu.Unlock()
			if line != nil {
				line.Handle(m)
			}
			if m.Type == api.StreamEvent && m.Event == client.EventCallRing {
				var v api.Call
				if json.Unmarshal(m.Payload, &v) == nil && v.State == "ringing" {
					select {
					case d.raw <- m:
					default:
					}
				}
			}
			return nil
		})
	}()
	return d
}

func (e *env) close() {
	for _, d := range []*device{e.caller, e.callee} {
		if d == nil {
			continue
		}
		d.mu.Lock()
		if d.line != nil {
			d.line.Close()
		}
		d.mu.Unlock()
		d.cancel()
		<-d.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	<-e.done
}

func (e *env) rtt(ctx context.Context, n int) (Figures, error) {
	var ds []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := e.caller.c.Me(ctx); err != nil {
			return Figures{}, err
		}
		ds = append(ds, time.Since(t0))
	}
	return summarise(ds, 0), nil
}

func (e *env) dial(ctx context.Context, d *device) (*voice.Line, error) {
	return voice.Dial(ctx, d.c, voice.Options{IPFilter: e.filter})
}

func (e *env) filter(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && a.Unmap() == e.o.Host
}

// warmUp gives both devices their warm lines.
func (e *env) warmUp(ctx context.Context) error {
	for _, d := range []*device{e.caller, e.callee} {
		l, err := e.dial(ctx, d)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.line = l
		d.mu.Unlock()
	}
	return nil
}

// drain forgets rings left from earlier calls.
func (d *device) drain() {
	for {
		select {
		case <-d.raw:
		default:
			return
		}
	}
}

// talk sends a 20 ms frame every 20 ms on line's call from t0 until stop
// is closed; frames before the call exists are not sent.
func talk(line func() *voice.Line, t0 time.Time, stop <-chan struct{}) {
	frame := append([]byte{0xfc}, make([]byte, 80)...) // a CELT 20 ms TOC byte and filler
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(t0.Add(time.Duration(k) * 20 * time.Millisecond))):
		}
		if l := line(); l != nil {
			if c := l.Current(); c != nil {
				c.Send(frame, 960)
			}
		}
	}
}

// warmCall times one call on the warm lines.
func (e *env) warmCall(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	e.callee.drain()
	stop := make(chan struct{})
	defer close(stop)
	answered := make(chan *voice.Call, 1)
	errc := make(chan error, 1)
	go func() {
		select {
		case m := <-e.callee.raw:
			var v api.Call
			json.Unmarshal(m.Payload, &v)
			c, err := e.callee.line.Answer(ctx, v.ID)
			if err != nil {
				errc <- err
				return
			}
			answered <- c
		case <-ctx.Done():
			errc <- ctx.Err()
		}
	}()
	t0 := time.Now()
	go talk(func() *voice.Line { return e.caller.line }, t0, stop)
	call, err := e.caller.line.Place(ctx, e.conv)
	if err != nil {
		return 0, err
	}
	defer call.Hangup(context.WithoutCancel(ctx))
	return e.firstAudio(ctx, t0, answered, errc)
}

// firstAudio waits for the callee's first decrypted frame.
func (e *env) firstAudio(ctx context.Context, t0 time.Time, answered chan *voice.Call, errc chan error) (time.Duration, error) {
	var callee *voice.Call
	select {
	case callee = <-answered:
	case err := <-errc:
		return 0, err
	}
	select {
	case <-callee.Heard():
	case <-ctx.Done():
		return 0, errors.New("no audio reached the callee")
	}
	d := callee.Stats().FirstAudio.Sub(t0)
	// Hang up on both sides and wait for the callee's end, so the next call
	// finds both lines free.
	callee.Hangup(ctx)
	select {
	case <-callee.Ended():
	case <-ctx.Done():
	}
	return d, nil
}

// coldCall times one call with no media connection in advance.
func (e *env) coldCall(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, d := range []*device{e.caller, e.callee} {
		d.mu.Lock()
		if d.line != nil {
			d.line.Close()
			d.line = nil
		}
		d.mu.Unlock()
	}
	e.callee.drain()
	// The lines made for this call are the warm lines of the next.
	stop := make(chan struct{})
	defer close(stop)
	answered := make(chan *voice.Call, 1)
	errc := make(chan error, 1)
	go func() {
		select {
		case m := <-e.callee.raw:
			l, err := e.dial(ctx, e.callee)
			if err != nil {
				errc <- err
				return
			}
			e.callee.mu.Lock()
			e.callee.line = l
			e.callee.mu.Unlock()
			l.Handle(m)
			var v api.Call
			json.Unmarshal(m.Payload, &v)
			c, err := l.Answer(ctx, v.ID)
			if err != nil {
				errc <- err
				return
			}
			answered <- c
		case <-ctx.Done():
			errc <- ctx.Err()
		}
	}()
	t0 := time.Now()
	var mu sync.Mutex
	var callerLine *voice.Line
	go talk(func() *voice.Line { mu.Lock(); defer mu.Unlock(); return callerLine }, t0, stop)
	l, err := e.dial(ctx, e.caller)
	if err != nil {
		return 0, err
	}
	mu.Lock()
	callerLine = l
	mu.Unlock()
	e.caller.mu.Lock()
	e.caller.line = l
	e.caller.mu.Unlock()
	call, err := l.Place(ctx, e.conv)
	if err != nil {
		return 0, err
	}
	defer call.Hangup(context.WithoutCancel(ctx))
	return e.firstAudio(ctx, t0, answered, errc)
}

// bareHandshake times two pion peers in this process, from nothing to
// the first RTP packet: the same codec and one audio section each way,
// ICE on host, DTLS, SRTP.
func bareHandshake(ctx context.Context, host netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t0 := time.Now()
	mk := func() (*webrtc.PeerConnection, error) {
		var se webrtc.SettingEngine
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { a, ok := netip.AddrFromSlice(ip); return ok && a.Unmap() == host })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
		me := &webrtc.MediaEngine{}
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
		return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	}
	a, err := mk()
	if err != nil {
		return 0, err
	}
	defer a.Close()
	b, err := mk()
	if err != nil {
		return 0, err
	}
	defer b.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "a")
	if err != nil {
		return 0, err
	}
	if _, err := a.AddTrack(track); err != nil {
		return 0, err
	}
	got := make(chan time.Time, 1)
	b.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if _, _, err := tr.ReadRTP(); err == nil {
			got <- time.Now()
		}
	})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		frame := append([]byte{0xfc}, make([]byte, 80)...)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(t0.Add(time.Duration(k) * 20 * time.Millisecond))):
			}
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(k), Timestamp: uint32(k * 960)}, Payload: frame})
		}
	}()
	if err := exchange(ctx, a, b); err != nil {
		return 0, err
	}
	select {
	case t1 := <-got:
		return t1.Sub(t0), nil
	case <-ctx.Done():
		return 0, errors.New("no packet between bare peers")
	}
}

// exchange hands a's offer to b and b's answer to a, with every candidate
// gathered (as the server's offer/answer does).
func exchange(ctx context.Context, a, b *webrtc.PeerConnection) error {
	offer, err := a.CreateOffer(nil)
	if err != nil {
		return err
	}
	ga := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-ga:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		return err
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gb := webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		return err
	}
	select {
	case <-gb:
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.SetRemoteDescription(*b.LocalDescription())
}
