package client

import (
	"regexp"
	"testing"
)

func TestSafetyNumber(t *testing.T) {
	a := SafetyNumber("alice@x.example", []string{"k1", "k2"}, "bob@x.example", []string{"k3"})
	if !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(a) {
		t.Fatalf("format: %q", a)
	}
	// Both sides see the same number, whatever the order of keys.
	if b := SafetyNumber("bob@x.example", []string{"k3"}, "alice@x.example", []string{"k2", "k1"}); b != a {
		t.Errorf("bob sees %q, alice %q", b, a)
	}
	// Any change of keys or users changes it, and only that side's half.
	for _, c := range []struct {
		name    string
		got     string
		changed int // which half changed: 0 alice's (first), 1 bob's
	}{
		{"a device added", SafetyNumber("alice@x.example", []string{"k1", "k2"}, "bob@x.example", []string{"k3", "k4"}), 1},
		{"a device replaced", SafetyNumber("alice@x.example", []string{"k1", "k9"}, "bob@x.example", []string{"k3"}), 0},
		{"another user", SafetyNumber("alice@x.example", []string{"k1", "k2"}, "bobby@x.example", []string{"k3"}), 1},
	} {
		if c.got == a {
			t.Errorf("%s: same number", c.name)
			continue
		}
		same := 1 - c.changed
		if c.got[same*36:same*36+35] != a[same*36:same*36+35] {
			t.Errorf("%s: the other half changed too: %q vs %q", c.name, c.got, a)
		}
	}
	// Duplicates do not count twice.
	if d := SafetyNumber("alice@x.example", []string{"k2", "k1", "k1"}, "bob@x.example", []string{"k3"}); d != a {
		t.Errorf("duplicate key changed the number")
	}
}
