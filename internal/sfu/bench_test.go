package sfu

// Benchmarks of forwarding. Run them with
//
//	go test -run '^$' -bench . -count 3 ./internal/sfu/
//
// BenchmarkCalls measures the whole server: the SFU runs in a child
// process (this test binary, started again with HOTLINE_SFU_BENCH_CHILD
// set) and the devices in this one, so the child's CPU time, from
// getrusage, is the SFU's alone: reading from the UDP socket, SRTP,
// forwarding, RTCP, ICE keepalives, GC. (Alone but for one thing: on
// loopback the kernel delivers a sent packet to the receiving socket
// within the sender's system call, so the SFU's system time includes the
// devices' UDP input.) Its cpu-us/fwd is that CPU time divided by the
// packets forwarded, the figure LiveKit publishes (about 13 µs per
// forwarded audio packet).
//
// BenchmarkWrite isolates the write half of a forward: one packet written
// to the slots of R devices (header rewrite, pion's track, SRTP, the send
// system call), timed by the CPU clock of the benchmark's own thread,
// which does all of it.
//
// BenchmarkCalls also measures one-way latency, device to device through
// the SFU (ms-p50, ms-p99), and in the same run a baseline without the
// SFU: as many devices in pairs, sending straight to each other
// (direct-ms-p50, direct-ms-p99); added-ms-p50 and added-ms-p99 are the
// differences. Every device is in this process, so the latency is
// measured on one clock (latency_test.go). Both ends share the machine's
// CPUs with the SFU: docs/benchmarks.md says what the tail does and does
// not measure.
//
// HOTLINE_SFU_BENCH_CALLS=1,10,30,60 sets the numbers of calls
// BenchmarkCalls runs (default 1, 10, 30, 50). Its cores metric is the
// share of a CPU the child SFU used over the window, dev-cores that of
// the devices' process (direct-dev-cores in the baseline), other-cores
// that of the rest of the machine (from /proc/stat: other work on a
// shared machine, and interrupt time not charged to a process; sampled
// at the kernel's clock tick, so rough, sometimes below 0). Devices
// send at random phases of the 20 ms period; HOTLINE_SFU_BENCH_INSTEP=1
// makes them send in step, as the first version of the benchmark did.
//
// HOTLINE_SFU_BENCH_CPUPROFILE=file makes the child SFU of BenchmarkCalls
// write a CPU profile of its whole life (connections included) to file.
// HOTLINE_SFU_BENCH_TRACE=file makes it write an execution trace of the
// measurement window (go tool trace file); -test.trace traces the
// devices' process, on the same clock.
//
// The devices' process runs BenchmarkCalls with its garbage collector
// off (up to a memory limit): one collector for every device stalled
// them all at once, which separate devices never are, and set the
// latency's tail. HOTLINE_SFU_BENCH_DEVICEGC=1 leaves it on.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

const childEnv = "HOTLINE_SFU_BENCH_CHILD"

// A childRequest asks the child SFU to do something; a childResponse is
// its answer.
type childRequest struct {
	Op     string // connect, join, usage
	Device string
	Call   string
	SDP    string
}

type childResponse struct {
	SDP       string
	Err       string
	User, Sys time.Duration // the child's CPU time
	Forwarded uint64
	Fast      uint64 // forwarded on the fast path
}

// runChild serves an SFU on 127.0.0.1 to the parent benchmark, one JSON
// request on stdin, one response on stdout, until stdin closes.
func runChild() int {
	// HOTLINE_SFU_BENCH_PIONPATH=1 turns the fast path off, to compare.
	s, err := New(Config{PionPath: os.Getenv("HOTLINE_SFU_BENCH_PIONPATH") == "1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	if path := os.Getenv("HOTLINE_SFU_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	// The window is between the first two usage requests.
	tracePath, usages := os.Getenv("HOTLINE_SFU_BENCH_TRACE"), 0
	var traceFile *os.File
	defer func() {
		if traceFile != nil {
			trace.Stop()
			traceFile.Close()
		}
	}()
	dec, enc := json.NewDecoder(os.Stdin), json.NewEncoder(os.Stdout)
	for {
		var req childRequest
		if err := dec.Decode(&req); err != nil {
			return 0
		}
		var resp childResponse
		switch req.Op {
		case "connect":
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp.SDP, err = s.Connect(ctx, req.Device, req.SDP)
			cancel()
		case "join":
			err = s.Join(req.Call, req.Device)
		case "usage":
			resp.User, resp.Sys, err = processCPU()
			resp.Forwarded, resp.Fast = s.forwarded.Load(), s.fastOut.Load()
			usages++
			switch {
			case tracePath == "" || err != nil:
			case usages == 1:
				if traceFile, err = os.Create(tracePath); err == nil {
					err = trace.Start(traceFile)
				}
			case usages == 2 && traceFile != nil:
				trace.Stop()
				err = traceFile.Close()
				traceFile = nil
			}
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			resp.Err = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			return 1
		}
	}
}

// childSFU is the parent's end of a child SFU.
type childSFU struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startChild(b *testing.B) *childSFU {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &childSFU{cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}
	b.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("child SFU: %v", err)
		}
	})
	return c
}

