// Package voice is the device side of Hotline's calls: the warm line to the
// server's media forwarder, and calls carried on it, with every audio frame
// encrypted end to end with SFrame (RFC 9605) keyed from the MLS group of
// the call's conversation (section 5.2).
//
// A [Line] is one WebRTC connection from the device to its server (one
// sending Opus section, the microphone, and sfu.Slots receiving ones),
// made when the app opens and kept up while it runs, so that a call needs
// only signalling. A [Call] encrypts what the application sends, decrypts
// what it hears, tells who sent each frame (from the KID: leaf index and
// epoch, so from the member's verified credential), rotates keys as the
// conversation's epochs move, and commits a fresh leaf when someone joins or
// leaves so they do.
//
// The server forwards RTP without decoding it; the payloads it sees are
// SFrame ciphertexts.
package voice

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/client"
	"hotline/internal/sfu"
)

// Options configure a Line.
type Options struct {
	// IPFilter chooses the local addresses ICE may use (nil: all,
	// loopback included).
	IPFilter func(net.IP) bool
	// NetworkTypes are the candidate types offered (nil: UDP and TCP over
	// IPv4 and IPv6; ICE prefers UDP, TCP reaches the server's ICE-TCP
	// listener where UDP does not get through).
	NetworkTypes []webrtc.NetworkType
	// Logger receives the line's notes (nil: discarded).
	Logger *slog.Logger
	// Tap, if set, sees every payload the server forwards, as it arrived
	// and before decryption: what the server saw. For tests and
	// diagnostics.
	Tap func(slot int, payload []byte)
	// FailAfter is how long the connection may go unanswered before the
	// line makes it again (0: 6 seconds).
	FailAfter time.Duration
	// OnLine is told when the connection is lost (up false, with why) and
	// when it is back (up true). It must not block.
	OnLine func(up bool, err error)
	// OnCall is told of every call event this line handles (ring, update,
	// elsewhere, ended), after the line acted on it.
	OnCall func(event string, v api.Call)
}

// Errors of a Line and its calls.
var (
	ErrClosed      = errors.New("voice: line closed")
	ErrBusy        = errors.New("voice: already in a call")
	ErrNotRinging  = errors.New("voice: no such call ringing on this device")
	ErrEnded       = errors.New("voice: call ended")
	ErrNoMediaYet  = errors.New("voice: media connection not up")
	errNeedConnect = errors.New("voice: the media connection went down")
)

// Line is a device's warm media connection to its server.
type Line struct {
	c   *client.Client
	o   Options
	log *slog.Logger

	ctx    context.Context // the line's life
	cancel context.CancelFunc

	mu       sync.Mutex
	conn     *conn // nil while reconnecting
	up       chan struct{}
	call     *Call
	probe    *lineProbe          // a line check's measurement under way
	idle     []idlePacket        // frames heard in no call and no probe, briefly kept
	ringing  map[string]api.Call // calls ringing on this device, by ID
	slots    api.CallSlots
	closed   bool
	redials  int
	restarts int
}

// conn is one PeerConnection of a line.
type conn struct {
	pc   *webrtc.PeerConnection
	mic  *webrtc.TrackLocalStaticRTP
	mids map[string]int // slot index by a=mid

	// The microphone's RTP numbering (guarded by Line.mu).
	seq   uint16
	ts    uint32
	last  time.Time
	lastN int
}

