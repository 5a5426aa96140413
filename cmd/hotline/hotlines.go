package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"hotline/internal/api"
	"hotline/internal/client"
	"hotline/internal/voice"
)

// Hotlines from the command line: create, list, keep (run a device's end
// of its lines) and wait (until a line is green or red).

func cmdHotline(e *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("hotline: want create, list, keep or wait")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		fs := newFlags(e, "hotline create", "hotline create USER [--device ID] [--interval 1h] --profile DIR [--json]")
		profile := profileFlag(fs)
		device := fs.String("device", "", "the far end's device `ID` (default: the user's only device)")
		interval := fs.Duration("interval", time.Hour, "how often the line is tested end to end")
		asJSON := fs.Bool("json", false, "print as JSON")
		pos, err := parse(fs, args, 1, 1)
		if err != nil {
			return err
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		far, err := userArg(c, pos[0])
		if err != nil {
			return err
		}
		v, err := c.CreateHotline(e.ctx, far.String(), *device, *interval)
		if err != nil {
			return convError(err)
		}
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "hotline %s to %s (device %s), tested every %s; run hotline hotline keep on both ends\n", v.ID, v.FarUser, v.FarDevice, time.Duration(v.Interval)*time.Second)
		return nil
	case "list":
		fs := newFlags(e, "hotline list", "hotline list [--history] --profile DIR [--json]")
		profile := profileFlag(fs)
		history := fs.Bool("history", false, "show each line's latest tests")
		asJSON := fs.Bool("json", false, "print as JSON")
		if _, err := parse(fs, args, 0, 0); err != nil {
			return err
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		hs, err := c.Hotlines(e.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, hs)
		}
		printHotlines(e.stdout, hs, *history)
		return nil
	case "keep":
		fs := newFlags(e, "hotline keep", "hotline keep [--media] [--ready-file FILE] --profile DIR")
		profile := profileFlag(fs)
		readyFile := fs.String("ready-file", "", "write `file` once the device is online (for supervisors and scripts)")
		media := fs.Bool("media", false, "also keep a warm media line to the server, as a phone does (the line check's warm_line)")
		if _, err := parse(fs, args, 0, 0); err != nil {
			return err
		}
		c, release, err := openSynced(e, *profile)
		if err != nil {
			return err
		}
		defer release()
		if *media {
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			line, err := voice.Dial(ctx, c, voice.Options{})
			cancel()
			if err != nil {
				return fmt.Errorf("media line: %w", err)
			}
			defer line.Close()
		}
		fmt.Fprintln(e.stderr, "keeping this device's hotlines; stop with Ctrl-C")
		err = c.KeepHotlines(e.ctx, func(ev client.HotlineEvent) {
			switch ev.Kind {
			case "tested":
				fmt.Fprintf(e.stderr, "hotline %s: answered end to end in %.1f ms\n", ev.Hotline[:8], float64(ev.Latency.Microseconds())/1000)
			case "error":
				fmt.Fprintf(e.stderr, "hotline: warning: %v\n", ev.Err)
			case "linecheck":
				fmt.Fprintln(e.stderr, "line check: answered")
			case "ready":
				fmt.Fprintln(e.stderr, "online")
				if *readyFile != "" {
					if err := os.WriteFile(*readyFile, []byte("online\n"), 0o644); err != nil {
						fmt.Fprintf(e.stderr, "hotline: warning: %v\n", err)
					}
				}
			default:
				fmt.Fprintf(e.stderr, "hotline %s: %s\n", ev.Hotline[:8], ev.Kind)
			}
		})
		if e.ctx.Err() != nil {
			return nil // interrupted: the usual way to stop
		}
		return err
	case "wait":
		fs := newFlags(e, "hotline wait", "hotline wait ID --status green|red [--timeout 60s] --profile DIR")
		profile := profileFlag(fs)
		status := fs.String("status", "green", "the status to wait for: green or red")
		timeout := fs.Duration("timeout", time.Minute, "how long to wait")
		pos, err := parse(fs, args, 1, 1)
		if err != nil {
			return err
		}
		if *status != "green" && *status != "red" {
			return usagef("hotline wait: --status is green or red")
		}
		c, err := openProfile(*profile)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(*timeout)
		for {
			v, err := c.GetHotline(e.ctx, pos[0])
			if err != nil {
				return err
			}
			if v.Status == *status {
				fmt.Fprintf(e.stdout, "hotline %s is %s\n", v.ID, v.Status)
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("hotline %s is still %s after %s", v.ID, v.Status, *timeout)
			}
			select {
			case <-e.ctx.Done():
				return e.ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return usagef("hotline: unknown subcommand %q", sub)
}

func printHotlines(w io.Writer, hs []api.Hotline, history bool) {
	if len(hs) == 0 {
		fmt.Fprintln(w, "no hotlines")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tNEAR END\tFAR END\tEVERY\tLAST ANSWER")
	for _, h := range hs {
		last := "never"
		if h.LastOK != nil {
			last = h.LastOK.Local().Format("2006-01-02 15:04:05")
			for _, t := range h.Tests {
				if t.Result == "ok" {
					last += fmt.Sprintf(" (%.1f ms)", t.LatencyMs)
					break
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID[:8], strings.ToUpper(h.Status), h.NearUser, h.FarUser, time.Duration(h.Interval)*time.Second, last)
	}
	tw.Flush()
	if history {
		for _, h := range hs {
			fmt.Fprintf(w, "hotline %s:\n", h.ID[:8])
			for _, t := range h.Tests {
				fmt.Fprintf(w, "  %s  %-7s  %.1f ms\n", t.At.Local().Format("2006-01-02 15:04:05"), t.Result, t.LatencyMs)
			}
		}
	}
}

// cmdLineCheck checks both ends of a call request's line (the desk).
func cmdLineCheck(e *cmdEnv, args []string) error {
	fs := newFlags(e, "linecheck", "linecheck REQUEST [--no-wait] --profile DIR [--json]")
	profile := profileFlag(fs)
	noWait := fs.Bool("no-wait", false, "start the check and return at once")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, release, err := openSynced(e, *profile)
	if err != nil {
		return err
	}
	defer release()
	id, err := findRequest(e, c, pos[0])
	if err != nil {
		return err
	}
	v, err := c.StartLineCheck(e.ctx, id)
	if err != nil {
		return err
	}
	for !*noWait && v.Status == "running" {
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if v, err = c.GetLineCheck(e.ctx, v.ID); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "line check %s: %s\n", v.ID, strings.ToUpper(v.Status))
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, end := range v.Ends {
		for _, p := range end.Checks {
			note := p.Reason
			if m := end.Media; p.Name == "media" && m != nil && m.Unsupported == "" {
				note = strings.TrimSpace(fmt.Sprintf("%s  round trip %.1f ms (max %.1f), %.0f %% of the far end's probes lost, %d/%d echoes",
					p.Reason, m.RTTMs, m.RTTMaxMs, 100*m.Loss, m.Echoes, m.Sent))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", end.Side, end.User, p.Name, strings.ToUpper(p.Status), note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v.Status == "red" {
		return withHint(fmt.Errorf("the line is red"), "each red check names its reason; docs/desk.md explains them")
	}
	return nil
}
