package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"hotline/internal/server"
	"hotline/web"
)

func cmdServe(e *cmdEnv, args []string) error {
	fs := newFlags(e, "serve", "serve --data DIR --listen HOST:PORT [flags]")
	data := fs.String("data", "", "data `directory` created by hotline init")
	listen := fs.String("listen", "127.0.0.1:8443", "`address` to listen on")
	db := storeFlags(fs)
	cert := fs.String("tls-cert", "", "PEM certificate to serve instead of DIR/tls/cert.pem")
	key := fs.String("tls-key", "", "PEM private key for --tls-cert")
	insecure := fs.Bool("insecure-http", false, "serve plain HTTP (loopback addresses only)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	credTTL := fs.Duration("credential-ttl", 7*24*time.Hour, "lifetime of device credentials")
	maxListeners := fs.Int("max-listeners", 2, "how many listeners (note-takers, the recorder: on the record, silent) one call takes at most; -1: none (the archive is not counted)")
	lineLoss := fs.Float64("linecheck-max-loss", 5, "the largest `percent` of the far end's probes a line check may lose and be green")
	lineRTT := fs.Duration("linecheck-max-rtt", 600*time.Millisecond, "the longest median round trip, end to end through the forwarder, that a line check calls green")
	readoutWithin := fs.Duration("readout-within", 4*time.Hour, "how long after an ad-hoc call (a principal with a counterpart, outside a scheduled request) its readout is due before the desk is alerted")
	chainInterval := fs.Duration("chain-interval", time.Minute, "how often the heads of conversations' message chains that moved are committed to the transparency log (0: never)")
	addrFile := fs.String("addr-file", "", "write the server's URL to this `file` once it listens (for scripts)")
	proxies := fs.String("trusted-proxy", "", "comma-separated `CIDRs` of reverse proxies whose X-Forwarded-For rate limits believe")
	enrolRate := fs.Float64("enrol-rate", 10, "enrolment attempts allowed per client address per minute")
	mediaUDP := fs.String("media-udp", "", "`ip:port` of the one UDP port for call media (default: config.json's media_udp, else 127.0.0.1:0)")
	mediaTCP := fs.String("media-tcp", "", "`ip:port` of the ICE-TCP fallback for call media (default: config.json's media_tcp, else 127.0.0.1:0)")
	enrolBurst := fs.Int("enrol-burst", 10, "enrolment attempts a client address may make at once")
	webOrigins := fs.String("web-origin", "", "comma-separated browser `origins` that may use passkeys, such as https://hotline.example.org or http://*.localhost:8080 (none: passkeys off)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := required(fs, "data"); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		return usagef("serve: --tls-cert and --tls-key go together")
	}
	var trusted []*net.IPNet
	for _, c := range strings.Split(*proxies, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return usagef("serve: --trusted-proxy: %v", err)
		}
		trusted = append(trusted, n)
	}
	var origins []string
	for _, o := range strings.Split(*webOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	if *lineLoss <= 0 || *lineLoss >= 100 || *lineRTT <= 0 {
		return usagef("serve: --linecheck-max-loss is a percentage above 0 and below 100, --linecheck-max-rtt a positive duration")
	}
	if *chainInterval <= 0 {
		*chainInterval = -1 // server.Config: negative is never, 0 the default
	}
	if *enrolRate <= 0 || *enrolBurst <= 0 {
		return usagef("serve: --enrol-rate and --enrol-burst must be positive")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("serve: --log-level: %v", err)
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level})
	default:
		return usagef("serve: --log-format: want text or json")
	}
	log := slog.New(h)
	slog.SetDefault(log)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *insecure {
		if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
			ln.Close()
			return withHint(fmt.Errorf("--insecure-http is allowed only on a loopback address, not %s", ln.Addr()), "listen on 127.0.0.1 or ::1, or drop --insecure-http")
		}
	}
	srv, err := server.New(e.ctx, server.Config{
		DataDir: *data, Database: db().Database, PasswordFile: db().PasswordFile, TLSCert: *cert, TLSKey: *key,
		InsecureHTTP: *insecure, Logger: log, CredentialTTL: *credTTL, ReadoutWithin: *readoutWithin, MaxListeners: *maxListeners, ChainInterval: *chainInterval,
		LineLossMax: *lineLoss / 100, LineRTTMax: *lineRTT,
		TrustedProxies: trusted, EnrolRate: *enrolRate / 60, EnrolBurst: *enrolBurst,
		MediaUDP: *mediaUDP, MediaTCP: *mediaTCP, Web: web.Files(), WebOrigins: origins,
	})
	if err != nil {
		ln.Close()
		return err
	}
	scheme := "https"
	if *insecure {
		scheme = "http"
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	log.Info("serving", "org", srv.Org(), "url", url, "fingerprint", srv.Fingerprint())
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(url+"\n"), 0o644); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		srv.Shutdown(context.Background())
		return err
	case <-e.ctx.Done():
	}
	log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(ctx)
	<-errc
	return err
}
