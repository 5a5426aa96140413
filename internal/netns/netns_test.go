package netns

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests start this test binary again inside a namespace, with
// helperEnv naming what it should do there (see helper) and addrEnv the
// address it should talk to; it prints its findings as JSON.
const (
	helperEnv = "HOTLINE_NETNS_HELPER"
	addrEnv   = "HOTLINE_NETNS_ADDR"
)

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := helper(h, os.Getenv(addrEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", h, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tcpResult is what the tcp helper finds.
type tcpResult struct {
	Connect time.Duration   // to connect
	RTTs    []time.Duration // to send a byte and have it back, 5 times
}

// udpResult is what the udp helper finds.
type udpResult struct {
	Sent, Received int
}

// udpPackets is how many packets the udp helper sends, one a millisecond.
const udpPackets = 2000

func helper(name, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res any
	switch name {
	case "tcp":
		start := time.Now()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		r := tcpResult{Connect: time.Since(start)}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := []byte{0}
		for i := range 5 {
			start := time.Now()
			b[0] = byte(i)
			if _, err := c.Write(b); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, b); err != nil {
				return err
			}
			if b[0] != byte(i) {
				return fmt.Errorf("echo %d, want %d", b[0], i)
			}
			r.RTTs = append(r.RTTs, time.Since(start))
		}
		res = r
	case "udp":
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		seen := make([]bool, udpPackets)
		var received int
		var wg sync.WaitGroup
		wg.Go(func() {
			b := make([]byte, 64)
			for {
				n, err := c.Read(b)
				if err != nil {
					return // the deadline, once every answer had its chance
				}
				if n == 8 {
					if i := binary.BigEndian.Uint64(b); i < udpPackets && !seen[i] {
						seen[i] = true
						received++
					}
				}
			}
		})
		tick := time.NewTicker(time.Millisecond)
		b := make([]byte, 8)
		var sent int
		for i := range udpPackets {
			<-tick.C
			binary.BigEndian.PutUint64(b, uint64(i))
			if _, err := c.Write(b); err == nil {
				sent++
			}
		}
		tick.Stop()
		c.SetReadDeadline(time.Now().Add(time.Second)) // well over a round trip
		wg.Wait()
		res = udpResult{Sent: sent, Received: received}
	default:
		return fmt.Errorf("unknown helper")
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// runHelper runs the helper name in n, talking to addr, and decodes its
// findings into res.
func runHelper(t *testing.T, n *Net, name string, addr net.Addr, res any) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := n.Command(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, addrEnv+"="+addr.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s in %s: %v\n%s", name, n.Name, err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatalf("helper %s: %v: %q", name, err, out)
	}
}

// tcpEcho serves TCP echo on addr, port 0, until the test ends.
func tcpEcho(t *testing.T, addr netip.Addr) net.Addr {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	return ln.Addr()
}

// udpEcho serves UDP echo on addr, port 0, until the test ends.
func udpEcho(t *testing.T, addr netip.Addr) net.Addr {
	c, err := net.ListenPacket("udp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { c.Close(); wg.Wait() })
	wg.Go(func() {
		b := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			c.WriteTo(b[:n], from)
		}
	})
	return c.LocalAddr()
}

func TestDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	n := New(t, Options{Delay: delay})
	var r tcpResult
	runHelper(t, n, "tcp", tcpEcho(t, n.HostAddr), &r)
	t.Logf("%s: connect %v, round trips %v", n.Name, r.Connect, r.RTTs)
	if r.Connect < 2*delay {
		t.Errorf("connected in %v, want at least %v", r.Connect, 2*delay)
	}
	if m := slices.Min(r.RTTs); m < 2*delay {
		t.Errorf("shortest round trip %v, want at least %v", m, 2*delay)
	}
}

func TestLoss(t *testing.T) {
	n := New(t, Options{Delay: 10 * time.Millisecond, Loss: 1})
	var r udpResult
	runHelper(t, n, "udp", udpEcho(t, n.HostAddr), &r)
	lost := 100 * float64(r.Sent-r.Received) / float64(r.Sent)
	// 1 % each way: 1.99 % of round trips expected.
	t.Logf("%s: %d of %d echoed: %.2f %% lost", n.Name, r.Received, r.Sent, lost)
	if r.Sent != udpPackets || lost < 0.1 || lost > 6 {
		t.Errorf("sent %d of %d, lost %.2f %%, want 0.1 to 6 %%", r.Sent, udpPackets, lost)
	}
}

func TestTwo(t *testing.T) {
	a := New(t, Options{Delay: time.Millisecond})
	b := New(t, Options{Delay: time.Millisecond})
	t.Logf("%s: %v–%v; %s: %v–%v", a.Name, a.HostAddr, a.PeerAddr, b.Name, b.HostAddr, b.PeerAddr)
	if a.Name == b.Name {
		t.Errorf("both named %s", a.Name)
	}
	addrs := []netip.Addr{a.HostAddr, a.PeerAddr, b.HostAddr, b.PeerAddr}
	for i, x := range addrs {
		if !space.Contains(x) {
			t.Errorf("address %v is outside %v", x, space)
		}
		if slices.Contains(addrs[i+1:], x) {
			t.Errorf("address %v used twice", x)
		}
	}
	for _, n := range []*Net{a, b} {
		var r tcpResult
		runHelper(t, n, "tcp", tcpEcho(t, n.HostAddr), &r)
	}
}

func TestCleanup(t *testing.T) {
	// A leftover of a crashed run, with the name the next Net will have.
	next := fmt.Sprintf("hl-%d-%d", os.Getpid(), counter.Load()+1)
	if err := ip("netns", "add", next); err != nil {
		t.Fatal(err)
	}
	var name string
	t.Run("net", func(t *testing.T) {
		name = New(t, Options{}).Name
		if name != next {
			t.Fatalf("named %s, want %s", name, next)
		}
	})
	if _, err := os.Stat("/run/netns/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind: %v", name, err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == fmt.Sprintf("hl%dh%d", os.Getpid(), counter.Load()) {
			t.Errorf("device %s left behind", i.Name)
		}
	}
}

// testing.TB is a TB.
var _ TB = testing.TB(nil)

// TestOpen checks the constructor for programs: a Net that works, closed
// twice, leaves nothing behind.
func TestOpen(t *testing.T) {
	n, err := Open(Options{Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var r tcpResult
	runHelper(t, n, "tcp", tcpEcho(t, n.HostAddr), &r)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat("/run/netns/" + n.Name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind: %v", n.Name, err)
	}
	if _, err := Open(Options{Loss: 101}); err == nil {
		t.Errorf("Open with 101 %% loss: no error")
	}
}

// A pipe passes packets from its writer to its reader, noting when.
type pipe struct {
	c    chan []byte
	mu   sync.Mutex
	when []time.Time
	got  [][]byte
}

func (p *pipe) Read(b []byte) (int, error) {
	pkt, ok := <-p.c
	if !ok {
		return 0, io.EOF
	}
	return copy(b, pkt), nil
}

func (p *pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.when = append(p.when, time.Now())
	p.got = append(p.got, append([]byte(nil), b...))
	return len(b), nil
}

// TestRelay checks the relay without devices: delays never short, loss
// near its rate, order kept without jitter.
func TestRelay(t *testing.T) {
	for _, o := range []Options{
		{Delay: 20 * time.Millisecond},
		{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond},
		{Loss: 10},
		{Loss: 100},
	} {
		t.Run(fmt.Sprintf("%v/%v/%v", o.Delay, o.Jitter, o.Loss), func(t *testing.T) {
			const count = 500
			p := &pipe{c: make(chan []byte)}
			var wg sync.WaitGroup
			wg.Go(func() { relay(p, p, o, rand.New(rand.NewPCG(1, 2)), new(atomic.Bool)) })
			sent := make([]time.Time, count)
			for i := range count {
				sent[i] = time.Now()
				p.c <- binary.BigEndian.AppendUint32(nil, uint32(i))
			}
			// Every packet is due by now plus the longest delay: wait
			// for them, no longer than a second past that.
			deadline := time.Now().Add(o.Delay + o.Jitter + time.Second)
			for time.Now().Before(deadline) {
				p.mu.Lock()
				n := len(p.got)
				p.mu.Unlock()
				if n == count {
					break
				}
				time.Sleep(time.Millisecond)
			}
			close(p.c)
			wg.Wait()

			var shortest, longest time.Duration
			inOrder := true
			for j, b := range p.got {
				i := binary.BigEndian.Uint32(b)
				d := p.when[j].Sub(sent[i])
				if j == 0 || d < shortest {
					shortest = d
				}
				longest = max(longest, d)
				if j > 0 && i < binary.BigEndian.Uint32(p.got[j-1]) {
					inOrder = false
				}
			}
			lost := 100 * float64(count-len(p.got)) / count
			t.Logf("%d of %d passed (%.1f %% lost), delays %v to %v, in order: %v", len(p.got), count, lost, shortest, longest, inOrder)
			if len(p.got) > 0 && shortest < o.Delay-o.Jitter {
				t.Errorf("a packet took %v, want at least %v", shortest, o.Delay-o.Jitter)
			}
			if o.Jitter == 0 && !inOrder {
				t.Errorf("packets reordered without jitter")
			}
			if lost < o.Loss/2 || lost > min(o.Loss*2, 100) {
				t.Errorf("lost %.1f %%, want about %v %%", lost, o.Loss)
			}
		})
	}
}
