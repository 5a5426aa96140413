package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/netns"
	"hotline/internal/server"
	"hotline/internal/voice"
	"hotline/internal/workflow"
)

// farDeviceEnv, set to a profile directory, makes the test binary a far-end
// device (farDevice) rather than run tests: a program of its own, so that
// it can run in a network namespace behind an emulated link.
const farDeviceEnv = "HOTLINE_TEST_FAR_DEVICE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(farDeviceEnv); dir != "" {
		os.Exit(farDevice(dir))
	}
	os.Exit(m.Run())
}

// farDevice runs the device of the profile in dir as a phone does: a warm
// media line to its server, its event stream followed, line checks
// answered (KeepHotlines). It prints "ready" once online and stops when
// its standard input closes.
func farDevice(dir string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	c, err := client.Open(dir, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "far device:", err)
		return 1
	}
	// UDP only: the link's losses reach the media as losses (over ICE-TCP
	// they would be retransmitted, and arrive late).
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	line, err := voice.Dial(dctx, c, voice.Options{NetworkTypes: []webrtc.NetworkType{webrtc.NetworkTypeUDP4}})
	dcancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "far device: warm line:", err)
		return 1
	}
	defer line.Close()
	err = c.KeepHotlines(ctx, func(ev client.HotlineEvent) {
		switch ev.Kind {
		case "ready":
			fmt.Println("ready")
		case "error":
			fmt.Fprintln(os.Stderr, "far device:", ev.Err)
		}
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "far device:", err)
		return 1
	}
	return 0
}

// startFarDevice runs m's device in n's namespace (its in-process client
// must not be used from then on: the profile is the far device's).
func startFarDevice(t *testing.T, n *netns.Net, m *member) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	cmd := n.Command(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), farDeviceEnv+"="+m.Dir())
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			kill()
			<-done
		}
		kill()
		if t.Failed() {
			t.Logf("far device's stderr:\n%s", stderr)
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the far device exited before it was online:\n%s", stderr)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the far device was not online in 90 s:\n%s", stderr)
	}
}

// A line check whose far end is behind a link that drops 20 % of packets
// (each way) is red, and says why: the media check, measured end to end
// through the forwarder by the far-end device itself, names packet_loss.
// Everything else about the line is green: credentials, online, warm line,
// log and group.
func TestLineCheckPacketLoss(t *testing.T) {
	const loss = 20
	n := netns.New(t, netns.Options{Loss: loss})
	host := n.HostAddr.String()
	o := newDeskOrgAt(t, "sqlite", net.JoinHostPort(host, "0"), func(c *server.Config) {
		c.DeskSweep = 20 * time.Millisecond
		c.MediaUDP, c.MediaTCP = net.JoinHostPort(host, "0"), net.JoinHostPort(host, "0")
		c.LineCheckTimeout = time.Minute // TCP across a lossy link is slow to answer
	})
	ctx := t.Context()
	v := scheduledCall(t, o, "line check across a lossy link")
	sync1(t, o.principal, o.counterpart)

	// The principal's device, on this side of the link, with its warm line
	// on the link's address (as the far end sees the server).
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	line, err := voice.Dial(dctx, o.principal.Client, voice.Options{IPFilter: func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && a.Unmap() == n.HostAddr
	}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { line.Close() })
	keep(t, o.principal)
	// The counterpart's, beyond the link.
	startFarDevice(t, n, o.counterpart)

	var lc api.LineCheck
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if lc, err = o.duty.StartLineCheck(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		for lc.Status == "running" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			if lc, err = o.duty.GetLineCheck(ctx, lc.ID); err != nil {
				t.Fatal(err)
			}
		}
		// The far end's warm line comes up after its event stream, and
		// its media path across the lossy link a moment after that (under
		// load, a first check can find none of its probes arriving:
		// no_media): check again until the server sees both ends up.
		if !slices.ContainsFunc(reasons(lc), func(r string) bool {
			return strings.Contains(r, "warm_line") || strings.Contains(r, "offline") || strings.Contains(r, "no_far_end") || strings.Contains(r, "no_media")
		}) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, e := range lc.Ends {
		t.Logf("%s: media %+v", e.Side, e.Media)
	}
	got := reasons(lc)
	if lc.Status != "red" || len(got) == 0 {
		t.Fatalf("across a link losing %d %%: %s %v", loss, lc.Status, got)
	}
	for _, r := range got {
		if !strings.HasSuffix(r, " media packet_loss") {
			t.Errorf("red for another reason than packet loss: %v", got)
			break
		}
	}
	// What the ends measured: the losses the link made, a round trip.
	for _, e := range lc.Ends {
		m := e.Media
		if m == nil || m.Sent != workflow.LineProbes || m.Echoes == 0 || m.RTTMs <= 0 {
			t.Errorf("%s measured %+v", e.Side, m)
			continue
		}
		if red := slices.Contains(got, e.Side+" media packet_loss"); red && m.Loss <= workflow.DefaultLineLossMax {
			t.Errorf("%s red for a loss of %.2f", e.Side, m.Loss)
		}
	}
}
