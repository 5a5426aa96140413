package org

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"hotline/internal/apierr"
	"hotline/internal/directory"
	"hotline/internal/identity"
	"hotline/internal/policy"
	"hotline/internal/store"
	"hotline/internal/tlog"
)

// Refusals are logged at most refusalBurst at once and then one per
// refusalEvery per device; the ones in between are counted and folded into
// the next logged refusal, so a device cannot flood the log.
const (
	refusalBurst = 5
	refusalEvery = 12 * time.Second
)

// ListRules returns the contact-policy rules.
func (s *Service) ListRules(ctx context.Context, a Actor) ([]store.PolicyRule, error) {
	if err := a.can(directory.ActPolicyRead); err != nil {
		return nil, err
	}
	var rs []store.PolicyRule
	err := s.view(ctx, func(tx *store.Tx) (err error) { rs, err = tx.ListPolicyRules(ctx); return })
	return rs, err
}

// AddRule adds a contact-policy rule given in its text form.
func (s *Service) AddRule(ctx context.Context, a Actor, text string) (store.PolicyRule, error) {
	if err := a.can(directory.ActPolicyManage); err != nil {
		return store.PolicyRule{}, err
	}
	var r store.PolicyRule
	err := s.update(ctx, func(t *txn) error {
		var err error
		r, err = t.addRule(text, a.User.ID.String())
		return err
	})
	return r, err
}

func (t *txn) addRule(text, by string) (store.PolicyRule, error) {
	rule, err := policy.ParseRule(text)
	if err != nil {
		return store.PolicyRule{}, apierr.Wrap(err, apierr.BadRequest, "%v", err)
	}
	r := store.PolicyRule{Rule: rule.String(), CreatedBy: by, CreatedAt: t.s.now()}
	r.ID, err = t.AddPolicyRule(t.ctx, r)
	if errors.Is(err, store.ErrConflict) {
		return store.PolicyRule{}, apierr.New(apierr.Conflict, "rule %q exists", r.Rule)
	} else if err != nil {
		return store.PolicyRule{}, err
	}
	return r, t.logEntry(tlog.Entry{Type: tlog.TypePolicyAdd, Actor: by, Rule: r.Rule})
}

// RemoveRule deletes a rule by ID.
func (s *Service) RemoveRule(ctx context.Context, a Actor, id int64) (string, error) {
	if err := a.can(directory.ActPolicyManage); err != nil {
		return "", err
	}
	var text string
	err := s.update(ctx, func(t *txn) error {
		var err error
		if text, err = t.RemovePolicyRule(ctx, id); errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "no rule %d", id)
		} else if err != nil {
			return err
		}
		return t.logEntry(tlog.Entry{Type: tlog.TypePolicyRemove, Actor: a.User.ID.String(), Rule: text})
	})
	return text, err
}

// rules loads and parses the stored rules.
func rules(ctx context.Context, tx *store.Tx) ([]policy.Rule, error) {
	stored, err := tx.ListPolicyRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]policy.Rule, 0, len(stored))
	for _, sr := range stored {
		r, err := policy.ParseRule(sr.Rule)
		if err != nil {
			return nil, err // stored rules were validated when added
		}
		r.ID = sr.ID
		out = append(out, r)
	}
	return out, nil
}

// CheckContact decides whether the actor may open a conversation or call
// with target. A refusal is an *apierr.Error (contact_refused or
// contact_via_request) and is written to the transparency log, rate-limited
// per device.
func (s *Service) CheckContact(ctx context.Context, a Actor, target identity.UserID) (policy.Decision, error) {
	var (
		d   policy.Decision
		err error
	)
	verr := s.view(ctx, func(tx *store.Tx) error {
		d, err = s.CheckContactTx(ctx, tx, a, target)
		return nil
	})
	if verr != nil {
		return d, verr
	}
	return d, err
}

