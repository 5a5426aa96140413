package sfu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/webrtc/v4"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	code := m.Run()
	if code == 0 && !noLeaks() {
		code = 1
	}
	os.Exit(code)
}

// noLeaks reports whether every goroutine of pion and of this package
// has ended, waiting up to 10 s for them to: pion/webrtc's vnet_test.go
// does the same per test, which parallel tests cannot.
func noLeaks() bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var leaked []string
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if (strings.Contains(g, "github.com/pion/") || strings.Contains(g, "hotline/internal/sfu.")) &&
				!strings.Contains(g, "sfu.noLeaks") && !strings.Contains(g, "sfu.TestMain") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			return false
		}
		time.Sleep(50 * time.Millisecond) // polling, not an assertion
	}
}

// testLogger logs to stderr when HOTLINE_SFU_LOG is set (to a level:
// debug, info …), and nowhere otherwise.
func testLogger() *slog.Logger {
	v := os.Getenv("HOTLINE_SFU_LOG")
	if v == "" {
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(v)); err != nil {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newSFU starts an SFU on 127.0.0.1 that reports to log, and closes it
// when the test ends.
func newSFU(t *testing.T, cfg Config, log *slotLog) *SFU {
	t.Helper()
	cfg.OnSlots, cfg.OnGone = log.onSlots, log.onGone
	cfg.Logger = testLogger()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// inCall connects clients, puts them in call c1 and waits until the slot
// lists report them all.
func inCall(ctx context.Context, t *testing.T, s *SFU, log *slotLog, clients ...*client) {
	t.Helper()
	for _, c := range clients {
		c.connect(ctx, s)
	}
	for _, c := range clients {
		if err := s.Join("c1", c.id); err != nil {
			t.Fatalf("join %s: %v", c.id, err)
		}
	}
	for _, c := range clients {
		waitFor(ctx, t, c.id+"'s slots", func() bool { return len(log.hears(c.id)) == len(clients)-1 })
	}
}

// flowing waits until each client has received n more packets from
// each other, from the counts in base (nil: from zero).
func flowing(ctx context.Context, t *testing.T, n int, clients ...*client) {
	t.Helper()
	base := counts(clients...)
	for _, c := range clients {
		for _, o := range clients {
			if c != o {
				waitFor(ctx, t, fmt.Sprintf("%d packets %s→%s", n, o.id, c.id), func() bool {
					return c.count(o.id) >= base[c.id+"←"+o.id]+n
				})
			}
		}
	}
}

func counts(clients ...*client) map[string]int {
	m := make(map[string]int)
	for _, c := range clients {
		for _, o := range clients {
			m[c.id+"←"+o.id] = c.count(o.id)
		}
	}
	return m
}

// TestForward checks that every participant hears every other, on the
// slot that OnSlots says, every packet byte for byte, in order.
func TestForward(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d-party", n), func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			log := newSlotLog()
			s := newSFU(t, Config{}, log)
			opts := []clientOpts{{sendrecv: true}, {micLast: true}, {}}
			var clients []*client
			for i := range n {
				clients = append(clients, newClient(t, fmt.Sprintf("dev%d", i), opts[i]))
			}
			inCall(ctx, t, s, log, clients...)
			for _, c := range clients {
				c.send(1000)
			}
			flowing(ctx, t, 50, clients...)
			for _, c := range clients {
				c.stopSending()
			}

			for _, c := range clients {
				c.check()
				hears := log.hears(c.id)
				var want []string
				for _, o := range clients {
					if o != c {
						want = append(want, o.id)
					}
				}
				if got := slices.Sorted(maps.Values(hears)); !slices.Equal(got, want) {
					t.Errorf("%s's slots: hears %v, want %v", c.id, got, want)
				}
				for mid := range hears {
					if !slices.Contains(c.mids(), mid) {
						t.Errorf("%s's slots: mid %s is not a receiving section of its offer %v", c.id, mid, c.mids())
					}
				}
				heard := c.heard()
				for mid, senders := range heard {
					if len(senders) != 1 || hears[mid] != senders[0] {
						t.Errorf("%s heard %v on mid %s; OnSlots says %q", c.id, senders, mid, hears[mid])
					}
				}
			}
			wantCalls := map[string][]string{"c1": {}}
			for _, c := range clients {
				wantCalls["c1"] = append(wantCalls["c1"], c.id)
			}
			if diff := cmp.Diff(wantCalls, s.Calls()); diff != "" {
				t.Errorf("Calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLeave checks that Leave stops forwarding both to and from the
// device that left, and frees its slots.
func TestLeave(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b, c := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{}), newClient(t, "dev2", clientOpts{})
	inCall(ctx, t, s, log, a, b, c)
	for _, x := range []*client{a, b, c} {
		x.send(2000)
	}
	flowing(ctx, t, 10, a, b, c)

	s.Leave("c2", "dev2") // not its call: nothing happens
	s.Leave("c1", "dev2")
	waitFor(ctx, t, "slot lists without dev2", func() bool {
		return len(log.hears("dev2")) == 0 && len(log.hears("dev0")) == 1 && len(log.hears("dev1")) == 1
	})
	// Let what was in flight land, then take a snapshot of what dev2
	// sent and received; it must not move while dev0 and dev1 go on.
	flowing(ctx, t, 25, a, b)
	before := []int{c.total(), a.count("dev2"), b.count("dev2")}
	flowing(ctx, t, 25, a, b)
	after := []int{c.total(), a.count("dev2"), b.count("dev2")}
	if !slices.Equal(before, after) {
		t.Errorf("after Leave: dev2 received, dev0 and dev1 received from dev2: %v, then %v", before, after)
	}
	if diff := cmp.Diff(map[string][]string{"c1": {"dev0", "dev1"}}, s.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	for _, x := range []*client{a, b, c} {
		x.check()
	}

	// Joining again gives dev2 its slots back: the lowest free ones.
	if err := s.Join("c1", "dev2"); err != nil {
		t.Fatal(err)
	}
	flowing(ctx, t, 10, a, b, c)
}

// TestNotInCall checks that a connected device that is not in a call
// receives nothing, and that nobody receives its microphone.
func TestNotInCall(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b, c := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{}), newClient(t, "dev2", clientOpts{})
	c.connect(ctx, s)
	inCall(ctx, t, s, log, a, b)
	for _, x := range []*client{a, b, c} {
		x.send(2000)
	}
	flowing(ctx, t, 50, a, b)
	if n := c.total(); n != 0 {
		t.Errorf("dev2, in no call, received %d packets", n)
	}
	if n := a.count("dev2") + b.count("dev2"); n != 0 {
		t.Errorf("dev2, in no call, was heard: %d packets", n)
	}
	if _, ok := log.slots["dev2"]; ok {
		t.Errorf("OnSlots reported dev2, which joined no call")
	}
}

// TestDrop checks that a device whose transport goes away is dropped
// from its call after DropAfter, and reported gone.
func TestDrop(t *testing.T) {
	for _, how := range []string{"close", "vanish"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			log := newSlotLog()
			s := newSFU(t, Config{DropAfter: 300 * time.Millisecond}, log)
			a, b := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{cuttable: true})
			inCall(ctx, t, s, log, a, b)
			a.send(3000)
			b.send(3000)
			flowing(ctx, t, 10, a, b)

			switch how {
			case "close": // DTLS close_notify: the connection closes at once
				if err := b.pc.Close(); err != nil {
					t.Fatal(err)
				}
			case "vanish": // not a word: ICE goes disconnected after 5 s
				b.cut.cutOff.Store(true)
			}
			waitFor(ctx, t, "dev1 gone", func() bool { return len(log.goneList()) > 0 })
			if diff := cmp.Diff([]string{"dev1 c1"}, log.goneList()); diff != "" {
				t.Errorf("OnGone (-want +got):\n%s", diff)
			}
			waitFor(ctx, t, "dev0 hearing nobody", func() bool { return len(log.hears("dev0")) == 0 })
			if diff := cmp.Diff(map[string][]string{"c1": {"dev0"}}, s.Calls()); diff != "" {
				t.Errorf("Calls (-want +got):\n%s", diff)
			}
			if _, err := s.Stats("dev1"); !errors.Is(err, ErrNotConnected) {
				t.Errorf("Stats(dev1) = %v, want ErrNotConnected", err)
			}
			if _, err := s.Stats("dev0"); err != nil {
				t.Errorf("Stats(dev0): %v", err)
			}
		})
	}
}

// TestTCP checks that a device limited to ICE-TCP connects, sends and
// receives, and that the SFU offers only its bound addresses.
func TestTCP(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b := newClient(t, "dev0", clientOpts{tcp: true}), newClient(t, "dev1", clientOpts{})

	answer := a.negotiate(ctx, s, false)
	var cands []string
	for line := range strings.Lines(answer) {
		if f := strings.Fields(line); strings.HasPrefix(line, "a=candidate:") && f[1] == "1" { // component 1, RTP
			cands = append(cands, strings.Join([]string{f[2], f[4] + ":" + f[5]}, " "))
		}
	}
	slices.Sort(cands)
	want := []string{"tcp " + s.TCPAddr().String(), "udp " + s.UDPAddr().String()}
	if diff := cmp.Diff(want, cands); diff != "" {
		t.Errorf("candidates in the answer (-want +got):\n%s", diff)
	}

	inCall(ctx, t, s, log, a, b)
	a.send(1000)
	b.send(1000)
	flowing(ctx, t, 50, a, b)
	pair, err := a.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v, %v", pair, err)
	}
	if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Port != s.TCPAddr().Port() {
		t.Errorf("dev0's selected pair is %s, want TCP to %s", pair, s.TCPAddr())
	}
	a.check()
	b.check()
}

// TestICERestart checks that an offer with ICE restart on a connection
// renegotiates it, and media keeps flowing.
func TestICERestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{})
	inCall(ctx, t, s, log, a, b)
	a.send(3000)
	b.send(3000)
	flowing(ctx, t, 10, a, b)

	s.mu.Lock()
	p := s.peers["dev0"]
	s.mu.Unlock()
	before := ufrag(a.pc.RemoteDescription().SDP)
	answer := a.negotiate(ctx, s, true)
	if after := ufrag(answer); after == before || after == "" {
		t.Errorf("ICE restart: the SFU's ufrag went from %q to %q", before, after)
	}
	flowing(ctx, t, 50, a, b)
	s.mu.Lock()
	same := s.peers["dev0"] == p
	s.mu.Unlock()
	if !same {
		t.Errorf("ICE restart replaced the connection instead of renegotiating it")
	}
	a.check()
	b.check()
}

