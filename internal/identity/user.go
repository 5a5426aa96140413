// Package identity holds who is who in Hotline: user IDs, roles, clearances,
// compartments, the organisation's keys and the credentials it issues to
// devices.
//
// A user is named name@org, where org is the organisation's domain name. A
// device belongs to exactly one user; it generates its own keys and receives a
// credential, signed by the organisation's issuer key, that binds those keys
// to the user's roles, clearance and compartments until an expiry.
//
// Everything here is pure: no I/O except the explicit key-file helpers, no
// globals. Parsers return errors wrapping ErrInvalid so callers can map them
// to a stable wire code.
package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every parse and validation error in this package.
var ErrInvalid = errors.New("invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Limits on names. They keep identifiers safe to print, to use as note key
// names and to store in any database.
const (
	maxNameLen        = 64
	maxOrgLen         = 253
	maxCompartmentLen = 32
	MaxCompartments   = 32
)

// ValidateOrg checks that org is a lower-case DNS domain name with at least
// two labels, such as "state.example".
func ValidateOrg(org string) error {
	if len(org) == 0 || len(org) > maxOrgLen {
		return invalid("organisation %q: must be a domain name of 1 to %d characters", org, maxOrgLen)
	}
	labels := strings.Split(org, ".")
	if len(labels) < 2 {
		return invalid("organisation %q: must be a domain name such as state.example", org)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return invalid("organisation %q: bad domain label %q", org, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return invalid("organisation %q: domain labels use a-z, 0-9 and '-'", org)
			}
		}
	}
	return nil
}

// UserID names a user: Name@Org. The zero value is not a valid ID.
type UserID struct {
	Name string // lower-case letters, digits, '.', '-', '_'; starts with a letter or digit
	Org  string // the organisation's domain name
}

// ParseUserID parses "name@org". Names are case-insensitive on input and
// always lower-case on output.
func ParseUserID(s string) (UserID, error) {
	name, org, ok := strings.Cut(strings.ToLower(s), "@")
	if !ok {
		return UserID{}, invalid("user %q: want name@organisation", s)
	}
	u := UserID{Name: name, Org: org}
	if err := u.Validate(); err != nil {
		return UserID{}, err
	}
	return u, nil
}

// Validate reports whether u is well formed.
func (u UserID) Validate() error {
	if len(u.Name) == 0 || len(u.Name) > maxNameLen {
		return invalid("user name %q: must be 1 to %d characters", u.Name, maxNameLen)
	}
	for i, c := range u.Name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '-' || c == '_'))
		if !ok {
			return invalid("user name %q: use a-z, 0-9, '.', '-', '_' and start with a letter or digit", u.Name)
		}
	}
	return ValidateOrg(u.Org)
}

// String returns "name@org".
func (u UserID) String() string { return u.Name + "@" + u.Org }

// IsZero reports whether u is the zero UserID.
func (u UserID) IsZero() bool { return u == UserID{} }

// Role is what a user does in the organisation. Roles decide which actions a
// user may take (see internal/directory) and how the contact policy treats
// them (see internal/policy).
type Role string

// The roles. Archive and Recorder are device roles: accounts held by the
// visible archive member and call recorder, not by people.
const (
	RolePrincipal       Role = "principal"
	RoleDutyOfficer     Role = "duty-officer"
	RoleNoteTaker       Role = "note-taker"
	RoleInterpreter     Role = "interpreter"
	RoleRecordsOfficer  Role = "records-officer"
	RoleSecurityOfficer Role = "security-officer"
	RoleAdmin           Role = "admin"
	RoleCounterpart     Role = "counterpart"
	RoleArchive         Role = "archive"
	RoleRecorder        Role = "recorder"
)

// AllRoles lists every role in a fixed order.
var AllRoles = []Role{
	RolePrincipal, RoleDutyOfficer, RoleNoteTaker, RoleInterpreter,
	RoleRecordsOfficer, RoleSecurityOfficer, RoleAdmin, RoleCounterpart,
	RoleArchive, RoleRecorder,
}

// ParseRole parses one role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(AllRoles, r) {
		return "", invalid("role %q: want one of %s", s, Roles(AllRoles))
	}
	return r, nil
}

// Roles is a set of roles, kept sorted in AllRoles order without duplicates.
type Roles []Role

