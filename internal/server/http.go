package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/deliver"
	"hotline/internal/metrics"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/workflow"
)

// access says who may call a route.
type access int

const (
	public access = iota // anyone
	anyDev               // any enrolled device with a session, pending included
	active               // an active device
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, acc access, h func(http.ResponseWriter, *http.Request, org.Actor) error) {
		mux.Handle(pattern, s.wrap(pattern, acc, api.MaxBody, h))
	}
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.reg)

	handle("GET /v1/org", public, s.getOrg)
	handle("POST /v1/enroll", public, s.enroll)
	handle("POST /v1/auth/challenge", public, s.challenge)
	handle("POST /v1/auth/session", public, s.login)
	handle("DELETE /v1/auth/session", anyDev, s.logout)

	handle("POST /v1/passkeys/register", anyDev, s.beginPasskeyRegistration)
	handle("POST /v1/passkeys/register/{ceremony}", anyDev, s.finishPasskeyRegistration)
	handle("POST /v1/passkeys/unlock", public, s.beginPasskeyUnlock)
	handle("POST /v1/passkeys/unlock/{ceremony}", public, s.finishPasskeyUnlock)

	handle("GET /v1/me", anyDev, s.me)
	handle("POST /v1/me/credential", active, s.renew)
	handle("GET /v1/events", anyDev, s.events)

	handle("GET /v1/users", active, s.listUsers)
	handle("POST /v1/users", active, s.createUser)
	handle("GET /v1/users/{id}", active, s.getUser)
	handle("PUT /v1/users/{id}/roles", active, s.setRoles)
	handle("PUT /v1/users/{id}/clearance", active, s.setClearance)
	handle("POST /v1/users/{id}/disable", active, s.disableUser)
	handle("GET /v1/requests", active, s.listRequests)
	handle("POST /v1/invites", active, s.createInvite)

	handle("GET /v1/devices", active, s.listDevices)
	handle("POST /v1/devices/{id}/approve", active, s.approveDevice)
	handle("POST /v1/devices/{id}/revoke", active, s.revokeDevice)

	handle("GET /v1/policy", active, s.listRules)
	handle("POST /v1/policy", active, s.addRule)
	handle("DELETE /v1/policy/{id}", active, s.removeRule)
	handle("POST /v1/contact", active, s.checkContact)
	handle("GET /v1/contacts", active, s.listContacts)

	handle("GET /v1/log/checkpoint", active, s.checkpoint)
	handle("GET /v1/log/entries", active, s.entries)
	handle("GET /v1/log/proof/inclusion", active, s.inclusionProof)
	handle("GET /v1/log/proof/consistency", active, s.consistencyProof)

	handle("GET /v1/keypackages", active, s.keyPackageStock)
	mux.Handle("POST /v1/keypackages", s.wrap("POST /v1/keypackages", active, maxKeyPackageUpload, s.uploadKeyPackages))
	handle("POST /v1/keypackages/claim", active, s.claimKeyPackages)

	mux.Handle("POST /v1/conversations", s.wrap("POST /v1/conversations", active, maxConversationCreate, s.createConversation))
	handle("GET /v1/conversations", active, s.listConversations)
	handle("GET /v1/conversations/{id}", active, s.getConversation)
	mux.Handle("POST /v1/conversations/{id}/messages", s.wrap("POST /v1/conversations/{id}/messages", active, maxConversationPost, s.postMessage))
	handle("GET /v1/conversations/{id}/messages", active, s.listMessages)
	handle("POST /v1/conversations/{id}/ack", active, s.ackConversation)

	handle("POST /v1/conversations/{id}/calls", active, s.placeCall)
	handle("GET /v1/calls", active, s.listCalls)
	handle("GET /v1/calls/live", active, s.liveCalls)
	handle("GET /v1/calls/{id}", active, s.getCall)
	handle("POST /v1/calls/{id}/accept", active, callAction(s.calls.Accept))
	handle("POST /v1/calls/{id}/decline", active, callAction(s.calls.Decline))
	handle("POST /v1/calls/{id}/join", active, callAction(s.calls.Join))
	handle("POST /v1/calls/{id}/leave", active, callAction(s.calls.Leave))
	mux.Handle("POST /v1/media", s.wrap("POST /v1/media", active, maxMediaOffer, s.connectMedia))

	handle("POST /v1/call-requests", active, s.createRequest)
	handle("GET /v1/call-requests", active, s.listCallRequests)
	handle("GET /v1/call-requests/{id}", active, itemGet(requestID, s.workflow.Get))
	for _, act := range []string{workflow.ActApprove, workflow.ActPropose, workflow.ActAccept, workflow.ActDecline, workflow.ActWithdraw} {
		handle("POST /v1/call-requests/{id}/"+act, active, s.decideRequest(act))
	}
	handle("POST /v1/call-requests/{id}/briefing", active, onItem(requestID, http.StatusOK, s.workflow.AttachBriefing))
	handle("POST /v1/call-requests/{id}/briefing/ack", active, onItem(requestID, http.StatusOK,
		func(ctx context.Context, a org.Actor, id string, in api.BriefingAck) (api.CallRequest, error) {
			return s.workflow.AckBriefing(ctx, a, id, in.Version)
		}))
	handle("GET /v1/schedule", active, s.schedule)
	handle("POST /v1/memcons", active, create(s.workflow.DraftMemCon))
	handle("GET /v1/memcons", active, list(s.workflow.ListMemCons))
	handle("GET /v1/memcons/{id}", active, itemGet(idOf("memorandum"), s.workflow.GetMemCon))
	handle("POST /v1/memcons/{id}/approve", active, s.memconAction("approve"))
	handle("POST /v1/memcons/{id}/distribute", active, s.memconAction("distribute"))
	handle("POST /v1/call-requests/{id}/linecheck", active, onItem(requestID, http.StatusCreated,
		func(ctx context.Context, a org.Actor, id string, _ struct{}) (api.LineCheck, error) {
			return s.workflow.StartLineCheck(ctx, a, id)
		}))
	handle("POST /v1/call-requests/{id}/call", active, s.placeRequestCall)
	handle("POST /v1/calls/{id}/ring", active, s.ringCall)
	handle("POST /v1/calls/{id}/hold", active, s.holdCall(true))
	handle("POST /v1/calls/{id}/resume", active, s.holdCall(false))
	handle("POST /v1/calls/{id}/transfer", active, s.transferCall)
	handle("GET /v1/call-requests/{id}/linechecks", active, itemGet(requestID, s.workflow.LineChecks))
	handle("GET /v1/linechecks/{id}", active, itemGet(idOf("line check"), s.workflow.GetLineCheck))
	handle("POST /v1/linechecks/{id}/report", active, onItem(idOf("line check"), http.StatusOK, s.workflow.ReportLineCheck))
	handle("POST /v1/hotlines", active, create(s.workflow.CreateHotline))
	handle("GET /v1/hotlines", active, list(s.workflow.Hotlines))
	handle("GET /v1/hotlines/{id}", active, itemGet(idOf("hotline"), s.workflow.GetHotline))
	handle("POST /v1/hotlines/{id}/tests", active, onItem(idOf("hotline"), http.StatusOK, s.workflow.ReportHotline))
	handle("GET /v1/readouts", active, list(s.workflow.Readouts))
	handle("GET /v1/records/policy", active, list(s.workflow.RecordsPolicy))
	handle("POST /v1/records/retention", active, create(s.workflow.SetRetention))
	handle("POST /v1/records/holds", active, create(s.workflow.PlaceHold))
	handle("POST /v1/records/holds/{id}/release", active, onItem(idOf("hold"), http.StatusOK, s.workflow.ReleaseHold))
	handle("POST /v1/records/expire", active, create(s.workflow.Expire))
	handle("POST /v1/records/grants", active, create(s.workflow.Grant))
	handle("POST /v1/records/exports", active, create(s.workflow.Export))
	handle("POST /v1/records/moves", active, create(s.workflow.Move))
	handle("POST /v1/records/reclassify", active, create(s.workflow.Reclassify))
	handle("GET /v1/records/grants", active, list(s.workflow.Grants))
	handle("POST /v1/records/grants/{id}/read", active, onItem(idOf("grant"), http.StatusOK, s.workflow.ReadGrant))
	handle("POST /v1/readouts/{id}", active, onItem(idOf("call"), http.StatusOK, s.workflow.FileReadout))
	handle("GET /v1/note-takers", active, list(s.workflow.NoteTakers))
	handle("PUT /v1/users/{id}/note-taker", active, onItem(userOf, http.StatusOK, s.workflow.SetNoteTaker))
	handle("DELETE /v1/users/{id}/note-taker", active, itemGet(userOf, s.workflow.ClearNoteTaker))
	handle("GET /v1/commitments", active, s.listCommitments)
	handle("POST /v1/commitments/{id}/done", active, s.closeCommitment(workflow.CommitmentDone))
	handle("POST /v1/commitments/{id}/cancel", active, s.closeCommitment(workflow.CommitmentCancelled))

	handle("POST /v1/blobs", active, s.createBlob)
	mux.Handle("PUT /v1/blobs/{id}/chunks/{n}", s.wrap("PUT /v1/blobs/{id}/chunks/{n}", active, deliver.BlobChunkSize, s.putChunk))
	handle("GET /v1/blobs/{id}", active, s.blobStatus)
	handle("POST /v1/blobs/{id}/complete", active, s.completeBlob)
	handle("GET /v1/blobs/{id}/chunks/{n}", active, s.getChunk)

	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apierr.New(apierr.NotFound, "no such endpoint"))
	})
	mux.Handle("/", s.webHandler())
	return mux
}