func (c *childSFU) do(req childRequest) (childResponse, error) {
	if err := json.NewEncoder(c.in).Encode(req); err != nil {
		return childResponse{}, err
	}
	var resp childResponse
	if err := c.out.Decode(&resp); err != nil {
		return childResponse{}, err
	}
	if resp.Err != "" {
		return resp, errors.New(resp.Err)
	}
	return resp, nil
}

func (c *childSFU) Connect(_ context.Context, device, offerSDP string) (string, error) {
	resp, err := c.do(childRequest{Op: "connect", Device: device, SDP: offerSDP})
	return resp.SDP, err
}

// BenchmarkCalls runs concurrent 3-party calls, every device sending a
// packet of 80 to 160 bytes every 20 ms, and reports the SFU's CPU time
// per forwarded packet, the packets forwarded per second, the loss seen
// by the devices, and the one-way latency through the SFU, over a 5 s
// window; and, measured just before in the same run, the one-way latency
// of the baseline: as many devices in pairs, sending to each other
// directly (latency_test.go).
func BenchmarkCalls(b *testing.B) {
	if _, _, err := processCPU(); err != nil {
		b.Skip(err)
	}
	levels := []int{1, 10, 30, 50}
	if env := os.Getenv("HOTLINE_SFU_BENCH_CALLS"); env != "" {
		levels = nil
		for f := range strings.SplitSeq(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("HOTLINE_SFU_BENCH_CALLS=%q: want numbers of calls, comma-separated", env)
			}
			levels = append(levels, n)
		}
	}
	for _, calls := range levels {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			for range b.N {
				benchCalls(b, calls, 5*time.Second)
			}
		})
	}
}

// devicesMemoryLimit bounds the devices' heap while their garbage
// collector is off.
const devicesMemoryLimit = 4 << 30

// A benchDevice is a client in a call of BenchmarkCalls, sending and
// receiving timed packets.
type benchDevice struct {
	*client
	rcv *timedReceiver
	snd *timedSender
}

