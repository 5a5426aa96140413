// Package server wires Hotline's HTTP and WebSocket API to the organisation
// service, the transparency log and the event hub. Only cmd/hotline imports
// it. Decisions live in internal/org; this package decodes requests,
// authenticates devices, applies rate limits and writes responses.
//
// Shutdown order: stop accepting connections and close event streams; wait
// for in-flight requests; close the transparency log (it integrates what is
// queued); close the store.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/call"
	"hotline/internal/datadir"
	"hotline/internal/deliver"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/org"
	"hotline/internal/sfu"
	"hotline/internal/store"
	"hotline/internal/transparency"
	"hotline/internal/workflow"
)

// Config configures a server.
type Config struct {
	DataDir      string
	Database     string // PostgreSQL URL, overriding config.json
	PasswordFile string
	TLSCert      string // PEM files to use instead of DIR/tls
	TLSKey       string
	InsecureHTTP bool // plain HTTP; allowed only on loopback listeners
	// Web is the web client's files (web.Files()), served at /; nil serves
	// a page saying the client is not built.
	Web    fs.FS
	Logger *slog.Logger

	CredentialTTL time.Duration
	SessionTTL    time.Duration
	InviteTTL     time.Duration
	// EnrolRate and EnrolBurst limit enrolment attempts per client address
	// (default 10 a minute, burst 10).
	EnrolRate  float64
	EnrolBurst int
	// AuthRate and AuthBurst limit authentication attempts per client
	// address (default 2 a second, burst 60).
	AuthRate  float64
	AuthBurst int
	// TrustedProxies are reverse proxies whose X-Forwarded-For is believed
	// when deciding a request's client address for rate limits.
	TrustedProxies []*net.IPNet
	Now            func() time.Time
	// Misbehave makes the delivery service break its rules, for tests
	// that show clients refuse what an honest server would have refused.
	// No flag sets it.
	Misbehave deliver.Misbehaviour
	// RingTimeout is how long a call rings unanswered (0: 45 seconds).
	RingTimeout time.Duration
	// MediaUDP and MediaTCP are the "ip:port" addresses call media binds
	// to: one UDP port for all media, and the ICE-TCP fallback (default:
	// config.json's media_udp and media_tcp, else 127.0.0.1:0 each; a
	// specific IP, never 0.0.0.0).
	MediaUDP, MediaTCP string
	// MediaDropAfter is how long a device's media transport may stay down
	// before it is dropped from its call (0: sfu.DefaultDropAfter, 10 s).
	MediaDropAfter time.Duration
	// QualityInterval is how often call participants are told their media
	// quality (0: 5 seconds).
	QualityInterval time.Duration
	// WebOrigins are the browser origins allowed to register and use
	// passkeys, such as "https://hotline.example.org", or with one leading
	// wildcard label, "http://*.localhost:8080". A passkey's relying party
	// ID is its origin's host name. None: the passkey routes are
	// unavailable.
	WebOrigins []string
	// DeskSweep is how often overdue commitments and readouts, and hotline
	// tests due or unanswered, are looked for (0: 2 seconds).
	DeskSweep time.Duration
	// ReadoutWithin is how long after an ad-hoc call its readout is due
	// (0: 4 hours; serve --readout-within).
	ReadoutWithin time.Duration
	// MaxListeners caps the listeners (note-takers, archive, recorder)
	// joined to one call (0: 2; negative: none; serve --max-listeners).
	MaxListeners int
	// LineCheckTimeout, LineLossMax and LineRTTMax configure line checks
	// (0: workflow's defaults: 10 s to answer, 5 % loss, 600 ms round trip).
	LineCheckTimeout time.Duration
	LineLossMax      float64
	LineRTTMax       time.Duration
	// MaxPasskeyCeremonies bounds the passkey ceremonies pending at once
	// (0: 10,000).
	MaxPasskeyCeremonies int
	// ChainInterval is how often the heads of conversations' message
	// chains that moved are committed to the transparency log (0: a
	// minute; negative: never; serve --chain-interval).
	ChainInterval time.Duration
}

// Server is a running Hotline server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	dir     *datadir.Dir
	store   *store.Store
	tlog    *transparency.Log
	hub     *events.Hub
	svc     *org.Service
	deliver *deliver.Service
	calls   *call.Service
	// workflow is the duty desk: call requests, schedule, briefings.
	workflow *workflow.Service
	media    *sfu.SFU
	// qualityPrev holds each device's media counters at the last quality
	// report (callQuality); qualityMu guards it.
	qualityMu   sync.Mutex
	qualityPrev map[string]sfu.ParticipantStats
	metrics     *serverMetrics
	limits      *limiters
	webOrigins  []webOrigin // cfg.WebOrigins, parsed
	ceremonies  *ceremonies // pending passkey ceremonies
	acks        acker
	tls         *tls.Config
	pin         string
	origin      string
	keyset      []byte
	keys        identity.KeySet // keyset, parsed

	http    *http.Server
	ctx     context.Context // cancelled at shutdown
	cancel  context.CancelFunc
	wg      sync.WaitGroup // background loops
	closing sync.Once

	streamMu sync.Mutex     // guards stopping
	stopping bool           // no new event streams once set
	streams  sync.WaitGroup // open event streams (hijacked: http.Server does not track them)
}

