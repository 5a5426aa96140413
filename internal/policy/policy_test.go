package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hotline/internal/identity"
)

func party(t testing.TB, user, roles string) Party {
	t.Helper()
	u, err := identity.ParseUserID(user)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := identity.ParseRoles(roles)
	if err != nil {
		t.Fatal(err)
	}
	return Party{User: u, Roles: rs}
}

func rules(t testing.TB, texts ...string) []Rule {
	t.Helper()
	var rs []Rule
	for _, s := range texts {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		in   string
		want Rule // zero: want an error
	}{
		{"any -> any : deny", Rule{From: Selector{"any", ""}, To: Selector{"any", ""}, Effect: Deny}},
		{"any->any:deny", Rule{From: Selector{"any", ""}, To: Selector{"any", ""}, Effect: Deny}},
		{"  ANY  ->  Any  :  DENY  ", Rule{From: Selector{"any", ""}, To: Selector{"any", ""}, Effect: Deny}},
		{"org:state.example -> org:state.example : allow", Rule{From: Selector{"org", "state.example"}, To: Selector{"org", "state.example"}, Effect: Allow}},
		{"Org:State.Example -> any : allow", Rule{From: Selector{"org", "state.example"}, To: Selector{"any", ""}, Effect: Allow}},
		{"role:counterpart -> role:principal : request", Rule{From: Selector{"role", "counterpart"}, To: Selector{"role", "principal"}, Effect: Request}},
		{"role: Duty-Officer -> any : allow", Rule{From: Selector{"role", "duty-officer"}, To: Selector{"any", ""}, Effect: Allow}},
		{"user:PM@state.example -> user:ambassador@other.example : allow", Rule{From: Selector{"user", "pm@state.example"}, To: Selector{"user", "ambassador@other.example"}, Effect: Allow}},
		{"user:a@b.c->user:d@e.f:allow", Rule{From: Selector{"user", "a@b.c"}, To: Selector{"user", "d@e.f"}, Effect: Allow}},

		{"", Rule{}},
		{"any", Rule{}},
		{"any -> any", Rule{}},
		{"any : deny", Rule{}},
		{"any -> any : maybe", Rule{}},
		{"any -> any :", Rule{}},
		{"any -> any -> any : deny", Rule{}},
		{"any: -> any : deny", Rule{}},
		{"all -> any : deny", Rule{}},
		{"org -> any : deny", Rule{}},
		{"org:localhost -> any : deny", Rule{}},
		{"org:state..example -> any : deny", Rule{}},
		{"role:king -> any : deny", Rule{}},
		{"role: -> any : deny", Rule{}},
		{"user:alice -> any : deny", Rule{}},
		{"user:-alice@state.example -> any : deny", Rule{}},
		{"user:alice@state.example -> user:bob@state.example", Rule{}},
		{"any -> user:bob@state.example", Rule{}}, // the user's ':' is not an effect
		{"any -> any : allow" + strings.Repeat(" ", MaxRuleLen), Rule{}},
		{"user:" + strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." +
			strings.Repeat("d", 63) + "." + strings.Repeat("e", 16) + ".example->any:allow", Rule{}}, // 297 bytes, canonical 301
	}
	for _, tt := range tests {
		got, err := ParseRule(tt.in)
		if tt.want == (Rule{}) {
			if err == nil {
				t.Errorf("ParseRule(%q) = %v, want error", tt.in, got)
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseRule(%q): error %v does not wrap ErrInvalid", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseRule(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("ParseRule(%q).Validate(): %v", tt.in, err)
		}
	}
}

func TestParseRuleErrorWrapsIdentity(t *testing.T) {
	_, err := ParseRule("user:Bad! -> any : deny")
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("error %v: want it to wrap policy.ErrInvalid and identity.ErrInvalid", err)
	}
}

func TestRuleValidate(t *testing.T) {
	bad := []Rule{
		{},
		{From: Selector{"any", ""}, To: Selector{"any", "x"}, Effect: Deny},
		{From: Selector{"org", "State.Example"}, To: Selector{"any", ""}, Effect: Deny},
		{From: Selector{"role", "Principal"}, To: Selector{"any", ""}, Effect: Deny},
		{From: Selector{"user", "alice"}, To: Selector{"any", ""}, Effect: Deny},
		{From: Selector{"group", "x"}, To: Selector{"any", ""}, Effect: Deny},
		{From: Selector{"any", ""}, To: Selector{"any", ""}, Effect: "Allow"},
	}
	for _, r := range bad {
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%#v.Validate() = %v, want ErrInvalid", r, err)
		}
	}
	for _, r := range DefaultRules("state.example") {
		if err := r.Validate(); err != nil {
			t.Errorf("default rule: %v", err)
		}
	}
}