func ufrag(sdp string) string {
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(line, "a=ice-ufrag:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestReconnect checks that a new connection of a device in a call
// replaces the old one and keeps its slots.
func TestReconnect(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{})
	inCall(ctx, t, s, log, a, b)
	a.send(3000)
	b.send(3000)
	flowing(ctx, t, 10, a, b)
	hears := log.hears("dev1")

	a2 := newClient(t, "dev0", clientOpts{micLast: true}) // the same device, a new session
	a.stopSending()
	a2.sent.Store(a.sent.Load()) // the receivers check the counters' order
	a2.connect(ctx, s)
	waitFor(ctx, t, "the old connection closed", func() bool {
		return a.pc.ConnectionState() == webrtc.PeerConnectionStateClosed ||
			a.pc.ConnectionState() == webrtc.PeerConnectionStateFailed
	})
	a2.send(3000)
	flowing(ctx, t, 50, a2, b)
	if diff := cmp.Diff(hears, log.hears("dev1")); diff != "" {
		t.Errorf("dev1's slots changed (-before +after):\n%s", diff)
	}
	waitFor(ctx, t, "dev0's slots with the new mids", func() bool {
		h := log.hears("dev0")
		return len(h) == 1 && slices.Contains(a2.mids(), slices.Collect(maps.Keys(h))[0])
	})
	a2.check()
	b.check()
}

// TestStats checks the counters, RTCP-derived figures included.
func TestStats(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{})
	inCall(ctx, t, s, log, a, b)
	a.send(3000)
	b.send(3000)
	var st ParticipantStats
	waitFor(ctx, t, "stats with a round-trip time", func() bool {
		var err error
		st, err = s.Stats("dev0")
		if err != nil {
			t.Fatal(err)
		}
		return st.PacketsIn > 0 && st.PacketsOut > 0 && st.Reports > 0
	})
	t.Logf("%+v", st)
	if st.BytesIn < 80*st.PacketsIn || st.BytesOut < 80*st.PacketsOut {
		t.Errorf("%d bytes in %d packets in, %d bytes in %d packets out: want at least 80 bytes a packet",
			st.BytesIn, st.PacketsIn, st.BytesOut, st.PacketsOut)
	}
	if st.RTT <= 0 || st.RTT > 10*time.Second {
		t.Errorf("RTT %v, want a measured round trip", st.RTT)
	}
	if st.LostIn < 0 || st.LostOut < 0 {
		t.Errorf("negative loss: %d in, %d out", st.LostIn, st.LostOut)
	}
	if _, err := s.Stats("nobody"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Stats(nobody) = %v, want ErrNotConnected", err)
	}
}

