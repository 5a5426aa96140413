// Package client is Hotline's headless device: it enrols, keeps its private
// keys in a profile directory, authenticates by signing challenges, renews
// its credential before it expires, follows the event stream and monitors
// the transparency log. The CLI, bots, the archive member and the tests all
// use it.
//
// A profile directory holds:
//
//	device.key     the device's private keys (0600; never leave the directory)
//	profile.json   server URL, pinned TLS fingerprint, organisation, root key,
//	               user, device, and the monitor's bookkeeping
//	credential     the current credential (a signed note)
//	keyset         the newest root-signed key set
//	monitor.json   the last verified log checkpoint and what it implies
//	keypackages/   the private keys of this device's MLS key packages
//	conversations/ each conversation's group state and history, sealed with
//	               a key derived from device.key (conversations.go, seal.go)
//
// Session tokens live only in memory.
//
// One process uses a profile at a time: a Client keeps its conversations'
// state in memory and writes it back, so a second process working on the
// same profile at once would make the first refuse its own commits (the
// CLI locks the profile). Any stream this client follows (Events, Sync,
// Follow) handles and acknowledges the device's durable events as well as
// its conversations.
package client

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
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

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/api"
	"hotline/internal/apierr"
	"hotline/internal/identity"
	"hotline/internal/tlog"
)

// Profile files.
const (
	ProfileFile    = "profile.json"
	CredentialFile = "credential"
	KeySetFile     = "keyset"
	MonitorFile    = "monitor.json"
	RolesFile      = "roles.json"
	ChainsFile     = "chains.json"
)

// Profile is profile.json.
type Profile struct {
	Server      string `json:"server"`
	Fingerprint string `json:"fingerprint,omitempty"` // pinned TLS certificate; empty for plain HTTP or CA-verified TLS
	Org         string `json:"org"`
	RootKey     string `json:"root_key"`
	LogOrigin   string `json:"log_origin"`
	User        string `json:"user"`
	Device      string `json:"device"`
	Label       string `json:"label,omitempty"`
	// LogKeys are every log verifier key this device has trusted, oldest
	// first, so checkpoints signed before a rotation still verify.
	LogKeys []string `json:"log_keys"`
	// IssuerKeys are every issuer key this device has trusted: members'
	// credentials may have been issued before a rotation.
	IssuerKeys []string `json:"issuer_keys"`
	// Accepted are devices of this user that the user has seen and accepted;
	// log verification fails on any other active device of the user.
	Accepted []string `json:"accepted_devices"`
	// EnrolIndex is where this device's enrolment sits in the log (-1 until
	// the first verification finds it).
	EnrolIndex int64 `json:"enrol_index"`
	// EventsAfter is the last event sequence number this device handled.
	EventsAfter int64 `json:"events_after"`
}

// Client is one device's connection to its server. Its methods are safe for
// concurrent use.
type Client struct {
	st   Storage
	dir  string // the profile directory, when st is a Dir
	sig  identity.SigningKey
	kem  identity.KEMKey
	root note.Verifier
	http *http.Client
	base *url.URL
	now  func() time.Time

	mu      sync.Mutex // guards the fields below and profile files
	prof    Profile
	keyset  identity.KeySet
	cred    []byte
	token   string
	expires time.Time
	// verified is cred, parsed, once it has verified under keyset; zero
	// when cred or keyset changed since. It saves Do an Ed25519
	// verification per call.
	verified     identity.Credential
	onStreamDown func(error)                           // OnStreamDown
	unlockFn     func(context.Context) (string, error) // SetUnlock
	prober       Prober                                // SetProber
	records      func(Message) error                   // SetRecords
	handled      func(Handled) error                   // SetHandled

	// unlockMu serializes opening sessions that need an unlock, so that
	// concurrent calls share one passkey prompt rather than make several.
	unlockMu sync.Mutex

	monMu sync.Mutex // guards mon and consistent
	mon   struct {
		st    *tlog.MonitorState
		stamp string // fileStamp of MonitorFile when st was read
	}
	consistent map[string]bool // checkpoints CompareCheckpoint found consistent

	convs          conversations // conversations.go
	epochs         epochWatchers // calls.go
	misbehave      Misbehaviour
	updateInterval time.Duration
	updateMessages int

	// The key sealing conversation state at rest (seal.go), derived once.
	sealOnce sync.Once
	sealAEAD cipher.AEAD
	sealErr  error
}

