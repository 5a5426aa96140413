// Package edit is the edit model that leak tracing is evaluated against:
// what happens to a document between the copy a recipient was given and
// the text that turns up somewhere else. It was written, with the
// evaluation corpus (internal/trace/testdata/corpus), before the marking
// code, so that the marks were chosen to survive it rather than it to
// spare the marks.
//
// Three kinds of change, applied in this order by [Leak]:
//
//   - [Retype]: the text is typed again, or pasted through a plain-text
//     filter: invisible characters are gone (zero-width characters, soft
//     hyphens, bidirectional marks, variation selectors, tag characters),
//     compatibility characters are folded (NFKC-like: ligatures, full-width
//     letters, non-breaking and other special spaces), typographic quotes,
//     dashes and ellipses become ASCII, runs of spaces become one, lines are
//     trimmed, a paragraph is one line and paragraphs are separated by one
//     blank line. Nothing that lives in whitespace or in the choice of a
//     look-alike character survives.
//   - [Light]: a careless or wary hand: about Rate of the words are
//     changed, each in one of four ways (dropped, a typo of two adjacent
//     letters swapped, a letter dropped, its case changed), and a list's
//     bullets may be dropped.
//   - [Excerpt]: only some consecutive paragraphs are kept (three in the
//     evaluation).
package edit

import (
	"math/rand/v2"
	"strings"
	"unicode"
)

// Paragraphs splits a text into paragraphs: runs of non-blank lines,
// separated by blank lines. A paragraph's lines are kept as they are.
func Paragraphs(s string) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}

// invisible reports the characters that retyping loses: format characters
// (Cf: zero-width space and joiners, bidirectional marks, soft hyphen, tag
// characters), variation selectors and other non-printing code points.
func invisible(r rune) bool {
	switch {
	case unicode.Is(unicode.Cf, r):
		return true
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF: // variation selectors
		return true
	case r == 0x034F || r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0: // grapheme joiner, fillers
		return true
	case unicode.IsControl(r) && r != '\n' && r != '\t':
		return true
	}
	return false
}

// fold maps a character to what a plain-text retyping gives: ASCII
// punctuation for typographic punctuation, a plain space for every other
// space, the plain letter for full-width and mathematical look-alikes and
// ligatures. ok is false for a character to keep as it is.
func fold(r rune) (string, bool) {
	switch r {
	case '\u2018', '\u2019', '\u201A', '\u201B', '\u2032', '\u00B4', '`':
		return "'", true
	case '\u201C', '\u201D', '\u201E', '\u201F', '\u2033', '\u00AB', '\u00BB':
		return `"`, true
	case '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015', '\u2212', '\uFE58', '\uFE63', '\uFF0D':
		return "-", true
	case '\u2026':
		return "...", true
	case '\u2022', '\u2023', '\u25E6', '\u2043', '\u2219':
		return "-", true
	case '\uFB00':
		return "ff", true
	case '\uFB01':
		return "fi", true
	case '\uFB02':
		return "fl", true
	case '\uFB03':
		return "ffi", true
	case '\uFB04':
		return "ffl", true
	}
	if unicode.IsSpace(r) && r != '\n' {
		return " ", true
	}
	if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
		return string(r - 0xFF01 + '!'), true
	}
	if r >= 0x1D400 && r <= 0x1D6A3 { // mathematical alphanumerics: letters
		i := (r - 0x1D400) % 52
		if i < 26 {
			return string('A' + i), true
		}
		return string('a' + i - 26), true
	}
	if r >= 0x1D7CE && r <= 0x1D7FF { // mathematical digits
		return string('0' + (r-0x1D7CE)%10), true
	}
	return "", false
}

// Retype is the text as a plain-text retyping gives it (see the package
// comment).
func Retype(s string) string {
	var b strings.Builder
	for _, r := range s {
		if invisible(r) {
			continue
		}
		if f, ok := fold(r); ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	var paras []string
	for _, p := range Paragraphs(b.String()) {
		var lines []string
		for _, line := range strings.Split(p, "\n") {
			if line = strings.Join(strings.Fields(line), " "); line != "" {
				lines = append(lines, line)
			}
		}
		paras = append(paras, strings.Join(lines, " "))
	}
	return strings.Join(paras, "\n\n")
}

// Light changes about rate of the words of s (0.03 is a careful retyping,
// 0.1 a sloppy or wary one): each changed word is dropped, has two adjacent
// letters swapped, loses a letter, or has its first letter's case flipped,
// with equal chance. List bullets ("- " at the start of a line) are
// dropped with chance one half. Paragraph breaks are kept.
func Light(s string, rate float64, rng *rand.Rand) string {
	dropBullets := rng.IntN(2) == 0
	var paras []string
	for _, p := range Paragraphs(s) {
		var lines []string
		for _, line := range strings.Split(p, "\n") {
			words := strings.Fields(line)
			var out []string
			for i, w := range words {
				if i == 0 && w == "-" {
					if !dropBullets {
						out = append(out, w)
					}
					continue
				}
				if rng.Float64() >= rate {
					out = append(out, w)
					continue
				}
				switch rs := []rune(w); rng.IntN(4) {
				case 0: // dropped
				case 1:
					if len(rs) >= 2 {
						j := rng.IntN(len(rs) - 1)
						rs[j], rs[j+1] = rs[j+1], rs[j]
					}
					out = append(out, string(rs))
				case 2:
					if len(rs) >= 2 {
						j := rng.IntN(len(rs))
						rs = append(rs[:j], rs[j+1:]...)
					}
					out = append(out, string(rs))
				case 3:
					if unicode.IsUpper(rs[0]) {
						rs[0] = unicode.ToLower(rs[0])
					} else {
						rs[0] = unicode.ToUpper(rs[0])
					}
					out = append(out, string(rs))
				}
			}
			if len(out) > 0 {
				lines = append(lines, strings.Join(out, " "))
			}
		}
		if len(lines) > 0 {
			paras = append(paras, strings.Join(lines, "\n"))
		}
	}
	return strings.Join(paras, "\n\n")
}

// Excerpt keeps n consecutive paragraphs of s, from a random start (all
// of s if it has n or fewer).
func Excerpt(s string, n int, rng *rand.Rand) string {
	ps := Paragraphs(s)
	if len(ps) <= n {
		return strings.Join(ps, "\n\n")
	}
	i := rng.IntN(len(ps) - n + 1)
	return strings.Join(ps[i:i+n], "\n\n")
}

// Model is one setting of the edit model.
type Model struct {
	Rate       float64 // Light's rate
	Paragraphs int     // Excerpt's n; 0 keeps the whole text
}

// Evaluation is the setting leak tracing is evaluated against: a retyped
// three-paragraph excerpt with 3 % of its words changed.
var Evaluation = Model{Rate: 0.03, Paragraphs: 3}

// Leak is what m does to a recipient's copy: retyped, lightly edited,
// excerpted.
func (m Model) Leak(copy string, rng *rand.Rand) string {
	s := Light(Retype(copy), m.Rate, rng)
	if m.Paragraphs > 0 {
		s = Excerpt(s, m.Paragraphs, rng)
	}
	return s
}