// streamStart registers a new event stream unless the server is stopping.
func (s *Server) streamStart() bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.stopping {
		return false
	}
	s.streams.Add(1)
	return true
}

// New opens the data directory, the database and the log, and prepares the
// handlers. It does not listen; call Serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var webOrigins []webOrigin
	for _, o := range cfg.WebOrigins {
		wo, err := parseWebOrigin(o)
		if err != nil {
			return nil, err
		}
		webOrigins = append(webOrigins, wo)
	}
	dir, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, dir: dir, hub: events.NewHub(pushedWire), origin: identity.LogKeyName(dir.Config.Org),
		webOrigins: webOrigins, ceremonies: newCeremonies(cfg.MaxPasskeyCeremonies)}
	if !cfg.InsecureHTTP {
		if err := s.loadTLS(); err != nil {
			return nil, err
		}
	}
	issuer, err := dir.Issuer()
	if err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	logKey, err := dir.LogSigner()
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	s.store, err = dir.OpenStore(ctx, datadir.StoreOptions{Database: cfg.Database, PasswordFile: cfg.PasswordFile, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	delivery, err := dir.DeliverySigner()
	if err != nil {
		return nil, fmt.Errorf("delivery key: %w", err)
	}
	if err := s.checkKeys(ctx, issuer, logKey, delivery); err != nil {
		s.store.Close()
		return nil, err
	}
	if _, err := os.Stat(dir.File(datadir.RootKeyFile)); err == nil {
		cfg.Logger.Warn("the offline root key is still in the data directory; move it off this server", "file", dir.File(datadir.RootKeyFile))
	}
	s.metrics = newServerMetrics(s)
	s.tlog, err = transparency.Open(ctx, s.store, s.origin, logKey.Signer, transparency.Options{
		Logger: cfg.Logger, Now: cfg.Now,
		OnCheckpoint: func(size int64, signed []byte) {
			s.metrics.logSize.Store(size)
			s.hub.Broadcast(events.Notice{Kind: "checkpoint", Data: signed})
		},
	})
	if err != nil {
		s.store.Close()
		return nil, err
	}
	s.svc = org.New(org.Config{
		Org: dir.Config.Org, Issuer: issuer.Signer, KeySet: s.keyset, Store: s.store, Log: s.tlog, Hub: s.hub,
		CredentialTTL: cfg.CredentialTTL, SessionTTL: cfg.SessionTTL, InviteTTL: cfg.InviteTTL, Now: cfg.Now, Logger: cfg.Logger,
	})
	dsSigner, err := delivery.CryptoSigner()
	if err != nil {
		s.store.Close()
		return nil, fmt.Errorf("delivery key: %w", err)
	}
	dsKey, err := mls.NewEd25519Signer(dsSigner)
	if err != nil {
		s.store.Close()
		return nil, fmt.Errorf("delivery key: %w", err)
	}
	s.deliver = deliver.New(deliver.Config{Store: s.store, Org: s.svc, Hub: s.hub, Issuers: note.VerifierList(issuer.Verifier), Log: s.tlog,
		KeySet: s.keys, DeliverySigner: dsKey, RequireArchive: dir.Config.RequireArchive, Now: cfg.Now, Logger: cfg.Logger, Misbehave: cfg.Misbehave})
	mediaUDP, mediaTCP := cmp.Or(cfg.MediaUDP, dir.Config.MediaUDP), cmp.Or(cfg.MediaTCP, dir.Config.MediaTCP)
	s.media, err = sfu.New(sfu.Config{UDPAddr: mediaUDP, TCPAddr: mediaTCP, DropAfter: cfg.MediaDropAfter, OnSlots: s.mediaSlots, OnGone: s.mediaGone, Logger: cfg.Logger})
	if err != nil {
		s.store.Close()
		return nil, fmt.Errorf("media: %w", err)
	}
	s.workflow = workflow.New(workflow.Config{Store: s.store, Org: s.svc, Hub: s.hub, Now: cfg.Now, Logger: cfg.Logger, ReadoutWithin: cfg.ReadoutWithin,
		MediaUp: func(device string) bool { _, err := s.media.Stats(device); return err == nil },
		Probe:   s.media, LineCheckTimeout: cfg.LineCheckTimeout, LineLossMax: cfg.LineLossMax, LineRTTMax: cfg.LineRTTMax})
	s.calls = call.New(call.Config{Store: s.store, Org: s.svc, Hub: s.hub, Media: s.media, Now: cfg.Now, RingTimeout: cfg.RingTimeout, Logger: cfg.Logger,
		OnPlaced: s.workflow.CallPlaced, MaxListeners: cfg.MaxListeners})
	s.limits = newLimiters(cfg)
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.http = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.wg.Go(func() { s.every(time.Minute, s.housekeeping) })
	s.wg.Go(func() { s.every(time.Second, s.callTimeouts) })
	s.wg.Go(func() { s.every(cmp.Or(cfg.DeskSweep, 2*time.Second), s.deskSweep) })
	s.wg.Go(func() { s.every(cmp.Or(cfg.QualityInterval, 5*time.Second), s.callQuality) })
	if cfg.ChainInterval >= 0 {
		s.wg.Go(func() { s.every(cmp.Or(cfg.ChainInterval, time.Minute), s.commitChains) })
	}
	s.wg.Go(s.ackLoop)
	return s, nil
}

func (s *Server) loadTLS() error {
	var (
		cert tls.Certificate
		err  error
	)
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		cert, err = tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	} else {
		cert, err = s.dir.TLSCertificate()
	}
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.pin = datadir.Fingerprint(cert.Certificate[0])
	s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	return nil
}

