// Package callbench measures call setup end to end: from the moment a
// caller dials to the first frame the callee decrypts, through a real
// server (in this process, or across an emulated WAN) and real WebRTC
// connections, as `hotline bench calls` reports it.
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
//
// # Across a WAN
//
// With Options.WAN, the server runs in a network namespace behind an
// emulated link (package netns; [DefaultWAN] is 50 ms each way and 1 %
// loss), in a process of its own: this program started again in the
// namespace, which [FarEnd] turns into the far end. The devices stay in
// this process, so every request, event and media packet of theirs
// crosses the link, each way. So does the baseline's handshake: its
// answering peer is made in the far end, for an offer POSTed over HTTP
// (on a connection kept open, as a device's is), and sends the RTP that
// is timed to the offering peer, here.
package callbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/datadir"
	"hotline/internal/netns"
	"hotline/internal/server"
	"hotline/internal/voice"
)

// Options configure a run.
type Options struct {
	Calls int       // calls of each kind (0: 100)
	Dir   string    // where the server's data and profiles go (a new temporary directory if empty)
	Log   io.Writer // progress notes (nil: none)
	// Host is the address the server listens on, for HTTPS and media,
	// and the address the devices and the bare peers use (zero:
	// 127.0.0.1). With Server, only the latter; with WAN, it is ignored.
	Host netip.Addr
	// Cold adds cold calls (each makes two media connections).
	Cold bool
	// Server, if set, is a server running elsewhere to measure instead
	// of one in this process. A Server serves one run: its invite is
	// used up.
	Server *Server
	// WAN, if set, puts the server and the baseline's answering peer in
	// a network namespace behind a link emulated as it says (see
	// [DefaultWAN]), in a process of their own: this program, started
	// again, which must call [FarEnd] first thing in main (a test binary,
	// in TestMain). It needs root; see package netns.
	WAN *netns.Options
}

// Server is a server to measure, running elsewhere (see Options.Server).
type Server struct {
	URL         string // "https://host:port"
	Fingerprint string // its TLS certificate's pin
	Org         string // the organisation's domain name
	Invite      string // the first administrator's invite code, unused
	// Answerer, if set, is the URL of a bare pion peer that answers an
	// SDP offer POSTed to it and then sends RTP every 20 ms, as [FarEnd]
	// serves: the baseline's far peer. Empty: both bare peers are in
	// this process.
	Answerer string
}

// DefaultWAN is the link `hotline bench calls --wan` emulates: 50 ms each
// way (so a round trip of 100 ms) and 1 % of packets lost each way.
func DefaultWAN() *netns.Options {
	return &netns.Options{Delay: 50 * time.Millisecond, Loss: 1}
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
	Host     string         `json:"host"`          // the server's address
	WAN      *netns.Options `json:"wan,omitempty"` // the link to it, if emulated
	RTT      Figures        `json:"rtt"`           // one authenticated HTTPS request, device to server
	Warm     Figures        `json:"warm"`
	Cold     *Figures       `json:"cold,omitempty"`
	Baseline Figures        `json:"baseline"`
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
	r, err := open(ctx, o)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	for i := range r.o.Calls {
		if err := r.round(ctx, i); err != nil {
			return r.result(), err
		}
		if (i+1)%10 == 0 {
			fmt.Fprintf(r.o.Log, "%d of %d calls\n", i+1, r.o.Calls)
		}
	}
	return r.result(), nil
}

// A run is what Run sets up, and the times measured so far. Its close
// takes it down in the reverse order: devices, server, namespace,
// directory.
type run struct {
	o   Options
	tmp string     // a temporary directory to remove, or ""
	net *netns.Net // with Options.WAN
	far *far       // with Options.WAN
	env *env
	bh  *http.Client // to the answerer, with Server.Answerer
	res Result

	warm, cold, base             []time.Duration
	warmFail, coldFail, baseFail int
}

