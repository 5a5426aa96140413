// Package policy decides who may open a conversation or call with whom: an
// organisation's contact policy.
//
// A policy is a list of rules, each written FROM -> TO : EFFECT:
//
//	org:state.example -> org:state.example : allow
//	role:counterpart -> role:principal : request
//	user:pm@state.example -> user:ambassador@other.example : allow
//
// Evaluate finds the rules whose selectors match both parties. The most
// specific of them decide (a user is more specific than a role, a role than
// an organisation, an organisation than "any"); among equally specific rules
// the most restrictive effect wins. Where no rule matches, the answer is deny.
// Rules are directional: a rule from A to B says nothing about B contacting A.
// docs/roles.md explains the semantics and the defaults for operators.
//
// Everything here is pure. Parse and validation errors wrap ErrInvalid.
package policy

import (
	"errors"
	"fmt"
	"strings"

	"hotline/internal/identity"
)

// ErrInvalid is wrapped by every parse and validation error in this package.
var ErrInvalid = errors.New("invalid")

// MaxRuleLen bounds a rule's text, as given and in canonical form.
const MaxRuleLen = 300

// Effect is what a rule decides.
type Effect string

// The effects, least restrictive first.
const (
	Allow   Effect = "allow"   // contact directly
	Request Effect = "request" // only through a call request to the duty desk
	Deny    Effect = "deny"
)

// The stable codes a refusal carries on the wire.
const (
	CodeRefused    = "contact_refused"
	CodeViaRequest = "contact_via_request"
)

// severity orders effects by restriction. Unknown effects rank with deny so
// that a malformed rule can only ever refuse.
func (e Effect) severity() int {
	switch e {
	case Allow:
		return 0
	case Request:
		return 1
	}
	return 2
}

// Selector picks out parties. Kind is "any", "org", "role" or "user"; Value
// is empty for "any" and otherwise a domain, a role or name@domain, all in
// canonical (lower-case) form.
type Selector struct {
	Kind  string
	Value string
}

// ParseSelector parses "any", "org:DOMAIN", "role:ROLE" or "user:NAME@DOMAIN".
// Input is case-insensitive; the result is canonical.
func ParseSelector(s string) (Selector, error) {
	sel, err := parseSelector(s)
	if err != nil {
		return Selector{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return sel, nil
}

func parseSelector(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	kind, value, hasValue := strings.Cut(s, ":")
	sel := Selector{Kind: strings.ToLower(kind)}
	value = strings.TrimSpace(value)
	var err error
	switch {
	case sel.Kind == "any" && !hasValue:
	case sel.Kind == "org":
		sel.Value = strings.ToLower(value)
		err = identity.ValidateOrg(sel.Value)
	case sel.Kind == "role":
		var r identity.Role
		r, err = identity.ParseRole(value)
		sel.Value = string(r)
	case sel.Kind == "user":
		var u identity.UserID
		u, err = identity.ParseUserID(value)
		sel.Value = u.String()
	default:
		return Selector{}, fmt.Errorf("selector %q: want any, org:DOMAIN, role:ROLE or user:NAME@DOMAIN", s)
	}
	if err != nil {
		return Selector{}, fmt.Errorf("selector %q: %w", s, err)
	}
	return sel, nil
}

// String returns the text form, which ParseSelector accepts.
func (s Selector) String() string {
	if s.Value == "" {
		return s.Kind
	}
	return s.Kind + ":" + s.Value
}

// matches reports whether p is among the parties s picks out.
func (s Selector) matches(p Party) bool {
	switch s.Kind {
	case "any":
		return true
	case "org":
		return p.User.Org == s.Value
	case "role":
		return p.Roles.Has(identity.Role(s.Value))
	case "user":
		name, org, _ := strings.Cut(s.Value, "@")
		return p.User.Name == name && p.User.Org == org
	}
	return false
}

func (s Selector) specificity() int {
	switch s.Kind {
	case "org":
		return 1
	case "role":
		return 2
	case "user":
		return 3
	}
	return 0
}

// Rule says what happens when a party matching From contacts one matching To.
// ID is the rule's key in the store; it is not part of the text form.
type Rule struct {
	ID       int64
	From, To Selector
	Effect   Effect
}

// ParseRule parses "FROM -> TO : EFFECT", such as
// "role:counterpart -> role:principal : request". Spaces around the
// separators are optional; the text is at most MaxRuleLen bytes.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(s)
	if err != nil {
		return Rule{}, fmt.Errorf("%w: rule %q: %w", ErrInvalid, s, err)
	}
	return r, nil
}

func parseRule(s string) (Rule, error) {
	if len(s) > MaxRuleLen {
		return Rule{}, fmt.Errorf("longer than %d bytes", MaxRuleLen)
	}
	from, rest, ok := strings.Cut(s, "->")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Rule{}, errors.New("want FROM -> TO : EFFECT")
	}
	var r Rule
	var err error
	if r.From, err = parseSelector(from); err != nil {
		return Rule{}, err
	}
	if r.To, err = parseSelector(rest[:i]); err != nil {
		return Rule{}, err
	}
	r.Effect = Effect(strings.ToLower(strings.TrimSpace(rest[i+1:])))
	return r, r.validate()
}