// ParseRoles parses a comma-separated list of roles. The empty string is the
// empty set.
func ParseRoles(s string) (Roles, error) {
	var rs Roles
	if strings.TrimSpace(s) == "" {
		return rs, nil
	}
	for _, f := range strings.Split(s, ",") {
		r, err := ParseRole(f)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs.Normalize(), nil
}

// Normalize returns rs sorted in AllRoles order with duplicates removed.
func (rs Roles) Normalize() Roles {
	out := Roles{}
	for _, r := range AllRoles {
		if slices.Contains(rs, r) {
			out = append(out, r)
		}
	}
	return out
}

// Has reports whether rs contains r.
func (rs Roles) Has(r Role) bool { return slices.Contains(rs, r) }

// String returns the roles comma-separated, or "" for none.
func (rs Roles) String() string {
	ss := make([]string, len(rs))
	for i, r := range rs {
		ss[i] = string(r)
	}
	return strings.Join(ss, ",")
}

// Clearance is a classification level. Levels are ordered: a user cleared
// for a level may see everything at that level and below.
type Clearance int

// The levels, lowest first.
const (
	Unclassified Clearance = iota
	Confidential
	Secret
	TopSecret
)

var clearanceTokens = [...]string{"unclassified", "confidential", "secret", "top-secret"}

// ParseClearance accepts the token form ("top-secret"), the display form
// ("TOP SECRET") and underscores, in any case.
func ParseClearance(s string) (Clearance, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.NewReplacer(" ", "-", "_", "-").Replace(t)
	for i, tok := range clearanceTokens {
		if t == tok {
			return Clearance(i), nil
		}
	}
	return 0, invalid("clearance %q: want unclassified, confidential, secret or top-secret", s)
}

// Valid reports whether c is one of the defined levels.
func (c Clearance) Valid() bool { return c >= Unclassified && c <= TopSecret }

// Token returns the stable wire form: "unclassified" … "top-secret".
func (c Clearance) Token() string {
	if !c.Valid() {
		return fmt.Sprintf("clearance(%d)", int(c))
	}
	return clearanceTokens[c]
}

// String returns the display form: "UNCLASSIFIED" … "TOP SECRET".
func (c Clearance) String() string {
	return strings.ToUpper(strings.ReplaceAll(c.Token(), "-", " "))
}

// MarshalText implements encoding.TextMarshaler with the token form.
func (c Clearance) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, invalid("clearance %d", int(c))
	}
	return []byte(c.Token()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Clearance) UnmarshalText(b []byte) error {
	v, err := ParseClearance(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Compartments is a set of need-to-know labels, kept sorted without
// duplicates. Labels are upper-case letters, digits, '-' and '_', 1 to 32
// characters, starting with a letter or digit (so no label is "-", the
// written form of the empty set).
type Compartments []string

// ParseCompartments parses a comma-separated list of labels; input is
// upper-cased. The empty string and "-" are the empty set.
func ParseCompartments(s string) (Compartments, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "-" {
		return Compartments{}, nil
	}
	var cs Compartments
	for _, f := range strings.Split(s, ",") {
		cs = append(cs, strings.ToUpper(strings.TrimSpace(f)))
	}
	cs = cs.Normalize()
	return cs, cs.Validate()
}

// Validate reports whether every label is well formed and there are at most
// MaxCompartments of them.
func (cs Compartments) Validate() error {
	if len(cs) > MaxCompartments {
		return invalid("compartments: at most %d", MaxCompartments)
	}
	for _, c := range cs {
		if len(c) == 0 || len(c) > maxCompartmentLen {
			return invalid("compartment %q: must be 1 to %d characters", c, maxCompartmentLen)
		}
		for i, r := range c {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '-' || r == '_')) {
				return invalid("compartment %q: use A-Z, 0-9, '-' and '_', starting with a letter or digit", c)
			}
		}
	}
	return nil
}

// Normalize returns cs sorted with duplicates removed.
func (cs Compartments) Normalize() Compartments {
	out := slices.Clone(cs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Contains reports whether cs holds every label in other.
func (cs Compartments) Contains(other Compartments) bool {
	for _, c := range other {
		if !slices.Contains(cs, c) {
			return false
		}
	}
	return true
}

// String returns the labels comma-separated, or "" for none.
func (cs Compartments) String() string { return strings.Join(cs, ",") }