// Options adjust Open and Enroll.
type Options struct {
	Now func() time.Time // clock, for tests
	// UpdateInterval and UpdateMessages bound how long and for how many
	// messages sent this device keeps a leaf key in a conversation before
	// it commits a fresh one (0: DefaultUpdateInterval,
	// DefaultUpdateMessages).
	UpdateInterval time.Duration
	UpdateMessages int
	// Misbehave makes this device break rules every honest device keeps,
	// for tests that show the others refuse what it does. No flag sets it.
	Misbehave Misbehaviour
}

// Misbehaviour lists the rules a test may switch off.
type Misbehaviour struct {
	// SkipLeafChecks adds members without checking their credentials,
	// clearance or the transparency log.
	SkipLeafChecks bool
}

// Open loads the profile in dir.
func Open(dir string, opts Options) (*Client, error) {
	return OpenStorage(Dir(dir), opts)
}

// OpenStorage loads the profile that st holds.
func OpenStorage(st Storage, opts Options) (*Client, error) {
	where := "this storage"
	if d, ok := st.(Dir); ok {
		where = string(d)
	}
	b, err := st.ReadFile(ProfileFile)
	if isNotExist(err) {
		return nil, fmt.Errorf("%s is not a Hotline profile (no %s); enrol first with hotline enroll", where, ProfileFile)
	} else if err != nil {
		return nil, err
	}
	c := &Client{st: st, now: opts.Now, misbehave: opts.Misbehave, updateInterval: opts.UpdateInterval, updateMessages: opts.UpdateMessages}
	if d, ok := st.(Dir); ok {
		c.dir = string(d)
	}
	if err := json.Unmarshal(b, &c.prof); err != nil {
		return nil, fmt.Errorf("%s: %w", ProfileFile, err)
	}
	if c.sig, c.kem, err = readDeviceKeys(st); err != nil {
		return nil, err
	}
	if c.root, err = note.NewVerifier(c.prof.RootKey); err != nil {
		return nil, fmt.Errorf("profile root key: %w", err)
	}
	ks, err := st.ReadFile(KeySetFile)
	if err != nil {
		return nil, err
	}
	if c.keyset, err = identity.OpenKeySet(ks, c.root); err != nil {
		return nil, fmt.Errorf("profile key set: %w", err)
	}
	if cred, err := st.ReadFile(CredentialFile); err == nil {
		c.cred = cred
	}
	if err := c.setup(c.prof.Server, c.prof.Fingerprint); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) setup(server, pin string) error {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("server %q: want https://host:port", server)
	}
	c.base = u
	c.http = &http.Client{Transport: transport(pin), Timeout: 30 * time.Second}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}

// transport pins the server certificate's SHA-256 fingerprint when pin is
// set; otherwise it verifies the certificate against the system roots.
func transport(pin string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13}
	// The server speaks HTTP/1.1, so each concurrent call needs its own
	// connection; keep more than the default two idle, or every call beyond
	// two in flight pays a new TLS handshake.
	t.MaxIdleConnsPerHost = 16
	if pin != "" {
		t.TLSClientConfig.InsecureSkipVerify = true // replaced by the pin check below
		t.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || identity.TLSFingerprint(cs.PeerCertificates[0].Raw) != pin {
				return fmt.Errorf("server certificate does not match the pinned fingerprint %s", pin)
			}
			return nil
		}
	}
	return t
}

// Profile returns a copy of the profile.
func (c *Client) Profile() Profile {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prof
}

// Dir returns the profile directory ("" when the profile is not on disk).
func (c *Client) Dir() string { return c.dir }

// Storage returns where the profile is kept.
func (c *Client) Storage() Storage { return c.st }

// EnrollOptions are the inputs of Enroll.
type EnrollOptions struct {
	Server      string
	Invite      string
	ProfileDir  string
	Storage     Storage // instead of ProfileDir, for a profile not on disk
	Fingerprint string  // the pin printed by hotline init / serve; required for a self-signed server
	Label       string
	Now         func() time.Time
}

