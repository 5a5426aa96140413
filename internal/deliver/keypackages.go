// Package deliver is the server's MLS delivery service: it keeps devices'
// key packages and encrypted attachments, and for conversations it orders
// each group's commits, checks who enters them, and fans messages out
// (conversations.go). It sees MLS structures, never their
// plaintext: key packages are public, application messages arrive
// encrypted.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"hotline/internal/apierr"
	"hotline/internal/events"
	"hotline/internal/identity"
	"hotline/internal/mls"
	"hotline/internal/org"
	"hotline/internal/store"
	"hotline/internal/transparency"
)

// Limits on key packages.
const (
	// MaxKeyPackages is how many ordinary key packages a device may hold per
	// cipher suite.
	MaxKeyPackages = 100
	// LowStock is the count below which a device is told to upload more.
	LowStock = 10
	// maxUpload bounds one upload.
	maxUpload = 100
)

// Config holds what the service needs.
type Config struct {
	Store *store.Store
	Org   *org.Service
	Hub   *events.Hub
	// Issuers verifies device credentials (the current key set's issuer).
	Issuers note.Verifiers
	// Log records conversations and their membership (nil in tests of key
	// packages alone).
	Log *transparency.Log
	// KeySet is the organisation's current key set: its delivery key is the
	// only external sender new conversations may name.
	KeySet identity.KeySet
	// DeliverySigner is the delivery key, which signs the server's Remove
	// proposals.
	DeliverySigner mls.SignaturePrivateKey
	Now            func() time.Time
	Logger         *slog.Logger
	// RequireArchive refuses conversations that do not require the
	// organisation's archive member.
	RequireArchive bool
	// Misbehave makes the service break its own rules, for tests that
	// show clients do not depend on them. No flag or file sets it.
	Misbehave Misbehaviour
}

// Misbehaviour lists the rules a test may switch off.
type Misbehaviour struct {
	// SkipMemberChecks accepts any leaf into a conversation: no check of
	// its credential, device, clearance or the contact policy.
	SkipMemberChecks bool
}

// Service is the delivery service. It is safe for concurrent use.
type Service struct {
	cfg     Config
	members memberCache // conversations.go
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// Stock is a device's supply of key packages for one suite.
type Stock struct {
	CipherSuite mls.CipherSuite
	Ordinary    int
	LastResort  bool
}

func invalid(format string, args ...any) error {
	return apierr.New(apierr.KeyPackageInvalid, format, args...)
}

// checkKeyPackage decodes and validates one uploaded key package: it must
// be a valid RFC 9420 key package of an implemented suite, signed by the
// uploading device's own key, carrying as its basic credential that
// device's current Hotline credential, and expiring no later than it.
func (s *Service) checkKeyPackage(a org.Actor, raw []byte, now time.Time) (*mls.KeyPackage, *mls.Suite, error) {
	m, err := mls.UnmarshalMLSMessage(raw)
	if err != nil || m.KeyPackage == nil {
		return nil, nil, invalid("not an MLS key package message")
	}
	kp := m.KeyPackage
	suite, err := mls.SuiteFor(kp.CipherSuite)
	if err != nil {
		return nil, nil, invalid("cipher suite %#04x is not supported", uint16(kp.CipherSuite))
	}
	if err := suite.ValidateKeyPackage(kp, now); err != nil {
		return nil, nil, invalid("%v", err)
	}
	leaf := &kp.LeafNode
	if string(leaf.SignatureKey) != string(a.Device.SigKey[:]) {
		return nil, nil, invalid("the leaf's signature key is not this device's key")
	}
	if leaf.Credential.Type != mls.CredentialBasic {
		return nil, nil, invalid("the leaf must carry a basic credential holding the device's Hotline credential")
	}
	cred, err := identity.OpenCredential(leaf.Credential.Identity, s.cfg.Issuers, now)
	if err != nil {
		return nil, nil, invalid("the leaf's credential: %v", err)
	}
	if cred.Device != a.Device.ID {
		return nil, nil, invalid("the leaf's credential is for device %s, not this one", cred.Device)
	}
	if leaf.Lifetime.NotAfter > uint64(cred.Expires.Unix()) {
		return nil, nil, invalid("the key package outlives the credential it carries (expires %s)", cred.Expires.Format(time.RFC3339))
	}
	return kp, suite, nil
}

// UploadKeyPackages stores a device's key packages (MLSMessage encodings)
// and, if given, its last-resort package, which replaces the previous one.
// An invalid package rejects the whole upload. It returns the stock of the
// suites touched.
func (s *Service) UploadKeyPackages(ctx context.Context, a org.Actor, packages [][]byte, lastResort []byte) ([]Stock, error) {
	if len(packages) > maxUpload {
		return nil, apierr.New(apierr.TooLarge, "at most %d key packages per upload", maxUpload)
	}
	now := s.cfg.Now()
	type item struct {
		kp   store.KeyPackage
		last bool
	}
	var items []item
	for i, raw := range append(packages, lastResort) {
		last := i == len(packages)
		if last && lastResort == nil {
			break
		}
		kp, suite, err := s.checkKeyPackage(a, raw, now)
		if err != nil {
			return nil, err
		}
		items = append(items, item{last: last, kp: store.KeyPackage{
			Ref: suite.MakeKeyPackageRef(kp.Marshal()), DeviceID: a.Device.ID, CipherSuite: uint16(kp.CipherSuite),
			Data: raw, LastResort: last, NotAfter: time.Unix(int64(kp.LeafNode.Lifetime.NotAfter), 0), CreatedAt: now,
		}})
	}
	var stocks []Stock
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		stocks = nil
		seen := map[uint16]bool{}
		for _, it := range items {
			if err := tx.PutKeyPackage(ctx, it.kp); errors.Is(err, store.ErrConflict) {
				return apierr.New(apierr.Conflict, "key package %x was uploaded before", it.kp.Ref[:8])
			} else if err != nil {
				return err
			}
			seen[it.kp.CipherSuite] = true
		}
		for cs := range seen {
			n, lr, err := tx.KeyPackageStock(ctx, a.Device.ID, cs, now)
			if err != nil {
				return err
			}
			if n > MaxKeyPackages {
				return apierr.New(apierr.TooLarge, "a device holds at most %d key packages per suite", MaxKeyPackages)
			}
			stocks = append(stocks, Stock{CipherSuite: mls.CipherSuite(cs), Ordinary: n, LastResort: lr})
		}
		return nil
	})
	return stocks, storeErr(err)
}