// Dial connects the device's media to its server and keeps it up until
// Close: a connection that fails is made again, with backoff.
func Dial(ctx context.Context, c *client.Client, o Options) (*Line, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FailAfter <= 0 {
		o.FailAfter = 6 * time.Second
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Line{c: c, o: o, log: o.Logger, ctx: lctx, cancel: cancel, up: make(chan struct{}), ringing: map[string]api.Call{}}
	cn, err := l.connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	l.mu.Lock()
	l.conn = cn
	close(l.up)
	l.mu.Unlock()
	if c != nil {
		c.SetProber(l) // this device can measure a line check's media path
	}
	go l.keepWarm()
	return l, nil
}

// warmEvery is how often a line uses its HTTPS connection when nothing
// else does: more often than idle connections are closed (90 s by the
// client, 2 minutes by the server), so that placing or answering a call
// never waits for a new TCP and TLS handshake, nor for a new session.
const warmEvery = 45 * time.Second

// keepWarm asks which calls ring on this device every warmEvery, which
// keeps the signalling path as warm as the media one, and catches rings
// the event stream missed.
func (l *Line) keepWarm() {
	t := time.NewTicker(warmEvery)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
			if err := l.Refresh(ctx); err != nil && l.ctx.Err() == nil {
				l.log.Debug("keep the signalling connection warm", "err", err)
			}
			cancel()
		}
	}
}

// connect makes a PeerConnection, sends its offer and waits until it is
// connected.
func (l *Line) connect(ctx context.Context) (*conn, error) {
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	if l.o.IPFilter != nil {
		se.SetIPFilter(l.o.IPFilter)
	}
	nt := l.o.NetworkTypes
	if nt == nil {
		nt = []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6}
	}
	se.SetNetworkTypes(nt)
	// A warm line notices a dead path within seconds, not pion's default
	// 25, and comes back on its own: a keep-alive every second, failed
	// after FailAfter without an answer.
	se.SetICETimeouts(l.o.FailAfter/2, l.o.FailAfter/2, time.Second) // disconnected, then failed as long again
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(opusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// RTCP sender and receiver reports: the server measures loss, jitter
	// and round trips from them.
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir)).
		NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			pc.Close()
		}
	}()
	cn := &conn{pc: pc, mids: map[string]int{}, seq: uint16(randUint32()), ts: randUint32()}
	if cn.mic, err = webrtc.NewTrackLocalStaticRTP(opusCodec.RTPCodecCapability, "mic", "hotline"); err != nil {
		return nil, err
	}
	if _, err := pc.AddTransceiverFromTrack(cn.mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		return nil, err
	}
	var recvs []*webrtc.RTPTransceiver
	for range sfu.Slots {
		tr, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			return nil, err
		}
		recvs = append(recvs, tr)
	}
	// RTCP is read from every sender and receiver: pion's report
	// interceptors see the server's sender reports only as they are read,
	// and the receiver reports that carry them back give the round trip.
	for _, t := range pc.GetTransceivers() {
		if snd := t.Sender(); snd != nil {
			go drainRTCP(snd.ReadRTCP)
		}
		if rcv := t.Receiver(); rcv != nil {
			go drainRTCP(rcv.ReadRTCP)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		slot := -1
		for i, t := range recvs {
			if t.Receiver() == r {
				slot = i
			}
		}
		go l.receive(cn, slot, tr)
	})
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			l.lost(cn, st)
		}
	})
	if err := offerGathered(ctx, pc, nil); err != nil {
		return nil, err
	}
	var ans api.MediaAnswer
	if err := l.c.Do(ctx, "POST", "/v1/media", api.MediaOffer{Offer: pc.LocalDescription().SDP}, &ans); err != nil {
		return nil, fmt.Errorf("media offer: %w", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.Answer}); err != nil {
		return nil, fmt.Errorf("media answer: %w", err)
	}
	for i, t := range recvs {
		cn.mids[t.Mid()] = i
	}
	select {
	case <-connected:
	case <-ctx.Done():
		return nil, fmt.Errorf("media connection: %w", ctx.Err())
	}
	ok = true
	return cn, nil
}

// lost starts making the line's connection again after cn failed.
func (l *Line) lost(cn *conn, st webrtc.PeerConnectionState) {
	l.mu.Lock()
	if l.closed || l.conn != cn {
		l.mu.Unlock()
		return
	}
	l.conn = nil
	l.up = make(chan struct{})
	l.mu.Unlock()
	l.log.Warn("media connection lost; reconnecting", "state", st.String())
	if l.o.OnLine != nil {
		l.o.OnLine(false, fmt.Errorf("media connection %s", st))
	}
	if st != webrtc.PeerConnectionStateFailed {
		go cn.pc.Close()
		go l.redial()
		return
	}
	// The path failed (the device changed networks, say) but the
	// connection may still be good: restart ICE on it first, which keeps
	// DTLS and the SRTP keys; make a new connection only if that fails.
	go l.restart(cn)
}

