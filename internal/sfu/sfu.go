// Package sfu forwards the audio of Hotline's calls: a selective forwarding
// unit on pion/webrtc.
//
// # The warm line
//
// Every device keeps one WebRTC PeerConnection to the server while the app
// is open, set up in advance (ICE and DTLS done), so that starting a call
// needs signalling only, never a renegotiation. To make that possible the
// device's offer declares, once:
//
//   - one audio section that sends (sendonly or sendrecv): its microphone;
//   - [Slots] audio sections that only receive (recvonly): the slots on
//     which it hears the other participants of its call.
//
// [SFU.Connect] answers that offer. The SFU sends on every slot from a
// track of its own, so a call changes nothing in the session: when a
// device joins a call ([SFU.Join]) or leaves it ([SFU.Leave]) the SFU only
// changes which participant's audio it writes to which slot of which
// device, and says so through [Config.OnSlots]. The server passes that on
// to the devices over its event stream, so each knows whose voice (and so
// whose SFrame key) is on each of its slots.
//
// A device hears every other participant of its call on a slot of its
// own; a call therefore has at most Slots+1 participants. A device is in
// at most one call at a time, and a slot, once given, stays with its
// participant until that participant leaves.
//
// # What the SFU sees
//
// Audio is Opus (48 kHz, 2 channels). Devices encrypt each Opus frame end
// to end with SFrame (RFC 9605) before it enters RTP, so the payload is
// opaque here: the SFU never parses it and forwards it byte for byte. It
// rewrites only RTP headers: each slot is one RTP stream with its own SSRC,
// sequence numbers and timestamps, continuous when the slot changes hands;
// header extensions and CSRCs are not forwarded (their IDs and meaning
// belong to the sender's session). The SFU holds no key: the DTLS-SRTP
// hop-by-hop keys are per connection, the SFrame keys never reach it.
//
// # Transport
//
// All media, for all devices, goes through one UDP socket
// ([Config.UDPAddr]) and, for devices that cannot use UDP, one ICE-TCP
// listener ([Config.TCPAddr]). The candidates offered to devices are
// exactly those two bound addresses; multicast DNS is off. A device whose
// transport is down (ICE disconnected or failed, or the connection closed)
// for [Config.DropAfter] is dropped: it leaves its call, its connection is
// closed, and [Config.OnGone] is called.
//
// Packets take one of two paths. pion's PeerConnection does signalling,
// ICE, DTLS, RTCP and ICE-TCP, and carries each connection's media until
// the SFU has verified SRTP keys of its own for it; from then on a
// microphone's packets over UDP take the fast path (fast.go): off the
// socket, decrypted, forwarded and sent on one goroutine, never crossing
// pion's. [Config.PionPath] turns the fast path off.
//
// # Stats
//
// [SFU.Stats] reports, per device, what came in from its microphone and
// what went out on its slots, with loss, jitter and round-trip time from
// the RTCP reports the device sends. The SFU sends each device, once a
// second, a sender report per slot and a receiver report on its
// microphone (no pion interceptors: see rtcp.go).
package sfu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Slots is the number of receiving audio sections (slots) that a device's
// offer must declare, and so one less than the most participants a call
// can have.
const Slots = 8

// udpBuffer is the receive buffer asked of the media socket.
const udpBuffer = 4 << 20

// DefaultPreRoll is the default of [Config.PreRoll]: one 20 ms frame.
const DefaultPreRoll = 20 * time.Millisecond

// DefaultDropAfter is the default of [Config.DropAfter].
const DefaultDropAfter = 10 * time.Second

// connectGrace is the least time a new connection has to come up before it
// is dropped as gone, whatever DropAfter says: ICE and DTLS take a few
// round trips, more on a loaded machine.
const connectGrace = 30 * time.Second

// Errors.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("sfu: closed")
	// ErrOffer wraps the reason an offer does not fit the warm line (one
	// sending audio section, Slots receiving ones, Opus).
	ErrOffer = errors.New("sfu: offer does not fit")
	// ErrNotConnected says the device has no connection to the SFU.
	ErrNotConnected = errors.New("sfu: device not connected")
	// ErrInCall says the device is already in another call.
	ErrInCall = errors.New("sfu: device in another call")
	// ErrCallFull says the call already has Slots+1 participants.
	ErrCallFull = errors.New("sfu: call full")
)

// A Slot is one of a device's receiving audio sections and who is heard
// on it.
type Slot struct {
	// Index counts the receiving sections of the device's offer, in the
	// order of the offer, from 0.
	Index int
	// Mid is the section's media ID (a=mid) in the device's offer.
	Mid string
	// Device is the participant heard on the slot, or "" for none.
	Device string
}