// TestOffers checks that offers that do not fit the warm line are
// refused, and change nothing.
func TestOffers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	c := newClient(t, "dev0", clientOpts{})
	good := c.offer(false)
	replaceLast := func(s, old, new string) string {
		i := strings.LastIndex(s, old)
		return s[:i] + new + s[i+len(old):]
	}
	for _, tc := range []struct {
		name  string
		offer string
	}{
		{"not SDP", "hello"},
		{"no microphone", strings.ReplaceAll(good, "a=sendonly", "a=recvonly")},
		{"two microphones", replaceLast(good, "a=recvonly", "a=sendrecv")},
		{"inactive slot", replaceLast(good, "a=recvonly", "a=inactive")},
		{"seven slots", offerWithSlots(t, Slots-1)},
		{"nine slots", offerWithSlots(t, Slots+1)},
		{"video", replaceLast(good, "m=audio", "m=video")},
		{"no Opus", strings.ReplaceAll(good, "opus/48000/2", "PCMU/8000")},
	} {
		_, err := s.Connect(ctx, "dev1", tc.offer)
		if !errors.Is(err, ErrOffer) {
			t.Errorf("%s: Connect = %v, want ErrOffer", tc.name, err)
		}
	}
	if len(s.peers) != 0 {
		t.Errorf("refused offers left %d connections", len(s.peers))
	}
	if _, err := s.Connect(ctx, "", good); err == nil {
		t.Errorf("Connect with no device succeeded")
	}
}