// restart restarts ICE on cn, offering again until the network is back
// (each new offer has new ICE credentials), for as long as the server
// keeps a call of a device whose media is down (sfu.DefaultDropAfter);
// failing that it makes a new connection.
func (l *Line) restart(cn *conn) {
	var err error
	for deadline := time.Now().Add(restartFor); l.ctx.Err() == nil && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(l.ctx, 3*time.Second)
		err = l.restartICE(ctx, cn)
		cancel()
		if err == nil || errors.Is(err, errNewConnection) {
			break
		}
		select {
		case <-l.ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err == nil {
		l.back(cn, &l.restarts, "media connection back after an ICE restart")
		return
	}
	l.log.Warn("ICE restart failed; connecting again", "err", err)
	cn.pc.Close()
	l.redial()
}

// back makes cn the line's connection again, counting it in n, unless the
// line closed meanwhile.
func (l *Line) back(cn *conn, n *int, msg string) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		cn.pc.Close()
		return
	}
	l.conn = cn
	*n++
	close(l.up)
	l.mu.Unlock()
	l.log.Info(msg)
	if l.o.OnLine != nil {
		l.o.OnLine(true, nil)
	}
}

// offerGathered makes an offer, sets it as pc's local description and
// waits until every candidate is gathered (the server takes one offer,
// with no trickling).
func offerGathered(ctx context.Context, pc *webrtc.PeerConnection, o *webrtc.OfferOptions) error {
	offer, err := pc.CreateOffer(o)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restartFor bounds the ICE restart attempts after a failure.
const restartFor = 10 * time.Second

// errNewConnection: the server no longer knows the connection.
var errNewConnection = errors.New("the server answered with a new connection")

// restartICE restarts ICE on cn with the server: a new offer with new ICE
// credentials, on the same session, which the server renegotiates. A
// server that no longer knows the session (it restarted) answers with a
// new connection of its own, a new DTLS certificate: then this fails at
// once, and the line connects anew.
func (l *Line) restartICE(ctx context.Context, cn *conn) error {
	before := cn.pc.RemoteDescription()
	// An earlier attempt's offer that got no answer is offered again.
	if cn.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		if err := offerGathered(ctx, cn.pc, &webrtc.OfferOptions{ICERestart: true}); err != nil {
			return err
		}
	}
	var ans api.MediaAnswer
	if err := l.c.Do(ctx, "POST", "/v1/media", api.MediaOffer{Offer: cn.pc.LocalDescription().SDP}, &ans); err != nil {
		return fmt.Errorf("media offer: %w", err)
	}
	if before == nil || fingerprint(before.SDP) != fingerprint(ans.Answer) {
		return errNewConnection
	}
	if err := cn.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.Answer}); err != nil {
		return fmt.Errorf("media answer: %w", err)
	}
	for cn.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ICE restart: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// fingerprint returns the first a=fingerprint line of an SDP.
func fingerprint(sdp string) string {
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=fingerprint:") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// redial connects again until it succeeds or the line closes.
func (l *Line) redial() {
	backoff := 100 * time.Millisecond
	for l.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(l.ctx, 15*time.Second)
		cn, err := l.connect(ctx)
		cancel()
		if err == nil {
			l.back(cn, &l.redials, "media connection made again")
			return
		}
		if apierr.Is(err, apierr.DeviceRevoked) || apierr.Is(err, apierr.UserDisabled) {
			l.log.Warn("media: this device may no longer connect", "err", err)
			l.mu.Lock()
			call := l.call
			l.mu.Unlock()
			if call != nil {
				call.end("revoked")
			}
			if l.o.OnLine != nil {
				l.o.OnLine(false, err)
			}
			return
		}
		l.log.Warn("media reconnect", "err", err)
		select {
		case <-l.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Reconnects counts the times the connection was made again.
func (l *Line) Reconnects() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.redials
}

// ICERestarts counts the times the connection came back by an ICE
// restart.
func (l *Line) ICERestarts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.restarts
}

// Up waits until the line's connection is up (at once if it is).
func (l *Line) Up(ctx context.Context) error {
	l.mu.Lock()
	up, closed := l.up, l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close hangs up any call and closes the connection.
func (l *Line) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	cn, call := l.conn, l.call
	l.mu.Unlock()
	if l.c != nil {
		l.c.DropProber(l)
	}
	if call != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		call.Hangup(ctx)
		cancel()
	}
	l.cancel()
	if cn != nil {
		return cn.pc.Close()
	}
	return nil
}

