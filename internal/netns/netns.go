// Package netns puts a program behind an emulated wide-area link, for
// tests and benchmarks: a network namespace of the test's own, joined to
// the root namespace by a link that delays, jitters and drops packets.
//
//	n := netns.New(t, netns.Options{Delay: 50 * time.Millisecond, Loss: 1})
//	srv := listen(t, n.HostAddr)                      // in the test process
//	cmd := n.Command(ctx, exe, args...)               // in the namespace
//
// A program that is not a test (`hotline bench calls --wan`) uses [Open]
// and [Net.Close] instead of [New].
//
// A server in the test process listens on [Net.HostAddr]; a program
// started with [Net.Command] runs in the namespace, where its only route
// out is the emulated link and its own address is [Net.PeerAddr]. Every
// packet between the two crosses the link, in each direction, so a round
// trip takes at least twice [Options.Delay] and a request and its answer
// each risk [Options.Loss].
//
// # The link
//
// The link is two TUN devices, one in the root namespace and one in the
// test's, and a relay in the test process that copies IP packets between
// them: a packet read from one is dropped with probability Loss, or else
// written to the other Delay ± Jitter after it was read (uniformly
// distributed; with jitter, packets can overtake each other, as under
// netem). At most 1,000 packets wait in each direction, netem's default
// limit; more are dropped.
//
// This is what tc's netem qdisc does in the kernel, but netem is a module
// that not every kernel has (a CI runner's usually does; a Firecracker
// guest's usually does not), while TUN is nearly always built in. The
// relay also leaves nothing behind: if the test process dies, its TUN
// devices go with it, and only the namespace's name remains, which the
// next [New] with that name removes.
//
// # Requirements
//
// Root (CAP_NET_ADMIN and CAP_SYS_ADMIN), /dev/net/tun and the ip command
// of iproute2. [New] fails the test, naming what is missing, rather than
// skipping it; [Open] returns the error.
//
// # Addresses
//
// Each Net gets a /30 of its own in 198.18.0.0/15 (RFC 2544's benchmarking
// range, which no real network should use): the first host address in the
// root namespace, the second in the test's. The /30 is picked from the
// process ID and a counter and skipped if any route of the root namespace
// already overlaps it (another test process's Net, or a VPN using the
// range), so concurrent test processes do not collide.
package netns

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe the emulated link. Each applies to each direction.
type Options struct {
	// Delay is added to every packet.
	Delay time.Duration `json:"delay"`
	// Jitter spreads the delay uniformly over Delay ± Jitter (never below
	// zero).
	Jitter time.Duration `json:"jitter"`
	// Loss is the percentage of packets dropped, from 0 to 100.
	Loss float64 `json:"loss"`
}

// A Net is a network namespace behind an emulated link. Its fields must
// not be changed.
type Net struct {
	// Name is the namespace's name, as ip netns knows it.
	Name string
	// HostAddr is the address of the link's end in the root namespace,
	// where the test process runs.
	HostAddr netip.Addr
	// PeerAddr is the address of the link's end in the namespace.
	PeerAddr netip.Addr

	link     *link // nil until started
	closing  sync.Once
	closeErr error
}

// Command returns a command that runs the program name with args inside
// the namespace (through ip netns exec), killed if ctx ends first.
func (n *Net) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

var (
	// counter numbers the Nets of this process.
	counter atomic.Int64
	// allocMu serialises picking a /30 and adding its address, so two
	// Nets of this process cannot pick the same.
	allocMu sync.Mutex
)

// TB is the part of testing.TB that [New] uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// New creates a namespace behind a link emulated as o says, and removes it
// when the test ends. It fails the test if it cannot.
func New(t TB, o Options) *Net {
	t.Helper()
	n, err := Open(o)
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("netns: %v", err)
		}
	})
	return n
}

