// Package org is the organisation as its server keeps it: users and their
// roles and clearances, devices and their enrolment, approval and
// revocation, sessions, the contact policy, and the two-person rules. It is
// the one place that decides; internal/server only translates HTTP.
//
// Every consequential change writes its transparency-log entry in the same
// transaction as the change (store.Tx.AppendPending), then wakes the
// integrator, so the database and the log never disagree. Errors returned to
// callers are *apierr.Error with a stable code; internal causes stay inside
// them for the log.
package org

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/store"
	"hotline/internal/tlog"
	"hotline/internal/transparency"
)

// Config holds what the service needs.
type Config struct {
	Org    string
	Issuer note.Signer // signs device credentials
	KeySet []byte      // the current root-signed key set (note)
	Store  *store.Store
	Log    *transparency.Log // nil: entries wait in the store for the server's integrator
	Hub    *events.Hub       // nil: no live streams to wake

	CredentialTTL time.Duration // default 7 days
	SessionTTL    time.Duration // default 15 minutes
	InviteTTL     time.Duration // default 72 hours
	Now           func() time.Time
	Logger        *slog.Logger
}

// Service is the organisation's state machine. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex // guards refusals
	refusals map[string]*refusalLimit
}

type refusalLimit struct {
	lim        *rate.Limiter
	suppressed int
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.CredentialTTL <= 0 {
		cfg.CredentialTTL = 7 * 24 * time.Hour
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 15 * time.Minute
	}
	if cfg.InviteTTL <= 0 {
		cfg.InviteTTL = 72 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger, refusals: map[string]*refusalLimit{}}
}

// Org returns the organisation's domain name.
func (s *Service) Org() string { return s.cfg.Org }

// KeySet returns the root-signed key set clients verify everything with.
func (s *Service) KeySet() []byte { return s.cfg.KeySet }

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }

// Actor is an authenticated caller: an enrolled device and its user.
type Actor struct {
	User   store.User
	Device store.Device
}

// Can returns Forbidden unless the actor's roles allow act (see
// docs/roles.md).
func (a Actor) Can(act directory.Action) error { return a.can(act) }

// can returns Forbidden unless the actor's roles allow a.
func (a Actor) can(act directory.Action) error {
	if !directory.Allowed(a.User.Roles, act) {
		return apierr.New(apierr.Forbidden, "your roles (%s) do not allow %s", rolesOrNone(a.User.Roles), act).
			WithHint("see docs/roles.md for who may do what")
	}
	return nil
}

func rolesOrNone(r identity.Roles) string {
	if len(r) == 0 {
		return "none"
	}
	return r.String()
}

// update runs fn in a transaction and, after it commits, waits until the
// log entries fn wrote are in a signed checkpoint, then wakes the event
// streams of the devices fn queued events for. A change is acknowledged
// only once the log shows it: a device that enrols and at once verifies
// the log finds itself there.
func (s *Service) update(ctx context.Context, fn func(*txn) error) error {
	var (
		woken  []string
		logged bool
	)
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		t := &txn{Tx: tx, s: s, ctx: ctx}
		if err := fn(t); err != nil {
			return err
		}
		woken, logged = t.woken, t.logged
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if logged && s.cfg.Log != nil { // nil for operator commands beside the server
		if err := s.cfg.Log.Sync(ctx); err != nil {
			// Committed, and integrated at the latest when the server next
			// starts; the caller's change stands.
			s.log.Warn("log entry committed but not yet checkpointed", "err", err)
		}
	}
	if s.cfg.Hub != nil {
		s.cfg.Hub.Wake(woken...)
	}
	return nil
}

func (s *Service) view(ctx context.Context, fn func(*store.Tx) error) error {
	return storeErr(s.cfg.Store.View(ctx, fn))
}

// viewOne runs fn, which makes one read, outside a transaction.
func (s *Service) viewOne(ctx context.Context, fn func(*store.Tx) error) error {
	return storeErr(s.cfg.Store.ViewOne(ctx, fn))
}

