// Package trace marks each recipient's copy of a document so that a
// leaked copy, or an excerpt of a few paragraphs of it, names the
// recipient it came from, with a stated confidence; and it reads those
// marks back ([Trace]).
//
// A copy carries two layers of marks, each chosen by a keyed function
// (HMAC-SHA-256 under the document's marking key) of the recipient:
//
//   - Wording and punctuation ([rules]): at every place of the document
//     where several wordings mean the same ("did not" or "didn't",
//     "organisation" or "organization", "40 percent" or "40 %", "Mr." or
//     "Mr", a serial comma or none, "three ministers" or "3 ministers"…),
//     the copy has the recipient's. These survive copy and paste,
//     reformatting and retyping, and a few paragraphs carry enough of
//     them: each place matches a wrong recipient's choice only by chance.
//   - Invisible characters: a 48-bit tag of the recipient in zero-width
//     characters at the end of every paragraph. It names the recipient
//     outright from a pasted copy, and is the first thing retyping loses.
//
// The tracer finds each place of the original in the leaked text by the
// words around it, reads which wording is there, and for each recipient
// counts the places where it is that recipient's. The confidence is one
// less the chance that a recipient who did not leak it would match as
// many places or more, times the number of recipients (a Bonferroni
// bound): an accusation at [AccuseAt] is wrong at most once in a
// thousand tracings.
//
// The evaluation (trace_test.go) runs against an edit model and a corpus
// committed before this code (internal/trace/edit, testdata/corpus);
// docs/records.md reports it.
package trace

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AccuseAt is the confidence from which Trace names a recipient.
const AccuseAt = 0.999

// A slot is a place of the document where a rule found interchangeable
// wordings: the span [start, end) of the document that a variant
// replaces.
type slot struct {
	r          *rule
	start, end int
	variants   []string // the first is the original's
}

// findSlots finds the slots of doc, in order. A place that one rule took
// is not taken by a later one.
func findSlots(doc string) []slot {
	var out []slot
	for i := range rules {
		r := &rules[i]
		for _, m := range r.re.FindAllStringSubmatchIndex(doc, -1) {
			s, e := m[2*r.group], m[2*r.group+1]
			if s < 0 || r.skip != nil && r.skip(doc, m) {
				continue
			}
			vs := r.variantsOf(doc[s:e])
			if len(vs) < 2 || slices.ContainsFunc(out, func(o slot) bool { return s < o.end && o.start < e || s == e && s == o.start }) {
				continue
			}
			out = append(out, slot{r: r, start: s, end: e, variants: vs})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].start != out[j].start {
			return out[i].start < out[j].start
		}
		return out[i].end < out[j].end // an empty place before one that starts there
	})
	return out
}

// choose is the variant of slot i that recipient's copy carries.
func choose(key []byte, recipient string, i int, n int) int {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hotline trace v1 slot\x00"))
	m.Write([]byte(recipient))
	m.Write([]byte{0})
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(i)))
	return int(binary.BigEndian.Uint64(m.Sum(nil)) % uint64(n))
}

// tag is the recipient's 48-bit invisible tag.
func tag(key []byte, recipient string) uint64 {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hotline trace v1 tag\x00"))
	m.Write([]byte(recipient))
	return binary.BigEndian.Uint64(m.Sum(nil)) >> 16
}

// The invisible tag's alphabet: two bits a character.
var zw = [4]rune{'\u200B', '\u200C', '\u200D', '\u2060'}

const tagChars = 24

func encodeTag(t uint64) string {
	var b strings.Builder
	for i := tagChars - 1; i >= 0; i-- {
		b.WriteRune(zw[t>>(2*i)&3])
	}
	return b.String()
}

// withCase gives v the case of the text it replaces: capitalised if that
// began with a capital letter.
func withCase(v, was string) string {
	r, _ := utf8.DecodeRuneInString(was)
	if !unicode.IsUpper(r) || v == "" {
		return v
	}
	f, n := utf8.DecodeRuneInString(v)
	return string(unicode.ToUpper(f)) + v[n:]
}