// wrap authenticates, meters, logs and turns errors into responses. Logs
// carry the route pattern, status, code, device and duration: never a body,
// a query value or a token.
func (s *Server) wrap(pattern string, acc access, maxBody int64, h func(http.ResponseWriter, *http.Request, org.Actor) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		var actor org.Actor
		err := func() error {
			if acc != public {
				var err error
				if actor, err = s.authenticate(r, acc); err != nil {
					return err
				}
			}
			r.Body = http.MaxBytesReader(rw, r.Body, maxBody)
			return h(rw, r, actor)
		}()
		code := ""
		if err != nil {
			e := apierr.From(err)
			code = string(e.Code)
			if e.Code == apierr.Internal {
				s.log.Error("request failed", "route", pattern, "err", err)
			}
			if !rw.wrote {
				writeError(rw, e)
			}
		}
		s.metrics.requests.Inc(pattern, strconv.Itoa(rw.status))
		s.metrics.latency.Observe(time.Since(start).Seconds(), pattern)
		s.log.Debug("request", "route", pattern, "status", rw.status, "code", code,
			"device", actor.Device.ID, "duration", time.Since(start))
	})
}

func (s *Server) authenticate(r *http.Request, acc access) (org.Actor, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok, ok = webSocketBearer(r)
	}
	if !ok || tok == "" {
		return org.Actor{}, apierr.New(apierr.Unauthenticated, "missing session token").
			WithHint("authenticate with POST /v1/auth/challenge and /v1/auth/session")
	}
	a, err := s.svc.Authenticate(r.Context(), tok)
	if err != nil {
		return org.Actor{}, err
	}
	if acc == active && a.Device.Status != store.DeviceActive {
		return org.Actor{}, apierr.New(apierr.DevicePending, "device %s awaits approval", a.Device.ID).
			WithHint("ask one of your other devices or a security officer to run: hotline device approve %s", a.Device.ID)
	}
	return a, nil
}

