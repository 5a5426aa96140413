package server_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/sfu"
)

// mediaPeer is a device's warm media connection, as a headless client
// will make it: one sending audio section and sfu.Slots receiving ones.
type mediaPeer struct {
	pc   *webrtc.PeerConnection
	mic  *webrtc.TrackLocalStaticRTP
	mu   sync.Mutex
	got  [][]byte // payloads received on any slot
	name string
}

func newMediaPeer(t *testing.T, e *env, c *client.Client, name string) *mediaPeer {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}
	if err := me.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).
		NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &mediaPeer{pc: pc, name: name}
	if p.mic, err = webrtc.NewTrackLocalStaticRTP(opus.RTPCodecCapability, "mic", name); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(p.mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	for range sfu.Slots {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.got = append(p.got, pkt.Payload)
			p.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	var ans api.MediaAnswer
	if err := c.Do(t.Context(), "POST", "/v1/media", api.MediaOffer{Offer: pc.LocalDescription().SDP}, &ans); err != nil {
		t.Fatalf("%s media: %v", name, err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.Answer}); err != nil {
		t.Fatal(err)
	}
	eventually(t, name+"'s media connection", func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	return p
}

// heard reports whether p received payload.
func (p *mediaPeer) heard(payload []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.got {
		if bytes.Equal(g, payload) {
			return true
		}
	}
	return false
}

// The warm line carries a call: both devices connect their media first;
// once the call is answered the server forwards each one's packets to the
// other, payloads untouched, and stops when the call ends. (Media does not
// touch the database: SQLite only.)
func TestCallMedia(t *testing.T) {
	e, _, alice, bob, conv := twoMembers(t)
	ctx := t.Context()
	pa, pb := newMediaPeer(t, e, alice.Client, "alice"), newMediaPeer(t, e, bob.Client, "bob")
	var bad api.MediaAnswer
	if err := alice.Do(ctx, "POST", "/v1/media", api.MediaOffer{Offer: "v=0\r\n"}, &bad); err == nil {
		t.Error("a malformed offer was answered")
	}
	v, err := placeCall(t, alice.Client, conv)
	if err != nil {
		t.Fatal(err)
	}
	callDo(t, bob.Client, "accept", v.ID)
	var seq uint16
	sendUntil := func(from, to *mediaPeer, payload []byte) {
		t.Helper()
		eventually(t, to.name+" to hear "+from.name, func() bool {
			seq++
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: payload}
			if err := from.mic.WriteRTP(pkt); err != nil {
				t.Fatal(err)
			}
			return to.heard(payload)
		})
	}
	sendUntil(pa, pb, []byte("frame from alice, opaque to the server"))
	sendUntil(pb, pa, []byte("frame from bob, opaque to the server"))
	callDo(t, bob.Client, "leave", v.ID)
	// After the call, nothing more is forwarded.
	after := []byte("after the call")
	for i := range 20 {
		pa.mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq + uint16(i) + 1}, Payload: after})
		time.Sleep(10 * time.Millisecond)
	}
	if pb.heard(after) {
		t.Error("media forwarded after the call ended")
	}
}