func TestEvaluate(t *testing.T) {
	pm := party(t, "pm@state.example", "principal")
	duty := party(t, "duty@state.example", "duty-officer")
	alice := party(t, "alice@state.example", "note-taker")
	dutyNotes := party(t, "multi@state.example", "note-taker,duty-officer")
	pmDuty := party(t, "deputy@state.example", "principal,duty-officer")
	amb := party(t, "ambassador@other.example", "counterpart")
	minister := party(t, "minister@other.example", "counterpart")
	guest := party(t, "guest@state.example", "counterpart")
	stranger := party(t, "bob@other.example", "")

	defaults := DefaultRules("state.example")
	withPM := append(DefaultRules("state.example"), rules(t, "user:pm@state.example -> user:ambassador@other.example : allow")...)

	const (
		staffRule      = "org:state.example -> org:state.example : allow"
		toPrincipal    = "role:counterpart -> role:principal : request"
		toDuty         = "role:counterpart -> role:duty-officer : allow"
		cpToAny        = "role:counterpart -> any : deny"
		anyToCp        = "any -> role:counterpart : deny"
		dutyToCp       = "role:duty-officer -> role:counterpart : allow"
		pmToAmbassador = "user:pm@state.example -> user:ambassador@other.example : allow"
	)
	tests := []struct {
		name     string
		rules    []Rule
		from, to Party
		effect   Effect
		rule     string // the deciding rule's text, "" for none
	}{
		{"staff to staff", defaults, alice, duty, Allow, staffRule},
		{"principal to staff", defaults, pm, alice, Allow, staffRule},
		{"counterpart to principal", defaults, amb, pm, Request, toPrincipal},
		{"counterpart to duty officer", defaults, amb, duty, Allow, toDuty},
		{"counterpart to note-taker", defaults, amb, alice, Deny, cpToAny},
		{"counterpart to counterpart", defaults, amb, minister, Deny, cpToAny},
		{"counterpart to stranger", defaults, amb, stranger, Deny, cpToAny},
		{"principal to counterpart", defaults, pm, amb, Deny, anyToCp},
		{"note-taker to counterpart", defaults, alice, amb, Deny, anyToCp},
		{"stranger to counterpart", defaults, stranger, amb, Deny, anyToCp},
		{"duty officer to counterpart", defaults, duty, amb, Allow, dutyToCp},
		{"several roles: duty officer and note-taker to counterpart", defaults, dutyNotes, amb, Allow, dutyToCp},
		{"tie at 4: counterpart to principal and duty officer", defaults, amb, pmDuty, Request, toPrincipal},
		{"tie at 2: local counterpart to staff", defaults, guest, alice, Deny, cpToAny},
		{"tie at 2: staff to local counterpart", defaults, alice, guest, Deny, anyToCp},
		{"local counterpart to principal", defaults, guest, pm, Request, toPrincipal},
		{"stranger to staff", defaults, stranger, alice, Deny, ""},
		{"staff to stranger", defaults, alice, stranger, Deny, ""},
		{"self", defaults, amb, amb, Allow, ""},
		{"self with no rules", nil, stranger, stranger, Allow, ""},
		{"no rules", nil, alice, duty, Deny, ""},
		{"principal to pre-approved counterpart", withPM, pm, amb, Allow, pmToAmbassador},
		{"rules are directional", withPM, amb, pm, Request, toPrincipal},
		{"pre-approval names one counterpart", withPM, pm, minister, Deny, anyToCp},
		{"pre-approval names one principal", withPM, pmDuty, amb, Allow, dutyToCp},
		{"tie at 3: org->role vs role->org", rules(t,
			"role:note-taker -> org:state.example : allow",
			"org:state.example -> role:principal : request"), alice, pm, Request, "org:state.example -> role:principal : request"},
		{"specific allow beats general deny", rules(t,
			"any -> any : deny",
			"user:alice@state.example -> user:duty@state.example : allow"), alice, duty, Allow, "user:alice@state.example -> user:duty@state.example : allow"},
		{"specific deny beats general allow", rules(t,
			"any -> any : allow",
			"org:state.example -> user:pm@state.example : deny"), alice, pm, Deny, "org:state.example -> user:pm@state.example : deny"},
		{"role->role beats user->any", rules(t,
			"user:alice@state.example -> any : deny",
			"role:note-taker -> role:principal : allow"), alice, pm, Allow, "role:note-taker -> role:principal : allow"},
		{"tie: request beats allow", rules(t,
			"org:state.example -> any : allow",
			"any -> org:state.example : request"), alice, pm, Request, "any -> org:state.example : request"},
		{"unknown effect refuses", []Rule{{From: Selector{"any", ""}, To: Selector{"any", ""}, Effect: "maybe"}}, alice, pm, Deny, "any -> any : maybe"},
		{"zero party is not self", nil, Party{}, Party{}, Deny, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.rules, tt.from, tt.to)
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.String()
			}
			wantCode := map[Effect]string{Allow: "", Request: CodeViaRequest, Deny: CodeRefused}[tt.effect]
			got := fmt.Sprintf("%s %q %s", d.Effect, d.Code, rule)
			want := fmt.Sprintf("%s %q %s", tt.effect, wantCode, tt.rule)
			if got != want {
				t.Errorf("Evaluate(%v -> %v) = %s, want %s", tt.from.User, tt.to.User, got, want)
			}
		})
	}
}