// open sets up a run: the server (in this process, or elsewhere, or in a
// namespace), two users, their devices' warm lines; it measures the round
// trip.
func open(ctx context.Context, o Options) (_ *run, err error) {
	if o.Calls <= 0 {
		o.Calls = 100
	}
	if !o.Host.IsValid() {
		o.Host = netip.MustParseAddr("127.0.0.1")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	r := &run{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "hotline-bench-calls-"); err != nil {
			return nil, err
		}
		r.tmp = o.Dir
	}
	r.res.Host = o.Host.String()
	if o.WAN != nil {
		if o.Server != nil {
			return nil, errors.New("callbench: Options.WAN and Options.Server exclude each other")
		}
		if r.net, err = netns.Open(*o.WAN); err != nil {
			return nil, fmt.Errorf("wan: %w", err)
		}
		if r.far, err = startFar(ctx, r.net, o.Dir); err != nil {
			return nil, fmt.Errorf("wan: %w", err)
		}
		o.Server, o.Host = &r.far.server, r.net.HostAddr
		r.res.Host, r.res.WAN = r.net.PeerAddr.String(), o.WAN
		fmt.Fprintf(o.Log, "server at %s behind an emulated link (%v each way ± %v, %v %% loss) in namespace %s\n",
			r.net.PeerAddr, o.WAN.Delay, o.WAN.Jitter, o.WAN.Loss, r.net.Name)
	} else if o.Server != nil {
		u, err := url.Parse(o.Server.URL)
		if err != nil {
			return nil, fmt.Errorf("callbench: server URL: %w", err)
		}
		r.res.Host = u.Hostname()
	}
	if o.Server != nil && o.Server.Answerer != "" {
		r.bh = &http.Client{Timeout: 15 * time.Second}
	}
	r.o = o
	if r.env, err = start(ctx, o); err != nil {
		return nil, err
	}
	if r.res.RTT, err = r.env.rtt(ctx, 50); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "device-server round trip (GET /v1/me): p50 %v\n", r.res.RTT.P50)
	if err := r.env.warmUp(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// round times one call of each kind. The kinds alternate, call by call,
// so that a slow spell of the machine falls on all of them. A call that
// fails is counted and noted; round fails only when ctx ends.
func (r *run) round(ctx context.Context, i int) error {
	if d, err := r.env.warmCall(ctx); err != nil {
		r.warmFail++
		fmt.Fprintf(r.o.Log, "warm call %d: %v\n", i, err)
	} else {
		r.warm = append(r.warm, d)
	}
	if r.o.Cold {
		if d, err := r.env.coldCall(ctx); err != nil {
			r.coldFail++
			fmt.Fprintf(r.o.Log, "cold call %d: %v\n", i, err)
		} else {
			r.cold = append(r.cold, d)
		}
	}
	var d time.Duration
	var err error
	if r.bh != nil {
		d, err = remoteHandshake(ctx, r.o.Host, r.bh, r.o.Server.Answerer)
	} else {
		d, err = bareHandshake(ctx, r.o.Host)
	}
	if err != nil {
		r.baseFail++
		fmt.Fprintf(r.o.Log, "baseline %d: %v\n", i, err)
	} else {
		r.base = append(r.base, d)
	}
	return ctx.Err()
}

// result summarises the times measured so far.
func (r *run) result() Result {
	res := r.res
	res.Warm, res.Baseline = summarise(r.warm, r.warmFail), summarise(r.base, r.baseFail)
	if r.o.Cold {
		f := summarise(r.cold, r.coldFail)
		res.Cold = &f
	}
	return res
}

// close takes down what open set up, as far as it got.
func (r *run) close() {
	if r.env != nil {
		r.env.close()
	}
	if r.bh != nil {
		r.bh.CloseIdleConnections()
	}
	if r.far != nil {
		r.far.close()
	}
	if r.net != nil {
		r.net.Close()
	}
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
}

// env is the server and the two devices.
type env struct {
	o      Options
	srv    *server.Server // nil with Options.Server
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

// start starts the server in this process, unless o.Server names one,
// and enrols an administrator and two users, caller and callee, with a
// conversation between them.
func start(ctx context.Context, o Options) (_ *env, err error) {
	e := &env{o: o}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	srv := o.Server
	if srv == nil {
		if srv, err = e.serve(ctx); err != nil {
			return nil, err
		}
	}
	if srv.Org == "" {
		return nil, errors.New("callbench: Server.Org is empty")
	}
	enrol := func(invite, name string) (*client.Client, error) {
		c, _, err := client.Enroll(ctx, client.EnrollOptions{Server: srv.URL, Invite: invite, ProfileDir: filepath.Join(o.Dir, name), Fingerprint: srv.Fingerprint, Label: name})
		if err != nil {
			return nil, fmt.Errorf("enrol %s: %w", name, err)
		}
		return c, c.EnsureKeyPackages(ctx, client.DefaultSuite)
	}
	admin, err := enrol(srv.Invite, "admin")
	if err != nil {
		return nil, err
	}
	var users [2]*client.Client
	for i, name := range []string{"caller", "callee"} {
		var r api.CreateUserResponse
		if err := admin.Do(ctx, "POST", "/v1/users", api.CreateUserRequest{User: name + "@" + srv.Org, Roles: []string{}}, &r); err != nil {
			return nil, err
		}
		if users[i], err = enrol(r.Invite.Code, name); err != nil {
			return nil, err
		}
	}
	info, err := users[0].CreateConversation(ctx, client.CreateOptions{Members: []string{"callee@" + srv.Org}})
	if err != nil {
		return nil, err
	}
	e.conv = info.ID
	if err := users[1].Sync(ctx); err != nil {
		return nil, err
	}
	e.caller, e.callee = e.device(users[0]), e.device(users[1])
	return e, nil
}

// serve starts a server in this process, listening on o.Host.
func (e *env) serve(ctx context.Context) (*Server, error) {
	quiet := slog.New(slog.DiscardHandler)
	data := filepath.Join(e.o.Dir, "data")
	init, err := datadir.Init(ctx, data, datadir.InitOptions{Org: benchOrg, Hosts: []string{e.o.Host.String()}, Logger: quiet})
	if err != nil {
		return nil, err
	}
	host := e.o.Host.String()
	if e.o.Host.Is6() {
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
	e.srv, e.done = srv, make(chan error, 1)
	go func() { e.done <- srv.Serve(ln) }()
	return &Server{URL: "https://" + ln.Addr().String(), Fingerprint: srv.Fingerprint(), Org: benchOrg, Invite: init.Invite.Code}, nil
}

// benchOrg is the organisation of the servers callbench starts.
const benchOrg = "bench.example"

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

// close stops the devices and the server, if it is in this process.
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
	if e.srv == nil {
		return
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
	defer hangup(ctx, call)
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
	// The callee commits a fresh leaf when it answers (voice rotates the
	// media keys for a new participant). Wait for that commit: a call
	// placed while it is on its way waits for it, which is not call setup;
	// and closing the line before it lands (as a cold call does) cancels
	// it after the server may have taken it, which leaves the callee
	// refusing its own commit and the conversation broken for it.
	if err := waitRotated(ctx, callee); err != nil {
		return 0, err
	}
	// Hang up on both sides and wait for the callee's end, so the next call
	// finds both lines free.
	callee.Hangup(ctx)
	select {
	case <-callee.Ended():
	case <-ctx.Done():
	}
	return d, nil
}

// waitRotated waits until call has committed a fresh leaf.
func waitRotated(ctx context.Context, call *voice.Call) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for call.Stats().Rotations == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errors.New("the callee's commit of a fresh leaf, on answering, did not land")
		}
	}
	return nil
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
	defer hangup(ctx, call)
	return e.firstAudio(ctx, t0, answered, errc)
}