// CheckContactTx is CheckContact within a transaction the caller holds
// (the delivery service checks whom a commit adds in the transaction that
// accepts it, and must not wait for a second connection meanwhile).
func (s *Service) CheckContactTx(ctx context.Context, tx *store.Tx, a Actor, target identity.UserID) (policy.Decision, error) {
	if err := a.can(directory.ActContactCheck); err != nil {
		return policy.Decision{}, err
	}
	tgt, err := (&txn{Tx: tx, s: s, ctx: ctx}).user(target)
	if err != nil {
		return policy.Decision{}, storeErr(err)
	}
	if tgt.Roles.Has(identity.RoleArchive) && tgt.ID.Org == s.cfg.Org && !tgt.Disabled {
		// The organisation's archive joins every conversation on the
		// record, whoever makes it: it is a member by rule, not a contact,
		// and says nothing.
		return policy.Decision{Effect: policy.Allow}, nil
	}
	rs, err := rules(ctx, tx)
	if err != nil {
		return policy.Decision{}, storeErr(err)
	}
	d := policy.Evaluate(rs, policy.Party{User: a.User.ID, Roles: a.User.Roles}, policy.Party{User: tgt.ID, Roles: tgt.Roles})
	if tgt.Disabled && d.Effect == policy.Allow {
		return d, apierr.New(apierr.UserDisabled, "user %s is disabled", tgt.ID)
	}
	if d.Effect == policy.Allow {
		return d, nil
	}
	s.logRefusal(a, target, d.Code)
	rule := "no rule allows it"
	if d.Rule != nil {
		rule = "rule: " + d.Rule.String()
	}
	if d.Effect == policy.Request {
		return d, apierr.New(apierr.ContactViaRequest, "%s can be reached only through a call request to the duty desk (%s)", target, rule)
	}
	return d, apierr.New(apierr.ContactRefused, "the contact policy refuses contact with %s (%s)", target, rule)
}

// CheckRequestTx decides whether the actor may ask the duty desk for a call
// with target: the contact policy must allow contact, directly or through a
// call request. It returns the target. A refusal is logged as CheckContactTx
// logs it; an allowed request is not (the request itself is logged).
func (s *Service) CheckRequestTx(ctx context.Context, tx *store.Tx, a Actor, target identity.UserID) (store.User, error) {
	if err := a.can(directory.ActRequestCreate); err != nil {
		return store.User{}, err
	}
	tgt, err := (&txn{Tx: tx, s: s, ctx: ctx}).user(target)
	if err != nil {
		return store.User{}, storeErr(err)
	}
	rs, err := rules(ctx, tx)
	if err != nil {
		return store.User{}, storeErr(err)
	}
	d := policy.Evaluate(rs, policy.Party{User: a.User.ID, Roles: a.User.Roles}, policy.Party{User: tgt.ID, Roles: tgt.Roles})
	if d.Effect == policy.Allow || d.Effect == policy.Request {
		if tgt.Disabled {
			return tgt, apierr.New(apierr.UserDisabled, "user %s is disabled", tgt.ID)
		}
		return tgt, nil
	}
	s.logRefusal(a, target, d.Code)
	rule := "no rule allows it"
	if d.Rule != nil {
		rule = "rule: " + d.Rule.String()
	}
	return tgt, apierr.New(apierr.ContactRefused, "the contact policy refuses contact with %s (%s)", target, rule)
}

// Contact is a user the actor may reach: directly, or, with ViaRequest,
// only through a call request to the duty desk.
type Contact struct {
	User       store.User
	ViaRequest bool
}

// Contacts lists the users the contact policy lets the actor reach, by ID:
// the address book of a device. Users the policy refuses and disabled
// users are left out; listing them is not an attempt, so nothing is logged.
func (s *Service) Contacts(ctx context.Context, a Actor) ([]Contact, error) {
	if err := a.can(directory.ActContactCheck); err != nil {
		return nil, err
	}
	var out []Contact
	err := s.view(ctx, func(tx *store.Tx) error {
		us, err := tx.ListUsers(ctx)
		if err != nil {
			return err
		}
		rs, err := rules(ctx, tx)
		if err != nil {
			return err
		}
		from := policy.Party{User: a.User.ID, Roles: a.User.Roles}
		for _, u := range us {
			if u.ID == a.User.ID || u.Disabled {
				continue
			}
			switch policy.Evaluate(rs, from, policy.Party{User: u.ID, Roles: u.Roles}).Effect {
			case policy.Allow:
				out = append(out, Contact{User: u})
			case policy.Request:
				out = append(out, Contact{User: u, ViaRequest: true})
			}
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	slices.SortFunc(out, func(x, y Contact) int { return strings.Compare(x.User.ID.String(), y.User.ID.String()) })
	return out, nil
}

// logRefusal appends a contact.refused entry unless the device is over its
// rate, in which case the refusal is counted into the next entry.
func (s *Service) logRefusal(a Actor, target identity.UserID, code string) {
	s.mu.Lock()
	rl := s.refusals[a.Device.ID]
	if rl == nil {
		rl = &refusalLimit{lim: rate.NewLimiter(rate.Every(refusalEvery), refusalBurst)}
		s.refusals[a.Device.ID] = rl
	}
	if !rl.lim.AllowN(s.cfg.Now(), 1) {
		rl.suppressed++
		s.mu.Unlock()
		return
	}
	suppressed := rl.suppressed
	rl.suppressed = 0
	s.mu.Unlock()
	s.cfg.Log.Add(tlog.Entry{Type: tlog.TypeContactRefused, Time: s.now().Unix(), Actor: a.User.ID.String(),
		ActorDevice: a.Device.ID, Target: target.String(), Reason: code, Count: 1 + suppressed})
}