// webSocketBearer returns the session token a browser offered as a
// WebSocket subprotocol (api.WebSocketBearerPrefix).
func webSocketBearer(r *http.Request) (string, bool) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return "", false
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(p), api.WebSocketBearerPrefix); ok {
				return tok, true
			}
		}
	}
	return "", false
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and the WebSocket upgrade reach the
// underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apierr.Error) {
	writeJSON(w, e.Status(), api.ErrorBody{Error: e})
}

func decode(r *http.Request, v any) error { return api.Decode(r.Body, api.MaxBody, v) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("health check", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serverMetrics are the server's Prometheus series.
type serverMetrics struct {
	reg       *metrics.Registry
	requests  *metrics.CounterVec
	latency   *metrics.Histogram
	enrolment *metrics.CounterVec
	refusals  *metrics.CounterVec
	messages  *metrics.CounterVec
	delivered *metrics.CounterVec
	calls     *metrics.CounterVec
	callReqs  *metrics.CounterVec
	passkeys  *metrics.CounterVec
	// Media quality per participant and interval (see callQuality).
	mediaLoss, mediaJitter, mediaRTT *metrics.Histogram
	logSize                          atomic.Int64
}

func newServerMetrics(s *Server) *serverMetrics {
	reg := metrics.NewRegistry()
	m := &serverMetrics{
		reg:       reg,
		requests:  reg.NewCounterVec("hotline_http_requests_total", "HTTP requests by route pattern and status.", "route", "status"),
		latency:   reg.NewHistogram("hotline_http_request_duration_seconds", "HTTP request latency by route pattern.", metrics.DefBuckets, "route"),
		enrolment: reg.NewCounterVec("hotline_enrolments_total", "Enrolment attempts by result code.", "result"),
		refusals:  reg.NewCounterVec("hotline_contact_refusals_total", "Contacts refused by the policy, by code.", "code"),
		messages:  reg.NewCounterVec("hotline_conversation_messages_total", "Conversation messages accepted, by kind (application, proposal, commit).", "kind"),
		delivered: reg.NewCounterVec("hotline_conversation_deliveries_total", "Conversation messages sent to devices on their event streams.", "kind"),
		calls:     reg.NewCounterVec("hotline_calls_total", "Calls placed.", "event"),
		callReqs:  reg.NewCounterVec("hotline_call_requests_total", "Call requests made, by urgency.", "urgency"),
		passkeys:  reg.NewCounterVec("hotline_passkey_ceremonies_total", "Passkey ceremony steps (register.begin, register, unlock.begin, unlock) by result: ok or the error code.", "step", "result"),
		mediaLoss: reg.NewHistogram("hotline_call_media_loss_ratio", "Fraction of call media packets lost, per participant and quality interval (the worse direction).",
			[]float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}),
		mediaJitter: reg.NewHistogram("hotline_call_media_jitter_seconds", "Interarrival jitter of call media, per participant and quality interval (the worse direction).",
			[]float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16}),
		mediaRTT: reg.NewHistogram("hotline_call_media_rtt_seconds", "Round-trip time between the media forwarder and each participant, from RTCP, per quality interval.",
			[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8}),
	}
	reg.NewGaugeFunc("hotline_log_size", "Entries in the transparency log.", func() float64 { return float64(m.logSize.Load()) })
	reg.NewGaugeFunc("hotline_event_streams", "Open event-stream connections.", func() float64 { return float64(s.hub.Count()) })
	return m
}