// Mark returns recipient's copy of doc under key: doc with the
// recipient's wording at every slot and its invisible tag at the end of
// every paragraph. The same key, recipient and doc give the same copy.
func Mark(key []byte, recipient, doc string) string {
	var b strings.Builder
	t := encodeTag(tag(key, recipient))
	at := 0
	write := func(s string) { // copies s, tagging each paragraph's end
		for {
			i := strings.Index(s, "\n\n")
			if i < 0 {
				b.WriteString(s)
				return
			}
			b.WriteString(s[:i])
			b.WriteString(t)
			b.WriteString(s[i : i+2])
			s = s[i+2:]
		}
	}
	for i, s := range findSlots(doc) {
		write(doc[at:s.start])
		v := s.variants[choose(key, recipient, i, len(s.variants))]
		if !s.r.cased {
			v = withCase(v, doc[s.start:s.end])
		}
		b.WriteString(v)
		at = s.end
	}
	write(strings.TrimRight(doc[at:], "\n"))
	b.WriteString(t)
	if strings.HasSuffix(doc, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

// Suspect is a recipient's standing in a tracing.
type Suspect struct {
	Recipient string `json:"recipient"`
	// Matches of Observed: the places read in the leaked text that carry
	// this recipient's wording.
	Matches  int `json:"matches"`
	Observed int `json:"observed"`
	// Confidence that this recipient's copy is the source (see the package
	// comment); Invisible when their invisible tag was found.
	Confidence float64 `json:"confidence"`
	Invisible  bool    `json:"invisible,omitempty"`
	chance     float64 // that a recipient who did not leak it matches as well
}

// Result is a tracing.
type Result struct {
	Slots    int       `json:"slots"`    // places of the document that carry marks
	Observed int       `json:"observed"` // of those, read in the leaked text
	Suspects []Suspect `json:"suspects"` // every recipient, most likely first
	// Likely is the most likely recipient: the one suspect that matches
	// the leaked text better than every other ("" if none does: no marks
	// read, or a tie).
	Likely string `json:"likely,omitempty"`
	// Accused is Likely, if its confidence reaches AccuseAt; "" otherwise.
	Accused string `json:"accused,omitempty"`
}

// tokens splits text into words (letters, digits and inner apostrophes)
// and the punctuation marks that carry wording (, . ; : % ? !); other
// characters separate tokens. Case is kept: words compare without it
// (equal), except where a rule's variants differ in case.
func tokens(s string) []string {
	var out []string
	var w []rune
	flush := func() {
		if len(w) > 0 {
			out = append(out, strings.Trim(string(w), "'"))
			w = w[:0]
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			w = append(w, r)
		case (r == '\'' || r == '’') && len(w) > 0:
			w = append(w, '\'')
		case strings.ContainsRune(",.;:%?!", r):
			flush()
			out = append(out, string(r))
		case strings.ContainsRune("-‐‑‒–—―−", r) && len(w) > 0 && i+1 < len(rs) && (unicode.IsLetter(rs[i+1]) || unicode.IsDigit(rs[i+1])):
			// A dash between two words, whichever dash (retyping makes
			// every one a hyphen).
			flush()
			out = append(out, "-")
		default:
			flush()
		}
	}
	flush()
	return slices.DeleteFunc(out, func(t string) bool { return t == "" })
}

// observation is a slot read in a leaked text: which variant it carries,
// of how many.
type observation struct {
	slot, variant, of int
}

// contextSizes are the widths of context tried, widest first: elements
// (words, or a neighbouring place in any of its wordings) before and
// after a slot that must be there.
var contextSizes = [][2]int{{3, 3}, {2, 2}, {3, 1}, {1, 3}}

// An element of a document's pattern: a word, or a slot (any of its
// variants' words).
type element struct {
	slot  int        // -1 for a word
	alts  [][]string // a word: one alternative of one token
	cased bool
}

// prepared is a document's slots and its pattern of elements, which
// tracing reads leaked texts against.
type prepared struct {
	slots []slot
	elems []element
	at    []int // slot i is elems[at[i]]
}

func prepare(doc string) *prepared {
	p := &prepared{slots: findSlots(doc)}
	word := func(ts []string) {
		for _, t := range ts {
			p.elems = append(p.elems, element{slot: -1, alts: [][]string{{t}}})
		}
	}
	at := 0
	for i, s := range p.slots {
		word(tokens(doc[at:s.start]))
		e := element{slot: i, cased: s.r.cased, alts: s.r.words}
		if e.alts == nil {
			for _, v := range s.variants {
				e.alts = append(e.alts, tokens(v))
			}
		}
		p.at = append(p.at, len(p.elems))
		p.elems = append(p.elems, e)
		at = s.end
	}
	word(tokens(doc[at:]))
	return p
}

// context returns up to n elements of the pattern before (dir -1) or
// after (dir 1) position i, nearest last before and first after, and how
// many of them are words.
func (p *prepared) context(i, dir, n int) ([]element, int) {
	var out []element
	words := 0
	for j := i + dir; j >= 0 && j < len(p.elems) && len(out) < n; j += dir {
		out = append(out, p.elems[j])
		if p.elems[j].slot < 0 {
			words++
		}
	}
	if dir < 0 {
		slices.Reverse(out)
	}
	return out, words
}

// key describes a context, to find slots whose contexts are alike.
func key(l, r []element, rule string) string {
	var b strings.Builder
	for _, es := range [][]element{l, {{slot: -2}}, r} {
		for _, e := range es {
			switch {
			case e.slot == -2:
				b.WriteString("§" + rule + "§")
			case e.slot >= 0:
				b.WriteString("§slot ")
			default:
				b.WriteString(strings.ToLower(e.alts[0][0]) + " ")
			}
		}
	}
	return b.String()
}

// observe reads the slots of a document in the leaked text.
func (p *prepared) observe(leaked []string) []observation {
	// Contexts that two slots share, at each width, are not used.
	shared := make([]map[string]int, len(contextSizes))
	for w, size := range contextSizes {
		shared[w] = map[string]int{}
		for i, s := range p.slots {
			l, _ := p.context(p.at[i], -1, size[0])
			r, _ := p.context(p.at[i], 1, size[1])
			shared[w][key(l, r, s.r.name)]++
		}
	}
	var obs []observation
	for i, s := range p.slots {
		for w, size := range contextSizes {
			l, lw := p.context(p.at[i], -1, size[0])
			r, rw := p.context(p.at[i], 1, size[1])
			if lw+rw < 3 || lw == 0 || rw == 0 || shared[w][key(l, r, s.r.name)] > 1 {
				continue
			}
			found, n := -1, 0
			for v, vt := range p.elems[p.at[i]].alts {
				pat := slices.Concat(l, []element{{slot: i, alts: [][]string{vt}, cased: s.r.cased}}, r)
				if c := count(leaked, pat); c > 0 {
					found, n = v, n+c
				}
			}
			if n == 1 {
				obs = append(obs, observation{slot: i, variant: found, of: len(p.elems[p.at[i]].alts)})
			}
			if n > 0 {
				break // read, or ambiguous at this width: not narrower
			}
		}
	}
	return obs
}

// equal compares tokens without case.
func equal(a, b []string) bool {
	return slices.EqualFunc(a, b, strings.EqualFold)
}

// near compares context tokens, forgiving one typo in a longer word (a
// letter dropped, changed or swapped with the next).
func near(a, b []string) bool {
	return slices.EqualFunc(a, b, func(x, y string) bool {
		return strings.EqualFold(x, y) || len(x) >= 4 && len(y) >= 4 && oneEdit(strings.ToLower(x), strings.ToLower(y))
	})
}

// oneEdit reports whether a and b differ by one edit: a letter dropped,
// changed, or swapped with its neighbour.
func oneEdit(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	switch len(a) - len(b) {
	case 0:
		i := 0
		for i < len(a) && a[i] == b[i] {
			i++
		}
		if i == len(a) {
			return true
		}
		return a[i+1:] == b[i+1:] || i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
	case 1:
		i := 0
		for i < len(b) && a[i] == b[i] {
			i++
		}
		return a[i+1:] == b[i:]
	}
	return false
}

// count counts the places of s where pat begins and matches.
func count(s []string, pat []element) int {
	n := 0
	for i := range s {
		if matches(s, i, pat) {
			n++
		}
	}
	return n
}

// matches reports whether pat matches s from position i: a word with a
// typo forgiven, a slot's words exactly (with their case if cased).
func matches(s []string, i int, pat []element) bool {
	if len(pat) == 0 {
		return true
	}
	e := pat[0]
	for _, alt := range e.alts {
		if i+len(alt) > len(s) {
			continue
		}
		got := s[i : i+len(alt)]
		var ok bool
		switch {
		case e.slot < 0:
			ok = near(got, alt)
		case e.cased:
			ok = slices.Equal(got, alt)
		default:
			ok = equal(got, alt)
		}
		if ok && matches(s, i+len(alt), pat[1:]) {
			return true
		}
	}
	return false
}

// tags returns the invisible tags found in s.
func tags(s string) []uint64 {
	var out []uint64
	var t uint64
	n := 0
	for _, r := range s {
		d := slices.Index(zw[:], r)
		if d < 0 {
			n, t = 0, 0
			continue
		}
		t = t<<2 | uint64(d)
		if n++; n == tagChars {
			out = append(out, t&(1<<48-1))
			n, t = 0, 0
		}
	}
	return out
}

// Trace reads the marks of leaked, a copy of doc or part of one, against
// each of recipients' copies under key, and ranks the recipients.
func Trace(key []byte, doc string, recipients []string, leaked string) Result {
	return prepare(doc).trace(key, recipients, leaked)
}

// Copy is a recipient's copy of several documents, each marked under a
// key of its own (Mark with Keys[i] for the i-th document): the records a
// person was given, say, each under a key derived for it, so that the
// marks of one are independent of another's.
type Copy struct {
	Recipient string
	Keys      [][]byte
	// Label names the copy among the suspects (default: Recipient), for a
	// recipient who holds more than one.
	Label string
}

// TraceCopies reads the marks of leaked, a copy of some of docs or parts
// of them, against each copy, and ranks the copies' recipients. The
// places read in every document count together.
func TraceCopies(docs []string, copies []Copy, leaked string) Result {
	ps := make([]*prepared, len(docs))
	for i, doc := range docs {
		ps[i] = prepare(doc)
	}
	return traceCopies(ps, copies, leaked)
}

// trace is Trace on a prepared document.
func (p *prepared) trace(key []byte, recipients []string, leaked string) Result {
	copies := make([]Copy, len(recipients))
	for i, rc := range recipients {
		copies[i] = Copy{Recipient: rc, Keys: [][]byte{key}}
	}
	return traceCopies([]*prepared{p}, copies, leaked)
}

func traceCopies(ps []*prepared, copies []Copy, leaked string) Result {
	lt := tokens(leaked)
	type docObs struct {
		doc int
		observation
	}
	var obs []docObs
	var plain []observation
	slots := 0
	for d, p := range ps {
		slots += len(p.slots)
		for _, o := range p.observe(lt) {
			obs = append(obs, docObs{d, o})
			plain = append(plain, o)
		}
	}
	found := tags(leaked)
	res := Result{Slots: slots, Observed: len(obs), Suspects: []Suspect{}}
	n := float64(len(copies))
	for _, cp := range copies {
		s := Suspect{Recipient: cmp.Or(cp.Label, cp.Recipient), Observed: len(obs)}
		for _, o := range obs {
			if o.doc < len(cp.Keys) && choose(cp.Keys[o.doc], cp.Recipient, o.slot, o.of) == o.variant {
				s.Matches++
			}
		}
		s.chance = tail(plain, s.Matches)
		s.Confidence = max(0, 1-n*s.chance)
		for _, k := range cp.Keys {
			if slices.Contains(found, tag(k, cp.Recipient)) {
				s.Invisible = true
				s.Confidence = max(s.Confidence, 1-n/(1<<48))
				break
			}
		}
		res.Suspects = append(res.Suspects, s)
	}
	sort.SliceStable(res.Suspects, func(i, j int) bool { return better(res.Suspects[i], res.Suspects[j]) })
	if len(res.Suspects) > 0 && (res.Suspects[0].Matches > 0 || res.Suspects[0].Invisible) &&
		(len(res.Suspects) == 1 || better(res.Suspects[0], res.Suspects[1])) {
		res.Likely = res.Suspects[0].Recipient
		if res.Suspects[0].Confidence >= AccuseAt {
			res.Accused = res.Likely
		}
	}
	return res
}

// better reports whether a is a more likely source than b: its invisible
// tag was found, or its wording is less likely to match by chance.
func better(a, b Suspect) bool {
	if a.Invisible != b.Invisible {
		return a.Invisible
	}
	if a.chance != b.chance {
		return a.chance < b.chance
	}
	return false
}

// tail is the chance that a recipient whose copy is not the source
// matches at least m of the observations: each matches by chance with
// probability one in its number of variants, independently (the choices
// are a keyed pseudorandom function of recipient and place).
func tail(obs []observation, m int) float64 {
	if m <= 0 {
		return 1
	}
	// dist[k]: the chance of exactly k matches so far.
	dist := make([]float64, len(obs)+1)
	dist[0] = 1
	for i, o := range obs {
		p := 1 / float64(o.of)
		for k := i + 1; k >= 1; k-- {
			dist[k] = dist[k]*(1-p) + dist[k-1]*p
		}
		dist[0] *= 1 - p
	}
	t := 0.0
	for k := m; k < len(dist); k++ {
		t += dist[k]
	}
	return t
}