// Config configures an SFU. The zero value is valid: media on 127.0.0.1,
// for development and tests.
type Config struct {
	// UDPAddr is the "ip:port" of the one UDP socket that carries all
	// media. The IP must be a specific address, not 0.0.0.0 or [::]: it is
	// the address devices are told to send to. Port 0 picks a free port.
	// Default "127.0.0.1:0".
	UDPAddr string
	// TCPAddr is the "ip:port" of the ICE-TCP listener, the fallback for
	// devices that cannot use UDP. The same rules apply. Default
	// "127.0.0.1:0".
	TCPAddr string
	// PreRoll is how young a speaker's last packet must be for the SFU to
	// write it to a slot that starts carrying the speaker (someone
	// answers or joins): the frame being spoken as they join, so that
	// they hear it at once and the first syllable is not clipped. 0:
	// DefaultPreRoll, one frame; negative: never.
	PreRoll time.Duration
	// DropAfter is how long a device's transport may stay down (ICE
	// disconnected or failed, or the connection closed) before the device
	// is dropped. pion declares ICE disconnected after 5 s without
	// traffic, so a device that vanishes without a word is dropped about
	// 5 s + DropAfter after its last packet. A new connection has at least
	// 30 s to come up. Default DefaultDropAfter; at most a minute.
	DropAfter time.Duration
	// OnSlots, if set, is called with a device's complete slot list
	// whenever it changes: on Join, Leave and drops, and when a device in
	// a call connects again. call is the device's call, "" for none (then
	// every slot is empty).
	OnSlots func(device, call string, slots []Slot)
	// OnGone, if set, is called when a device has been dropped because its
	// transport stayed down for DropAfter. call is the call it was taken
	// out of, "" for none. It is not called for Disconnect or Close.
	OnGone func(device, call string)
	// Logger receives the SFU's log, pion's included (pion's info and
	// debug at Debug). nil discards it.
	Logger *slog.Logger
	// PionPath turns the fast path off (fast.go): every packet goes
	// through pion's pipeline. For comparison in benchmarks and tests.
	PionPath bool
}

// SFU forwards the audio of calls among connected devices. Its methods
// are safe for concurrent use.
//
// Callbacks (OnSlots, OnGone) are called one at a time, in the order of
// the changes they report, from a goroutine of the SFU; they may call the
// SFU's methods, and should not block for long, since later callbacks
// wait for them.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	pion    *pionLogs
	udp     *mediaConn   // the media socket as the UDP mux reads it
	udpConn *net.UDPConn // the media socket itself
	tcp     net.Listener
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	se      webrtc.SettingEngine

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the SFU starts
	reap   chan struct{}  // wakes the reaper: a connection went up or down
	events eventQueue
	// forwarded counts the packets written to slots, for benchmarks.
	forwarded atomic.Uint64

	lines   atomic.Pointer[fastLines] // the fast paths, by device address
	linesMu sync.Mutex                // serialises changes to lines
	// fastIn and fastOut count the packets received and sent on fast
	// paths, for tests and benchmarks.
	fastIn, fastOut atomic.Uint64
	// spoilKeys, if set by a test, damages each handshake before its
	// keys are derived.
	spoilKeys func(*handshakeLog)

	mu     sync.Mutex // guards the fields below, and every peer's up, everUp, ended and downSince
	closed bool
	peers  map[string]*peer // by device
	calls  map[string]*call // by call name
	member map[string]*call // by device: the call it is in
}