func offerWithSlots(t *testing.T, n int) string {
	return newClient(t, "devX", clientOpts{slots: n}).offer(false)
}

// TestJoin checks Join's refusals.
func TestJoin(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	if err := s.Join("c1", "nobody"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Join of a device not connected = %v, want ErrNotConnected", err)
	}
	var clients []*client
	for i := range Slots + 2 {
		c := newClient(t, fmt.Sprintf("dev%d", i), clientOpts{})
		c.negotiate(ctx, s, false)
		clients = append(clients, c)
	}
	for _, c := range clients[:Slots+1] {
		if err := s.Join("c1", c.id); err != nil {
			t.Fatalf("join %s: %v", c.id, err)
		}
	}
	if err := s.Join("c1", clients[Slots+1].id); !errors.Is(err, ErrCallFull) {
		t.Errorf("Join of a call of %d = %v, want ErrCallFull", Slots+1, err)
	}
	if err := s.Join("c1", "dev0"); err != nil {
		t.Errorf("Join of the device's own call again: %v", err)
	}
	if err := s.Join("c2", "dev0"); !errors.Is(err, ErrInCall) {
		t.Errorf("Join of a second call = %v, want ErrInCall", err)
	}
	// Every member hears every other, each on a slot of its own.
	waitFor(ctx, t, "full slot lists", func() bool {
		for _, c := range clients[:Slots+1] {
			if len(log.hears(c.id)) != Slots {
				return false
			}
		}
		return true
	})
}

