package identity

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseUserID(t *testing.T) {
	good := map[string]UserID{
		"kim@state.example":              {"kim", "state.example"},
		"Kim@State.Example":              {"kim", "state.example"},
		"a.b-c_d9@x-y.example.org":       {"a.b-c_d9", "x-y.example.org"},
		"0@1.2":                          {"0", "1.2"},
		strings.Repeat("a", 64) + "@a.b": {strings.Repeat("a", 64), "a.b"},
	}
	for in, want := range good {
		got, err := ParseUserID(in)
		if err != nil || got != want {
			t.Errorf("ParseUserID(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != strings.ToLower(in) || got.IsZero() {
			t.Errorf("%q: String() = %q", in, got)
		}
	}
	for _, bad := range []string{
		"", "@", "kim", "kim@", "@state.example", "kim@state", "kim@@state.example", "kim@state.example@x",
		".kim@state.example", "-kim@state.example", "_kim@state.example", "ki m@state.example", "kim+x@state.example",
		"kim@-state.example", "kim@state-.example", "kim@state..example", "kim@.state.example", "kim@state.example.",
		"kim@sta_te.example", "kim@state.exam ple", "kïm@state.example", "kim@stäte.example", "kim@state.example\n",
		strings.Repeat("a", 65) + "@a.b", "a@" + strings.Repeat("a", 64) + ".b", "a@" + strings.Repeat("a.", 127) + "b",
	} {
		if got, err := ParseUserID(bad); err == nil {
			t.Errorf("ParseUserID(%q) = %v, want an error", bad, got)
		} else {
			wantErr(t, err, ErrInvalid)
		}
	}
	if !(UserID{}).IsZero() {
		t.Error("zero UserID is not IsZero")
	}
}

func FuzzParseUserID(f *testing.F) {
	for _, s := range []string{"kim@state.example", "Kim@State.Example", "a@b", "", "@", "a.b-c_d@x-y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUserID(s)
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		if u.Validate() != nil || u.IsZero() {
			t.Fatalf("%q parsed to invalid %v", s, u)
		}
		if again, err := ParseUserID(u.String()); err != nil || again != u {
			t.Fatalf("%q -> %v -> %v, %v", s, u, again, err)
		}
		// The canonical form is lower-case ASCII, safe in note texts.
		if strings.ContainsFunc(u.String(), func(r rune) bool { return r > 0x7e || r <= ' ' || r == '+' || r >= 'A' && r <= 'Z' }) {
			t.Fatalf("%q parsed to %q", s, u)
		}
	})
}

func TestParseRoles(t *testing.T) {
	good := map[string]Roles{
		"":                             {},
		"  ":                           {},
		"principal":                    {RolePrincipal},
		"note-taker,principal":         {RolePrincipal, RoleNoteTaker},
		" Principal , NOTE-TAKER ":     {RolePrincipal, RoleNoteTaker},
		"admin,admin":                  {RoleAdmin},
		Roles(AllRoles).String():       AllRoles,
		"recorder,archive,counterpart": {RoleCounterpart, RoleArchive, RoleRecorder},
	}
	for in, want := range good {
		got, err := ParseRoles(in)
		if err != nil {
			t.Errorf("ParseRoles(%q): %v", in, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ParseRoles(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, bad := range []string{"-", "king", "principal,", ",principal", "principal,,admin", "principal;admin", "note taker", "note_taker"} {
		_, err := ParseRoles(bad)
		wantErr(t, err, ErrInvalid)
	}
	rs := Roles{RoleAdmin, RolePrincipal}
	if !rs.Has(RoleAdmin) || rs.Has(RoleNoteTaker) || rs.Normalize().String() != "principal,admin" {
		t.Error("Has, Normalize or String")
	}
}

func TestParseClearance(t *testing.T) {
	good := map[string]Clearance{
		"unclassified": Unclassified, "CONFIDENTIAL": Confidential, " secret ": Secret,
		"top-secret": TopSecret, "TOP SECRET": TopSecret, "top_secret": TopSecret, "Top Secret": TopSecret,
	}
	for in, want := range good {
		if got, err := ParseClearance(in); err != nil || got != want {
			t.Errorf("ParseClearance(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "topsecret", "top  secret", "cosmic", "0", "secret!", "top-secret-x"} {
		_, err := ParseClearance(bad)
		wantErr(t, err, ErrInvalid)
	}
	for c := Unclassified; c <= TopSecret; c++ {
		b, err := c.MarshalText()
		var back Clearance
		if err != nil || back.UnmarshalText(b) != nil || back != c {
			t.Errorf("%v: text round trip gave %v, %v", c, back, err)
		}
		if got, _ := ParseClearance(c.String()); got != c {
			t.Errorf("%v: display form does not parse back", c)
		}
	}
	if _, err := Clearance(4).MarshalText(); err == nil || Clearance(-1).Valid() {
		t.Error("out-of-range clearance accepted")
	}
	if TopSecret.String() != "TOP SECRET" || Secret.Token() != "secret" {
		t.Error("String or Token")
	}
}

func TestParseCompartments(t *testing.T) {
	good := map[string]Compartments{
		"":                      {},
		"-":                     {},
		" - ":                   {},
		"ALPHA":                 {"ALPHA"},
		"bravo, alpha":          {"ALPHA", "BRAVO"},
		"A,A,B":                 {"A", "B"},
		"X_1,Y-2":               {"X_1", "Y-2"},
		strings.Repeat("Z", 32): {strings.Repeat("Z", 32)},
		manyCompartments(MaxCompartments).String(): manyCompartments(MaxCompartments),
	}
	for in, want := range good {
		got, err := ParseCompartments(in)
		if err != nil {
			t.Errorf("ParseCompartments(%q): %v", in, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ParseCompartments(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, bad := range []string{
		",", "A,", "A,,B", "A B", "A.B", "ÄLPHA", "A,-", "--", "_A", "-A", strings.Repeat("Z", 33),
		manyCompartments(MaxCompartments + 1).String(),
	} {
		_, err := ParseCompartments(bad)
		wantErr(t, err, ErrInvalid)
	}
	cs := Compartments{"A", "B"}
	if !cs.Contains(Compartments{"B"}) || cs.Contains(Compartments{"C"}) || !cs.Contains(nil) {
		t.Error("Contains")
	}
}
