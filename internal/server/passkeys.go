package server

// Passkeys protect a browser device's keys. The browser seals its profile
// under the output of the WebAuthn PRF extension of a passkey it registered
// after enrolling (internal/client/wrap.go); the PRF's input, a salt, is
// kept here and handed out with every unlock, so the output is the same
// each time, and only the authenticator can compute it. The server never
// sees that output (a client that sends it is refused). What the server
// does is verify the passkey's signatures, and give a device that has a
// passkey a session only after a fresh assertion (org.Service.Unlock).
//
// Ceremonies (go-webauthn's SessionData with the salt) live in memory,
// keyed by a random ID, for five minutes, and are used once. The relying
// party is the request's origin, which must be one of Config.WebOrigins;
// its ID is the origin's host name.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/identity"
	"hotline/internal/org"
	"hotline/internal/store"
)

const (
	ceremonyTTL          = 5 * time.Minute
	defaultMaxCeremonies = 10000
	prfSaltSize          = 32
)

func (s *Server) beginPasskeyRegistration(w http.ResponseWriter, r *http.Request, a org.Actor) (err error) {
	defer s.countPasskey("register.begin", &err)
	o, err := s.passkeyOrigin(r)
	if err != nil {
		return err
	}
	var req api.PasskeyRegisterRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	has, err := s.svc.HasPasskey(r.Context(), a.Device.ID)
	if err != nil {
		return err
	}
	if has {
		return apierr.New(apierr.Conflict, "device %s already has a passkey", a.Device.ID).
			WithHint("a device has one passkey; to use another authenticator, enrol a new browser profile")
	}
	rp, err := s.relyingParty(o)
	if err != nil {
		return err
	}
	salt := make([]byte, prfSaltSize)
	rand.Read(salt)
	display := a.User.ID.String()
	if a.Device.Label != "" {
		display += " (" + a.Device.Label + ")"
	}
	user := passkeyUser{device: a.Device.ID, name: a.User.ID.String(), display: display}
	creation, session, err := rp.BeginRegistration(user, webauthn.WithExtensions(webauthn.WithExtensionPRF(protocol.PRFValues{First: salt})))
	if err != nil {
		return fmt.Errorf("begin passkey registration: %w", err)
	}
	now := s.cfg.Now()
	id, err := s.ceremonies.add(&ceremony{kind: ceremonyRegister, device: a.Device.ID, rp: rp, session: *session, salt: salt, expires: now.Add(ceremonyTTL)}, now)
	if err != nil {
		return err
	}
	return s.writeCeremony(w, id, creation.Response)
}

func (s *Server) finishPasskeyRegistration(w http.ResponseWriter, r *http.Request, a org.Actor) (err error) {
	defer s.countPasskey("register", &err)
	if _, err := s.passkeyOrigin(r); err != nil {
		return err
	}
	id := r.PathValue("ceremony")
	body, err := readCredential(r)
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return malformedCredential(err)
	}
	if err := refuseSecrets(parsed.ClientExtensionResults); err != nil {
		return err
	}
	cer, ok := s.ceremonies.take(id, ceremonyRegister, a.Device.ID, s.cfg.Now())
	if !ok {
		return errNoCeremony()
	}
	cred, err := cer.rp.CreateCredential(passkeyUser{device: cer.device}, cer.session, parsed)
	if err != nil {
		return s.passkeyRefused(cer.device, err)
	}
	if prf := parsed.ClientExtensionResults.PRF; prf == nil || prf.Enabled == nil || !*prf.Enabled {
		s.log.Info("passkey refused", "device", cer.device, "reason", "no PRF")
		return apierr.New(apierr.PasskeyInvalid, "this authenticator cannot protect keys: it does not support the WebAuthn PRF extension").
			WithHint("register a passkey on an authenticator with PRF (hmac-secret) support, such as a recent platform authenticator or security key")
	}
	p, err := s.svc.AddPasskey(r.Context(), a, store.Passkey{
		CredentialID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, Salt: cer.salt,
		AAGUID: append([]byte{}, cred.Authenticator.AAGUID...), BackupEligible: cred.Flags.BackupEligible,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.Passkey{Device: p.DeviceID, CreatedAt: p.CreatedAt})
}