// receive reads a slot's RTP until the connection ends.
func (l *Line) receive(cn *conn, slot int, tr *webrtc.TrackRemote) {
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if l.o.Tap != nil {
			l.o.Tap(slot, append([]byte(nil), pkt.Payload...))
		}
		now := time.Now()
		l.mu.Lock()
		call, probe := l.call, l.probe
		if call == nil && probe == nil {
			l.keepIdleLocked(pkt, now)
		}
		l.mu.Unlock()
		switch {
		case call != nil:
			call.received(slot, pkt)
		case probe != nil:
			probe.received(pkt, now)
		}
	}
}

// drainRTCP reads RTCP until the connection closes.
func drainRTCP(read func() ([]rtcp.Packet, interceptor.Attributes, error)) {
	for {
		if _, _, err := read(); err != nil {
			return
		}
	}
}

// send writes one RTP packet of the microphone: payload, of samples 48 kHz
// samples. Sequence numbers and timestamps run on across calls for as
// long as the connection lasts (one SSRC): the SRTP receiver at the
// server tells replays by them, and a jump back would look like one. The
// timestamp also advances by the time that passed between calls.
func (l *Line) send(payload []byte, samples int) error {
	l.mu.Lock()
	cn := l.conn
	if cn == nil {
		l.mu.Unlock()
		return errNeedConnect
	}
	now := time.Now()
	if !cn.last.IsZero() {
		step := uint32(cn.lastN)
		if gap := now.Sub(cn.last); gap > 200*time.Millisecond {
			step = max(step, uint32(gap*48000/time.Second))
		}
		cn.seq++
		cn.ts += step
	}
	cn.last, cn.lastN = now, samples
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: uint8(opusCodec.PayloadType), SequenceNumber: cn.seq, Timestamp: cn.ts}, Payload: payload}
	l.mu.Unlock()
	return cn.mic.WriteRTP(pkt)
}

// Handle acts on a message of the device's event stream; the application
// passes every one it reads (client.Events) here.
func (l *Line) Handle(m api.StreamMessage) {
	switch {
	case m.Type == api.StreamNotice && m.Kind == api.NoticeCallQuality:
		var q api.CallQuality
		if json.Unmarshal([]byte(m.Data), &q) == nil {
			l.mu.Lock()
			call := l.call
			l.mu.Unlock()
			if call != nil {
				call.mu.Lock()
				if call.id == q.Call {
					call.quality = q
				}
				call.mu.Unlock()
			}
		}
		return
	case m.Type == api.StreamNotice && m.Kind == api.NoticeCallSlots:
		var s api.CallSlots
		if json.Unmarshal([]byte(m.Data), &s) == nil {
			l.mu.Lock()
			l.slots = s
			l.mu.Unlock()
		}
		return
	case m.Type != api.StreamEvent:
		return
	}
	switch m.Event {
	case client.EventCallRing, client.EventCallUpdate, client.EventCallElsewhere, client.EventCallEnded:
	default:
		return
	}
	var v api.Call
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		l.log.Warn("malformed call event", "event", m.Event, "err", err)
		return
	}
	l.mu.Lock()
	switch m.Event {
	case client.EventCallRing:
		// Rung into a call that is ringing, or one already under way (the
		// desk connecting the principal).
		self := ""
		if l.c != nil {
			self = l.c.Profile().Device
		}
		if v.State == "ringing" || v.State == "active" && self != "" &&
			slices.ContainsFunc(v.Participants, func(p api.CallParticipant) bool { return p.Device == self && p.State == "ringing" }) {
			l.ringing[v.ID] = v
		}
	case client.EventCallElsewhere, client.EventCallEnded:
		delete(l.ringing, v.ID)
	}
	call := l.call
	l.mu.Unlock()
	if call != nil {
		call.event(m.Event, v)
	}
	if l.o.OnCall != nil {
		l.o.OnCall(m.Event, v)
	}
}