// storeErr maps store errors that escaped without a better message.
func storeErr(err error) error {
	var ae *apierr.Error
	switch {
	case err == nil || errors.As(err, &ae):
		return err
	case errors.Is(err, store.ErrNotFound):
		return apierr.Wrap(err, apierr.NotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return apierr.Wrap(err, apierr.Conflict, "conflicts with the current state")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apierr.Wrap(err, apierr.Unavailable, "request cancelled or timed out")
	}
	return apierr.Wrap(err, apierr.Internal, "internal error")
}

// txn is a store transaction plus what the service does inside one.
type txn struct {
	*store.Tx
	s      *Service
	ctx    context.Context
	woken  []string
	logged bool // a log entry was written
}

// logEntry queues a transparency-log entry in this transaction.
func (t *txn) logEntry(e tlog.Entry) error {
	e.Time = t.s.now().Unix()
	data, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("log entry %s: %w", e.Type, err)
	}
	t.logged = true
	return t.AppendPending(t.ctx, data)
}

// notify queues a durable event for every device in ids.
func (t *txn) notify(ids []string, typ string, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := t.PushEvent(t.ctx, store.Event{DeviceID: id, Type: typ, Payload: b, CreatedAt: t.s.now()}); err != nil {
			return err
		}
		t.woken = append(t.woken, id)
	}
	return nil
}

// activeDevices returns the IDs of the active devices of the given users.
func (t *txn) activeDevices(users ...identity.UserID) ([]string, error) {
	var ids []string
	for _, u := range users {
		ds, err := t.ListDevices(t.ctx, u)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Status == store.DeviceActive {
				ids = append(ids, d.ID)
			}
		}
	}
	return ids, nil
}

// holders returns the enabled users holding role.
func (t *txn) holders(role identity.Role) ([]identity.UserID, error) {
	us, err := t.UsersWithRole(t.ctx, role)
	if err != nil {
		return nil, err
	}
	ids := make([]identity.UserID, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	return ids, nil
}

func (t *txn) user(id identity.UserID) (store.User, error) {
	u, err := t.GetUser(t.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, apierr.New(apierr.NotFound, "no user %s", id)
	}
	return u, err
}

func (t *txn) device(id string) (store.Device, error) {
	d, err := t.GetDevice(t.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, apierr.New(apierr.NotFound, "no device %s", id)
	}
	return d, err
}

// issueCredential signs a fresh credential for an active device and stores
// it.
func (t *txn) issueCredential(d store.Device, u store.User) ([]byte, error) {
	now := t.s.now()
	c := identity.Credential{
		User: u.ID, Device: d.ID, SigKey: d.SigKey, KEMKey: d.KEMKey,
		Roles: u.Roles, Clearance: u.Clearance, Compartments: u.Compartments,
		Issued: now, Expires: now.Add(t.s.cfg.CredentialTTL),
	}
	signed, err := c.Sign(t.s.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("sign credential for %s: %w", d.ID, err)
	}
	return signed, t.SetCredential(t.ctx, d.ID, signed, c.Expires)
}

// reissueCredentials re-signs the credentials of a user's active devices
// after their roles or clearance changed, so credentials never claim more
// than the directory grants. Their key packages carry the old credential,
// so they are withdrawn; the devices upload new ones when told.
func (t *txn) reissueCredentials(u store.User) error {
	ds, err := t.ListDevices(t.ctx, u.ID)
	if err != nil {
		return err
	}
	var ids []string
	for _, d := range ds {
		if d.Status != store.DeviceActive {
			continue
		}
		if _, err := t.issueCredential(d, u); err != nil {
			return err
		}
		if err := t.DeleteKeyPackages(t.ctx, d.ID); err != nil {
			return err
		}
		ids = append(ids, d.ID)
	}
	return t.notify(ids, "credential.updated", map[string]string{"user": u.ID.String()})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func userStrings(us []identity.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
