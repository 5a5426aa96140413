package sfu

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
)

// TestFastPath checks the fast path through the SFU's real interface:
// three pion devices in a call hear each other byte for byte and in
// order whichever way the SFU forwards, and the fast path carries the
// microphones once their keys are verified; with keys that are wrong, or
// with the fast path off, pion carries everything and nothing is lost.
func TestFastPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		spoil   bool
		seqBase uint16 // the devices' first sequence number
		late    bool   // dev2 starts sending once it has heard the others' sequence numbers wrap
		fast    bool   // the fast path should carry the packets
	}{
		{name: "fast", fast: true},
		// The slots' sequence numbers wrap a few packets in, around when
		// the fast path takes over from pion: the SRTP rollover count
		// carries over.
		{name: "wrap", seqBase: 65530, fast: true},
		// dev2 is sent the others' packets by pion, across the wrap,
		// before its own microphone verifies its keys; then the fast
		// path carries on from pion's rollover count.
		{name: "wrap-then-fast", seqBase: 65500, late: true, fast: true},
		{name: "pion-path", cfg: Config{PionPath: true}},
		{name: "wrong-keys", spoil: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			log := newSlotLog()
			s := newSFU(t, tc.cfg, log)
			if tc.spoil {
				s.spoilKeys = func(h *handshakeLog) {
					h.mu.Lock()
					if len(h.master) > 0 {
						h.master[0] ^= 1
					}
					h.mu.Unlock()
				}
			}
			var clients []*client
			for _, id := range []string{"dev0", "dev1", "dev2"} {
				clients = append(clients, newClient(t, id, clientOpts{seqBase: tc.seqBase}))
			}
			inCall(ctx, t, s, log, clients...)
			for _, c := range clients {
				if tc.late && c.id == "dev2" {
					waitFor(ctx, t, "dev2 to hear past the wrap", func() bool { return c.count("dev0") > 60 && c.count("dev1") > 60 })
					s.mu.Lock()
					p := s.peers["dev2"]
					s.mu.Unlock()
					if p.verified.Load() {
						t.Fatal("dev2's fast path verified before it sent anything")
					}
				}
				c.send(1000)
			}
			flowing(ctx, t, 100, clients...)
			for _, c := range clients {
				c.stopSending()
			}
			var in, sent uint64
			for _, c := range clients {
				c.check()
				st, err := s.Stats(c.id)
				if err != nil {
					t.Fatal(err)
				}
				in += st.PacketsIn
				sent += uint64(c.sent.Load())
			}
			fastIn, fastOut := s.fastIn.Load(), s.fastOut.Load()
			t.Logf("%d packets sent, %d received by the SFU, %d of them on the fast path; %d written on it", sent, in, fastIn, fastOut)
			if !tc.fast {
				if fastIn != 0 || fastOut != 0 {
					t.Errorf("fast path carried %d packets in and %d out, want none", fastIn, fastOut)
				}
				return
			}
			// pion takes each microphone's first packets, until it knows
			// the stream and the keys are verified on one of them: a
			// handful, not a tenth.
			if fastIn < in*9/10 {
				t.Errorf("fast path carried %d of %d packets received, want at least 90 %%", fastIn, in)
			}
			if !tc.late && fastOut < 2*fastIn*9/10 {
				t.Errorf("fast path wrote %d packets for %d received in a 3-party call, want about twice as many", fastOut, fastIn)
			}
		})
	}
}

// TestHandshakeKeys checks the keys the SFU derives from what it sees of
// a DTLS handshake (its ServerHello, pion's key log) against the keys
// pion's DTLS exports for the same connection, for each SRTP profile the
// SFU accepts and both kinds of cipher suite hash.
func TestHandshakeKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile dtls.SRTPProtectionProfile
		suite   dtls.CipherSuiteID
	}{
		{"aes128gcm-sha256", dtls.SRTP_AEAD_AES_128_GCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"aes256gcm-sha384", dtls.SRTP_AEAD_AES_256_GCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{"cm-sha1-80", dtls.SRTP_AES128_CM_HMAC_SHA1_80, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hs handshakeLog
			server, client := dtlsPair(t, &hs, tc.profile, tc.suite)
			want := srtp.Config{Profile: srtp.ProtectionProfile(tc.profile)}
			st, ok := server.ConnectionState()
			if !ok {
				t.Fatal("no connection state")
			}
			if err := want.ExtractSessionKeysFromDTLS(&st, false); err != nil {
				t.Fatal(err)
			}
			recv, send := hs.keys()
			if recv == nil {
				t.Fatal("no keys derived from the handshake")
			}
			// The client's view of the same keys encrypts what the SFU's
			// derived keys must decrypt, both ways.
			cst, _ := client.ConnectionState()
			var cc srtp.Config
			cc.Profile = want.Profile
			if err := cc.ExtractSessionKeysFromDTLS(&cst, true); err != nil {
				t.Fatal(err)
			}
			clientSend, err := srtp.CreateContext(cc.Keys.LocalMasterKey, cc.Keys.LocalMasterSalt, cc.Profile)
			if err != nil {
				t.Fatal(err)
			}
			clientRecv, err := srtp.CreateContext(cc.Keys.RemoteMasterKey, cc.Keys.RemoteMasterSalt, cc.Profile)
			if err != nil {
				t.Fatal(err)
			}
			plain := []byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 'h', 'e', 'l', 'l', 'o'}
			roundTrip(t, "device to SFU", clientSend, recv, plain)
			roundTrip(t, "SFU to device", send, clientRecv, plain)
			if hs.master != nil {
				t.Error("the master secret is kept after the keys are derived")
			}
		})
	}
}