// ErrUnpinned is returned by Enroll when a server's certificate is neither
// pinned nor trusted by the system; its message carries the fingerprint the
// server presented, for the user to compare.
var ErrUnpinned = errors.New("server certificate not trusted")

// Enroll generates the device's keys in a new profile directory and enrols
// them with an invite code.
func Enroll(ctx context.Context, o EnrollOptions) (*Client, api.EnrollResponse, error) {
	var res api.EnrollResponse
	st := o.Storage
	if st == nil {
		st = Dir(o.ProfileDir)
	}
	if hasDeviceKeys(st) {
		return nil, res, fmt.Errorf("%s already holds a device; use a new profile directory", o.ProfileDir)
	}
	pin := ""
	if o.Fingerprint != "" {
		var err error
		if pin, err = identity.NormalizeTLSFingerprint(o.Fingerprint); err != nil {
			return nil, res, err
		}
	}
	c := &Client{st: st, now: o.Now}
	if d, ok := st.(Dir); ok {
		c.dir = string(d)
	}
	if err := c.setup(o.Server, pin); err != nil {
		return nil, res, err
	}
	var info api.OrgInfo
	if err := c.call(ctx, http.MethodGet, "/v1/org", "", nil, &info); err != nil {
		return nil, res, explainTLS(err, o.Server)
	}
	root, err := note.NewVerifier(info.RootKey)
	if err != nil {
		return nil, res, fmt.Errorf("server's root key: %w", err)
	}
	ks, err := identity.OpenKeySet([]byte(info.KeySet), root)
	if err != nil {
		return nil, res, fmt.Errorf("server's key set: %w", err)
	}
	if ks.Org != info.Org || info.LogOrigin != identity.LogKeyName(info.Org) || root.Name() != identity.RootKeyName(info.Org) {
		return nil, res, fmt.Errorf("server's organisation details disagree (%s, %s)", info.Org, ks.Org)
	}
	code, err := identity.NormalizeInviteCode(o.Invite)
	if err != nil {
		return nil, res, fmt.Errorf("invite code: %w", err)
	}
	hash, err := identity.HashInviteCode(code)
	if err != nil {
		return nil, res, err
	}
	sig, err := identity.GenerateSigningKey(nil)
	if err != nil {
		return nil, res, err
	}
	kem, err := identity.GenerateKEMKey(nil)
	if err != nil {
		return nil, res, err
	}
	req := api.EnrollRequest{
		Invite: code, SigKey: sig.Public().String(), KEMKey: base64.StdEncoding.EncodeToString(kem.PublicBytes()), Label: o.Label,
		Proof: base64.StdEncoding.EncodeToString(sig.Sign(identity.EnrolMessage(info.Org, hash, sig.Public(), kem.PublicBytes()))),
	}
	// Keys are written before the request: if the answer is lost, the
	// enrolled key is not.
	if err := writeDeviceKeys(st, sig, kem); err != nil {
		return nil, res, err
	}
	if err := c.call(ctx, http.MethodPost, "/v1/enroll", "", req, &res); err != nil {
		st.Remove(identity.DeviceKeysFile)
		return nil, res, err
	}
	if res.Device != sig.Public().DeviceID() {
		return nil, res, fmt.Errorf("server enrolled device %s, not ours (%s)", res.Device, sig.Public().DeviceID())
	}
	c.sig, c.kem, c.root, c.keyset = sig, kem, root, ks
	c.prof = Profile{Server: o.Server, Fingerprint: pin, Org: info.Org, RootKey: info.RootKey, LogOrigin: info.LogOrigin,
		User: res.User, Device: res.Device, Label: o.Label, LogKeys: []string{ks.Log}, IssuerKeys: []string{ks.Issuer},
		Accepted: []string{res.Device}, EnrolIndex: -1}
	if err := st.WriteFile(KeySetFile, []byte(info.KeySet)); err != nil {
		return nil, res, err
	}
	if res.Credential != "" {
		if err := c.storeCredential([]byte(res.Credential)); err != nil {
			return nil, res, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c, res, c.saveProfileLocked()
}

// explainTLS turns an unknown-authority error into one that shows the
// presented fingerprint and what to do.
func explainTLS(err error, server string) error {
	var ua x509.UnknownAuthorityError
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) && len(ce.UnverifiedCertificates) > 0 {
		fp := identity.TLSFingerprint(ce.UnverifiedCertificates[0].Raw)
		return fmt.Errorf("%w: %s presented a certificate with fingerprint %s; compare it with the one `hotline init` printed and pass --fingerprint", ErrUnpinned, server, fp)
	}
	if errors.As(err, &ua) {
		return fmt.Errorf("%w: %v; pass --fingerprint", ErrUnpinned, err)
	}
	return err
}

// storeCredential verifies a credential against the key set and stores it.
func (c *Client) storeCredential(cred []byte) error {
	iss, err := c.keyset.IssuerVerifier()
	if err != nil {
		return err
	}
	cr, err := identity.OpenCredential(cred, note.VerifierList(iss), c.now())
	if err != nil {
		return fmt.Errorf("credential from server: %w", err)
	}
	if cr.Device != c.sig.Public().DeviceID() || cr.SigKey != c.sig.Public() {
		return fmt.Errorf("credential from server is for device %s, not this one", cr.Device)
	}
	if err := c.st.WriteFile(CredentialFile, cred); err != nil {
		return err
	}
	c.mu.Lock()
	c.cred, c.verified = cred, cr
	c.mu.Unlock()
	return nil
}

// Credential returns the current credential, parsed and verified.
func (c *Client) Credential() (identity.Credential, error) {
	c.mu.Lock()
	cred, ks := c.cred, c.keyset
	c.mu.Unlock()
	if cred == nil {
		return identity.Credential{}, errors.New("no credential yet: the device awaits approval")
	}
	iss, err := ks.IssuerVerifier()
	if err != nil {
		return identity.Credential{}, err
	}
	return identity.OpenCredential(cred, note.VerifierList(iss), c.now())
}

func (c *Client) saveProfileLocked() error {
	b, err := json.MarshalIndent(c.prof, "", "  ")
	if err != nil {
		return err
	}
	return c.st.WriteFile(ProfileFile, append(b, '\n'))
}

// Do calls the API as this device: it opens a session when needed, retries
// once with a new session if the old one expired, and renews the credential
// when a third of its lifetime is left. API errors are *apierr.Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	if err := c.maybeRenew(ctx, path); err != nil {
		return err
	}
	return c.do(ctx, method, path, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.session(ctx)
		if err != nil {
			return err
		}
		err = c.call(ctx, method, path, tok, in, out)
		if attempt == 0 && apierr.Is(err, apierr.Unauthenticated) {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
			continue
		}
		return err
	}
}

