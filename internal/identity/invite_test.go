package identity

import (
	"regexp"
	"strings"
	"testing"
)

var inviteFormat = regexp.MustCompile(`^HL-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{4}$`)

func TestNewInviteCode(t *testing.T) {
	r := testRand(1)
	seen := map[string]bool{}
	for range 100 {
		c, err := NewInviteCode(r)
		if err != nil {
			t.Fatal(err)
		}
		if !inviteFormat.MatchString(c) || seen[c] {
			t.Fatalf("code %q: bad format or repeated", c)
		}
		seen[c] = true
		if n, err := NormalizeInviteCode(c); err != nil || n != c {
			t.Fatalf("NormalizeInviteCode(%q) = %q, %v", c, n, err)
		}
	}
	c1, _ := NewInviteCode(testRand(2))
	c2, _ := NewInviteCode(testRand(2))
	if c1 != c2 {
		t.Fatal("NewInviteCode is not a function of its reader")
	}
	if _, err := NewInviteCode(strings.NewReader("short")); err == nil {
		t.Fatal("NewInviteCode succeeded on a short reader")
	}
}

func TestNormalizeInviteCode(t *testing.T) {
	const want = "HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E"
	for _, in := range []string{
		want,
		"hl-7g4qx-2m9kd-b0zrt-wn5ch-pj3e",
		"HL7G4QX2M9KDB0ZRTWN5CHPJ3E",
		"7G4QX2M9KDB0ZRTWN5CHPJ3E",
		"7g4qx 2m9kd b0zrt wn5ch pj3e",
		"  HL - 7G4QX - 2M9KD - B0ZRT - WN5CH - PJ3E\n",
		"HL-7G4QX-2M9KD-BOZRT-WN5CH-PJ3E",   // O for 0
		"Hl-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E",   // l in the prefix
		"hi-7g4qx-2m9kd-b0zrt-wn5ch-pj3e",   // i read as 1 in the prefix too
		"7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E",      // no prefix
		"H L-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E",  // stray space
		"HL--7G4QX--2M9KD-B0ZRT-WN5CH-PJ3E", // doubled dashes
	} {
		got, err := NormalizeInviteCode(in)
		if err != nil || got != want {
			t.Errorf("NormalizeInviteCode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, _ := NormalizeInviteCode("HL-I1LL1-00OO0-00000-00000-0000"); got != "HL-11111-00000-00000-00000-0000" {
		t.Errorf("I, L and O: got %q", got)
	}
	for _, bad := range []string{
		"",
		"HL-",
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3",   // 23 characters
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3EE", // 25
		"XX-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E",  // wrong prefix
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3U",  // U is not in the alphabet
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3*",
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3É",
		"HL_7G4QX_2M9KD_B0ZRT_WN5CH_PJ3E",
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3\x00",
		"HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3\xff",
	} {
		if got, err := NormalizeInviteCode(bad); err == nil {
			t.Errorf("NormalizeInviteCode(%q) = %q, want an error", bad, got)
		} else {
			wantErr(t, err, ErrInvalid)
		}
	}
}

func TestHashInviteCode(t *testing.T) {
	h1, err := HashInviteCode("HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashInviteCode("7g4qx 2m9kd bozrt wn5ch pj3e")
	h3, _ := HashInviteCode("HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3F")
	if h1 != h2 || h1 == h3 {
		t.Fatal("hash depends on the typing, or not on the code")
	}
	if _, err := HashInviteCode("HL-7G4QX"); err == nil {
		t.Fatal("hashed a malformed code")
	}
}

func FuzzNormalizeInviteCode(f *testing.F) {
	f.Add("HL-7G4QX-2M9KD-B0ZRT-WN5CH-PJ3E")
	f.Add("hl 7g4qx 2m9kd bozrt wn5ch pj3e")
	f.Add("HL-I1LL1-00OO0-00000-00000-0000")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeInviteCode(s)
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		if !inviteFormat.MatchString(n) {
			t.Fatalf("%q normalized to %q", s, n)
		}
		if again, err := NormalizeInviteCode(n); err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		h1, err1 := HashInviteCode(s)
		h2, err2 := HashInviteCode(n)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("hashes of %q and %q differ", s, n)
		}
	})
}