// limiters rate-limit unauthenticated endpoints per client address.
type limiters struct {
	mu     sync.Mutex
	enrol  map[string]*rate.Limiter
	auth   map[string]*rate.Limiter
	er, ar rate.Limit
	eb, ab int
	pruned time.Time
}

func newLimiters(cfg Config) *limiters {
	l := &limiters{enrol: map[string]*rate.Limiter{}, auth: map[string]*rate.Limiter{}, er: rate.Limit(10.0 / 60), eb: 10, ar: 2, ab: 60}
	if cfg.AuthRate > 0 {
		l.ar = rate.Limit(cfg.AuthRate)
	}
	if cfg.AuthBurst > 0 {
		l.ab = cfg.AuthBurst
	}
	if cfg.EnrolRate > 0 {
		l.er = rate.Limit(cfg.EnrolRate)
	}
	if cfg.EnrolBurst > 0 {
		l.eb = cfg.EnrolBurst
	}
	return l
}

// clientAddr returns the address rate limits apply to: the TCP peer, or,
// when the peer is a trusted reverse proxy, the last address in
// X-Forwarded-For that is not itself a trusted proxy (addresses further left
// can be forged by the client).
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.trusted(hop) {
			return hop
		}
	}
	return host
}

func (s *Server) trusted(addr string) bool {
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	for _, n := range s.cfg.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// allow reports whether the client at host may make another attempt of the
// kind ("enrol" or "auth").
func (l *limiters) allow(kind, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.pruned) > 10*time.Minute {
		clear(l.enrol) // forgetting limiters only ever grants a fresh burst
		clear(l.auth)
		l.pruned = time.Now()
	}
	m, r, b := l.enrol, l.er, l.eb
	if kind == "auth" {
		m, r, b = l.auth, l.ar, l.ab
	}
	lim := m[host]
	if lim == nil {
		lim = rate.NewLimiter(r, b)
		m[host] = lim
	}
	return lim.Allow()
}