// Open creates a namespace behind a link emulated as o says, for a
// program rather than a test (`hotline bench calls --wan`); Close removes
// it. On an error, nothing is left behind.
func Open(o Options) (_ *Net, err error) {
	if o.Delay < 0 || o.Jitter < 0 || o.Loss < 0 || o.Loss > 100 {
		return nil, fmt.Errorf("invalid options %+v", o)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the ip command (iproute2) is needed: %w", err)
	}
	seq := counter.Add(1)
	pid := os.Getpid()
	n := &Net{Name: fmt.Sprintf("hl-%d-%d", pid, seq)}
	hostDev := fmt.Sprintf("hl%dh%d", pid, seq) // at most 15 bytes: "hl" + 7 + "h" + 5
	peerDev := fmt.Sprintf("hl%dp%d", pid, seq)

	// A namespace of this name can only be a crashed run's.
	if _, err := os.Stat("/run/netns/" + n.Name); err == nil {
		if err := ip("netns", "del", n.Name); err != nil {
			return nil, fmt.Errorf("remove leftover namespace: %w", err)
		}
	}
	if err := ip("netns", "add", n.Name); err != nil {
		return nil, fmt.Errorf("create namespace %s (needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN): %w", n.Name, err)
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	host, err := openTUN(hostDev)
	if err != nil {
		return nil, err
	}
	peer, err := openTUN(peerDev)
	if err != nil {
		host.Close()
		return nil, err
	}
	n.link = startLink(host, peer, o)

	steps := [][]string{
		{"link", "set", "dev", peerDev, "netns", n.Name},
		{"link", "set", "dev", hostDev, "addrgenmode", "none"}, // no IPv6 chatter on the link
		{"-n", n.Name, "link", "set", "dev", peerDev, "addrgenmode", "none"},
		{"-n", n.Name, "link", "set", "dev", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}

	allocMu.Lock()
	defer allocMu.Unlock()
	prefix, err := pickPrefix(pid, seq)
	if err != nil {
		return nil, err
	}
	n.HostAddr = prefix.Addr().Next()
	n.PeerAddr = n.HostAddr.Next()
	steps = [][]string{
		{"addr", "add", netip.PrefixFrom(n.HostAddr, 30).String(), "dev", hostDev},
		{"-n", n.Name, "addr", "add", netip.PrefixFrom(n.PeerAddr, 30).String(), "dev", peerDev},
		{"link", "set", "dev", hostDev, "up"},
		{"-n", n.Name, "link", "set", "dev", peerDev, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Close stops the link and removes the namespace. Programs still running
// in it lose their network. Only the first call does anything.
func (n *Net) Close() error {
	n.closing.Do(func() {
		// The relay first, so its TUN devices are gone (the host's with
		// its file, the peer's with the namespace) when the namespace is.
		if n.link != nil {
			n.link.close()
		}
		n.closeErr = ip("netns", "del", n.Name)
	})
	return n.closeErr
}

// ip runs the ip command with args.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// space is where Nets take their /30s.
var space = netip.MustParsePrefix("198.18.0.0/15")

// pickPrefix returns a /30 of space that no route of the root namespace
// overlaps, trying first one derived from pid and seq.
func pickPrefix(pid int, seq int64) (netip.Prefix, error) {
	routes, err := readRoutes()
	if err != nil {
		return netip.Prefix{}, err
	}
	const blocks = 1 << (30 - 15)
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%d", pid, seq)
	start := h.Sum32()
	base := binary.BigEndian.Uint32(space.Addr().AsSlice())
	for i := range uint32(blocks) {
		b := (start + i) % blocks
		if b == 0 {
			continue // 198.18.0.0/30: the range's first, the likeliest to be taken by hand
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+b*4)
		p := netip.PrefixFrom(netip.AddrFrom4(a), 30)
		free := true
		for _, r := range routes {
			if r.Bits() >= space.Bits() && r.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /30 in %v", space)
}

// readRoutes returns the IPv4 routes of the root namespace's main table.
func readRoutes() ([]netip.Prefix, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, err
	}
	var routes []netip.Prefix
	// Iface Destination Gateway Flags RefCnt Use Metric Mask ..., the
	// addresses as hexadecimal numbers in the host's byte order.
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/net/route: bad line %q", line)
		}
		var d, m [4]byte
		binary.NativeEndian.PutUint32(d[:], uint32(dst))
		binary.NativeEndian.PutUint32(m[:], uint32(mask))
		bits := 0
		for _, x := range m {
			for x&0x80 != 0 {
				bits++
				x <<= 1
			}
		}
		routes = append(routes, netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked())
	}
	return routes, nil
}

// A link relays packets between two TUN devices, one goroutine per
// direction (and one more per direction for its delay line).
type link struct {
	host, peer *os.File
	wg         sync.WaitGroup
	down       atomic.Bool // every packet dropped, both ways
}

func startLink(host, peer *os.File, o Options) *link {
	l := &link{host: host, peer: peer}
	for _, d := range [][2]*os.File{{host, peer}, {peer, host}} {
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		l.wg.Go(func() { relay(d[0], d[1], o, rng, &l.down) })
	}
	return l
}

// SetDown cuts the link (every packet dropped, both ways) or mends it: a
// network that goes away for a while, as when a device changes networks.
func (n *Net) SetDown(down bool) {
	if n.link != nil {
		n.link.down.Store(down)
	}
}

// close stops the relay and closes the devices, and returns when its
// goroutines have.
func (l *link) close() {
	l.host.Close() // ends the reads, and so the relays
	l.peer.Close()
	l.wg.Wait()
}
