package main

import (
	"fmt"
	"net/netip"
	"time"

	"hotline/internal/callbench"
)

// cmdBench runs benchmarks of a whole Hotline in this process.
func cmdBench(e *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] != "calls" {
		return usagef("bench: name a benchmark: calls")
	}
	fs := newFlags(e, "bench calls", "bench calls [--calls N] [--cold] [--wan] [--host IP] [--json]\n\n"+
		"Times call setup, dial to the first frame the callee decrypts, through a server in this process:\n"+
		"warm (media connected in advance), cold (--cold) and two bare pion peers' fresh handshake.")
	n := fs.Int("calls", 100, "calls of each kind")
	cold := fs.Bool("cold", false, "also time cold calls (no media connection in advance)")
	host := fs.String("host", "127.0.0.1", "`IP` the server listens on, for HTTPS and media")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	wan := fs.Bool("wan", false, "put the server behind an emulated WAN, 50 ms each way and 1 % loss, in a network namespace (needs root; --host is then ignored)")
	if _, err := parse(fs, args[1:], 0, 0); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*host)
	if err != nil {
		return usagef("bench calls: --host: %v", err)
	}
	o := callbench.Options{Calls: *n, Cold: *cold, Host: ip, Log: e.stderr}
	if *wan {
		o.WAN = callbench.DefaultWAN()
	}
	res, err := callbench.Run(e.ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	rtt := res.RTT.P50
	row := func(name string, f callbench.Figures) {
		fmt.Fprintf(e.stdout, "%-9s %5d %10s %10s %10s %8.2f %8.1f %6d\n", name, f.N, ms(f.P50), ms(f.P99), ms(f.Mean),
			float64(f.P50)/float64(res.Baseline.P50), float64(f.P50)/float64(rtt), f.Failures)
	}
	fmt.Fprintf(e.stdout, "host %s, device-server round trip p50 %s\n", res.Host, ms(rtt))
	fmt.Fprintf(e.stdout, "%-9s %5s %10s %10s %10s %8s %8s %6s\n", "setup", "n", "p50", "p99", "mean", "/base", "RTTs", "failed")
	row("warm", res.Warm)
	if res.Cold != nil {
		row("cold", *res.Cold)
	}
	row("baseline", res.Baseline)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