// TestClose checks Close's effects.
func TestClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s, err := New(Config{OnSlots: log.onSlots, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{})
	inCall(ctx, t, s, log, a, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the devices' connections closed", func() bool {
		return a.pc.ConnectionState() != webrtc.PeerConnectionStateConnected &&
			b.pc.ConnectionState() != webrtc.PeerConnectionStateConnected
	})
	if _, err := s.Connect(ctx, "dev2", newClient(t, "dev2", clientOpts{}).offer(false)); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close = %v, want ErrClosed", err)
	}
	if err := s.Join("c1", "dev0"); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Stats("dev0"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

// TestConfig checks New's refusals and defaults.
func TestConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{UDPAddr: "0.0.0.0:0"},
		{TCPAddr: "[::]:0"},
		{UDPAddr: "localhost:0"},
		{DropAfter: -time.Second},
		{DropAfter: time.Hour},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	s, err := New(Config{UDPAddr: "[::1]:0", TCPAddr: "[::1]:0"})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	if s.UDPAddr().Addr() != netip.IPv6Loopback() || s.UDPAddr().Port() == 0 || s.TCPAddr().Port() == 0 {
		t.Errorf("bound %s and %s", s.UDPAddr(), s.TCPAddr())
	}
}

// TestListening checks that a device joined as a listener hears everyone
// who speaks and is heard by nobody: it takes no one's slot, and its
// microphone is forwarded nowhere.
func TestListening(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b, l := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{}), newClient(t, "dev2", clientOpts{})
	for _, c := range []*client{a, b, l} {
		c.connect(ctx, s)
	}
	if err := s.Join("c1", "dev0"); err != nil {
		t.Fatal(err)
	}
	if err := s.JoinListening("c1", "dev2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Join("c1", "dev1"); err != nil { // a speaker joining after the listener
		t.Fatal(err)
	}
	waitFor(ctx, t, "slot lists", func() bool {
		return len(log.hears("dev0")) == 1 && len(log.hears("dev1")) == 1 && len(log.hears("dev2")) == 2
	})
	for _, c := range []*client{a, b, l} {
		c.send(2000)
	}
	flowing(ctx, t, 25, a, b)
	waitFor(ctx, t, "the listener hearing both", func() bool { return l.count("dev0") >= 25 && l.count("dev1") >= 25 })
	if n, m := a.count("dev2"), b.count("dev2"); n != 0 || m != 0 {
		t.Errorf("the listener was heard: %d packets at dev0, %d at dev1", n, m)
	}
	for _, id := range []string{"dev0", "dev1"} {
		if slices.Contains(slices.Collect(maps.Values(log.hears(id))), "dev2") {
			t.Errorf("%s has a slot for the listener: %v", id, log.hears(id))
		}
	}
	for _, c := range []*client{a, b, l} {
		c.stopSending()
		c.check()
	}
}