func (s *Server) beginPasskeyUnlock(w http.ResponseWriter, r *http.Request, _ org.Actor) (err error) {
	defer s.countPasskey("unlock.begin", &err)
	o, err := s.passkeyOrigin(r)
	if err != nil {
		return err
	}
	if !s.limits.allow("auth", s.clientAddr(r)) {
		return apierr.New(apierr.RateLimited, "too many authentication attempts from your address")
	}
	var req api.PasskeyUnlockRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if !identity.ValidDeviceID(req.Device) {
		return apierr.New(apierr.BadRequest, "device is not a valid device ID")
	}
	p, err := s.svc.PasskeyForUnlock(r.Context(), req.Device)
	if err != nil {
		return err
	}
	rp, err := s.relyingParty(o)
	if err != nil {
		return err
	}
	user := passkeyUser{device: req.Device, creds: []webauthn.Credential{storedCredential(p)}}
	assertion, session, err := rp.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred),
		webauthn.WithAssertionExtensions(webauthn.WithExtensionPRF(protocol.PRFValues{First: p.Salt})))
	if err != nil {
		return fmt.Errorf("begin passkey unlock: %w", err)
	}
	now := s.cfg.Now()
	id, err := s.ceremonies.add(&ceremony{kind: ceremonyUnlock, device: req.Device, rp: rp, session: *session, expires: now.Add(ceremonyTTL)}, now)
	if err != nil {
		return err
	}
	return s.writeCeremony(w, id, assertion.Response)
}

func (s *Server) finishPasskeyUnlock(w http.ResponseWriter, r *http.Request, _ org.Actor) (err error) {
	defer s.countPasskey("unlock", &err)
	if _, err := s.passkeyOrigin(r); err != nil {
		return err
	}
	id := r.PathValue("ceremony")
	body, err := readCredential(r)
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return malformedCredential(err)
	}
	if err := refuseSecrets(parsed.ClientExtensionResults); err != nil {
		return err
	}
	cer, ok := s.ceremonies.take(id, ceremonyUnlock, "", s.cfg.Now())
	if !ok {
		return errNoCeremony()
	}
	// Read again: the device may have been revoked since the ceremony began,
	// and the counter must be the stored one.
	p, err := s.svc.PasskeyForUnlock(r.Context(), cer.device)
	if err != nil {
		return err
	}
	user := passkeyUser{device: cer.device, creds: []webauthn.Credential{storedCredential(p)}}
	if _, err := cer.rp.ValidateLogin(user, cer.session, parsed); err != nil {
		return s.passkeyRefused(cer.device, err)
	}
	ticket, exp, err := s.svc.Unlock(r.Context(), cer.device, parsed.RawID, parsed.Response.AuthenticatorData.Counter)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.PasskeyUnlock{Device: cer.device, Unlock: ticket, Expires: exp})
}

func (s *Server) writeCeremony(w http.ResponseWriter, id string, options any) error {
	pk, err := json.Marshal(options)
	if err != nil {
		return fmt.Errorf("passkey options: %w", err)
	}
	return writeJSON(w, http.StatusOK, api.PasskeyCeremony{Ceremony: id, PublicKey: pk})
}

// countPasskey counts a ceremony step by its outcome: "ok" or the error
// code. No label names a device.
func (s *Server) countPasskey(step string, err *error) {
	result := "ok"
	if *err != nil {
		result = string(apierr.From(*err).Code)
	}
	s.metrics.passkeys.Inc(step, result)
}

// passkeyRefused turns a failed verification into passkey_invalid. The
// log line and the answer carry the library's summary of what failed,
// never its debugging detail, which can hold the challenge.
func (s *Server) passkeyRefused(device string, err error) error {
	why := "it did not verify"
	if pe := (*protocol.Error)(nil); errors.As(err, &pe) && pe.Details != "" {
		why = truncate(pe.Details, 200)
	}
	s.log.Info("passkey refused", "device", device, "reason", why)
	return apierr.New(apierr.PasskeyInvalid, "the passkey's answer was refused: %s", why)
}

