package sfu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// opus is the one codec: Opus, 48 kHz, 2 channels, payload type 111.
var opus = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	},
	PayloadType: 111,
}

// A peer is one device's connection.
type peer struct {
	s       *SFU
	device  string
	pc      *webrtc.PeerConnection
	session uint64        // the offer's o= session ID: the same for a renegotiation
	mic     string        // mid of the sending section
	mids    [Slots]string // mids of the receiving sections
	micT    *webrtc.RTPTransceiver
	outs    [Slots]*outSlot
	created time.Time
	done    chan struct{} // closed by close
	closing sync.Once

	neg    sync.Mutex                 // serialises renegotiations
	routes atomic.Pointer[[]*outSlot] // where the microphone's packets go
	micIn  recvStats                  // the microphone's stream as received
	last   lastPacket                 // the microphone's newest packet, for a slot that starts carrying it

	bufMu sync.Mutex               // guards bufs
	bufs  map[uint32]*streamBuffer // the buffers of the incoming RTP streams, by SSRC

	// The fast path (fast.go).
	hs         handshakeLog              // what the SFU saw of its DTLS handshake
	micStream  atomic.Pointer[micStream] // the microphone's stream, once pion knows it
	line       atomic.Pointer[fastLine]  // nil: none (yet)
	verified   atomic.Bool               // the derived keys decrypted the microphone
	lineMu     sync.Mutex                // guards lineClosed, and serialises changes to line
	lineClosed bool                      // the connection is closing: no more lines
	// The derived keys: set once, under lineMu, before the first line is
	// stored, and read only through a line. recv is used by the socket's
	// reading goroutine alone; send has its own lock.
	recv *srtp.Context
	send *sendKeys

	// Guarded by s.mu.
	up        bool      // connected now
	everUp    bool      // connected at least once
	ended     bool      // failed or closed: it will not come up again
	downSince time.Time // when it last went down, if it did
}

// deadlineLocked returns when a peer that is down is dropped: DropAfter
// after it went down, or, while it is still coming up for the first
// time, DropAfter (at least connectGrace) after it was made. s.mu must be
// held.
func (p *peer) deadlineLocked() time.Time {
	if !p.everUp && !p.ended {
		return p.created.Add(max(p.s.cfg.DropAfter, connectGrace))
	}
	return p.downSince.Add(p.s.cfg.DropAfter)
}

// An offer is what the SFU needs of a device's offer.
type offer struct {
	session uint64
	mic     string
	mids    [Slots]string
}

// parseOffer checks that an offer fits the warm line: only audio
// sections, each with Opus; exactly one that sends (sendonly or
// sendrecv) and Slots that only receive.
func parseOffer(s string) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOffer, err)
	}
	o := &offer{session: sd.Origin.SessionID}
	sessionDir := direction(sd.Attributes, "sendrecv")
	n := 0
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			return nil, fmt.Errorf("%w: section %d is %s, want audio", ErrOffer, i, md.MediaName.Media)
		}
		mid, _ := md.Attribute("mid")
		if mid == "" {
			return nil, fmt.Errorf("%w: section %d has no mid", ErrOffer, i)
		}
		if md.MediaName.Port.Value == 0 {
			return nil, fmt.Errorf("%w: section %s is rejected (port 0)", ErrOffer, mid)
		}
		if !hasOpus(md) {
			return nil, fmt.Errorf("%w: section %s has no opus/48000/2", ErrOffer, mid)
		}
		switch dir := direction(md.Attributes, sessionDir); dir {
		case "sendrecv", "sendonly":
			if o.mic != "" {
				return nil, fmt.Errorf("%w: sections %s and %s both send; want one", ErrOffer, o.mic, mid)
			}
			o.mic = mid
		case "recvonly":
			if n == Slots {
				return nil, fmt.Errorf("%w: more than %d receiving sections", ErrOffer, Slots)
			}
			o.mids[n] = mid
			n++
		default:
			return nil, fmt.Errorf("%w: section %s is %s", ErrOffer, mid, dir)
		}
	}
	if o.mic == "" {
		return nil, fmt.Errorf("%w: no sending section", ErrOffer)
	}
	if n != Slots {
		return nil, fmt.Errorf("%w: %d receiving sections, want %d", ErrOffer, n, Slots)
	}
	return o, nil
}

func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