// checkKeys loads the latest key set and refuses to start if the online
// keys on disk are not the ones it names (a half-finished rotation).
func (s *Server) checkKeys(ctx context.Context, issuer, logKey, delivery identity.OrgKey) error {
	root, err := s.dir.RootVerifier()
	if err != nil {
		return err
	}
	sets, err := datadir.KeySets(ctx, s.store, root)
	if err != nil {
		return fmt.Errorf("key sets: %w", err)
	}
	if len(sets) == 0 {
		return errors.New("the database holds no key set; was `hotline init` run for it?")
	}
	cur := sets[len(sets)-1]
	if cur.Issuer != issuer.VerifierKey || cur.Log != logKey.VerifierKey || cur.Delivery != delivery.VerifierKey {
		return fmt.Errorf("the online keys in %s are not the ones key set %d names; finish the rotation (docs/operator.md)", s.dir.Path, cur.Serial)
	}
	s.keys = cur
	return s.store.View(ctx, func(tx *store.Tx) error {
		_, s.keyset, err = tx.LatestKeySet(ctx)
		return err
	})
}

// Fingerprint returns the TLS certificate pin ("" over plain HTTP).
func (s *Server) Fingerprint() string { return s.pin }

// Org returns the organisation's domain name.
func (s *Server) Org() string { return s.dir.Config.Org }

// Log returns the transparency log (tests use it to wait for checkpoints).
func (s *Server) Log() *transparency.Log { return s.tlog }

// Serve accepts connections on ln until Shutdown. Plain HTTP is refused
// unless InsecureHTTP is set and ln is a loopback address.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.InsecureHTTP {
		if !isLoopback(ln.Addr()) {
			return fmt.Errorf("--insecure-http is allowed only on a loopback address, not %s", ln.Addr())
		}
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
	err := s.http.Serve(tls.NewListener(ln, s.tls))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Shutdown stops the server in the documented order. It is safe to call more
// than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closing.Do(func() {
		s.streamMu.Lock()
		s.stopping = true
		s.streamMu.Unlock()
		s.hub.Shutdown(shutdownReason)
		err = s.http.Shutdown(ctx)
		s.cancel()
		s.streams.Wait()
		s.wg.Wait()
		err = errors.Join(err, s.media.Close(), s.tlog.Close(), s.store.Close())
	})
	return err
}

// every runs fn every d until the server shuts down.
func (s *Server) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// callTimeouts ends calls that ring unanswered too long.
func (s *Server) callTimeouts() {
	if err := s.calls.Expire(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("end unanswered calls", "err", err)
	}
}

// deskSweep alerts the owners and the duty desk of commitments gone
// overdue, the desk and principals of readouts gone missing and the desk
// of hotlines gone red, and starts hotline tests.
func (s *Server) deskSweep() {
	if n, err := s.workflow.Sweep(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("desk sweep", "err", err)
	} else if n > 0 {
		s.log.Info("desk alerts", "count", n)
	}
}

// CommitChains commits to the transparency log the head of every
// conversation's message chain that moved since its last commit, and
// returns how many entries it wrote. The server does so every
// Config.ChainInterval; tests call it to do it now.
func (s *Server) CommitChains(ctx context.Context) (int, error) {
	return s.deliver.CommitChains(ctx)
}

func (s *Server) commitChains() {
	if n, err := s.deliver.CommitChains(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("commit message chains to the log", "err", err, "committed", n)
	} else if n > 0 {
		s.log.Debug("message chains committed to the log", "count", n)
	}
}

// housekeeping expires passkey ceremonies, sessions, challenges, unlock
// tickets, key packages and abandoned uploads, deletes conversation
// messages every device acknowledged, and proposes removing lapsed members
// that no proposal removes yet.
func (s *Server) housekeeping() {
	s.ceremonies.prune(s.cfg.Now())
	if err := s.svc.Expire(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("expire sessions", "err", err)
	}
	if err := s.deliver.Expire(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("expire key packages", "err", err)
	}
	if err := s.deliver.ExpireBlobs(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("expire uploads", "err", err)
	}
	if _, err := s.deliver.Prune(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("prune conversation messages", "err", err)
	}
	if err := s.deliver.SweepLapsed(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("propose removing lapsed members", "err", err)
	}
}
