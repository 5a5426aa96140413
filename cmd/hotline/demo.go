package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"hotline/internal/demo"
	"hotline/web"
)

func cmdDemo(e *cmdEnv, args []string) error {
	fs := newFlags(e, "demo", "demo [--data DIR] [--listen 127.0.0.1:PORT] [--fresh]")
	data := fs.String("data", "hotline-demo", "data `directory` of the demo organisation (kept between runs)")
	listen := fs.String("listen", "127.0.0.1:8080", "loopback `address` to serve on")
	fresh := fs.Bool("fresh", false, "delete the demo's data directory first and seed a new organisation")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("demo: --log-level: %v", err)
	}
	files := web.Files()
	if files == nil {
		return withHint(fmt.Errorf("this hotline binary was built without the web client"), "run `make run` (or `make web` and then build hotline again)")
	}
	if *fresh {
		if _, err := os.Stat(filepath.Join(*data, "config.json")); err == nil {
			if _, err := os.Stat(filepath.Join(*data, "demo.json")); err != nil {
				return withHint(fmt.Errorf("%s holds an organisation that is not a demo; not deleting it", *data), "pass another --data")
			}
		}
		if err := os.RemoveAll(*data); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	d, err := demo.Start(e.ctx, demo.Options{Dir: *data, Listen: *listen, Web: files, Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Hotline demo: organisation %s, data in %s.\n\n", demo.Org, *data)
	fmt.Fprintf(e.stdout, "Open each person in a browser window of their own. Each address is its own origin,\n")
	fmt.Fprintf(e.stdout, "so each browser keeps its own keys; the first visit enrols it.\n\n")
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, p := range d.People {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, d.URL(p))
		fmt.Fprintf(tw, "  \t%s (%s)\n", p.About, p.Role)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\nThe demo's security officer approves these browsers as they enrol.\n")
	fmt.Fprintf(e.stdout, "Try: open principal and duty, message each other, send a file; then open counterpart.\n")
	fmt.Fprintf(e.stdout, "Stop with Ctrl-C. Run again to carry on, or with --fresh to start over\n")
	fmt.Fprintf(e.stdout, "(a browser enrolled in an earlier organisation then needs its site data cleared).\n")
	<-e.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Close(ctx)
}