func hasOpus(md *sdp.MediaDescription) bool {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		_, enc, _ := strings.Cut(a.Value, " ")
		if strings.EqualFold(enc, "opus/48000/2") {
			return true
		}
	}
	return false
}

// Connect answers a device's offer and returns the answer. The offer must
// declare the warm line (see the package documentation); its candidates
// must be complete (no trickle ICE), and so are the answer's.
//
// An offer from the session of the device's current connection (the same
// o= session ID) renegotiates that connection; this is how a device
// restarts ICE. Any other offer makes a new connection, which replaces the
// device's current one, if any, and takes its place in its call: the
// device keeps its slots (OnSlots reports them again, with the new mids).
//
// ctx bounds the negotiation, not the connection.
func (s *SFU) Connect(ctx context.Context, device, offerSDP string) (answerSDP string, err error) {
	if device == "" {
		return "", errors.New("sfu: connect: empty device")
	}
	o, err := parseOffer(offerSDP)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	old := s.peers[device]
	s.mu.Unlock()
	if old != nil && old.session == o.session {
		if old.mic != o.mic || old.mids != o.mids {
			return "", fmt.Errorf("%w: a renegotiation may not change the sections", ErrOffer)
		}
		answer, err := old.negotiate(ctx, offerSDP)
		if err != nil {
			return "", fmt.Errorf("sfu: renegotiate device %s: %w", device, err)
		}
		return answer, nil
	}

	p, err := s.newPeer(device, o)
	if err != nil {
		return "", fmt.Errorf("sfu: connect device %s: %w", device, err)
	}
	answer, err := p.negotiate(ctx, offerSDP)
	if err != nil {
		p.close()
		return "", fmt.Errorf("sfu: connect device %s: %w", device, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.close()
		return "", ErrClosed
	}
	for _, o := range p.outs {
		s.goLocked(o.readRTCP)
	}
	s.goLocked(p.sendReports)
	old = s.peers[device]
	s.peers[device] = p
	if c := s.member[device]; c != nil {
		if old != nil {
			old.routes.Store(&[]*outSlot{})
		}
		s.routeLocked(c, "")
		s.reportLocked(c.name, device)
	}
	s.mu.Unlock()
	s.wakeReaper()
	if old != nil {
		old.close()
	}
	s.log.Debug("connected", "device", device, "replaced", old != nil)
	return answer, nil
}

// newPeer makes a device's PeerConnection, with a sender on each slot.
func (s *SFU) newPeer(device string, o *offer) (*peer, error) {
	p := &peer{s: s, device: device, session: o.session, mic: o.mic, mids: o.mids,
		created: time.Now(), done: make(chan struct{}), bufs: make(map[uint32]*streamBuffer)}
	p.routes.Store(&[]*outSlot{})

	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// The mid header extension lets pion find the microphone's stream
	// when the offer does not declare its SSRC.
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// No interceptors: the SFU keeps its own RTCP state and sends its own
	// reports (rtcp.go). NACK and TWCC are not offered: a lost audio packet
	// is better concealed than sent again late.
	ir := &interceptor.Registry{}
	se := s.se
	se.BufferFactory = p.newBuffer
	if !s.cfg.PionPath {
		se.SetDTLSKeyLogWriter(&p.hs)
		se.SetDTLSServerHelloMessageHook(p.hs.serverHello)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
	var err error
	p.pc, err = api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		// No RTP header encryption (RFC 9335): the fast path's SRTP
		// contexts do not do it.
		RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable,
	})
	if err != nil {
		return nil, err
	}
	p.pc.OnConnectionStateChange(p.stateChanged)
	p.pc.OnTrack(p.track)

	// The transceivers are made before the offer is applied, in the order
	// that pion matches them to the offer's sections (first free one of a
	// fitting direction): a receiving one for the microphone, which takes
	// the sending section, then a sending one per slot, which take the
	// receiving sections in order. negotiate checks the outcome.
	if p.micT, err = p.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		p.close()
		return nil, err
	}
	for k := range p.outs {
		id := fmt.Sprintf("slot%d", k)
		track, err := webrtc.NewTrackLocalStaticRTP(opus.RTPCodecCapability, id, "hotline-"+id)
		if err != nil {
			p.close()
			return nil, err
		}
		t, err := p.pc.AddTransceiverFromTrack(track,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			p.close()
			return nil, err
		}
		o := &outSlot{owner: p, track: track, t: t, sender: t.Sender()}
		if enc := o.sender.GetParameters().Encodings; len(enc) > 0 {
			o.ssrc = uint32(enc[0].SSRC)
		}
		p.outs[k] = o
	}
	p.micT.Receiver().Transport().ICETransport().OnSelectedCandidatePairChange(func(*webrtc.ICECandidatePair) {
		p.updateLine()
	})
	return p, nil
}