// Slots returns who the device hears on which slot, as the server last
// said.
func (l *Line) Slots() api.CallSlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slots
}

// Refresh asks the server which calls ring on this device: Ringing then
// holds those, including any that rang while nothing listened, and no
// longer any whose end the stream missed.
func (l *Line) Refresh(ctx context.Context) error {
	vs, err := l.c.Calls(ctx)
	if err != nil {
		return err
	}
	self := l.c.Profile().Device
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.ringing)
	for _, v := range vs {
		for _, p := range v.Participants {
			if p.Device == self && p.State == "ringing" && v.State != "ended" {
				l.ringing[v.ID] = v
			}
		}
	}
	return nil
}

// Ringing returns the calls ringing on this device.
func (l *Line) Ringing() []api.Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]api.Call, 0, len(l.ringing))
	for _, v := range l.ringing {
		out = append(out, v)
	}
	return out
}

// Place rings the other members of conversation conv and returns the call,
// sending at once: what is sent before anyone answers is dropped by the
// server, except the last frame, which a device that answers within a
// frame of it hears first (sfu.Config.PreRoll).
func (l *Line) Place(ctx context.Context, conv string) (*Call, error) {
	call, err := l.begin(conv)
	if err != nil {
		return nil, err
	}
	v, err := l.c.PlaceCall(ctx, conv)
	if err != nil {
		l.finish(call)
		return nil, err
	}
	call.started(v)
	return call, nil
}

// Answer accepts a call ringing on this device (see Ringing, Options.OnCall).
func (l *Line) Answer(ctx context.Context, id string) (*Call, error) {
	return l.enter(ctx, id, l.c.AcceptCall)
}

// Join joins a call going on in one of the device's conversations.
func (l *Line) Join(ctx context.Context, id string) (*Call, error) {
	return l.enter(ctx, id, l.c.JoinCall)
}

func (l *Line) enter(ctx context.Context, id string, do func(context.Context, string) (api.Call, error)) (*Call, error) {
	l.mu.Lock()
	v, ok := l.ringing[id]
	l.mu.Unlock()
	if !ok {
		var err error
		if v, err = l.c.GetCall(ctx, id); err != nil {
			return nil, err
		}
	}
	call, err := l.begin(v.Conversation)
	if err != nil {
		return nil, err
	}
	v, err = do(ctx, id)
	if err != nil {
		l.finish(call)
		return nil, err
	}
	l.mu.Lock()
	delete(l.ringing, id)
	l.mu.Unlock()
	call.started(v)
	// A new participant: the group moves to a new epoch, so media keys
	// rotate (the commit is this device's, so it is not held up).
	go call.rotate()
	return call, nil
}

// begin makes the line's call for conversation conv, keyed from its
// group's current epoch.
func (l *Line) begin(conv string) (*Call, error) {
	call, err := newCall(l, conv)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		call.stop()
		return nil, ErrClosed
	case l.call != nil:
		call.stop()
		return nil, ErrBusy
	}
	l.call = call
	return call, nil
}

// finish forgets call, if it is the line's.
func (l *Line) finish(call *Call) {
	call.stop()
	l.mu.Lock()
	if l.call == call {
		l.call = nil
	}
	l.mu.Unlock()
}

// Current returns the line's call, or nil.
func (l *Line) Current() *Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.call
}

// opusCodec is the one codec of every section: Opus, 48 kHz, payload type
// 111, as the server's forwarder answers it.
var opusCodec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
	PayloadType:        111,
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