// maybeRenew renews the credential when a third of its lifetime is left,
// or when it no longer verifies: expired, or signed by an issuer key the
// organisation has since rotated away.
func (c *Client) maybeRenew(ctx context.Context, path string) error {
	if path == "/v1/me/credential" {
		return nil
	}
	c.mu.Lock()
	cred, cr := c.cred, c.verified
	c.mu.Unlock()
	if cred == nil {
		return nil // pending: nothing to renew yet
	}
	if cr.Expires.IsZero() {
		var err error
		if cr, err = c.Credential(); err != nil {
			_, err = c.Renew(ctx)
			return err
		}
		c.mu.Lock()
		if bytes.Equal(c.cred, cred) {
			c.verified = cr
		}
		c.mu.Unlock()
	}
	if !cr.NeedsRenewal(c.now()) { // also true once expired
		return nil
	}
	_, err := c.Renew(ctx)
	return err
}

// Renew fetches and stores a fresh credential.
func (c *Client) Renew(ctx context.Context) ([]byte, error) {
	var res api.Credential
	if err := c.do(ctx, http.MethodPost, "/v1/me/credential", nil, &res); err != nil {
		return nil, fmt.Errorf("renew credential: %w", err)
	}
	return []byte(res.Credential), c.storeCredential([]byte(res.Credential))
}

// SessionToken returns a valid session token, for a caller that must
// reach the server other than through this client (a browser's own
// WebSocket or media connection). Treat it as a password.
func (c *Client) SessionToken(ctx context.Context) (string, error) { return c.session(ctx) }