// A probe session (a line check's) forwards like a call, is not listed
// among the calls, and yields to a call: a device in one that joins a call
// leaves it, and a device in a call cannot join one.
func TestProbeSession(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	log := newSlotLog()
	s := newSFU(t, Config{}, log)
	a, b, c := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{}), newClient(t, "dev2", clientOpts{})
	for _, x := range []*client{a, b, c} {
		x.connect(ctx, s)
	}
	for _, d := range []string{"dev0", "dev1"} {
		if err := s.JoinProbe("linecheck:1", d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, "slot lists", func() bool { return len(log.hears("dev0")) == 1 && len(log.hears("dev1")) == 1 })
	a.send(2000)
	b.send(2000)
	flowing(ctx, t, 25, a, b)
	if calls := s.Calls(); len(calls) != 0 {
		t.Errorf("Calls lists the probe session: %v", calls)
	}
	if err := s.Join("linecheck:1", "dev2"); err == nil {
		t.Error("a call joined under a probe session's name")
	}
	// dev1 is rung into a call: it leaves the probe session.
	if err := s.Join("c1", "dev1"); err != nil {
		t.Fatalf("joining a call from a probe session: %v", err)
	}
	if err := s.Join("c1", "dev2"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "dev1 out of the probe session", func() bool {
		return len(log.hears("dev0")) == 0 && slices.Equal(slices.Collect(maps.Values(log.hears("dev1"))), []string{"dev2"})
	})
	if err := s.JoinProbe("linecheck:2", "dev2"); !errors.Is(err, ErrInCall) {
		t.Errorf("a device in a call joined a probe session: %v", err)
	}
	if got := s.Calls(); len(got) != 1 || len(got["c1"]) != 2 {
		t.Errorf("calls %v, want c1 with dev1 and dev2", got)
	}
	for _, x := range []*client{a, b} {
		x.stopSending()
		x.check()
	}
}

// TestPreRoll checks that a device joining a call for the first time is
// written a speaker's last packet at once if nobody heard it and it is
// younger than Config.PreRoll (the caller's frame as the callee answers),
// and never a packet another participant heard, an older one, or one to a
// device returning from hold.
func TestPreRoll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		preRoll time.Duration
		heard   bool          // a third device is in the call when dev0 speaks
		wait    time.Duration // after the packet, before the join
		rejoin  bool          // dev1 was in the call before, and left (hold)
		want    int
	}{
		{name: "fresh", preRoll: 10 * time.Second, want: 1},
		{name: "heard", preRoll: 10 * time.Second, heard: true},
		{name: "rejoin", preRoll: 10 * time.Second, rejoin: true},
		{name: "stale", preRoll: 50 * time.Millisecond, wait: 300 * time.Millisecond},
		{name: "off", preRoll: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			log := newSlotLog()
			s := newSFU(t, Config{PreRoll: tc.preRoll}, log)
			a, b, c := newClient(t, "dev0", clientOpts{}), newClient(t, "dev1", clientOpts{}), newClient(t, "dev2", clientOpts{})
			members := []*client{a}
			if tc.heard {
				members = append(members, c)
			} else {
				c.connect(ctx, s)
			}
			inCall(ctx, t, s, log, members...)
			b.connect(ctx, s)
			if tc.rejoin {
				if err := s.Join("c1", "dev1"); err != nil {
					t.Fatal(err)
				}
				s.Leave("c1", "dev1")
			}
			a.send(1)
			if tc.heard {
				waitFor(ctx, t, "dev0's packet at dev2", func() bool { return c.count("dev0") == 1 })
			} else {
				waitFor(ctx, t, "dev0's packet at the SFU", func() bool {
					s.mu.Lock()
					p := s.peers["dev0"]
					s.mu.Unlock()
					p.last.mu.Lock()
					defer p.last.mu.Unlock()
					return !p.last.at.IsZero()
				})
			}
			time.Sleep(tc.wait)
			if err := s.Join("c1", "dev1"); err != nil {
				t.Fatal(err)
			}
			if tc.want > 0 {
				waitFor(ctx, t, "the pre-rolled packet at dev1", func() bool { return b.count("dev0") == tc.want })
			}
			// dev0 speaks on: what dev1 gets after the join flows, and by
			// then anything pre-rolled would have come too.
			a.send(5)
			waitFor(ctx, t, "dev0's packets after the join at dev1", func() bool { return b.count("dev0") >= tc.want+3 })
			b.mu.Lock()
			var first uint32
			for _, rc := range b.slots {
				if ns := rc.from["dev0"]; len(ns) > 0 {
					first = ns[0]
				}
			}
			b.mu.Unlock()
			if want := uint32(1 - tc.want); first != want {
				t.Errorf("dev1's first packet of dev0 is #%d, want #%d", first, want)
			}
			b.check()
		})
	}
}