func TestEvaluateFirstOfEquals(t *testing.T) {
	rs := rules(t, "any -> any : deny", "any -> any : deny")
	if d := Evaluate(rs, party(t, "a@b.example", ""), party(t, "c@b.example", "")); d.Rule != &rs[0] {
		t.Errorf("deciding rule = %p, want the first (%p)", d.Rule, &rs[0])
	}
}

// randomWorld returns a small vocabulary of selectors and parties, so that
// random rules often match random parties.
func randomWorld(t testing.TB) ([]Selector, []Party) {
	var parties []Party
	var sels []Selector
	for _, s := range []string{"any", "org:a.example", "org:b.example", "role:principal", "role:counterpart", "role:duty-officer"} {
		sel, err := ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, sel)
	}
	for _, org := range []string{"a.example", "b.example"} {
		for i, roles := range []string{"", "principal", "counterpart", "duty-officer", "principal,duty-officer"} {
			p := party(t, fmt.Sprintf("u%d@%s", i, org), roles)
			parties = append(parties, p)
			sels = append(sels, Selector{"user", p.User.String()})
		}
	}
	return sels, parties
}

func randomRule(rng *rand.Rand, sels []Selector) Rule {
	effects := []Effect{Allow, Request, Deny}
	return Rule{From: sels[rng.IntN(len(sels))], To: sels[rng.IntN(len(sels))], Effect: effects[rng.IntN(3)]}
}

// TestAddingDenyNeverLoosens checks that adding a deny rule never makes a
// decision less restrictive, and that a matching deny at least as specific
// as the deciding rule always decides.
func TestAddingDenyNeverLoosens(t *testing.T) {
	sels, parties := randomWorld(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var rs []Rule
		for range rng.IntN(8) {
			rs = append(rs, randomRule(rng, sels))
		}
		from, to := parties[rng.IntN(len(parties))], parties[rng.IntN(len(parties))]
		before := Evaluate(rs, from, to)
		deny := randomRule(rng, sels)
		deny.Effect = Deny
		after := Evaluate(append(rs, deny), from, to)
		if after.Effect.severity() < before.Effect.severity() {
			t.Fatalf("rules %v + %v: %v -> %v went from %s to %s", rs, deny, from.User, to.User, before.Effect, after.Effect)
		}
		matches := from.User != to.User && deny.From.matches(from) && deny.To.matches(to)
		moreSpecific := before.Rule == nil || deny.From.specificity()+deny.To.specificity() >= before.Rule.From.specificity()+before.Rule.To.specificity()
		if matches && moreSpecific && after.Effect != Deny {
			t.Fatalf("rules %v + %v: %v -> %v = %s, want deny", rs, deny, from.User, to.User, after.Effect)
		}
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"any -> any : deny",
		"org:state.example->org:state.example:allow",
		"role:counterpart -> role:principal : request",
		"user:pm@state.example -> user:ambassador@other.example : allow",
		" USER:PM@State.Example->Role: Duty-Officer :ALLOW ",
		"any -> user:bob@state.example",
		"org:x -> any : deny",
		"->:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseRule(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRule(%q) = %v, which does not validate: %v", s, r, err)
		}
		r2, err := ParseRule(r.String())
		if err != nil {
			t.Fatalf("ParseRule(%q) = %q, which does not parse: %v", s, r, err)
		}
		if r2 != r {
			t.Fatalf("ParseRule(%q) = %#v, but its text parses to %#v", s, r, r2)
		}
	})
}

func BenchmarkEvaluate(b *testing.B) {
	rs := DefaultRules("state.example")
	rng := rand.New(rand.NewPCG(1, 2))
	for len(rs) < 1000 {
		from := Selector{"user", fmt.Sprintf("u%d@state.example", rng.IntN(500))}
		to := Selector{"user", fmt.Sprintf("c%d@other.example", rng.IntN(500))}
		rs = append(rs, Rule{From: from, To: to, Effect: Allow})
	}
	from := party(b, "u7@state.example", "principal")
	to := party(b, "c7@other.example", "counterpart")
	for b.Loop() {
		Evaluate(rs, from, to)
	}
}
