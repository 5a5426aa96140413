package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The fast path. pion's receive pipeline hands each packet across four
// goroutines (the UDP mux's reader, the ICE candidate's, the DTLS/SRTP
// demultiplexer's, the SRTP session's), and each hand-off is a wake-up:
// they were most of the SFU's CPU per forwarded packet (benchmarks.md,
// "SFU"). Once a device's connection is up over UDP, the SFU takes its
// microphone's packets off the socket on the mux's own reading goroutine
// instead, before pion sees them: it decrypts each in place with the
// connection's SRTP keys and writes it to the slots it is routed to, each
// encrypted under the receiving connection's keys and sent on the socket
// at once. Everything else (STUN, DTLS, RTCP, ICE-TCP, a connection not
// yet verified) goes through pion as before.
//
// pion does not hand out a connection's SRTP keys, so the SFU derives them
// as pion does (RFC 5764 4.2: the DTLS exporter, RFC 5705), from the
// handshake of its own side of the connection: the SFU is the DTLS server
// (a=setup:passive), sees its ServerHello (random, cipher suite, SRTP
// profile) through pion's hook, and is given the client random and master
// secret through pion's key log, which the SFU's writer parses in memory
// and never writes anywhere. The keys are trusted only after they decrypt
// one of the microphone's packets that pion also decrypts; until then,
// and if they never do, pion forwards as before.

// A handshakeLog collects what the SFU needs of its side of a connection's
// DTLS handshake to derive the SRTP keys.
type handshakeLog struct {
	mu           sync.Mutex
	clientRandom []byte
	master       []byte
	serverRandom []byte
	suite        uint16
	profile      srtp.ProtectionProfile
}

// Write takes pion's key log: lines "CLIENT_RANDOM <hex> <hex>".
func (h *handshakeLog) Write(b []byte) (int, error) {
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[0]) != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(string(f[1]))
		ms, err2 := hex.DecodeString(string(f[2]))
		if err1 != nil || err2 != nil {
			continue
		}
		h.mu.Lock()
		h.clientRandom, h.master = cr, ms
		h.mu.Unlock()
	}
	return len(b), nil
}

// serverHello notes the SFU's ServerHello and returns it unchanged.
func (h *handshakeLog) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	h.mu.Lock()
	h.serverRandom = r[:]
	if m.CipherSuiteID != nil {
		h.suite = *m.CipherSuiteID
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			h.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	h.mu.Unlock()
	return &m
}

// ExportKeyingMaterial is the TLS 1.2 exporter (RFC 5705), as pion's
// DTLS computes it for the connection.
func (h *handshakeLog) ExportKeyingMaterial(label string, _ []byte, length int) ([]byte, error) {
	seed := append([]byte(label), h.clientRandom...)
	seed = append(seed, h.serverRandom...)
	return prf.PHash(h.master, seed, length, suiteHash(h.suite))
}

// suiteHash is the PRF hash of a DTLS 1.2 cipher suite: SHA-384 for the
// AES-256-GCM suites, SHA-256 for the others pion offers.
func suiteHash(id uint16) func() hash.Hash {
	switch id {
	case 0xc02c, 0xc030: // TLS_ECDHE_{ECDSA,RSA}_WITH_AES_256_GCM_SHA384
		return sha512.New384
	}
	return sha256.New
}

// keys derives the connection's SRTP contexts, or returns nil if the
// handshake is not (or not wholly) known.
func (h *handshakeLog) keys() (recv, send *srtp.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.master) == 0 || len(h.clientRandom) != 32 || len(h.serverRandom) != 32 || h.profile == 0 {
		return nil, nil
	}
	cfg := srtp.Config{Profile: h.profile}
	if err := cfg.ExtractSessionKeysFromDTLS(h, false); err != nil {
		return nil, nil
	}
	clear(h.master) // no longer needed here
	h.master = nil
	recv, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, h.profile,
		srtp.SRTPReplayProtection(64))
	if err != nil {
		return nil, nil
	}
	send, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, h.profile)
	if err != nil {
		return nil, nil
	}
	return recv, send
}

// A fastLine is where a connection's fast path sends: the device's
// address, the selected pair's remote UDP candidate. The keys are the
// peer's (recv, send, verified), the same for every line it has.
type fastLine struct {
	p    *peer
	addr netip.AddrPort
	to   sockaddr // addr, as the system takes it

	// Scratch space of the socket's reading goroutine.
	hdr   rtp.Header
	pkt   rtp.Packet
	trial []byte
}

// sendKeys encrypt what the SFU sends a device on its fast path.
type sendKeys struct {
	mu    sync.Mutex // guards the fields below
	ctx   *srtp.Context
	hdr   rtp.Header
	plain []byte
	enc   []byte
	sendState
}

// A micStream is the microphone's RTP stream, once pion has seen it.
type micStream struct {
	ssrc uint32
	pt   uint8
}

// A mediaConn is the media socket as the UDP mux reads it: packets the
// fast path takes are forwarded and never returned to the mux. Its
// ReadFromAddrPort is in fastio_*.go.
type mediaConn struct {
	*net.UDPConn
	s *SFU
	mediaIO
}