// Claimed is a key package handed out for adding a device to a group.
type Claimed struct {
	Device     string
	KeyPackage []byte // MLSMessage encoding
	LastResort bool
}

// ClaimKeyPackages hands out one key package for each active device of user
// (except the caller's own device and those in except), so the caller can
// add them to a group. It returns none, and no error, when except names
// every other active device of the user.
// Claiming is a contact: the contact policy decides, as for any other, and
// refusals are logged. Claiming the caller's own user's other devices is
// always allowed. Devices left with few packages are told to upload more.
func (s *Service) ClaimKeyPackages(ctx context.Context, a org.Actor, user identity.UserID, suite mls.CipherSuite, except []string) ([]Claimed, error) {
	if _, err := mls.SuiteFor(suite); err != nil {
		return nil, apierr.New(apierr.BadRequest, "cipher suite %#04x is not supported", uint16(suite))
	}
	if user != a.User.ID {
		if _, err := s.cfg.Org.CheckContact(ctx, a, user); err != nil {
			return nil, err
		}
	}
	now := s.cfg.Now()
	var (
		out []Claimed
		low []string
	)
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		out, low = nil, nil
		ds, err := tx.ListDevices(ctx, user)
		if err != nil {
			return err
		}
		eligible, excepted := 0, 0
		for _, d := range ds {
			if d.Status != store.DeviceActive || d.ID == a.Device.ID {
				continue
			}
			if slices.Contains(except, d.ID) {
				excepted++
				continue
			}
			eligible++
			kp, err := tx.ClaimKeyPackage(ctx, d.ID, uint16(suite), now)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			out = append(out, Claimed{Device: d.ID, KeyPackage: kp.Data, LastResort: kp.LastResort})
			n, _, err := tx.KeyPackageStock(ctx, d.ID, uint16(suite), now)
			if err != nil {
				return err
			}
			if n < LowStock {
				if _, err := tx.PushEvent(ctx, store.Event{DeviceID: d.ID, Type: "keypackages.low",
					Payload: fmt.Appendf(nil, `{"cipher_suite":%d,"ordinary":%d}`, suite, n), CreatedAt: now}); err != nil {
					return err
				}
				low = append(low, d.ID)
			}
		}
		if len(out) == 0 && !(eligible == 0 && excepted > 0) {
			return apierr.New(apierr.KeyPackageMissing, "no device of %s has a key package for suite %#04x", user, uint16(suite)).
				WithHint("the user's devices upload key packages when they next connect")
		}
		return nil
	})
	if err == nil && s.cfg.Hub != nil {
		s.cfg.Hub.Wake(low...)
	}
	return out, storeErr(err)
}

// Stock returns the caller's device's supply of key packages for a suite.
func (s *Service) Stock(ctx context.Context, a org.Actor, suite mls.CipherSuite) (Stock, error) {
	st := Stock{CipherSuite: suite}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		st.Ordinary, st.LastResort, err = tx.KeyPackageStock(ctx, a.Device.ID, uint16(suite), s.cfg.Now())
		return err
	})
	return st, storeErr(err)
}

func storeErr(err error) error {
	var ae *apierr.Error
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return apierr.Wrap(err, apierr.Internal, "internal error")
}

// Expire deletes key packages past their lifetime; the server calls it
// periodically.
func (s *Service) Expire(ctx context.Context) error {
	return s.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.ExpireKeyPackages(ctx, s.cfg.Now()) })
}