func malformedCredential(err error) error {
	why := "malformed"
	if pe := (*protocol.Error)(nil); errors.As(err, &pe) && pe.Details != "" {
		why = truncate(pe.Details, 200)
	}
	return apierr.New(apierr.BadRequest, "the credential is malformed: %s", why).
		WithHint("send the PublicKeyCredential as its toJSON() gives it")
}

// truncate shortens a library message for a log line or an answer (and
// drops the ": <nil>" go-webauthn leaves when there was no inner error).
func truncate(s string, n int) string {
	s = strings.TrimSuffix(s, ": <nil>")
	if len(s) > n {
		return s[:n]
	}
	return s
}

// readCredential reads the body of a finishing step: the browser's
// PublicKeyCredential, which go-webauthn parses.
func readCredential(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, apierr.New(apierr.TooLarge, "request body over %d bytes", mbe.Limit)
	case err != nil:
		return nil, apierr.Wrap(err, apierr.BadRequest, "could not read the request body")
	case len(b) == 0:
		return nil, apierr.New(apierr.BadRequest, "empty request body")
	}
	return b, nil
}

// refuseSecrets refuses a credential whose client extension results carry
// a PRF (or hmac-secret) output. That output is the secret the device's
// keys are sealed under, and PublicKeyCredential.toJSON() includes it; the
// server has no use for it and must never hold it, so a client that sends
// it is told to stop, loudly, rather than have it dropped in silence.
func refuseSecrets(o protocol.AuthenticationExtensionsClientOutputs) error {
	if (o.PRF != nil && o.PRF.Results != nil) || o.HMACGetSecret != nil {
		return apierr.New(apierr.BadRequest, "clientExtensionResults carries the PRF output").
			WithHint("delete clientExtensionResults.prf.results before sending: it is the secret that protects this device's keys, and it must never leave the browser")
	}
	return nil
}

func errNoCeremony() error {
	return apierr.New(apierr.NotFound, "no such passkey ceremony: unknown, used, expired or another device's").
		WithHint("begin the ceremony again")
}