func benchCalls(b *testing.B, calls int, window time.Duration) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	if os.Getenv("HOTLINE_SFU_BENCH_DEVICEGC") == "" {
		// One garbage collector for every device would stall them all at
		// once, as separate devices never are: at 50 calls it marked 50 MB
		// for 80-120 ms every 1.6 s, the devices' goroutines doing most of
		// it as mark assists, and latency through the SFU had 20-150 ms
		// episodes in step with it (docs/benchmarks.md). So none during
		// the run, within a memory limit: the process allocates about
		// 30 MB/s at 50 calls.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(devicesMemoryLimit))
	}
	direct := benchDirect(ctx, b, 3*calls, window)

	child := startChild(b)
	var all [][]*benchDevice
	for i := range calls {
		var members []*benchDevice
		for j := range 3 {
			d := &benchDevice{client: newClient(b, fmt.Sprintf("dev%d.%d", i, j), clientOpts{}), rcv: newTimedReceiver()}
			// The client's own handler would count timed payloads as
			// damaged.
			d.pc.OnTrack(d.rcv.onTrack)
			d.connect(ctx, child)
			if _, err := child.do(childRequest{Op: "join", Call: fmt.Sprint("call", i), Device: d.id}); err != nil {
				b.Fatal(err)
			}
			members = append(members, d)
		}
		all = append(all, members)
	}
	defer func() {
		for _, members := range all {
			for _, d := range members {
				if d.snd != nil {
					d.snd.close()
				}
				d.close()
			}
		}
	}()
	for _, members := range all {
		for _, d := range members {
			d.snd = startTimed(d.id, d.mic, randomPhase())
		}
	}
	for _, members := range all {
		for _, d := range members {
			for _, o := range members {
				if o != d {
					waitFor(ctx, b, "warm-up", func() bool { return d.rcv.count(o.id) >= 5 })
				}
			}
		}
	}

	b.ResetTimer()
	u0, err := child.do(childRequest{Op: "usage"})
	if err != nil {
		b.Fatal(err)
	}
	m := startMachineWindow(b)
	user0, sys0, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	from := make(map[*benchDevice]uint32)
	for _, members := range all {
		for _, d := range members {
			from[d] = d.snd.sent.Load()
		}
	}
	start := time.Now()
	time.Sleep(window) // the measurement window
	u1, err := child.do(childRequest{Op: "usage"})
	if err != nil {
		b.Fatal(err)
	}
	user1, sys1, err := processCPU()
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	machine := m.cores(b)
	to := make(map[*benchDevice]uint32)
	for _, members := range all {
		for _, d := range members {
			to[d] = d.snd.sent.Load()
		}
	}
	b.StopTimer()
	time.Sleep(500 * time.Millisecond) // let the window's last packets land

	var w latencyWindow
	var sent uint32
	for _, members := range all {
		for _, d := range members {
			sent += to[d] - from[d]
			for _, o := range members {
				if o != d {
					w.add(d.rcv, o.id, from[o], to[o])
				}
			}
			if n := d.rcv.damaged(); n > 0 {
				b.Errorf("%s: %d packets without a timed payload", d.id, n)
			}
		}
	}
	fwd := float64(u1.Forwarded - u0.Forwarded)
	b.ReportMetric(0, "ns/op")
	user, sys := u1.User-u0.User, u1.Sys-u0.Sys
	b.ReportMetric(float64(user+sys)/float64(time.Microsecond)/fwd, "cpu-us/fwd")
	b.ReportMetric(float64(sys)/float64(time.Microsecond)/fwd, "sys-us/fwd")
	b.ReportMetric(fwd/elapsed.Seconds(), "fwd/s")
	b.ReportMetric(100*float64(u1.Fast-u0.Fast)/fwd, "fast-%")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "sent/s")
	cores, devCores := float64(user+sys)/float64(elapsed), float64(user1-user0+sys1-sys0)/float64(elapsed)
	b.ReportMetric(cores, "cores")
	b.ReportMetric(w.lossPercent(), "loss-%")
	b.ReportMetric(devCores, "dev-cores")
	b.ReportMetric(machine-cores-devCores, "other-cores")
	p50, p99 := w.quantile(0.50), w.quantile(0.99)
	b.ReportMetric(p50, "ms-p50")
	b.ReportMetric(p99, "ms-p99")
	d50, d99 := direct.quantile(0.50), direct.quantile(0.99)
	b.ReportMetric(d50, "direct-ms-p50")
	b.ReportMetric(d99, "direct-ms-p99")
	b.ReportMetric(p50-d50, "added-ms-p50")
	b.ReportMetric(p99-d99, "added-ms-p99")
	b.ReportMetric(direct.lossPercent(), "direct-loss-%")
	b.ReportMetric(direct.cores, "direct-dev-cores")
	b.ReportMetric(direct.otherCores, "direct-other-cores")
}

// BenchmarkWrite measures writing one packet to the slots of R devices,
// the write half of a forward, in CPU time of the writing thread per
// packet written.
func BenchmarkWrite(b *testing.B) {
	if _, err := threadCPU(); err != nil {
		b.Skip(err)
	}
	for _, r := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("receivers=%d", r), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
			defer cancel()
			log := newSlotLog()
			s, err := New(Config{OnSlots: log.onSlots})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var clients []*client
			for i := range r + 1 {
				c := newClient(b, fmt.Sprintf("dev%d", i), clientOpts{})
				c.connect(ctx, s)
				if err := s.Join("c1", c.id); err != nil {
					b.Fatal(err)
				}
				clients = append(clients, c)
			}
			s.mu.Lock()
			src := s.peers["dev0"]
			s.mu.Unlock()
			routes := *src.routes.Load()
			if len(routes) != r {
				b.Fatalf("%d routes, want %d", len(routes), r)
			}
			pkt := rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 111, SSRC: 1},
				Payload: payload("dev0", 0),
			}
			// Each receiver gets a first packet, and its OnTrack, before the
			// clock starts.
			for _, o := range routes {
				o.write(src, &pkt, time.Now())
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, _ := threadCPU()
			for b.Loop() {
				pkt.SequenceNumber++
				pkt.Timestamp += 960
				now := time.Now()
				for _, o := range routes {
					o.write(src, &pkt, now)
				}
			}
			cpu1, _ := threadCPU()
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N*r), "cpu-ns/write")
			for _, c := range clients {
				c.close()
			}
		})
	}
}

// BenchmarkKeep measures keeping a microphone's newest packet for the
// pre-roll (lastPacket.keep), which every received packet pays: compare
// with the SFU's CPU per forwarded packet (BenchmarkCalls), tens of µs.
func BenchmarkKeep(b *testing.B) {
	var l lastPacket
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: payload("dev0", 7)}
	now := time.Now()
	for b.Loop() {
		pkt.SequenceNumber++
		l.keep(&pkt, now, false)
	}
}