// negotiate answers an offer on the peer's connection.
func (p *peer) negotiate(ctx context.Context, offerSDP string) (string, error) {
	p.neg.Lock()
	defer p.neg.Unlock()
	pc := p.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", err
	}
	if p.micT.Mid() != p.mic {
		return "", fmt.Errorf("microphone on mid %q, want %q", p.micT.Mid(), p.mic)
	}
	for k, o := range p.outs {
		if o.t.Mid() != p.mids[k] {
			return "", fmt.Errorf("slot %d on mid %q, want %q", k, o.t.Mid(), p.mids[k])
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	for _, o := range p.outs {
		if c := o.sender.GetParameters().Codecs; len(c) > 0 {
			o.mu.Lock()
			o.pt = uint8(c[0].PayloadType)
			o.mu.Unlock()
		}
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

func (p *peer) close() {
	p.closing.Do(func() { close(p.done) })
	p.dropLine()
	if err := p.pc.Close(); err != nil {
		p.s.log.Debug("close connection", "device", p.device, "err", err)
	}
}

// stateChanged follows the connection's state for the reaper.
func (p *peer) stateChanged(st webrtc.PeerConnectionState) {
	s := p.s
	s.log.Debug("connection state", "device", p.device, "state", st.String())
	s.mu.Lock()
	switch st {
	case webrtc.PeerConnectionStateConnected:
		p.up, p.everUp = true, true
	case webrtc.PeerConnectionStateDisconnected:
		if p.up {
			p.up, p.downSince = false, time.Now()
		}
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		if p.up || !p.ended && !p.everUp {
			p.up, p.downSince = false, time.Now()
		}
		p.ended = true
	}
	s.mu.Unlock()
	s.wakeReaper()
	if st == webrtc.PeerConnectionStateConnected {
		p.updateLine()
	}
}

// track starts forwarding the microphone.
func (p *peer) track(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	if r != p.micT.Receiver() {
		p.s.log.Warn("track on a receiving section ignored", "device", p.device)
		return
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p.startForwardingLocked(t)
	s.goLocked(func() { p.readMicRTCP(r) })
}

// rtcpReader is an RTPSender or RTPReceiver.
type rtcpReader interface {
	Read([]byte) (int, interceptor.Attributes, error)
}

// wakeReaper tells the reaper that a connection went up or down.
func (s *SFU) wakeReaper() {
	select {
	case s.reap <- struct{}{}:
	default:
	}
}

// reaper drops the devices whose transport stayed down too long, until
// Close.
func (s *SFU) reaper() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(s.reapOnce(time.Now()))
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.reap:
		}
	}
}

// reapOnce drops the devices due and returns how long to wait for the
// next.
func (s *SFU) reapOnce(now time.Time) time.Duration {
	next := time.Hour
	var gone []*peer
	s.mu.Lock()
	for _, p := range s.peers {
		if p.up {
			continue
		}
		d := p.deadlineLocked()
		if now.Before(d) {
			next = min(next, d.Sub(now))
			continue
		}
		gone = append(gone, p)
	}
	for _, p := range gone {
		call := s.removeLocked(p.device)
		s.events.push(event{gone: true, device: p.device, call: call})
		s.log.Info("device dropped: transport down", "device", p.device, "call", call)
	}
	s.mu.Unlock()
	for _, p := range gone {
		p.close()
	}
	return next
}

// Disconnect closes the device's connection, if it has one, and takes the
// device out of its call.
func (s *SFU) Disconnect(device string) {
	s.mu.Lock()
	p := s.peers[device]
	if p == nil || s.closed {
		s.mu.Unlock()
		return
	}
	s.removeLocked(device)
	s.mu.Unlock()
	p.close()
}

// removeLocked takes a device out of its call and forgets its connection,
// and returns the call's name. s.mu must be held.
func (s *SFU) removeLocked(device string) (call string) {
	if c := s.member[device]; c != nil {
		call = c.name
		s.leaveLocked(c, device)
	}
	delete(s.peers, device)
	return call
}