// SetUnlock makes every new session carry an unlock ticket from fn, as a
// device protected by a passkey must (POST /v1/auth/session answers
// passkey_required without one). fn proves the passkey, in a browser by a
// WebAuthn assertion (POST /v1/passkeys/unlock), and returns the ticket;
// it is called once for each session, before the challenge is signed. nil
// stops sending tickets.
func (c *Client) SetUnlock(fn func(ctx context.Context) (string, error)) {
	c.mu.Lock()
	c.unlockFn = fn
	c.mu.Unlock()
}

// session returns a valid session token, signing a fresh challenge if the
// current one is missing or about to expire.
func (c *Client) session(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok, exp, dev, org, unlock := c.token, c.expires, c.prof.Device, c.prof.Org, c.unlockFn
	c.mu.Unlock()
	if tok != "" && c.now().Add(30*time.Second).Before(exp) {
		return tok, nil
	}
	var ticket string
	if unlock != nil {
		c.unlockMu.Lock()
		defer c.unlockMu.Unlock()
		c.mu.Lock()
		tok, exp = c.token, c.expires
		c.mu.Unlock()
		if tok != "" && c.now().Add(30*time.Second).Before(exp) {
			return tok, nil // opened by the call this one waited for
		}
		var err error
		if ticket, err = unlock(ctx); err != nil {
			return "", fmt.Errorf("authenticate: unlock with the passkey: %w", err)
		}
	}
	var ch api.ChallengeResponse
	if err := c.call(ctx, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Device: dev}, &ch); err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	nonce, err := base64.StdEncoding.DecodeString(ch.Nonce)
	if err != nil {
		return "", fmt.Errorf("authenticate: bad nonce from server")
	}
	req := api.SessionRequest{Device: dev, Nonce: ch.Nonce, Unlock: ticket,
		Signature: base64.StdEncoding.EncodeToString(c.sig.Sign(identity.AuthChallengeMessage(org, dev, nonce)))}
	var s api.SessionResponse
	if err := c.call(ctx, http.MethodPost, "/v1/auth/session", "", req, &s); err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	c.mu.Lock()
	c.token, c.expires = s.Token, s.Expires
	c.mu.Unlock()
	return s.Token, nil
}

// call makes one HTTP request.
// raw is a request or response body sent or received as bytes
// (application/octet-stream), not JSON.
type raw []byte

func (c *Client) call(ctx context.Context, method, path, token string, in, out any) error {
	var (
		body        io.Reader
		contentType = "application/json"
	)
	switch in := in.(type) {
	case nil:
	case raw:
		body, contentType = bytes.NewReader(in), "application/octet-stream"
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(strings.SplitN(path, "?", 2)[0]).String()+query(path), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
			return eb.Error
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if r, ok := out.(*raw); ok {
		*r = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: bad response: %w", method, path, err)
	}
	return nil
}

func query(path string) string {
	if _, q, ok := strings.Cut(path, "?"); ok {
		return "?" + q
	}
	return ""
}

// Me returns what the server says about this device and its user, and
// stores a newer credential if the server has one (after approval or a
// change of roles).
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var me api.Me
	if err := c.do(ctx, http.MethodGet, "/v1/me", nil, &me); err != nil {
		return me, err
	}
	c.mu.Lock()
	cur := c.cred
	c.mu.Unlock()
	if me.Credential != "" && me.Credential != string(cur) {
		// A credential the server stored before an issuer rotation no
		// longer verifies; renewing replaces it.
		if err := c.storeCredential([]byte(me.Credential)); err != nil {
			if _, rerr := c.Renew(ctx); rerr != nil {
				return me, errors.Join(err, rerr)
			}
		}
	}
	if err := c.maybeRenew(ctx, ""); err != nil {
		return me, err
	}
	c.mu.Lock()
	me.Credential = string(c.cred)
	c.mu.Unlock()
	return me, nil
}

// Fingerprint of a key, for humans comparing devices: the first 16 hex
// digits of SHA-256 of the base64 public key.
func KeyFingerprint(b64 string) string {
	h := sha256.Sum256([]byte(b64))
	return fmt.Sprintf("%x", h[:8])
}

// OrgInfo fetches the organisation's public details from the server.
func (c *Client) OrgInfo(ctx context.Context) (api.OrgInfo, error) {
	var info api.OrgInfo
	err := c.call(ctx, http.MethodGet, "/v1/org", "", nil, &info)
	return info, err
}