func roundTrip(t *testing.T, what string, enc, dec *srtp.Context, plain []byte) {
	t.Helper()
	ct, err := enc.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dec.DecryptRTP(nil, ct, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("%s: decrypted %x, want %x", what, got, plain)
	}
}

// dtlsPair runs a DTLS handshake on loopback with the server's hook and
// key log going to hs, as the SFU's do.
func dtlsPair(t *testing.T, hs *handshakeLog, profile dtls.SRTPProtectionProfile, suite dtls.CipherSuiteID) (server, client *dtls.Conn) {
	t.Helper()
	cert := selfSigned(t)
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	server, err = dtls.ServerWithOptions(sc, cc.LocalAddr(),
		dtls.WithCertificates(cert),
		dtls.WithSRTPProtectionProfiles(profile),
		dtls.WithCipherSuites(suite),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithKeyLogWriter(hs),
		dtls.WithServerHelloMessageHook(hs.serverHello),
	)
	if err != nil {
		t.Fatal(err)
	}
	client, err = dtls.ClientWithOptions(cc, sc.LocalAddr(),
		dtls.WithCertificates(cert),
		dtls.WithSRTPProtectionProfiles(profile),
		dtls.WithCipherSuites(suite),
		dtls.WithInsecureSkipVerify(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	errs := make(chan error, 1)
	go func() { errs <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return server, client
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestIsRTP checks the demultiplexing rule on the first two bytes.
func TestIsRTP(t *testing.T) {
	pkt := func(b0, b1 byte) []byte { return append([]byte{b0, b1}, make([]byte, 10)...) }
	for _, tc := range []struct {
		pkt  []byte
		want bool
	}{
		{pkt(0x80, 111), true},
		{pkt(0x80, 111|0x80), true}, // marker set: 239
		{pkt(0x80, 200), false},     // RTCP sender report
		{pkt(0x81, 201), false},     // RTCP receiver report
		{pkt(0x00, 0x01), false},    // STUN binding request
		{pkt(22, 0xfe), false},      // DTLS handshake
		{pkt(0x80, 111)[:11], false},
		{nil, false},
	} {
		if got := isRTP(tc.pkt); got != tc.want {
			t.Errorf("isRTP(% x) = %v, want %v", tc.pkt, got, tc.want)
		}
	}
}

// FuzzKeyLog feeds the key-log parser anything: it never panics, and
// keys come only from a whole, well-formed handshake.
func FuzzKeyLog(f *testing.F) {
	f.Add([]byte("CLIENT_RANDOM " + strings.Repeat("ab", 32) + " " + strings.Repeat("cd", 48) + "\n"))
	f.Add([]byte("CLIENT_RANDOM zz 00\n"))
	f.Add([]byte("CLIENT_RANDOM\n\n\nSERVER_RANDOM 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h handshakeLog
		if n, err := h.Write(b); n != len(b) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		// No ServerHello was seen: no keys, whatever the log said.
		if recv, send := h.keys(); recv != nil || send != nil {
			t.Fatal("keys without a ServerHello")
		}
	})
}

// TestTakeMalformed sends a verified fast line packets that are not
// authentic SRTP from its microphone: each is dropped or left to pion,
// never forwarded, and the microphone's stream state is unchanged.
func TestTakeMalformed(t *testing.T) {
	s, p, from := fastLineForTest(t)
	mic := []byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0x30, 0x39} // SSRC 12345
	for _, tc := range []struct {
		name string
		pkt  []byte
		took bool
	}{
		{"empty", nil, false},
		{"short", mic[:11], false},
		{"stun", append([]byte{0, 1, 0, 0}, make([]byte, 16)...), false},
		{"rtcp", []byte{0x80, 200, 0, 6, 0, 0, 0x30, 0x39, 0, 0, 0, 0}, false},
		{"other stream", []byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9}, false},
		{"header only", mic, true},
		{"forged", append(append([]byte{}, mic...), make([]byte, 40)...), true},
	} {
		pkt := append([]byte(nil), tc.pkt...)
		if took := s.take(pkt, from); took != tc.took {
			t.Errorf("%s: take = %v, want %v", tc.name, took, tc.took)
		}
	}
	if in := micPackets(p); in != 0 {
		t.Errorf("%d malformed packets counted as the microphone's", in)
	}
}

// FuzzTake feeds a verified fast line anything: it never panics, and
// nothing unauthentic reaches the microphone's stream.
func FuzzTake(f *testing.F) {
	f.Add([]byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0x30, 0x39, 1, 2, 3})
	f.Add([]byte{0x80, 200, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, p, from := fastLineForTest(t)
		s.take(b, from)
		if in := micPackets(p); in != 0 {
			t.Fatalf("an unauthentic packet counted as the microphone's")
		}
	})
}

// fastLineForTest makes an SFU value with one peer whose fast path is
// verified, on random keys, for microphone SSRC 12345 at from.
func fastLineForTest(t *testing.T) (*SFU, *peer, netip.AddrPort) {
	t.Helper()
	key, salt := make([]byte, 16), make([]byte, 12)
	rand.Read(key)
	rand.Read(salt)
	recv, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(64))
	if err != nil {
		t.Fatal(err)
	}
	s := &SFU{log: slog.New(slog.DiscardHandler)}
	p := &peer{s: s, device: "dev0", recv: recv}
	p.routes.Store(&[]*outSlot{})
	p.micStream.Store(&micStream{ssrc: 12345, pt: 111})
	p.verified.Store(true)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	s.lines.Store(&fastLines{from: {p: p, addr: from}})
	return s, p, from
}

// micPackets is how many packets of the microphone the peer received.
func micPackets(p *peer) uint64 {
	p.micIn.mu.Lock()
	defer p.micIn.mu.Unlock()
	return p.micIn.packets
}