// relyingParty returns go-webauthn set up for one origin: the relying party
// ID is its host name, and it is the only origin client data may name.
func (s *Server) relyingParty(o webOrigin) (*webauthn.WebAuthn, error) {
	timeouts := webauthn.TimeoutConfig{Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL}
	rp, err := webauthn.New(&webauthn.Config{
		RPID:                  o.host,
		RPDisplayName:         "Hotline " + s.Org(),
		RPOrigins:             []string{o.String()},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return nil, fmt.Errorf("relying party for %s: %w", o, err)
	}
	return rp, nil
}

// passkeyUser is a device as go-webauthn sees a user: its user handle is
// the device ID (a key fingerprint, nothing personal), and it has at most
// one credential.
type passkeyUser struct {
	device, name, display string
	creds                 []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return []byte(u.device) }
func (u passkeyUser) WebAuthnName() string                       { return u.name }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.display }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func storedCredential(p store.Passkey) webauthn.Credential {
	return webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey,
		Flags:         webauthn.CredentialFlags{BackupEligible: p.BackupEligible},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

// passkeyOrigin returns the request's origin if it is one of the web
// origins passkeys may be used from.
func (s *Server) passkeyOrigin(r *http.Request) (webOrigin, error) {
	if len(s.webOrigins) == 0 {
		return webOrigin{}, apierr.New(apierr.Unavailable, "passkeys are not enabled on this server").
			WithHint("the operator names the web client's origins with hotline serve --web-origin")
	}
	if o, err := parseOrigin(r.Header.Get("Origin")); err == nil {
		for _, w := range s.webOrigins {
			if w.matches(o) {
				return o, nil
			}
		}
	}
	return webOrigin{}, apierr.New(apierr.Forbidden, "passkeys may not be used from this origin").
		WithHint("use the web client at an origin the server allows (hotline serve --web-origin)")
}

// webOrigin is a browser origin: scheme, host name and port (empty for
// the scheme's default). In Config.WebOrigins, wildcard says the host is
// the parent of the allowed names: any one label followed by it.
type webOrigin struct {
	scheme, host, port string
	wildcard           bool
}

func (o webOrigin) String() string {
	host := o.host
	if o.wildcard {
		host = "*." + host
	}
	if o.port != "" {
		return o.scheme + "://" + host + ":" + o.port
	}
	return o.scheme + "://" + host
}

// matches reports whether the allowed origin w covers the origin o.
func (w webOrigin) matches(o webOrigin) bool {
	if w.scheme != o.scheme || w.port != o.port || o.wildcard {
		return false
	}
	if !w.wildcard {
		return o.host == w.host
	}
	label, ok := strings.CutSuffix(o.host, "."+w.host)
	return ok && label != "" && !strings.Contains(label, ".")
}

// parseWebOrigin parses an entry of Config.WebOrigins.
func parseWebOrigin(s string) (webOrigin, error) {
	bad := func(why string) (webOrigin, error) {
		return webOrigin{}, fmt.Errorf("web origin %q: %s; want scheme://host[:port], such as https://hotline.example.org or http://*.localhost:8080", s, why)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	wildcard := false
	if ok {
		rest, wildcard = strings.CutPrefix(rest, "*.")
	}
	o, err := parseOrigin(scheme + "://" + rest)
	if err != nil {
		return bad(err.Error())
	}
	o.wildcard = wildcard
	rpID := o.host
	if wildcard {
		rpID = "name." + o.host
	}
	if err := protocol.ValidateRPID(rpID); err != nil {
		return bad(fmt.Sprintf("the host cannot be a WebAuthn relying party ID (%v)", err))
	}
	return o, nil
}

// parseOrigin parses a serialized origin, as in an Origin header.
func parseOrigin(s string) (webOrigin, error) {
	u, err := url.Parse(s)
	if err != nil {
		return webOrigin{}, errors.New("not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return webOrigin{}, errors.New("the scheme must be http or https")
	}
	if u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return webOrigin{}, errors.New("an origin has no user, path, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.Contains(host, "*") {
		return webOrigin{}, errors.New("no host name")
	}
	port := u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	return webOrigin{scheme: u.Scheme, host: host, port: port}, nil
}

// Ceremony kinds.
const (
	ceremonyRegister = "register"
	ceremonyUnlock   = "unlock"
)

// ceremony is a begun WebAuthn ceremony, waiting for the browser's answer.
type ceremony struct {
	kind    string
	device  string // register: the session's device; unlock: the one named
	rp      *webauthn.WebAuthn
	session webauthn.SessionData
	salt    []byte // register: the PRF salt the passkey will keep
	expires time.Time
}

// ceremonies are the pending ceremonies, at most max of them.
type ceremonies struct {
	max int
	mu  sync.Mutex // guards m
	m   map[string]*ceremony
}

func newCeremonies(max int) *ceremonies {
	if max <= 0 {
		max = defaultMaxCeremonies
	}
	return &ceremonies{max: max, m: map[string]*ceremony{}}
}

// add keeps c under a new random ID, unless too many are pending.
func (cs *ceremonies) add(c *ceremony, now time.Time) (string, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.m) >= cs.max {
		cs.pruneLocked(now)
	}
	if len(cs.m) >= cs.max {
		return "", apierr.New(apierr.RateLimited, "too many passkey ceremonies are pending").WithHint("retry in a few minutes")
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	cs.m[id] = c
	return id, nil
}

// take removes and returns the unexpired ceremony id if it is of this kind
// and, unless device is "", of this device. A ceremony of another kind or
// device stays where it is.
func (cs *ceremonies) take(id, kind, device string, now time.Time) (*ceremony, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.m[id]
	if c == nil || c.kind != kind || (device != "" && c.device != device) {
		return nil, false
	}
	delete(cs.m, id)
	return c, now.Before(c.expires)
}

// prune forgets expired ceremonies.
func (cs *ceremonies) prune(now time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.pruneLocked(now)
}

func (cs *ceremonies) pruneLocked(now time.Time) {
	for id, c := range cs.m {
		if !now.Before(c.expires) {
			delete(cs.m, id)
		}
	}
}