// String returns the canonical text form, which ParseRule accepts.
func (r Rule) String() string {
	return r.From.String() + " -> " + r.To.String() + " : " + string(r.Effect)
}

// Validate reports whether r is well formed: canonical selectors naming valid
// organisations, roles and users, a known effect, and text of at most
// MaxRuleLen bytes.
func (r Rule) Validate() error {
	for _, s := range []Selector{r.From, r.To} {
		p, err := parseSelector(s.String())
		if err == nil && p != s {
			err = fmt.Errorf("selector %q: not canonical, want %q", s, p)
		}
		if err != nil {
			return fmt.Errorf("%w: rule %q: %w", ErrInvalid, r, err)
		}
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("%w: rule %q: %w", ErrInvalid, r, err)
	}
	return nil
}

func (r Rule) validate() error {
	if r.Effect != Allow && r.Effect != Request && r.Effect != Deny {
		return fmt.Errorf("effect %q: want allow, request or deny", r.Effect)
	}
	if len(r.String()) > MaxRuleLen {
		return fmt.Errorf("longer than %d bytes", MaxRuleLen)
	}
	return nil
}

// Party is one side of a contact: a user and the roles this organisation's
// directory gives them.
type Party struct {
	User  identity.UserID
	Roles identity.Roles
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Effect Effect
	Rule   *Rule  // the deciding rule, pointing into the rules given; nil for the default deny and for contacting oneself
	Code   string // "" when allowed, CodeRefused for deny, CodeViaRequest for request
}

// Evaluate decides whether from may contact to under rules. A user may
// always contact themself. Otherwise the matching rules with the highest
// specificity decide (a selector counts any=0, org=1, role=2, user=3; a
// rule, the sum of its two); among those the most restrictive effect wins
// (deny, then request, then allow), and among rules with that effect the
// first in rules. No matching rule means deny.
func Evaluate(rules []Rule, from, to Party) Decision {
	if from.User == to.User && !from.User.IsZero() {
		return Decision{Effect: Allow}
	}
	var best *Rule
	bestSpec := -1
	for i := range rules {
		r := &rules[i]
		if !r.From.matches(from) || !r.To.matches(to) {
			continue
		}
		spec := r.From.specificity() + r.To.specificity()
		if spec > bestSpec || spec == bestSpec && r.Effect.severity() > best.Effect.severity() {
			best, bestSpec = r, spec
		}
	}
	switch {
	case best == nil:
		return Decision{Effect: Deny, Code: CodeRefused}
	case best.Effect == Allow:
		return Decision{Effect: Allow, Rule: best}
	case best.Effect == Request:
		return Decision{Effect: Request, Rule: best, Code: CodeViaRequest}
	}
	return Decision{Effect: Deny, Rule: best, Code: CodeRefused}
}

// DefaultRules returns a new organisation's policy; org must be a valid
// domain. Staff reach each other freely. A counterpart (a pre-approved
// outsider) reaches a principal only through a call request, reaches duty
// officers directly, and nobody else. Only duty officers contact
// counterparts; an admin adds user-to-user rules for principals who may call
// a particular counterpart directly.
func DefaultRules(org string) []Rule {
	var (
		anyone      = Selector{Kind: "any"}
		staff       = Selector{Kind: "org", Value: org}
		counterpart = Selector{Kind: "role", Value: string(identity.RoleCounterpart)}
		principal   = Selector{Kind: "role", Value: string(identity.RolePrincipal)}
		duty        = Selector{Kind: "role", Value: string(identity.RoleDutyOfficer)}
	)
	return []Rule{
		{From: staff, To: staff, Effect: Allow},
		{From: counterpart, To: principal, Effect: Request},
		{From: counterpart, To: duty, Effect: Allow},
		{From: counterpart, To: anyone, Effect: Deny},
		{From: anyone, To: counterpart, Effect: Deny},
		{From: duty, To: counterpart, Effect: Allow},
	}
}