// hangup leaves call, with 10 s to do it even if ctx has ended.
func hangup(ctx context.Context, call *voice.Call) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	call.Hangup(ctx)
}

// newBarePeer returns a pion peer with nothing but the Opus codec, whose
// ICE offers host candidates on host only.
func newBarePeer(host netip.Addr) (*webrtc.PeerConnection, error) {
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { a, ok := netip.AddrFromSlice(ip); return ok && a.Unmap() == host })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opus, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
}

// opus is the codec of the bare peers.
var opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}

// bareHandshake times two pion peers in this process, from nothing to
// the first RTP packet: the same codec and one audio section each way,
// ICE on host, DTLS, SRTP.
func bareHandshake(ctx context.Context, host netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t0 := time.Now()
	a, err := newBarePeer(host)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	b, err := newBarePeer(host)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(opus, "a", "a")
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
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { sendRTP(track, t0, stop) })
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
	if err := setGathered(ctx, a, offer); err != nil {
		return err
	}
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		return err
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := setGathered(ctx, b, answer); err != nil {
		return err
	}
	return a.SetRemoteDescription(*b.LocalDescription())
}

// setGathered sets pc's local description and waits until every candidate
// is gathered.
func setGathered(ctx context.Context, pc *webrtc.PeerConnection, d webrtc.SessionDescription) error {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return err
	}
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