// WriteToAddrPort is the socket's WriteToUDPAddrPort (pion's ICE uses
// the pair of methods when a connection has both).
func (c *mediaConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *mediaConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// isRTP tells RTP from STUN, DTLS and RTCP on a shared socket (RFC 7983,
// RFC 5761 4).
func isRTP(b []byte) bool {
	return len(b) >= 12 && b[0]&0xc0 == 0x80 && (b[1] < 192 || b[1] > 223)
}

func canonical(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// take forwards pkt if it is a microphone's packet on a verified fast
// path, and says whether it did. Called on the socket's reading
// goroutine only.
func (s *SFU) take(pkt []byte, from netip.AddrPort) bool {
	if !isRTP(pkt) {
		return false
	}
	f := (*s.lines.Load())[canonical(from)]
	if f == nil {
		return false
	}
	p := f.p
	mic := p.micStream.Load()
	if mic == nil || binary.BigEndian.Uint32(pkt[8:12]) != mic.ssrc {
		return false // the microphone not yet known to pion, or another stream
	}
	if !p.verified.Load() {
		// pion decrypts this one; if our keys decrypt a copy too, they
		// are the connection's.
		f.trial = append(f.trial[:0], pkt...)
		if _, err := p.recv.DecryptRTP(f.trial, f.trial, &f.hdr); err == nil {
			p.verified.Store(true)
			s.log.Debug("fast path verified", "device", p.device)
		}
		return false
	}
	plain, err := p.recv.DecryptRTP(pkt, pkt, &f.hdr)
	if err != nil {
		return true // not authentic, or a replay: dropped, as pion would
	}
	s.fastIn.Add(1)
	if plain[1]&0x7f == mic.pt {
		p.forwardPacket(plain, &f.pkt)
	}
	return true
}

// fastLines maps device addresses to their connections' fast paths.
type fastLines = map[netip.AddrPort]*fastLine

// setLine makes f the fast path of p at addr, replacing p's other line if
// it has one; a nil f removes p's line.
func (s *SFU) setLine(p *peer, addr netip.AddrPort, f *fastLine) {
	s.linesMu.Lock()
	defer s.linesMu.Unlock()
	old := *s.lines.Load()
	next := make(fastLines, len(old)+1)
	for a, l := range old {
		if l.p != p {
			next[a] = l
		}
	}
	if f != nil {
		next[addr] = f
	}
	s.lines.Store(&next)
}

// updateLine gives the peer a fast path where it can have one: its keys
// are known and its selected candidate pair is UDP. It is called when the
// connection comes up and when its candidate pair changes.
func (p *peer) updateLine() {
	if p.s.cfg.PionPath {
		return
	}
	p.lineMu.Lock()
	defer p.lineMu.Unlock()
	if p.lineClosed {
		return
	}
	if p.recv == nil {
		if p.s.spoilKeys != nil {
			p.s.spoilKeys(&p.hs)
		}
		recv, send := p.hs.keys()
		if recv == nil {
			return // the connection is not up yet
		}
		p.recv, p.send = recv, &sendKeys{ctx: send}
	}
	addr, ok := p.remoteUDP()
	if !ok {
		if p.line.Swap(nil) != nil {
			p.s.setLine(p, netip.AddrPort{}, nil)
			p.s.log.Debug("fast path off", "device", p.device)
		}
		return
	}
	if l := p.line.Load(); l != nil && l.addr == addr {
		return
	}
	// A new address (an ICE restart) keeps the connection's keys and
	// streams: the line moves.
	f := &fastLine{p: p, addr: addr, to: makeSockaddr(addr)}
	p.line.Store(f)
	p.s.setLine(p, addr, f)
	p.s.log.Debug("fast path", "device", p.device, "addr", addr)
}

// remoteUDP returns the device's address if its selected candidate pair
// is UDP.
func (p *peer) remoteUDP() (netip.AddrPort, bool) {
	pair, err := p.micT.Receiver().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil || pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return canonical(netip.AddrPortFrom(a, pair.Remote.Port)), true
}

// dropLine removes the peer's fast path for good.
func (p *peer) dropLine() {
	p.lineMu.Lock()
	p.lineClosed = true
	p.line.Store(nil)
	p.lineMu.Unlock()
	p.s.setLine(p, netip.AddrPort{}, nil)
}

// writeFast sends out, a packet of slot o with the slot's sequence number
// and timestamp, to the device on its fast path, and says whether it
// took the packet: not before the path is verified. o.mu is held.
func (o *outSlot) writeFast(out *rtp.Packet) bool {
	f := o.owner.line.Load()
	if f == nil || !o.owner.verified.Load() {
		return false
	}
	h := out.Header
	h.SSRC, h.PayloadType = o.ssrc, o.pt
	k := o.owner.send
	k.mu.Lock()
	defer k.mu.Unlock()
	if !o.fast {
		// pion wrote this stream until now: go on from its rollover
		// count.
		if o.started {
			k.ctx.SetROC(o.ssrc, o.roc)
		}
		o.fast = true
	}
	n := h.MarshalSize()
	if cap(k.plain) < n+len(out.Payload) {
		k.plain = make([]byte, 0, max(1500, n+len(out.Payload)))
	}
	plain := k.plain[:n+len(out.Payload)]
	if _, err := h.MarshalTo(plain); err != nil {
		return true
	}
	copy(plain[n:], out.Payload)
	enc, err := k.ctx.EncryptRTP(k.enc[:0], plain, &k.hdr)
	if err != nil {
		return true
	}
	k.enc = enc
	o.owner.s.fastOut.Add(1)
	if err := o.owner.s.udp.sendTo(k, enc, f); err != nil {
		o.owner.s.log.Debug("fast write", "device", o.owner.device, "err", err)
	}
	return true
}