// New starts an SFU: it binds the UDP socket and the TCP listener and
// starts the SFU's goroutines. Close releases them.
func New(cfg Config) (*SFU, error) {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	if cfg.DropAfter == 0 {
		cfg.DropAfter = DefaultDropAfter
	}
	if cfg.PreRoll == 0 {
		cfg.PreRoll = DefaultPreRoll
	}
	if cfg.DropAfter < 0 || cfg.DropAfter > time.Minute {
		return nil, fmt.Errorf("sfu: DropAfter %v: want (0, 1m]", cfg.DropAfter)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	udpAddr, err := specificAddr("UDPAddr", cfg.UDPAddr)
	if err != nil {
		return nil, err
	}
	tcpAddr, err := specificAddr("TCPAddr", cfg.TCPAddr)
	if err != nil {
		return nil, err
	}

	udp, err := net.ListenUDP(udpNetwork(udpAddr), net.UDPAddrFromAddrPort(udpAddr))
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	// One socket takes every device's packets: a receive buffer of the
	// default size (about 200 KB on Linux, some 25 ms of 90 calls) drops
	// packets whenever the reading goroutine is kept off the CPU for
	// longer. The kernel caps the size at net.core.rmem_max, quietly.
	if err := udp.SetReadBuffer(udpBuffer); err != nil {
		log.Debug("set UDP receive buffer", "err", err)
	}
	tcp, err := net.ListenTCP(tcpNetwork(tcpAddr), net.TCPAddrFromAddrPort(tcpAddr))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("sfu: %w", err)
	}

	pl := &pionLogs{log: log}
	s := &SFU{
		cfg:     cfg,
		log:     log,
		pion:    pl,
		udpConn: udp,
		tcp:     tcp,
		tcpMux:  webrtc.NewICETCPMux(pl.NewLogger("tcpmux"), tcp, 64),
		reap:    make(chan struct{}, 1),
		peers:   make(map[string]*peer),
		calls:   make(map[string]*call),
		member:  make(map[string]*call),
	}
	if s.udp, err = newMediaConn(udp, s); err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("sfu: %w", err)
	}
	s.udpMux = webrtc.NewICEUDPMux(pl.NewLogger("udpmux"), s.udp)
	s.lines.Store(&fastLines{})
	s.se = s.settingEngine(udpAddr.Addr(), tcpAddr.Addr())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.events.init()
	s.wg.Add(2)
	go s.dispatch()
	go s.reaper()
	log.Info("sfu started", "udp", s.UDPAddr(), "tcp", s.TCPAddr())
	return s, nil
}

// specificAddr parses an "ip:port" that names one IP address.
func specificAddr(field, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sfu: %s %q: want ip:port", field, s)
	}
	if ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("sfu: %s %s: give a specific IP address, the one devices will reach", field, s)
	}
	return ap, nil
}

func udpNetwork(a netip.AddrPort) string {
	if a.Addr().Unmap().Is4() {
		return "udp4"
	}
	return "udp6"
}

func tcpNetwork(a netip.AddrPort) string {
	if a.Addr().Unmap().Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// settingEngine returns the settings every connection shares: the two
// muxes, no mDNS, and candidates only for the bound addresses.
func (s *SFU) settingEngine(udpIP, tcpIP netip.Addr) webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.LoggerFactory = s.pion
	se.SetICEUDPMux(s.udpMux)
	se.SetICETCPMux(s.tcpMux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Host candidates: the UDP mux offers the address it is bound to; TCP
	// candidates come from the machine's interfaces, kept only where an
	// address is the listener's. Loopback is included, since a bound
	// loopback address (development, tests) must be offered too.
	udpIP, tcpIP = udpIP.Unmap(), tcpIP.Unmap()
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		a = a.Unmap()
		return ok && (a == udpIP || a == tcpIP)
	})
	var types []webrtc.NetworkType
	if udpIP.Is4() {
		types = append(types, webrtc.NetworkTypeUDP4)
	} else {
		types = append(types, webrtc.NetworkTypeUDP6)
	}
	if tcpIP.Is4() {
		types = append(types, webrtc.NetworkTypeTCP4)
	} else {
		types = append(types, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	// The SFU never dials out: devices reach it, not the reverse.
	se.DisableActiveTCP(true)
	// The SFU is the DTLS server, so that it can derive its connections'
	// SRTP keys for the fast path (fast.go).
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		panic(err) // a valid role
	}
	return se
}

// UDPAddr returns the address of the media socket.
func (s *SFU) UDPAddr() netip.AddrPort {
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TCPAddr returns the address of the ICE-TCP listener.
func (s *SFU) TCPAddr() netip.AddrPort {
	return s.tcp.Addr().(*net.TCPAddr).AddrPort()
}

// Close stops the SFU, in this order: it refuses new work (the methods
// that return an error then return ErrClosed, the others do nothing),
// stops calling callbacks (changes not yet reported are not), closes every
// device's connection, waits for all of its goroutines, and finally
// closes the UDP socket and the TCP listener. Closing twice returns
// ErrClosed.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	peers := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		peers = append(peers, p)
	}
	clear(s.peers)
	clear(s.calls)
	clear(s.member)
	s.mu.Unlock()

	s.cancel()
	var errs []error
	for _, p := range peers {
		if err := p.pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection of device %s: %w", p.device, err))
		}
	}
	s.wg.Wait()
	if err := s.udpMux.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.tcpMux.Close(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("sfu closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sfu: close: %w", err)
	}
	return nil
}

// goLocked starts f as one of the SFU's goroutines, unless the SFU is
// closed. s.mu must be held.
func (s *SFU) goLocked(f func()) bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}
